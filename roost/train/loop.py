"""The pretraining loop. Read it top to bottom: set-up (``_train``), then ``fit``: ``while`` one step at a time.

``fit`` is the loop of every training stage: chat fine-tuning (``roost.train.sft``)
runs it too, with its own set-up (data, starting weights, checkpoint folder).

Everything else lives beside it, one concern per module: the config
(``config``), data (``data``), optimizers (``optim``), learning-rate schedule
(``schedule``), checkpoints (``checkpoint``), evaluation (``evaluate``), metrics
and plots (``metrics``) and process groups and data parallelism (``dist``). One
process and N processes under torchrun (DDP or FSDP2) run this same code; with
one, the collectives are no-ops. A step's loss is the mean over all its target
tokens on all ranks, so it computes the same thing at any world size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from roost.model import GPT, GPTConfig, describe
from roost.precision import autocast_for, compute_dtype
from roost.tokenizer import TOKENIZER_FILE, placeholder_ids
from roost.tokens import TokenShards
from roost.train import allocator, checkpoint, dist
from roost.train.config import FROZEN_ON_RESUME, TOKENS_PER_PARAM, TrainConfig
from roost.train.data import IGNORE_INDEX, PackedLoader
from roost.train.evaluate import Evaluator
from roost.train.metrics import MetricsLog, peak_flops, plot_losses
from roost.train.optim import build_optimizers, set_lr
from roost.train.schedule import lr_factor
from roost.workspace import Workspace, atomic_write_json, file_hash


@dataclass
class TrainResult:
    step: int
    train_loss: float | None
    val_loss: float | None
    val_bpb: float | None
    checkpoint: Path | None
    model_dir: Path | None
    run_dir: Path


class Batches(Protocol):
    """What the loop needs of a loader: PackedLoader here, ``roost.train.sft.ChatLoader`` for SFT."""

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]: ...

    def state_dict(self) -> dict: ...


def train(ws: Workspace, cfg: TrainConfig, *, resume: bool = False, fresh: bool = False) -> TrainResult:
    """Pretrain (or, with ``resume``, continue) the model; returns where things were written.

    Under ``torchrun --max-restarts K``, a restarted job (TORCHELASTIC_RESTART_COUNT > 0)
    resumes from the newest checkpoint by itself, whatever the first attempt was told.
    """
    if dist.elastic_restart() and checkpoint.latest_checkpoint(ws.checkpoints) is not None:
        resume, fresh = True, False
    with session(cfg.device) as info:
        return _train(ws, cfg, info, resume=resume, fresh=fresh)


@contextlib.contextmanager
def session(device: str) -> Iterator[dist.DistInfo]:
    """This process's place in a run (joining torchrun's process group), undone at the end."""
    info = dist.init(device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    if info.device.type == "cpu":  # CPU kernels are then bitwise repeatable at a fixed thread count
        torch.use_deterministic_algorithms(True)
        allocator.keep_freed_memory()  # no page faults on each step's big tensors (roost/train/allocator.py)
    try:
        yield info
        # Every rank waits here for the others (rank 0 may still be exporting the model): tearing the process
        # group down while a peer still uses it aborts gloo ("terminate called without an active exception").
        # Not on an error: the failed rank must exit at once so torchrun can stop the job.
        dist.barrier()
    finally:
        torch.use_deterministic_algorithms(deterministic)
        dist.shutdown()


def saved_config(ws: Workspace) -> TrainConfig:
    """The config of the newest checkpoint (what ``--resume`` continues)."""
    ckpt = checkpoint.latest_checkpoint(ws.checkpoints)
    if ckpt is None:
        raise ValueError(f"--resume: no checkpoint in {ws.checkpoints}; start a run without --resume")
    return TrainConfig.from_dict(checkpoint.read_meta(ckpt)["config"])


def _train(ws: Workspace, cfg: TrainConfig, info: dist.DistInfo, *, resume: bool, fresh: bool) -> TrainResult:
    # ---- check everything that can be wrong before doing any work
    ws.require("tokens")
    grad_accum = cfg.grad_accum(info.world_size)
    step_tokens = cfg.step_tokens(info.world_size)
    tokens_hash = ws.stage_hash("tokens")
    train_data, val_data = TokenShards(ws.tokens, "train"), TokenShards(ws.tokens, "val")
    ckpt = checkpoint.latest_checkpoint(ws.checkpoints)
    start, init_hash = None, None  # with --init model: the weights to continue from, and their file's hash
    if resume:
        if ckpt is None:
            raise ValueError(f"--resume: no checkpoint in {ws.checkpoints}; start a run without --resume")
        meta = checkpoint.read_meta(ckpt)
        TrainConfig.from_dict(meta["config"]).resumed_with({k: getattr(cfg, k) for k in FROZEN_ON_RESUME})
        if meta["tokens_hash"] != tokens_hash:
            raise ValueError(f"--resume: the token shards in {ws.tokens} changed since {ckpt}; start with --fresh")
        model_cfg, init_hash = GPTConfig.from_dict(meta["model_config"]), meta.get("init_hash")
    else:
        if ckpt is not None and not fresh:
            raise ValueError(
                f"{ws.checkpoints} already holds {ckpt.name}; pass --resume to continue that run, "
                "or --fresh to delete its checkpoints and start over"
            )
        if cfg.init == "model":
            start, init_hash = initial_model(ws, train_data.vocab_size)
            cfg = fixed_by_model(cfg, start.config)
        model_cfg = start.config if start is not None else GPTConfig.from_depth(
            cfg.depth, vocab_size=train_data.vocab_size, max_seq_len=cfg.max_seq_len, tie_embeddings=cfg.tie_embeddings
        )
    check_fits(model_cfg, cfg, info.device, shards=info.world_size if cfg.parallel == "fsdp" else 1)
    if fresh and info.is_main and ws.checkpoints.exists():
        shutil.rmtree(ws.checkpoints)
    dist.barrier()

    # ---- model (made whole on every rank, then wrapped or sharded), optimizers, data
    torch.manual_seed(cfg.seed)
    model = (start if start is not None else GPT(model_cfg)).to(info.device).train()
    wrapped = prepare_model(model, cfg, info)  # FSDP shards `model` in place: build optimizers after
    optimizers = build_optimizers(model, cfg.optimizer, model_cfg.n_embd, info.device, cfg.lr)
    # ingest's placeholders are never targets, in training or in its validation loss
    shard_args = {"rank": info.rank, "world_size": info.world_size, "device": info.device,
                  "ignore_targets": placeholder_ids(ws.tokenizer)}
    loader = PackedLoader(
        train_data.shards, train_data.doc_starts, cfg.seq_len, cfg.device_batch, seed=cfg.seed, accum=grad_accum,
        **shard_args
    )
    val_loader = PackedLoader(
        val_data.shards, val_data.doc_starts, cfg.seq_len, cfg.device_batch, shuffle=False, name="val",
        shrink_batch=True, **shard_args
    )
    autocast = training_autocast(cfg, info)
    eval_batches = math.ceil(cfg.eval_tokens / (cfg.device_batch * cfg.seq_len * info.world_size))
    evaluator = Evaluator(val_loader, eval_batches, ws.tokenizer, autocast)
    step, train_seconds = 0, 0.0
    if resume:
        meta = checkpoint.load(ckpt, model, optimizers, info)
        loader.load_state_dict(meta["loader"])
        step, train_seconds = meta["step"], meta["train_seconds"]
    total_steps = None if cfg.minutes else math.ceil((cfg.tokens or TOKENS_PER_PARAM * model.num_params()) / step_tokens)
    if cfg.steps:
        total_steps = cfg.steps
    result = fit(ws, Fit(
        cfg=cfg, info=info, model=model, wrapped=wrapped, optimizers=optimizers, loader=loader, evaluator=evaluator,
        autocast=autocast, total_steps=total_steps, ckpt_dir=ws.checkpoints,
        ckpt_meta={"tokens_hash": tokens_hash, **({"init_hash": init_hash} if init_hash else {})},
        manifest_inputs={"tokens": tokens_hash, **({"init": init_hash} if init_hash else {})}, step=step,
        train_seconds=train_seconds, resumed_from=ckpt if resume else None,
    ))
    whole = dist.unsharded(model, lambda: GPT(model_cfg))  # a collective under FSDP: every rank takes part
    if info.is_main:
        result.model_dir = export_model(ws, whole, model_cfg, tokens_hash, result.step, result.step * step_tokens,
                                        init_hash)
    return result


def initial_model(ws: Workspace, tokens_vocab: int) -> tuple[GPT, str]:
    """``workspace/model/`` to continue pretraining (``--init model``) and its weights file's hash, once the token
    shards are known to be in its vocabulary: made by ``roost tokenizer --from-model`` from this model's tokenizer.

    An imported model's embeddings are indexed by its own tokenizer's ids; shards
    of a tokenizer trained on the corpus would feed it meaningless ids, and a
    loss falling from there would be training from scratch in disguise.
    """
    from roost.export import CONFIG, WEIGHTS, load_hf

    if not (ws.model / CONFIG).is_file():
        raise ValueError(f"--init model: no model in {ws.model}; bring one in with `roost import --from DIR`")
    model_tokenizer = ws.model / TOKENIZER_FILE
    made_from = ws.require("tokenizer").get("inputs", {}).get("model_tokenizer")
    if not model_tokenizer.is_file() or made_from != file_hash(model_tokenizer):
        raise ValueError(f"--init model: {ws.tokenizer} is not {ws.model}'s tokenizer; run "
                         f"`roost tokenizer --from-model --workspace {ws.root}` to take it and re-make the token shards")
    if ws.require("tokens").get("inputs", {}).get("tokenizer") != ws.stage_hash("tokenizer"):
        raise ValueError(f"--init model: the token shards in {ws.tokens} were not made with {ws.tokenizer}; "
                         f"run `roost tokenizer --from-model --workspace {ws.root}`")
    model = load_hf(ws.model)
    if tokens_vocab > model.config.vocab_size:
        raise ValueError(f"--init model: the token shards have {tokens_vocab} ids, more than {ws.model}'s "
                         f"vocab_size {model.config.vocab_size}")
    return model, file_hash(ws.model / WEIGHTS)


def fixed_by_model(cfg: TrainConfig, model_cfg: GPTConfig) -> TrainConfig:
    """``cfg`` with the shape fields the starting model fixes, so checkpoints record (and resume checks) the truth."""
    if cfg.seq_len > model_cfg.max_seq_len:
        raise ValueError(f"--seq-len {cfg.seq_len} is above the model's context {model_cfg.max_seq_len}; lower --seq-len")
    return dataclasses.replace(cfg, depth=model_cfg.n_layer, max_seq_len=model_cfg.max_seq_len,
                               tie_embeddings=model_cfg.tie_embeddings)


def prepare_model(model: GPT, cfg: TrainConfig, info: dist.DistInfo) -> torch.nn.Module:
    """Activation checkpointing, per-block compile, then DDP or FSDP: the module the loop calls.

    FSDP shards ``model`` in place, so optimizers are built after this.
    """
    if cfg.activation_checkpointing:
        dist.apply_activation_checkpointing(model)
    if cfg.compile:  # per block, as torchtitan does: works under DDP and FSDP alike
        for block in model.layers:
            block.compile()
    return dist.wrap_model(model, info, cfg.parallel, compute_dtype(cfg.dtype, info.device))


def training_autocast(cfg: TrainConfig, info: dist.DistInfo):
    """FSDP's MixedPrecisionPolicy computes in bf16 on CUDA (roost.train.dist.shard_model); autocast elsewhere."""
    dtype = compute_dtype(cfg.dtype, info.device)
    if info.distributed and cfg.parallel == "fsdp" and info.device.type == "cuda":
        return contextlib.nullcontext
    return autocast_for(info.device, dtype)


@dataclass
class Fit:
    """One run of the loop: what a stage (pretraining, ``roost.train.sft``) set up, and where its checkpoints go."""

    cfg: TrainConfig
    info: dist.DistInfo
    model: GPT
    wrapped: torch.nn.Module  # prepare_model(model, ...)
    optimizers: list[torch.optim.Optimizer]
    loader: Batches
    evaluator: Evaluator
    autocast: Callable
    total_steps: int | None  # None: train for cfg.minutes
    ckpt_dir: Path
    ckpt_meta: dict  # saved in every checkpoint's meta, beside the step, config and loader position
    manifest_inputs: dict[str, str]  # the checkpoints manifest's inputs
    step: int = 0
    train_seconds: float = 0.0
    resumed_from: Path | None = None
    title: str = "training"


def fit(ws: Workspace, run: Fit) -> TrainResult:
    """Evaluate, step, log and checkpoint to the run's end; then the final checkpoint and the loss plot.

    The caller writes the served model (``TrainResult.model_dir`` is None here).
    """
    cfg, info, model, model_cfg, loader = run.cfg, run.info, run.model, run.model.config, run.loader
    grad_accum, step_tokens = cfg.grad_accum(info.world_size), cfg.step_tokens(info.world_size)
    total_steps, optimizers, step, train_seconds = run.total_steps, run.optimizers, run.step, run.train_seconds
    budget_s = cfg.minutes * 60 if cfg.minutes else None

    def progress(step: int, seconds: float) -> float:
        return step / total_steps if total_steps else seconds / budget_s

    # ---- reporting
    run_dir = ws.run_dir(cfg.run)
    flops_per_token = model_cfg.flops_per_token(cfg.seq_len)
    peak = peak_flops(info.device)
    log = MetricsLog(run_dir, resume_step=step if run.resumed_from else None) if info.is_main else None
    bar = None
    if info.is_main:
        from tqdm import tqdm

        print(f"{describe(model_cfg)}\n{run.title} on {info.device} x {info.world_size}: {step_tokens:,} tokens/step "
              f"({cfg.device_batch} x {cfg.seq_len} x {grad_accum} accum x {info.world_size} ranks"
              + (f", {cfg.parallel}" if info.distributed else "") + "), "
              f"{cfg.optimizer}, {cfg.schedule} schedule, " + (f"{total_steps} steps" if total_steps else f"{cfg.minutes} min"))
        bar = tqdm(total=total_steps, initial=step, desc=cfg.run, unit="step", dynamic_ncols=True)

    def save_checkpoint(step: int) -> Path:
        meta = {"config": cfg.to_dict(), "model_config": model_cfg.to_dict(), "loader": loader.state_dict(),
                "train_seconds": train_seconds, "run": cfg.run, **run.ckpt_meta}
        path = checkpoint.save(run.ckpt_dir, step, model, optimizers, meta, info, cfg.keep)
        if info.is_main:
            atomic_write_json(run.ckpt_dir / "manifest.json", ws.manifest(
                "checkpoints", run.manifest_inputs, {"step": step, "tokens": step * step_tokens}, latest=path.name))
        return path

    # ---- the loop: evaluate, step, log, checkpoint
    train_loss = val = None
    last_ckpt = run.resumed_from
    while True:
        done = progress(step, train_seconds) >= 1.0
        if step % cfg.eval_every == 0 or done:
            val = run.evaluator(model)
            if log:
                log.log({"step": step, **val})
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
        if done:
            break

        t0 = time.perf_counter()
        lr_mult = lr_factor(step, progress(step, train_seconds), warmup=cfg.warmup, schedule=cfg.schedule,
                            cooldown=cfg.cooldown, min_lr=cfg.min_lr)
        set_lr(optimizers, lr_mult)
        train_loss, grad_norm, rank_seconds = train_step(run.wrapped, model, optimizers, loader, grad_accum,
                                                         cfg.grad_clip, run.autocast, info)
        dt = time.perf_counter() - t0  # train_step's all_gather waited for every rank
        train_seconds += dt
        step += 1

        if log:
            tokens_per_s = step_tokens / dt
            matrix_lr = optimizers[-1].param_groups[-1]["lr"]  # the block matrices' group (see optim.py)
            slowest = max(range(info.world_size), key=rank_seconds.__getitem__)
            record = {"step": step, "loss": train_loss, "lr": matrix_lr, "lr_mult": lr_mult, "grad_norm": grad_norm,
                      "tokens_per_s": tokens_per_s, "seconds": train_seconds,
                      "rank_tokens_per_s": [step_tokens / info.world_size / t for t in rank_seconds],
                      "slowest_rank": slowest, "slowest_rank_s": rank_seconds[slowest]}
            if peak:
                record["mfu"] = flops_per_token * tokens_per_s / (peak * info.world_size)
            log.log(record)
            if total_steps is None:  # time budget: the step count is an estimate
                bar.total = max(step, round(step / max(progress(step, train_seconds), 1e-9)))
            bar.set_postfix(loss=f"{train_loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            bar.update(1)
        if step % cfg.ckpt_every == 0 and progress(step, train_seconds) < 1.0:
            last_ckpt = save_checkpoint(step)

    # ---- the end: final checkpoint and plot
    if last_ckpt is None or checkpoint.read_meta(last_ckpt)["step"] != step:
        last_ckpt = save_checkpoint(step)
    if info.is_main:
        bar.close()
        log.close()
        plot_losses(run_dir / "metrics.jsonl", run_dir / "loss.png", title=f"{cfg.run}: {describe_short(model_cfg, cfg)}")
    return TrainResult(step, train_loss, val.get("val_loss") if val else None, val.get("val_bpb") if val else None,
                       last_ckpt, None, run_dir)


def train_step(
    wrapped: torch.nn.Module,
    model: torch.nn.Module,
    optimizers: list[torch.optim.Optimizer],
    loader: Batches,
    grad_accum: int,
    grad_clip: float,
    autocast,
    info: dist.DistInfo,
) -> tuple[float, float, list[float]]:
    """One optimizer step over ``grad_accum`` micro-batches on every rank: ``(loss, grad norm, each rank's seconds)``.

    The loss is the mean over every target token of the step on every rank.
    Each rank backpropagates its token *sum* times ``world_size / global
    tokens``: DDP and FSDP average gradients over ranks, which turns that into
    the global mean even when ranks hold different numbers of real (not
    padding) targets. Gradients are reduced once, in the last micro-batch's backward.
    """
    t0 = time.perf_counter()
    batches = [loader.next_batch() for _ in range(grad_accum)]
    global_tokens = dist.all_reduce_sum(sum((y != IGNORE_INDEX).sum() for _, y in batches).double())
    scale = info.world_size / global_tokens.float()
    loss_sum = torch.zeros((), device=info.device)
    for micro, (x, y) in enumerate(batches):
        dist.set_grad_sync(wrapped, micro == grad_accum - 1)
        with autocast():
            _, loss = wrapped(x, y, loss_reduction="sum")
        (loss * scale).backward()
        loss_sum += loss.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
    for opt in optimizers:
        opt.step()
    model.zero_grad(set_to_none=True)
    mine = loss_sum.item()  # waits for this rank's device
    gathered = dist.all_gather_floats([mine, time.perf_counter() - t0], info.device)
    loss = sum(g[0] for g in gathered) / global_tokens.item()
    return loss, dist.full_value(grad_norm).item(), [g[1] for g in gathered]


def describe_short(model_cfg: GPTConfig, cfg: TrainConfig) -> str:
    return f"depth {model_cfg.n_layer}, {model_cfg.num_params() / 1e6:.1f}M params, {cfg.optimizer}"


def export_model(ws: Workspace, model: GPT, model_cfg: GPTConfig, tokens_hash: str, step: int, tokens: int,
                 init_hash: str | None = None) -> Path:
    """The served model (``workspace/model/``), as a Hugging Face Llama folder; ``init_hash``: the weights file
    training started from (``--init model``)."""
    from roost.export import save_hf

    has_tokenizer = ws.read_manifest("tokenizer") is not None
    inputs = {"tokens": tokens_hash, **({"tokenizer": ws.stage_hash("tokenizer")} if has_tokenizer else {}),
              **({"init": init_hash} if init_hash else {})}
    manifest = ws.manifest("model", inputs, {"params": model.num_params(), "steps": step, "tokens": tokens},
                           source="roost train", model_config=model_cfg.to_dict())
    return save_hf(model, ws.model, ws.tokenizer if has_tokenizer else None, manifest=manifest)


def check_fits(model_cfg: GPTConfig, cfg: TrainConfig, device: torch.device, shards: int = 1) -> None:
    """Refuse a model whose training state clearly cannot fit the device's memory.

    fp32 weights, gradients and two optimizer moments take 16 bytes a parameter
    (split over ``shards`` ranks under FSDP);
    activations for backward roughly 34 * width bytes per token per layer in
    fp32 (Korthikanti et al.), plus one fp32 [tokens, vocab] tensor: the fused
    loss (roost/loss.py) writes the logits' gradient over the logits.
    """
    total = _device_memory(device)
    if total is None:
        return
    tokens = cfg.device_batch * cfg.seq_len
    need = 16 * model_cfg.num_params() // shards + tokens * (34 * model_cfg.n_embd * model_cfg.n_layer + 4 * model_cfg.vocab_size)
    if need > 0.9 * total:
        raise ValueError(
            f"--depth {cfg.depth} ({model_cfg.num_params() / 1e6:.0f}M parameters) with --device-batch "
            f"{cfg.device_batch} x --seq-len {cfg.seq_len} needs about {need / 2**30:.1f} GiB to train, but {device} "
            f"has {total / 2**30:.1f} GiB; use a smaller --depth or --device-batch (raise --batch-tokens to keep the batch)"
        )


def _device_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None
