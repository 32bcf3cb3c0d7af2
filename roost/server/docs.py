"""The API docs: Swagger UI at ``/docs``, served from installed files only.

FastAPI's own page loads swagger-ui from a CDN, so offline (or behind a firewall)
``/docs`` is a blank page. The ``fastapi-offline`` package ships swagger-ui's dist
files (swagger-ui 5, which renders OpenAPI 3.1); this router serves them under
``/static/docs/`` and builds the page with FastAPI's own ``get_swagger_ui_html``
pointed at them. The app turns FastAPI's CDN pages off (``docs_url=None,
redoc_url=None``); the ui surface includes this router. There is no ReDoc page:
its bundle loads its sidebar logo from redoc.ly with no option to stop it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from roost.server.errors import APIError

router = APIRouter()
DIST = Path(str(files("fastapi_offline") / "static"))
DIST_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")  # an allow-list
PREFIX = "/static/docs"
FAVICON = "/favicon.ico"


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")  # the app's path behind a proxy
    schema, dist = f"{root}{request.app.openapi_url}", f"{root}{PREFIX}"
    return get_swagger_ui_html(
        openapi_url=schema,
        title=f"{request.app.title} API docs",
        swagger_js_url=f"{dist}/swagger-ui-bundle.js",
        swagger_css_url=f"{dist}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
        oauth2_redirect_url=None,
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.get(PREFIX + "/{name}", include_in_schema=False)
def dist_file(name: str) -> FileResponse:
    if name not in DIST_FILES:
        raise APIError(404, f"no docs file {name!r}", type="not_found_error", param="name")
    return FileResponse(DIST / name)
