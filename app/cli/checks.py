"""``drwatch check``, ``backup-status`` and ``dr-readiness``: checks run once, the verdict as
the exit code."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from app.checks.base import Status
from app.cli.common import (
    EXIT_CODES,
    EXIT_USAGE,
    MAX_PARALLEL,
)
from app.config import Config, load_config
from app.monitor import Snapshot
from app.runtime import Runtime
from app.settings import Settings
from app.units import format_duration, json_default


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    unknown = [n for n in args.names if config.check(n) is None]
    if unknown:
        known = ", ".join(c.name for c in config.checks) or "none configured"
        for name in unknown:
            print(f"drwatch check: no check named {name!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    # The table (or JSON) is the report; state-change lines would only repeat it on stderr.
    logging.getLogger("drwatch.monitor").setLevel(logging.WARNING)
    snapshot, drills = asyncio.run(
        run_once(config, settings, names=args.names, backups=args.backups_only)
    )
    if args.backups_only:
        return _print_backup_status(snapshot, drills, json_output=args.json)
    if args.json:
        print(json.dumps(_report(snapshot), indent=2, default=json_default))
    else:
        print(_table(snapshot))
    return EXIT_CODES[snapshot.status]


async def run_once(
    config: Config, settings: Settings, *, names: Sequence[str] = (), backups: bool = False
) -> tuple[Snapshot, list[dict[str, Any]]]:
    """Run the selected checks once, concurrently: the snapshot, and each drill's summary (with
    its last run from the store) whose source was among them.
    """
    selected = config.only(
        c.name
        for c in config.checks
        if (not names or c.name in names) and (not backups or c.check_class.is_backup_source)
    )
    runtime = Runtime.build(settings, selected, serve=False)
    try:
        # Ad hoc windows opened elsewhere count here too (a store that is down: config only),
        # without creating an SQLite store where there is none yet.
        if _store_may_exist(settings.state_url):
            await runtime.maintenance.refresh(runtime.store)
        if backups:
            await runtime.drills.load_history()
        snapshot = await runtime.run_checks(runtime.checks, parallel=MAX_PARALLEL)
        return snapshot, runtime.drills.summaries()
    finally:
        await runtime.stop()


def readiness_command(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    if not config.readiness_checks():
        print(
            "drwatch dr-readiness: no standby-region prerequisites are configured; list checks "
            "under dr_readiness: {checks: [...]} or label them region: dr.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    logging.getLogger("drwatch.monitor").setLevel(logging.WARNING)
    report = asyncio.run(_readiness_once(config, settings))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_readiness_text(report))
    return EXIT_CODES[Status(report["status"])]


async def _readiness_once(config: Config, settings: Settings) -> dict[str, Any]:
    """Run the prerequisites once and read the drills' history from the store."""
    from app.readiness import dr_readiness, drill_runs

    runtime = Runtime.build(settings, config, serve=False)
    try:
        await runtime.drills.load_history()
        names = [c.name for c in config.readiness_checks()]
        snapshot = await runtime.run_checks(names, parallel=MAX_PARALLEL)
        report = dr_readiness(snapshot, config, drill_runs(runtime.drills))
    finally:
        await runtime.stop()
    assert report is not None
    return report


def _readiness_text(report: dict[str, Any]) -> str:
    lines = [f"standby region: {'READY' if report['ready'] else 'NOT READY'} ({report['status']})"]
    for check in report["checks"]:
        lines.append(f"  [{check['status']:<7}] {check['name']}: {check['output']}")
    cost = report["if_failed_over_now"]
    loss = cost["expected_data_loss_seconds"]
    lines.append("if failed over now:")
    lines.append(
        f"  data loss: {format_duration(loss) if loss is not None else 'unknown'} "
        f"({cost['basis']['data_loss']})"
    )
    lines.append(
        f"  recovery:  {format_duration(cost['expected_recovery_seconds'])} "
        f"({cost['basis']['recovery']})"
    )
    if report["blockers"]:
        lines.append("blockers:")
        lines.extend(f"  - {blocker}" for blocker in report["blockers"])
    return "\n".join(lines)


def _store_may_exist(url: str) -> bool:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    return bool(parsed.database) and Path(str(parsed.database)).exists()


def _print_backup_status(
    snapshot: Snapshot, drills: list[dict[str, Any]], *, json_output: bool
) -> int:
    from app.backup_status import backup_status

    report = backup_status(snapshot, drills)
    if json_output:
        print(json.dumps(report, indent=2, default=json_default))
    else:
        rows = [("SOURCE", "STATUS", "NEWEST BACKUP", "AGE", "RPO", "VERIFIED")]
        for source in report["sources"]:
            age, rpo = source["age_seconds"], source["rpo_seconds"]
            rows.append(
                (
                    source["name"],
                    source["verdict"],
                    source["last_backup_at"] or "-",
                    format_duration(age) if age is not None else "-",
                    format_duration(rpo) if rpo is not None else "-",
                    {True: "yes", False: "FAILED", None: "-"}[source["verified"]],
                )
            )
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
        for source in report["sources"]:
            if source["verdict"] != "pass":
                print(f"\n{source['name']}: {source['output']}")
        for drill in report["drills"]:
            run = drill["last_run"]
            when = run["finished_at"] if run else "never"
            result = run["result"] if run else "-"
            print(f"\ndrill {drill['name']}: last run {when} ({result})")
        if "output" in report:
            print(f"\n{report['output']}")
        print(f"\nverdict: {report['status']}")
    return EXIT_CODES[Status(report["status"])]


def _report(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "status": snapshot.status.value,
        "checks": [state.as_dict() for state in snapshot.checks.values()],
    }


def _table(snapshot: Snapshot) -> str:
    rows = [("CHECK", "TYPE", "CRITICALITY", "STATUS", "TIME", "OUTPUT")]
    for state in snapshot.checks.values():
        result = state.last_result
        rows.append(
            (
                state.name,
                state.config.type,
                state.config.criticality,
                state.effective.value if state.effective else "pending",
                f"{result.duration * 1000:.0f}ms" if result else "-",
                state.output,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) for row in rows
    ]
    lines = [f"{line}  {row[5]}" for line, row in zip(lines, rows, strict=True)]
    lines.append(f"\nverdict: {snapshot.status.value}")
    return "\n".join(lines)
