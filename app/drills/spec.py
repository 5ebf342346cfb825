"""What a restore drill is configured to do: the pydantic models of ``drills:``.

``app.config`` validates each entry of ``drills:`` as a :class:`DrillSpec`; nothing here touches
a database or a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.checks._net import PostgresDsn, has_valid_port, is_postgres_url
from app.checks.base import collect_secrets
from app.units import NAME_PATTERN, Duration

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)\s*(-?\d+(?:\.\d+)?)\s*$")
_BETWEEN = re.compile(
    r"^\s*between\s+(-?\d+(?:\.\d+)?)\s+and\s+(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Expectation:
    """A parsed ``expect:``: ``>= 1``, ``== 42``, ``between 10 and 20``."""

    operator: str
    low: float
    high: float | None = None

    @classmethod
    def parse(cls, text: str) -> Expectation:
        match = _COMPARISON.match(text)
        if match:
            operator = "==" if match.group(1) == "=" else match.group(1)
            return cls(operator, float(match.group(2)))
        match = _BETWEEN.match(text)
        if match:
            low, high = float(match.group(1)), float(match.group(2))
            if low > high:
                raise ValueError(f"{text!r}: the lower bound is greater than the upper bound")
            return cls("between", low, high)
        raise ValueError(
            f"{text!r} is not an expectation; write it like '>= 1', '== 42' or 'between 10 and 20'"
        )

    def holds(self, value: float) -> bool:
        if self.operator == "between":
            assert self.high is not None
            return self.low <= value <= self.high
        return {
            ">=": value >= self.low,
            "<=": value <= self.low,
            ">": value > self.low,
            "<": value < self.low,
            "==": value == self.low,
            "!=": value != self.low,
        }[self.operator]


class CompareToSource(BaseModel):
    """Compare with the same query on the live database.

    Passes when ``|restored - live| <= tolerance * |live|``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance: float = Field(0.0, ge=0.0, le=1.0)


class IntegrityCheck(BaseModel):
    """One named SQL query over the restored database and what its single value must satisfy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sql: str = Field(min_length=1)
    expect: str | None = None
    within_rpo_of_backup: bool = False
    compare_to_source: CompareToSource | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not a valid name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("expect")
    @classmethod
    def _valid_expect(cls, value: str | None) -> str | None:
        if value is not None:
            Expectation.parse(value)
        return value

    @model_validator(mode="after")
    def _exactly_one_expectation(self) -> IntegrityCheck:
        chosen = [
            key
            for key, is_set in (
                ("expect", self.expect is not None),
                ("within_rpo_of_backup", self.within_rpo_of_backup),
                ("compare_to_source", self.compare_to_source is not None),
            )
            if is_set
        ]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            raise ValueError(
                "set exactly one of expect, within_rpo_of_backup, compare_to_source "
                f"(found: {found})"
            )
        return self

    @property
    def expectation(self) -> str:
        if self.expect is not None:
            return self.expect
        if self.within_rpo_of_backup:
            return "within RPO of backup"
        assert self.compare_to_source is not None
        return f"within {self.compare_to_source.tolerance:.0%} of source"


class RdsRestore(BaseModel):
    """``rds:`` of a drill whose source restores into an instance: where and how the snapshot is
    restored, how drwatch reaches the temporary instance, and how many may exist at once.

    The instance, its region and API endpoint default to the source check's (filled in by
    app.config); ``region`` set to the DR region restores the snapshot copies kept there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    db_instance_identifier: str | None = Field(
        None, description="Instance whose snapshots are restored; default: the source's."
    )
    region: str | None = Field(
        None, description="Region to restore in (us-west-2: the DR copies); default: the source's."
    )
    endpoint_url: str | None = Field(None, description="RDS API endpoint (a test server).")
    snapshot: Literal["automated", "manual", "any"] = Field(
        "automated", description="Which snapshots count when choosing the newest."
    )
    point_in_time: Literal["latest"] | None = Field(
        None, description="latest: restore the latest restorable time instead of a snapshot."
    )
    instance_class: str = Field("db.t3.micro", description="Class of the temporary instance.")
    subnet_group: str | None = Field(None, description="DB subnet group to restore into.")
    security_groups: tuple[str, ...] = Field((), description="VPC security group ids.")
    parameter_group: str | None = Field(None, description="DB parameter group to use.")
    username: str | None = Field(
        None, description="User the integrity queries connect as; default: the master user."
    )
    password_secret_arn: str | None = Field(
        None,
        description="Secrets Manager secret with the password (plain, or JSON with password).",
    )
    password_file: Path | None = Field(None, description="File holding the password instead.")
    secrets_endpoint_url: str | None = Field(
        None, description="Secrets Manager endpoint (a test server)."
    )
    database: str = Field("postgres", description="Database the integrity queries run in.")
    connect_host: str | None = Field(
        None, description="Host to connect to instead of the endpoint (a bastion, PrivateLink)."
    )
    connect_port: int | None = Field(
        None, ge=1, le=65535, description="Port to connect to instead of the endpoint's."
    )
    max_instances: int = Field(
        1, ge=1, le=20, description="Most drill instances that may exist at once, all drills."
    )
    poll_interval: Duration = Field(
        30.0, description="How often the instance's status is read while waiting."
    )
    delete_timeout: Duration = Field(
        1800.0, description="How long deleting the instance may take after the run."
    )

    @model_validator(mode="after")
    def _one_password(self) -> RdsRestore:
        if (self.password_secret_arn is None) == (self.password_file is None):
            raise ValueError("set exactly one of password_secret_arn and password_file")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be greater than zero")
        return self


class DrillSpec(BaseModel):
    """One entry of ``drills:``. Unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str = Field(description="Name of the check whose newest backup to restore.")
    target_dsn: SecretStr | None = Field(
        None, description="Admin connection to a scratch PostgreSQL server (dump restores)."
    )
    rds: RdsRestore | None = Field(
        None, description="Restore into a temporary RDS instance (sources that restore so)."
    )
    source_dsn: SecretStr | None = Field(
        None, description="The live database, used read-only by compare_to_source queries."
    )
    schedule: str = "0 3 1 * *"
    rto: Duration = 4 * 3600.0
    rpo: Duration | None = Field(
        None, description="For within_rpo_of_backup; defaults to the source check's RPO."
    )
    jobs: int = Field(2, ge=1, le=64)
    timeout: Duration = 6 * 3600.0
    integrity: tuple[IntegrityCheck, ...] = ()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not a valid name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a cron expression: {exc}") from None
        return value

    @field_validator("target_dsn", "source_dsn")
    @classmethod
    def _valid_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            dsn = value.get_secret_value()
            if not is_postgres_url(dsn):
                raise ValueError("expected a postgresql://user:password@host:port/database URL")
            try:
                # The parser falls back to 5432 for a port it cannot read, as libpq would not:
                # the port is checked on its own so that the drill never restores elsewhere.
                valid = has_valid_port(dsn) and bool(PostgresDsn.parse(dsn).host)
            except ValueError:
                valid = False
            if not valid:
                raise ValueError("not a valid postgresql:// URL (check the port)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DrillSpec:
        if self.timeout <= 0:
            raise ValueError("timeout must be greater than zero")
        if self.rto <= 0:
            raise ValueError("rto must be greater than zero")
        names = [check.name for check in self.integrity]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate integrity check names: {', '.join(duplicates)}")
        if self.source_dsn is None and any(c.compare_to_source for c in self.integrity):
            raise ValueError("compare_to_source needs source_dsn (the live database, read-only)")
        if (self.target_dsn is None) == (self.rds is None):
            raise ValueError(
                "set exactly one of target_dsn (restore a dump into a scratch server) and rds "
                "(restore a snapshot into a temporary instance)"
            )
        return self

    @property
    def scratch_dsn(self) -> SecretStr:
        """``target_dsn`` of a dump drill (app.config makes sure such a drill has one)."""
        if self.target_dsn is None:
            raise ValueError(f"the drill {self.name!r} has no target_dsn")
        return self.target_dsn

    def secrets(self) -> list[str]:
        """The DSNs and their passwords, so logs and outputs can be scrubbed of them."""
        return collect_secrets(self)
