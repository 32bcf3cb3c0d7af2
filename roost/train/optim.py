"""Optimizers and their learning rates, derived from the model's width as nanochat does.

Parameters fall in four groups:

* ``matrix``: the 2-D weights inside the transformer blocks (attention and MLP
  projections). Muon (``roost.train.muon.Muon``, torch's Muon batched by shape:
  momentum, then Newton-Schulz orthogonalisation of the update) with
  ``--optimizer muon``, AdamW otherwise.
* ``embedding``: the token table; AdamW.
* ``unembedding``: the lm_head; AdamW. With ``--tie-embeddings`` the lm_head *is*
  the token table, which then takes the lm_head's rate: at the embedding's
  (50x larger) a tied depth-4 model's loss rose to ~50 within 40 steps.
* ``norm``: the RMSNorm gains (1-D); AdamW.

Learning rates follow nanochat (``scripts/base_train.py``): the AdamW groups are
tuned at width 768 and scaled by ``(width / 768) ** -0.5``, since wider models
need smaller Adam steps. They are also scaled by ``sqrt(batch / 65,536 tokens)``
between 2,048 and 65,536 tokens a step (Adam's square-root rule: a smaller batch
is a noisier gradient, which needs a smaller step). nanochat tuned its rates at
~0.5M-token batches. At the 4,096 tokens of ``roost train``'s default step a
quarter of them learnt more on TweetEval in 15 CPU minutes (2.070 against 2.098
bits per byte; 2.335 against 2.604 on half the tweets, which full rates learn by
heart), and the square root from 0.5M (x0.088) less (2.125); at the demo's 2,048
tokens, x0.177 (with the matrices' weight decay) 2.150 against 2.202, and at
8,192 tokens x0.354 2.066 against 2.104 (BENCHMARKS.md, issue 21).

Muon's rate needs no width scaling because its update is orthogonalised (RMS ~1
per matrix, corrected for aspect ratio by ``adjust_lr_fn="original"``, Keller
Jordan's ``sqrt(max(1, rows/cols))``). ``--lr`` sets the matrix rate; the others
keep theirs. Each param group keeps its peak rate in ``base_lr`` and the loop
sets ``lr = base_lr * schedule factor``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from roost.errors import UserError
from roost.precision import compute_dtype
from roost.train.muon import Muon

REFERENCE_WIDTH = 768
# The step size (tokens) at and above which the AdamW groups take their full rates; below it, sqrt(batch / this).
REFERENCE_BATCH_TOKENS = 65_536
# The smallest step measured (the demo's); smaller ones (tests) keep its rates rather than a guess below it.
SMALLEST_MEASURED_BATCH_TOKENS = 2_048

# Peak rates at width 768 (nanochat's defaults, and for AdamW-on-matrices a rate that holds up at small widths).
EMBEDDING_LR = 0.2
UNEMBEDDING_LR = 0.004
NORM_LR = 0.004
MUON_MATRIX_LR = 0.02
ADAMW_MATRIX_LR = 0.003
ADAM_BETAS = (0.8, 0.95)
ADAM_EPS = 1e-10
# Both optimizers decay the block matrices. Under Muon it was 0 until a run on half of TweetEval learnt its text by
# heart (2.604 bits per byte against 2.224 with 0.1 and the small-batch rates above; on all of it 2.070 -> 2.069).
MATRIX_WEIGHT_DECAY = 0.1
MUON_MOMENTUM = 0.95


@dataclass(frozen=True)
class LearningRates:
    embedding: float
    unembedding: float
    norm: float
    matrix: float


def derive_lrs(
    width: int, optimizer: str, matrix_lr: float | None = None, batch_tokens: int = REFERENCE_BATCH_TOKENS
) -> LearningRates:
    """Peak rates for a model ``width`` wide trained on ``batch_tokens`` a step (all ranks and micro-batches)."""
    scale = (width / REFERENCE_WIDTH) ** -0.5
    # ADAMW_MATRIX_LR was chosen at CPU batch sizes, so only nanochat's rates take the batch into account
    small_batch = min(1.0, max(batch_tokens, SMALLEST_MEASURED_BATCH_TOKENS) / REFERENCE_BATCH_TOKENS) ** 0.5
    default_matrix = MUON_MATRIX_LR if optimizer == "muon" else ADAMW_MATRIX_LR * scale
    return LearningRates(
        embedding=EMBEDDING_LR * scale * small_batch,
        unembedding=UNEMBEDDING_LR * scale * small_batch,
        norm=NORM_LR * scale * small_batch,
        matrix=matrix_lr if matrix_lr is not None else default_matrix,
    )


def param_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Split parameters by role (see module docstring); a tied lm_head is the embedding."""
    groups: dict[str, list[torch.nn.Parameter]] = {"embedding": [], "unembedding": [], "norm": [], "matrix": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("embed_tokens."):
            groups["embedding"].append(p)
        elif name.startswith("lm_head."):
            groups["unembedding"].append(p)
        elif p.ndim == 2:
            groups["matrix"].append(p)
        elif p.ndim == 1:
            groups["norm"].append(p)
        else:
            raise ValueError(f"parameter {name} has shape {tuple(p.shape)}: no optimizer group for {p.ndim}-D tensors")
    return groups


def _adamw(groups: list[dict], device: torch.device) -> torch.optim.AdamW:
    # Fused AdamW (one kernel for all tensors) exists on CUDA, CPU and MPS in current PyTorch.
    fused = device.type in ("cuda", "cpu", "mps")
    return torch.optim.AdamW(groups, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=0.0, fused=fused)


def build_optimizers(
    model: torch.nn.Module,
    optimizer: str,
    width: int,
    device: torch.device,
    matrix_lr: float | None = None,
    matrix_weight_decay: float | None = None,
    batch_tokens: int = REFERENCE_BATCH_TOKENS,
) -> list[torch.optim.Optimizer]:
    """One AdamW for the embedding, lm_head and norms (and the matrices under ``adamw``), plus Muon under ``muon``.

    ``matrix_weight_decay`` (``--weight-decay``) is the block matrices' decoupled decay, by default
    ``MATRIX_WEIGHT_DECAY``; the other groups never decay."""
    decay = MATRIX_WEIGHT_DECAY if matrix_weight_decay is None else matrix_weight_decay
    lrs = derive_lrs(width, optimizer, matrix_lr, batch_tokens)
    params = param_groups(model)
    if params["embedding"] and not params["unembedding"]:  # tied: the table is the output layer too
        lrs = dataclasses.replace(lrs, embedding=lrs.unembedding)
    adam_groups = [
        {"params": params[name], "lr": getattr(lrs, name), "base_lr": getattr(lrs, name), "weight_decay": 0.0}
        for name in ("embedding", "unembedding", "norm")
        if params[name]
    ]
    if optimizer == "adamw":
        adam_groups.append(
            {
                "params": params["matrix"],
                "lr": lrs.matrix,
                "base_lr": lrs.matrix,
                "weight_decay": decay,
            }
        )
        return [_adamw(adam_groups, device)]
    if optimizer != "muon":
        raise UserError(f"unknown optimizer {optimizer!r}; use adamw or muon")
    muon = Muon(
        [{"params": params["matrix"], "lr": lrs.matrix, "base_lr": lrs.matrix}],
        lr=lrs.matrix,
        weight_decay=decay,
        momentum=MUON_MOMENTUM,
        nesterov=True,
        adjust_lr_fn="original",
        # bf16 where the hardware has it (torch's choice); emulated bf16 on an AVX2 CPU is ~10x slower than fp32
        ns_dtype=compute_dtype("auto", device),
    )
    return [_adamw(adam_groups, device), muon]


def set_lr(optimizers: list[torch.optim.Optimizer], factor: float) -> None:
    """Every group's rate to its peak (``base_lr``) times the schedule's ``factor``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * factor


def scale_peak_lrs(optimizers: list[torch.optim.Optimizer], factor: float) -> None:
    """Every group's peak rate times ``factor`` (SFT's ``--lr-frac``), before the first step."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] *= factor


def matrix_lr(optimizers: list[torch.optim.Optimizer]) -> float:
    """The block matrices' current rate (what ``--lr`` sets): :func:`build_optimizers` puts their group last."""
    return optimizers[-1].param_groups[-1]["lr"]
