"""The server's errors: every 4xx and 5xx is OpenAI's ``{"error": {"message", "type", "param", "code"}}``.

Routes raise :class:`APIError`; :func:`install_error_handlers` turns it, FastAPI's
validation errors, 404s, a full disk (507) and anything unexpected (a 500 that
never carries the exception's text: it can hold SQL, paths or data; the server
log does) into that shape, and :func:`document_errors` makes the OpenAPI schema
say so for every route.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from roost.server.limits import error_body
from roost.workspace import disk_full

if TYPE_CHECKING:
    from roost.server.state import ServerState

log = logging.getLogger(__name__)


class APIError(Exception):
    """Raise from a route to answer with an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


def no_index_error(state: ServerState, what: str) -> APIError:
    """The 503 of a surface that needs the search index when the workspace has none, with the remedy."""
    return APIError(
        503,
        f"{what}: no search index in {state.workspace.index}; "
        f"run `roost index --workspace {state.workspace.root}` and restart the server",
        type="service_unavailable",
        code="no_index",
    )


_FIELD_FIRST = re.compile(r"^([A-Za-z_][\w.]*): ")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError):
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
        param = ".".join(loc) or None
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        named = _FIELD_FIRST.match(msg) if param is None else None  # a model-level check that names its field
        if named:
            param = named.group(1)
        text = f"{param}: {msg}" if param and not named else msg
        return JSONResponse(error_body(text, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code)

    @app.exception_handler(OSError)
    @app.exception_handler(RuntimeError)
    @app.exception_handler(sqlite3.Error)
    async def _storage(request: Request, e: Exception):
        """A full disk is a 507 that says so (and keeps the connection); any other such error goes on to the 500."""
        cause = disk_full(e, request.app.state.roost.workspace.root)
        if cause is None:
            raise e
        log.error("%s %s: disk full: %s", request.method, request.url.path, cause)
        return JSONResponse(
            error_body(
                "the server's disk is full: this request failed; retry it once space is freed",
                "server_error",
                code="disk_full",
            ),
            status_code=507,
            headers={"Retry-After": "60"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception):
        """Last resort: an OpenAI-shaped body that says nothing of the exception (uvicorn logs its traceback)."""
        return JSONResponse(
            error_body("internal server error; the server log has the details", "server_error", code="internal_error"),
            status_code=500,
        )


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def document_errors(app: FastAPI) -> None:
    """Make the OpenAPI schema say what the server does: every 4xx/5xx has ERROR_SCHEMA's shape, and a bad
    body is a 400, not FastAPI's default 422 (which this server never sends)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas["Error"] = ERROR_SCHEMA
            error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for operations in schema.get("paths", {}).values():
                for op in operations.values():
                    op["responses"].pop("422", None)
                    op["responses"]["4XX"] = {"description": "Bad request, in OpenAI's error shape", **error}
                    op["responses"]["5XX"] = {
                        "description": "Server-side failure (never the exception's text)",
                        **error,
                    }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
