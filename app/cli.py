"""The ``drwatch`` command.

    drwatch serve                 run the service (uvicorn)
    drwatch check [--json]        run every check once; exit 0 pass, 1 warn, 2 fail
    drwatch backup-status [--json] run the backup sources once; same exit codes
    drwatch drill run NAME        run a restore drill now; exit 0 pass, 1 fail, 3 running elsewhere
    drwatch config validate       validate the configuration; exit 2 when invalid
    drwatch db upgrade            apply the state store's migrations

Configuration errors print every problem by field path and exit with code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import logs
from app.checks.base import Status
from app.config import Config, ConfigError, Settings, load_config, load_settings
from app.monitor import Monitor, Snapshot
from app.runner import run_check
from app.units import format_duration

EXIT_CODES = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
EXIT_CONFIG = 2
_MAX_PARALLEL = 50


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        code: int = args.handler(args, settings)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drwatch", description="Health and disaster-recovery watchdog."
    )
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", help="listen address (default DRWATCH_HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default DRWATCH_PORT or 8080)")
    serve.set_defaults(handler=_serve)

    check = commands.add_parser("check", help="run every check once and print the verdict")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.add_argument("names", nargs="*", help="only these checks")
    check.set_defaults(handler=_check, backups_only=False)

    backup = commands.add_parser("backup-status", help="run the backup sources once")
    backup.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backup.set_defaults(handler=_check, backups_only=True, names=[])

    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="validate the configuration")
    validate.set_defaults(handler=_validate)

    drill = commands.add_parser("drill", help="restore drill commands")
    drill_commands = drill.add_subparsers(dest="drill_command", required=True)
    drill_run = drill_commands.add_parser(
        "run", help="run a restore drill now, in the foreground, and print its report"
    )
    drill_run.add_argument("name", help="the drill's name (drills: in the configuration)")
    drill_run.add_argument("--json", action="store_true", help="print the report as JSON")
    drill_run.set_defaults(handler=_drill_run)

    db = commands.add_parser("db", help="state store commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(handler=_db_upgrade)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.main import create_app

    config = load_config(settings)
    app = create_app(settings, config)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _validate(_args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    print(f"{config.source}: ok, {len(config.checks)} check(s)")
    for check in config.checks:
        print(
            f"  {check.name:<30} {check.type:<16} {check.criticality:<9} "
            f"every {check.interval:g}s, timeout {check.timeout:g}s"
        )
    return 0


EXIT_DRILL_BUSY = 3


def _drill_run(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    spec = next((d for d in config.drills if d.name == args.name), None)
    if spec is None:
        known = ", ".join(d.name for d in config.drills) or "none configured"
        raise ConfigError([("name", f"no drill named {args.name!r} (known: {known})")], "drill")
    report = asyncio.run(_run_drill(config, settings, spec.name, json_output=args.json))
    if report is None:
        print(
            f"The drill {args.name!r} is running elsewhere (its lease is held); not started.",
            file=sys.stderr,
        )
        return EXIT_DRILL_BUSY
    return 0 if report.passed else 1


async def _run_drill(config: Config, settings: Settings, name: str, *, json_output: bool) -> Any:
    from app.checks.base import CheckContext
    from app.drills.report import render_report
    from app.drills.service import DrillService, backup_from_results
    from app.store.db import upgrade
    from app.store.repository import Store

    if settings.migrations_on_start:
        await asyncio.to_thread(upgrade, settings.state_url)
    spec = next(d for d in config.drills if d.name == name)
    source = config.check(spec.source)
    assert source is not None  # the config loader checked it
    store = Store.from_url(settings.state_url, settings.service_id)
    check = source.build(CheckContext(store=store, service_id=settings.service_id))
    try:
        print(f"finding the newest backup of {source.name} ...", flush=True)
        result = await run_check(check)
        print(f"  {result.status.value}: {result.output}", flush=True)
        pg_bin = os.environ.get("DRWATCH_PG_BIN")
        service = DrillService(
            config.drills,
            store,
            settings.service_id,
            backup_from_results(lambda _n: result.details),
            pg_bin=Path(pg_bin) if pg_bin else None,
        )
        report = await service.run(name, progress=lambda line: print(f"  {line}", flush=True))
    finally:
        await check.close()
        await store.dispose()
    if report is not None:
        print(json.dumps(report.as_dict(), indent=2, default=str) if json_output else "")
        if not json_output:
            print(render_report(report))
    return report


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from app.redact import redact_url
    from app.store.db import upgrade

    upgrade(settings.state_url, args.revision)
    print(f"state store {redact_url(settings.state_url)} is at revision {args.revision}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    # The table (or JSON) is the report; state-change lines would only repeat it on stderr.
    logging.getLogger("drwatch.monitor").setLevel(logging.WARNING)
    snapshot = asyncio.run(run_once(config, settings, names=args.names, backups=args.backups_only))
    if args.backups_only:
        return _print_backup_status(snapshot, config, settings, json_output=args.json)
    if args.json:
        print(json.dumps(_report(snapshot), indent=2, default=str))
    else:
        print(_table(snapshot))
    return EXIT_CODES[snapshot.status]


async def run_once(
    config: Config, settings: Settings, *, names: Sequence[str] = (), backups: bool = False
) -> Snapshot:
    """Run the selected checks once, concurrently, and return the resulting snapshot."""
    from app.checks.base import CheckContext
    from app.store.repository import Store

    selected = [
        c
        for c in config.checks
        if (not names or c.name in names) and (not backups or c.check_class.is_backup_source)
    ]
    unknown = sorted(set(names) - {c.name for c in config.checks})
    if unknown:
        raise ConfigError([("names", f"no check named {n!r}") for n in unknown], "command line")
    store = Store.from_url(settings.state_url, settings.service_id)
    context = CheckContext(store=store, service_id=settings.service_id)
    monitor = Monitor(selected, service_id=settings.service_id)
    checks = [c.build(context) for c in selected]
    limit = asyncio.Semaphore(_MAX_PARALLEL)

    async def one(check: Any) -> None:
        async with limit:
            monitor.record(check.name, await run_check(check))

    try:
        await asyncio.gather(*(one(c) for c in checks))
    finally:
        await asyncio.gather(*(c.close() for c in checks), return_exceptions=True)
        await store.dispose()
    return monitor.snapshot


def _print_backup_status(
    snapshot: Snapshot, config: Config, settings: Settings, *, json_output: bool
) -> int:
    from app.backup_status import backup_status

    drills = asyncio.run(_drill_summaries(config, settings))
    report = backup_status(snapshot, drills)
    if json_output:
        print(json.dumps(report, indent=2, default=str))
    else:
        rows = [("SOURCE", "STATUS", "NEWEST BACKUP", "AGE", "RPO", "VERIFIED")]
        for source in report["sources"]:
            age, rpo = source["age_seconds"], source["rpo_seconds"]
            rows.append(
                (
                    source["name"],
                    source["status"],
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
            if source["status"] != "pass":
                print(f"\n{source['name']}: {source['output']}")
        for drill in report["drills"]:
            run = drill["last_run"]
            when = run["finished_at"] if run else "never"
            result = run["status"] if run else "-"
            print(f"\ndrill {drill['name']}: last run {when} ({result})")
        print(f"\nverdict: {report['status']}")
    return EXIT_CODES[Status(report["status"])]


async def _drill_summaries(config: Config, settings: Settings) -> list[dict[str, Any]]:
    from app.store.repository import Store

    store = Store.from_url(settings.state_url, settings.service_id)
    rows = []
    try:
        for spec in config.drills:
            try:
                last = await store.last_drill_run(spec.name)
            except Exception:
                last = None  # no store (yet): the drill shows as never run from here
            rows.append(
                {
                    "name": spec.name,
                    "source": spec.source,
                    "schedule": spec.schedule,
                    "rto_seconds": spec.rto,
                    "last_run": last["report"] if last else None,
                }
            )
    finally:
        await store.dispose()
    return rows


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


if __name__ == "__main__":
    sys.exit(main())
