"""``drwatch incidents`` and ``drwatch maintenance``: the shared history from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.cli.common import (
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from app.config import Config, load_config
from app.errors import ConfigError, StoreUnavailable
from app.runtime import Runtime
from app.settings import Settings
from app.units import format_duration


def incidents_command(args: argparse.Namespace, settings: Settings) -> int:
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


def maintenance_command(args: argparse.Namespace, settings: Settings) -> int:
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
