"""Pretraining: ``roost.train.pretrain.train(workspace, TrainConfig(...))`` trains the model on the token shards.

Its own part is the data (packed token shards, ingest's placeholders never
targets), the starting weights (random at ``--depth``, or ``workspace/model`` with
``--init model``), the run length (``--steps``, ``--tokens``, else tokens per
parameter) and the served model it writes; ``roost.train.run`` does the rest of
the set-up and ``roost.train.loop`` the loop, as they do for fine-tuning.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from roost.errors import UserError
from roost.model import GPT, GPTConfig
from roost.tokenizer import TOKENIZER_FILE, placeholder_ids
from roost.tokens import TokenShards
from roost.train import checkpoint, dist
from roost.train.config import FROZEN_ON_RESUME, TOKENS_PER_PARAM, TrainConfig
from roost.train.data import PackedLoader
from roost.train.loop import Checkpoints, TrainResult
from roost.train.run import Plan, check_fits, checkpoint_to_resume, launch, run
from roost.workspace import Workspace, file_hash


def train(ws: Workspace, cfg: TrainConfig, *, resume: bool = False, fresh: bool = False) -> TrainResult:
    """Pretrain (or, with ``resume``, continue) the model; returns where things were written."""
    return launch(
        ws.checkpoints,
        cfg.device,
        resume=resume,
        fresh=fresh,
        stage=lambda info, resume, fresh: run(ws, plan(ws, cfg, info, resume=resume, fresh=fresh), info),
    )


def saved_config(ws: Workspace) -> TrainConfig:
    """The config of the newest checkpoint (what ``--resume`` continues)."""
    ckpt = checkpoint_to_resume(ws.checkpoints, resume=True, fresh=False)
    return TrainConfig.from_dict(checkpoint.read_meta(ckpt)["config"])


def plan(ws: Workspace, cfg: TrainConfig, info: dist.DistInfo, *, resume: bool, fresh: bool) -> Plan:
    """Check everything that can be wrong before any work; then the model, data and run length."""
    ws.require("tokens")
    tokens_hash = ws.stage_hash("tokens")
    train_data, val_data = TokenShards(ws.tokens, "train"), TokenShards(ws.tokens, "val")
    ckpt = checkpoint_to_resume(ws.checkpoints, resume=resume, fresh=fresh)
    start, init_hash = None, None  # with --init model: the weights to continue from, and their file's hash
    if ckpt is not None:
        meta = checkpoint.read_meta(ckpt)
        TrainConfig.from_dict(meta["config"]).resumed_with({k: getattr(cfg, k) for k in FROZEN_ON_RESUME})
        if meta["tokens_hash"] != tokens_hash:
            raise UserError(f"--resume: the token shards in {ws.tokens} changed since {ckpt}; start with --fresh")
        model_cfg, init_hash = GPTConfig.from_dict(meta["model_config"]), meta.get("init_hash")
    elif cfg.init == "model":
        start, init_hash = initial_model(ws, train_data.vocab_size)
        cfg = fixed_by_model(cfg, start.config)
        model_cfg = start.config
    else:
        model_cfg = GPTConfig.from_depth(
            cfg.depth, vocab_size=train_data.vocab_size, max_seq_len=cfg.max_seq_len, tie_embeddings=cfg.tie_embeddings
        )
    check_fits(model_cfg, cfg, info)

    # ingest's placeholders are never targets, in training or in its validation loss
    shard_args = {
        "rank": info.rank,
        "world_size": info.world_size,
        "device": info.device,
        "ignore_targets": placeholder_ids(ws.tokenizer),
    }
    loader = PackedLoader(
        train_data.shards,
        train_data.doc_starts,
        cfg.seq_len,
        cfg.device_batch,
        seed=cfg.seed,
        accum=cfg.grad_accum(info.world_size),
        **shard_args,
    )
    val_loader = PackedLoader(
        val_data.shards,
        val_data.doc_starts,
        cfg.seq_len,
        cfg.device_batch,
        shuffle=False,
        name="val",
        shrink_batch=True,
        **shard_args,
    )
    step_tokens = cfg.step_tokens(info.world_size)
    total_steps = cfg.steps or (
        None if cfg.minutes else math.ceil((cfg.tokens or TOKENS_PER_PARAM * model_cfg.num_params()) / step_tokens)
    )
    init = {"init_hash": init_hash} if init_hash else {}

    def export(whole: GPT, result: TrainResult) -> Path:
        return export_model(ws, whole, model_cfg, tokens_hash, result.step, result.step * step_tokens, init_hash)

    return Plan(
        cfg=cfg,
        model_cfg=model_cfg,
        model=lambda: start if start is not None else GPT(model_cfg),
        loader=loader,
        val_loader=val_loader,
        total_steps=total_steps,
        checkpoints=Checkpoints(
            ws.checkpoints,
            {"tokens_hash": tokens_hash, **init},
            {"tokens": tokens_hash, **({"init": init_hash} if init_hash else {})},
        ),
        export=export,
        resume_from=ckpt,
        fresh=fresh,
    )


def initial_model(ws: Workspace, tokens_vocab: int) -> tuple[GPT, str]:
    """``workspace/model/`` to continue pretraining (``--init model``) and its weights file's hash, once the token
    shards are known to be in its vocabulary: made by ``roost tokenizer --from-model`` from this model's tokenizer.

    An imported model's embeddings are indexed by its own tokenizer's ids; shards
    of a tokenizer trained on the corpus would feed it meaningless ids, and a
    loss falling from there would be training from scratch in disguise.
    """
    from roost.export import CONFIG, WEIGHTS, load_hf

    if not (ws.model / CONFIG).is_file():
        raise UserError(f"--init model: no model in {ws.model}; bring one in with `roost import --from DIR`")
    model_tokenizer = ws.model / TOKENIZER_FILE
    made_from = ws.require("tokenizer").get("inputs", {}).get("model_tokenizer")
    if not model_tokenizer.is_file() or made_from != file_hash(model_tokenizer):
        raise UserError(
            f"--init model: {ws.tokenizer} is not {ws.model}'s tokenizer; run "
            f"`roost tokenizer --from-model --workspace {ws.root}` to take it and re-make the token shards"
        )
    if ws.require("tokens").get("inputs", {}).get("tokenizer") != ws.stage_hash("tokenizer"):
        raise UserError(
            f"--init model: the token shards in {ws.tokens} were not made with {ws.tokenizer}; "
            f"run `roost tokenizer --from-model --workspace {ws.root}`"
        )
    model = load_hf(ws.model)
    if tokens_vocab > model.config.vocab_size:
        raise UserError(
            f"--init model: the token shards have {tokens_vocab} ids, more than {ws.model}'s "
            f"vocab_size {model.config.vocab_size}"
        )
    return model, file_hash(ws.model / WEIGHTS)


def fixed_by_model(cfg: TrainConfig, model_cfg: GPTConfig) -> TrainConfig:
    """``cfg`` with the shape fields the starting model fixes, so checkpoints record (and resume checks) the truth."""
    if cfg.seq_len > model_cfg.max_seq_len:
        raise UserError(
            f"--seq-len {cfg.seq_len} is above the model's context {model_cfg.max_seq_len}; lower --seq-len"
        )
    return dataclasses.replace(
        cfg, depth=model_cfg.n_layer, max_seq_len=model_cfg.max_seq_len, tie_embeddings=model_cfg.tie_embeddings
    )


def export_model(
    ws: Workspace,
    model: GPT,
    model_cfg: GPTConfig,
    tokens_hash: str,
    step: int,
    tokens: int,
    init_hash: str | None = None,
) -> Path:
    """The served model (``workspace/model/``), as a Hugging Face Llama folder; ``init_hash``: the weights file
    training started from (``--init model``)."""
    from roost.export import save_hf

    has_tokenizer = ws.read_manifest("tokenizer") is not None
    inputs = {
        "tokens": tokens_hash,
        **({"tokenizer": ws.stage_hash("tokenizer")} if has_tokenizer else {}),
        **({"init": init_hash} if init_hash else {}),
    }
    manifest = ws.manifest(
        "model",
        inputs,
        {"params": model.num_params(), "steps": step, "tokens": tokens},
        source="roost train",
        model_config=model_cfg.to_dict(),
    )
    return save_hf(model, ws.model, ws.tokenizer if has_tokenizer else None, manifest=manifest)
