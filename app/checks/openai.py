"""``openai``: the OpenAI API accepts the key, has quota, and serves the configured model."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr

from app.checks import base
from app.checks._vendor import ApiCheck, base_url_of, require
from app.checks.base import CheckFailed, Result


class OpenAICheck(ApiCheck["OpenAICheck.Params"]):
    """Reads ``GET /v1/models/{model}`` (or lists models when no model is configured).

    401 fails permanently (bad key); 429 with ``insufficient_quota`` fails (billing: every request
    of the application fails too); any other 429 only warns (rate limits pass).
    """

    class Params(base.Params):
        api_key: SecretStr = Field(description="The OpenAI API key the application uses.")
        model: str | None = Field(
            None, description="A model the application needs, e.g. gpt-4o; fail when it is gone."
        )
        organization: str | None = Field(
            None, description="Sent as OpenAI-Organization, for keys of several organizations."
        )
        project: str | None = Field(None, description="Sent as OpenAI-Project.")
        base_url: str = Field(
            "https://api.openai.com", description="Base URL of the API (a proxy or a test server)."
        )

    vendor: ClassVar[str] = "OpenAI"

    def client_options(self) -> dict[str, Any]:
        p = self.params
        headers = {"Authorization": f"Bearer {p.api_key.get_secret_value()}"}
        if p.organization:
            headers["OpenAI-Organization"] = p.organization
        if p.project:
            headers["OpenAI-Project"] = p.project
        return {"base_url": base_url_of(p.base_url), "headers": headers}

    async def run(self) -> Result:
        model = self.params.model
        path = f"/v1/models/{quote(model, safe='')}" if model else "/v1/models"
        response = await self.http.request("GET", path)
        if response.status_code == 429:
            return self._rate_limited(response)
        if not response.is_success:
            raise self.http.status_failure(
                response, resource=f"model {model!r}" if model else "model list"
            )
        body = self.http.json(response)
        if model:
            require(body, "id", str, "OpenAI")
            return self.passed(
                f"OpenAI serves model {model!r} to this key.", details={"model": model}
            )
        models = require(body, "data", list, "OpenAI")
        return self.passed(
            f"OpenAI accepts the API key and lists {len(models)} models.",
            details={"models": len(models)},
        )

    def _rate_limited(self, response: Any) -> Result:
        error: Any = {}
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
        if "insufficient_quota" in (error.get("code"), error.get("type")):
            raise CheckFailed(
                "OpenAI refuses requests for lack of quota (insufficient_quota); the account's "
                "credit or billing limit is exhausted, so the application's requests fail too. "
                "Add credit or raise the limit.",
                permanent=True,
                context={"status_code": 429},
            )
        detail = self.http.error_detail(response)
        return self.warned(
            "OpenAI is rate-limiting this key (HTTP 429"
            + (f": {detail}" if detail else "")
            + "); requests succeed again once the rate window passes.",
            details={"status_code": 429},
        )
