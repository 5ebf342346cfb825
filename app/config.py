"""Configuration: process settings from the environment, check specs from YAML (or the environment).

Settings are ``DRWATCH_*`` environment variables; any of them may instead be given as
``DRWATCH_<NAME>_FILE`` pointing at a file that holds the value (Kubernetes/Docker secrets).

Checks come from, in order of precedence:

1. the YAML file named by ``DRWATCH_CONFIG`` (``${VAR}`` and ``${VAR:-default}`` are replaced by
   environment variables; ``${VAR}`` also reads ``VAR_FILE`` when ``VAR`` is unset);
2. the variables the guarded application already has (``DATABASE_URL``, ``REDIS_URL``, ...), see
   :data:`QUICK_START`;
3. the example configuration shipped in ``app/example-config.yaml`` (local PostgreSQL and Redis).

Everything is validated before anything starts. :class:`ConfigError` carries every problem at once,
each with its field path (``checks.2.params.dsn``), and the CLI exits with code 2.
"""

from __future__ import annotations

import builtins
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app import redact
from app.checks import CHECK_TYPES
from app.checks.base import Check, CheckContext, Criticality, Params, collect_secrets
from app.drills.spec import DrillSpec
from app.drills.target import check_targets
from app.units import NAME_PATTERN, Duration

EXAMPLE_CONFIG = Path(__file__).parent / "example-config.yaml"
# /health/live and /health/ready are the service's own probes, not checks.
RESERVED_NAMES = frozenset({"live", "ready"})


class ConfigError(Exception):
    """The configuration is invalid. ``errors`` lists (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "configuration") -> None:
        self.errors = errors
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source} is invalid ({len(self.errors)} error(s)):"]
        lines += [f"  {path}: {message}" for path, message in self.errors]
        return "\n".join(lines)


# --- process settings -----------------------------------------------------------------------


class _FileSecretsSource(PydanticBaseSettingsSource):
    """``DRWATCH_<NAME>_FILE=/run/secrets/x`` provides ``<name>`` from the file's contents."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"DRWATCH_{field_name.upper()}_FILE")
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text().strip(), field_name, False
        except OSError as exc:
            raise ValueError(
                f"DRWATCH_{field_name.upper()}_FILE={path} cannot be read: {exc.strerror}"
            ) from exc

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(info, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Process-wide settings, from ``DRWATCH_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DRWATCH_", extra="ignore", frozen=True)

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSecretsSource(settings_cls)

    @property
    def migrations_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.state_url.startswith("sqlite")

    def secrets(self) -> list[str]:
        found = [t.get_secret_value() for t in (self.details_token, self.admin_token) if t]
        password = redact.url_password(self.state_url)
        return [*found, *([password] if password else [])]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; raises ConfigError listing every invalid variable."""
    try:
        if environ is None:
            settings = Settings()
        else:
            saved = dict(os.environ)
            os.environ.clear()
            os.environ.update(environ)
            try:
                settings = Settings()
            finally:
                os.environ.clear()
                os.environ.update(saved)
    except ValidationError as exc:
        errors = [
            (f"DRWATCH_{'.'.join(str(p) for p in e['loc']).upper()}", _message(e))
            for e in exc.errors()
        ]
        raise ConfigError(errors, "environment") from None
    except ValueError as exc:
        raise ConfigError([("environment", str(exc))], "environment") from None
    redact.register(settings.secrets())
    return settings


# --- check specs ----------------------------------------------------------------------------


class CheckSpec(BaseModel):
    """One entry of ``checks:`` as written; ``params`` is validated by the type's own model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    type: str
    criticality: Criticality | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    fall: int = Field(3, ge=1, le=100)
    rise: int = Field(2, ge=1, le=100)
    labels: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class CheckConfig:
    """A validated check: everything the scheduler and monitor need to run it."""

    name: str
    type: str
    criticality: Criticality
    interval: float
    timeout: float
    fall: int
    rise: int
    labels: Mapping[str, str]
    params: Params

    @property
    def check_class(self) -> builtins.type[Check[Any]]:
        return CHECK_TYPES[self.type]

    def build(self, context: CheckContext | None = None) -> Check[Any]:
        return self.check_class(self.name, self.params, timeout=self.timeout, context=context)


class _TopLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[dict[str, Any]] = Field(default_factory=list)
    drills: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Config:
    checks: tuple[CheckConfig, ...]
    source: str = "configuration"
    drills: tuple[DrillSpec, ...] = ()

    def check(self, name: str) -> CheckConfig | None:
        return next((c for c in self.checks if c.name == name), None)


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required but missing"
    return message.removeprefix("Value error, ")


def _path(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p != "")


def parse_config(raw: Any, source: str = "configuration") -> Config:
    """Validate a parsed YAML document. Raises ConfigError with every problem found."""
    errors: list[tuple[str, str]] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("(top level)", "expected a mapping with a 'checks' list")], source)
    try:
        top = _TopLevel.model_validate(raw)
    except ValidationError as exc:
        for e in exc.errors():
            errors.append((_path(*e["loc"]) or "(top level)", _message(e)))
        raise ConfigError(errors, source) from None

    checks: list[CheckConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(top.checks):
        base = f"checks.{index}"
        try:
            spec = CheckSpec.model_validate(entry)
        except ValidationError as exc:
            for e in exc.errors():
                errors.append((_path(base, *e["loc"]), _message(e)))
            # Still validate the params of a known type, so every error shows in one go.
            spec = None
        type_name = entry.get("type") if isinstance(entry, dict) else None
        check_class = CHECK_TYPES.get(type_name) if isinstance(type_name, str) else None
        if isinstance(type_name, str) and check_class is None:
            known = ", ".join(sorted(CHECK_TYPES))
            errors.append((f"{base}.type", f"unknown check type {type_name!r} (known: {known})"))
        params: Params | None = None
        raw_params = entry.get("params", {}) if isinstance(entry, dict) else {}
        if check_class is not None and isinstance(raw_params, dict):
            try:
                params = check_class.Params.model_validate(raw_params)
            except ValidationError as exc:
                for e in exc.errors():
                    errors.append((_path(base, "params", *e["loc"]), _message(e)))
        if spec is None or check_class is None or params is None:
            continue
        if spec.name in RESERVED_NAMES:
            errors.append((f"{base}.name", f"{spec.name!r} is reserved for /health/{spec.name}"))
            continue
        if spec.name in seen:
            errors.append(
                (
                    f"{base}.name",
                    f"duplicate check name {spec.name!r} (also checks.{seen[spec.name]})",
                )
            )
            continue
        seen[spec.name] = index
        interval = spec.interval if spec.interval is not None else check_class.default_interval
        timeout = spec.timeout if spec.timeout is not None else check_class.default_timeout
        if spec.timeout is None:
            timeout = min(timeout, interval * 0.8)
        if interval <= 0:
            errors.append((f"{base}.interval", "must be greater than zero"))
        elif timeout <= 0:
            errors.append((f"{base}.timeout", "must be greater than zero"))
        elif timeout >= interval:
            errors.append(
                (
                    f"{base}.timeout",
                    f"timeout ({timeout:g}s) must be shorter than the interval ({interval:g}s), "
                    "or runs would overlap",
                )
            )
        checks.append(
            CheckConfig(
                name=spec.name,
                type=spec.type,
                criticality=spec.criticality or check_class.default_criticality,
                interval=interval,
                timeout=timeout,
                fall=spec.fall,
                rise=spec.rise,
                labels=spec.labels,
                params=params,
            )
        )
    drills = _parse_drills(top.drills, checks, errors)
    if errors:
        raise ConfigError(errors, source)
    config = Config(checks=tuple(checks), source=source, drills=tuple(drills))
    for check in config.checks:
        redact.register(collect_secrets(check.params))
    for drill in config.drills:
        redact.register(drill.secrets())
    return config


# Restore drills restore what these backup sources point at (a file or an S3 object).
DRILL_SOURCE_TYPES = frozenset({"backup_files", "s3"})


def _parse_drills(
    entries: list[dict[str, Any]], checks: list[CheckConfig], errors: list[tuple[str, str]]
) -> list[DrillSpec]:
    drills: list[DrillSpec] = []
    by_name = {c.name: c for c in checks}
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        base = f"drills.{index}"
        try:
            drill = DrillSpec.model_validate(entry)
        except ValidationError as exc:
            for e in exc.errors():
                errors.append((_path(base, *e["loc"]), _message(e)))
            continue
        if drill.name in seen:
            errors.append((f"{base}.name", f"duplicate drill name {drill.name!r}"))
            continue
        seen.add(drill.name)
        source = by_name.get(drill.source)
        if source is None:
            errors.append((f"{base}.source", f"no check named {drill.source!r}"))
        elif source.type not in DRILL_SOURCE_TYPES:
            errors.append(
                (
                    f"{base}.source",
                    f"{drill.source!r} is a {source.type} check; a drill restores the newest "
                    "backup of a backup_files or s3 check",
                )
            )
        drills.append(drill)
    production = [c.params.dsn for c in checks if c.type == "postgres"]  # type: ignore[attr-defined]
    errors.extend(check_targets(drills, production))
    return drills


# --- ${VAR} interpolation ---------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")


def interpolate(raw: Any, environ: Mapping[str, str], errors: list[tuple[str, str]]) -> Any:
    """Replace ``${VAR}`` in every string of a parsed document, collecting missing variables."""

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, _path(path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, _path(path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return _VAR.sub(lambda m: replace(m, path or "(top level)"), node)
        return node

    def replace(match: re.Match[str], path: str) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = lookup_env(name, environ)
        if value is not None:
            return value
        if default is not None:
            return default
        errors.append((path, f"environment variable {name} is not set"))
        return ""

    return walk(raw, "")


def lookup_env(name: str, environ: Mapping[str, str]) -> str | None:
    """``environ[name]``, else the contents of the file named by ``environ[name + "_FILE"]``."""
    if environ.get(name):
        return environ[name]
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError:
            return None
    return None


def load_yaml(path: Path, environ: Mapping[str, str]) -> Config:
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([("DRWATCH_CONFIG", f"cannot read {path}: {exc.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([(where, f"not valid YAML: {problem}")], source) from None
    errors: list[tuple[str, str]] = []
    raw = interpolate(raw, environ, errors)
    try:
        config = parse_config(raw, source)
    except ConfigError as exc:
        raise ConfigError(errors + exc.errors, source) from None
    if errors:
        raise ConfigError(errors, source)
    return config


# --- env-only quick start ---------------------------------------------------------------------

QUICK_START: tuple[tuple[tuple[str, ...], str, str, Criticality, dict[str, str]], ...] = (
    # (variables that must all be set, check name, type, criticality, {param: variable})
    (("DATABASE_URL",), "database", "postgres", "critical", {"dsn": "DATABASE_URL"}),
    (("REDIS_URL",), "redis", "redis", "critical", {"url": "REDIS_URL"}),
    (
        ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
        "twilio",
        "twilio",
        "degraded",
        {"account_sid": "TWILIO_ACCOUNT_SID", "auth_token": "TWILIO_AUTH_TOKEN"},
    ),
    (("VAPI_API_KEY",), "vapi", "vapi", "degraded", {"api_key": "VAPI_API_KEY"}),
    (
        ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CALENDAR_ID"),
        "google-calendar",
        "google_calendar",
        "degraded",
        {"credentials_file": "GOOGLE_APPLICATION_CREDENTIALS", "calendar_id": "GOOGLE_CALENDAR_ID"},
    ),
    (("OPENAI_API_KEY",), "openai", "openai", "degraded", {"api_key": "OPENAI_API_KEY"}),
    (
        ("WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"),
        "whatsapp",
        "whatsapp",
        "degraded",
        {"token": "WHATSAPP_TOKEN", "phone_number_id": "WHATSAPP_PHONE_NUMBER_ID"},
    ),
    (("BACKUP_DIR",), "backups", "backup_files", "degraded", {"path": "BACKUP_DIR"}),
)
_QUICK_START_EXTRA: dict[str, dict[str, Any]] = {"backup_files": {"rpo": "24h"}}


def quick_start_document(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """A config document built from the application's own variables, or None if none is set."""
    checks = []
    for variables, name, type_name, criticality, mapping in QUICK_START:
        if type_name not in CHECK_TYPES:
            continue
        values = {v: lookup_env(v, environ) for v in variables}
        if not all(values.values()):
            continue
        params: dict[str, Any] = {p: lookup_env(v, environ) for p, v in mapping.items()}
        params.update(_QUICK_START_EXTRA.get(type_name, {}))
        checks.append(
            {"name": name, "type": type_name, "criticality": criticality, "params": params}
        )
    return {"checks": checks} if checks else None


def load_config(settings: Settings, environ: Mapping[str, str] | None = None) -> Config:
    """The checks to run, from YAML, the quick-start variables or the shipped example."""
    env = os.environ if environ is None else environ
    if settings.config is not None:
        return load_yaml(settings.config, env)
    document = quick_start_document(env)
    if document is not None:
        return parse_config(document, "environment (quick start)")
    return load_yaml(EXAMPLE_CONFIG, env)
