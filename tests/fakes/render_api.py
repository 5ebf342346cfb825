"""Render's REST API (v1) for PostgreSQL recovery and exports, bearer API key.

``GET /v1/postgres/{postgresId}/recovery`` answers ``{"recoveryStatus", "startsAt"}`` and
``GET /v1/postgres/{postgresId}/export`` a list of ``{"id", "createdAt", "url"}``, as documented;
errors are ``{"id", "message"}`` with the HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.fakes.base import FakeApi, Reply, Request


@dataclass
class Export:
    id: str
    created_at: datetime
    url: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "createdAt": _iso(self.created_at), "url": self.url}


@dataclass
class Database:
    id: str
    recovery_status: str = "AVAILABLE"  # AVAILABLE | BACKUP_NOT_READY | NOT_AVAILABLE
    starts_at: datetime | None = None
    exports: list[Export] = field(default_factory=list)


class FakeRender(FakeApi):
    vendor = "render"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.databases: dict[str, Database] = {}

    def add(self, database: Database) -> Database:
        self.databases[database.id] = database
        return database

    def error(self, status: int, message: str) -> Reply:
        ids = {401: "unauthorized", 404: "not-found", 429: "rate-limited"}
        return Reply(status, {"id": ids.get(status, "error"), "message": message})

    @property
    def url(self) -> str:
        return f"{super().url}/v1"

    def handle(self, request: Request) -> Reply:
        if request.bearer() != self.api_key:
            return self.error(401, "unauthorized")
        parts = request.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "postgres"] or request.method != "GET":
            return self.error(404, "not found")
        database = self.databases.get(parts[2])
        if database is None:
            return self.error(404, "postgres instance not found")
        if parts[3] == "recovery":
            return Reply(
                200,
                {
                    "recoveryStatus": database.recovery_status,
                    "startsAt": _iso(database.starts_at) if database.starts_at else None,
                },
            )
        if parts[3] == "export":
            return Reply(200, [export.as_json() for export in database.exports])
        return self.error(404, "not found")


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
