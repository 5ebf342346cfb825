"""Every exception drwatch raises on purpose, in one tree.

::

    DrwatchError                  base; catch it to tell drwatch's own errors from bugs
    ├── ConfigError               settings or configuration are invalid; ``errors`` lists every
    │                             (field path, message) pair at once; the CLI exits with code 2
    ├── CheckFailed               a dependency is unhealthy; raised by a check's ``run()`` and
    │                             turned into a ``fail`` Result by the runner; ``permanent`` says
    │                             whether retrying can help, ``context`` carries data (no secrets)
    ├── CorruptDump               a backup dump is not what it claims to be (truncated, not a
    │                             pg_dump archive, a broken compressed stream); the message says how
    ├── DrillFailed               a step of a restore drill failed; the drill run is a ``fail``
    ├── DrillBusy                 the drill is already running, here or on another replica (its
    │                             lease is held); the API answers 409
    ├── UnknownDrill              no drill with that name is configured; also a KeyError, so
    │                             lookups by name may catch either
    ├── MaintenanceConflict       an ad hoc maintenance window cannot start or end as asked (one
    │                             of that name is open, or it is a configured one); the API
    │                             answers 409
    ├── UnknownMaintenanceWindow  no open ad hoc maintenance window has that name; the API
    │                             answers 404
    └── StoreUnavailable          the state store could not be read or written in time; the API
                                  answers 503 (with ``Retry-After`` when a retry soon can succeed)

Any other exception is a bug or an unexpected fault: the runner turns one escaping a check into a
``fail`` Result naming the exception type, so it never takes the scheduler down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DrwatchError(Exception):
    """Base of every error drwatch raises on purpose."""


class ConfigError(DrwatchError):
    """The configuration is invalid. ``errors`` lists (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "configuration") -> None:
        self.errors = errors
        self.source = source
        super().__init__(self.render())

    @staticmethod
    def describe(error: Mapping[str, Any]) -> str:
        """One pydantic validation error as a person reads it ("unknown key", ...)."""
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            return "unknown key"
        if error["type"] == "missing":
            return "required but missing"
        return message.removeprefix("Value error, ")

    def render(self) -> str:
        lines = [f"{self.source} is invalid ({len(self.errors)} error(s)):"]
        lines += [f"  {path}: {message}" for path, message in self.errors]
        return "\n".join(lines)


class CheckFailed(DrwatchError):
    """The dependency is unhealthy. ``message`` is for a person and never contains a secret."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        context: Mapping[str, Any] | None = None,
        observed_value: float | None = None,
        observed_unit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.context: Mapping[str, Any] = context or {}
        self.observed_value = observed_value
        self.observed_unit = observed_unit


class CorruptDump(DrwatchError):
    """The dump is not what it claims to be; the message says how, for a person."""


class DrillFailed(DrwatchError):
    """A step of the drill failed; ``message`` is one sentence for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DrillBusy(DrwatchError):
    """The drill is already running, here or on another replica (its lease is held)."""


class UnknownDrill(DrwatchError, KeyError):
    """No drill with that name is configured."""


class MaintenanceConflict(DrwatchError):
    """The ad hoc window cannot start or end as asked; the message says why, for a person."""


class UnknownMaintenanceWindow(DrwatchError, KeyError):
    """No open ad hoc maintenance window has that name."""

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; this is a sentence for a person.
        return str(self.args[0]) if self.args else ""


class StoreUnavailable(DrwatchError):
    """The state store did not answer; ``message`` tells the client what it could not get.

    ``retry_after`` (seconds) is set when the client should retry soon, e.g. a backup job whose
    heartbeat was not recorded; the API sends it as ``Retry-After``.
    """

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
