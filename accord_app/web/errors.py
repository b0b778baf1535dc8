"""One error shape for the whole API: {"message": <sentence>, "code": <machine code>}.

The frontend shows `message` as it is, so it is written for people; programs branch on `code`.
FastAPI's own errors (422 with a list of details, {"detail": ...} for 404 and 405) are turned
into this shape here, and a malformed request is a 400, never a 500. What a failure of the disk,
the actors or the catalog means to a client is the taxonomy of accord_app/chat/failures.py.
"""

import logging
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord_app.actors import (
    ActorOverloaded,
    ActorReset,
    CommitFailed,
    StorageError,
)
from accord_app.catalog.store import CatalogUnavailable
from accord_app.chat.failures import INTERNAL_ERROR, describe_failure

logger = logging.getLogger("accord")


class ApiError(Exception):
    """Raise it in an endpoint to answer with an error body."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def error_response(
    status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"message": message, "code": code}, status_code, headers=headers)


async def refuse(
    websocket: WebSocket,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer a WebSocket upgrade with an HTTP error in the API's shape, before any upgrade
    (or close with a reason, on a server that cannot send a denial response)."""
    metrics = getattr(websocket.app.state, "metrics", None)  # None: ACCORD_METRICS=0
    if metrics is not None:
        metrics.connection_refused(code)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, code, message, headers))
    else:
        await websocket.close(1008, message[:120])


async def no_such_websocket(websocket: WebSocket) -> None:
    """Every WebSocket path that no route has: a 404 like any other, not an empty 403."""
    await refuse(websocket, 404, "not_found", f"There is no WebSocket at {websocket.url.path}.")


# FastAPI's status codes for its own exceptions, and the codes we give them.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    426: "upgrade_required",
}


def describe_validation_errors(errors: Sequence[Any]) -> tuple[str, str]:
    """(code, sentence) for the first problem pydantic found in a request."""
    if not errors:
        return "invalid_request", "The request is not valid."
    error = errors[0]
    location = [str(part) for part in error.get("loc", ())]
    kind = error.get("type", "")
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "json_invalid":
        return "invalid_json", "The request body is not valid JSON."
    if location[:1] == ["path"]:
        name = location[1] if len(location) > 1 else "path parameter"
        if kind.startswith("uuid"):
            return f"invalid_{name}", f"The {name} in the path must be a UUID."
        return f"invalid_{name}", f"The {name} in the path is not valid: {message}."
    if location[:1] == ["query"]:
        name = location[1] if len(location) > 1 else "query parameter"
        return f"invalid_{name}", f"The query parameter {name!r} is not valid: {message}."
    if location == ["body"]:
        if kind == "missing":
            return "invalid_body", "The request needs a JSON body."
        if isinstance(error.get("input"), bytes):
            return "invalid_body", "Send the body as JSON, with Content-Type: application/json."
        return "invalid_body", "The request body must be a JSON object."
    if location[:1] == ["body"]:
        field = ".".join(location[1:])
        if kind == "missing":
            return "invalid_body", f"The body is missing the field {field!r}."
        if kind == "string_type":
            return "invalid_body", f"The field {field!r} must be a string."
        return "invalid_body", f"The field {field!r} {message}."
    return "invalid_request", f"The request is not valid: {message}."


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code, message = describe_validation_errors(exc.errors())
    return error_response(400, code, message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 400:
        # FastAPI's own 400: the body could not even be decoded (bad UTF-8, absurd nesting).
        code, message = (
            "invalid_json",
            "The request body is not valid JSON (it could not be decoded).",
        )
    elif exc.status_code == 404:
        message = f"There is nothing at {request.url.path}."
    elif exc.status_code == 405:
        starlette_allow = {key.lower(): value for key, value in headers.items()}.get("allow", "")
        allowed = allowed_methods(request, fallback=starlette_allow)
        headers = {key: value for key, value in headers.items() if key.lower() != "allow"}
        headers["allow"] = allowed
        message = f"{request.method} is not allowed here; use {allowed}."
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, headers=headers)


def allowed_methods(request: Request, fallback: str) -> str:
    """Every method the API documents for this path, e.g. "GET, POST".

    Starlette's 405 names only the methods of the first route that matched, and Accord has one
    route per method, so we ask the OpenAPI schema, which lists them all.
    """
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "[^/]+".join(map(re.escape, re.split(r"\{[^}]+\}", template)))
        if re.fullmatch(pattern, request.url.path):
            return ", ".join(sorted(method.upper() for method in operations))
    return fallback


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not bad input: log it with its traceback and still answer in the API's shape.
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "Something went wrong on the server.")


async def _storage_failed(request: Request, exc: Exception) -> JSONResponse:
    # The disk, not the request: answer 503 (try again later) and log it, without a traceback
    # per request (a full disk fails them all).
    failure = describe_failure(exc, request.app.state.settings.data_dir)
    if failure is INTERNAL_ERROR:
        return await _unexpected_error(request, exc)
    logger.warning("%s %s: %s", request.method, request.url.path, exc)
    # Retrying at once is what overloads an actor: say when to come back.
    retry_after = "1" if failure.code == "overloaded" else "5"
    return error_response(
        failure.status, failure.code, failure.sentence, headers={"retry-after": retry_after}
    )


class QuietBadUtf8(logging.Filter):
    """uvicorn logs a client's invalid UTF-8 frame as an ERROR with a traceback, every time:
    a client's mistake, not the server's, and a way to flood the log. One INFO line, at most
    once per BAD_UTF8_LOG_SECONDS; the connection is closed with 1007 all the same."""

    def __init__(self) -> None:
        super().__init__()
        self.last = -BAD_UTF8_LOG_SECONDS

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Invalid UTF-8 sequence received from client"):
            return True
        now = time.monotonic()
        if now - self.last < BAD_UTF8_LOG_SECONDS:
            return False
        self.last = now
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg = "A client sent a text frame that is not UTF-8; closed it with 1007."
        return True


BAD_UTF8_LOG_SECONDS = 10.0


def install_error_handlers(app: FastAPI) -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietBadUtf8) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(QuietBadUtf8())
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ActorOverloaded, _storage_failed)
    failures = (StorageError, CommitFailed, ActorReset, CatalogUnavailable, sqlite3.Error, OSError)
    for storage_failure in failures:
        app.add_exception_handler(storage_failure, _storage_failed)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
