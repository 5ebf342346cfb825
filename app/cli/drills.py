"""``drwatch drill run``: a restore drill in the foreground, its progress on stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from typing import Any, TextIO

from app.cli.common import (
    EXIT_DRILL_BUSY,
)
from app.config import Config, load_config
from app.errors import ConfigError
from app.runtime import Runtime
from app.settings import Settings
from app.units import format_duration, json_default


def drill_run_command(args: argparse.Namespace, settings: Settings) -> int:
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
