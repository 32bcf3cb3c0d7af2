"""What one request and one client may ask of ``roost serve``, enforced before any route runs.

Every route shares one event loop: a request that parses, tokenizes or embeds
megabytes of text there stalls every other client, ``/health`` included. So
each bound here is checked in this ASGI middleware, before the app sees the
request, at the cost of a dictionary lookup:

- the body is read up to ``max_body_bytes`` and refused with 413 past it
  (a stated Content-Length is refused before a byte is read);
- a JSON body holding a lone UTF-16 surrogate (``"\\ud800"``, or its bytes
  raw) is refused with 400: such a string is not Unicode, and every layer
  under the app (tokenizer, SQLite, tantivy) would fail on it in its own way;
- each client (its bearer key, else its address) gets a token bucket of
  ``rate`` requests per second with bursts of ``burst``, and at most
  ``concurrency`` requests in flight; past either it gets 429 with
  Retry-After, like the engine's full queue. ``/health`` is exempt, so a
  monitor still sees a busy server.

The per-route bounds (prompt characters, embedding inputs) live with their
routes in ``roost.server.openai`` and are configured here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

EXEMPT = frozenset({"/health"})


@dataclass
class Limits:
    """Defaults fit one laptop serving a few clients; ``roost serve --help`` names the flag of each."""

    max_body_bytes: int = 4 * 2**20  # 1000 posts of ~4 KB for /admin/posts fit; 20 MB prompts do not
    max_prompt_chars: int = 100_000  # prompt, chat messages or one embedding input, checked before tokenizing
    max_embedding_inputs: int = 256  # texts per /v1/embeddings request
    concurrency: int = 32  # requests in flight per client
    rate: float = 100.0  # requests per second per client, sustained (0: no rate limit)
    burst: int = 200  # requests a client may send at once after being idle

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_prompt_chars", "max_embedding_inputs", "concurrency", "burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.rate < 0:
            raise ValueError(f"rate must be 0 (off) or more, got {self.rate}")


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error shape, the one every 4xx and 5xx of this server has (``roost.server.errors.ERROR_SCHEMA``)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    from starlette.responses import JSONResponse  # here, so `roost --help` (which reads Limits) stays fast

    return JSONResponse(error_body(message, type, param, code), status_code=status, headers=headers)


def lone_surrogate(obj: object, path: str = "") -> str | None:
    """The dotted path of the first string in ``obj`` holding a lone UTF-16 surrogate ("" for the top), or None."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        if isinstance(key, str) and lone_surrogate(key) is not None:
            return f"{path}.(a key)" if path else "(a key)"  # never echo the bad key: it cannot be encoded
        found = lone_surrogate(value, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class _Bucket:
    __slots__ = ("tokens", "stamp", "in_flight")

    def __init__(self, burst: int, now: float):
        self.tokens, self.stamp, self.in_flight = float(burst), now, 0


class GuardMiddleware:
    """Body size, surrogate, rate and concurrency checks in front of the whole app (see the module docstring)."""

    PRUNE_AT = 10_000  # clients tracked before idle ones are forgotten

    def __init__(self, app, limits: Limits, clock=time.monotonic):
        self.app, self.limits, self.clock = app, limits, clock
        self.clients: dict[str, _Bucket] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal, bucket = self._admit(scope)
        if bucket is not None:
            bucket.in_flight += 1
        try:
            if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body, refusal = await self._read_body(scope, receive)
                if body is None:
                    return  # the client left before sending its body: no one to answer
                if refusal is None:
                    receive = _replay(body, receive)
            if refusal is not None:
                return await refusal(scope, receive, send)
            await self.app(scope, receive, send)
        finally:
            if bucket is not None:
                bucket.in_flight -= 1

    def _admit(self, scope) -> tuple[JSONResponse | None, _Bucket | None]:
        """(429, None) when the client is over its rate or has too many in flight; else (None, its bucket)."""
        if scope["path"] in EXEMPT:
            return None, None
        lim, now, key = self.limits, self.clock(), _client(scope)
        bucket = self.clients.get(key)
        if bucket is None:
            if len(self.clients) >= self.PRUNE_AT:
                self._forget_idle(now)
            bucket = self.clients[key] = _Bucket(lim.burst, now)
        if lim.rate:
            bucket.tokens = min(lim.burst, bucket.tokens + (now - bucket.stamp) * lim.rate)
            bucket.stamp = now
        if bucket.in_flight >= lim.concurrency:
            return _too_many(
                f"this client already has {bucket.in_flight} requests in flight, the most this "
                f"server allows (--max-concurrency {lim.concurrency})",
                1,
            ), None
        if lim.rate:
            if bucket.tokens < 1:
                wait = math.ceil((1 - bucket.tokens) / lim.rate)
                return _too_many(
                    f"this client is over {lim.rate:g} requests per second (--rate-limit; bursts of {lim.burst})", wait
                ), None
            bucket.tokens -= 1
        return None, bucket

    def _forget_idle(self, now: float) -> None:
        """Drop clients with nothing in flight whose bucket has refilled: they start afresh if they come back."""
        full_after = self.limits.burst / self.limits.rate if self.limits.rate else 0.0
        for key in [k for k, b in self.clients.items() if not b.in_flight and now - b.stamp >= full_after]:
            del self.clients[key]

    async def _read_body(self, scope, receive) -> tuple[bytes | None, JSONResponse | None]:
        """The whole body (None if the client left), or a 413 as soon as it is too big (400: a lone surrogate)."""
        limit = self.limits.max_body_bytes
        stated = dict(scope["headers"]).get(b"content-length")
        if stated is not None and stated.isdigit() and int(stated) > limit:
            return b"", _too_large(int(stated), limit)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", _too_large(size, limit, at_least=True)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        return body, _surrogate_refusal(body)


def _client(scope) -> str:
    """Who is asking: a digest of the bearer key (or admin key header) when one is sent, else the address."""
    headers = dict(scope["headers"])
    key = headers.get(b"authorization") or headers.get(b"x-admin-key")
    if key:
        return "key:" + hashlib.sha256(key).hexdigest()[:24]
    client = scope.get("client")
    return f"addr:{client[0] if client else '?'}"


def _replay(body: bytes, receive):
    """A ``receive`` that hands the app the body already read, then passes on (disconnects included)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _too_many(message: str, retry_after: int) -> JSONResponse:
    return error_response(
        429,
        f"{message}; retry after {retry_after} s",
        "rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(retry_after)},
    )


def _too_large(size: int, limit: int, at_least: bool = False) -> JSONResponse:
    told = f"more than {limit}" if at_least else str(size)
    return error_response(
        413,
        f"the request body is {told} bytes; this server takes at most {limit} "
        "(--max-body-bytes). Send less per request.",
        "invalid_request_error",
        code="request_too_large",
    )


# A surrogate escape (\uD800-\uDFFF), or one encoded raw (ED A0-BF ..), which Python's json accepts too.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _surrogate_refusal(body: bytes) -> JSONResponse | None:
    """400 when a JSON body holds a lone surrogate; only bodies that may hold one are parsed here."""
    if not _SURROGATE_HINT.search(body):
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parsing answers with its 400
    path = lone_surrogate(obj)
    if path is None:
        return None
    where = path or "the body"
    return error_response(
        400,
        f"{where}: the text holds a lone UTF-16 surrogate escape (such as \\ud800), which is not a Unicode character",
        "invalid_request_error",
        param=path or None,
    )
