"""``whatsapp``: the WhatsApp Business phone number is connected and its quality is usable."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr

from app.checks import base
from app.checks._http import HttpResponse
from app.checks._vendor import ApiCheck, base_url_of, require
from app.checks.base import CheckFailed, Result

_FIELDS = "display_phone_number,verified_name,quality_rating,status,name_status"
# Phone number states in which messages cannot be sent.
_FAILED_STATES = {"DISCONNECTED", "FLAGGED", "RESTRICTED", "BANNED", "DELETED", "OFFLINE"}
# Graph API error codes: 190 invalid or expired access token; 10 and 200-299 missing permission;
# 100 with subcode 33 an object that does not exist; 4, 17, 32, 613, 80007, 130429 rate limits.
_TOKEN_ERRORS = {190}
_RATE_LIMIT_ERRORS = {4, 17, 32, 613, 80007, 130429}


class WhatsAppCheck(ApiCheck["WhatsAppCheck.Params"]):
    """Reads the phone number on the Graph API (``GET /{version}/{phone_number_id}``).

    ``CONNECTED`` passes; disconnected, flagged, restricted or banned numbers fail; a RED quality
    rating warns (Meta lowers the messaging limit, then may disconnect the number).
    """

    class Params(base.Params):
        token: SecretStr = Field(description="Access token of the WhatsApp Business app.")
        phone_number_id: str = Field(
            pattern=r"^[0-9]{5,32}$", description="ID of the business phone number (digits)."
        )
        api_version: str = Field(
            "v21.0", pattern=r"^v[0-9]+\.[0-9]+$", description="Graph API version, e.g. v21.0."
        )
        base_url: str = Field(
            "https://graph.facebook.com", description="Base URL of the Graph API (a test server)."
        )

    vendor: ClassVar[str] = "WhatsApp (Graph API)"

    def client_options(self) -> dict[str, Any]:
        p = self.params
        return {
            "base_url": base_url_of(p.base_url),
            "headers": {"Authorization": f"Bearer {p.token.get_secret_value()}"},
        }

    async def run(self) -> Result:
        p = self.params
        response = await self.http.request(
            "GET",
            f"/{p.api_version}/{quote(p.phone_number_id, safe='')}",
            params={"fields": _FIELDS},
        )
        if not response.is_success:
            raise self._graph_failure(response)
        phone = self.http.json(response)
        status = require(phone, "status", str, self.vendor).upper()
        quality = str(phone.get("quality_rating") or "UNKNOWN").upper()
        label = phone.get("display_phone_number") or p.phone_number_id
        details = {
            "status": status,
            "quality_rating": quality,
            "name_status": phone.get("name_status"),
        }
        if status in _FAILED_STATES:
            raise CheckFailed(
                f"WhatsApp number {label} is {status}; messages to customers are not delivered "
                "until it is reconnected or reviewed in WhatsApp Manager.",
                context=details,
            )
        if status != "CONNECTED":
            return self.warned(
                f"WhatsApp number {label} is {status}, not CONNECTED; sending may be limited.",
                details=details,
            )
        if quality == "RED":
            return self.warned(
                f"WhatsApp number {label} has a RED quality rating; Meta may lower its messaging "
                "limit or disconnect it. Check recent customer blocks and reports.",
                details=details,
            )
        return self.passed(
            f"WhatsApp number {label} is CONNECTED with quality {quality}.", details=details
        )

    def _graph_failure(self, response: HttpResponse) -> CheckFailed:
        """Graph API errors by their error code; the HTTP status alone is often 400."""
        code = subcode = None
        try:
            error = response.json().get("error")
        except (ValueError, UnicodeDecodeError, AttributeError):
            error = None
        if isinstance(error, dict):
            code, subcode = error.get("code"), error.get("error_subcode")
        detail = self.http.error_detail(response)
        said = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
        number = self.params.phone_number_id
        context = {"status_code": response.status_code, "graph_error_code": code}
        if code in _TOKEN_ERRORS or response.status_code == 401:
            return CheckFailed(
                f"The Graph API rejected the WhatsApp access token ({said}); it is wrong, expired "
                "or revoked. Issue a new system-user token.",
                permanent=True,
                context=context,
            )
        if (code == 100 and subcode == 33) or response.status_code == 404:
            return CheckFailed(
                f"The Graph API has no WhatsApp phone number {number} visible to this token "
                f"({said}); the phone_number_id is wrong or the token belongs to another business.",
                permanent=True,
                context=context,
            )
        if code in _RATE_LIMIT_ERRORS or response.status_code == 429:
            return CheckFailed(
                f"The Graph API is rate-limiting this token ({said}); the application may be "
                "throttled too.",
                context=context,
            )
        if (
            code == 10
            or (isinstance(code, int) and 200 <= code <= 299)
            or response.status_code == 403
        ):
            return CheckFailed(
                f"The WhatsApp access token may not read phone number {number} ({said}); grant "
                "it the whatsapp_business_management permission.",
                permanent=True,
                context=context,
            )
        return self.http.status_failure(
            response, credential="access token", resource=f"phone number {number}"
        )
