"""The WhatsApp Business Cloud API on Meta's Graph API: a phone number node, bearer token."""

from __future__ import annotations

import secrets
from typing import Any

from tests.fakes.base import FakeApi, Reply, Request

VERSION = "v21.0"


class FakeWhatsApp(FakeApi):
    vendor = "whatsapp"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.numbers: dict[str, dict[str, Any]] = {}

    def add_number(
        self, phone_id: str, *, status: str = "CONNECTED", quality: str = "GREEN"
    ) -> None:
        self.numbers[phone_id] = {
            "id": phone_id,
            "verified_name": "Booking Service",
            "display_phone_number": "+1 555-010-0199",
            "quality_rating": quality,
            "status": status,
            "name_status": "APPROVED",
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
        }

    def _graph_error(
        self, status: int, message: str, kind: str, code: int, subcode: int | None = None
    ) -> Reply:
        error: dict[str, Any] = {
            "message": message,
            "type": kind,
            "code": code,
            "fbtrace_id": secrets.token_urlsafe(12),
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        return Reply(status, {"error": error})

    def error(self, status: int, message: str) -> Reply:
        codes = {403: 10, 404: 803, 429: 4, 500: 1, 503: 2}
        kind = "OAuthException" if status in (403, 429) else "GraphMethodException"
        return self._graph_error(status, message, kind, codes.get(status, 1))

    def handle(self, request: Request) -> Reply:
        if request.bearer() != self.token:
            return self._graph_error(
                401, "Invalid OAuth access token - Cannot parse access token", "OAuthException", 190
            )
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != VERSION or request.method != "GET":
            return self._graph_error(400, "Unknown path components", "OAuthException", 2500)
        number = self.numbers.get(parts[1])
        if number is None:
            return self._graph_error(
                400,
                f"Unsupported get request. Object with ID '{parts[1]}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                "GraphMethodException",
                100,
                33,
            )
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        unknown = [f for f in fields if f not in number]
        if unknown:
            return self._graph_error(
                400,
                f"(#100) Tried accessing nonexisting field ({unknown[0]})",
                "OAuthException",
                100,
            )
        shown = (
            {f: number[f] for f in fields}
            if fields
            else {k: number[k] for k in ("verified_name", "display_phone_number", "quality_rating")}
        )
        return Reply(200, {**shown, "id": number["id"]})
