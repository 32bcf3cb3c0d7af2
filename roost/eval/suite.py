"""Every evaluation in one run, each part skipped with a note when what it needs is absent.

Parts: ``lm`` (validation loss, bits per byte), ``chat`` (held-out questions: on topic, a reply or a new
post, repetition; roost.eval.chat), ``tweeteval`` (classification:
TF-IDF baseline, embedding probe, fine-tune), ``search`` (``roost eval search``'s
topic task on the sample network's ground truth) and ``ads`` (the ads
simulator's policies on the sample network's click model).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from roost.errors import UserError
from roost.eval import PARTS
from roost.eval.classify import ClassifyConfig
from roost.workspace import Workspace

DEFAULT_TWEETEVAL = Path("../shared/data/tweeteval")


@dataclass
class EvalConfig:
    parts: tuple[str, ...] = PARTS
    tweeteval: Path | None = None  # None: DEFAULT_TWEETEVAL if present, else the part is skipped
    tasks: list[str] | None = None  # TweetEval task names (None: every task with a train split)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    lm_tokens: int = 262_144
    sample: Path | None = None  # the sample network (None: WORKSPACE/sample)
    search_max_queries: int = 300
    ads_requests: int = 1000

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown:
            raise UserError(f"unknown evaluation part(s) {unknown}; choose from {', '.join(PARTS)}")


def skipped(why: str) -> dict:
    return {"skipped": why}


def eval_lm(ws: Workspace, cfg: EvalConfig) -> dict:
    from roost.eval.lm import validation_loss

    if ws.read_manifest("tokens") is None or not (ws.model / "config.json").is_file():
        return skipped(f"needs token shards and a served model in {ws.root} (roost tokenizer, roost train)")
    return validation_loss(ws, max_tokens=cfg.lm_tokens)


def eval_chat(ws: Workspace, cfg: EvalConfig) -> dict:
    from roost.eval.chat import eval_chat as run

    truth = (cfg.sample or ws.root / "sample") / "truth"
    if not (ws.model / "config.json").is_file():
        return skipped(f"no served model in {ws.model}; run `roost train` and `roost sft` first")
    if not truth.is_dir() or ws.read_manifest("corpus") is None:
        return skipped(f"needs the sample network's truth at {truth} and its corpus (the judges learn from them)")
    return run(ws, truth)


def eval_tweeteval(ws: Workspace, cfg: EvalConfig) -> dict:
    from tqdm import tqdm

    from roost.embeddings import TextEmbedder
    from roost.eval.classify import embedding_probe, finetune, tfidf_baseline
    from roost.eval.tweeteval import find_tasks

    root = cfg.tweeteval or DEFAULT_TWEETEVAL
    if not root.is_dir():
        return skipped(f"no TweetEval data at {root}; pass --tweeteval DIR (TASK/{{train,val}}_{{text,labels}}.txt)")
    if not (ws.model / "config.json").is_file():
        return skipped(f"no served model in {ws.model}; run `roost train` first")
    c = cfg.classify
    embedder = TextEmbedder.from_dir(ws.model, max_len=c.max_len)
    out: dict = {"data": str(root), "config": asdict(c), "tasks": {}, "notes": []}
    for task in tqdm(find_tasks(root, cfg.tasks), desc="tweeteval", unit="task"):
        if not task.has_train:
            out["notes"].append(f"{task.name}: no train split, left out")
            continue
        train, val = task.split("train", c.max_train), task.split("val", c.max_val)
        row = {
            "labels": task.label_names,
            "n_train": len(train[0]),
            "n_val": len(val[0]),
            "tfidf": tfidf_baseline(train, val),
            "probe": embedding_probe(embedder.embed, train, val),
        }
        if c.finetune_steps:
            row["finetune"] = finetune(ws.model, train, val, len(task.label_names), c, desc=f"finetune {task.name}")
        out["tasks"][task.name] = row
    return out


def eval_search(ws: Workspace, cfg: EvalConfig) -> dict:
    """``roost eval search``'s topic task on the sample network's ground truth."""
    from roost.search.eval import WorkspaceEval, evaluate_workspace

    truth = (cfg.sample or ws.root / "sample") / "truth"
    manifest = ws.read_manifest("index")
    if manifest is None:
        return skipped(f"no search index in {ws.index}; run `roost index` first")
    if not truth.is_dir():
        return skipped(f"no sample ground truth at {truth} (the topic task needs the sample network's truth/)")
    return evaluate_workspace(
        ws, WorkspaceEval(["topics"], truth, max_queries=cfg.search_max_queries, vectors=bool(manifest.get("semantic")))
    )


def eval_ads(ws: Workspace, cfg: EvalConfig) -> dict:
    from roost.ads.campaign import parse_campaigns
    from roost.ads.context import UserHistory
    from roost.ads.embedder import resolve_embedder
    from roost.ads.simulator import SimConfig, simulate
    from roost.sample.truth import ClickModel

    sample = cfg.sample or ws.root / "sample"
    if not (sample / "ads.json").is_file() or not (sample / "truth").is_dir():
        return skipped(f"no sample network at {sample} (ads.json and truth/ give the campaigns and the click model)")
    if ws.read_manifest("corpus") is None:
        return skipped(f"no corpus in {ws.corpus}; run `roost ingest` first")
    specs = parse_campaigns(json.loads((sample / "ads.json").read_text(encoding="utf-8")), str(sample / "ads.json"))
    embed, space = resolve_embedder(ws, "auto")
    rows = simulate(
        specs,
        UserHistory.from_corpus(ws.corpus),
        ClickModel.load(sample),
        embed,
        space,
        SimConfig(requests=cfg.ads_requests),
    )
    return {"policies": rows, "requests": cfg.ads_requests}


def run_all(ws: Workspace, cfg: EvalConfig, out_dir: Path) -> dict:
    """Run the configured parts; returns ``{part: figures or {"skipped": why}, "seconds": {...}}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = {
        "lm": lambda: eval_lm(ws, cfg),
        "chat": lambda: eval_chat(ws, cfg),
        "tweeteval": lambda: eval_tweeteval(ws, cfg),
        "search": lambda: eval_search(ws, cfg),
        "ads": lambda: eval_ads(ws, cfg),
    }
    results: dict = {
        "workspace": str(ws.root),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": {},
    }
    for part in cfg.parts:
        t0 = time.perf_counter()
        print(f"== eval {part}")
        results[part] = steps[part]()
        results["seconds"][part] = round(time.perf_counter() - t0, 1)
        if "skipped" in results[part]:
            print(f"   skipped: {results[part]['skipped']}")
    return results
