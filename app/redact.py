"""Keeping secrets out of outputs, logs, metrics and API responses.

Every secret drwatch is given (SecretStr params, tokens, passwords inside DSNs) is registered here
when the configuration is loaded. :func:`scrub` replaces any registered secret in a string; the
runner scrubs every check output and the log formatter scrubs every log line, so a secret that a
driver echoes back in an error message still never leaves the process.

A secret is also scrubbed in the forms a server or proxy echoes it in: percent-encoded (a query
string) and base64 (an ``Authorization: Basic`` header, which encodes ``user:password``). Base64
of a longer text encodes the secret differently depending on where it starts (its offset modulo
3), so each of the three alignments is registered: the characters that depend on the secret alone.
Masking them leaves nothing of the secret to decode, whatever surrounds it.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit, urlunsplit

MASK = "***"
# Shorter strings are too likely to occur in ordinary text ("a", "1234") to be scrubbed safely.
_MIN_SECRET_LENGTH = 4
# A base64 fragment shorter than this could match ordinary base64 (ids, hashes) by chance.
_MIN_ENCODED_LENGTH = 8

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def register(values: Iterable[str]) -> None:
    """Add secrets to scrub from now on."""
    global _secrets, _pattern
    plain = {v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}
    new = plain | {form for v in plain for form in encoded_forms(v)}
    with _lock:
        if new <= _secrets:
            return
        _secrets = _secrets | new
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def encoded_forms(secret: str) -> set[str]:
    """The percent-encoded and base64 forms of ``secret`` that :func:`scrub` also masks."""
    forms = {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        # Characters before this one mix in the bytes in front of the secret, characters from
        # the end one on mix in the bytes after it (6 bits per character, 8 per byte).
        first = -(-8 * offset // 6)
        end = 8 * (offset + len(raw)) // 6
        core = encoded[first:end]
        if len(core) >= _MIN_ENCODED_LENGTH:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    forms.discard(secret)
    return forms


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``, and URL passwords masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _URL_USERINFO.sub(_mask_userinfo, text)


# scheme://user:password@host -> scheme://user:***@host, for URLs we were never told about.
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):([^@\s/]+)@")


def _mask_userinfo(match: re.Match[str]) -> str:
    return f"{match.group(1)}:{MASK}@"


def url_password(url: str) -> str | None:
    """The password part of a URL or DSN (percent-decoded), or None."""
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    return unquote(password) if password else None


def redact_url(url: str) -> str:
    """A URL safe to show: the password replaced by ``***``, the query string dropped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username:
        user = parts.username + (f":{MASK}" if parts.password else "")
        netloc = f"{user}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# Query parameters of a connection URL that carry a credential (libpq, redis-py, drivers).
_SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "token", "secret", "sslpassword"})


def secret_parts(value: str) -> list[str]:
    """What to scrub of a secret setting: for a URL or DSN, its password (as written and
    percent-decoded) and credential query parameters; for anything else, the whole value.

    Host, port, user and database of a connection URL are not secret: scrubbing the whole URL
    would blank them out of every message that names the server ("archive_mode is off on ***").
    """
    if "://" not in value:
        return [value] if value else []
    try:
        parts = urlsplit(value)
        raw_password = parts.password
    except ValueError:
        return [value]
    found = [raw_password, unquote(raw_password)] if raw_password else []
    for key, secret in parse_qsl(parts.query, keep_blank_values=False):
        if key.lower() in _SECRET_QUERY_KEYS:
            found.append(secret)
    return found
