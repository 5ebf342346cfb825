"""Content negotiation shared by the endpoints that serve pre-rendered bodies."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request, Response

from app.units import json_default

# See app.metrics.GZIP_LEVEL: fast, and JSON of many checks still shrinks several times.
GZIP_LEVEL = 1
# Bodies smaller than this are sent as they are: gzip would save less than its own overhead.
GZIP_MIN_BYTES = 1024


def accepts_gzip(request: Request) -> bool:
    """Whether the client accepts a gzip-compressed body (``Accept-Encoding``, q > 0)."""
    for coding in request.headers.get("accept-encoding", "").split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=").strip()
            try:
                return not quality or float(quality) > 0
            except ValueError:
                return False
    return False


def json_bytes(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=json_default).encode()


def cached_response(
    request: Request,
    cache: dict[str, bytes],
    key: str,
    render: Callable[[], bytes],
    *,
    media_type: str = "application/json",
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A body rendered once into ``cache`` (a snapshot's ``rendered``), and its gzip copy made
    once for clients that accept it."""
    body = cache.get(key)
    if body is None:
        body = cache[key] = render()
    sent = {**(headers or {}), "Vary": "Accept-Encoding"}
    if len(body) >= GZIP_MIN_BYTES and accepts_gzip(request):
        compressed = cache.get(key + ".gz")
        if compressed is None:
            compressed = cache[key + ".gz"] = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        body = compressed
        sent["Content-Encoding"] = "gzip"
    return Response(body, status_code, sent, media_type=media_type)
