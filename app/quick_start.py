"""Checks from the guarded application's own variables, when no YAML file is given.

A container that already has ``DATABASE_URL``, ``REDIS_URL``, ``BACKUP_DIR``, ... gets a check for
each of them without writing any configuration; the table of variables lives beside the check
types, in :data:`app.checks.QUICK_START`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.checks import CHECK_TYPES, QUICK_START
from app.interpolate import lookup_env


def quick_start_document(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """A config document built from the application's own variables, or None if none is set."""
    checks = []
    for entry in QUICK_START:
        if entry.type not in CHECK_TYPES:
            continue
        params: dict[str, Any] = {p: lookup_env(v, environ) for p, v in entry.params.items()}
        if not all(params.values()):
            continue
        params.update(entry.fixed)
        checks.append(
            {
                "name": entry.name,
                "type": entry.type,
                "criticality": entry.criticality,
                "params": params,
            }
        )
    return {"checks": checks} if checks else None
