"""BOS-aligned sequence packing over token shards, with a resumable, rank-sharded order.

Every training sequence starts at a document (post) start, as in nanochat's
BOS-aligned loader, and runs on through the following documents to fill
``seq_len + 1`` tokens; the next sequence starts at the first document start
after it, so a document longer than a sequence is cropped and no input token is
seen twice in an epoch. Sequences are shuffled with a generator seeded by
``(seed, epoch)`` and cut into batches; rank r of a world of w takes batches r,
r + w, r + 2w, ... of that global order, so with data parallelism no sequence is
seen twice or skipped. An epoch holds whole optimizer steps only (``accum``
micro-batches on each of the ranks), so the same global batch size gives the
same steps, epoch boundaries included, at any world size. The loader's whole
state is ``(epoch, position)``, the index of the next global batch, which a
checkpoint saves: it means the same thing at every world size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roost.errors import UserError
from roost.loss import IGNORE_INDEX  # roost.model.GPT.forward ignores these targets


def sequence_starts(doc_starts: np.ndarray, num_tokens: int, seq_len: int) -> np.ndarray:
    """Offsets of the sequences packed from one shard: each at a document start, none overlapping."""
    doc_starts = np.asarray(doc_starts, dtype=np.int64)
    doc_starts = doc_starts[doc_starts < num_tokens - 1]  # a sequence needs an input and a target
    starts, i = [], 0
    while i < len(doc_starts):
        s = int(doc_starts[i])
        starts.append(s)
        i = int(np.searchsorted(doc_starts, s + seq_len, side="left"))
    return np.asarray(starts, dtype=np.int64)


@dataclass
class LoaderState:
    epoch: int = 0
    position: int = 0  # index of the next global batch in this epoch's order


class PackedLoader:
    """Batches ``(x, y)`` of shape [batch_size, seq_len] for one rank; ``y`` is ``x`` shifted by one."""

    def __init__(
        self,
        shards: list[np.ndarray],
        doc_starts: list[np.ndarray],
        seq_len: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        accum: int = 1,
        device: torch.device | str = "cpu",
        name: str = "train",
        shrink_batch: bool = False,
        ignore_targets: Sequence[int] = (),
    ):
        """``accum``: micro-batches per optimizer step on each rank. ``shrink_batch`` (for evaluation) lowers
        the batch size when the data holds less than one full batch. ``ignore_targets``: token ids that are
        inputs but never targets (ingest's placeholders: the model reads them and must not learn to write them)."""
        if len(shards) != len(doc_starts):
            raise ValueError(f"{name}: {len(shards)} shards but {len(doc_starts)} document-start arrays")
        self.shards, self.seq_len, self.batch_size = shards, seq_len, batch_size
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.device = torch.device(device)
        self.ignore_targets = torch.tensor(sorted(ignore_targets), dtype=torch.long)
        per_shard = [sequence_starts(d, len(s), seq_len) for s, d in zip(shards, doc_starts)]
        self.seq_shard = np.concatenate(
            [np.full(len(p), i, dtype=np.int64) for i, p in enumerate(per_shard)] or [np.zeros(0, np.int64)]
        )
        self.seq_offset = np.concatenate(per_shard or [np.zeros(0, np.int64)])
        if shrink_batch:
            self.batch_size = batch_size = max(1, min(batch_size, len(self.seq_offset) // world_size))
        # Whole steps only, so every rank takes the same number of batches per epoch, whatever the world size.
        step_batches = world_size * accum
        self.batches_per_epoch = len(self.seq_offset) // batch_size // step_batches * step_batches
        if self.batches_per_epoch == 0:
            raise UserError(
                f"{name}: {len(self.seq_offset)} sequences of {seq_len} tokens make no full batch of "
                f"{batch_size} for each of {accum} micro-batch(es) x {world_size} rank(s) in a step; add data or "
                "lower --seq-len / --device-batch / --batch-tokens"
            )
        self.state = LoaderState()
        self._order_epoch, self._order = -1, np.zeros(0, np.int64)

    @property
    def num_sequences(self) -> int:
        return len(self.seq_offset)

    def state_dict(self) -> dict:
        return {"epoch": self.state.epoch, "position": self.state.position, "num_sequences": self.num_sequences}

    def load_state_dict(self, d: dict) -> None:
        if d.get("num_sequences", self.num_sequences) != self.num_sequences:
            raise UserError(
                f"loader state is for {d['num_sequences']} sequences but the data packs into {self.num_sequences}: "
                "the token shards or --seq-len changed since the checkpoint"
            )
        self.state = LoaderState(int(d["epoch"]), int(d["position"]))

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            n = self.num_sequences
            self._order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._order_epoch = epoch
        return self._order

    def _sequence(self, i: int) -> np.ndarray:
        shard, start = self.shards[self.seq_shard[i]], int(self.seq_offset[i])
        buf = np.asarray(shard[start : start + self.seq_len + 1], dtype=np.int64)
        if len(buf) < self.seq_len + 1:  # the shard's last sequence: pad, and ignore the padding's targets
            buf = np.concatenate([buf, np.full(self.seq_len + 1 - len(buf), IGNORE_INDEX, dtype=np.int64)])
        return buf

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.state.position + self.world_size > self.batches_per_epoch:
            self.state = LoaderState(self.state.epoch + 1, 0)
        b = self.state.position + self.rank
        ids = self._epoch_order(self.state.epoch)[b * self.batch_size : (b + 1) * self.batch_size]
        self.state.position += self.world_size
        rows = torch.from_numpy(np.stack([self._sequence(int(i)) for i in ids]))
        x, y = rows[:, :-1].clone(), rows[:, 1:].clone()
        x[x == IGNORE_INDEX] = 0  # padded inputs: any id will do, their targets are ignored
        if len(self.ignore_targets):
            y[torch.isin(y, self.ignore_targets)] = IGNORE_INDEX
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)
