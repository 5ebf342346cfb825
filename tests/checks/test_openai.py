"""The openai check against a real HTTP server speaking OpenAI's models API and error objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.checks.base import Status
from app.checks.openai import OpenAICheck
from tests.credentials import fake_secret
from tests.fakes.openai import FakeOpenAI
from tests.fakes.runs import assert_failed, assert_secret_absent, run_once

KEY = fake_secret("sk-proj-", 40)


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(KEY)
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(openai: FakeOpenAI) -> Iterator[None]:
    openai.reset()
    openai.quota_exhausted = False
    yield
    openai.reset()
    openai.quota_exhausted = False


def check(base_url: str, *, key: str = KEY, timeout: float = 2.0, **params: Any) -> OpenAICheck:
    return OpenAICheck(
        "openai", OpenAICheck.Params(api_key=key, base_url=base_url, **params), timeout=timeout
    )


async def test_it_passes_when_the_configured_model_is_served(openai: FakeOpenAI) -> None:
    """GET /v1/models/{model} with the bearer key passes."""
    result = await run_once(check(openai.url, model="gpt-4o-mini"))
    assert result.status is Status.PASS, result.output
    assert openai.requests[-1].path == "/v1/models/gpt-4o-mini"
    assert openai.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_it_lists_models_when_no_model_is_configured(openai: FakeOpenAI) -> None:
    """Without a model, the check lists models."""
    result = await run_once(check(openai.url))
    assert result.status is Status.PASS, result.output
    assert openai.requests[-1].path == "/v1/models"
    assert result.details["models"] == 3


async def test_it_fails_permanently_when_the_key_is_wrong(openai: FakeOpenAI) -> None:
    """401 is permanent, and the echoed key never reaches the output."""
    wrong = fake_secret("sk-proj-", 40)
    result = await run_once(check(openai.url, key=wrong))
    assert_failed(result, "rejected", "401", permanent=True)
    assert_secret_absent(result, wrong, KEY)


async def test_it_fails_on_insufficient_quota(openai: FakeOpenAI) -> None:
    """429 insufficient_quota is a billing problem: fail, permanently."""
    openai.quota_exhausted = True
    result = await run_once(check(openai.url))
    assert_failed(result, "insufficient_quota", "credit", permanent=True)


async def test_it_fails_permanently_when_the_model_does_not_exist(openai: FakeOpenAI) -> None:
    """A model the key cannot use is a 404 naming the model."""
    result = await run_once(check(openai.url, model="gpt-9-imaginary"))
    assert_failed(result, "gpt-9-imaginary", "404", permanent=True)
