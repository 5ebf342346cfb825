"""Keeping secrets out of what drwatch shows: registered secrets, URL passwords, safe URLs.

Registered secrets stay registered for the life of the process, so each test registers values
made up for it alone.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from app import redact
from tests.credentials import fake_secret


def test_a_registered_secret_is_scrubbed_wherever_it_appears() -> None:
    """Every occurrence, also inside a longer word, becomes ***."""
    secret = fake_secret("tok-", 20)
    redact.register([secret])
    text = f"login with {secret} failed (token={secret}!)"
    assert redact.scrub(text) == "login with *** failed (token=***!)"


def test_the_longest_secret_is_replaced_whole() -> None:
    """A secret that contains another one is masked whole, not as *** plus its tail."""
    short = fake_secret("pw-", 8)
    long = short + "-and-more"
    redact.register([short])
    redact.register([long])
    assert redact.scrub(f"[{long}] [{short}]") == "[***] [***]"


def test_short_and_empty_strings_are_not_scrubbed() -> None:
    """Values under four characters would mask ordinary text, so they are not registered."""
    redact.register(["", "ab", "xyz"])
    assert redact.scrub("ab xyz") == "ab xyz"
    four = fake_secret(length=4, alphabet="QWJKZ")
    redact.register([four])
    assert redact.scrub(f"<{four}>") == "<***>"


def test_url_passwords_are_masked_without_being_registered() -> None:
    """user:password@ in any URL in a message loses its password; the user stays."""
    text = "could not connect to postgresql://app:pw9-unregistered@db:5432/app: timeout"
    assert redact.scrub(text) == "could not connect to postgresql://app:***@db:5432/app: timeout"
    assert redact.scrub("redis://cache:6379/0 and https://user@host/") == (
        "redis://cache:6379/0 and https://user@host/"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cret@db.internal:5432/app?sslmode=require&password=x",
            "postgresql://app:***@db.internal:5432/app",
        ),
        ("https://api.example.com/v1/models?key=abc", "https://api.example.com/v1/models"),
        ("redis://user@cache:6379/0", "redis://user@cache:6379/0"),
        ("http://[::1", "<unparseable URL>"),
        ("http://host:99999/", "<unparseable URL>"),
    ],
    ids=["password-and-query", "query", "user-only", "bad-ipv6", "bad-port"],
)
def test_redact_url_masks_the_password_and_drops_the_query(url: str, shown: str) -> None:
    """The query string can carry tokens too, so it is dropped."""
    assert redact.redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql://app:p%40ss@db/app", "p@ss"),
        ("postgresql://app@db/app", None),
        ("host=db password=x", None),
    ],
)
def test_url_password_reads_the_decoded_password(url: str, password: str | None) -> None:
    """The password is percent-decoded, so the registered value is the one a driver echoes."""
    assert redact.url_password(url) == password


def test_of_a_connection_url_only_the_password_is_secret() -> None:
    """Host, port, user and database stay readable; the password (also percent-encoded) and
    credential query parameters are what gets scrubbed."""
    assert redact.secret_parts("postgresql://app@db.internal:5432/booking") == []
    assert redact.secret_parts("postgresql://app:p%40ss@db:5432/booking") == ["p%40ss", "p@ss"]
    assert redact.secret_parts("redis://db:6379/0?password=s3cret&db=1") == ["s3cret"]
    assert redact.secret_parts("sk-not-a-url") == ["sk-not-a-url"]


@pytest.mark.parametrize("user", ["", "A", "AC", "ACb430e7"])
def test_a_secret_inside_basic_credentials_is_scrubbed(user: str) -> None:
    """base64 of user:secret loses every character that depends on the secret, at any offset."""
    secret = fake_secret("tok", 29)
    redact.register([secret])
    encoded = base64.b64encode(f"{user}:{secret}".encode()).decode()
    shown = redact.scrub(f"auth=Basic {encoded}")
    assert encoded not in shown
    assert redact.MASK in shown
    # What is left decodes to the user and at most two characters next to the secret.
    for part in shown.removeprefix("auth=Basic ").split(redact.MASK):
        assert len(part) <= len(base64.b64encode(f"{user}:".encode())) + 4


def test_percent_encoded_and_plain_base64_secrets_are_scrubbed() -> None:
    """A secret echoed in a query string or as base64 on its own is masked too."""
    secret = fake_secret("p@ss/", 20)
    redact.register([secret])
    assert redact.scrub(f"GET /x?key={quote(secret, safe='')}") == "GET /x?key=***"
    assert secret not in redact.scrub(base64.b64encode(secret.encode()).decode())
    assert base64.b64encode(secret.encode()).decode()[:-4] not in redact.scrub(
        base64.b64encode(secret.encode()).decode()
    )
