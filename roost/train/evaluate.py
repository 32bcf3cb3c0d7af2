"""Validation loss and bits per byte on a fixed slice of the validation shards.

Bits per byte divides the summed loss (in bits) by the UTF-8 bytes the target
tokens decode to, so it compares models with different tokenizers. As in
nanochat, special tokens (each post's ``<|bos|>``) count neither bytes nor loss
in it. The slice is the same at every evaluation, so its byte count is
measured once, by decoding it.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch

from roost.train import dist
from roost.train.data import IGNORE_INDEX, PackedLoader


class Evaluator:
    def __init__(
        self, loader: PackedLoader, num_batches: int, tokenizer_dir: Path | None, autocast=contextlib.nullcontext
    ):
        self.loader, self.autocast = loader, autocast
        self.num_batches = max(1, min(num_batches, loader.batches_per_epoch // loader.world_size))
        self.special_ids: torch.Tensor | None = None
        self.num_bytes = 0
        tok = _load_tokenizer(tokenizer_dir)
        if tok is not None:
            self.special_ids = torch.tensor(sorted(tok.special_ids.values()), device=loader.device)
            n = 0
            for _, y in self._batches():
                n += sum(len(tok.decode(row[row >= 0].tolist(), skip_special_tokens=True).encode()) for row in y.cpu())
            self.num_bytes = int(dist.all_reduce_sum(torch.tensor(n, dtype=torch.float64, device=loader.device)).item())

    def _batches(self):
        self.loader.load_state_dict({"epoch": 0, "position": 0})
        for _ in range(self.num_batches):
            yield self.loader.next_batch()

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        dev = self.loader.device
        total = torch.zeros(3, dtype=torch.float64, device=dev)  # loss sum, token count, loss sum over byte tokens
        for x, y in self._batches():
            with self.autocast():
                _, losses = model(x, y, loss_reduction="none")
            losses = losses.double()
            counted = y != IGNORE_INDEX
            total[0] += losses[counted].sum()
            total[1] += counted.sum()
            if self.special_ids is not None:
                total[2] += losses[counted & ~torch.isin(y, self.special_ids)].sum()
        model.train(was_training)
        loss_sum, count, byte_loss_sum = dist.all_reduce_sum(total).tolist()
        out = {"val_loss": loss_sum / max(count, 1)}
        if self.num_bytes:
            out["val_bpb"] = byte_loss_sum / math.log(2) / self.num_bytes
        return out


def _load_tokenizer(tokenizer_dir: Path | None):
    """The workspace tokenizer, or None (no bits per byte) when there is none."""
    from roost.tokenizer import TOKENIZER_FILE, load_tokenizer

    if tokenizer_dir is None or not (Path(tokenizer_dir) / TOKENIZER_FILE).is_file():
        return None
    return load_tokenizer(tokenizer_dir)
