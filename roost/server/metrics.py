"""Prometheus metrics for ``roost serve``: requests by route and status, tokens, latencies, engine load.

Each app gets its own registry (so several apps can live in one process, as in
tests). A pure ASGI middleware counts requests: it sees streamed responses
and client disconnects without buffering anything.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from roost.server.auth import require_api_key

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServingMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "roost_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter("roost_prompt_tokens", "Prompt tokens of generation requests", registry=r)
        self.generation_tokens = Counter("roost_generation_tokens", "Tokens generated", registry=r)
        self.time_to_first_token = Histogram(
            "roost_time_to_first_token_seconds", "Time from request to first token", buckets=LATENCY_BUCKETS, registry=r
        )
        self.inter_token_latency = Histogram(
            "roost_inter_token_latency_seconds", "Time between generated tokens", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("roost_queue_depth", "Requests waiting for a slot", registry=r)
        self.running_slots = Gauge("roost_running_slots", "Engine slots generating now", registry=r)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (unknown paths count as 'unmatched')."""

    def __init__(self, app, metrics: ServingMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()


router = APIRouter()


@router.get("/metrics", dependencies=[Depends(require_api_key)])
def metrics_endpoint(request: Request) -> Response:
    metrics: ServingMetrics = request.app.state.metrics
    service = request.app.state.roost.services.openai
    if service is not None:
        metrics.queue_depth.set(service.engine.waiting_count)
        metrics.running_slots.set(service.engine.running_count)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> ServingMetrics:
    """Add the middleware and the /metrics route; the metrics live at ``app.state.metrics``."""
    app.state.metrics = ServingMetrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router)
    return app.state.metrics
