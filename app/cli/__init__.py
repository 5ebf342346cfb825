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
import sys
from collections.abc import Sequence

from app import logs
from app.cli.checks import check_command, readiness_command
from app.cli.common import EXIT_CONFIG
from app.cli.drills import drill_run_command
from app.cli.history import incidents_command, maintenance_command
from app.config import load_config
from app.errors import ConfigError
from app.settings import Settings, load_settings


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
    check.set_defaults(handler=check_command, backups_only=False)

    backup = commands.add_parser("backup-status", help="run the backup sources once")
    backup.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backup.set_defaults(handler=check_command, backups_only=True, names=[])

    readiness = commands.add_parser(
        "dr-readiness", help="could the standby region take over now, and at what cost"
    )
    readiness.add_argument("--json", action="store_true", help="print JSON instead of text")
    readiness.set_defaults(handler=readiness_command)

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
    drill_run.set_defaults(handler=drill_run_command)

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
    incidents.set_defaults(handler=incidents_command)

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
    start.set_defaults(handler=maintenance_command, action="start")
    end = maintenance_commands.add_parser("end", help="end an ad hoc maintenance window now")
    end.add_argument("name")
    end.set_defaults(handler=maintenance_command, action="end")
    listing = maintenance_commands.add_parser("list", help="open and upcoming windows (7 days)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=maintenance_command, action="list")

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
