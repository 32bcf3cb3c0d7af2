"""``roost serve --llm-url URL``: chat and completions on an external OpenAI-compatible engine.

The engine (vLLM or SGLang serving ``roost export --format hf`` on GPUs, or
another ``roost serve``) does the generation; this replica keeps its own API
keys, limits, metrics, search and ads. What passes through unchanged:

- the request body (the engine applies the chat template and stop tokens the
  export carries; docs/serving-replicas.md says what vLLM needs);
- the answer, byte for byte, streamed or not: chunks, ``usage`` (also a
  stream's last chunk when ``stream_options.include_usage`` asks), finish reasons;
- the engine's 4xx errors, with their status and OpenAI-shaped body;
- auth: ``--llm-api-key`` (or ``ROOST_LLM_API_KEY``) is sent to the engine as
  ``Authorization: Bearer``; without it the client's own Authorization header is
  forwarded, so an engine with its own keys checks them.

What does not: an engine that is down or times out is a 502/504 in OpenAI's
shape (``code: upstream_unavailable`` / ``upstream_timeout``), its 5xx a 502
(``upstream_error``) carrying its message; a stream the engine breaks off ends
with an ``error`` event, never a silently short answer. A client that hangs up
closes the engine's stream too, so the engine stops generating for nobody.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from roost.server.auth import require_api_key
from roost.server.errors import APIError
from roost.server.limits import error_body
from roost.server.state import ServerState

router = APIRouter(dependencies=[Depends(require_api_key)])
log = logging.getLogger(__name__)
_PASSED_HEADERS = ("content-type", "x-request-id")


@dataclass
class UpstreamConfig:
    url: str  # the engine's OpenAI base, e.g. http://gpu-host:8001/v1
    api_key: str | None = None  # sent to the engine; None: forward the client's Authorization
    timeout_s: float = 600.0  # one request, start to end (a long generation)
    connect_timeout_s: float = 5.0
    max_connections: int = 256


class Upstream:
    """An httpx.AsyncClient on the engine, shared by every request of this replica."""

    def __init__(self, config: UpstreamConfig):
        self.config = config
        self.client = httpx.AsyncClient(
            base_url=config.url.rstrip("/") + "/",
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=32),
        )

    def headers(self, request: Request) -> dict[str, str]:
        auth = f"Bearer {self.config.api_key}" if self.config.api_key else request.headers.get("authorization")
        return {"content-type": "application/json", **({"authorization": auth} if auth else {})}

    async def ping(self) -> str | None:
        """None when the engine answers ``GET models``; else why not (for /ready)."""
        try:
            r = await self.client.get(
                "models",
                timeout=self.config.connect_timeout_s,
                headers={"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else None,
            )
        except httpx.HTTPError as e:
            return f"the LLM engine at {self.config.url} is unreachable ({type(e).__name__})"
        return None if r.status_code < 500 else f"the LLM engine at {self.config.url} answered {r.status_code}"

    async def aclose(self) -> None:
        await self.client.aclose()


def open_service(state: ServerState) -> Upstream | None:
    """The engine client when ``--llm-url`` is given (the key from ``--llm-api-key`` or ``ROOST_LLM_API_KEY``)."""
    config = state.config
    if not config.llm_url:
        return None
    return Upstream(UpstreamConfig(config.llm_url, config.llm_api_key or os.environ.get("ROOST_LLM_API_KEY")))


def _upstream(request: Request) -> Upstream:
    return request.app.state.roost.services.upstream


def _failure(e: httpx.HTTPError, url: str) -> APIError:
    if isinstance(e, httpx.TimeoutException):
        return APIError(
            504, f"the LLM engine at {url} did not answer in time", type="server_error", code="upstream_timeout"
        )
    return APIError(
        502,
        f"the LLM engine at {url} is unreachable ({type(e).__name__})",
        type="server_error",
        code="upstream_unavailable",
    )


def _relay_error(status: int, body: bytes, url: str) -> Response:
    """The engine's 4xx as it sent it; its 5xx as a 502 that carries its message."""
    if status < 500:
        return Response(body, status_code=status, media_type="application/json")
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body[:500].decode("utf-8", "replace")
    return JSONResponse(
        error_body(f"the LLM engine at {url} failed ({status}): {message}", "server_error", code="upstream_error"),
        status_code=502,
    )


async def _forward(request: Request, path: str) -> Response:
    up = _upstream(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    send = up.client.build_request("POST", path, json=body, headers=up.headers(request))
    try:
        r = await up.client.send(send, stream=True)
    except httpx.HTTPError as e:
        raise _failure(e, up.config.url) from None
    if r.status_code != 200 or not body.get("stream"):
        try:
            content = await r.aread()
        except httpx.HTTPError as e:
            raise _failure(e, up.config.url) from None
        finally:
            await r.aclose()
        if r.status_code != 200:
            return _relay_error(r.status_code, content, up.config.url)
        return Response(content, status_code=200, media_type=r.headers.get("content-type", "application/json"))
    return StreamingResponse(
        _relay_stream(r, up.config.url),
        media_type="text/event-stream",
        headers={k: v for k, v in r.headers.items() if k in _PASSED_HEADERS[1:]},
    )


async def _relay_stream(r: httpx.Response, url: str) -> AsyncIterator[bytes]:
    """The engine's server-sent events as they come; an error event if it breaks off; closed on hang-up."""
    try:
        async for chunk in r.aiter_raw():
            yield chunk
    except httpx.HTTPError as e:
        log.warning("LLM engine stream from %s broke off: %s", url, e)
        err = error_body(
            f"the LLM engine at {url} broke off the stream ({type(e).__name__})", "server_error", code="upstream_error"
        )
        yield f"data: {json.dumps(err)}\n\n".encode()
    finally:
        await r.aclose()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await _forward(request, "chat/completions")


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await _forward(request, "completions")


@router.get("/v1/models")
async def models(request: Request) -> Response:
    up = _upstream(request)
    try:
        r = await up.client.get("models", headers=up.headers(request))
    except httpx.HTTPError as e:
        raise _failure(e, up.config.url) from None
    if r.status_code != 200:
        return _relay_error(r.status_code, r.content, up.config.url)
    return Response(r.content, media_type="application/json")
