"""The GPU run, prepared: train depth 12 and depth 20 for a fixed number of steps in bf16 on one GPU, print
tokens/s and model FLOPs utilisation, and check that a run killed mid-way resumes to the same place.

Everything goes through the ``roost`` command a user runs (sample network -> ingest -> tokenizer -> train),
so the figures are those of ``roost train`` itself: the whole loop (Muon, evaluation, checkpoints, metrics),
not a bare step. Per depth it reads ``runs/NAME/metrics.jsonl`` and reports the median tokens/s and MFU of the
steps after the first ``--skip`` (compilation and warm-up). The resume check SIGKILLs a run of the first depth
once it has logged a step past its mid-run checkpoint, resumes it with ``--resume``, and compares the resumed
run's last train loss and final val loss with the uninterrupted run's (bitwise on CPU; on GPU within
``--tolerance``, since CUDA kernels need not be deterministic).

    .venv/bin/python bench/gpu_run.py --workdir tmp/gpu                  # one GPU, the defaults below
    .venv/bin/python bench/gpu_run.py --workdir tmp/gpu-dry --device cpu --dtype float32 --depths 1 \\
        --steps 8 --seq-len 64 --device-batch 2 --posts 3000 --vocab-size 512 --no-compile --skip 2   # dry run

Target (issue 21): >= 40% MFU at depth 20 on an H100.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path


def roost(*args: str) -> None:
    cmd = [sys.executable, "-m", "roost", *args]
    print("+ roost " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prepare(ws: Path, posts: int, vocab_size: int) -> None:
    """A workspace with token shards from the built-in sample network (skipped when they exist)."""
    if (ws / "tokens" / "manifest.json").exists():
        return
    roost("sample", "-w", str(ws), "--posts", str(posts))
    roost("ingest", "-w", str(ws), str(ws / "sample" / "posts.jsonl"))
    roost("tokenizer", "-w", str(ws), "--vocab-size", str(vocab_size))


def train_args(args: argparse.Namespace, depth: int, run: str, steps: int) -> list[str]:
    out = [
        "train",
        "-w",
        str(args.workdir / "ws"),
        "--depth",
        str(depth),
        "--steps",
        str(steps),
        "--run",
        run,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--seq-len",
        str(args.seq_len),
        "--max-seq-len",
        str(max(args.seq_len, 1024)),
        "--device-batch",
        str(args.device_batch),
        "--eval-every",
        str(steps),
        "--ckpt-every",
        str(max(1, steps // 2)),
        "--eval-tokens",
        str(args.eval_tokens),
    ]
    return out + ([] if args.no_compile else ["--compile"])


def throughput(rows: list[dict], skip: int) -> tuple[float, float | None]:
    """Median tokens/s and MFU of the training steps after the first ``skip``."""
    steps = [r for r in rows if "tokens_per_s" in r and r["step"] > skip]
    mfu = [r["mfu"] for r in steps if "mfu" in r]
    return statistics.median(r["tokens_per_s"] for r in steps), (statistics.median(mfu) if mfu else None)


def last(rows: list[dict], key: str) -> float:
    return next(r[key] for r in reversed(rows) if key in r)


def resume_check(args: argparse.Namespace, depth: int, reference: list[dict]) -> dict:
    """Kill a run of ``depth`` after a step past its mid-run checkpoint, resume it, compare with ``reference``."""
    run = f"gpu-d{depth}-resume"
    run_dir = args.workdir / "ws" / "runs" / run
    cmd = [sys.executable, "-m", "roost", *train_args(args, depth, run, args.steps), "--fresh"]
    kill_after = args.steps // 2 + 1
    print(f"+ roost {' '.join(cmd[3:])}  (SIGKILL after step {kill_after})", flush=True)
    proc = subprocess.Popen(cmd)
    while proc.poll() is None and not any(r.get("step", 0) >= kill_after and "loss" in r for r in records(run_dir)):
        time.sleep(0.2)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    roost(*train_args(args, depth, run, args.steps), "--resume")
    resumed = records(run_dir)
    out = {"killed": killed, "final_step": max(r["step"] for r in resumed)}
    for key in ("loss", "val_loss"):
        a, b = last(reference, key), last(resumed, key)
        out[key] = (a, b, abs(a - b) / max(abs(a), 1e-9))
    out["ok"] = (
        killed and out["final_step"] == args.steps and all(out[k][2] <= args.tolerance for k in ("loss", "val_loss"))
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--depths", type=int, nargs="+", default=[12, 20])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--skip", type=int, default=50, help="steps left out of the medians (compilation, warm-up)")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--device-batch", type=int, default=16)
    p.add_argument("--eval-tokens", type=int, default=262_144)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--posts", type=int, default=200_000, help="sample network size for the token shards")
    p.add_argument("--vocab-size", type=int, default=32_768)
    p.add_argument("--tolerance", type=float, default=0.02, help="relative loss difference a resume may show")
    args = p.parse_args()
    if args.steps < 4 or args.skip >= args.steps:
        p.error("--steps must be >= 4 and above --skip")

    prepare(args.workdir / "ws", args.posts, args.vocab_size)
    rows = {}
    for depth in args.depths:
        roost(*train_args(args, depth, f"gpu-d{depth}", args.steps), "--fresh")
        rows[depth] = records(args.workdir / "ws" / "runs" / f"gpu-d{depth}")
    check = resume_check(args, args.depths[0], rows[args.depths[0]])

    print(f"\n{'depth':>5} {'steps':>6} {'tokens/s':>12} {'MFU':>7} {'val loss':>9}")
    for depth, r in rows.items():
        tok_s, mfu = throughput(r, args.skip)
        mfu_text = f"{mfu:.1%}" if mfu is not None else "n/a"  # MFU needs a GPU of known peak (train/metrics.py)
        print(f"{depth:>5} {max(x['step'] for x in r):>6} {tok_s:>12,.0f} {mfu_text:>7} {last(r, 'val_loss'):>9.4f}")
    print(
        f"\nresume at depth {args.depths[0]}: killed mid-run {check['killed']}, resumed to step "
        f"{check['final_step']}; last train loss {check['loss'][0]:.5f} vs {check['loss'][1]:.5f} "
        f"(rel. diff {check['loss'][2]:.1e}), val loss {check['val_loss'][0]:.5f} vs {check['val_loss'][1]:.5f} "
        f"(rel. diff {check['val_loss'][2]:.1e}): {'OK' if check['ok'] else 'FAILED'}"
    )
    sys.exit(0 if check["ok"] else 1)


if __name__ == "__main__":
    main()
