"""The dtype matmuls run in and the autocast that gets them there: shared by training and evaluation.

Training (``roost.train``) picks its compute dtype with :func:`compute_dtype`;
``roost eval lm`` measures the served model under the same autocast, so both
live here rather than in either stage.
"""

from __future__ import annotations

import contextlib
import functools

import torch


def compute_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The dtype of the matmuls: bf16 where the hardware does it natively, as ``--dtype auto`` asks.

    On a CPU with AVX512-BF16 (or AMX) a bf16 matmul runs about twice as fast
    as fp32 (BENCHMARKS.md, "Training"); without it bf16 is emulated and slower.
    """
    if requested == "float32":
        return torch.float32
    if requested == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return torch.float32


def autocast_for(device: torch.device, dtype: torch.dtype = torch.float32):
    """Autocast to ``dtype`` (fp32 master weights), or nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=dtype)
