"""A generic web endpoint for the ``http`` and ``tls`` checks (HTTP or HTTPS)."""

from __future__ import annotations

from tests.fakes.base import FakeApi, Reply, Request


class Endpoint(FakeApi):
    """``/health`` JSON, ``/text`` plain text, ``/redirect`` -> ``/health``, ``/status/{code}``,
    ``/private`` behind a bearer token, ``/basic`` behind basic auth.
    """

    vendor = "endpoint"
    token = "endpoint-bearer-secret"
    basic = ("monitor", "endpoint-basic-secret")

    def handle(self, request: Request) -> Reply:
        path = request.path
        if path == "/health":
            return Reply(200, {"status": "ok", "checks": [{"name": "db", "state": "up"}]})
        if path == "/text":
            return Reply(200, raw=b"hello from the booking service", content_type="text/plain")
        if path == "/redirect":
            return Reply(302, raw=b"", content_type="text/plain", headers={"Location": "/health"})
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return Reply(code, {"status": "error", "code": code})
        if path == "/private":
            if request.bearer() != self.token:
                return Reply(401, {"error": "unauthorized"})
            return Reply(200, {"status": "ok"})
        if path == "/basic":
            if request.basic() != self.basic:
                return Reply(401, {"error": "unauthorized"})
            return Reply(200, {"status": "ok"})
        if path == "/echo" and request.method == "POST":
            return Reply(200, raw=request.body, content_type="text/plain")
        return Reply(404, {"error": "not found"})
