"""The integrity queries of a drill: each runs on the restored database in a READ ONLY
transaction and its single value is judged against ``expect``, the backup's time
(``within_rpo_of_backup``) or the same query on the live database (``compare_to_source``, also
read-only, in a session that defaults to read-only too).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from app import redact
from app.drills.report import DrillReport, IntegrityResult, show
from app.drills.spec import DrillSpec, Expectation, IntegrityCheck
from app.drills.target import connect
from app.units import format_duration, parse_timestamp


class Integrity:
    """Runs ``spec.integrity`` over the restored database ``guard`` (an open connection) and
    appends each result to ``report.integrity`` as it comes, so a timeout keeps what was found.
    ``backup_time`` is when the restored backup was taken; ``source_rpo`` the RPO its source
    reported, used when the drill sets none.
    """

    def __init__(
        self,
        spec: DrillSpec,
        report: DrillReport,
        guard: Any,
        backup_time: datetime,
        source_rpo: float | None,
    ) -> None:
        self.spec = spec
        self.report = report
        self.guard = guard
        self.backup_time = backup_time
        self.source_rpo = source_rpo

    async def run(self) -> None:
        source: Any = None
        source_error: str | None = None
        newest_rows: list[datetime] = []
        try:
            for check in self.spec.integrity:
                result = await self.run_check(check)
                if check.compare_to_source is not None and result.passed is not False:
                    if source is None and source_error is None:
                        try:
                            source = await self.connect_source()
                        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                            source_error = redact.scrub(str(exc))[:300]
                    result = await self.compare(check, result, source, source_error)
                if check.within_rpo_of_backup and isinstance(result.observed, datetime):
                    newest_rows.append(result.observed)
                self.report.integrity.append(result)
        finally:
            if source is not None:
                await source.close()
        if newest_rows:
            loss = (self.backup_time - max(newest_rows)).total_seconds()
            self.report.data_loss_seconds = max(0.0, loss)

    async def run_check(self, check: IntegrityCheck) -> IntegrityResult:
        """The restored database's value, judged unless the check compares with the source."""
        try:
            async with self.guard.transaction(readonly=True):
                value = await self.guard.fetchval(check.sql)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return IntegrityResult(
                check.name,
                False,
                None,
                check.expectation,
                f"The query failed on the restored database: {redact.scrub(str(exc))[:300]}; "
                "the table may be missing from the backup, or the query is wrong.",
            )
        if check.expect is not None:
            return self.judge_expect(check, value)
        if check.within_rpo_of_backup:
            return self.judge_freshness(check, value)
        # compare_to_source: judged once the source's value is known.
        return IntegrityResult(check.name, True, value, check.expectation, "")

    def judge_expect(self, check: IntegrityCheck, value: Any) -> IntegrityResult:
        assert check.expect is not None
        number = _number(value)
        if number is None:
            return IntegrityResult(
                check.name,
                False,
                value,
                check.expect,
                f"The query returned {value!r}, not a number; expected {check.expect}.",
            )
        if Expectation.parse(check.expect).holds(number):
            return IntegrityResult(
                check.name, True, value, check.expect, f"{show(value)} {check.expect}"
            )
        return IntegrityResult(
            check.name,
            False,
            value,
            check.expect,
            f"Observed {show(value)}, expected {check.expect}; the backup may be missing data.",
        )

    def judge_freshness(self, check: IntegrityCheck, value: Any) -> IntegrityResult:
        # Only a time the query returned counts: a count or an id would pass as unix seconds.
        newest = parse_timestamp(value) if isinstance(value, date) else None
        rpo = self.spec.rpo if self.spec.rpo is not None else self.source_rpo
        if newest is None:
            return IntegrityResult(
                check.name,
                False,
                value,
                check.expectation,
                f"The query returned {value!r}, not a timestamp; the table may be empty in the "
                "backup.",
            )
        if rpo is None:
            return IntegrityResult(
                check.name,
                False,
                newest,
                check.expectation,
                "No RPO is known for this drill's source; set rpo on the drill.",
            )
        age = (self.backup_time - newest).total_seconds()
        if age <= rpo:
            return IntegrityResult(
                check.name,
                True,
                newest,
                check.expectation,
                f"Newest row is {format_duration(max(age, 0.0))} older than the backup "
                f"(RPO {format_duration(rpo)}).",
            )
        return IntegrityResult(
            check.name,
            False,
            newest,
            check.expectation,
            f"Newest row is {format_duration(age)} older than the backup (RPO "
            f"{format_duration(rpo)}); the application stopped writing, or the backup holds "
            "stale data.",
        )

    async def connect_source(self) -> Any:
        assert self.spec.source_dsn is not None
        # Read-only by default for the session and per transaction: a drill never writes there.
        return await connect(
            self.spec.source_dsn.get_secret_value(),
            server_settings={
                "default_transaction_read_only": "on",
                "application_name": "drwatch-drill",
            },
        )

    async def compare(
        self, check: IntegrityCheck, restored: IntegrityResult, source: Any, error: str | None
    ) -> IntegrityResult:
        assert check.compare_to_source is not None
        tolerance = check.compare_to_source.tolerance
        if source is None:
            restored.passed = False
            restored.message = f"Cannot connect to the source database: {error}."
            return restored
        try:
            async with source.transaction(readonly=True):
                live = await source.fetchval(check.sql)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            restored.passed = False
            restored.message = (
                f"The query failed on the source database: {redact.scrub(str(exc))[:300]}."
            )
            return restored
        restored.source_value = live
        restored_number, live_number = _number(restored.observed), _number(live)
        if restored_number is None or live_number is None:
            restored.passed = False
            restored.message = (
                f"Cannot compare {restored.observed!r} with the source's {live!r}: both must be "
                "numbers."
            )
            return restored
        difference = abs(restored_number - live_number)
        allowed = tolerance * abs(live_number)
        restored.passed = difference <= allowed or math.isclose(restored_number, live_number)
        relative = difference / abs(live_number) if live_number else math.inf
        if restored.passed:
            restored.message = (
                f"{show(restored.observed)} vs {show(live)} on the source "
                f"(tolerance {tolerance:.0%})."
            )
        else:
            restored.message = (
                f"Restored {show(restored.observed)} vs {show(live)} on the source, "
                f"{relative:.1%} apart (tolerance {tolerance:.0%}); the backup is missing data "
                "or is older than expected."
            )
        return restored


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None
