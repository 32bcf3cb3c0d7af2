"""``roost serve-partition``: one partition of a partitioned search index, served to the front.

The front (``roost serve --search-partition URL ...``) is this server's only client:
it asks for term counts, then candidates scored with the summed counts, and sends
the writes routed to this partition (:mod:`roost.search.front`). Clients never call
it directly. A ``--key`` makes every route need ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from roost.search.dfs import TermStats
from roost.search.engine import QueryError, SearchIndex
from roost.search.lexical import MAX_QUERY_TERMS
from roost.search.partition import partition_vector_config, partitions_in
from roost.search.replica import LocalPartition
from roost.search.wire import candidates_to_dict, dumps, loads, request_from_dict
from roost.server.auth import bearer, keys_match
from roost.server.errors import APIError, install_error_handlers
from roost.workspace import Workspace

log = logging.getLogger(__name__)

MAX_VOCABULARY = 10_000_000  # terms per field a front may ask for at once


@dataclass
class PartitionConfig:
    workspace: Path
    partition: int
    index_dir: Path  # this replica's copy of the partition folder
    key: str | None = None


@dataclass
class PartitionState:
    workspace: Workspace
    config: PartitionConfig
    partition: LocalPartition


class ApplyIn(BaseModel):
    seq: int | None = None
    op: str
    payload: dict


def _require_key(request: Request) -> None:
    key = request.app.state.roost.config.key
    if key and not keys_match(bearer(request), [key]):
        raise APIError(401, "this partition needs 'Authorization: Bearer KEY' (its --key)", type="authentication_error")


async def _json(request: Request) -> dict:
    try:
        body = loads(await request.body())
    except ValueError as e:
        raise APIError(400, f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise APIError(400, "the body must be a JSON object")
    return body


def _answer(payload: dict) -> Response:
    return Response(dumps(payload), media_type="application/json")


def _partition(request: Request) -> LocalPartition:
    return request.app.state.roost.partition


def create_partition_app(config: PartitionConfig) -> FastAPI:
    """The partition's index opened (with the workspace's search model when the index has vectors)."""
    from roost.search.embed import load_search_model

    ws = Workspace(config.workspace)
    manifest = ws.read_manifest("index") or {}
    model = load_search_model(ws.model) if manifest.get("semantic") else None
    index = SearchIndex(config.index_dir, model, vector_config=partition_vector_config(partitions_in(manifest)))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        index.close()  # releases tantivy's writer lock

    app = FastAPI(title=f"roost search partition {config.partition}", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.roost = PartitionState(ws, config, LocalPartition(index))
    install_error_handlers(app)
    deps = [Depends(_require_key)]

    @app.get("/partition/health", dependencies=deps)
    def health(request: Request) -> dict:
        p = _partition(request)
        return {"partition": config.partition, "posts": p.index.docs.count(), "applied": p.applied()}

    # the query routes are plain Starlette routes that parse and write JSON with orjson: FastAPI's encoder took
    # longer than the search itself, and its request handling was 0.14 of a 0.50 ms loopback round trip, paid
    # by every partition on every query
    async def stats(request: Request) -> Response:
        _require_key(request)
        body = await _json(request)
        terms = body.get("terms")
        if not isinstance(terms, list) or len(terms) > MAX_QUERY_TERMS or not all(isinstance(t, str) for t in terms):
            raise APIError(400, f"terms: a list of at most {MAX_QUERY_TERMS} strings", param="terms")
        return _answer(_partition(request).term_stats(terms).to_dict())

    async def vocabulary(request: Request) -> Response:
        _require_key(request)
        limit = (await _json(request)).get("limit")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_VOCABULARY:
            raise APIError(400, f"limit: an integer from 1 to {MAX_VOCABULARY:,}", param="limit")
        found = await run_in_threadpool(_partition(request).vocabulary, limit)
        return _answer(found.to_dict())

    async def candidates(request: Request) -> Response:
        _require_key(request)
        body = await _json(request)
        try:
            req = request_from_dict(body["request"])
            qvec = None if body.get("qvec") is None else np.asarray(body["qvec"], dtype=np.float32)
            stats = None if body.get("stats") is None else TermStats.from_dict(body["stats"])
            depth = body.get("depth")
            if depth is not None and (
                not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 10_000
            ):
                raise APIError(400, "depth: an integer from 1 to 10,000, or null", param="depth")
            # on the event loop, not a worker thread: the search holds the GIL for most of its few ms anyway, and
            # the hop to a thread and back cost a front query two wake-ups on a busy machine
            found = _partition(request).candidates(req, qvec, stats, depth)
        except QueryError as e:
            raise APIError(400, str(e), param=e.param) from None
        except (KeyError, TypeError, ValueError) as e:
            raise APIError(400, f"request: {type(e).__name__}: {e}", param="request") from None
        return _answer(candidates_to_dict(found))

    for path, endpoint in (
        ("/partition/stats", stats),
        ("/partition/vocabulary", vocabulary),
        ("/partition/candidates", candidates),
    ):
        app.add_route(path, endpoint, methods=["POST"])

    @app.post("/partition/apply", dependencies=deps)
    def apply(request: Request, body: ApplyIn) -> dict:
        try:
            return _partition(request).apply(body.seq, body.op, body.payload)
        except (KeyError, TypeError, ValueError) as e:
            raise APIError(400, f"payload: {type(e).__name__}: {e}", param="payload") from None

    @app.get("/partition/authors/{author_id:path}", dependencies=deps)
    def author(request: Request, author_id: str) -> dict:
        return {"id": author_id, "known": _partition(request).has_author(author_id)}

    return app
