"""create_app(): the FastAPI application and the lifespan that owns every resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Match

from app.api import backups, checks, drills, health, incidents, maintenance, metrics, readiness, slo
from app.api.fastpath import HealthFastPath
from app.api.openapi import document_validation_errors
from app.config import Config
from app.errors import StoreUnavailable
from app.runtime import Runtime, drwatch_version
from app.settings import Settings


def create_app(settings: Settings, config: Config, *, run_scheduler: bool = True) -> FastAPI:
    """The drwatch application. Resources are created and disposed of in the lifespan only."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.build(settings, config)
        app.state.runtime = runtime
        await runtime.start(run_scheduler=run_scheduler)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="drwatch",
        version=drwatch_version(),
        description="Health and disaster-recovery watchdog.",
        lifespan=lifespan,
    )
    app.add_middleware(HealthFastPath)
    app.include_router(health.router)
    app.include_router(checks.router)
    app.include_router(metrics.router)
    app.include_router(drills.router)
    app.include_router(backups.router)
    app.include_router(readiness.router)
    app.include_router(incidents.router)
    app.include_router(slo.router)
    app.include_router(maintenance.router)
    document_validation_errors(app)

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        # Starlette names only the methods of the one route it matched; a path served by
        # several routes (GET and POST /api/maintenance) allows the methods of all of them.
        allowed: set[str] = set()
        for route in app.router.routes:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                allowed |= getattr(route, "methods", None) or set()
        detail = getattr(exc, "detail", "Method Not Allowed")
        return JSONResponse({"detail": detail}, 405, headers={"Allow": ", ".join(sorted(allowed))})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # A 4xx that says which input was wrong, without echoing the input itself (it may be a
        # token someone pasted into the wrong field).
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        # The same body as an HTTPException, so clients see one shape for every error.
        headers = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return JSONResponse({"detail": exc.message}, status_code=503, headers=headers)

    return app
