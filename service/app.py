"""The ASGI application factory: `uvicorn --factory service.app:create_app` (the gRPC door starts with it)."""

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
from starlette.responses import FileResponse, Response

from service.dataplane import DataPlane
from service.engine.engine import Engine
from service.http import errors, meta, table, v2
from service.http.middleware import ApiKeyAuth, BodyLimit, RequestContext
from service.settings import Settings
from service.startup import get_settings

STATIC = Path(__file__).parent / "static"  # the latent-space explorer: plain files, no build step
# The page loads only its own files and talks only to this server; nothing may frame it.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The process: one engine, its HTTP doors (REST and the Open Inference Protocol) as this ASGI app, and its gRPC
    door started in the app's lifespan, on the same event loop."""
    settings = settings or get_settings()
    plane = DataPlane(Engine(settings))  # what every door calls

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plane.start()  # models load here, never at import
        gauges = follower = None
        if plane.peers is not None:  # a worker: its gauges kept fresh for scrapes other workers answer
            gauges = asyncio.get_running_loop().create_task(plane.refresh_gauges())
            await plane.control.catch_up()  # the control calls the others carried out (a restarted worker too)
            follower = asyncio.get_running_loop().create_task(plane.control.follow())
        gc.collect()
        gc.freeze()  # long-lived torch objects out of the GC's sight: no 100 ms full collections under load
        grpc_door = None
        if settings.grpc_port:
            from service.rpc.server import GrpcDoor  # grpcio only where the gRPC door is on

            grpc_door = GrpcDoor(plane)
            app.state.grpc_port = await grpc_door.start()
        watcher = None
        if settings.watch_interval_s > 0:
            watcher = asyncio.get_running_loop().create_task(plane.watch(settings.watch_interval_s))
        plane.mark_serving(True)
        yield
        plane.drain()
        for task in (gauges, follower):
            if task is not None:
                task.cancel()
        if watcher is not None:
            watcher.cancel()
        if grpc_door is not None:
            await grpc_door.stop(settings.drain_timeout_s)
        await plane.stop()

    # FastAPI's native OpenTelemetry looks up its providers on every request; off unless asked for, since
    # Prometheus metrics and JSON logs are the service's own (about 3 us of a ~100 us request).
    otel = settings.opentelemetry
    app = FastAPI(title="vaeserve", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel, "operation_spans": otel},
                  description="Autoencoders and VAEs on MNIST: encode, decode, sample, interpolate, reconstruct.")
    app.state.plane = plane
    app.state.grpc_port = 0
    errors.install(app)
    app.include_router(meta.router)
    app.include_router(v2.router)
    app.mount("/explorer", StaticFiles(directory=STATIC), name="explorer")

    docs_pages(app)

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
    app.add_middleware(BodyLimit, state=plane)
    if settings.api_key:  # no key, no layer: every layer costs a few microseconds on every request
        app.add_middleware(ApiKeyAuth, state=plane)
    app.add_middleware(RequestContext, state=plane)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


def docs_pages(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from files served here (the fastapi-offline package's copies), not from a CDN:
    a server with no internet, or a browser without it, still shows the API."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    app.mount("/docs-static", StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"),
              name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="vaeserve API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(openapi_url="/openapi.json", title="vaeserve API",
                              redoc_js_url="/docs-static/redoc.standalone.js",
                              redoc_favicon_url="/docs-static/favicon.png", with_google_fonts=False)


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema of its own routes plus the inference route table's."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        app.openapi_schema = table.openapi(schema)
    return app.openapi_schema
