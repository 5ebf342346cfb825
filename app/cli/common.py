"""What the ``drwatch`` subcommands share: exit codes and limits."""

from __future__ import annotations

from app.checks.base import Status

EXIT_CODES = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
EXIT_CONFIG = 2
# sysexits.h EX_USAGE: the command line itself is wrong (an unknown check name), which must not
# read as a failing verdict (2) to a cron job or a DR script.
EXIT_USAGE = 64
MAX_PARALLEL = 50


EXIT_DRILL_BUSY = 3


# sysexits.h EX_UNAVAILABLE: the state store could not be reached, so nothing was changed.
EXIT_UNAVAILABLE = 69
