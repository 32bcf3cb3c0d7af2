"""A preallocated KV cache shared by all of the engine's slots.

It implements the model's cache protocol: before each forward the engine calls
``begin(slot_ids, positions)`` to say which slot each batch row belongs to and
at which absolute positions its new tokens sit; each attention layer then calls
``update(layer_idx, k, v)``, which writes the new keys/values into their slots
and returns the keys/values the layer should attend to plus a boolean mask.

Why slots of one big tensor: memory is allocated once, so a decode step never
allocates a cache, and rows of neighbouring slots are a plain view (no copy).
The keys returned are cut at the longest position in the batch, not at
``max_len``, so attention costs what the active sequences need.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        n_layer: int,
        slots: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        shape = (n_layer, slots, n_kv_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.slots, self.max_len = slots, max_len
        self._key_pos = torch.arange(max_len, device=device)
        self._rows: slice | torch.Tensor = slice(0, 0)
        self._positions = torch.zeros(0, 1, dtype=torch.long, device=device)
        self._mask: torch.Tensor | None = None
        self._span = 0
        self._start: int | None = None

    def begin(self, slot_ids: list[int], positions: torch.Tensor) -> None:
        """Prepare the next forward: batch row b is slot ``slot_ids[b]`` and its tokens sit at ``positions[b]``."""
        if positions.dim() != 2 or positions.shape[0] != len(slot_ids):
            raise ValueError(
                f"positions must be [len(slot_ids), T], got {tuple(positions.shape)} for {len(slot_ids)} slots"
            )
        span = int(positions.max()) + 1
        if span > self.max_len:
            raise ValueError(f"position {span - 1} is past the cache length {self.max_len}")
        first = slot_ids[0]
        if slot_ids == list(range(first, first + len(slot_ids))):
            self._rows = slice(first, first + len(slot_ids))  # neighbours: a view, no gather
        else:
            self._rows = torch.tensor(slot_ids, device=self.k.device)
        self._positions = positions
        self._span = span
        # one row of consecutive positions (a single prompt's prefill, a single-stream step): plain copies
        start = span - positions.shape[1]
        single = len(slot_ids) == 1 and int(positions[0, 0]) == start
        self._start = start if single else None
        if positions.shape == (1, 1):
            self._mask = None  # one query at the end of its slot sees every key: no mask keeps SDPA on its fast path
        else:  # key j is visible to the query at position p when j <= p (causal, nothing past the slot's end)
            self._mask = self._key_pos[:span].view(1, 1, 1, span) <= positions.unsqueeze(1).unsqueeze(-1)

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Store k, v [B, n_kv_head, T, head_dim]; return all keys, values [B, H, S, D] and the mask [B, 1, T, S]."""
        kc, vc = self.k[layer_idx], self.v[layer_idx]
        if self._start is not None:  # one sequence, positions start..start+T-1: a plain copy
            end = self._start + k.shape[2]
            kc[self._rows, :, self._start : end].copy_(k)
            vc[self._rows, :, self._start : end].copy_(v)
            return kc[self._rows, :, : self._span], vc[self._rows, :, : self._span], self._mask
        if isinstance(self._rows, slice):
            kc, vc = kc[self._rows], vc[self._rows]
            idx = self._positions.view(k.shape[0], 1, k.shape[2], 1).expand_as(k)
            kc.scatter_(2, idx, k)
            vc.scatter_(2, idx, v)
            return kc[:, :, : self._span], vc[:, :, : self._span], self._mask
        rows = self._rows.unsqueeze(1)
        kc[rows, :, self._positions] = k.transpose(1, 2)
        vc[rows, :, self._positions] = v.transpose(1, 2)
        return (
            kc[:, :, : self._span].index_select(0, self._rows),
            vc[:, :, : self._span].index_select(0, self._rows),
            self._mask,
        )

    def copy_slot(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` positions of one slot to another (n > 1 shares one prefill)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]
