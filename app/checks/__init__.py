"""The check types drwatch knows: one line per type, nothing else needs to learn about them."""

from __future__ import annotations

from typing import Any

from app.checks.base import Check
from app.checks.postgres import PostgresCheck
from app.checks.redis import RedisCheck

CHECK_TYPES: dict[str, type[Check[Any]]] = {
    "postgres": PostgresCheck,
    "redis": RedisCheck,
}
