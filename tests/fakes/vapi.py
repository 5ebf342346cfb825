"""VAPI's REST API: assistants and phone numbers, bearer (private) key."""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeApi, Reply, Request

_ORG = "6c1b1a7e-0000-4000-8000-00000000a11c"


class FakeVapi(FakeApi):
    vendor = "vapi"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.assistants: dict[str, dict[str, Any]] = {}
        self.phone_numbers: dict[str, dict[str, Any]] = {}

    def add_assistant(self, assistant_id: str, name: str) -> None:
        self.assistants[assistant_id] = {
            "id": assistant_id,
            "orgId": _ORG,
            "name": name,
            "createdAt": "2025-05-01T10:00:00.000Z",
            "updatedAt": "2025-05-01T10:00:00.000Z",
            "model": {"provider": "openai", "model": "gpt-4o"},
            "voice": {"provider": "11labs", "voiceId": "burt"},
        }

    def add_phone_number(self, phone_id: str, number: str, status: str = "active") -> None:
        self.phone_numbers[phone_id] = {
            "id": phone_id,
            "orgId": _ORG,
            "provider": "vapi",
            "number": number,
            "status": status,
            "createdAt": "2025-05-01T10:00:00.000Z",
            "updatedAt": "2025-05-01T10:00:00.000Z",
        }

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, {"message": message, "error": message, "statusCode": status})

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return self.error(404, f"Cannot {request.method} {request.path}")
        if request.bearer() != self.api_key:
            return Reply(
                401,
                {
                    "message": "Invalid Key. Hot tip, you may be using the private key instead "
                    "of the public key, or vice versa.",
                    "error": "Unauthorized",
                    "statusCode": 401,
                },
            )
        parts = request.path.strip("/").split("/")
        if parts == ["assistant"]:
            limit = int(request.query.get("limit", "100"))
            return Reply(200, list(self.assistants.values())[:limit])
        if len(parts) == 2 and parts[0] == "assistant":
            found = self.assistants.get(parts[1])
            return Reply(200, found) if found else self.error(404, "Assistant not found")
        if len(parts) == 2 and parts[0] == "phone-number":
            found = self.phone_numbers.get(parts[1])
            return Reply(200, found) if found else self.error(404, "Phone Number not found")
        return self.error(404, f"Cannot GET {request.path}")
