"""``render``: a Render PostgreSQL database can be recovered, from its point-in-time recovery
window and from a recent logical export.

Through the Render REST API (``https://api.render.com/v1``, bearer API key):

* ``GET /postgres/{postgresId}/recovery`` gives ``recoveryStatus`` (``AVAILABLE``,
  ``BACKUP_NOT_READY``, ``NOT_AVAILABLE``) and ``startsAt``, the earliest point the database can
  be restored to. With ``pitr: true`` anything but ``AVAILABLE`` fails: a plan without point-in-time
  recovery, or a database whose first base backup is not finished, cannot be restored to the
  moment before an incident.
* ``GET /postgres/{postgresId}/export`` lists the logical exports (``id``, ``createdAt``, ``url``).
  With ``exports: true`` the newest one is the backup whose age is held against ``rpo``: it is the
  copy that survives the loss of the database and its Render account region.

With ``exports: false`` the recovery point is the point-in-time recovery window's end (now, when
it is available). Render does not report an export's size, so ``size_bytes`` is None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

from pydantic import Field, SecretStr

from app.checks import base
from app.checks._backup import BackupCheck, BackupFacts
from app.checks._vendor import ApiCheck, base_url_of, shown_url
from app.checks.base import CheckFailed, Result, Status
from app.units import Duration, parse_timestamp, rfc3339

_PITR_VERIFIED_BY = "point-in-time recovery status AVAILABLE"
_EXPORT_VERIFIED_BY = "export listed with a download URL"


class RenderCheck(ApiCheck["RenderCheck.Params"], BackupCheck["RenderCheck.Params"]):
    """Fails when point-in-time recovery is not available (``pitr``) or when the newest export
    is older than ``rpo`` (``exports``).
    """

    class Params(base.Params):
        api_key: SecretStr = Field(description="Render API key, sent as a bearer token.")
        postgres_id: str = Field(
            min_length=1, description="ID of the Render PostgreSQL database (dpg-...)."
        )
        base_url: str = Field(
            "https://api.render.com/v1", description="Base URL of the Render API (a test server)."
        )
        rpo: Duration = Field(
            86400.0,
            description="Recovery point objective: fail when the newest export is older.",
        )
        pitr: bool = Field(True, description="Fail unless point-in-time recovery is available.")
        exports: bool = Field(True, description="Hold the newest logical export's age against rpo.")

    vendor: ClassVar[str] = "Render"
    default_criticality: ClassVar[base.Criticality] = "degraded"
    default_interval: ClassVar[float] = 900.0
    default_timeout: ClassVar[float] = 30.0

    def client_options(self) -> dict[str, Any]:
        p = self.params
        return {
            "base_url": base_url_of(p.base_url),
            "headers": {
                "Authorization": f"Bearer {p.api_key.get_secret_value()}",
                "Accept": "application/json",
            },
        }

    async def run(self) -> Result:
        p = self.params
        database = quote(p.postgres_id, safe="")
        facts = BackupFacts(rpo_seconds=p.rpo, location=f"render postgres {p.postgres_id}")
        facts.extra["bad_files"] = []
        try:
            recovery = await self.get_json(
                f"/postgres/{database}/recovery", resource=f"Postgres {p.postgres_id}"
            )
            exports = (
                await self.get_json(
                    f"/postgres/{database}/export", resource=f"Postgres {p.postgres_id}"
                )
                if p.exports
                else None
            )
        except CheckFailed as failure:
            return self.unknown(facts, failure)

        problems: list[str] = []
        notes: list[str] = []
        pitr_ok = self._judge_pitr(recovery, facts, problems, notes)
        if exports is not None:
            self._judge_exports(exports, facts, problems, notes)
        elif pitr_ok:
            # Point-in-time recovery restores up to the present moment.
            facts.last_backup_at = facts.now
            facts.verified = True
            facts.verified_by = _PITR_VERIFIED_BY
        if problems:
            return self.report(facts, Status.FAIL, " ".join(problems))
        return self.report(
            facts, Status.PASS, f"Render Postgres {p.postgres_id}: {'; '.join(notes)}."
        )

    def _judge_pitr(
        self, recovery: Any, facts: BackupFacts, problems: list[str], notes: list[str]
    ) -> bool:
        p = self.params
        status = recovery.get("recoveryStatus") if isinstance(recovery, dict) else None
        if not isinstance(status, str):
            raise_shape("recoveryStatus")
        starts_at = _parse_time(recovery.get("startsAt"))
        facts.extra.update(
            pitr_status=status,
            pitr_window_start=rfc3339(starts_at) if starts_at else None,
            pitr_window_seconds=(facts.now - starts_at).total_seconds() if starts_at else None,
        )
        if status == "AVAILABLE":
            window = f" back to {rfc3339(starts_at)}" if starts_at else ""
            notes.append(f"point-in-time recovery is available{window}")
            return True
        if not p.pitr:
            notes.append(f"point-in-time recovery is {status}")
            return False
        if status == "BACKUP_NOT_READY":
            problems.append(
                f"Point-in-time recovery for {p.postgres_id} is not ready: Render has not "
                "finished its first backup of the database, so it cannot be restored to a point "
                "in time yet."
            )
        elif status == "NOT_AVAILABLE":
            problems.append(
                f"Point-in-time recovery is not available for {p.postgres_id}; the database's "
                "plan does not include it (free instances), so only exports can restore it."
            )
        else:
            problems.append(
                f"Render reports point-in-time recovery for {p.postgres_id} as {status}; it "
                "cannot be relied on for a restore."
            )
        return False

    def _judge_exports(
        self, exports: Any, facts: BackupFacts, problems: list[str], notes: list[str]
    ) -> None:
        p = self.params
        if not isinstance(exports, list):
            raise_shape("export list")
        dated = [
            (moment, item)
            for item in exports
            if isinstance(item, dict) and (moment := _parse_time(item.get("createdAt")))
        ]
        facts.extra["exports_listed"] = len(dated)
        if not dated:
            problems.append(
                f"Render has no export of {p.postgres_id}; create exports on a schedule (the "
                "API's POST /postgres/{postgresId}/export) so a copy survives losing the database."
            )
            return
        dated.sort(key=lambda pair: pair[0], reverse=True)
        # An export is downloadable once Render has written it and lists its URL.
        finished = [(moment, item) for moment, item in dated if _url(item)]
        pending = [item for moment, item in dated if not finished or moment > finished[0][0]]
        facts.extra["in_progress"] = [str(item.get("id")) for item in pending if not _url(item)]
        if not finished:
            facts.verified = False
            problems.append(
                f"None of the {len(dated)} exports of {p.postgres_id} has a download URL; they "
                "failed or are still being written, so there is no export to restore from."
            )
            return
        created_at, newest = finished[0]
        facts.last_backup_at = created_at
        facts.location = shown_url(_url(newest))
        facts.extra["export_id"] = newest.get("id")
        facts.verified = True
        facts.verified_by = _EXPORT_VERIFIED_BY
        if not facts.within_rpo:
            problems.append(
                f"The newest export of {p.postgres_id} is {facts.age_text} old, older than the "
                f"{facts.rpo_text} RPO; the scheduled export may not be running."
            )
        else:
            notes.append(f"newest export is {facts.age_text} old (RPO {facts.rpo_text})")


def _url(item: dict[str, Any]) -> str:
    url = item.get("url")
    return url if isinstance(url, str) else ""


def raise_shape(field: str) -> NoReturn:
    raise CheckFailed(
        f"Render answered without a valid {field}; its API may have changed, or something else "
        "answers at the configured base_url."
    )


def _parse_time(value: Any) -> datetime | None:
    # Render's API writes times as ISO-8601 text; anything else is not one of its times.
    return parse_timestamp(value) if isinstance(value, str) else None
