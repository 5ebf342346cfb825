"""Google's OAuth2 token endpoint (JWT-bearer grant) and the Calendar API v3 calendars resource."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from tests.fakes.base import FakeApi, Reply, Request

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/calendar.readonly"


@dataclass
class Calendar:
    calendar_id: str
    summary: str
    shared_with: set[str] = field(default_factory=set)


class FakeGoogle(FakeApi):
    """Serves ``POST /token`` and ``GET /calendar/v3/calendars/{calendarId}``.

    The token endpoint verifies the assertion's RS256 signature with the service account's public
    key, its audience and its scope, like Google does.
    """

    vendor = "google"

    def __init__(self) -> None:
        super().__init__()
        self.public_keys: dict[str, tuple[str, str]] = {}  # key id -> (email, public PEM)
        self.tokens: dict[str, str] = {}  # access token -> email
        self.calendars: dict[str, Calendar] = {}
        self.tokens_issued = 0
        self.token_lifetime = 3599

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account_key(self, email: str, *, registered: bool = True) -> dict[str, Any]:
        """A key file's contents; ``registered=False`` makes a key Google does not know."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        if registered:
            self.public_keys[key_id] = (email, public)
        return {
            "type": "service_account",
            "project_id": "booking-prod",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": "104729348263847263847",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def add_calendar(self, calendar: Calendar) -> None:
        self.calendars[calendar.calendar_id] = calendar

    def error(self, status: int, message: str) -> Reply:
        reasons = {401: "authError", 403: "forbidden", 404: "notFound", 429: "rateLimitExceeded"}
        states = {
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
        }
        return Reply(
            status,
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [
                        {
                            "message": message,
                            "domain": "global",
                            "reason": reasons.get(status, "backendError"),
                        }
                    ],
                    "status": states.get(status, "UNKNOWN"),
                }
            },
        )

    def handle(self, request: Request) -> Reply:
        if request.path == "/token":
            return self._token(request)
        prefix = "/calendar/v3/calendars/"
        if request.path.startswith(prefix) and request.method == "GET":
            return self._calendar(request, unquote(request.path[len(prefix) :]))
        return self.error(404, "Not Found")

    def _token(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(405, {"error": "invalid_request", "error_description": "POST only"})
        form = request.form
        if form.get("grant_type") != JWT_BEARER:
            return Reply(
                400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
            )
        assertion = form.get("assertion", "")
        try:
            header = jwt.decode_header(assertion)
            email, public = self.public_keys[header.get("kid", "")]
            claims = jwt.decode(assertion, certs=public, audience=self.token_uri)
        except (ValueError, KeyError):
            return Reply(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        if claims.get("iss") != email or SCOPE not in str(claims.get("scope", "")).split():
            return Reply(400, {"error": "invalid_scope", "error_description": "Invalid scope."})
        token = "ya29." + secrets.token_urlsafe(40)
        self.tokens[token] = email
        self.tokens_issued += 1
        return Reply(
            200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _calendar(self, request: Request, calendar_id: str) -> Reply:
        email = self.tokens.get(request.bearer() or "")
        if email is None:
            return self.error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )
        calendar = self.calendars.get(calendar_id)
        if calendar is None or email not in calendar.shared_with:
            return self.error(404, "Not Found")
        return Reply(
            200,
            {
                "kind": "calendar#calendar",
                "etag": f'"{int(time.time())}"',
                "id": calendar.calendar_id,
                "summary": calendar.summary,
                "timeZone": "Europe/Berlin",
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
            },
        )
