"""The ASGI application factory: `uvicorn --factory service.app:create_app`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse

from service import errors
from service.middleware import ApiKeyAuth, BodyLimit, RequestContext
from service.routes import ops, table, v2
from service.settings import Settings, get_settings
from service.state import AppState

STATIC = Path(__file__).parent / "static"  # the latent-space explorer: plain files, no build step
# The page loads only its own files and talks only to this server; nothing may frame it.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    state = AppState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.load(settings.model_repository)  # models load here, never at import
        gc.collect()
        gc.freeze()  # long-lived torch objects out of the GC's sight: no 100 ms full collections under load
        watcher = None
        if settings.watch_interval_s > 0:
            watcher = asyncio.get_running_loop().create_task(state.watch(settings.watch_interval_s))
        yield
        state.draining = True
        if watcher is not None:
            watcher.cancel()
        await state.stop()

    # FastAPI's native OpenTelemetry looks up its providers on every request; off unless asked for, since
    # Prometheus metrics and JSON logs are the service's own (about 3 us of a ~100 us request).
    otel = settings.opentelemetry
    app = FastAPI(title="vaeserve", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel, "operation_spans": otel},
                  description="Autoencoders and VAEs on MNIST: encode, decode, sample, interpolate, reconstruct.")
    app.state.vae = state
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(v2.router)
    app.mount("/explorer", StaticFiles(directory=STATIC), name="explorer")

    @app.get("/", include_in_schema=False)
    async def explorer() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    # add_middleware wraps: the last added runs first. The table's routes innermost (every concern applies
    # to them), request context outermost (it sees every answer).
    app.add_middleware(table.TableRouter)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["content-type", "accept", "x-api-key", "x-request-id",
                                          "inference-header-content-length"],
                           expose_headers=["x-request-id", "x-seed", "x-model", "x-model-version",
                                           "inference-header-content-length"])
    app.add_middleware(BodyLimit, state=state)
    if settings.api_key:  # no key, no layer: every layer costs a few microseconds on every request
        app.add_middleware(ApiKeyAuth, state=state)
    app.add_middleware(RequestContext, state=state)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema of its own routes plus the inference route table's."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        app.openapi_schema = table.openapi(schema)
    return app.openapi_schema
