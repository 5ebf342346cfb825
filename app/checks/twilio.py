"""``twilio``: the Twilio account is active, and optionally its balance is above a minimum."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr

from app.checks import base
from app.checks._vendor import ApiCheck, base_url_of, require
from app.checks.base import CheckFailed, Result


class TwilioCheck(ApiCheck["TwilioCheck.Params"]):
    """Reads ``GET /2010-04-01/Accounts/{AccountSid}.json`` with basic auth.

    ``active`` passes; ``suspended`` and ``closed`` fail (Twilio refuses SMS and calls). With
    ``min_balance``, also reads the account's Balance resource and warns below it (SMS stops when
    the balance runs out, so an empty balance fails).
    """

    class Params(base.Params):
        account_sid: str = Field(
            pattern=r"^AC[0-9a-fA-F]{32}$",
            description="The account SID, AC followed by 32 hex digits.",
        )
        auth_token: SecretStr = Field(description="The account's auth token.")
        min_balance: float | None = Field(
            None, ge=0, description="Warn when the balance (account currency) falls below this."
        )
        base_url: str = Field(
            "https://api.twilio.com", description="Base URL of the Twilio API (a test server)."
        )

    vendor: ClassVar[str] = "Twilio"

    def client_options(self) -> dict[str, Any]:
        p = self.params
        return {
            "base_url": base_url_of(p.base_url),
            "auth": (p.account_sid, p.auth_token.get_secret_value()),
        }

    async def run(self) -> Result:
        sid = self.params.account_sid
        account = await self.get_json(
            f"/2010-04-01/Accounts/{sid}.json",
            resource=f"account {sid}",
            credential="account SID and auth token",
        )
        status = require(account, "status", str, "Twilio")
        name = account.get("friendly_name") or sid
        details: dict[str, Any] = {
            "account_status": status,
            "account_type": account.get("type"),
        }
        if status == "suspended":
            raise CheckFailed(
                f"Twilio account {name!r} is suspended; Twilio refuses its SMS and calls until it "
                "is reactivated (usually billing or a compliance review).",
                permanent=True,
                context=details,
            )
        if status == "closed":
            raise CheckFailed(
                f"Twilio account {name!r} is closed; SMS and calls cannot be sent from it.",
                permanent=True,
                context=details,
            )
        if status != "active":
            raise CheckFailed(
                f"Twilio reports account {name!r} as {status!r}, not active; SMS and calls may "
                "be refused.",
                context=details,
            )
        if self.params.min_balance is None:
            return self.passed(f"Twilio account {name!r} is active.", details=details)
        return await self._balance(name, details)

    async def _balance(self, name: str, details: dict[str, Any]) -> Result:
        minimum = self.params.min_balance or 0.0
        sid = self.params.account_sid
        body = await self.get_json(
            f"/2010-04-01/Accounts/{sid}/Balance.json",
            resource=f"balance of account {sid}",
            credential="account SID and auth token",
        )
        text = require(body, "balance", str, "Twilio")
        try:
            balance = float(text)
        except ValueError:
            raise CheckFailed(
                f"Twilio answered a balance of {text[:20]!r}, which is not a number; its API "
                "may have changed."
            ) from None
        currency = str(body.get("currency") or "")
        details = {**details, "balance": balance, "currency": currency}
        amount = f"{balance:.2f} {currency}".strip()
        measured: dict[str, Any] = {
            "observed_value": balance,
            "observed_unit": currency or None,
            "details": details,
        }
        if balance <= 0:
            return self.failed(
                f"Twilio account {name!r} has a balance of {amount}; SMS and calls stop until it "
                "is topped up.",
                **measured,
            )
        if balance < minimum:
            return self.warned(
                f"Twilio account {name!r} has a balance of {amount}, below the {minimum:.2f} "
                "minimum; top it up before SMS stops.",
                **measured,
            )
        return self.passed(f"Twilio account {name!r} is active with {amount}.", **measured)
