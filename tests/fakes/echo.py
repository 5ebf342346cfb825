"""A vendor API (or a proxy in front of it) that echoes the credentials it was sent.

Some APIs and many proxies put the rejected ``Authorization`` header into their error body, as
it arrived: ``Basic <base64 of user:password>`` or ``Bearer <token>``. The first path segment
chooses the status (``/401/...``, ``/500/...``; anything else 401), so one fake serves checks
pointed at each kind of failure through their ``base_url``. The echo appears in every place a
check might read: the JSON ``message``, ``error.message``, a header and the raw text.
"""

from __future__ import annotations

from tests.fakes.base import FakeApi, Reply, Request


class EchoingVendor(FakeApi):
    vendor = "echo"

    def handle(self, request: Request) -> Reply:
        first = request.path.strip("/").partition("/")[0]
        status = int(first) if first.isdigit() else 401
        authorization = request.headers.get("authorization", "")
        said = f"invalid credentials: auth={authorization}"
        return Reply(
            status,
            {
                "message": said,
                "error": {"message": said, "code": status},
                "detail": said,
                "status": status,
            },
            headers={"X-Rejected-Authorization": authorization},
        )

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, {"message": message})
