"""``/ready``: may a load balancer send this replica traffic? (``/health`` says only that the process is alive.)

A replica is ready when everything it is configured to serve works now:

- ``model``: the built-in engine is loaded when the workspace has a model, or the
  ``--llm-url`` engine answers;
- ``ads``: the ads database answers a query (a shared PostgreSQL can go away
  while the process lives on; SQLite is a local file) when ads are on or were
  meant to be (``--ads-db`` given, or ads failed to load);
- ``index``: the search index is open when the workspace has one.

What the workspace does not have is not checked (``"absent"``), so a replica
that only serves ads is ready without a model. 200 with every check's result,
or 503 in the server's error shape whose message names the failing checks. During a graceful shutdown
the listener is closed first, so the balancer's probe fails and it stops
sending while in-flight requests finish.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from roost.server.limits import error_body
from roost.server.state import ServerState

router = APIRouter()
OK, ABSENT = "ok", "absent"


async def readiness(state: ServerState) -> dict[str, str]:
    """Each check's result: "ok", "absent" (not configured here), or what is wrong."""
    services, ws, config = state.services, state.workspace, state.config
    checks: dict[str, str] = {}
    if services.upstream is not None:
        checks["model"] = await services.upstream.ping() or OK
    elif (ws.model / "config.json").is_file():
        checks["model"] = OK if services.openai is not None else f"the model in {ws.model} did not load"
    else:
        checks["model"] = ABSENT
    if services.ads is not None:
        try:
            await run_in_threadpool(services.ads.store.ping)
            checks["ads"] = OK
        except Exception as e:  # any driver error: the database is not answering
            checks["ads"] = f"the ads database {services.ads.store.path} does not answer ({type(e).__name__})"
    elif services.ads_error or config.ads_db:
        checks["ads"] = f"ads did not load: {services.ads_error or 'no ads service'}"
    else:
        checks["ads"] = ABSENT
    if ws.read_manifest("index") is None:
        checks["index"] = ABSENT
    else:
        checks["index"] = OK if getattr(services.search, "index", None) is not None else "the search index did not open"
    return checks


@router.get("/ready", responses={503: {"description": "not ready: the failing checks say why"}})
async def ready(request: Request) -> JSONResponse:
    checks = await readiness(request.app.state.roost)
    failing = {k: v for k, v in checks.items() if v not in (OK, ABSENT)}
    if failing:  # in the server's one error shape, the failing checks in its message
        message = "not ready: " + "; ".join(f"{k}: {v}" for k, v in failing.items())
        return JSONResponse(error_body(message, "service_unavailable", code="not_ready"), status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
