"""An Atlassian Statuspage's public API (``/api/v2/status.json``, ``/api/v2/components.json``)."""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeApi, Reply, Request

_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}


class FakeStatuspage(FakeApi):
    vendor = "statuspage"

    def __init__(self, name: str = "Twilio") -> None:
        super().__init__()
        self.name = name
        self.indicator = "none"
        self.components: dict[str, str] = {
            "REST API": "operational",
            "SMS": "operational",
            "Voice": "operational",
        }

    def _page(self) -> dict[str, Any]:
        return {
            "id": "gpkpyklzq55q",
            "name": self.name,
            "url": f"https://status.{self.name.lower()}.com",
            "time_zone": "Etc/UTC",
            "updated_at": "2026-11-22T12:00:00.000Z",
        }

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, {"error": message})

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return self.error(405, "Method Not Allowed")
        if request.path == "/api/v2/status.json":
            return Reply(
                200,
                {
                    "page": self._page(),
                    "status": {
                        "indicator": self.indicator,
                        "description": _DESCRIPTIONS.get(self.indicator, self.indicator),
                    },
                },
            )
        if request.path == "/api/v2/components.json":
            components = [
                {
                    "id": f"c{index:03d}",
                    "name": name,
                    "status": state,
                    "created_at": "2024-01-01T00:00:00.000Z",
                    "updated_at": "2026-11-22T12:00:00.000Z",
                    "position": index,
                    "description": None,
                    "showcase": True,
                    "group_id": None,
                    "page_id": "gpkpyklzq55q",
                    "group": False,
                    "only_show_if_degraded": False,
                }
                for index, (name, state) in enumerate(self.components.items(), start=1)
            ]
            return Reply(200, {"page": self._page(), "components": components})
        return self.error(404, "Not Found")
