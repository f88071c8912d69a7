"""ASGI middleware of the gateway: access, body size and admission, in that order.

Pure ASGI (not BaseHTTPMiddleware) so that streaming responses and client disconnects
pass through untouched.
"""

from __future__ import annotations

import hmac
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.gateway.errors import (
    Draining,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    error_response,
    redacted_traceback,
    unhandled_error_response,
)
from serving.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

#: routes that never need the key: load balancers and Kubernetes probe them
OPEN_PATHS = frozenset({"/health"})
#: routes that do engine work and so count against admission
ADMITTED_PREFIXES = ("/v1/completions", "/v1/chat/completions", "/v1/tasks", "/v1/embeddings")


async def _reject(exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(exc)(scope, receive, send)


class ApiKeyMiddleware:
    """``Authorization: Bearer <key>`` on every route but `OPEN_PATHS`, compared in
    constant time so the key cannot be guessed byte by byte from response timings."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._expected):
            return await _reject(
                Unauthorized("Missing or invalid API key: send 'Authorization: Bearer <key>'."),
                scope,
                receive,
                send,
            )
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is larger than {self.max_bytes} bytes: split the batch "
            "into smaller requests."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _reject(self._too_large(), scope, receive, send)
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            await _reject(self._too_large(), scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class Admission:
    """Counts requests doing engine work; refuses past the limit or while draining."""

    def __init__(self, max_inflight: int, retry_after_s: int) -> None:
        self.max_inflight = max_inflight
        self.retry_after_s = retry_after_s
        self.inflight = 0
        self.draining = False

    def refusal(self) -> Exception | None:
        if self.draining:
            return Draining("The server is shutting down; retry on another replica.", 5)
        if self.inflight >= self.max_inflight:
            return Overloaded(
                f"The server is at capacity ({self.max_inflight} requests in flight); "
                f"retry after {self.retry_after_s} s.",
                self.retry_after_s,
            )
        return None


class AdmissionMiddleware:
    """A bounded number of engine requests at once: past it, 429 with Retry-After."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ADMITTED_PREFIXES):
            return await self.app(scope, receive, send)
        refusal = self.admission.refusal()
        if refusal is not None:
            return await _reject(refusal, scope, receive, send)
        self.admission.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.inflight -= 1


class MetricsMiddleware:
    """Counts every answer by route, task and status, and times it.

    Handlers name the task in ``request.state.task``; errors raised before that (auth,
    body size, validation) are counted under task ``-``.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = _route_label(scope["path"])
            task = scope.get("state", {}).get("task", "-")
            self.metrics.observe(route, task, status, time.perf_counter() - started)


def _route_label(path: str) -> str:
    # one label per route, not per task name in the path
    return "/v1/tasks/{task}" if path.startswith("/v1/tasks/") else path


class InternalErrorMiddleware:
    """Answers exceptions that escaped the routes here, innermost, so they never reach the
    server's own error log, which prints exception messages (and those may quote cells)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for an error response: the server closes the connection
                log.error("error after the response started: %s", redacted_traceback(exc))
                return None
            await unhandled_error_response(exc)(scope, receive, send)
