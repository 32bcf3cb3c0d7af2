"""The search surface: ``GET /search`` and the live post admin routes.

``POST /admin/posts`` adds posts (normalized and filtered like ingest) and
``DELETE /admin/posts/{id}`` removes one; both take the admin key, and both are
visible to the next query and durable when they return.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from roost.search.docstore import Filters
from roost.search.engine import SearchIndex, SearchRequest, parse_time
from roost.search.front import PartitionedIndex
from roost.search.live import PostPreparer
from roost.search.replica import PartitionError
from roost.server.auth import require_admin_key, require_api_key
from roost.server.errors import APIError, no_index_error
from roost.server.state import ServedModel, ServerState

log = logging.getLogger(__name__)
router = APIRouter()
MAX_POSTS_PER_REQUEST = 1000


def open_service(state: ServerState, served: ServedModel | None) -> SearchService | Unavailable | None:
    """Open ``workspace/index`` (semantic search with the served model, loaded once by the app), when it exists."""
    from roost.search.embed import load_search_model

    manifest = state.workspace.read_manifest("index")
    if manifest is None and state.config.search_partitions:  # a front needs no index of its own, only the model
        manifest = {"semantic": (state.workspace.model / "config.json").is_file()}
    if manifest is None:
        log.warning("search: no index in %s; run `roost index` to enable /search", state.workspace.root)
        return None
    embed, model_error = None, None
    if manifest.get("semantic"):
        try:
            embed = load_search_model(
                state.workspace.model, rerank=state.config.search_rerank > 0, served=served.embedder if served else None
            )
            embed.ranking = replace(embed.ranking, rerank_top=state.config.search_rerank)
        except (FileNotFoundError, ValueError, ImportError, OSError) as e:
            model_error = f"the model did not load ({e})"
            log.warning("search: semantic and hybrid modes disabled: %s", model_error)
            state.warnings.append(f"search: semantic and hybrid modes disabled: {model_error}")
    try:
        index = open_index(state, manifest, embed)
    except Exception as e:  # a damaged index must not take the other surfaces down; /search says why
        log.exception("search: cannot open the index in %s", state.workspace.index)
        state.warnings.append(f"search: cannot open the index: {type(e).__name__}: {e}")
        return Unavailable(f"the search index in {state.workspace.index} cannot be opened ({type(e).__name__}: {e})")
    prepare = PostPreparer.for_workspace(state.workspace)
    prepare.warm_up()
    return SearchService(index, prepare, read_usernames(state.workspace), model_error)


def open_index(state: ServerState, manifest: dict, embed) -> SearchIndex | PartitionedIndex:
    """The workspace's index; a partitioned one through its partition servers (``--search-partition``) or,
    without them, with every partition opened in this process."""
    from roost.search.front import FrontConfig
    from roost.search.partition import part_dir, partition_vector_config, partitions_in
    from roost.search.replica import LocalPartition, RemotePartition

    config = state.config
    front = FrontConfig(deadline_s=config.search_deadline_s)
    if config.search_partitions:
        replicas = [
            [
                RemotePartition(url, key=config.search_partition_key, timeout_s=config.search_deadline_s)
                for url in urls.split(",")
            ]
            for urls in config.search_partitions
        ]
        log_path = state.workspace.root / "search-writes.sqlite"  # what a lagging replica is replayed from
        return PartitionedIndex(replicas, embed, config=front, log_path=log_path)
    parts = partitions_in(manifest)
    if parts == 0:
        return SearchIndex(state.workspace.index, embed)
    vectors = partition_vector_config(parts)
    local = [
        [LocalPartition(SearchIndex(part_dir(state.workspace.index, i), embed, vector_config=vectors))]
        for i in range(parts)
    ]
    return PartitionedIndex(local, embed, config=front)


@dataclass
class Unavailable:
    """What the search surface holds when its index exists but cannot be opened: the reason, for the 503."""

    reason: str


def read_usernames(ws) -> dict[str, str]:
    """Author id -> handle (without '@'), from the corpus's users table."""
    from roost.corpus.schema import read_table

    if ws.read_manifest("corpus") is None:
        return {}
    users = read_table(ws.corpus, "users", columns=["id", "username"]).to_pydict()
    return {i: u for i, u in zip(users["id"], users["username"]) if u}


@dataclass
class SearchService:
    index: SearchIndex | PartitionedIndex
    prepare: PostPreparer  # normalizes and filters posts added live, like ingest
    usernames: dict[str, str] = field(default_factory=dict)  # author id -> handle
    model_error: str | None = None  # why semantic and hybrid search are off, when the model did not load

    def __post_init__(self) -> None:
        self._by_handle = {u.lower(): i for i, u in self.usernames.items()}

    def author_id(self, value: str) -> str:
        """An ``author`` filter as given: ``@name`` is a handle, ``name`` an author id or else a handle."""
        value = value.strip()
        if value.startswith("@"):
            return self._by_handle.get(value[1:].lower(), value)  # an unknown handle matches no post
        if self.index.has_author(value):
            return value
        return self._by_handle.get(value.lower(), value)

    def close(self) -> None:  # called by the app on shutdown: releases the tantivy writer lock
        self.index.close()


def _service(request: Request) -> SearchService:
    state: ServerState = request.app.state.roost
    service = state.services.search
    if service is None:
        raise no_index_error(state, "search is not available")
    if isinstance(service, Unavailable):
        raise APIError(
            503,
            f"search is not available: {service.reason}; rebuild it with `roost index --workspace "
            f"{state.workspace.root}` and restart the server",
            type="service_unavailable",
            code="index_unavailable",
        )
    return service


def _partition_down(e: PartitionError) -> APIError:
    return APIError(
        503,
        f"no replica has applied the write yet ({e}); with partition servers it is kept in the front's "
        "write log and applied when the partition is back; retrying it is safe",
        type="service_unavailable",
        code="partition_unavailable",
        headers={"Retry-After": "1"},
    )


def _bad(e: ValueError) -> APIError:
    return APIError(400, str(e), param=getattr(e, "param", None))


@router.get("/search", dependencies=[Depends(require_api_key)])
def search(
    request: Request,
    q: str = "",
    k: int = 10,
    mode: str = "hybrid",
    author: str | None = None,
    since: str | None = None,
    until: str | None = None,
    hashtag: str | None = None,
    lang: str | None = None,
    explain: bool = False,
) -> dict:
    service = _service(request)
    if mode != "lexical" and service.model_error:
        state: ServerState = request.app.state.roost
        raise APIError(
            503,
            f"mode={mode} is not available: {service.model_error}; use mode=lexical, or run "
            f"`roost train-retriever --workspace {state.workspace.root}` (or `roost export`) and "
            "restart the server",
            type="service_unavailable",
            code="model_unavailable",
        )
    t0 = time.perf_counter()
    try:
        filters = Filters(
            author=service.author_id(author) if author and author.strip() else None,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            hashtag=hashtag.lstrip("#").lower() if hashtag else None,
            lang=lang or None,
        )
        answer = service.index.search_partial(SearchRequest(q=q, k=k, mode=mode, filters=filters))
    except ValueError as e:
        raise _bad(e) from None
    data = [{**h.to_dict(explain), "username": service.usernames.get(h.post.author_id)} for h in answer.hits]
    return {
        "object": "list",
        "query": q,
        "mode": mode,
        "data": data,
        "partial": answer.partial,  # true: the partitions named in missing_partitions did not answer in time
        "missing_partitions": answer.missing,
        "took_ms": round((time.perf_counter() - t0) * 1000, 3),
        **({} if answer.partition_ms is None else {"partition_ms": round(answer.partition_ms, 3)}),
    }


class PostIn(BaseModel):
    """A post as a client sends it; Twitter-like field names."""

    id: str = Field(min_length=1, max_length=128)
    text: str = Field(max_length=25_000)
    author_id: str | None = None
    created_at: datetime | None = None  # default: now
    lang: str | None = None
    hashtags: list[str] | None = None  # default: taken from the text
    like_count: int = Field(0, ge=0)
    retweet_count: int = Field(0, ge=0)
    reply_count: int = Field(0, ge=0)


class PostsIn(BaseModel):
    posts: list[PostIn] = Field(min_length=1, max_length=MAX_POSTS_PER_REQUEST)


@router.post("/admin/posts", dependencies=[Depends(require_admin_key)])
def add_posts(request: Request, body: PostsIn) -> dict:
    service = _service(request)
    if not service.index.can_add():
        raise APIError(
            503,
            "posts cannot be added: the index has vectors but the model to embed them did not "
            "load (see the server log)",
            type="service_unavailable",
            code="no_model",
        )
    accepted, rejected = service.prepare([p.model_dump() for p in body.posts])
    if accepted:
        try:
            service.index.add(accepted)
        except PartitionError as e:
            raise _partition_down(e) from None
    return {"object": "list", "added": [p.id for p in accepted], "rejected": rejected}


# ":path": a post id may hold "/" (POST /admin/posts accepts it), so it must be deletable too
@router.delete("/admin/posts/{post_id:path}", dependencies=[Depends(require_admin_key)])
def delete_post(request: Request, post_id: str) -> dict:
    try:
        deleted = _service(request).index.delete(post_id)
    except PartitionError as e:
        raise _partition_down(e) from None
    if not deleted:
        raise APIError(
            404,
            f"no post with id {post_id!r} in the search index",
            type="not_found_error",
            param="post_id",
            code="post_not_found",
        )
    return {"id": post_id, "object": "post", "deleted": True}
