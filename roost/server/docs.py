"""The API docs, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served from installed files only.

FastAPI's own pages load swagger-ui and redoc from a CDN, so offline (or behind a
firewall) ``/docs`` is a blank page. The ``fastapi-offline`` package ships those
same dist files (swagger-ui 5, redoc 2); this router serves them under
``/static/docs/`` and builds the pages with FastAPI's own ``get_swagger_ui_html``
and ``get_redoc_html`` pointed at them. The app turns FastAPI's CDN pages off
(``docs_url=None, redoc_url=None``); the ui surface includes this router.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from roost.server.errors import APIError

router = APIRouter()
DIST = Path(str(files("fastapi_offline") / "static"))
DIST_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")  # an allow-list
PREFIX = "/static/docs"
FAVICON = "/favicon.ico"


def _urls(request: Request) -> tuple[str, str]:
    """Where the page finds the schema and the dist files, under the app's root path (behind a proxy)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{root}{request.app.openapi_url}", f"{root}{PREFIX}"


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    schema, dist = _urls(request)
    return get_swagger_ui_html(openapi_url=schema, title=f"{request.app.title} API docs",
                               swagger_js_url=f"{dist}/swagger-ui-bundle.js", swagger_css_url=f"{dist}/swagger-ui.css",
                               swagger_favicon_url=FAVICON, oauth2_redirect_url=None,
                               swagger_ui_parameters=request.app.swagger_ui_parameters)


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request) -> HTMLResponse:
    schema, dist = _urls(request)
    return get_redoc_html(openapi_url=schema, title=f"{request.app.title} API reference",
                          redoc_js_url=f"{dist}/redoc.standalone.js", redoc_favicon_url=FAVICON,
                          with_google_fonts=False)


@router.get(PREFIX + "/{name}", include_in_schema=False)
def dist_file(name: str) -> FileResponse:
    if name not in DIST_FILES:
        raise APIError(404, f"no docs file {name!r}", type="not_found_error", param="name")
    return FileResponse(DIST / name)
