"""The FastAPI app behind ``roost serve``.

Each surface (openai, search, ads, ui) is a module in this package with a
``router`` and a ``load(state)`` that loads its service from the workspace into
``state`` (and leaves it unset when its artifact is missing). Errors everywhere
come back in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``,
and the OpenAPI schema says so for every route. A 500 never carries the
exception's text (it can hold SQL, paths or data); the server log does. A full
disk is a 507 that says so. ``roost.server.limits`` guards the event loop
(body size, rate and concurrency per client) in front of every route.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib
import logging
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from roost.server.limits import GuardMiddleware, Limits, error_body
from roost.workspace import Workspace, disk_full

SURFACES = ("openai", "search", "ads", "ui")
log = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    workspace: Path = Path("workspace")
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = field(default_factory=list)  # empty: no key needed for the API
    admin_key: str | None = None                        # None: admin routes refused
    slots: int = 8
    queue: int = 64
    model_name: str = "roost"
    public_url: str | None = None  # base of links handed out (click URLs); None: http://HOST:PORT
    limits: Limits = field(default_factory=Limits)
    search_rerank: int = 0  # hybrid search re-ranks this many fused posts by the model's query likelihood (0: off)

    def base_url(self) -> str:
        """Where clients reach this server, from configuration only: never from a request's Host header."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass
class ServerState:
    """What the routers share: config, workspace and the loaded services."""

    config: ServeConfig
    workspace: Workspace
    services: dict[str, Any] = field(default_factory=dict)
    # what a surface runs without (e.g. brand safety with no safety model): printed at start, listed in /health
    warnings: list[str] = field(default_factory=list)


class APIError(Exception):
    """Raise from a route to answer with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


def no_index_error(state: ServerState, what: str) -> APIError:
    """The 503 of a surface that needs the search index when the workspace has none, with the remedy."""
    return APIError(503, f"{what}: no search index in {state.workspace.index}; "
                         f"run `roost index --workspace {state.workspace.root}` and restart the server",
                    type="service_unavailable", code="no_index")


def keys_match(given: str | None, allowed: list[str]) -> bool:
    """Constant-time comparison against every allowed key."""
    if given is None:
        return False
    ok = False
    for key in allowed:
        ok |= hmac.compare_digest(given.encode(), key.encode())
    return ok


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def require_api_key(request: Request) -> None:
    state: ServerState = request.app.state.roost
    if state.config.api_keys and not keys_match(bearer(request), state.config.api_keys):
        raise APIError(401, "Incorrect or missing API key. Pass it as 'Authorization: Bearer KEY'.",
                       type="authentication_error", code="invalid_api_key")


def require_admin_key(request: Request) -> None:
    state: ServerState = request.app.state.roost
    given = bearer(request) or request.headers.get("x-admin-key")
    if not state.config.admin_key or not keys_match(given, [state.config.admin_key]):
        raise APIError(401, "Admin routes need the admin key: 'Authorization: Bearer ADMIN_KEY'.",
                       type="authentication_error", code="invalid_admin_key")


_FIELD_FIRST = re.compile(r"^([A-Za-z_][\w.]*): ")


def _install_error_handlers(app: FastAPI) -> None:
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
        return JSONResponse(error_body("the server's disk is full: this request failed; retry it once space "
                                       "is freed", "server_error", code="disk_full"),
                            status_code=507, headers={"Retry-After": "60"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception):
        """Last resort: an OpenAI-shaped body that says nothing of the exception (uvicorn logs its traceback)."""
        return JSONResponse(error_body("internal server error; the server log has the details", "server_error",
                                       code="internal_error"), status_code=500)


ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"], "additionalProperties": False,
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}


def _document_errors(app: FastAPI) -> None:
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
                    op["responses"]["5XX"] = {"description": "Server-side failure (never the exception's text)",
                                              **error}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """On shutdown, close every service that has a ``close()`` (the engine stops its thread)."""
    yield
    for service in app.state.roost.services.values():
        if hasattr(service, "close"):
            service.close()


def create_app(config: ServeConfig) -> FastAPI:
    from roost.server import metrics

    # docs_url/redoc_url off: FastAPI's pages load from a CDN; roost.server.docs serves them from the package
    app = FastAPI(title="roost", version="0.1.0", lifespan=_lifespan, docs_url=None, redoc_url=None)
    state = ServerState(config=config, workspace=Workspace(config.workspace))
    app.state.roost = state
    _install_error_handlers(app)
    _document_errors(app)
    app.add_middleware(GuardMiddleware, limits=config.limits)
    metrics.install(app)  # added last, so outermost: it counts the guard's 413s and 429s too

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "services": sorted(state.services), "warnings": state.warnings}

    for name in SURFACES:
        module = importlib.import_module(f"roost.server.{name}")
        module.load(state)
        app.include_router(module.router)
    return app
