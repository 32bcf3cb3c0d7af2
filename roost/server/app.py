"""The FastAPI app behind ``roost serve``.

Each surface (openai, search, ads, ui) is a module in this package with a
``router`` and an ``open_service`` (or ``open_feed``) that makes its service from
the workspace. :func:`load_services` builds them all once, into the typed
:class:`~roost.server.state.Services`: the served model is read once and handed to
every surface that needs it, and a service that needs another (the timeline
needs search) takes it as an argument. Routers import ``state``, ``errors`` and
``auth``, never this module. Errors everywhere come back in OpenAI's shape
(``roost.server.errors``). ``roost.server.limits`` guards the event loop (body
size, rate and concurrency per client) in front of every route.
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI

from roost.server import ads, metrics, openai, ready, search, ui, upstream
from roost.server.errors import document_errors, install_error_handlers
from roost.server.limits import GuardMiddleware
from roost.server.state import ServeConfig, ServedModel, ServerState, Services
from roost.workspace import Workspace

__all__ = ["ServeConfig", "create_app", "load_services"]


def load_services(state: ServerState) -> Services:
    """Every service, each from what it needs: the model once, then the surfaces that share it."""
    model = ServedModel.load(state.workspace.model)
    search_service = search.open_service(state, model)
    ads_service, ads_error = ads.open_service(state, model)
    engine = None if state.config.llm_url else openai.open_service(state, model)  # --llm-url: generation elsewhere
    return Services(
        model=model,
        openai=engine,
        search=search_service,
        ads=ads_service,
        ads_error=ads_error,
        feed=ui.open_feed(search_service),
        upstream=upstream.open_service(state),
    )


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """On shutdown, close every service that has a ``close()`` (the engine stops its thread)."""
    yield
    app.state.roost.services.close()
    if app.state.roost.services.upstream is not None:
        await app.state.roost.services.upstream.aclose()


def create_app(config: ServeConfig) -> FastAPI:
    # docs_url/redoc_url off: FastAPI's pages load from a CDN; roost.server.docs serves them from the package
    app = FastAPI(title="roost", version="0.1.0", lifespan=_lifespan, docs_url=None, redoc_url=None)
    state = ServerState(config=config, workspace=Workspace(config.workspace))
    app.state.roost = state
    install_error_handlers(app)
    document_errors(app)
    app.add_middleware(GuardMiddleware, limits=config.limits)
    metrics.install(app)  # added last, so outermost: it counts the guard's 413s and 429s too

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "services": state.services.names(), "warnings": state.warnings}

    state.services = load_services(state)
    for surface in (upstream if config.llm_url else openai, search, ads, ui, ready):
        app.include_router(surface.router)
    return app
