"""OpenAI's models API (``/v1/models``), bearer key, with OpenAI's error objects."""

from __future__ import annotations

from tests.fakes.base import FakeApi, Reply, Request

MODELS = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]


class FakeOpenAI(FakeApi):
    vendor = "openai"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.quota_exhausted = False

    def _error(self, status: int, message: str, kind: str, code: str | None) -> Reply:
        return Reply(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
        )

    def error(self, status: int, message: str) -> Reply:
        if status == 429:
            return self._error(
                429,
                "Rate limit reached for requests per min (RPM): Limit 500, Used 500.",
                "requests",
                "rate_limit_exceeded",
            )
        if status >= 500:
            return self._error(
                status,
                "The server had an error while processing your request.",
                "server_error",
                None,
            )
        return self._error(status, message, "invalid_request_error", None)

    def handle(self, request: Request) -> Reply:
        key = request.bearer()
        if key != self.api_key:
            # Stricter than OpenAI, which masks the middle of the key: echo it whole, so a check
            # that repeats vendor messages without scrubbing them is caught.
            return self._error(
                401,
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if self.quota_exhausted:
            return self._error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if request.method != "GET":
            return self._error(405, "Method not allowed", "invalid_request_error", None)
        if request.path == "/v1/models":
            return Reply(
                200,
                {"object": "list", "data": [self._model(m) for m in MODELS]},
            )
        if request.path.startswith("/v1/models/"):
            model = request.path.removeprefix("/v1/models/")
            if model in MODELS:
                return Reply(200, self._model(model))
            return self._error(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        return self._error(404, f"Invalid URL (GET {request.path})", "invalid_request_error", None)

    @staticmethod
    def _model(name: str) -> dict[str, object]:
        return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}
