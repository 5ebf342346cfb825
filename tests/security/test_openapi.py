"""schemathesis over drwatch's whole OpenAPI document, against a real `drwatch serve`.

Every check schemathesis has (no server error, status codes, media types, response schemas,
invalid input rejected, valid input accepted, authentication) runs once per token: none, the
details token, the admin token and a heartbeat source's push token, with the names that exist
(so requests reach a real check, drill and heartbeat source), and once without a token with
names drawn at random. Examples are bounded so the module stays within a minute or two.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.credentials import fake_secret
from tests.security.served import Served, served
from tests.servers import refused_port

PUSH_TOKEN = fake_secret("push-", 24)
DETAILS_TOKEN = fake_secret("details-", 24)
ADMIN_TOKEN = fake_secret("admin-", 24)
TOKENS = {"none": None, "details": DETAILS_TOKEN, "admin": ADMIN_TOKEN, "push": PUSH_TOKEN}
MAX_EXAMPLES = 8
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# /health* and /api/backup-status answer 503 as their verdict (documented), not as an error.
VERDICT_ENDPOINTS = r"^/(health|api/backup-status)"
# The names that exist, for every path with a name in it but the maintenance windows', whose
# names come from the windows the run itself creates.
EXISTING_NAMES = """
[[operations]]
exclude-path-regex = "^/api/maintenance"
parameters = { "path.name" = "nightly-job", "path.check" = "nightly-job" }
"""


def _config_file(directory: Path, *, existing_names: bool) -> Path:
    path = directory / f"schemathesis-{'existing' if existing_names else 'random'}.toml"
    text = f"""
[[operations]]
include-path-regex = "{VERDICT_ENDPOINTS}"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

# A window's end must lie ahead of now and its checks must name configured ones: rules of time
# and configuration a schema cannot state, so a schema-valid window may still be a 422 here.
[[operations]]
include-path-regex = "^/api/maintenance"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "409", "422", "503",
]
"""
    path.write_text(text + (EXISTING_NAMES if existing_names else ""))
    return path


@pytest.fixture(scope="module")
def drwatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("openapi")
    (workdir / "dumps").mkdir()
    config = {
        "checks": [
            {"name": "nightly-job", "type": "heartbeat", "params": {"token": PUSH_TOKEN}},
            {"name": "dumps", "type": "backup_files", "params": {"path": str(workdir / "dumps")}},
        ],
        # Named like the heartbeat source, so one real name reaches every path parameter.
        "drills": [
            {
                "name": "nightly-job",
                "source": "dumps",
                "target_dsn": f"postgresql://postgres@127.0.0.1:{refused_port()}/postgres",
                "schedule": "0 3 1 * *",
            }
        ],
    }
    env = {"DRWATCH_DETAILS_TOKEN": DETAILS_TOKEN, "DRWATCH_ADMIN_TOKEN": ADMIN_TOKEN}
    with served(workdir, config, env) as running:
        yield running


@pytest.mark.parametrize(
    ("token", "existing_names"),
    [("none", False), *((token, True) for token in TOKENS)],
    ids=["none-random-names", *(f"{token}-real-names" for token in TOKENS)],
)
def test_the_api_does_what_its_openapi_document_says(
    drwatch: Served, tmp_path: Path, token: str, existing_names: bool
) -> None:
    """No failure of any schemathesis check, with this token."""
    secret = TOKENS[token]
    headers = ["-H", f"Authorization: Bearer {secret}"] if secret else []
    config = _config_file(tmp_path, existing_names=existing_names)
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{drwatch.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--seed",
            "16",
            *headers,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout


def test_the_document_lists_the_answers_drwatch_gives(drwatch: Served) -> None:
    """Error codes, media types, the 422 shape and the heartbeat body are all documented."""
    spec = httpx.get(f"{drwatch.url}/openapi.json", timeout=10).json()
    paths = spec["paths"]
    ping = paths["/api/backups/{name}/{action}"]["post"]
    assert set(ping["responses"]) >= {"200", "401", "413", "422", "503"}
    body = ping["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {
        "size_bytes",
        "duration_seconds",
        "location",
        "checksum",
        "message",
    }
    assert set(paths["/api/drills/{name}/run"]["post"]["responses"]) >= {
        "401",
        "403",
        "404",
        "409",
        "503",
    }
    assert "application/health+json" in paths["/health"]["get"]["responses"]["503"]["content"]
    assert "text/plain" in paths["/health"]["get"]["responses"]["200"]["content"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert any(media.startswith("text/plain; version=") for media in metrics)
    invalid = paths["/api/checks/{name}/history"]["get"]["responses"]["422"]
    assert invalid["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrorBody"
    }
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ValidationErrorBody"]["properties"]["detail"]["const"] == "invalid request"
    for method in ("get", "head"):
        for path in ("/api/checks", "/api/checks/{name}", "/api/scheduler", "/metrics"):
            assert method in paths[path], (method, path)
