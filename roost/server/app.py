"""The FastAPI app behind ``roost serve``.

Each surface (openai, search, ads, ui) is a module in this package with a
``router`` and a ``load(state)`` that loads its service from the workspace into
``state`` (and leaves it unset when its artifact is missing). Errors everywhere
come back in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from roost.workspace import Workspace

SURFACES = ("openai", "search", "ads", "ui")


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


@dataclass
class ServerState:
    """What the routers share: config, workspace and the loaded services."""

    config: ServeConfig
    workspace: Workspace
    services: dict[str, Any] = field(default_factory=dict)


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


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError):
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
        param = ".".join(loc) or None
        msg = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
        return JSONResponse(error_body(msg, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception):  # last resort: still an OpenAI-shaped body
        return JSONResponse(error_body(f"internal error: {type(e).__name__}: {e}", "server_error"), status_code=500)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """On shutdown, close every service that has a ``close()`` (the engine stops its thread)."""
    yield
    for service in app.state.roost.services.values():
        if hasattr(service, "close"):
            service.close()


def create_app(config: ServeConfig) -> FastAPI:
    from roost.server import metrics

    app = FastAPI(title="roost", version="0.1.0", lifespan=_lifespan)
    state = ServerState(config=config, workspace=Workspace(config.workspace))
    app.state.roost = state
    _install_error_handlers(app)
    metrics.install(app)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "services": sorted(state.services)}

    for name in SURFACES:
        module = importlib.import_module(f"roost.server.{name}")
        module.load(state)
        app.include_router(module.router)
    return app
