"""The exception tree, and how the API answers when the state store is unavailable."""

from __future__ import annotations

from pathlib import Path

import httpx

from app import errors
from app.checks import base
from app.config import parse_config
from app.errors import StoreUnavailable
from app.main import create_app
from tests.harness import settings_for


def test_every_error_of_drwatch_is_a_drwatch_error() -> None:
    """One base class catches every error drwatch raises on purpose."""
    for cls in (
        errors.ConfigError,
        errors.CheckFailed,
        errors.CorruptDump,
        errors.DrillFailed,
        errors.DrillBusy,
        errors.UnknownDrill,
        errors.StoreUnavailable,
    ):
        assert issubclass(cls, errors.DrwatchError), cls


def test_an_unknown_drill_is_also_a_key_error() -> None:
    """Lookups by name may catch KeyError, as they did before the tree existed."""
    assert issubclass(errors.UnknownDrill, KeyError)
    assert str(errors.UnknownDrill("monthly")) == "'monthly'"


def test_checks_raise_the_one_check_failed() -> None:
    """app.checks.base.CheckFailed is app.errors.CheckFailed, so the runner catches both."""
    assert base.CheckFailed is errors.CheckFailed


async def test_a_store_outage_is_a_503_with_retry_after_only_when_given(tmp_path: Path) -> None:
    """The handler answers like HTTPException did: {"detail": ...}, plus Retry-After if set."""
    app = create_app(settings_for(tmp_path), parse_config({}), run_scheduler=False)

    @app.get("/test/later")
    async def later() -> None:
        raise StoreUnavailable("The state store is unavailable; retry.", retry_after=10)

    @app.get("/test/unreachable")
    async def unreachable() -> None:
        raise StoreUnavailable("The state store is unreachable.")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://drwatch") as client:
        later_response = await client.get("/test/later")
        unreachable_response = await client.get("/test/unreachable")
    assert later_response.status_code == 503
    assert later_response.json() == {"detail": "The state store is unavailable; retry."}
    assert later_response.headers["retry-after"] == "10"
    assert unreachable_response.status_code == 503
    assert unreachable_response.json() == {"detail": "The state store is unreachable."}
    assert "retry-after" not in unreachable_response.headers
