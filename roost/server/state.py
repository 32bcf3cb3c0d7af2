"""What the routers share: the server's config, its workspace and its typed, loaded services.

Routers import this module (and ``errors``, ``auth``), never ``app``: the app
imports the routers, so dependencies point one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from roost.server.limits import Limits
from roost.workspace import Workspace

if TYPE_CHECKING:
    from roost.ads.service import AdService
    from roost.embeddings import TextEmbedder
    from roost.model import GPT
    from roost.server.openai import OpenAIService
    from roost.server.search import SearchService, Unavailable
    from roost.server.ui import PostFeed
    from roost.server.upstream import Upstream
    from roost.tokenizer import RoostTokenizer


@dataclass
class ServeConfig:
    workspace: Path = Path("workspace")
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = field(default_factory=list)  # empty: no key needed for the API
    admin_key: str | None = None  # None: admin routes refused
    slots: int = 8
    queue: int = 64
    model_name: str = "roost"
    public_url: str | None = None  # base of links handed out (click URLs); None: http://HOST:PORT
    limits: Limits = field(default_factory=Limits)
    search_rerank: int = 0  # hybrid search re-ranks this many fused posts by the model's query likelihood (0: off)
    ads_db: str | None = None  # the ads database: a postgresql:// URL (shared by replicas) or a file; None: ads.db
    llm_url: str | None = None  # an OpenAI-compatible engine for chat and completions (roost.server.upstream)
    llm_api_key: str | None = None  # sent to that engine; None: the client's Authorization is forwarded
    search_partitions: list[str] = field(default_factory=list)  # per partition: its replicas' URLs, comma-separated
    search_partition_key: str | None = None  # the partition servers' --key
    search_deadline_s: float = 2.0  # partitions not answering a query round within this are left out (partial)

    def base_url(self) -> str:
        """Where clients reach this server, from configuration only: never from a request's Host header."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass
class ServedModel:
    """``workspace/model/`` read once: the engine, ``/v1/embeddings``, semantic search's fallback encoder, the
    search re-ranker and ads' embeddings all use these same weights (one copy in memory, one load at start)."""

    model: GPT
    tokenizer: RoostTokenizer
    embedder: TextEmbedder  # mean-pooled hidden states of ``model``

    @classmethod
    def load(cls, folder: Path) -> ServedModel | None:
        """The model in ``folder`` (HF format with its tokenizer); None when there is none."""
        if not (folder / "config.json").is_file():
            return None
        from roost.embeddings import TextEmbedder
        from roost.export import load_hf
        from roost.tokenizer import load_tokenizer

        model, tokenizer = load_hf(folder), load_tokenizer(folder)
        return cls(model, tokenizer, TextEmbedder(model, tokenizer))


@dataclass
class Services:
    """Every service the server runs, each None where its artifact is missing; built once by ``create_app``."""

    model: ServedModel | None = None
    openai: OpenAIService | None = None
    search: SearchService | Unavailable | None = None
    ads: AdService | None = None
    ads_error: str | None = None  # why ads are off (a broken ads artifact), for /ads' 404
    feed: PostFeed | None = None  # the timeline, over the search index's doc store
    upstream: Upstream | None = None  # --llm-url: generation on an external engine instead of ``openai``

    def names(self) -> list[str]:
        """The surfaces that are up, for /health and the dashboard."""
        return sorted(n for n in ("openai", "search", "ads", "upstream") if getattr(self, n) is not None)

    def close(self) -> None:
        """On shutdown: the engine stops its thread, search releases the tantivy writer lock."""
        for service in (self.openai, self.search, self.ads, self.feed):
            if hasattr(service, "close"):
                service.close()


@dataclass
class ServerState:
    """What the routers share: config, workspace and the loaded services."""

    config: ServeConfig
    workspace: Workspace
    services: Services = field(default_factory=Services)
    # what a surface runs without (e.g. brand safety with no safety model): printed at start, listed in /health
    warnings: list[str] = field(default_factory=list)
