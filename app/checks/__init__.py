"""The check types drwatch knows: one line per type, nothing else needs to learn about them."""

from __future__ import annotations

from typing import Any

from app.checks.base import Check

CHECK_TYPES: dict[str, type[Check[Any]]] = {}
