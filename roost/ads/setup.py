"""Where the ads artifacts live in a workspace, and how a service is put together from them.

``workspace/ads.db`` holds the campaigns and events; ``workspace/ads/`` holds
the click secret, the trained click model, the brand-safety probes and the
saved creative index.
"""

from __future__ import annotations

from pathlib import Path

from roost.ads.brand_safety import SafetyProbes
from roost.ads.clicks import ClickSigner, load_or_create_secret
from roost.ads.context import UserHistory
from roost.ads.embedder import resolve_embedder
from roost.ads.pctr import CTRModel
from roost.ads.service import AdsConfig, AdService
from roost.ads.store import AdStore
from roost.workspace import Workspace


def ads_dir(ws: Workspace) -> Path:
    return ws.root / "ads"


def ctr_path(ws: Workspace) -> Path:
    return ads_dir(ws) / "ctr_model.json"


def safety_path(ws: Workspace) -> Path:
    return ads_dir(ws) / "safety.json"


def open_store(ws: Workspace, synchronous: str = "FULL") -> AdStore:
    return AdStore(ws.ads_db, synchronous=synchronous)


def open_service(ws: Workspace, embedder: str = "auto", config: AdsConfig | None = None, **kwargs) -> AdService:
    """An AdService over the workspace's db, with whichever model, click model, probes and corpus it has."""
    embed, space = resolve_embedder(ws, embedder)
    history = UserHistory.from_corpus(ws.corpus) if ws.read_manifest("corpus") else None
    ctr = CTRModel.load(ctr_path(ws)) if ctr_path(ws).exists() else None
    safety = SafetyProbes.load(safety_path(ws)) if safety_path(ws).exists() else None
    signer = ClickSigner(load_or_create_secret(ads_dir(ws) / "click_secret"))
    return AdService(open_store(ws), signer, embed=embed, space=space, history=history, ctr=ctr, safety=safety,
                     config=config, index_path=ads_dir(ws) / f"creatives-{space}.usearch", **kwargs)
