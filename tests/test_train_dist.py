"""Two processes under torchrun (gloo, DDP) train what one process with gradient accumulation trains.

Rank r takes every 2nd batch of the global order, so 2 ranks x 1 micro-batch
see exactly the batches 1 rank x 2 micro-batches sees, and the step's gradient
is the same average. The 2-rank checkpoint (two DCP shards) then resumes in a
single process, a different world size, and stays on the single run's track.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file
from test_train_fixtures import make_token_workspace

from roost.train.config import TrainConfig
from roost.train.pretrain import train
from roost.workspace import Workspace

FLAGS = dict(
    depth=1,
    seq_len=32,
    max_seq_len=64,
    device_batch=4,
    batch_tokens=256,
    ckpt_every=2,
    eval_every=2,
    eval_tokens=256,
    optimizer="adamw",
    warmup=2,
)


def _cli(cfg: dict) -> list[str]:
    return [a for k, v in cfg.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def _weights(ws: Workspace) -> dict[str, torch.Tensor]:
    return load_file(ws.model / "model.safetensors")


def test_two_ranks_match_one_rank_with_accumulation_and_resume_at_another_world_size(tmp_path):
    template = make_token_workspace(tmp_path / "template").root
    two, one = Workspace(tmp_path / "two"), Workspace(tmp_path / "one")
    shutil.copytree(template, two.root)
    shutil.copytree(template, one.root)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "roost",
        "train",
        "--workspace",
        str(two.root),
        "--steps",
        "4",
        *_cli(FLAGS),
    ]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (two.checkpoints / "step-000004").glob("*.distcp")) == [
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    assert "2 ranks" in done.stdout

    train(one, TrainConfig(**FLAGS, steps=4))  # this process: world size 1, grad_accum 2
    a, b = _weights(one), _weights(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    train(two, TrainConfig(**FLAGS, steps=6), resume=True)  # the 2-rank checkpoint, resumed by 1 process
    train(one, TrainConfig(**FLAGS, steps=6), resume=True)
    a, b = _weights(one), _weights(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
