"""Where the ads artifacts live in a workspace, and how a service is put together from them.

``workspace/ads.db`` holds the campaigns and events, unless ``--ads-db`` names
another file or a ``postgresql://`` database (which many replicas share); ``workspace/ads/`` holds
the click secret, the trained click model, the brand-safety probes and the
saved creative index.

``ROOST_ADS_DURABILITY`` picks what an acknowledged impression or click must
survive (see :mod:`roost.ads.store`): ``process`` (default; a crash or SIGKILL
of the server) or ``power`` (also an OS crash or power cut, one fsync per decision).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING

from roost.ads.brand_safety import SafetyProbes
from roost.ads.clicks import ClickSigner, load_or_create_secret
from roost.ads.context import UserHistory
from roost.ads.embedder import resolve_embedder
from roost.ads.pctr import CTRModel
from roost.ads.service import AdsConfig, AdService
from roost.ads.store import AdStore, synchronous_for
from roost.workspace import Workspace

if TYPE_CHECKING:
    from roost.embeddings import TextEmbedder


def ads_dir(ws: Workspace) -> Path:
    return ws.root / "ads"


def ctr_path(ws: Workspace) -> Path:
    return ads_dir(ws) / "ctr_model.json"


def safety_path(ws: Workspace) -> Path:
    return ads_dir(ws) / "safety.json"


def open_store(ws: Workspace, durability: str | None = None, ads_db: str | None = None) -> AdStore:
    """The ads db: ``ads_db`` (a path or a PostgreSQL URL), else the workspace's ads.db.

    ``durability`` (SQLite only) defaults to ``$ROOST_ADS_DURABILITY``, else "process".
    """
    durability = durability or os.environ.get("ROOST_ADS_DURABILITY", "process")
    return AdStore(ads_db or ws.ads_db, synchronous=synchronous_for(durability))


def open_service(ws: Workspace, embedder: str = "auto", config: AdsConfig | None = None, ads_db: str | None = None,
                 model: TextEmbedder | None = None, **kwargs) -> AdService:
    """An AdService over the workspace's db, with whichever model, click model, probes and corpus it has;
    ``model``: the workspace's model already loaded (the server shares one copy), else it is read here."""
    embed, space = resolve_embedder(ws, embedder, model)
    history = UserHistory.from_corpus(ws.corpus) if ws.read_manifest("corpus") else None
    ctr = CTRModel.load(ctr_path(ws)) if ctr_path(ws).exists() else None
    safety = SafetyProbes.load(safety_path(ws)) if safety_path(ws).exists() else None
    signer = ClickSigner(load_or_create_secret(ads_dir(ws) / "click_secret"))
    service = AdService(open_store(ws, ads_db=ads_db), signer, embed=embed, space=space, history=history, ctr=ctr, safety=safety,
                        config=config, index_path=ads_dir(ws) / f"creatives-{space}.usearch", **kwargs)
    settle_heap()
    return service


def settle_heap() -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    A catalog of 100k campaigns is millions of long-lived objects; every full
    collection would walk them all, a pause of many milliseconds that lands on
    some unlucky decision's latency. Frozen, they are never scanned again.
    """
    gc.collect()
    gc.freeze()
