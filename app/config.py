"""The configuration document: checks, drills and maintenance windows, from YAML (or the
environment).

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
import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app import redact
from app.checks import CHECK_TYPES, check_class, types_that
from app.checks.base import Check, CheckContext, Criticality, Params, collect_secrets
from app.drills.spec import DrillSpec
from app.drills.target import check_targets
from app.errors import ConfigError
from app.history.slo import SloSpec
from app.history.windows import Window, WindowSpec, window_from_spec
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
    fall: int | None = Field(None, ge=1, le=100)
    rise: int | None = Field(None, ge=1, le=100)
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


class ReadinessSpec(BaseModel):
    """``dr_readiness:``: what ``/api/dr-readiness`` judges the standby region by.

    Without ``checks``, every check labelled ``region: dr`` is a prerequisite. Without ``drills``,
    the drills whose source restores into an instance (as a failover would) time the recovery.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    checks: tuple[str, ...] = Field((), description="Checks the standby region needs to pass.")
    drills: tuple[str, ...] | None = Field(
        None, description="Drills whose last successful run times the recovery."
    )
    rpo: Duration | None = Field(
        None, description="Most data a failover may lose; default: the data-loss source's RPO."
    )
    rto: Duration | None = Field(
        None, description="Longest a recovery may take; default: the drills' RTO, else 4h."
    )


class _TopLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[dict[str, Any]] = Field(default_factory=list)
    drills: list[dict[str, Any]] = Field(default_factory=list)
    dr_readiness: dict[str, Any] | None = None
    slo: dict[str, Any] = Field(default_factory=dict)
    maintenance: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Config:
    checks: tuple[CheckConfig, ...]
    source: str = "configuration"
    drills: tuple[DrillSpec, ...] = ()
    dr_readiness: ReadinessSpec | None = None
    slo: SloSpec = field(default_factory=SloSpec)
    maintenance: tuple[Window, ...] = ()

    def check(self, name: str) -> CheckConfig | None:
        return next((c for c in self.checks if c.name == name), None)

    def only(self, names: Iterable[str]) -> Config:
        """The same configuration with only the named checks, and the drills of those."""
        wanted = set(names)
        return Config(
            tuple(c for c in self.checks if c.name in wanted),
            self.source,
            tuple(d for d in self.drills if d.source in wanted),
            self.dr_readiness,
            self.slo,
            self.maintenance,
        )

    def readiness_checks(self) -> list[CheckConfig]:
        """The prerequisites of the standby region: ``dr_readiness.checks``, else every check
        labelled ``region: dr``.
        """
        listed = self.dr_readiness.checks if self.dr_readiness else ()
        if listed:
            return [c for name in listed if (c := self.check(name)) is not None]
        return [c for c in self.checks if c.labels.get("region") == "dr"]


def _path(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p != "")


M = TypeVar("M", bound=BaseModel)
Errors = list[tuple[str, str]]


def _validate(
    model: type[M], data: Mapping[str, Any], base: str, errors: Errors
) -> tuple[M | None, dict[str, Any]]:
    """``model`` from ``data``, or None with every error recorded by its field path.

    Either way it also returns the fields that are valid on their own, so the checks across
    fields (timeout against interval, a drill's target) still run and report: one bad key must
    not hide the other errors of a document.
    """
    try:
        instance = model.model_validate(data)
    except ValidationError as exc:
        failed = set()
        for e in exc.errors():
            errors.append((_path(base, *e["loc"]) or "(top level)", ConfigError.describe(e)))
            if e["loc"]:
                failed.add(e["loc"][0])
    else:
        return instance, {name: getattr(instance, name) for name in model.model_fields}
    valid: dict[str, Any] = {}
    for key, value in data.items():
        info = model.model_fields.get(key)
        if info is None or key in failed:
            continue
        # The field's own type and constraints; validators across fields do not run here.
        with contextlib.suppress(ValidationError):
            adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]
            valid[key] = adapter.validate_python(value)
    return None, valid


def parse_config(raw: Any, source: str = "configuration") -> Config:
    """Validate a parsed YAML document. Raises ConfigError with every problem found."""
    errors: Errors = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("(top level)", "expected a mapping with a 'checks' list")], source)
    _, top = _validate(_TopLevel, raw, "", errors)
    checks: list[CheckConfig] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(top.get("checks", [])):
        check = _parse_check(entry, index, seen, errors)
        if check is not None:
            checks.append(check)
    drills = _parse_drills(top.get("drills", []), checks, errors)
    readiness = _parse_readiness(top.get("dr_readiness"), checks, drills, errors)
    slo, _ = _validate(SloSpec, top.get("slo") or {}, "slo", errors)
    # Patterns are matched against every named check, also invalid ones: a window on a check
    # with a typo in its params must not add a second, misleading error.
    maintenance = _parse_maintenance(top.get("maintenance", []), list(seen), errors)
    if errors:
        raise ConfigError(errors, source)
    config = Config(
        checks=tuple(checks),
        source=source,
        drills=tuple(drills),
        dr_readiness=readiness,
        slo=slo or SloSpec(),
        maintenance=tuple(maintenance),
    )
    for check in config.checks:
        redact.register(collect_secrets(check.params))
    for drill in config.drills:
        redact.register(drill.secrets())
    return config


def _parse_check(
    entry: dict[str, Any], index: int, seen: dict[str, int], errors: Errors
) -> CheckConfig | None:
    """One entry of ``checks:``; None (with every error recorded) when it is invalid. ``seen``
    maps the names taken so far to their index; a valid name is added even when the entry has
    other errors, so a duplicate of it is still reported.
    """
    base = f"checks.{index}"
    count = len(errors)
    spec, fields = _validate(CheckSpec, entry, base, errors)
    type_name = entry.get("type")
    cls = (
        check_class(type_name) if isinstance(type_name, str) and type_name in CHECK_TYPES else None
    )
    if isinstance(type_name, str) and cls is None:
        known = ", ".join(sorted(CHECK_TYPES))
        errors.append((f"{base}.type", f"unknown check type {type_name!r} (known: {known})"))
    params: Params | None = None
    raw_params = entry.get("params", {})
    if cls is not None and isinstance(raw_params, dict):
        try:
            params = cls.Params.model_validate(raw_params)
        except ValidationError as exc:
            for e in exc.errors():
                errors.append((_path(base, "params", *e["loc"]), ConfigError.describe(e)))
    name = str(fields.get("name", ""))
    if name in RESERVED_NAMES:
        errors.append((f"{base}.name", f"{name!r} is reserved for /health/{name}"))
    elif name in seen:
        errors.append((f"{base}.name", f"duplicate check name {name!r} (also checks.{seen[name]})"))
    elif name:
        seen[name] = index
    interval = fields.get("interval") or (cls.default_interval if cls else None)
    timeout = fields.get("timeout")
    if timeout is None and cls is not None and interval is not None:
        timeout = min(cls.default_timeout, interval * 0.8)
    if interval is not None and interval <= 0:
        errors.append((f"{base}.interval", "must be greater than zero"))
    elif timeout is not None and timeout <= 0:
        errors.append((f"{base}.timeout", "must be greater than zero"))
    elif interval is not None and timeout is not None and timeout >= interval:
        errors.append(
            (
                f"{base}.timeout",
                f"timeout ({timeout:g}s) must be shorter than the interval ({interval:g}s), "
                "or runs would overlap",
            )
        )
    if len(errors) > count or spec is None or cls is None or params is None:
        return None
    assert interval is not None and timeout is not None  # cls is known: both have defaults
    return CheckConfig(
        name=spec.name,
        type=spec.type,
        criticality=spec.criticality or cls.default_criticality,
        interval=interval,
        timeout=timeout,
        fall=spec.fall or cls.default_fall,
        rise=spec.rise or cls.default_rise,
        labels=spec.labels,
        params=params,
    )


def _parse_drills(
    entries: list[dict[str, Any]], checks: list[CheckConfig], errors: Errors
) -> list[DrillSpec]:
    drills: list[DrillSpec] = []
    # Every drill whose target can be told, also invalid ones, keyed by its field path.
    targets: list[tuple[str, DrillSpec]] = []
    by_name = {c.name: c for c in checks}
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        base = f"drills.{index}"
        drill, fields = _validate(DrillSpec, entry, base, errors)
        if drill is None:
            if "target_dsn" in fields:
                targets.append((base, DrillSpec.model_construct(**fields)))
            continue
        targets.append((base, drill))
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
        else:
            drill = _restore_path(drill, source, base, errors)
        drills.append(drill)
    # A drill creates and drops databases: it must never target one that drwatch watches.
    production = [dsn for c in checks if (dsn := c.check_class.production_dsn(c.params))]
    errors.extend(check_targets(targets, production))
    return drills


def _restore_path(
    drill: DrillSpec, source: CheckConfig, base: str, errors: list[tuple[str, str]]
) -> DrillSpec:
    """Check that the drill restores its source the way the source restores, and fill the
    instance an ``rds:`` drill restores from the source check's parameters.
    """
    cls = source.check_class
    if cls.restore_kind != "instance":
        if drill.rds is not None:
            errors.append(
                (
                    f"{base}.rds",
                    f"{drill.source!r} is a {source.type} check, whose dumps restore into "
                    "target_dsn; rds is for sources restored into a temporary instance",
                )
            )
        return drill
    instance = cls.restorable_instance(source.params)
    if drill.rds is None or instance is None:
        errors.append(
            (
                f"{base}.rds",
                f"{drill.source!r} is a {source.type} check, restored into a temporary instance: "
                "set rds (with password_secret_arn or password_file) instead of target_dsn",
            )
        )
        return drill
    defaults = {
        "db_instance_identifier": instance.db_instance_identifier,
        "region": instance.region,
        "endpoint_url": instance.endpoint_url,
    }
    filled = {k: v for k, v in defaults.items() if getattr(drill.rds, k) is None}
    return drill.model_copy(update={"rds": drill.rds.model_copy(update=filled)})


def _parse_readiness(
    entry: dict[str, Any] | None,
    checks: list[CheckConfig],
    drills: list[DrillSpec],
    errors: list[tuple[str, str]],
) -> ReadinessSpec | None:
    if entry is None:
        return None
    try:
        spec = ReadinessSpec.model_validate(entry)
    except ValidationError as exc:
        for e in exc.errors():
            errors.append((_path("dr_readiness", *e["loc"]), ConfigError.describe(e)))
        return None
    check_names = {c.name for c in checks}
    drill_names = {d.name for d in drills}
    errors += [
        (f"dr_readiness.checks.{index}", f"no check named {name!r}")
        for index, name in enumerate(spec.checks)
        if name not in check_names
    ]
    errors += [
        (f"dr_readiness.drills.{index}", f"no drill named {name!r}")
        for index, name in enumerate(spec.drills or ())
        if name not in drill_names
    ]
    return spec


def _parse_maintenance(
    entries: list[dict[str, Any]], check_names: list[str], errors: Errors
) -> list[Window]:
    windows: list[Window] = []
    seen: dict[str, str] = {}  # name -> field path of its first definition
    for index, entry in enumerate(entries):
        base = f"maintenance.{index}"
        spec, fields = _validate(WindowSpec, entry, base, errors)
        name = str(fields.get("name", ""))
        duplicate = name in seen
        if duplicate:
            # One name is one window in the API, the metrics and DELETE; two definitions of it
            # (overlapping or not) would make those ambiguous.
            errors.append(
                (f"{base}.name", f"duplicate maintenance window name {name!r} (also {seen[name]})")
            )
        elif name:
            seen[name] = base
        if spec is None:
            continue
        window, problems = window_from_spec(spec, check_names)
        errors.extend((_path(base, where), message) for where, message in problems)
        if window is not None and not duplicate:
            windows.append(window)
    return windows


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
