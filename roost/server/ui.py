"""The ui surface: the web page at ``/`` and the small read-only routes it needs.

``GET /``, ``/favicon.ico`` and ``/static/*`` serve the page (plain HTML/JS/CSS
in ``static/``; nothing loads from the internet), ``/docs`` the
API docs (``roost.server.docs``). ``GET /timeline`` lists recent posts from the
search index's doc store, ``GET /ui/users`` the most active authors (to pick a
timeline), and ``GET /ui/summary`` the dashboard: the training runs, the model,
the index and the ad campaigns' spend, and ``GET /ui/campaigns`` every campaign a
page at a time (the same listing as ``/admin/campaigns``). These are read-only
aggregates, so they need no admin key, unlike ``/admin/reports`` and the admin
campaign routes that change things.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from roost.server.ads import SortKey, campaign_page
from roost.server.auth import require_api_key
from roost.server.docs import router as docs_router
from roost.server.errors import APIError, no_index_error
from roost.server.state import ServerState

router = APIRouter()
router.include_router(docs_router)  # /docs, from the package's files
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {p.name for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() else set()
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CURVE_POINTS = 200  # the dashboard's loss curve is downsampled to at most this many points


class PostFeed:
    """Recent posts from the search index's doc store (its source of truth, which sees live posts too).

    The doc store answers "these keys"; which keys are the newest (by author or
    not) is asked over a separate read-only connection to the same SQLite file
    (WAL), so the timeline never holds the search service's lock for a scan.
    """

    def __init__(self, docs, usernames: dict[str, str] | None = None, author_id: Callable[[str], str] = str.strip):
        self.docs = docs
        self.usernames = usernames or {}  # author id -> @handle, from the corpus's users table
        self.author_id = author_id  # "@handle" or id -> author id: search's resolver, so both take the same
        self._db = sqlite3.connect(f"file:{docs.path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    def recent(self, author: str | None, n: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """The ``n`` newest posts (of ``author``) after ``cursor``, and the cursor of the page after them (None
        at the end). A cursor is the key of a page's last post: the next page starts below its (time, key), so
        posts added meanwhile neither repeat nor shift a page."""
        where, args = "deleted = 0", []
        if author:
            where += " AND author_id = ?"
            args.append(author)
        with self._lock:
            if cursor is not None:
                row = self._db.execute(
                    "SELECT created_at, key FROM posts WHERE key = ?", (_cursor_key(cursor),)
                ).fetchone()
                if row is None:
                    raise APIError(
                        400,
                        f"cursor {cursor!r} is no post of this index; pass a next_cursor /timeline handed out",
                        param="cursor",
                    )
                where += " AND (created_at < ? OR (created_at = ? AND key < ?))"
                args += [row[0], row[0], row[1]]
            keys = [
                r[0]
                for r in self._db.execute(
                    f"SELECT key FROM posts WHERE {where} ORDER BY created_at DESC, key DESC LIMIT ?", [*args, n + 1]
                )
            ]
        more, keys = len(keys) > n, keys[:n]
        posts = self.docs.get(keys)
        page = [
            {
                "id": p.id,
                "text": p.text,
                "author": p.author_id,
                "username": self.usernames.get(p.author_id),
                "created_at": p.created_iso,
                "hashtags": p.hashtags,
                "engagement": p.engagement,
            }
            for p in (posts[k] for k in keys if k in posts)
        ]
        return page, str(keys[-1]) if more else None

    def authors(self, n: int) -> list[dict]:
        sql = (
            "SELECT author_id, COUNT(*) AS posts FROM posts WHERE deleted = 0 AND author_id IS NOT NULL "
            "GROUP BY author_id ORDER BY posts DESC, author_id LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (n,)).fetchall()
        return [{"id": r[0], "username": self.usernames.get(r[0]), "posts": r[1]} for r in rows]

    def close(self) -> None:
        self._db.close()


def _cursor_key(cursor: str) -> int:
    """A cursor's post key: ASCII digits that fit SQLite's 64-bit integers (else a 400, never a 500)."""
    if not (cursor.isascii() and cursor.isdigit()) or int(cursor) >= 2**63:
        raise APIError(
            400, f"cursor {cursor!r} is not a cursor; pass a next_cursor /timeline handed out", param="cursor"
        )
    return int(cursor)


def open_feed(search: object) -> PostFeed | None:
    """The timeline over ``search``'s doc store (a ``SearchService``); None when search is not up."""
    from roost.search.engine import SearchIndex
    from roost.server.search import SearchService

    if not isinstance(search, SearchService) or not isinstance(search.index, SearchIndex):
        return None  # a partitioned index has no one doc store to page through
    return PostFeed(search.index.docs, search.usernames, search.author_id)


def _feed(request: Request) -> PostFeed:
    state: ServerState = request.app.state.roost
    feed = state.services.feed
    if feed is None:
        raise no_index_error(state, "the timeline needs the search index")
    return feed


# ---- the page --------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def index_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.ico", media_type="image/vnd.microsoft.icon")


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:  # an allow-list: no path ever reaches the filesystem unchecked
        raise APIError(404, f"no static file {name!r}", type="not_found_error", param="name")
    return FileResponse(STATIC / name)


# ---- timeline --------------------------------------------------------------------------------


@router.get("/timeline", dependencies=[Depends(require_api_key)])
def timeline(
    request: Request,
    user_id: str | None = Query(None, max_length=200, description="author id or @handle"),
    n: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=40, description="next_cursor of the page before"),
) -> dict:
    """The newest posts, or the newest posts of ``user_id``, a page at a time: ``next_cursor`` (null on the
    last page) asks for the next."""
    feed = _feed(request)
    posts, next_cursor = feed.recent(feed.author_id(user_id) if user_id else None, n, cursor)
    if user_id and not posts and cursor is None:
        raise APIError(404, f"no posts by user {user_id!r} in the index", type="not_found_error", param="user_id")
    return {"object": "list", "user_id": user_id, "data": posts, "next_cursor": next_cursor}


@router.get("/ui/users", dependencies=[Depends(require_api_key)])
def users(
    request: Request,
    n: int = Query(20, ge=1, le=200),
    ids: str | None = Query(None, max_length=4000, description="comma-separated user ids to name"),
) -> dict:
    """The most active authors (to pick whose timeline to show), or the handles of the users in ``ids``."""
    feed = _feed(request)
    if ids is not None:
        return {
            "object": "list",
            "data": [
                {"id": i, "username": feed.usernames.get(i)}
                for i in dict.fromkeys(x.strip() for x in ids.split(","))
                if i
            ],
        }
    return {"object": "list", "data": feed.authors(n)}


# ---- dashboard -------------------------------------------------------------------------------


@dataclass
class RunSummary:
    name: str
    steps: int | None
    loss: float | None
    val_loss: float | None
    val_bpb: float | None
    curve: list[tuple[int, float]]
    val_curve: list[tuple[int, float]]
    has_plot: bool


def run_summary(run_dir: Path) -> RunSummary:
    """The last figures and a downsampled loss curve of one run (runs/NAME/metrics.jsonl)."""
    from roost.train.metrics import read_metrics

    records = read_metrics(run_dir / "metrics.jsonl")
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    stride = max(1, len(train) // CURVE_POINTS)
    return RunSummary(
        name=run_dir.name,
        steps=max((r["step"] for r in records if "step" in r), default=None),
        loss=train[-1][1] if train else None,
        val_loss=val[-1]["val_loss"] if val else None,
        val_bpb=val[-1].get("val_bpb") if val else None,
        curve=train[::stride],
        val_curve=[(r["step"], r["val_loss"]) for r in val],
        has_plot=(run_dir / "loss.png").is_file(),
    )


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def ads_summary(service, top: int = 10) -> dict:
    """Campaign count, total spend and budget, and the top campaigns by spend (the listing's first page)."""
    from roost.ads.listing import ListQuery, list_campaigns

    totals = (
        service.store.reader()
        .execute(
            # SQL both databases take: PostgreSQL sums no booleans and sums BIGINT as NUMERIC
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0),"
            " CAST(COALESCE(SUM(spend_micros), 0) AS BIGINT), CAST(COALESCE(SUM(budget_micros), 0) AS BIGINT)"
            " FROM campaigns"
        )
        .fetchone()
    )
    counts = service.store.click_counts().values()
    return {
        "campaigns": totals[0],
        "active": totals[1],
        "spend": totals[2] / 1e6,
        "budget": totals[3] / 1e6,
        "impressions": sum(row[0] for row in counts),
        "clicks": sum(row[1] for row in counts),
        "top": list_campaigns(service.store, ListQuery(limit=top), pacing=service.config.pacing)["data"],
    }


def served_run(model: dict) -> tuple[str, str | None]:
    """Which training stage made the served model ("sft" or "pretraining"; "imported" or "exported" when no run
    here says) and the run (``runs/NAME``) whose figures are the model's own, from the model manifest's
    ``source``. The dashboard shows that run's val loss beside the model, so an SFT model is not shown with its
    base's pretraining loss.
    """
    from roost.train.config import TrainConfig
    from roost.train.sft_config import SFT_SOURCE, SFT_TRAIN_DEFAULTS

    sft_run = SFT_TRAIN_DEFAULTS["run"]
    source = model.get("source") or ""
    if source == SFT_SOURCE:
        return "sft", sft_run
    if source.startswith("roost train"):
        return "pretraining", TrainConfig.run
    if source.startswith("roost export "):  # a checkpoint's meta.json names its run
        meta = Path(source.removeprefix("roost export ")) / "meta.json"
        run = json.loads(meta.read_text()).get("run") if meta.is_file() else None
        return ("exported" if run is None else "sft" if run == sft_run else "pretraining"), run
    return "imported", None


@router.get("/ui/summary", dependencies=[Depends(require_api_key)])
def summary(request: Request) -> dict:
    state: ServerState = request.app.state.roost
    ws = state.workspace
    runs_dir = ws.root / "runs"
    runs = (
        [run_summary(d) for d in sorted(runs_dir.iterdir()) if (d / "metrics.jsonl").is_file()]
        if runs_dir.is_dir()
        else []
    )
    index = ws.read_manifest("index")
    feed = state.services.feed
    ads = state.services.ads
    model = ws.read_manifest("model")
    corpus = ws.read_manifest("corpus")
    return {
        "corpus": corpus["counts"] if corpus else None,
        "model": {
            **model["counts"],
            "source": model.get("source"),
            "created": model.get("created"),
            **dict(zip(("stage", "run"), served_run(model))),
        }
        if model
        else None,
        "runs": [r.__dict__ for r in runs],
        "index": {
            **index["counts"],
            "live_posts": feed.docs.count() if feed else None,
            "size_bytes": _folder_bytes(ws.index),
            "semantic": bool(index.get("semantic")),
        }
        if index
        else None,
        "ads": ads_summary(ads) if ads is not None else None,
        "services": state.services.names(),
    }


@router.get("/ui/campaigns", dependencies=[Depends(require_api_key)])
def campaigns(
    request: Request,
    sort: SortKey = "spend",
    order: Literal["asc", "desc"] = "desc",
    limit: int = Query(20, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**53),
) -> dict:
    """The dashboard's campaign table: ``GET /admin/campaigns``'s listing, read-only like the summary."""
    ads = request.app.state.roost.services.ads
    if ads is None:
        raise APIError(404, "ads are not set up in this workspace", type="not_found_error")
    return campaign_page(ads, sort, order, limit, offset)


@router.get("/ui/runs/{name}/loss.png", include_in_schema=False)
def loss_plot(name: str, request: Request) -> FileResponse:
    state: ServerState = request.app.state.roost
    path = state.workspace.root / "runs" / name / "loss.png"
    if not _RUN_NAME.match(name) or not path.is_file():
        raise APIError(404, f"no loss plot for run {name!r}", type="not_found_error", param="name")
    return FileResponse(path, media_type="image/png")
