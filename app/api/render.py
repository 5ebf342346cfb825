"""Snapshot -> bytes: the bodies of ``/health`` and ``/health?verbose``.

The monitor keeps state; this module turns a :class:`~app.monitor.Snapshot` into what clients
read. The public and detailed ``/health`` bodies are rendered once per snapshot (a new snapshot
arrives only with a new result) and cached on the snapshot, so the fast path serves bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.checks.base import Status
from app.monitor import PENDING, SELF_CHECK, CheckState, SelfCheck, Snapshot
from app.units import json_default, rfc3339

DESCRIPTION = "drwatch health verdict"


def public_health_body(snapshot: Snapshot) -> bytes:
    """The /health body for callers without the details token (status first)."""
    body = snapshot.rendered.get("public")
    if body is None:
        body = snapshot.rendered["public"] = _dumps(
            {
                "status": snapshot.status.value,
                "version": snapshot.version,
                "serviceId": snapshot.service_id,
                "description": DESCRIPTION,
            }
        )
    return body


def detailed_health_body(snapshot: Snapshot) -> bytes:
    """The /health body with every check's entry (status first)."""
    body = snapshot.rendered.get("detailed")
    if body is None:
        checks = {state.name: [health_check_entry(state)] for state in snapshot.checks.values()}
        checks[SELF_CHECK] = [self_check_entry(snapshot.self_check)]
        body = snapshot.rendered["detailed"] = _dumps(
            {
                "status": snapshot.status.value,
                "version": snapshot.version,
                "serviceId": snapshot.service_id,
                "description": DESCRIPTION,
                "checks": checks,
            }
        )
    return body


_MARKS = {
    Status.PASS: ("+", "ok"),
    Status.WARN: ("!", "warn"),
    Status.FAIL: ("-", "failed"),
    None: ("?", PENDING),
}
_VERDICT_WORDS = {
    Status.PASS: "passed",
    Status.WARN: "passed with warnings",
    Status.FAIL: "failed",
}


def verbose_text(snapshot: Snapshot, *, outputs: bool, hint: str = "") -> str:
    """``[+]name ok`` lines (Kubernetes' style), with outputs of non-passing checks if allowed.

    A check held back by flap damping says so (``[-]openai failed (recovering: 1 of 2 passing
    runs): ...``), so a passing sentence never stands unexplained next to ``failed``. ``hint``
    ends the text when outputs are withheld: how to see them.
    """
    lines = []
    withheld = False
    for state in snapshot.checks.values():
        effective = state.effective
        mark, word = _MARKS[effective]
        line = f"[{mark}]{state.name} {word}"
        damping = state.damping
        if damping:
            line += f" ({damping})"
        if effective is not Status.PASS or damping:
            if outputs:
                line += f": {state.output}"
            else:
                withheld = True
        lines.append(line)
    self_check = snapshot.self_check
    if self_check.status is not Status.PASS:
        mark, word = _MARKS[self_check.status]
        line = f"[{mark}]{SELF_CHECK} {word}"
        if outputs:
            line += f": {self_check.output}"
        else:
            withheld = True
        lines.append(line)
    if withheld and hint:
        lines.append(hint)
    # The verdict stays the last line, as in Kubernetes' /healthz?verbose.
    lines.append(f"health check {_VERDICT_WORDS[snapshot.status]}")
    return "\n".join(lines) + "\n"


def health_check_entry(state: CheckState) -> dict[str, Any]:
    """One check in the application/health+json ``checks`` map."""
    result = state.last_result
    effective = state.effective
    entry: dict[str, Any] = {
        "componentId": state.name,
        "componentType": state.config.type,
        "status": effective.value if effective else Status.FAIL.value,
        "affectsVerdict": state.config.criticality,
        "output": state.output,
        "time": rfc3339(result.time) if result else None,
    }
    if result is not None and result.observed_value is not None:
        entry["observedValue"] = result.observed_value
        entry["observedUnit"] = result.observed_unit
    if state.since is not None:
        entry["since"] = rfc3339(state.since)
    return entry


def self_check_entry(self_check: SelfCheck) -> dict[str, Any]:
    """The built-in check ``drwatch`` in the ``checks`` map: drwatch's own load."""
    return {
        "componentId": SELF_CHECK,
        "componentType": "system",
        "status": self_check.status.value,
        "affectsVerdict": "degraded",
        "output": self_check.output,
    }


def _dumps(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=json_default).encode()
