"""Validation loss and bits per byte of the served model (``workspace/model``) on the token val shards.

It reuses the training loop's :class:`roost.train.evaluate.Evaluator`, so the
figure is the one training reports, measured on the model that is served.
"""

from __future__ import annotations

import math

import torch

from roost.errors import UserError
from roost.precision import autocast_for
from roost.workspace import Workspace


def validation_loss(
    ws: Workspace,
    *,
    max_tokens: int = 262_144,
    seq_len: int = 256,
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """``{"val_loss", "val_bpb", "tokens", "params", "source"}`` over up to ``max_tokens`` validation tokens.

    In fp32 by default, whatever dtype trained the model; ``dtype=torch.bfloat16``
    computes under bf16 autocast, as ``roost train --dtype auto`` evaluates on CPUs with bf16.
    """
    from roost.export import load_hf
    from roost.tokenizer import placeholder_ids
    from roost.tokens import TokenShards
    from roost.train.data import PackedLoader
    from roost.train.evaluate import Evaluator

    ws.require("tokens")
    if not (ws.model / "config.json").is_file():
        raise FileNotFoundError(f"no served model in {ws.model}; run `roost train` first")
    model = load_hf(ws.model)
    seq_len = min(seq_len, model.config.max_seq_len)
    val = TokenShards(ws.tokens, "val")
    if val.vocab_size != model.config.vocab_size:
        raise UserError(
            f"{ws.model} has a vocabulary of {model.config.vocab_size} but the token shards in "
            f"{ws.tokens} use {val.vocab_size}: they come from different tokenizers"
        )
    # fewer, shorter rows when the validation split is small, so at least one full batch exists
    while batch_size > 1 and val.num_tokens < batch_size * (seq_len + 1):
        batch_size //= 2
    while seq_len > 16 and val.num_tokens < batch_size * (seq_len + 1):
        seq_len //= 2
    loader = PackedLoader(
        val.shards,
        val.doc_starts,
        seq_len,
        batch_size,
        shuffle=False,
        name="val",
        device=torch.device("cpu"),
        ignore_targets=placeholder_ids(ws.model),
    )  # as training
    batches = max(1, math.ceil(max_tokens / (batch_size * seq_len)))
    autocast = autocast_for(torch.device("cpu"), dtype)
    evaluator = Evaluator(loader, batches, ws.model, autocast)  # the model folder carries the tokenizer
    out = evaluator(model)
    source = (ws.read_manifest("model") or {}).get("source", "unknown")
    out.update(tokens=evaluator.num_batches * batch_size * seq_len, params=model.num_params(), source=source)
    return out
