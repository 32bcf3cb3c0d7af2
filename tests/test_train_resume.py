"""Kill training with SIGKILL (mid-run, then mid-checkpoint-write), resume, and get bitwise the same weights.

Each run is a real ``python -m roost train`` process. A small launcher kills
its own process with SIGKILL at a chosen moment (after logging a given step, or
inside the write of a given checkpoint, once the model shards are on disk), so
the test is exact rather than racing a timer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from test_train_fixtures import make_token_workspace

from roost.train import checkpoint

LAUNCHER = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
kill = os.environ.get("KILL")
if kill:
    where, at = kill.split(":")
    if where == "after_step":
        from roost.train import metrics
        log = metrics.MetricsLog.log
        def log_then_die(self, record):
            log(self, record)
            if record["step"] == int(at) and "loss" in record:
                os.kill(os.getpid(), signal.SIGKILL)
        metrics.MetricsLog.log = log_then_die
    else:  # in_checkpoint: die inside the atomic folder, shards written, meta not yet
        from roost.train import checkpoint
        write_meta = checkpoint._write_meta
        def die_while_writing(folder, meta):
            if meta["step"] == int(at):
                os.kill(os.getpid(), signal.SIGKILL)
            write_meta(folder, meta)
        checkpoint._write_meta = die_while_writing
from roost.cli import main
sys.exit(main(sys.argv[1:]))
"""

ARGS = [
    "--depth",
    "1",
    "--seq-len",
    "32",
    "--max-seq-len",
    "64",
    "--device-batch",
    "4",
    "--batch-tokens",
    "256",
    "--steps",
    "12",
    "--ckpt-every",
    "4",
    "--eval-every",
    "5",
    "--eval-tokens",
    "256",
    "--warmup",
    "3",
    "--keep",
    "2",
]


def run_killable(
    launcher: Path, command: list[str], ws: Path, *extra: str, kill: str | None = None
) -> subprocess.CompletedProcess:
    """``roost COMMAND --workspace WS ...`` through the launcher, which SIGKILLs itself where ``kill`` says."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    if kill:
        env["KILL"] = kill
    cmd = [sys.executable, str(launcher), command[0], "--workspace", str(ws), *command[1:], *extra]
    return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)


def logged_losses(ws: Path, run: str) -> list[tuple[int, float]]:
    lines = (ws / "runs" / run / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r.get("loss", r.get("val_loss"))) for r in map(json.loads, lines)]


def two_copies(tmp_path: Path, make_workspace) -> tuple[Path, Path, Path, Path]:
    """``(launcher, template, straight, interrupted)``: the launcher script and two copies of one workspace."""
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    template = make_workspace(tmp_path / "template").root
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    shutil.copytree(template, straight)
    shutil.copytree(template, interrupted)
    return launcher, template, straight, interrupted


def _train(launcher: Path, ws: Path, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess:
    return run_killable(launcher, ["train", *ARGS], ws, *extra, kill=kill)


def _losses(ws: Path) -> list[tuple[int, float]]:
    return logged_losses(ws, "pretrain")


def test_sigkill_and_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    launcher, _, straight, interrupted = two_copies(tmp_path, make_token_workspace)

    done = _train(launcher, straight)
    assert done.returncode == 0, done.stderr

    killed = _train(launcher, interrupted, kill="after_step:6")
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint.latest_checkpoint(interrupted / "checkpoints").name == "step-000004"

    # resume, and die again while writing the step-8 checkpoint: step 4 must stay the one to resume from
    killed = _train(launcher, interrupted, "--resume", kill="in_checkpoint:8")
    assert killed.returncode == -signal.SIGKILL
    ckpts = interrupted / "checkpoints"
    assert checkpoint.latest_checkpoint(ckpts).name == "step-000004"
    assert not (ckpts / "step-000008").exists() and list(ckpts.glob(".step-000008.*.tmp"))

    resumed = _train(launcher, interrupted, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not list(ckpts.glob(".step-*"))  # leftovers of the killed write are cleaned up

    a = load_file(straight / "model/model.safetensors")
    b = load_file(interrupted / "model/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the metrics log reads as one run: same steps, same losses, nothing twice
    assert _losses(interrupted) == _losses(straight)
    assert [p.name for p in checkpoint.list_checkpoints(ckpts)] == ["step-000008", "step-000012"]
