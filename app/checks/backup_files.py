"""``backup_files``: the newest dump in a directory is fresh, complete and readable.

Each run lists the files (or directory-format dumps) matching ``pattern`` in ``path``, orders them
newest first by the timestamp in their name (``backup_20261122_030000.sql``, ISO-8601, or a
configured format) or by modification time, and walks down that list until it finds a good one:

* a file that is still being written (modified within ``settle``, or whose size or mtime changed
  between two looks ``recheck_delay`` apart) is skipped, and not held against the backup job;
* an empty file, one below ``min_size``, or one that fails verification is *bad*: the Result names
  it in ``bad_files``, fails, and the age falls back to the newest good one.

Verification (``verify: true``) by format:

* custom and directory format: ``pg_restore --list`` (the TOC entry count is reported), then a full
  ``pg_restore`` to ``/dev/null``, which reads and decompresses every data block, so a truncated or
  corrupted archive fails even though its TOC at the start is intact;
* tar format: ``pg_restore --list`` and a full read of the tar stream (``pg_restore`` itself can
  spin forever on a truncated tar, so it is not used for the full read);
* plain SQL, also ``.gz`` or ``.zst``: the whole stream is read (and decompressed, which checks
  the gzip CRC and the zstd checksum), must be valid UTF-8 when the dump says so, and must end
  with PostgreSQL's ``-- PostgreSQL database dump complete`` marker;
* any file with a ``<name>.sha256`` sidecar: its SHA-256 must match.

Uncompressed plain and tar dumps carry no checksum of their own: a byte flipped inside the table
data of such a dump is only caught by a sidecar.

A file is verified once per (path, size, mtime): the outcome is remembered on the check, so a
large dump is read once, not every interval. Subprocesses are killed when the run is cancelled.
The reading itself is :func:`app.dumps.verify`, shared with the restore drills.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from app.checks import base
from app.checks._backup import BackupCheck, BackupFacts, check_regex, check_zone, name_time_parser
from app.checks.base import Result, Status
from app.dumps import SIDECAR_SUFFIX, DumpFormat, Verification, dump_format, verify
from app.units import ByteSize, Duration, format_size

# Verifying costs a full read; past this many bad files in one run the rest wait for the next.
_MAX_VERIFIED_PER_RUN = 10
# How many earlier backups the size plausibility check compares against (their median).
_SIZE_HISTORY = 3


class BackupFilesCheck(BackupCheck["BackupFilesCheck.Params"]):
    """Finds the newest good dump matching ``pattern`` in ``path``; fails when it is older than
    ``rpo`` or when the newest dump is bad (empty, too small, truncated, corrupt), warns when it
    shrank by more than ``max_shrink`` against the earlier ones.
    """

    class Params(base.Params):
        path: Path = Field(description="Directory the backup job writes its dumps to.")
        pattern: str = Field("*", description="Glob of the dumps, relative to path.")
        rpo: Duration = Field(86400.0, description="Fail when the newest good dump is older.")
        min_size: ByteSize = Field(1, description="Smaller dumps are bad, like empty ones.")
        max_shrink: float = Field(
            0.5,
            ge=0.0,
            le=1.0,
            description="Warn when smaller than the earlier dumps' median by more than this share.",
        )
        verify: bool = Field(True, description="Read the newest dump through to prove it whole.")
        timestamp: Literal["name", "mtime"] = Field(
            "name", description="A dump's time: from its name (else mtime), or its mtime."
        )
        name_format: str | None = Field(
            None,
            description="strptime format of name timestamps; default: YYYYmmdd_HHMMSS, ISO-8601",
        )
        name_regex: str | None = Field(
            None, description="Regex picking the timestamp out of a name (group ts or first)."
        )
        name_timezone: str = Field("UTC", description="Zone of name timestamps with no offset.")
        settle: Duration = Field(5.0, description="Dumps modified more recently are in progress.")
        recheck_delay: Duration = Field(
            0.5, description="Gap between two looks at the newest dump; a change: still growing."
        )
        pg_restore: str = Field("pg_restore", description="The pg_restore program to verify with.")

        _regex = field_validator("name_regex")(check_regex)
        _zone = field_validator("name_timezone")(check_zone)

        @field_validator("pattern")
        @classmethod
        def _pattern_is_relative(cls, value: str) -> str:
            if not value or value.startswith("/"):
                raise ValueError("a glob relative to path, such as backup_*.sql*")
            return value

    default_timeout: ClassVar[float] = 240.0
    restorable: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verified: dict[_FileKey, Verification] = {}
        p = self.params
        self._name_parser = name_time_parser(p.name_format, p.name_regex, p.name_timezone)

    async def run(self) -> Result:
        p = self.params
        listing = await asyncio.to_thread(_list_dumps, p.path, p.pattern, self._name_parser, p)
        facts = BackupFacts(rpo_seconds=p.rpo, location=str(p.path))
        facts.extra.update(bad_files=[], in_progress=[], format=None)
        if listing.missing:
            return self.report(
                facts,
                Status.FAIL,
                f"Backup directory {p.path} does not exist or is not a directory; the volume may "
                "not be mounted, or path is wrong.",
            )
        if not listing.dumps:
            return self.report(
                facts,
                Status.FAIL,
                f"No backup matching {p.pattern!r} in {p.path}; the backup job has never run, "
                "or it writes somewhere else.",
            )
        walk = await self._walk(listing.dumps, facts.now)
        self._forget_vanished(listing.dumps)
        return self._verdict(walk, facts)

    # -- walking the dumps, newest first

    async def _walk(self, dumps: list[_Dump], now: datetime) -> _Walk:
        p = self.params
        walk = _Walk()
        verified = 0
        for index, dump in enumerate(dumps):
            if dump.size == 0:
                walk.bad.append((dump, "empty (0 bytes)"))
                continue
            if dump.size < p.min_size:
                walk.bad.append(
                    (
                        dump,
                        f"only {format_size(dump.size)}, below min_size {format_size(p.min_size)}",
                    )
                )
                continue
            if walk.good is None and await self._still_written(dump, now):
                walk.in_progress.append(dump)
                continue
            if p.verify:
                if verified >= _MAX_VERIFIED_PER_RUN:
                    walk.unexamined = len(dumps) - index
                    break
                outcome = self._verified.get(dump.key)
                if outcome is None:
                    verified += 1
                    outcome = await verify(
                        dump.path,
                        dump.format,
                        sidecar=dump.sidecar is not None,
                        pg_restore=p.pg_restore,
                    )
                    self._verified[dump.key] = outcome
                if not outcome.ok:
                    walk.bad.append((dump, outcome.problem))
                    continue
                walk.verified_by = outcome.method
            walk.good = dump
            walk.earlier = [d for d in dumps[index + 1 :] if d.size >= max(p.min_size, 1)][
                :_SIZE_HISTORY
            ]
            break
        return walk

    async def _still_written(self, dump: _Dump, now: datetime) -> bool:
        p = self.params
        modified = datetime.fromtimestamp(dump.mtime_ns / 1e9, UTC)
        if now - modified < timedelta(seconds=p.settle):
            return True
        if p.recheck_delay <= 0 or dump.key in self._verified:
            # Seen with this very size and mtime in an earlier run: it is not growing.
            return False
        await asyncio.sleep(p.recheck_delay)
        again = await asyncio.to_thread(_stat_dump, dump.path)
        return again is None or again != (dump.size, dump.mtime_ns)

    def _forget_vanished(self, dumps: list[_Dump]) -> None:
        present = {d.key for d in dumps}
        for key in [k for k in self._verified if k not in present]:
            del self._verified[key]

    # -- the verdict

    def _verdict(self, walk: _Walk, facts: BackupFacts) -> Result:
        p = self.params
        good = walk.good
        newer_bad = [(d, why) for d, why in walk.bad if good is None or d.taken_at > good.taken_at]
        bad_files = [{"path": str(d.path), "problem": why} for d, why in walk.bad]
        facts.extra.update(
            bad_files=bad_files,
            in_progress=[str(d.path) for d in walk.in_progress],
            format=None,
        )
        if good is not None:
            facts.last_backup_at = good.taken_at
            facts.size_bytes = good.size
            facts.location = str(good.path)
            facts.extra["format"] = good.format
            facts.extra["timestamp_from"] = good.timestamp_from
            if p.verify:
                facts.verified = not newer_bad
                facts.verified_by = walk.verified_by
                # ``verified`` answers "is the newest backup good?"; this answers "is the one at
                # ``location`` good?", so a drill can restore it while a newer one is broken.
                facts.extra["location_verified"] = True
                facts.extra["newer_bad_files"] = [
                    {"path": str(d.path), "problem": why} for d, why in newer_bad
                ]
        elif walk.bad:
            facts.verified = False
        writing = ""
        if walk.in_progress:
            names = ", ".join(d.path.name for d in walk.in_progress)
            writing = f" ({names} is still being written.)"

        if good is None:
            if walk.bad:
                problems = "; ".join(f"{d.path.name} is {why}" for d, why in walk.bad[:3])
                more = f" (and {len(walk.bad) - 3} more)" if len(walk.bad) > 3 else ""
                return self.report(
                    facts,
                    Status.FAIL,
                    f"No good backup in {p.path}: {problems}{more}. The backup job is failing; "
                    f"nothing here can be restored.{writing}",
                )
            if walk.unexamined:
                return self.report(
                    facts,
                    Status.FAIL,
                    f"No backup in {p.path} could be verified in this run; {walk.unexamined} "
                    "are left for the next run.",
                )
            return self.report(
                facts,
                Status.FAIL,
                f"The only backups in {p.path} are still being written; there is no finished "
                f"one yet.{writing}",
            )

        age = f"{facts.age_text} old (RPO {facts.rpo_text})"
        how = f", verified by {walk.verified_by}" if p.verify and walk.verified_by else ""
        if newer_bad:
            newest, why = newer_bad[0]
            stale = "" if facts.within_rpo else ", which is past the RPO"
            return self.report(
                facts,
                Status.FAIL,
                f"Newest backup {newest.path.name} is {why}; the newest good one is "
                f"{good.path.name}, {age}{stale}. The last backup run failed or was cut short."
                f"{writing}",
            )
        if not facts.within_rpo:
            return self.report(
                facts,
                Status.FAIL,
                f"Newest backup {good.path.name} is {facts.age_text} old, older than the "
                f"{facts.rpo_text} RPO; the backup job may not be running.{writing}",
            )
        if walk.earlier:
            typical = statistics.median(d.size for d in walk.earlier)
            facts.extra["typical_size_bytes"] = int(typical)
            if typical > 0 and good.size < typical * (1 - p.max_shrink):
                shrink = 1 - good.size / typical
                return self.report(
                    facts,
                    Status.WARN,
                    f"Newest backup {good.path.name} is {format_size(good.size)}, {shrink:.0%} "
                    f"smaller than the earlier ones ({format_size(typical)}); tables may be "
                    f"missing from the dump or data was deleted.{writing}",
                )
        return self.report(
            facts,
            Status.PASS,
            f"Newest backup {good.path.name} is {age}, {format_size(good.size)}{how}.{writing}",
        )


# --- listing ------------------------------------------------------------------------------------

_FileKey = tuple[str, int, int, "tuple[int, int] | None"]


@dataclass
class _Dump:
    path: Path
    size: int
    mtime_ns: int
    taken_at: datetime
    timestamp_from: str
    sidecar: tuple[int, int] | None
    format: DumpFormat

    @property
    def key(self) -> _FileKey:
        return (str(self.path), self.size, self.mtime_ns, self.sidecar)


@dataclass
class _Listing:
    dumps: list[_Dump] = field(default_factory=list)
    missing: bool = False


@dataclass
class _Walk:
    good: _Dump | None = None
    verified_by: str | None = None
    bad: list[tuple[_Dump, str]] = field(default_factory=list)
    in_progress: list[_Dump] = field(default_factory=list)
    earlier: list[_Dump] = field(default_factory=list)
    unexamined: int = 0


def _list_dumps(
    directory: Path,
    pattern: str,
    name_time: Callable[[str], datetime | None],
    params: BackupFilesCheck.Params,
) -> _Listing:
    if not directory.is_dir():
        return _Listing(missing=True)
    dumps: list[_Dump] = []
    for path in directory.glob(pattern):
        if path.name.endswith(SIDECAR_SUFFIX) or path.name.startswith("."):
            continue
        stat = _stat_dump(path)
        if stat is None:
            continue
        size, mtime_ns = stat
        taken_at, source = None, "mtime"
        if params.timestamp == "name":
            taken_at = name_time(path.name)
            source = "name" if taken_at is not None else "mtime"
        if taken_at is None:
            taken_at = datetime.fromtimestamp(mtime_ns / 1e9, UTC)
        sidecar_path = path.with_name(path.name + SIDECAR_SUFFIX)
        sidecar = _stat_dump(sidecar_path) if sidecar_path.is_file() else None
        try:
            fmt = dump_format(path)
        except OSError:
            # Unreadable: verification reports it.
            fmt = "plain"
        dumps.append(_Dump(path, size, mtime_ns, taken_at, source, sidecar, fmt))
    dumps.sort(key=lambda d: (d.taken_at, d.path.name), reverse=True)
    return _Listing(dumps)


def _stat_dump(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or of a directory-format dump (sum of sizes, newest mtime)."""
    try:
        stat = path.stat()
        if not path.is_dir():
            return stat.st_size, stat.st_mtime_ns
        size, mtime_ns = 0, stat.st_mtime_ns
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_file():
                    inner = entry.stat()
                    size += inner.st_size
                    mtime_ns = max(mtime_ns, inner.st_mtime_ns)
        return size, mtime_ns
    except OSError:
        return None
