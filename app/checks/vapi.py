"""``vapi``: the VAPI API accepts the key, and the configured assistant or phone number exists."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr

from app.checks import base
from app.checks._vendor import ApiCheck, base_url_of, require
from app.checks.base import CheckFailed, Result

# Phone-number states in which VAPI cannot take or place calls.
_UNUSABLE_PHONE_STATES = {"blocked"}


class VapiCheck(ApiCheck["VapiCheck.Params"]):
    """With a bearer key: fetches ``assistant_id`` and/or ``phone_number_id`` when configured,
    otherwise lists assistants (``GET /assistant?limit=1``). A missing assistant or phone number
    fails, permanently.
    """

    class Params(base.Params):
        api_key: SecretStr = Field(description="The VAPI private API key.")
        assistant_id: str | None = Field(
            None, description="An assistant the application uses; fail when it is gone."
        )
        phone_number_id: str | None = Field(
            None, description="A phone number the application uses; fail when it is gone."
        )
        base_url: str = Field(
            "https://api.vapi.ai", description="Base URL of the VAPI API (a test server)."
        )

    vendor: ClassVar[str] = "VAPI"

    def client_options(self) -> dict[str, Any]:
        p = self.params
        return {
            "base_url": base_url_of(p.base_url),
            "headers": {"Authorization": f"Bearer {p.api_key.get_secret_value()}"},
        }

    async def run(self) -> Result:
        p = self.params
        found: list[str] = []
        details: dict[str, Any] = {}
        if p.assistant_id:
            assistant = await self.get_json(
                f"/assistant/{quote(p.assistant_id, safe='')}",
                resource=f"assistant {p.assistant_id}",
            )
            require(assistant, "id", str, "VAPI")
            label = assistant.get("name") or p.assistant_id
            found.append(f"assistant {label!r}")
            details["assistant_id"] = p.assistant_id
        if p.phone_number_id:
            phone = await self.get_json(
                f"/phone-number/{quote(p.phone_number_id, safe='')}",
                resource=f"phone number {p.phone_number_id}",
            )
            require(phone, "id", str, "VAPI")
            label = phone.get("number") or phone.get("name") or p.phone_number_id
            state = phone.get("status")
            details["phone_number_id"] = p.phone_number_id
            details["phone_number_status"] = state
            if isinstance(state, str) and state in _UNUSABLE_PHONE_STATES:
                raise CheckFailed(
                    f"VAPI phone number {label} is {state}; calls to and from it fail until it is "
                    "unblocked.",
                    context=details,
                )
            found.append(f"phone number {label}")
        if not found:
            assistants = await self.get_json(
                "/assistant", resource="assistants", params={"limit": "1"}
            )
            if not isinstance(assistants, list):
                raise CheckFailed(
                    "VAPI answered the assistant list with something other than a list; its API "
                    "may have changed, or something else answers at the configured base_url."
                )
            details["assistants_seen"] = len(assistants)
            return self.passed("VAPI accepts the API key and lists assistants.", details=details)
        return self.passed(f"VAPI has {' and '.join(found)}.", details=details)
