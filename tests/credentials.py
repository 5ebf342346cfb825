"""Credentials for tests, made up at run time so no secret-shaped string is ever committed.

Each keeps the shape of the vendor's real ones (prefix, alphabet), which the fakes in
tests/fakes check the way the vendor would.
"""

from __future__ import annotations

import secrets
import string

_ALPHANUMERIC = string.ascii_letters + string.digits


def fake_secret(prefix: str = "", length: int = 32, alphabet: str = _ALPHANUMERIC) -> str:
    """``prefix`` followed by ``length`` random characters from ``alphabet``."""
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def fake_aws_credentials() -> dict[str, str]:
    """An access key id and secret key in AWS's shapes, for moto and the fake RDS API."""
    return {
        "AWS_ACCESS_KEY_ID": fake_secret("AKIA", 16, string.ascii_uppercase + string.digits),
        "AWS_SECRET_ACCESS_KEY": fake_secret(length=40, alphabet=_ALPHANUMERIC + "/+"),
    }
