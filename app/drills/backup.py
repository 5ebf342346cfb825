"""The backup a drill restores, as a backup source reported it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.dumps import Compression, Layout
from app.units import parse_timestamp


@dataclass(frozen=True)
class BackupRef:
    """The backup a drill restores: a local path or ``s3://bucket/key``, and when it was taken.

    ``format`` and ``compression`` are detected from the file when left as None.
    ``rpo_seconds`` is the source's RPO, used by ``within_rpo_of_backup`` when the drill sets none.
    """

    location: str
    backup_time: datetime
    size_bytes: int | None = None
    format: Layout | None = None
    compression: Compression | None = None
    rpo_seconds: float | None = None
    # Newer backups passed over for this one, each "name: why" (failed verification).
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backup_time.tzinfo is None:
            raise ValueError("backup_time must be timezone-aware")

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> BackupRef:
        """From a backup check's Result details (``location``, ``last_backup_at``, ...).

        Raises ValueError when the details name no backup.
        """
        location = details.get("location")
        taken = details.get("last_backup_at")
        if not location or not taken:
            raise ValueError("the backup source has not reported a backup (location and time)")
        backup_time = parse_timestamp(taken)
        if backup_time is None:
            raise ValueError(f"the backup time {taken!r} is not a timestamp")
        size = details.get("size_bytes")
        rpo = details.get("rpo_seconds")
        return cls(
            location=str(location),
            backup_time=backup_time,
            size_bytes=int(size) if size is not None else None,
            rpo_seconds=float(rpo) if rpo is not None else None,
        )
