"""Every error leaves the gateway in OpenAI's envelope; the status is chosen here only."""

from __future__ import annotations

import logging
import sys
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.core.errors import (
    C2SError,
    ConfigError,
    EngineUnavailable,
    InvalidRequest,
    PromptTooLong,
    UnknownTask,
)
from serving.core.protocol import ErrorInfo, ErrorResponse

log = logging.getLogger(__name__)


class UnknownModel(InvalidRequest):
    param = "model"


class Unauthorized(C2SError):
    pass


class PayloadTooLarge(InvalidRequest):
    param = None


class Overloaded(C2SError):
    """More requests than the gateway admits at once; the caller should retry later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Draining(Overloaded):
    """The gateway is shutting down and takes no new requests."""


#: most specific first; (status, OpenAI error type)
STATUS_OF: tuple[tuple[type[BaseException], int, str], ...] = (
    (UnknownTask, 404, "NotFoundError"),
    (UnknownModel, 404, "NotFoundError"),
    (PayloadTooLarge, 413, "PayloadTooLargeError"),
    (PromptTooLong, 400, "BadRequestError"),
    (InvalidRequest, 400, "BadRequestError"),
    (Unauthorized, 401, "AuthenticationError"),
    (Draining, 503, "ServiceUnavailableError"),
    (Overloaded, 429, "RateLimitError"),
    (EngineUnavailable, 503, "ServiceUnavailableError"),
    (ConfigError, 500, "InternalServerError"),
)


#: a stage replica (prompt builder, decoder) that died mid-call; retrying is safe
#: because building and decoding are pure
REPLICA_LOST_MESSAGE = (
    "A serving replica was lost while answering; it is being restarted. Retry the request."
)


def replica_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is Ray's error for an actor (a Serve replica) that died.

    Looked up in ``sys.modules`` so the gateway never imports ray when it runs without it.
    """
    ray_exceptions = sys.modules.get("ray.exceptions")
    return ray_exceptions is not None and isinstance(exc, ray_exceptions.RayActorError)


def status_of(exc: BaseException) -> tuple[int, str]:
    for cls, status, kind in STATUS_OF:
        if isinstance(exc, cls):
            return status, kind
    if replica_lost(exc):
        return 503, "ServiceUnavailableError"
    return 500, "InternalServerError"


def error_body(message: str, kind: str, status: int, param: str | None = None) -> dict:
    return ErrorResponse(
        error=ErrorInfo(message=message, type=kind, param=param, code=status)
    ).model_dump()


def error_response(exc: BaseException) -> JSONResponse:
    status, kind = status_of(exc)
    if status >= 500 and not isinstance(exc, C2SError):
        # a foreign error's text may quote the request (pydantic quotes input values)
        message = REPLICA_LOST_MESSAGE if replica_lost(exc) else f"Internal error: {kind}"
    else:
        message = getattr(exc, "message", None) or str(exc) or kind
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, EngineUnavailable) or replica_lost(exc):
        headers["Retry-After"] = "5"
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(message, kind, status, getattr(exc, "param", None)),
        status_code=status,
        headers=headers,
    )


#: FastAPI's detail when the body cannot be decoded at all (bad UTF-8, nesting too deep)
UNPARSABLE_BODY = "There was an error parsing the body"
NOT_JSON = "The request body is not valid JSON: send one UTF-8 JSON object"
ROUTES_HINT = (
    "the API serves GET /v1/models, POST /v1/completions, POST /v1/chat/completions, "
    "POST /v1/tasks/{task}, POST /v1/embeddings, GET /health and GET /metrics."
)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts, param = [], None
    for err in exc.errors()[:10]:
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "")
            return f"{NOT_JSON} ({reason} at character {err['loc'][-1]}).", None
        if tuple(err.get("loc", ())) == ("body",):  # null, a list, a form: not an object
            return f"{NOT_JSON} with Content-Type: application/json.", None
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = param or (loc[0] if loc else None)
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request", param


def install_error_handlers(app: FastAPI) -> None:
    """Validation is 400 (not FastAPI's 422), core errors map by type, bugs are 500."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return JSONResponse(error_body(message, "BadRequestError", 400, param), status_code=400)

    @app.exception_handler(C2SError)
    async def _core(_: Request, exc: C2SError) -> JSONResponse:
        if status_of(exc)[0] >= 500:
            log.error("server error: %s", exc)
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "NotFoundError" if exc.status_code == 404 else "BadRequestError"
        detail = str(exc.detail)
        if exc.detail == UNPARSABLE_BODY:
            detail = f"{NOT_JSON}."
        elif exc.status_code == 404 and exc.detail == "Not Found":
            detail = f"No route {request.url.path}: {ROUTES_HINT}"
        elif exc.status_code == 405:
            kind = "MethodNotAllowedError"
            allowed = (exc.headers or {}).get("Allow", "")
            detail = f"{request.method} is not allowed on {request.url.path}; use {allowed}."
        return JSONResponse(
            error_body(detail, kind, exc.status_code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        return unhandled_error_response(exc)


def unhandled_error_response(exc: Exception) -> JSONResponse:
    """503 for a lost replica, else 500 for a bug; logged without the exception's message."""
    if replica_lost(exc):
        log.warning("replica lost: %s", type(exc).__name__)
        return error_response(exc)
    log.error("unhandled error: %s", redacted_traceback(exc))
    return JSONResponse(
        error_body(f"Internal error: {type(exc).__name__}", "InternalServerError", 500),
        status_code=500,
    )


def redacted_traceback(exc: BaseException) -> str:
    """The exception's type and frames, without its message: messages of foreign errors
    may quote request data (cells), which logs must not hold."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{type(exc).__module__}.{type(exc).__qualname__} at {where or '?'}"
