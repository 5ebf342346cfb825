"""``google_calendar``: a service account can get an access token and read the calendar."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from google.auth import crypt, jwt
from pydantic import Field, SecretStr, model_validator

from app.checks import base
from app.checks._vendor import ApiCheck, base_url_of, require
from app.checks.base import CheckContext, CheckFailed, Result

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ASSERTION_LIFETIME = 3600
# Refresh this long before the token expires, so a run never sends a token that expires in flight.
_REFRESH_MARGIN = 300.0


class GoogleCalendarCheck(ApiCheck["GoogleCalendarCheck.Params"]):
    """Exchanges a signed JWT for an access token (OAuth2 JWT-bearer grant, RFC 7523), caches it
    until shortly before it expires, then reads ``GET /calendar/v3/calendars/{calendarId}``.

    A refused key fails permanently; 404 and 403 fail with a message naming the calendar and the
    service account's email, since the usual cause is a calendar not shared with that account.
    """

    class Params(base.Params):
        credentials_file: Path | None = Field(
            None,
            description="JSON key file of the service account; give it or credentials_json.",
        )
        credentials_json: SecretStr | None = Field(
            None,
            description="The service account's JSON key itself; give it or credentials_file.",
        )
        calendar_id: str = Field(
            min_length=1,
            description="The calendar to read, shared with the service account (e.g. its email).",
        )
        token_uri: str | None = Field(
            None,
            description="Where access tokens are obtained; default: the key's token_uri.",
        )
        scope: str = Field(
            CALENDAR_SCOPE, description="OAuth scope the access token is requested for."
        )
        base_url: str = Field(
            "https://www.googleapis.com",
            description="Base URL of the Google APIs (a test server or a proxy).",
        )

        @model_validator(mode="after")
        def _one_key(self) -> GoogleCalendarCheck.Params:
            if (self.credentials_file is None) == (self.credentials_json is None):
                raise ValueError("give exactly one of credentials_file or credentials_json")
            return self

    vendor: ClassVar[str] = "Google Calendar"

    def __init__(
        self,
        name: str,
        params: GoogleCalendarCheck.Params,
        *,
        timeout: float,
        context: CheckContext | None = None,
    ) -> None:
        super().__init__(name, params, timeout=timeout, context=context)
        self._key: dict[str, Any] | None = None
        self._signer: crypt.Signer | None = None
        self._token: str | None = None
        self._token_expires_at = 0.0

    def secrets(self) -> list[str]:
        found = super().secrets()
        if self._key is not None and isinstance(self._key.get("private_key"), str):
            found.append(self._key["private_key"])
        return found

    def client_options(self) -> dict[str, Any]:
        return {"base_url": base_url_of(self.params.base_url)}

    # -- the service account key

    def _load_key(self) -> tuple[dict[str, Any], crypt.Signer]:
        if self._key is not None and self._signer is not None:
            return self._key, self._signer
        p = self.params
        source = str(p.credentials_file) if p.credentials_file else "credentials_json"
        try:
            if p.credentials_file is not None:
                text = p.credentials_file.read_text()
            else:
                text = p.credentials_json.get_secret_value() if p.credentials_json else ""
            info = json.loads(text)
        except OSError as exc:
            raise CheckFailed(
                f"The Google service account key {source} cannot be read ({exc.strerror}); "
                "check the path and the file's permissions.",
                permanent=True,
            ) from None
        except ValueError:
            raise CheckFailed(
                f"The Google service account key {source} is not JSON; download the key again "
                "from the Google Cloud console.",
                permanent=True,
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise CheckFailed(
                f"{source} is not a service account key (its type is not 'service_account').",
                permanent=True,
            )
        for key in ("client_email", "private_key"):
            if not isinstance(info.get(key), str):
                raise CheckFailed(
                    f"The Google service account key {source} has no {key}; download it again.",
                    permanent=True,
                )
        try:
            signer = crypt.RSASigner.from_service_account_info(info)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError):
            raise CheckFailed(
                f"The private key in {source} cannot be loaded; download the key again.",
                permanent=True,
            ) from None
        self._key, self._signer = info, signer
        if self._client is not None:
            self._client.secrets.extend(s for s in self.secrets() if s not in self._client.secrets)
        return info, signer

    @property
    def _email(self) -> str:
        return str(self._key.get("client_email")) if self._key else "the service account"

    # -- the access token

    async def _access_token(self) -> str:
        if self._token is not None and time.time() < self._token_expires_at - _REFRESH_MARGIN:
            return self._token
        key, signer = self._load_key()
        token_uri = self.params.token_uri or key.get("token_uri") or GOOGLE_TOKEN_URI
        now = int(time.time())
        assertion = jwt.encode(  # type: ignore[no-untyped-call]
            signer,
            {
                "iss": key["client_email"],
                "scope": self.params.scope,
                "aud": token_uri,
                "iat": now,
                "exp": now + _ASSERTION_LIFETIME,
            },
        )
        response = await self.http.request(
            "POST",
            token_uri,
            data={"grant_type": _JWT_BEARER, "assertion": assertion.decode()},
        )
        if response.status_code in (400, 401, 403):
            detail = self._oauth_error(response)
            raise CheckFailed(
                f"Google refused the service account key of {self._email} "
                f"(HTTP {response.status_code}: {detail or 'no reason given'}); the key was "
                "deleted or disabled, or the account no longer exists. Create a new key.",
                permanent=True,
                context={"status_code": response.status_code},
            )
        if not response.is_success:
            raise self.http.status_failure(response, resource="an access token")
        body = self.http.json(response)
        token = require(body, "access_token", str, "Google's token endpoint")
        lifetime = body.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        self._token, self._token_expires_at = token, time.time() + lifetime
        return token

    def _oauth_error(self, response: Any) -> str:
        """``invalid_grant: Invalid JWT Signature`` from an RFC 6749 error body."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return ""
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return self.http.error_detail(response)
        parts = [body["error"], body.get("error_description")]
        return self.http.scrub(": ".join(str(p) for p in parts if p))[:160]

    # -- the calendar

    async def run(self) -> Result:
        token = await self._access_token()
        calendar = self.params.calendar_id
        response = await self.http.request(
            "GET",
            f"/calendar/v3/calendars/{quote(calendar, safe='')}",
            headers={"Authorization": f"Bearer {token}"},
        )
        details = {"calendar_id": calendar, "service_account": self._email}
        if response.status_code == 401:
            # The cached token was revoked or expired early: get a new one on the next run.
            self._token = None
        if response.status_code == 404:
            raise CheckFailed(
                f"Google Calendar has no calendar {calendar!r} that {self._email} can see; the "
                "calendar_id is wrong, or the calendar is not shared with that service account.",
                permanent=True,
                context=details,
            )
        if response.status_code == 403 and not _is_rate_limit(response):
            raise CheckFailed(
                f"{self._email} may not read Google calendar {calendar!r} "
                f"({self.http.error_detail(response) or 'HTTP 403'}); share the calendar with that "
                "service account, or enable the Calendar API in its project.",
                permanent=True,
                context=details,
            )
        if not response.is_success:
            raise self.http.status_failure(
                response, credential="access token", resource=f"calendar {calendar!r}"
            )
        body = self.http.json(response)
        require(body, "id", str, "Google Calendar")
        summary = body.get("summary") or calendar
        return self.passed(f"{self._email} can read Google calendar {summary!r}.", details=details)


def _is_rate_limit(response: Any) -> bool:
    """Google answers some rate limits with 403 and reason rateLimitExceeded."""
    try:
        errors = response.json()["error"]["errors"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return False
    return any(
        isinstance(e, dict) and "ratelimit" in str(e.get("reason", "")).lower() for e in errors
    )
