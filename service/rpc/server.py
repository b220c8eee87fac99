"""The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` and the standard `grpc.health.v1`
service, on grpcio's asyncio server in the same process and event loop as HTTP, over the same engine.

Each RPC decodes its message once, calls the dataplane (service/dataplane), and encodes the answer; domain errors
become gRPC status codes by the one table (service/dataplane/errors.py), retryable ones with `retry-after` in
trailing metadata.

A call's deadline becomes its request's deadline (when sooner than the server's); a call that is cancelled or runs
past its deadline has its handler cancelled by grpcio, which takes its rows out of the engine's queue. Requests are
counted in vaeserve_requests_total as the HTTP door counts them (route = the RPC's path, status = the HTTP status of
the same outcome, 499 for a call its client cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from service.dataplane import DataPlane
from service.dataplane.errors import answer
from service.engine.domain import Retryable, ServiceError, UnknownModel
from service.rpc import messages
from service.rpc.codec import decode_inputs, encode_outputs, parameter

log = logging.getLogger(__name__)

OPEN = {"ServerLive", "ServerReady"}  # like /v2/health/*: probes need no API key
HEALTH_POLL_S = 0.5  # readiness changes (reload, drain) reach the health service within this
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def code_of(exc: ServiceError) -> tuple[grpc.StatusCode, int]:
    """The gRPC code and its HTTP twin (for the request metrics), from the one table."""
    a = answer(exc)
    return getattr(grpc.StatusCode, a.grpc), a.http


def _meta(context: grpc.aio.ServicerContext, key: str) -> str:
    return next((v for k, v in context.invocation_metadata() or () if k == key), "")


class GrpcDoor:
    """The gRPC server of one process: start() after the engine has loaded, stop(grace) at shutdown."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        s = plane.settings
        self.api_key = bool(s.api_key)
        limit = s.grpc_max_message_bytes
        # so_reuseport only for workers (they share the port by design); otherwise a port already taken fails the
        # start loudly instead of two servers sharing it
        reuse = 1 if s.workers > 1 else 0
        self.server = grpc.aio.server(options=[("grpc.max_send_message_length", limit),
                                               ("grpc.max_receive_message_length", limit),
                                               ("grpc.so_reuseport", reuse)])
        handlers = {name: self._unary(name, getattr(self, name), req, resp)
                    for name, (req, resp) in messages.methods().items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(messages.SERVICE, handlers),))
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = 0
        self._health_task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        s = self.plane.settings
        address = f"[{s.host}]:{s.grpc_port}" if ":" in s.host else f"{s.host}:{s.grpc_port}"
        self.port = self.server.add_insecure_port(address)
        await self.server.start()
        await self.sync_health()
        self._health_task = asyncio.get_running_loop().create_task(self._poll_health())
        log.info("gRPC (Open Inference Protocol) on %s:%d", s.host, self.port)
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let those in flight finish within grace_s, then close."""
        if self._health_task is not None:
            self._health_task.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)

    async def sync_health(self) -> None:
        """SERVING (the server and the inference service) while the engine serves; NOT_SERVING otherwise."""
        status = (health_pb2.HealthCheckResponse.SERVING if self.plane.serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for service in ("", messages.SERVICE):
            await self.health.set(service, status)

    async def _poll_health(self) -> None:
        last = None
        while True:
            if self.plane.serving != last:
                last = self.plane.serving
                await self.sync_health()
            await asyncio.sleep(HEALTH_POLL_S)

    # -- the one wrapper every RPC goes through --------------------------------------------------------------

    def _unary(self, name: str, fn: Handler, req_cls: Any, resp_cls: Any) -> grpc.RpcMethodHandler:
        route = f"/{messages.SERVICE}/{name}"
        plane, key, open_rpc = self.plane, self.api_key, name in OPEN

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            t0 = time.perf_counter()
            plane.touch()
            status = 200
            try:
                if key and not open_rpc:
                    plane.check_api_key(_meta(context, "x-api-key").encode())
                return await fn(request, context)
            except ServiceError as exc:
                code, status = code_of(exc)
                if isinstance(exc, Retryable):
                    context.set_trailing_metadata((("retry-after", str(exc.retry_after_s)),))
                try:
                    await context.abort(code, exc.message)
                except grpc.aio.InternalError:
                    # the call had already ended in grpcio's core (its deadline passed there as ours did here), so
                    # no status can be sent and nobody waits for one: end as grpcio ends a cancelled call, quietly
                    # (abort's failure was logged as a servicer error, one in a few thousand calls at 1 ms deadlines)
                    raise asyncio.CancelledError from None
            except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                status = 499
                raise
            except Exception:
                status = 500
                raise
            finally:
                plane.observe(route, status, time.perf_counter() - t0)

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=req_cls.FromString,
                                                   response_serializer=resp_cls.SerializeToString)

    # -- the RPCs -------------------------------------------------------------------------------------------

    async def ServerLive(self, req: Any, context: Any) -> Any:
        return messages.message("ServerLiveResponse")(live=True)

    async def ServerReady(self, req: Any, context: Any) -> Any:
        return messages.message("ServerReadyResponse")(ready=self.plane.readiness()[0])

    async def ModelReady(self, req: Any, context: Any) -> Any:
        try:
            self.plane.model(req.name, req.version)
            ready = not self.plane.draining
        except UnknownModel:
            ready = False
        return messages.message("ModelReadyResponse")(ready=ready)

    async def ServerMetadata(self, req: Any, context: Any) -> Any:
        return messages.message("ServerMetadataResponse")(**self.plane.server_metadata())

    async def ModelMetadata(self, req: Any, context: Any) -> Any:
        return json_format.ParseDict(self.plane.model_metadata(req.name, req.version),
                                     messages.message("ModelMetadataResponse")())

    async def ModelConfig(self, req: Any, context: Any) -> Any:
        config = json_format.ParseDict(self.plane.model_config(req.name, req.version), messages.ModelConfig())
        return messages.message("ModelConfigResponse")(config=config)

    async def ModelStatistics(self, req: Any, context: Any) -> Any:
        report = self.plane.statistics(req.name, req.version)
        return json_format.ParseDict({"model_stats": report}, messages.message("ModelStatisticsResponse")())

    async def RepositoryIndex(self, req: Any, context: Any) -> Any:
        index = self.plane.repository_index(req.ready)
        return json_format.ParseDict({"models": index}, messages.message("RepositoryIndexResponse")())

    async def RepositoryModelLoad(self, req: Any, context: Any) -> Any:
        await self.plane.load_model(req.model_name, _meta(context, "x-admin-key"))
        return messages.message("RepositoryModelLoadResponse")()

    async def RepositoryModelUnload(self, req: Any, context: Any) -> Any:
        await self.plane.unload_model(req.model_name, _meta(context, "x-admin-key"))
        return messages.message("RepositoryModelUnloadResponse")()

    async def ModelInfer(self, req: Any, context: Any) -> Any:
        with self.plane.admit(context.time_remaining()) as ticket:
            name, version, arrays = await self.plane.infer(req.model_name, req.model_version, decode_inputs(req),
                                                           parameter(req.parameters, "priority"), ticket)
            return encode_outputs(req, name, version, arrays)
