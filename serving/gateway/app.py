"""`create_app`: the FastAPI gateway, a thin shell over `OpenAIService`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serving.core.errors import EngineUnavailable
from serving.core.pipeline import Pipeline
from serving.core.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    ModelList,
    TaskBatchRequest,
    TaskBatchResponse,
)
from serving.core.tasks.registry import TaskRegistry
from serving.gateway.embeddings import EmbeddingService
from serving.gateway.errors import error_response, install_error_handlers
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.middleware import (
    Admission,
    AdmissionMiddleware,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    InternalErrorMiddleware,
    MetricsMiddleware,
)
from serving.gateway.service import OpenAIService
from serving.ray_serve.config import GatewayConfig

T = TypeVar("T")

ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 503)}


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``, cancelling it if the client goes away first.

    FastAPI would otherwise finish a non-streaming request whose client has left,
    spending engine time on an answer nobody reads. Cancellation reaches the engine
    adapter, which aborts the request.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise asyncio.CancelledError("client disconnected")
        return task.result()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _router(
    service: OpenAIService,
    admission: Admission,
    metrics: GatewayMetrics,
    embeddings: EmbeddingService,
) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES)

    @router.get("/health")
    async def health() -> Response:
        timeout_s = service.config.health_timeout_s
        try:
            await asyncio.wait_for(service.stages.health(), timeout_s)
        except EngineUnavailable as exc:
            return error_response(exc)
        except TimeoutError:
            return error_response(
                EngineUnavailable(f"The engine did not answer its health probe in {timeout_s} s.")
            )
        if admission.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        metrics.inflight.set(admission.inflight)
        with contextlib.suppress(Exception):
            metrics.engine_unfinished.set(await service.stages.engine_load())
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @router.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return await service.models()

    @router.post("/v1/completions", response_model=CompletionResponse)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await _answer(request, body, service.complete)

    @router.post("/v1/chat/completions", response_model=ChatCompletionResponse)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        return await _answer(request, body, service.chat)

    @router.post("/v1/tasks/{task}", response_model=TaskBatchResponse)
    async def run_task(task: str, body: TaskBatchRequest, request: Request) -> TaskBatchResponse:
        request.state.task = task
        return await until_disconnect(request, service.run_task(task, body))

    @router.post("/v1/embeddings", response_model=EmbeddingResponse)
    async def embed(body: EmbeddingRequest, request: Request) -> EmbeddingResponse:
        request.state.task = "embeddings"
        return await until_disconnect(request, embeddings.embed(body))

    async def _answer(request: Request, body, run) -> Response:
        request.state.task = service.resolve_task(body) or "raw"
        if body.stream:
            prompt, params = await service.prepare_stream(body)
            events = _in_band_errors(service.stream(body, prompt, params))
            return StreamingResponse(events, media_type="text/event-stream")
        response = await until_disconnect(request, run(body))
        return JSONResponse(response.model_dump())

    return router


async def _in_band_errors(events: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield event
    except Exception as exc:  # the response has started: report in-band, as vLLM does
        yield f"data: {error_response(exc).body.decode()}\n\n"


def create_app(config: GatewayConfig, stages: Pipeline, registry: TaskRegistry) -> FastAPI:
    """The gateway app over ``stages``; middleware order: CORS (only when configured),
    auth, body size, admission."""
    metrics = GatewayMetrics()
    admission = Admission(config.max_inflight_requests, config.retry_after_s)
    service = OpenAIService(config, stages, registry, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        admission.draining = True
        deadline = time.monotonic() + config.drain_timeout_s
        while admission.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    app = FastAPI(title="c2s-serving", version="0.1.0", lifespan=lifespan)
    embeddings = EmbeddingService(config, stages)
    app.include_router(_router(service, admission, metrics, embeddings))
    install_error_handlers(app)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(AdmissionMiddleware, admission=admission)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=config.api_key.get_secret_value())
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if config.cors_allow_origins:
        # outermost: browsers send preflights without the key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_allow_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app
