"""The contract every check type follows.

A check type is a subclass of :class:`Check` with its own pydantic ``Params`` model. drwatch builds
one instance per configured check, calls :meth:`Check.run` on a schedule through
:func:`app.runner.run_check`, and calls :meth:`Check.close` once at shut-down.

A check raises :class:`~app.errors.CheckFailed` (re-exported here for the check modules) when
the dependency is unhealthy; ``message`` says what is wrong for a person, ``permanent`` says
whether retrying can help (bad credentials, a missing bucket), ``context`` carries data (never
secrets). Any other exception escaping ``run()`` is a bug in the check or an unexpected fault; the
runner turns it into a ``fail`` Result that names the exception type, so a check never takes the
scheduler down. The whole exception tree is drawn in :mod:`app.errors`.

What a type can do is said by class attributes, which config, API and metrics read instead of
naming types: ``is_backup_source``, ``restorable`` (with ``restore_kind`` and
:meth:`Check.restorable_instance`), ``accepts_pushes`` (with :meth:`Check.push_token`), ``gauges``,
``failover_data_loss_key`` (with ``failover_data_loss_rank`` and ``failover_data_loss_basis``),
:meth:`Check.production_dsn` and :meth:`Check.replication_lag_threshold`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from app.errors import CheckFailed as CheckFailed
from app.units import rfc3339

if TYPE_CHECKING:
    from app.store.repository import Store

Criticality = Literal["critical", "degraded", "info"]


class Status(enum.StrEnum):
    """Result of one probe, and the effective state of a check (pass < warn < fail)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def worst(cls, *statuses: Status) -> Status:
        return max(statuses, key=lambda s: s.severity, default=cls.PASS)


_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


class Params(BaseModel):
    """Base of every check type's parameters. Unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Result:
    """What one run of a check observed.

    ``output`` is one sentence a person can act on. ``details`` holds type-specific, JSON-safe
    values. The keys a type lists in ``Check.gauges`` become metrics (``replication_lag_seconds``,
    ``tls_cert_expiry_timestamp_seconds``, ``wal_archive_age_seconds``...), and backup sources
    report ``last_backup_at`` (ISO-8601), ``age_seconds``, ``rpo_seconds``, ``size_bytes``,
    ``verified``, ``verified_by``, ``location``.
    """

    status: Status
    output: str
    observed_value: float | None = None
    observed_unit: str | None = None
    duration: float = 0.0
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    details: Mapping[str, Any] = field(default_factory=dict)
    permanent: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "output": self.output,
            "observedValue": self.observed_value,
            "observedUnit": self.observed_unit,
            "duration": round(self.duration, 6),
            "time": rfc3339(self.time),
            "details": dict(self.details),
            "permanent": self.permanent,
        }


@dataclass(frozen=True)
class RestorableInstance:
    """A managed database instance whose snapshots a drill restores into a temporary instance."""

    db_instance_identifier: str
    region: str | None = None
    endpoint_url: str | None = None


class Resources(Protocol):
    """What :class:`app.checks._shared.SharedResources` offers a check. Declared here, not
    imported, so this module (which every check imports) depends on no engine."""

    def http(self) -> Any:
        """The runtime's :class:`app.checks._http.HttpPool`."""


@dataclass(frozen=True)
class CheckContext:
    """Shared resources a check may use, handed to every check by the service before it runs.

    ``store`` is None when a check runs outside the service (``drwatch check`` without a store).
    ``resources`` are the pools the checks of one runtime share (closed by the runtime); a check
    built without them keeps private ones and closes them in ``close()``.
    """

    store: Store | None = None
    service_id: str = "drwatch"
    resources: Resources | None = None


P = TypeVar("P", bound=Params)


class Check(ABC, Generic[P]):
    """One configured probe of one dependency.

    Subclasses set ``Params`` (their pydantic model) and may set ``default_criticality``,
    ``default_interval`` and ``default_timeout`` (seconds). ``run()`` returns a :class:`Result`
    (pass or warn, or fail when it wants to report details with the failure) or raises
    :class:`CheckFailed`. It must not catch ``asyncio.CancelledError``: the runner cancels it
    when the timeout passes. ``close()`` releases pooled resources and is called once.
    """

    Params: ClassVar[type[Params]]
    default_criticality: ClassVar[Criticality] = "critical"
    default_interval: ClassVar[float] = 30.0
    default_timeout: ClassVar[float] = 10.0
    # Flap damping: failing runs before the check fails, passing runs before it recovers.
    default_fall: ClassVar[int] = 3
    default_rise: ClassVar[int] = 2
    # Backup sources report last_backup_at/age/rpo/size/verified in details; they appear in
    # /api/backup-status and the drwatch_backup_* metrics.
    is_backup_source: ClassVar[bool] = False
    # A restore drill can restore the newest backup this source reports (its details'
    # ``location`` names a pg_dump file or object drwatch can fetch).
    restorable: ClassVar[bool] = False
    # How a drill restores it: "dump" (pg_restore of the file its details' ``location`` names,
    # into a scratch server) or "instance" (the cloud restores a snapshot into a temporary
    # instance, as a failover would; see restorable_instance()).
    restore_kind: ClassVar[Literal["dump", "instance"]] = "dump"
    # Jobs push events for it to POST /api/backups/{name}/ping|start|fail, authenticated with
    # push_token(params).
    accepts_pushes: ClassVar[bool] = False
    # Details key -> drwatch_* gauge (declared in app.metrics) that exports its value per check.
    gauges: ClassVar[Mapping[str, str]] = {}
    # Standby readiness (/api/dr-readiness): the details key saying how much data failing over to
    # what the check watches would lose now, either seconds (a lag) or an ISO-8601 time (a
    # recovery point, whose age is the loss); ``failover_data_loss_basis`` says what the figure
    # is. The lowest rank reported wins: a replica's lag is more precise than a backup's age.
    failover_data_loss_key: ClassVar[str | None] = None
    failover_data_loss_rank: ClassVar[int] = 100
    failover_data_loss_basis: ClassVar[str] = ""

    def __init__(
        self, name: str, params: P, *, timeout: float, context: CheckContext | None = None
    ) -> None:
        self.name = name
        self.params = params
        self.timeout = timeout
        self.context = context or CheckContext()

    @classmethod
    def push_token(cls, params: P) -> str | None:
        """The bearer token a pushing job must send; None when the type takes no pushes."""
        return None

    @classmethod
    def production_dsn(cls, params: P) -> str | None:
        """The database this check watches, which a restore drill must never target; or None."""
        return None

    @classmethod
    def restorable_instance(cls, params: P) -> RestorableInstance | None:
        """The instance a drill restores when ``restore_kind`` is "instance"; else None."""
        return None

    @classmethod
    def replication_lag_threshold(cls, params: P) -> float | None:
        """The replication lag (seconds) past which the check fails, when it has one."""
        return None

    @abstractmethod
    async def run(self) -> Result:
        """Probe the dependency once. Raises CheckFailed when it is unhealthy."""

    async def close(self) -> None:
        """Release connections or clients kept between runs."""

    def secrets(self) -> list[str]:
        """Secret strings of this check, so logs and outputs can be scrubbed of them."""
        return collect_secrets(self.params)

    @staticmethod
    def passed(
        output: str,
        *,
        observed_value: float | None = None,
        observed_unit: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Result:
        return Result(Status.PASS, output, observed_value, observed_unit, details=details or {})

    @staticmethod
    def warned(
        output: str,
        *,
        observed_value: float | None = None,
        observed_unit: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Result:
        return Result(Status.WARN, output, observed_value, observed_unit, details=details or {})

    @staticmethod
    def failed(
        output: str,
        *,
        observed_value: float | None = None,
        observed_unit: str | None = None,
        details: Mapping[str, Any] | None = None,
        permanent: bool = False,
    ) -> Result:
        return Result(
            Status.FAIL,
            output,
            observed_value,
            observed_unit,
            details=details or {},
            permanent=permanent,
        )


def collect_secrets(model: BaseModel) -> list[str]:
    """What to scrub of every SecretStr in a params model: the value, or for a URL its password
    (see :func:`app.redact.secret_parts`).
    """
    from pydantic import SecretStr

    from app.redact import secret_parts

    found: list[str] = []
    for value in model.__dict__.values():
        if isinstance(value, SecretStr):
            found.extend(secret_parts(value.get_secret_value()))
        elif isinstance(value, BaseModel):
            found.extend(collect_secrets(value))
    return found
