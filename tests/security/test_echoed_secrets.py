"""A vendor that echoes the Authorization header leaves no trace of the secret anywhere.

Twilio authenticates with Basic (base64 of ``AC...:<auth token>``), OpenAI with a Bearer key. A
fake vendor answers each with the header it received inside its error body, at several
statuses. Afterwards the secret, in plain, base64 or percent-encoded form, is in no response,
log line, metric or row of the state store.
"""

from __future__ import annotations

import base64
import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.credentials import fake_secret
from tests.fakes.echo import EchoingVendor
from tests.polling import wait_until
from tests.security.served import served

SID = fake_secret("AC", 32, "0123456789abcdef")
TWILIO_TOKEN = fake_secret(length=32, alphabet="0123456789abcdef")
OPENAI_KEY = fake_secret("sk-proj-", 40, string.ascii_letters + string.digits + "_-")
STATUSES = (400, 401, 403, 404, 429, 500)


@pytest.fixture(scope="module")
def vendor() -> Iterator[EchoingVendor]:
    fake = EchoingVendor()
    yield fake
    fake.stop()


def _checks(vendor: EchoingVendor) -> list[dict[str, object]]:
    checks: list[dict[str, object]] = []
    for status in STATUSES:
        common = {"interval": "2s", "timeout": "1s", "rise": 1, "fall": 1}
        checks.append(
            {
                "name": f"twilio-{status}",
                "type": "twilio",
                **common,
                "params": {
                    "account_sid": SID,
                    "auth_token": TWILIO_TOKEN,
                    "base_url": f"{vendor.url}/{status}",
                },
            }
        )
        checks.append(
            {
                "name": f"openai-{status}",
                "type": "openai",
                **common,
                "params": {"api_key": OPENAI_KEY, "base_url": f"{vendor.url}/{status}"},
            }
        )
    return checks


def _traces() -> list[str]:
    """Every form in which the two secrets could be recognised."""
    basic = base64.b64encode(f"{SID}:{TWILIO_TOKEN}".encode()).decode()
    forms = [TWILIO_TOKEN, OPENAI_KEY, basic, basic[len(basic) // 2 :]]
    for secret in (TWILIO_TOKEN, OPENAI_KEY):
        forms += [base64.b64encode(secret.encode()).decode()[:-4], quote(secret, safe="")]
    # Ten characters of a secret in a row would already say too much.
    forms += [TWILIO_TOKEN[i : i + 10] for i in range(0, 22, 4)]
    return forms


def test_no_trace_of_an_echoed_secret_anywhere(vendor: EchoingVendor, tmp_path: Path) -> None:
    """Responses (details always shown), logs, metrics and the store hold no form of it."""
    env = {"DRWATCH_HEALTH_DETAILS": "always", "DRWATCH_LOG_LEVEL": "DEBUG"}
    with served(tmp_path, {"checks": _checks(vendor)}, env) as drwatch:
        # The echo really happened: the vendor saw both kinds of credential.
        wait_until(lambda: len(vendor.requests) >= 4 * len(STATUSES), 30)
        with drwatch.client() as client:

            def none_passes() -> bool:
                checks = client.get("/api/checks").json()["checks"]
                return all(c["status"] in ("warn", "fail") for c in checks)

            # (A 429 is a warning: rate-limited is not down.)
            wait_until(none_passes, 30)
            names = [c["name"] for c in client.get("/api/checks").json()["checks"]]
            wait_until(
                lambda: all(
                    client.get(f"/api/checks/{n}/history").json()["transitions"] for n in names
                ),
                30,
            )
            bodies = [
                client.get(path).text
                for path in (
                    "/health",
                    "/health?verbose",
                    "/api/checks",
                    "/metrics",
                    "/api/scheduler",
                    *(f"/api/checks/{n}/history" for n in names),
                    *(f"/health/{n}" for n in names),
                )
            ]
    headers = [r.headers.get("authorization", "") for r in vendor.requests]
    assert any(h.startswith("Basic ") for h in headers)
    assert any(h.startswith("Bearer ") for h in headers)
    outputs = " ".join(bodies)
    assert "rejected" in outputs
    with sqlite3.connect(drwatch.state_file) as db:
        rows = [
            repr(row)
            for table in ("check_transitions", "heartbeat_events", "drill_runs")
            for row in db.execute(f"SELECT * FROM {table}")
        ]
    stored = drwatch.state_file.read_bytes().decode("latin-1")
    everything = {"responses": outputs, "log": drwatch.log(), "store": " ".join(rows) + stored}
    for where, text in everything.items():
        for trace in _traces():
            assert trace not in text, (where, trace)
