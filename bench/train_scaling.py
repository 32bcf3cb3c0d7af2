"""Data-parallel scaling of `roost train`: tokens/s with 1 and N processes, DDP and FSDP2, the same global batch.

    .venv/bin/python bench/train_scaling.py --nproc 2 --depth 4 --steps 30

Each configuration is a real run of ``roost train`` (one process, or
``roost train --nproc N`` which launches torchrun) on TweetEval token shards
(../shared/data/tweeteval, prepared as bench/learning.py does), with the
global batch fixed by ``--batch-tokens``: one process accumulates N
micro-batches where N processes take one each. Throughput is the median of
each run's per-step ``tokens_per_s`` (metrics.jsonl, after ``--skip`` warm-up
steps); scaling efficiency is N-process tokens/s over N x the 1-process
tokens/s. Every process gets one thread; the table shows the machine's load
average around each run, since on a shared machine other work competes for
the same cores.

On GPUs (no GPU was lent when this was written; the command is ready):

    .venv/bin/python bench/train_scaling.py --device cuda --nproc 8 --depth 12 --seq-len 1024 \\
        --device-batch 16 --steps 50 --vocab-size 8192
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# bench/learning.py: TweetEval -> tokenizer + token shards
from learning import DATA, prepare  # noqa: E402  (bench/ is not a package: found through sys.path above)


def run(ws: Path, nproc: int, parallel: str, args) -> tuple[dict, tuple[float, float]]:
    """One training run; its median tokens/s, per-rank tokens/s, and the load average before and after."""
    run_name = f"scale-{nproc}-{parallel}"
    launch = ["--nproc", str(nproc), "--parallel", parallel] if nproc > 1 else []
    cmd = [
        sys.executable,
        "-m",
        "roost",
        "train",
        "--workspace",
        str(ws),
        "--fresh",
        "--run",
        run_name,
        *launch,
        "--device",
        args.device,
        "--depth",
        str(args.depth),
        "--seq-len",
        str(args.seq_len),
        "--max-seq-len",
        str(args.seq_len),
        "--device-batch",
        str(args.device_batch),
        "--batch-tokens",
        str(args.device_batch * args.seq_len * args.nproc),
        "--steps",
        str(args.steps),
        "--eval-every",
        "1000000",
        "--eval-tokens",
        str(args.device_batch * args.seq_len * args.nproc),
        "--ckpt-every",
        "1000000",
        "--optimizer",
        args.optimizer,
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    print("$", " ".join(cmd[1:]), flush=True)
    load_before = os.getloadavg()[0]
    done = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    load_after = os.getloadavg()[0]
    if done.returncode != 0:
        raise SystemExit(f"{run_name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (ws / "runs" / run_name / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r][args.skip :]
    if not steps:
        raise SystemExit(f"{run_name}: no steps after --skip {args.skip}; raise --steps")
    ranks = list(zip(*(r["rank_tokens_per_s"] for r in steps)))
    result = {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steps),
        "rank_tokens_per_s": [statistics.median(r) for r in ranks],
        "slowest_rank": statistics.mode(r["slowest_rank"] for r in steps),
        "loss": steps[-1]["loss"],
    }
    return result, (load_before, load_after)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2, help="processes of the data-parallel runs (default: 2)")
    p.add_argument("--parallel", default="ddp,fsdp")
    p.add_argument("--device", default="cpu")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--device-batch", type=int, default=8, help="sequences per micro-batch (default: 8)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the median (default: 3)")
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--threads", type=int, default=1, help="threads per process (default: 1)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/roost-bench-scaling"))
    args = p.parse_args()

    ws = args.workdir / "ws"
    prepare(ws, args.data, args.vocab_size)
    shutil.rmtree(ws / "checkpoints", ignore_errors=True)
    configs = [(1, "none")] + [(args.nproc, par) for par in args.parallel.split(",")]
    t0 = time.time()
    results = {cfg: run(ws, cfg[0], cfg[1], args) for cfg in configs}

    from roost.model import GPTConfig, describe

    base = results[(1, "none")][0]["tokens_per_s"]
    global_batch = args.device_batch * args.seq_len * args.nproc
    print(f"\n{describe(GPTConfig.from_depth(args.depth, vocab_size=args.vocab_size, max_seq_len=args.seq_len))}")
    print(
        f"global batch {global_batch:,} tokens ({args.device_batch} x {args.seq_len} x {args.nproc}), "
        f"{args.optimizer}, {args.device}, {args.threads} thread(s) per process, {args.steps} steps "
        f"(median after {args.skip}), {os.cpu_count()} CPU cores, {time.time() - t0:.0f} s in all\n"
    )
    print(
        "| processes | parallel | tokens/s | per-rank tokens/s | slowest rank | efficiency | final loss | load avg before -> after |"
    )
    print("|---:|---|---:|---|---:|---:|---:|---|")
    for (n, par), (r, (lb, la)) in results.items():
        eff = r["tokens_per_s"] / (n * base)
        ranks = " / ".join(f"{v:,.0f}" for v in r["rank_tokens_per_s"])
        print(
            f"| {n} | {par if n > 1 else '-'} | {r['tokens_per_s']:,.0f} | {ranks} | {r['slowest_rank']} | "
            f"{eff:.2f} | {r['loss']:.4f} | {lb:.1f} -> {la:.1f} |"
        )


if __name__ == "__main__":
    main()
