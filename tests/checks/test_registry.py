"""The check-type registry: types load lazily, and each type costs four places.

A type is its module, its line in ``CHECK_TYPES``, its test file and its row in the check-type
table of ``docs/checks.md``. Its Params fields carry descriptions, from which the docs' parameter
tables are generated.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from app.checks import CHECK_TYPES, QUICK_START, check_class

ROOT = Path(__file__).parents[2]
TYPES = sorted(CHECK_TYPES)

_IMPORTS = """
import json, sys
from app.config import parse_config
import app.cli, app.main
config = parse_config({"checks": [
    {"name": "db", "type": "postgres", "params": {"dsn": "postgresql://u@127.0.0.1:5432/app"}},
    {"name": "cache", "type": "redis", "params": {"url": "redis://127.0.0.1:6379/0"}},
]})
checks = [c.build() for c in config.checks]
heavy = ("boto3", "botocore", "google.auth", "aiohttp")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)))
"""


def test_a_postgres_and_redis_config_loads_no_vendor_sdk() -> None:
    """Starting with postgres and redis checks imports neither boto3, google-auth nor aiohttp."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m.split(".")[0] in ("boto3", "botocore", "aiohttp")] == []
    assert [m for m in loaded if m == "google.auth" or m.startswith("google.auth.")] == []


def test_the_registry_imports_no_check_module() -> None:
    """Importing CHECK_TYPES or the base module loads no type's module."""
    code = (
        "import sys\n"
        "from app.checks import CHECK_TYPES\n"
        "from app.checks.base import Status\n"
        "print(sorted(m for m in sys.modules if m.startswith('app.checks.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.stdout.strip() == "['app.checks.base']"


@pytest.mark.parametrize("type_name", TYPES)
def test_every_type_loads_to_its_check_class(type_name: str) -> None:
    """Each "module:Class" entry names a Check subclass with a Params model."""
    cls = check_class(type_name)
    assert cls.__module__ == CHECK_TYPES[type_name].partition(":")[0]
    assert issubclass(cls.Params, BaseModel)


@pytest.mark.parametrize("type_name", TYPES)
def test_every_type_has_a_test_file(type_name: str) -> None:
    """app/checks/<type>.py is mirrored by tests/checks/test_<type>.py."""
    assert (ROOT / "tests" / "checks" / f"test_{type_name}.py").is_file()


def _undescribed(model: type[BaseModel], prefix: str = "") -> list[str]:
    missing: list[str] = []
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            missing.append(f"{prefix}{name}")
        for nested in _models_in(info.annotation):
            missing += _undescribed(nested, f"{prefix}{name}.")
    return missing


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


@pytest.mark.parametrize("type_name", TYPES)
def test_every_parameter_has_a_description(type_name: str) -> None:
    """Every Params field (also of nested models) says what it is, for the docs' tables."""
    assert _undescribed(check_class(type_name).Params) == []


@pytest.mark.parametrize("type_name", TYPES)
def test_every_gauge_of_a_type_is_a_declared_metric(type_name: str) -> None:
    """A details key can only be exported as a metric that app/metrics.py declares."""
    declared = (ROOT / "app" / "metrics.py").read_text()
    for key, metric in check_class(type_name).gauges.items():
        assert f'"{metric}"' in declared, f"{type_name}.gauges[{key!r}]"


@pytest.mark.parametrize("entry", QUICK_START, ids=lambda e: e.name)
def test_every_quick_start_entry_fits_its_type(entry: Any) -> None:
    """The quick start names a known type and parameters its Params model has."""
    fields = check_class(entry.type).Params.model_fields
    assert set(entry.params) | set(entry.fixed) <= set(fields)


def _table_types(text: str) -> set[str]:
    """First cells of the Markdown table rows: the link text, without backticks."""
    names = set()
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            cell = line.strip().strip("|").split("|")[0].strip()
            link = re.match(r"\[(.*?)\]\(", cell)
            names.add((link.group(1) if link else cell).strip("`").strip())
    return names


def test_every_type_has_a_row_in_the_check_type_table() -> None:
    """docs/checks.md lists every type in its check-type table."""
    docs = ROOT / "docs" / "checks.md"
    missing = [name for name in TYPES if name not in _table_types(docs.read_text())]
    assert missing == []
