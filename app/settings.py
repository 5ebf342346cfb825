"""Process settings: ``DRWATCH_*`` environment variables.

Any setting may instead be given as ``DRWATCH_<NAME>_FILE`` naming a file that holds the value
(Kubernetes and Docker secrets); ``DRWATCH_<NAME>`` wins when both are set.

:func:`load_settings` reads a mapping (``os.environ`` unless one is given) and never changes
``os.environ``, so settings can be loaded from several mappings at once (tests, threads).
Invalid values raise :class:`~app.errors.ConfigError` naming each variable as people set it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app import redact
from app.errors import ConfigError
from app.units import ByteSize, Duration

PREFIX = "DRWATCH_"


class Settings(BaseSettings):
    """Process-wide settings. :func:`load_settings` fills them from ``DRWATCH_*`` variables;
    built directly (``Settings(port=9000)``) they read nothing from the environment.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    config: Path | None = Field(None, description="YAML file with the checks (and drills).")
    state_url: str = Field(
        "sqlite+aiosqlite:///drwatch-state.db",
        description="SQLAlchemy URL of the state store; postgresql+asyncpg://... for replicas.",
    )
    host: str = "0.0.0.0"  # noqa: S104 - a sidecar must be reachable by the health checker
    port: int = Field(8080, ge=1, le=65535)
    service_id: str = Field(default_factory=socket.gethostname)
    details_token: SecretStr | None = Field(
        None, description="Bearer token that unlocks per-check details on /health."
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for admin endpoints (starting restore drills)."
    )
    health_details: Literal["authorized", "always", "never"] = "authorized"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    migrate_on_start: bool | None = Field(
        None, description="Run migrations at start-up; default: yes for SQLite, no for PostgreSQL."
    )
    store_retry_max: Duration = Field(60.0, description="Longest wait between store write retries.")
    retention: Duration = Field(
        400 * 86400.0, description="How long history (transitions, coverage, drill runs) is kept."
    )
    history_refresh: Duration = Field(
        15.0,
        gt=0,
        le=30,
        description="How often every replica reads the shared history from the state store.",
    )
    max_header_bytes: ByteSize = Field(
        64 * 1024,
        ge=1024,
        description="Largest request line plus headers the server reads; larger ones get 431.",
    )
    header_timeout: Duration = Field(
        10.0, gt=0, description="Time a client has to send a request's headers; then 408."
    )
    max_connections: int | None = Field(
        None,
        ge=16,
        description=(
            "Open connections the server keeps; beyond it the oldest ones still waiting for "
            "their headers are closed. Default: half the file descriptor limit."
        ),
    )
    drill_work_dir: Path | None = Field(
        None,
        description=(
            "Directory restore drills download and decompress dumps into (it needs room for "
            "the largest dump); default: the system's temporary directory."
        ),
    )
    maintenance_refresh: Duration = Field(
        15.0,
        gt=0,
        le=30,
        description="How often each replica re-reads ad hoc maintenance windows from the store.",
    )
    max_in_flight: int = Field(
        512,
        ge=1,
        le=100_000,
        description=(
            "Check runs (and HTTP requests) in flight at once. Runs beyond it wait for a slot, "
            "critical checks first; the wait is not charged to their timeout."
        ),
    )
    pg_bin: Path | None = Field(
        None,
        description=(
            "Directory of the PostgreSQL client programs (pg_restore, psql) restore drills run; "
            "default: the newest version under /usr/lib/postgresql, else the PATH."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values passed in: load_settings() reads the environment mapping it is given.
        # pydantic-settings' own env source reads os.environ, which would leak the process
        # environment into settings loaded from another mapping.
        return (init_settings,)

    @property
    def migrations_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.state_url.startswith("sqlite")

    def secrets(self) -> list[str]:
        found = [t.get_secret_value() for t in (self.details_token, self.admin_token) if t]
        return [*found, *redact.secret_parts(self.state_url)]


def read_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given in ``environ``: ``DRWATCH_<NAME>``, else ``DRWATCH_<NAME>_FILE``'s file.

    ``DRWATCH_<NAME>`` is matched without regard to case, as pydantic-settings does. Raises
    ConfigError naming every ``_FILE`` variable whose file cannot be read.
    """
    upper = {key.upper(): value for key, value in environ.items()}
    values: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for name in Settings.model_fields:
        variable = f"{PREFIX}{name.upper()}"
        if variable in upper:
            values[name] = upper[variable]
            continue
        path = environ.get(f"{variable}_FILE")
        if not path:
            continue
        try:
            values[name] = Path(path).read_text().strip()
        except OSError as exc:
            errors.append(("environment", f"{variable}_FILE={path} cannot be read: {exc.strerror}"))
    if errors:
        raise ConfigError(errors, "environment")
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default ``os.environ``); raises ConfigError listing every
    invalid variable.
    """
    values = read_environ(os.environ if environ is None else environ)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        errors = [
            (f"{PREFIX}{'.'.join(str(p) for p in e['loc']).upper()}", ConfigError.describe(e))
            for e in exc.errors()
        ]
        raise ConfigError(errors, "environment") from None
    redact.register(settings.secrets())
    return settings
