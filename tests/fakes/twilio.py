"""Twilio's REST API (2010-04-01): the Account and Balance resources, basic auth."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.fakes.base import FakeApi, Reply, Request

_ACCOUNT = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})(\.json|/Balance\.json)$")


@dataclass
class Account:
    sid: str
    auth_token: str
    status: str = "active"
    balance: str = "25.50"
    friendly_name: str = "Booking service"


class FakeTwilio(FakeApi):
    vendor = "twilio"

    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, Account] = {}

    def add(self, account: Account) -> Account:
        self.accounts[account.sid] = account
        return account

    def error(self, status: int, message: str) -> Reply:
        code = {401: 20003, 403: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}
        return Reply(
            status,
            {
                "code": code.get(status, 20000 + status),
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code.get(status, status)}",
                "status": status,
            },
        )

    def handle(self, request: Request) -> Reply:
        match = _ACCOUNT.match(request.path)
        if match is None:
            return self.error(404, f"The requested resource {request.path} was not found")
        if request.method != "GET":
            return self.error(405, "Method not allowed")
        credentials = request.basic()
        caller = self.accounts.get(credentials[0]) if credentials else None
        if credentials is None or caller is None or caller.auth_token != credentials[1]:
            return self.error(401, "Authenticate")
        sid, resource = match.groups()
        account = self.accounts.get(sid)
        if account is None or sid != caller.sid:
            return self.error(404, f"The requested resource {request.path} was not found")
        if resource == "/Balance.json":
            return Reply(200, {"account_sid": sid, "balance": account.balance, "currency": "USD"})
        return Reply(
            200,
            {
                # Twilio really returns the auth token in the Account resource.
                "auth_token": account.auth_token,
                "date_created": "Mon, 03 Mar 2025 10:00:00 +0000",
                "date_updated": "Mon, 03 Mar 2025 10:00:00 +0000",
                "friendly_name": account.friendly_name,
                "owner_account_sid": sid,
                "sid": sid,
                "status": account.status,
                "subresource_uris": {
                    "balance": f"/2010-04-01/Accounts/{sid}/Balance.json",
                },
                "type": "Full",
                "uri": f"/2010-04-01/Accounts/{sid}.json",
            },
        )
