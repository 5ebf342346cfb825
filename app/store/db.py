"""Engine creation and migrations for the state store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger("drwatch.store")

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    """alembic/ of a source checkout, or the copy packaged inside the wheel as app/migrations."""
    packaged = _PACKAGE_DIR / "migrations"
    if (packaged / "env.py").exists():
        return packaged
    return _PACKAGE_DIR.parent / "alembic"


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 5}
    else:
        # A store that hangs must not hold a probe's result for long: writes retry instead.
        kwargs["connect_args"] = {"timeout": 5, "command_timeout": 10}
        kwargs["pool_size"] = 5
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `drwatch check` and the API read while the scheduler writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``. Blocking: call it from a thread."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["url"] = url
    command.upgrade(config, revision)
