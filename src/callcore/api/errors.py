"""One error body everywhere: ``{"error": {"code", "message", "details"}}``.

Handlers raise :class:`ApiError` (or a helper below). :func:`error_middleware` turns everything else into the
same shape: aiohttp's own HTTP errors (404 unknown route, 405 wrong method, 413 body too large, ...) → their
status, and any unexpected exception → a logged 500 with a request id. The route wrapper
(:mod:`callcore.api.routing`) turns pydantic ``ValidationError`` of the path, query and body into 422
(:func:`validation_error`); a ``ValidationError`` anywhere else is our bug, so a 500. Bad input must never reach
the last case: the tests send malformed bodies, paths and headers to every endpoint and assert no 5xx.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = structlog.get_logger("callcore.api")


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    code: str = Field(description="stable, machine-readable: e.g. validation_error, not_found, forbidden")
    message: str = Field(description="for humans; may change between versions")
    details: Any = Field(None, description="structured context, e.g. the invalid fields")


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response of the API carries."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    error: ErrorDetail


class ApiError(Exception):
    """An error response: HTTP ``status`` with the standard body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.details, headers=self.headers)


def error_response(
    status: int, code: str, message: str, details: Any = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))


def bad_request(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(400, code, message, details)


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident!s} not found", {"resource": what, "id": str(ident)})


def conflict(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(409, code, message, details)


def forbidden(message: str, details: Any = None) -> ApiError:
    return ApiError(403, "forbidden", message, details)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="callcore"'})


def validation_error(exc: ValidationError, where: str) -> ApiError:
    """A pydantic error as a 422: every problem with its location (``where`` is body, query or path)."""
    problems = [
        {"loc": [where, *err.get("loc", ())], "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = problems[0] if problems else {"loc": [where], "message": "invalid"}
    where_text = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ApiError(422, "validation_error", f"{where_text}: {first['message']}{more}", problems)


# aiohttp's own errors (raised by the router or while reading a body) → our codes.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}

MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through untouched
        return _from_http_exception(request, exc)
    except Exception:  # noqa: BLE001 - the one place that turns surprises into a 500
        request_id = uuid.uuid4().hex
        log.exception("api request failed", method=request.method, path=request.path, request_id=request_id)
        return error_response(500, "internal_error", "internal error; the server log has the details",
                              {"request_id": request_id})


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    code = _HTTP_CODES.get(status, "http_error" if status < 500 else "internal_error")
    headers: dict[str, str] = {}
    details: Any = None
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path} (see /openapi.json)"
    elif status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed) or 'none'}"
        details = {"allowed": allowed}
    elif status == 413:
        limit = request.app.get(MAX_BODY_BYTES)
        message = f"request body too large (limit {limit} bytes)" if limit else "request body too large"
        details = {"limit": limit}
    else:
        message = exc.reason or exc.text or "request failed"
    return error_response(status, code, message, details, headers=headers)


__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "MAX_BODY_BYTES",
    "bad_request",
    "conflict",
    "error_middleware",
    "error_response",
    "forbidden",
    "not_found",
    "unauthorized",
    "validation_error",
]
