"""Process-group set-up: one code path for one process and for N under torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is rank 0 of
a world of 1 and no process group is made, so every collective below is a
no-op. Gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` takes CUDA, then MPS, then CPU; an explicit choice that is not there is refused."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if preference == "auto":
        preference = "cuda" if cuda else "mps" if mps else "cpu"
    if preference == "cuda":
        if not cuda:
            raise ValueError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False); use --device cpu")
        return torch.device("cuda", local_rank)
    if preference == "mps" and not mps:
        raise ValueError("--device mps: MPS is not available on this machine; use --device cpu")
    return torch.device(preference)


def init(device_preference: str = "auto") -> DistInfo:
    """Read torchrun's environment, pick this rank's device and join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, local_rank, world_size, device)


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DDP across ranks (FSDP2 is the seam for models that do not fit one device)."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
