"""Every error leaves the gateway in OpenAI's envelope; the status is chosen here only."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.errors import (
    C2SError,
    ConfigError,
    EngineUnavailable,
    InvalidRequest,
    PromptTooLong,
    UnknownTask,
)
from serving.protocol import ErrorInfo, ErrorResponse

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


def status_of(exc: BaseException) -> tuple[int, str]:
    for cls, status, kind in STATUS_OF:
        if isinstance(exc, cls):
            return status, kind
    return 500, "InternalServerError"


def error_body(message: str, kind: str, status: int, param: str | None = None) -> dict:
    return ErrorResponse(
        error=ErrorInfo(message=message, type=kind, param=param, code=status)
    ).model_dump()


def error_response(exc: BaseException) -> JSONResponse:
    status, kind = status_of(exc)
    message = getattr(exc, "message", None) or str(exc) or kind
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, EngineUnavailable):
        headers["Retry-After"] = "5"
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(message, kind, status, getattr(exc, "param", None)),
        status_code=status,
        headers=headers,
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts, param = [], None
    for err in exc.errors()[:10]:
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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "NotFoundError" if exc.status_code == 404 else "BadRequestError"
        if exc.status_code == 405:
            kind = "MethodNotAllowedError"
        return JSONResponse(
            error_body(str(exc.detail), kind, exc.status_code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body(f"Internal error: {type(exc).__name__}", "InternalServerError", 500),
            status_code=500,
        )
