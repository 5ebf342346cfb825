"""The ``drwatch`` command.

    drwatch serve                 run the service (uvicorn)
    drwatch check [--json] [NAME ...]
                                  run every (or the named) check once; exit 0 pass, 1 warn,
                                  2 fail, 64 an unknown check name
    drwatch backup-status [--json] run the backup sources once; same exit codes
    drwatch dr-readiness [--json] run the standby region's prerequisites once: is it ready, and
                                  what would failing over now cost; exit 0 ready, 1 ready with
                                  warnings, 2 not ready, 64 none configured
    drwatch drill run NAME        run a restore drill now; exit 0 pass, 1 fail, 3 running elsewhere
    drwatch incidents [--json]    incidents from the shared history; exit 1 when the store is down
    drwatch config validate       validate the configuration; exit 2 when invalid
    drwatch db upgrade            apply the state store's migrations
    drwatch maintenance start NAME (--duration D | --end TIME) --reason TEXT [--check C ...]
                                  open an ad hoc maintenance window now, for every replica
    drwatch maintenance end NAME  end it early
    drwatch maintenance list [--json]
                                  open and upcoming windows (next 7 days)

Configuration errors print every problem by field path and exit with code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from app import logs
from app.checks.base import Status
from app.config import Config, load_config
from app.errors import ConfigError, StoreUnavailable
from app.monitor import Snapshot
from app.runtime import Runtime
from app.settings import Settings, load_settings
from app.units import format_duration, json_default

EXIT_CODES = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
EXIT_CONFIG = 2
# sysexits.h EX_USAGE: the command line itself is wrong (an unknown check name), which must not
# read as a failing verdict (2) to a cron job or a DR script.
EXIT_USAGE = 64
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

    readiness = commands.add_parser(
        "dr-readiness", help="could the standby region take over now, and at what cost"
    )
    readiness.add_argument("--json", action="store_true", help="print JSON instead of text")
    readiness.set_defaults(handler=_dr_readiness)

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

    incidents = commands.add_parser(
        "incidents", help="list incidents from the state store's history, newest first"
    )
    incidents.add_argument("--json", action="store_true", help="print JSON instead of a table")
    incidents.add_argument("--state", choices=("open", "resolved"), help="only these")
    incidents.add_argument("--check", help="only incidents of (or involving) this check")
    incidents.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    incidents.add_argument(
        "--all", action="store_true", help="every replica's view merged (default: this one)"
    )
    incidents.set_defaults(handler=_incidents)

    maintenance = commands.add_parser("maintenance", help="maintenance windows")
    maintenance_commands = maintenance.add_subparsers(dest="maintenance_command", required=True)
    start = maintenance_commands.add_parser(
        "start", help="open an ad hoc maintenance window now (stored: every replica honours it)"
    )
    start.add_argument("name", help="the window's name (used to end it)")
    length = start.add_mutually_exclusive_group(required=True)
    length.add_argument("--duration", help="how long it stays open, e.g. 2h")
    length.add_argument("--end", help="when it closes, RFC 3339, e.g. 2026-03-01T04:00:00Z")
    start.add_argument("--reason", required=True, help="what the work is, for the people paged")
    start.add_argument(
        "--check",
        dest="checks",
        action="append",
        help="a check name or glob pattern it covers (repeatable; default every check)",
    )
    start.add_argument(
        "--failover", action="store_true", help="let /health answer 503 for failing checks"
    )
    start.set_defaults(handler=_maintenance, action="start")
    end = maintenance_commands.add_parser("end", help="end an ad hoc maintenance window now")
    end.add_argument("name")
    end.set_defaults(handler=_maintenance, action="end")
    listing = maintenance_commands.add_parser("list", help="open and upcoming windows (7 days)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_maintenance, action="list")

    db = commands.add_parser("db", help="state store commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(handler=_db_upgrade)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.main import create_app
    from app.server import serve

    config = load_config(settings)
    app = create_app(settings, config)
    serve(app, settings, host=args.host or settings.host, port=args.port or settings.port)
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
    from app.drills.report import render_report

    runtime = Runtime.build(settings, config, serve=False)
    progress = _Progress(sys.stderr)
    spec = runtime.drills.specs[name]
    try:
        await runtime.migrate()
        progress(f"finding the newest backup of {spec.source} ...")
        await runtime.scheduler.run_now(spec.source)
        progress(f"{spec.source}: {runtime.monitor.snapshot.checks[spec.source].output}")
        report = await runtime.drills.run(name, progress=progress)
    finally:
        progress.done()
        await runtime.stop()
    if report is not None:
        # The report alone goes to stdout, so `--json` output can be piped into jq.
        print(json.dumps(report.as_dict(), indent=2, default=json_default) if json_output else "")
        if not json_output:
            print(render_report(report))
    return report


class _Progress:
    """Progress lines on stderr: one line rewritten in place on a terminal, plain lines otherwise
    (a log file or CI keeps every step).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.in_place = stream.isatty()
        self.started = time.monotonic()
        self.pending = False

    def __call__(self, line: str) -> None:
        elapsed = time.monotonic() - self.started
        text = f"[{format_duration(round(elapsed))}] {line}"
        if self.in_place:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write(f"\r\033[K{text[:width]}")
            self.pending = True
        else:
            self.stream.write(f"  {text}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.pending:
            self.stream.write("\n")
            self.stream.flush()
            self.pending = False


def _incidents(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    return asyncio.run(_print_incidents(config, settings, args))


async def _print_incidents(config: Config, settings: Settings, args: argparse.Namespace) -> int:
    from app.history.incidents import select_incidents

    runtime = Runtime.build(settings, config, serve=False)
    try:
        await runtime.migrate()
        read = await runtime.history.refresh()
    finally:
        await runtime.stop()
    if not read:
        print(
            f"drwatch incidents: cannot read the state store ({runtime.history.last_error}).",
            file=sys.stderr,
        )
        return 1
    scope = "all" if args.all else "self"
    now = time.time()
    selected = select_incidents(
        runtime.history.view(scope).incidents,
        state=args.state,
        check=args.check,
        limit=max(1, args.limit),
    )
    rows = [incident.as_dict(now) for incident in selected]
    if args.json:
        print(json.dumps({"scope": scope, "incidents": rows}, indent=2))
        return 0
    table = [("STARTED", "SCOPE", "CHECK", "STATE", "DURATION", "DETECTED AFTER", "FAILOVER")]
    for row in rows:
        table.append(
            (
                row["started_at"],
                row["scope"],
                row["check"] or "(service)",
                row["state"],
                format_duration(row["duration_seconds"]),
                format_duration(row["time_to_detect_seconds"]),
                "yes" if row["failover"] else "no",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for index, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if index:
            print(f"    {rows[index - 1]['output']}")
    if not rows:
        print("no incidents in the last 90 days")
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from app.redact import redact_url
    from app.store.db import upgrade

    where = redact_url(settings.state_url)
    try:
        upgrade(settings.state_url, args.revision)
    except Exception as exc:  # every failure becomes one sentence and exit 1
        print(f"drwatch db upgrade: {_store_failure(exc, where)}", file=sys.stderr)
        return 1
    print(f"state store {where} is at revision {args.revision}")
    return 0


def _store_failure(exc: BaseException, where: str) -> str:
    """Why the state store could not be migrated, as one sentence a person can act on."""
    from app import redact

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"} or (
        "password authentication failed" in text
    ):
        return (
            f"the state store at {where} rejected the user or password; fix DRWATCH_STATE_URL "
            "(or DRWATCH_STATE_URL_FILE)."
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return (
            f"nothing accepts connections at {where} (connection refused); start the state "
            "store or fix the host and port in DRWATCH_STATE_URL."
        )
    if any(isinstance(e, TimeoutError | OSError) for e in chain):
        return (
            f"the state store at {where} cannot be reached ({type(chain[-1]).__name__}); check "
            "the host in DRWATCH_STATE_URL and the network."
        )
    first_line = redact.scrub(str(chain[-1])).strip().splitlines()[:1]
    detail = first_line[0][:200] if first_line else type(chain[-1]).__name__
    return f"migrating the state store at {where} failed: {detail}."


# sysexits.h EX_UNAVAILABLE: the state store could not be reached, so nothing was changed.
EXIT_UNAVAILABLE = 69


def _maintenance(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings)
    try:
        return asyncio.run(_run_maintenance(args, settings, config))
    except StoreUnavailable as exc:
        print(f"drwatch maintenance: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE


async def _run_maintenance(args: argparse.Namespace, settings: Settings, config: Config) -> int:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from app.errors import MaintenanceConflict, UnknownMaintenanceWindow
    from app.history.maintenance import MaintenanceSchedule, WindowRequest
    from app.redact import redact_url, scrub
    from app.store.db import upgrade
    from app.store.repository import Store

    schedule = MaintenanceSchedule(
        config.maintenance, ((c.name, c.criticality) for c in config.checks)
    )
    store = Store.from_url(settings.state_url, settings.service_id)
    where = redact_url(settings.state_url)
    now = datetime.now(UTC)
    try:
        if settings.migrations_on_start:
            await asyncio.to_thread(upgrade, settings.state_url)
        if args.action == "list":
            await schedule.refresh(store, now=now, strict=True)
            return _print_windows(schedule.listing(now), json_output=args.json)
        if args.action == "end":
            try:
                window = await schedule.end(store, args.name, now=now)
            except (UnknownMaintenanceWindow, MaintenanceConflict) as exc:
                print(f"drwatch maintenance end: {exc}", file=sys.stderr)
                return 1
            print(f"maintenance window {window.name} ended at {now:%Y-%m-%dT%H:%M:%SZ}")
            return 0
        raw = {
            "name": args.name,
            "checks": args.checks,
            "duration": args.duration,
            "end": args.end,
            "reason": args.reason,
            "failover": args.failover,
        }
        try:
            request = WindowRequest.model_validate({k: v for k, v in raw.items() if v is not None})
        except ValidationError as exc:
            problems = [
                (".".join(map(str, e["loc"])), ConfigError.describe(e)) for e in exc.errors()
            ]
        else:
            problems = schedule.problems(request, now)
        if problems:
            for field_name, message in problems:
                print(f"drwatch maintenance start: {field_name}: {message}", file=sys.stderr)
            return EXIT_USAGE
        try:
            window = await schedule.start(store, request, now=now)
        except MaintenanceConflict as exc:
            print(f"drwatch maintenance start: {exc}", file=sys.stderr)
            return 1
        assert window.end is not None
        covered = ", ".join(sorted(window.checks)) if window.checks is not None else "every check"
        print(
            f"maintenance window {window.name} open until {window.end:%Y-%m-%dT%H:%M:%SZ} for "
            f"{covered}; every replica sharing {where} honours it within "
            f"{format_duration(settings.maintenance_refresh)}"
        )
        return 0
    except (OSError, SQLAlchemyError) as exc:
        raise StoreUnavailable(
            f"the state store {where} failed: {scrub(f'{type(exc).__name__}: {exc}')[:300]}"
        ) from None
    finally:
        await store.dispose()


def _print_windows(windows: list[dict[str, Any]], *, json_output: bool) -> int:
    if json_output:
        print(json.dumps({"windows": windows}, indent=2))
        return 0
    if not windows:
        print("no maintenance window is open or opens in the next 7 days")
        return 0
    rows = [("NAME", "SOURCE", "START", "END", "CHECKS", "FAILOVER", "STATE")]
    for window in windows:
        checks = window["checks"]
        rows.append(
            (
                window["name"],
                window["source"],
                window["start"],
                window["end"],
                "all" if checks is None else ",".join(checks),
                "yes" if window["failover"] else "no",
                "open" if window["active"] else "upcoming",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
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
        snapshot = await runtime.run_checks(runtime.checks, parallel=_MAX_PARALLEL)
        return snapshot, runtime.drills.summaries()
    finally:
        await runtime.stop()


def _dr_readiness(args: argparse.Namespace, settings: Settings) -> int:
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
        snapshot = await runtime.run_checks(names, parallel=_MAX_PARALLEL)
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


if __name__ == "__main__":
    sys.exit(main())
