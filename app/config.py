"""The configuration document: checks and drills, from YAML (or the environment).

Checks come from, in order of precedence:

1. the YAML file named by ``DRWATCH_CONFIG`` (``${VAR}`` and ``${VAR:-default}`` are replaced by
   environment variables, see :mod:`app.interpolate`);
2. the variables the guarded application already has (``DATABASE_URL``, ``REDIS_URL``, ...), see
   :mod:`app.quick_start`;
3. the example configuration shipped in ``app/example-config.yaml`` (local PostgreSQL and Redis).

Everything is validated before anything starts. :class:`~app.errors.ConfigError` carries every
problem at once, each with its field path (``checks.2.params.dsn``), and the CLI exits with code 2.
Process settings (``DRWATCH_*``) are :mod:`app.settings`.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app import redact
from app.checks import CHECK_TYPES, check_class, types_that
from app.checks.base import Check, CheckContext, Criticality, Params, collect_secrets
from app.drills.spec import DrillSpec
from app.drills.target import check_targets
from app.errors import ConfigError
from app.interpolate import interpolate
from app.quick_start import quick_start_document
from app.settings import Settings
from app.units import NAME_PATTERN, Duration

EXAMPLE_CONFIG = Path(__file__).parent / "example-config.yaml"
# /health/live and /health/ready are the service's own probes, not checks; "drwatch" is the
# built-in self-check (app/monitor.py), answered at /health/drwatch.
RESERVED_NAMES = frozenset({"live", "ready", "drwatch"})


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
        return check_class(self.type)

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

    def only(self, names: Iterable[str]) -> Config:
        """The same configuration with only the named checks, and the drills of those."""
        wanted = set(names)
        return Config(
            tuple(c for c in self.checks if c.name in wanted),
            self.source,
            tuple(d for d in self.drills if d.source in wanted),
        )


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
            errors.append((_path(*e["loc"]) or "(top level)", ConfigError.describe(e)))
        raise ConfigError(errors, source) from None

    checks: list[CheckConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(top.checks):
        base = f"checks.{index}"
        try:
            spec = CheckSpec.model_validate(entry)
        except ValidationError as exc:
            for e in exc.errors():
                errors.append((_path(base, *e["loc"]), ConfigError.describe(e)))
            # Still validate the params of a known type, so every error shows in one go.
            spec = None
        type_name = entry.get("type") if isinstance(entry, dict) else None
        known_type = isinstance(type_name, str) and type_name in CHECK_TYPES
        cls = check_class(type_name) if known_type else None
        if isinstance(type_name, str) and cls is None:
            known = ", ".join(sorted(CHECK_TYPES))
            errors.append((f"{base}.type", f"unknown check type {type_name!r} (known: {known})"))
        params: Params | None = None
        raw_params = entry.get("params", {}) if isinstance(entry, dict) else {}
        if cls is not None and isinstance(raw_params, dict):
            try:
                params = cls.Params.model_validate(raw_params)
            except ValidationError as exc:
                for e in exc.errors():
                    errors.append((_path(base, "params", *e["loc"]), ConfigError.describe(e)))
        if spec is None or cls is None or params is None:
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
        interval = spec.interval if spec.interval is not None else cls.default_interval
        timeout = spec.timeout if spec.timeout is not None else cls.default_timeout
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
                criticality=spec.criticality or cls.default_criticality,
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
                errors.append((_path(base, *e["loc"]), ConfigError.describe(e)))
            continue
        if drill.name in seen:
            errors.append((f"{base}.name", f"duplicate drill name {drill.name!r}"))
            continue
        seen.add(drill.name)
        source = by_name.get(drill.source)
        if source is None:
            errors.append((f"{base}.source", f"no check named {drill.source!r}"))
        elif not source.check_class.restorable:
            errors.append(
                (
                    f"{base}.source",
                    f"{drill.source!r} is a {source.type} check; a drill restores the newest "
                    f"backup of a {_either(types_that('restorable'))} check",
                )
            )
        drills.append(drill)
    # A drill creates and drops databases: it must never target one that drwatch watches.
    production = [dsn for c in checks if (dsn := c.check_class.production_dsn(c.params))]
    errors.extend(check_targets(drills, production))
    return drills


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def load_yaml(path: Path, environ: Mapping[str, str]) -> Config:
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([("DRWATCH_CONFIG", f"cannot read {path}: {exc.strerror}")]) from None
    try:
        # libyaml's loader when PyYAML has it: the pure-Python one takes seconds for a file of
        # thousands of checks, which would be start-up time.
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
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


def load_config(settings: Settings, environ: Mapping[str, str] | None = None) -> Config:
    """The checks to run, from YAML, the quick-start variables or the shipped example."""
    env = os.environ if environ is None else environ
    if settings.config is not None:
        return load_yaml(settings.config, env)
    document = quick_start_document(env)
    if document is not None:
        return parse_config(document, "environment (quick start)")
    return load_yaml(EXAMPLE_CONFIG, env)
