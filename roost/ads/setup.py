"""Where the ads artifacts live in a workspace, and how a service is put together from them.

``workspace/ads.db`` holds the campaigns and events, unless ``--ads-db`` names
another file or a ``postgresql://`` database (which many replicas share); ``workspace/ads/`` holds
the click secret, the trained click model, the brand-safety probes, the
saved creative index, the network's own sensitive phrases if it writes any
(``sensitive_phrases.txt``, :mod:`roost.ads.sensitive`) and a ``manifest.json``
like every stage's (:func:`record_artifact`).

``ROOST_ADS_DURABILITY`` picks what an acknowledged impression or click must
survive (see :mod:`roost.ads.store`): ``process`` (default; a crash or SIGKILL
of the server) or ``power`` (also an OS crash or power cut, one fsync per decision;
on PostgreSQL, ``synchronous_commit=on``).
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from roost.ads.brand_safety import SafetyProbes
from roost.ads.clicks import ClickSigner, load_or_create_secret
from roost.ads.context import UserHistory
from roost.ads.db import synchronous_for
from roost.ads.embedder import resolve_embedder
from roost.ads.pctr import CTRModel
from roost.ads.sensitive import SensitivePhrases
from roost.ads.service import AdsConfig, AdService
from roost.ads.store import AdStore
from roost.workspace import Workspace, file_hash

if TYPE_CHECKING:
    from roost.embeddings import TextEmbedder


def ads_dir(ws: Workspace) -> Path:
    return ws.root / "ads"


def ctr_path(ws: Workspace) -> Path:
    return ads_dir(ws) / "ctr_model.json"


def safety_path(ws: Workspace) -> Path:
    return ads_dir(ws) / "safety.json"


def record_artifact(
    ws: Workspace, name: str, made_by: str, inputs: dict[str, str] | None = None, space: str | None = None
) -> dict:
    """Note ``ads/NAME``, just written by ``made_by``, in ``ads/manifest.json``; returns the manifest.

    ads/ holds artifacts that different commands make at different times (the
    click model, the brand-safety probes), so the manifest keeps one entry per
    artifact: its sha256, size, maker, time and inputs (stage name -> content
    hash; a ``space`` of the model's embeddings, ``model-...``, adds the model).
    Its ``inputs`` are all of theirs. Entries whose files are gone are dropped.
    The click secret and the creative index (a cache the server rebuilds) are
    not artifacts a command makes, and are not listed.
    """
    folder, path = ads_dir(ws), ads_dir(ws) / name
    inputs = {**(inputs or {}), **({"model": ws.stage_hash("model")} if (space or "").startswith("model") else {})}
    listed = (ws.read_manifest("ads") or {}).get("artifacts", {})
    artifacts = {k: v for k, v in listed.items() if k != name and (folder / k).is_file()}
    artifacts[name] = {
        "sha256": file_hash(path),
        "bytes": path.stat().st_size,
        "made_by": made_by,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs,
    }
    merged = {k: v for a in artifacts.values() for k, v in a["inputs"].items()}
    return ws.write_manifest("ads", merged, {"artifacts": len(artifacts)}, artifacts=dict(sorted(artifacts.items())))


def open_store(ws: Workspace, durability: str | None = None, ads_db: str | None = None) -> AdStore:
    """The ads db: ``ads_db`` (a path or a PostgreSQL URL), else the workspace's ads.db.

    ``durability`` defaults to ``$ROOST_ADS_DURABILITY``, else "process".
    """
    durability = durability or os.environ.get("ROOST_ADS_DURABILITY", "process")
    return AdStore(ads_db or ws.ads_db, synchronous=synchronous_for(durability))


def open_service(
    ws: Workspace,
    embedder: str = "auto",
    config: AdsConfig | None = None,
    ads_db: str | None = None,
    model: TextEmbedder | None = None,
    **kwargs,
) -> AdService:
    """An AdService over the workspace's db, with whichever model, click model, probes and corpus it has;
    ``model``: the workspace's model already loaded (the server shares one copy), else it is read here."""
    embed, space = resolve_embedder(ws, embedder, model)
    history = UserHistory.from_corpus(ws.corpus) if ws.read_manifest("corpus") else None
    ctr = CTRModel.load(ctr_path(ws)) if ctr_path(ws).exists() else None
    safety = SafetyProbes.load(safety_path(ws), embed) if safety_path(ws).exists() else None
    sensitive = SensitivePhrases.with_file(ads_dir(ws) / "sensitive_phrases.txt")
    signer = ClickSigner(load_or_create_secret(ads_dir(ws) / "click_secret"))
    service = AdService(
        open_store(ws, ads_db=ads_db),
        signer,
        embed=embed,
        space=space,
        history=history,
        ctr=ctr,
        safety=safety,
        sensitive=sensitive,
        config=config,
        index_path=ads_dir(ws) / f"creatives-{space}.usearch",
        **kwargs,
    )
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
