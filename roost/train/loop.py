"""The training loop: ``fit`` runs ``while`` one step at a time (``train_step``), evaluating, logging and
checkpointing on the way.

Every training stage runs it: pretraining (``roost.train.pretrain``) and chat
fine-tuning (``roost.train.sft``) each set up their data and starting weights,
and ``roost.train.run`` does the rest of the set-up the same way for both.

Everything else lives beside it, one concern per module: the config
(``config``), data (``data``), optimizers (``optim``), learning-rate schedule
(``schedule``), checkpoints (``checkpoint``), evaluation (``evaluate``), metrics
and plots (``metrics``) and process groups and data parallelism (``dist``). One
process and N processes under torchrun (DDP or FSDP2) run this same code; with
one, the collectives are no-ops. A step's loss is the mean over all its target
tokens on all ranks, so it computes the same thing at any world size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from roost.errors import UserError
from roost.model import GPT, GPTConfig, describe
from roost.threads import ThreadTuner
from roost.train import checkpoint, dist
from roost.train.config import TrainConfig
from roost.train.data import IGNORE_INDEX
from roost.train.evaluate import Evaluator
from roost.train.metrics import MetricsLog, OverfitWatch, peak_flops, plot_losses
from roost.train.optim import matrix_lr, set_lr
from roost.train.schedule import lr_factor
from roost.workspace import Workspace, atomic_write_json


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

    def load_state_dict(self, d: dict) -> None: ...


@dataclass
class Checkpoints:
    """Where a run's checkpoints go, and what each records beside the step, config and loader position."""

    dir: Path
    meta: dict  # saved in every checkpoint's meta
    manifest_inputs: dict[str, str]  # the checkpoints manifest's inputs


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
    checkpoints: Checkpoints
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
    clock = budget_clock(cfg.clock, info.world_size)

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

        print(
            f"{describe(model_cfg)}\n{run.title} on {info.device} x {info.world_size}: {step_tokens:,} tokens/step "
            f"({cfg.device_batch} x {cfg.seq_len} x {grad_accum} accum x {info.world_size} ranks"
            + (f", {cfg.parallel}" if info.distributed else "")
            + "), "
            f"{cfg.optimizer}, {cfg.schedule} schedule, "
            + (f"{total_steps} steps" if total_steps else f"{cfg.minutes} min")
        )
        bar = tqdm(total=total_steps, initial=step, desc=cfg.run, unit="step", dynamic_ncols=True)

    def save_checkpoint(step: int) -> Path:
        meta = {
            "config": cfg.to_dict(),
            "model_config": model_cfg.to_dict(),
            "loader": loader.state_dict(),
            "train_seconds": train_seconds,
            "run": cfg.run,
            **run.checkpoints.meta,
        }
        path = checkpoint.save(run.checkpoints.dir, step, model, optimizers, meta, info, cfg.keep)
        if info.is_main:
            atomic_write_json(
                run.checkpoints.dir / "manifest.json",
                ws.manifest(
                    "checkpoints",
                    run.checkpoints.manifest_inputs,
                    {"step": step, "tokens": step * step_tokens},
                    latest=path.name,
                ),
            )
        return path

    # ---- the loop: evaluate, step, log, checkpoint
    train_loss = val = None
    last_ckpt = run.resumed_from
    overfit = OverfitWatch()
    threads = ThreadTuner.for_run(info.device, info.world_size) if cfg.threads == "auto" else None
    while True:
        done = progress(step, train_seconds) >= 1.0
        if step % cfg.eval_every == 0 or done:
            val = run.evaluator(model)
            if log:
                log.log({"step": step, **val})
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
                if warning := overfit.check(step, val["val_loss"], loader.state_dict().get("epoch", 0)):
                    bar.write(warning)
        if done:
            break

        t0 = clock()
        lr_mult = lr_factor(
            step,
            progress(step, train_seconds),
            warmup=cfg.warmup,
            schedule=cfg.schedule,
            cooldown=cfg.cooldown,
            min_lr=cfg.min_lr,
        )
        set_lr(optimizers, lr_mult)
        if threads:
            threads.before_step()
        train_loss, grad_norm, rank_seconds = train_step(
            run.wrapped, model, optimizers, loader, grad_accum, cfg.grad_clip, run.autocast, info
        )
        dt = clock() - t0  # train_step's all_gather waited for every rank
        step_threads = torch.get_num_threads()
        if threads:
            threads.after_step(rank_seconds[0])  # wall time: under --clock cpu, dt is blind to waiting for a core
        train_seconds += dt
        step += 1

        if log:
            tokens_per_s = step_tokens / dt
            slowest = max(range(info.world_size), key=rank_seconds.__getitem__)
            record = {
                "step": step,
                "loss": train_loss,
                "lr": matrix_lr(optimizers),
                "lr_mult": lr_mult,
                "grad_norm": grad_norm,
                "tokens_per_s": tokens_per_s,
                "seconds": train_seconds,
                "rank_tokens_per_s": [step_tokens / info.world_size / t for t in rank_seconds],
                "slowest_rank": slowest,
                "slowest_rank_s": rank_seconds[slowest],
            }
            if peak:
                record["mfu"] = flops_per_token * tokens_per_s / (peak * info.world_size)
            if threads:
                record["threads"] = step_threads
                while threads.changes:
                    was, now, faster = threads.changes.pop(0)
                    bar.write(
                        f"step {step}: training on {now} thread{'s' * (now > 1)} instead of {was} "
                        f"({faster:.1f}x the steps/s on this machine now)"
                    )
            log.log(record)
            if total_steps is None:  # time budget: the step count is an estimate
                bar.total = max(step, round(step / max(progress(step, train_seconds), 1e-9)))
            bar.set_postfix(loss=f"{train_loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            bar.update(1)
        if step % cfg.ckpt_every == 0 and progress(step, train_seconds) < 1.0:
            last_ckpt = save_checkpoint(step)

    # ---- the end: final checkpoint and plot
    if threads:
        threads.restore()
    if last_ckpt is None or checkpoint.read_meta(last_ckpt)["step"] != step:
        last_ckpt = save_checkpoint(step)
    if info.is_main:
        bar.close()
        log.close()
        plot_losses(
            run_dir / "metrics.jsonl", run_dir / "loss.png", title=f"{cfg.run}: {describe_short(model_cfg, cfg)}"
        )
    return TrainResult(
        step,
        train_loss,
        val.get("val_loss") if val else None,
        val.get("val_bpb") if val else None,
        last_ckpt,
        None,
        run_dir,
    )


def budget_clock(name: str, world_size: int = 1) -> Callable[[], float]:
    """The clock a run's seconds (its ``--minutes`` budget, schedule and tokens/s) are measured on.

    ``wall`` is elapsed time. ``cpu`` is this process's CPU time over all its
    threads: on a machine shared with other work, a wall-clock budget gives a
    run whatever CPU the others leave it, so two runs of the same budget may do
    very different amounts of work; CPU time gives each the same compute. It is
    one process's alone: ranks would spend their budgets at different steps and
    stop apart, the others left waiting in a collective, so many processes keep
    the wall clock.
    """
    if name == "cpu" and world_size > 1:
        raise UserError(f"--clock cpu counts one process's CPU time; with {world_size} processes use --clock wall")
    return {"wall": time.perf_counter, "cpu": time.process_time}[name]  # TrainConfig checked the name


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
