"""Distributed training with real processes: torchrun, gloo on loopback, DDP and FSDP2, DCP checkpoints, faults.

The global batch is fixed (``--batch-tokens``), so one process accumulates 2
micro-batches where two processes take one each, and a step's loss is the mean
over the same tokens either way: the loss curves must agree to fp32 rounding.
The learning rate is constant after warmup (``--cooldown 0``), so a run
stopped at step 10 and resumed to 20 must follow the 20-step run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train_fixtures import make_token_workspace

from roost.cli import main
from roost.train.config import TrainConfig
from roost.train.data import PackedLoader
from roost.train.pretrain import train
from roost.workspace import Workspace

FLAGS = {
    "depth": 1,
    "seq_len": 32,
    "max_seq_len": 64,
    "device_batch": 4,
    "batch_tokens": 256,
    "optimizer": "adamw",
    "warmup": 2,
    "cooldown": 0.0,
    "eval_every": 10,
    "eval_tokens": 256,
    "ckpt_every": 10,
    "dtype": "float32",
}  # float32: the curves must agree to fp32 rounding; bf16 ones differ by ~1e-4
STEPS = 20
# Known flake, rerun meanwhile (pytest-rerunfailures): the killed-rank test's first attempt sometimes trains to
# the end with rank 1 never killed (seen in whole-suite runs only); its fault log says whether the injection was
# armed. (A second one, FSDP workers aborting at exit, was fixed by the gc.collect() in roost.train.dist.shutdown:
# 0 in 8 runs after, 3 in 5 before.)
pytestmark = pytest.mark.flaky(reruns=2)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

# A fault on one rank, as a sitecustomize module every process of the job imports at start (PYTHONPATH):
# FAULT=raise|kill:RANK:STEP raises or SIGKILLs in that rank's STEP-th training step, on the job's first attempt
# only, so that a restarted job runs clean.
FAULT_INJECTION = r"""
import os
what, rank, at = os.environ["FAULT"].split(":")
if os.environ.get("RANK") == rank and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
    with open(os.environ["FAULT_LOG"], "a") as log:  # so a test can tell "not armed" from "armed, never fired"
        log.write(f"armed {what} on rank {rank} at step {at}\n")
    import signal
    from roost.train import loop
    step, calls = loop.train_step, [0]
    def faulty_step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(at):
            if what == "raise":
                raise RuntimeError(f"injected fault on rank {rank} at step {at}")
            os.kill(os.getpid(), signal.SIGKILL)
        return step(*args, **kwargs)
    loop.train_step = faulty_step
"""


def _cli(cfg: dict) -> list[str]:
    return [a for k, v in cfg.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, env=ENV, capture_output=True, text=True, timeout=timeout)


def _records(ws: Workspace) -> list[dict]:
    return [json.loads(line) for line in (ws.root / "runs/pretrain/metrics.jsonl").read_text().splitlines()]


def _losses(ws: Workspace) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in _records(ws) if "loss" in r}


def _assert_follows(got: dict[int, float], want: dict[int, float], steps: range) -> None:
    assert sorted(got) == list(steps)
    for s in steps:
        assert abs(got[s] - want[s]) / abs(want[s]) < 1e-4, f"step {s}: loss {got[s]} vs one process {want[s]}"


@contextlib.contextmanager
def _one_thread():
    """As each rank has (OMP_NUM_THREADS=1), so that kernels sum in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_token_workspace(tmp_path_factory.mktemp("dist") / "template").root


def _copy(template: Path, dest: Path) -> Workspace:
    shutil.copytree(template, dest)
    return Workspace(dest)


@pytest.fixture(scope="module")
def one_process(template, tmp_path_factory) -> Workspace:
    """The reference: 20 steps in this process (world size 1, 2 micro-batches a step)."""
    ws = _copy(template, tmp_path_factory.mktemp("one") / "ws")
    with _one_thread():
        train(ws, TrainConfig(**FLAGS, steps=STEPS))
    return ws


def test_ranks_share_out_each_step_and_epoch_without_overlap_at_any_world_size():
    # 50 documents of 8 tokens, numbered so that a sequence's first token names it
    shard = np.arange(400, dtype=np.uint16)
    starts = np.arange(0, 400, 8)
    n_seq, batch, global_micro = 50, 3, 4  # 4 micro-batches a step: 1 rank x 4 accum, 2 x 2, 4 x 1

    def steps(world: int) -> list[list[int]]:
        accum = global_micro // world
        loaders = [
            PackedLoader([shard], [starts], 7, batch, seed=3, rank=r, world_size=world, accum=accum)
            for r in range(world)
        ]
        assert loaders[0].batches_per_epoch == n_seq // batch // global_micro * global_micro  # whole steps only
        out = []
        for _ in range(loaders[0].batches_per_epoch // global_micro + 1):  # one epoch and one step into the next
            seqs = [
                int(x[i, 0]) // 8
                for ld in loaders
                for _ in range(accum)
                for x in [ld.next_batch()[0]]
                for i in range(batch)
            ]
            out.append(sorted(seqs))
        return out

    one = steps(1)
    epoch = [s for step in one[:-1] for s in step]
    assert len(epoch) == len(set(epoch)) == 48  # nothing twice; only the 2 sequences short of a step are left out
    assert steps(2) == steps(4) == one  # each step trains on the same sequences at every world size


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nproc", "2", "--batch-tokens", "1000"], r"--batch-tokens 1000 is not a multiple of .* x 2 = 8192"),
        (["--nproc", "2", "--nnodes", "2"], r"--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
        (["--max-restarts", "2"], r"go with --nproc \(or give them to torchrun\)"),
        (["--parallel", "zero"], r"--parallel must be one of ddp, fsdp, got 'zero'"),
    ],
)
def test_launch_flags_are_checked_before_any_process_starts(template, capsys, argv, message):
    assert main(["train", "--workspace", str(template), *argv]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_activation_checkpointing_recomputes_the_same_training(template, tmp_path):
    cfg = {**FLAGS, "depth": 2, "steps": 3}  # two blocks: each must recompute itself
    plain, recomputed = _copy(template, tmp_path / "plain"), _copy(template, tmp_path / "ac")
    with _one_thread():
        train(plain, TrainConfig(**cfg))
        train(recomputed, TrainConfig(**cfg, activation_checkpointing=True))
    assert _losses(recomputed) == _losses(plain)  # bitwise: the same kernels, run again
    a, b = load_file(plain.model / "model.safetensors"), load_file(recomputed.model / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same names and weights


def test_two_processes_follow_one_process_with_ddp(one_process, template, tmp_path):
    ws = _copy(template, tmp_path / "ddp")
    # `roost train --nproc 2` launches torchrun itself
    done = _run(
        [
            sys.executable,
            "-m",
            "roost",
            "train",
            "--nproc",
            "2",
            "--workspace",
            str(ws.root),
            "--run",
            "pretrain",
            "--steps",
            str(STEPS),
            *_cli(FLAGS),
        ]
    )  # --run: no clash with torchrun's flags
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training on cpu x 2") == 1  # rank 0 alone reports
    _assert_follows(_losses(ws), _losses(one_process), range(1, STEPS + 1))
    for r in (r for r in _records(ws) if "loss" in r):  # every rank's speed, and who was slowest
        assert len(r["rank_tokens_per_s"]) == 2 and all(v > 0 for v in r["rank_tokens_per_s"])
        assert r["slowest_rank"] in (0, 1) and r["slowest_rank_s"] > 0


def test_fsdp_matches_one_process_and_its_checkpoint_resumes_at_world_size_one_and_two(one_process, template, tmp_path):
    ws = _copy(template, tmp_path / "fsdp")
    done = _run(
        [
            *TORCHRUN,
            "-m",
            "roost",
            "train",
            "--workspace",
            str(ws.root),
            "--parallel",
            "fsdp",
            "--steps",
            str(STEPS // 2),
            *_cli(FLAGS),
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    want = _losses(one_process)
    _assert_follows(_losses(ws), want, range(1, STEPS // 2 + 1))
    ckpt = ws.checkpoints / f"step-{STEPS // 2:06d}"
    assert sorted(p.name for p in ckpt.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]  # a shard per rank

    # the 2-rank FSDP checkpoint, resumed by one process (unsharded) ...
    alone = _copy(ws.root, tmp_path / "fsdp-then-one")
    with _one_thread():
        train(alone, TrainConfig(**FLAGS, steps=STEPS), resume=True)
    _assert_follows({s: v for s, v in _losses(alone).items() if s > STEPS // 2}, want, range(STEPS // 2 + 1, STEPS + 1))
    # ... and by two FSDP ranks again
    done = _run([*TORCHRUN, "-m", "roost", "train", "--workspace", str(ws.root), "--resume", "--steps", str(STEPS)])
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_follows(_losses(ws), want, range(1, STEPS + 1))

    # the served model, gathered from the shards, is the one-process model
    a, b = load_file(one_process.model / "model.safetensors"), load_file(ws.model / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


def _with_fault(tmp_path: Path, fault: str) -> dict[str, str]:
    """The environment of a job in which FAULT happens (see FAULT_INJECTION)."""
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "sitecustomize.py").write_text(FAULT_INJECTION)
    path = os.pathsep.join(p for p in (str(tmp_path / "faults"), os.environ.get("PYTHONPATH")) if p)
    return {**ENV, "PYTHONPATH": path, "FAULT": fault, "FAULT_LOG": str(tmp_path / "faults" / "log")}


def test_a_rank_that_raises_ends_the_whole_job_with_its_error(template, tmp_path):
    ws = _copy(template, tmp_path / "raise")
    t0 = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "train",
            "--nproc",
            "2",
            "--workspace",
            str(ws.root),
            "--steps",
            "6",
            *_cli(FLAGS),
        ],
        check=False,
        env=_with_fault(tmp_path, "raise:1:3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert time.monotonic() - t0 < 100  # rank 0, waiting in a collective, was stopped: no hang
    assert "roost train: error: training failed" in done.stderr
    root_cause = done.stderr.split("Root Cause (first observed failure)")[1]  # torchrun's report, from error files
    assert "rank      : 1" in root_cause and "RuntimeError: injected fault on rank 1 at step 3" in root_cause


def test_a_killed_rank_restarts_the_job_which_resumes_from_its_checkpoint(one_process, template, tmp_path):
    ws = _copy(template, tmp_path / "kill")
    steps = 8
    flags = {**FLAGS, "ckpt_every": 4, "eval_every": 4}
    done = subprocess.run(
        [
            *TORCHRUN,
            "--max-restarts",
            "1",
            "-m",
            "roost",
            "train",
            "--workspace",
            str(ws.root),
            "--steps",
            str(steps),
            *_cli(flags),
        ],
        check=False,
        env=_with_fault(tmp_path, "kill:1:6"),
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fault_log = (tmp_path / "faults" / "log").read_text() if (tmp_path / "faults" / "log").exists() else "nothing"
    # (if the first attempt failed before the fault for another reason, torchrun's report of it is in stderr)
    assert "failed (exitcode: -9) local_rank: 1" in done.stderr, (
        f"rank 1 was not killed; fault log: {fault_log}; stderr: {done.stderr[:4000]}"
    )
    assert done.stdout.count("training on cpu x 2") == 2  # and the job ran twice
    # the restarted job took up the step-4 checkpoint: one run's worth of steps, on the uninterrupted track
    _assert_follows(_losses(ws), _losses(one_process), range(1, steps + 1))
    assert (ws.checkpoints / f"step-{steps:06d}").is_dir()
