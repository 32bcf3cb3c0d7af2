"""One run set-up for every training stage: pretraining (``roost.train.pretrain``) and chat fine-tuning
(``roost.train.sft``).

A stage decides only what is its own: its data, its starting weights, its
checkpoint folder and what its checkpoints and model manifest record. It hands
those to :func:`run` as a :class:`Plan`, and everything else happens here, once,
the same way for both: the elastic restart (:func:`launch`), the ``--resume`` and
``--fresh`` rules (:func:`checkpoint_to_resume`), the memory check
(:func:`check_fits`), the seeded model, its wrapping (DDP or FSDP) and optimizers,
the resume itself, the evaluator, the loop (``roost.train.loop.fit``) and the
whole model gathered for the stage's export.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from roost.errors import UserError
from roost.model import GPT, GPTConfig
from roost.precision import autocast_for, compute_dtype
from roost.train import allocator, checkpoint, dist
from roost.train.config import TrainConfig
from roost.train.evaluate import Evaluator
from roost.train.loop import Batches, Checkpoints, Fit, TrainResult, fit
from roost.train.optim import build_optimizers, scale_peak_lrs
from roost.workspace import Workspace


def launch(
    ckpt_dir: Path, device: str, *, resume: bool, fresh: bool, stage: Callable[[dist.DistInfo, bool, bool], TrainResult]
) -> TrainResult:
    """``stage(info, resume, fresh)`` in this process's place in the run.

    Under ``torchrun --max-restarts K``, a restarted job (TORCHELASTIC_RESTART_COUNT > 0)
    resumes from the newest checkpoint in ``ckpt_dir`` by itself, whatever the first attempt was told.
    """
    if dist.elastic_restart() and checkpoint.latest_checkpoint(ckpt_dir) is not None:
        resume, fresh = True, False
    with session(device) as info:
        return stage(info, resume, fresh)


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


def checkpoint_to_resume(
    ckpt_dir: Path, *, resume: bool, fresh: bool, kind: str = "", what: str = "that run", start_over: str = "start over"
) -> Path | None:
    """The checkpoint ``--resume`` continues, or None for a new run; refuses a new run over old checkpoints
    unless ``--fresh`` (which deletes them). ``kind``, ``what``, ``start_over``: the stage's words in the errors."""
    ckpt = checkpoint.latest_checkpoint(ckpt_dir)
    if resume and ckpt is None:
        raise UserError(f"--resume: no {kind}checkpoint in {ckpt_dir}; start a run without --resume")
    if not resume and ckpt is not None and not fresh:
        raise UserError(
            f"{ckpt_dir} already holds {ckpt.name}; pass --resume to continue {what}, "
            f"or --fresh to delete its checkpoints and {start_over}"
        )
    return ckpt if resume else None


@dataclass
class Plan:
    """What a stage set up for :func:`run`: the config, the model to train, the data, and where things go."""

    cfg: TrainConfig
    model_cfg: GPTConfig
    model: Callable[[], GPT]  # the starting weights; called after seeding, so fresh weights match on every rank
    loader: Batches
    val_loader: Batches
    total_steps: int | None  # None: train for cfg.minutes
    checkpoints: Checkpoints
    export: Callable[[GPT, TrainResult], Path]  # rank 0 writes the served model from the whole trained model
    resume_from: Path | None = None  # checkpoint_to_resume's answer
    fresh: bool = False  # delete the checkpoints folder first
    lr_scale: float = 1.0  # every peak learning rate times this (SFT's --lr-frac)
    title: str = "training"


def run(ws: Workspace, plan: Plan, info: dist.DistInfo) -> TrainResult:
    """Model, wrapping, optimizers, resume, evaluator; then the loop; then the stage's export on rank 0."""
    cfg = plan.cfg
    if plan.fresh and info.is_main and plan.checkpoints.dir.exists():
        shutil.rmtree(plan.checkpoints.dir)
    dist.barrier()

    # ---- model (made whole on every rank, then wrapped or sharded), optimizers
    torch.manual_seed(cfg.seed)
    model = plan.model().to(info.device).train()
    wrapped = prepare_model(model, cfg, info)  # FSDP shards `model` in place: build optimizers after
    optimizers = build_optimizers(
        model,
        cfg.optimizer,
        plan.model_cfg.n_embd,
        info.device,
        cfg.lr,
        cfg.weight_decay,
        batch_tokens=cfg.step_tokens(info.world_size),
    )
    scale_peak_lrs(optimizers, plan.lr_scale)
    autocast = training_autocast(cfg, info)
    eval_batches = math.ceil(cfg.eval_tokens / (cfg.device_batch * cfg.seq_len * info.world_size))
    step, train_seconds = 0, 0.0
    if plan.resume_from is not None:
        meta = checkpoint.load(plan.resume_from, model, optimizers, info)
        plan.loader.load_state_dict(meta["loader"])
        step, train_seconds = meta["step"], meta["train_seconds"]

    result = fit(
        ws,
        Fit(
            cfg=cfg,
            info=info,
            model=model,
            wrapped=wrapped,
            optimizers=optimizers,
            loader=plan.loader,
            evaluator=Evaluator(plan.val_loader, eval_batches, ws.tokenizer, autocast),
            autocast=autocast,
            total_steps=plan.total_steps,
            checkpoints=plan.checkpoints,
            step=step,
            train_seconds=train_seconds,
            resumed_from=plan.resume_from,
            title=plan.title,
        ),
    )
    whole = dist.unsharded(model, lambda: GPT(plan.model_cfg))  # a collective under FSDP: every rank takes part
    if info.is_main:
        result.model_dir = plan.export(whole, result)
    return result


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


def check_fits(model_cfg: GPTConfig, cfg: TrainConfig, info: dist.DistInfo) -> None:
    """Refuse a model whose training state clearly cannot fit the device's memory.

    fp32 weights, gradients and two optimizer moments take 16 bytes a parameter
    (split over the ranks under FSDP);
    activations for backward roughly 34 * width bytes per token per layer in
    fp32 (Korthikanti et al.), plus one fp32 [tokens, vocab] tensor: the fused
    loss (roost/loss.py) writes the logits' gradient over the logits.
    """
    device = info.device
    total = _device_memory(device)
    if total is None:
        return
    shards = info.world_size if cfg.parallel == "fsdp" else 1
    tokens = cfg.device_batch * cfg.seq_len
    need = 16 * model_cfg.num_params() // shards + tokens * (
        34 * model_cfg.n_embd * model_cfg.n_layer + 4 * model_cfg.vocab_size
    )
    if need > 0.9 * total:
        raise UserError(
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
