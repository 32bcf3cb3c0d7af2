"""The whole ``roost train`` loop against nanoGPT's bare step, side by side in one process, rounds alternating.

    .venv/bin/python bench/loop_throughput.py --rounds 3 --steps 6 --nano-steps 2 --bf16-steps 1 --threads 1|2

roost's side is ``roost train`` itself (``roost.train.pretrain.plan`` and
``roost.train.run.run``: the packed loader, Muon + AdamW, the schedule, the
evaluation every ``--eval-every`` steps, the checkpoint every ``--ckpt-every``,
metrics.jsonl, TensorBoard events if installed, the progress bar) on TweetEval
token shards (vocab 8192, bench/learning.py's preparation). Its loader closes a
round every ``--steps`` batches: a round runs from one round's first batch
request to the next one's, so it holds everything the loop does between its
steps. Between rounds, in the same thread, nanoGPT's bare step is timed
(bench/nanogpt.py: forward and loss, backward, clip, fused AdamW; no data
loading, evaluation, checkpoints or logging) on fixed batches, in fp32 and
under bf16 autocast, with ``torch.use_deterministic_algorithms`` off as
nanoGPT runs (``roost train`` turns it on for itself). Everything runs in the main
thread, as ``roost train`` does: from a worker thread, glibc (most likely) serves the big
tensors from a thread arena that cannot hold them, so they come from fresh
``mmap`` pages every step. This bench once ran the loop in a worker thread and
measured 7,353-7,541 tokens/s for it, against 10,756 for ``roost train`` itself
at the same shape (2 threads, 2-core Xeon with AMX, quiet). Same shape on both
sides: 4 layers, width 256, 4 heads, sequence 256, batch 16. Untimed: the
loop's set-up, its first ``--warmup`` steps, and its final export; nanoGPT's
first step of each kind. The rounds must end before the first evaluation or
checkpoint after step 0 (at the defaults, every 100 and 500 steps): the loop's
own evaluations (step 0 and the end) and checkpoint (the end) are timed where
they run, and the table's last roost row charges them at ``--eval-every`` /
``--ckpt-every`` (the last evaluation: under ``--compile`` the first one also
compiles the blocks for inference, once a run). ``--nano-compile`` adds
nanoGPT's fp32 step with its model under ``torch.compile``, as nanoGPT's
train.py runs by default.
``--optimizer-only`` times one optimizer step of Muon on the depth-4 matrices
instead: torch.optim.Muon (bf16) against roost's (roost/train/muon.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from learning import DATA, prepare  # noqa: E402
from nanogpt import NanoConfig, NanoGPT, bare_step  # noqa: E402

SHAPE = dict(depth=4, seq_len=256, device_batch=16)  # width 64 x depth = 256, 4 heads of 64


class RoundsLoader:
    """The loop's loader: after ``warmup`` batches, a round closes every ``steps`` batches, and ``between(i)`` runs
    before round ``i`` (nanoGPT's timed steps) in the loop's own thread."""

    def __init__(self, loader, warmup: int, steps: int, rounds: int, between: Callable[[int], None]):
        self.loader, self.warmup, self.steps, self.rounds, self.between = loader, warmup, steps, rounds, between
        self.served, self.seconds, self.round_start = 0, [], None
        self.warmup_s, self.start = 0.0, time.perf_counter()

    def next_batch(self):
        k = self.served - self.warmup
        if k >= 0 and k % self.steps == 0 and len(self.seconds) < self.rounds:
            now = time.perf_counter()
            if self.round_start is None:
                self.warmup_s = now - self.start  # with --compile, the compilation happens here
            else:
                self.seconds.append(now - self.round_start)
            if len(self.seconds) < self.rounds:
                self.between(len(self.seconds))
            self.round_start = time.perf_counter()
        self.served += 1
        return self.loader.next_batch()

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.loader.load_state_dict(d)


def timed(cls_or_module, name: str, seconds: list[float]) -> None:
    """Make ``cls_or_module.name`` append each call's seconds to ``seconds``."""
    inner = getattr(cls_or_module, name)

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            seconds.append(time.perf_counter() - t0)

    setattr(cls_or_module, name, wrapper)


def run_loop(ws_root: Path, args, between: Callable[[int], None]) -> tuple[RoundsLoader, dict]:
    """``roost train`` to the end, its loader closing rounds; its loader and its timed evaluations, checkpoints
    and result."""
    from roost.train import checkpoint, pretrain
    from roost.train.config import TrainConfig
    from roost.train.evaluate import Evaluator
    from roost.train.run import run, session
    from roost.workspace import Workspace

    ws = Workspace(ws_root)
    cfg = TrainConfig(
        **SHAPE,
        max_seq_len=256,
        steps=args.warmup + args.rounds * args.steps + 1,
        eval_every=args.eval_every,  # no evaluation or checkpoint but at the start and the end: see main()
        ckpt_every=args.ckpt_every,
        device="cpu",
        dtype=args.dtype,
        compile=args.compile,
    )
    out = {"eval_s": [], "ckpt_s": []}
    timed(Evaluator, "__call__", out["eval_s"])
    timed(checkpoint, "save", out["ckpt_s"])
    with session("cpu") as info:
        plan = pretrain.plan(ws, cfg, info, resume=False, fresh=True)
        plan.loader = rounds = RoundsLoader(plan.loader, args.warmup, args.steps, args.rounds, between)
        out["result"] = run(ws, plan, info)
    return rounds, out


def loop_against_nanogpt(args) -> None:
    base, ws_root = args.workdir / "data", args.workdir / "run"
    prepare(base, args.data, 8192)
    shutil.rmtree(ws_root, ignore_errors=True)
    shutil.copytree(base, ws_root)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    torch.manual_seed(0)
    nano = NanoGPT(NanoConfig())
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 8192, (args.nano_steps, 16, 257), generator=g)
    batches = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]
    dtypes = {"fp32": torch.float32, **({"bf16 autocast": torch.bfloat16} if args.bf16_steps else {})}
    steps = {name: bare_step(nano, dtype) for name, dtype in dtypes.items()}
    counts = {"fp32": args.nano_steps, "bf16 autocast": args.bf16_steps, "fp32, torch.compile": args.nano_steps}
    if args.nano_compile:  # nanoGPT's train.py compiles its model by default: its own copy, compiled whole
        compiled = NanoGPT(NanoConfig())
        compiled.load_state_dict(nano.state_dict())
        steps["fp32, torch.compile"] = bare_step(torch.compile(compiled), torch.float32)

    def nano_seconds(name: str, n: int) -> float:
        deterministic = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(False)  # as nanoGPT runs; roost train turns it on for itself
        try:
            t0 = time.perf_counter()
            for x, y in batches[:n]:
                steps[name](x, y)
            return time.perf_counter() - t0
        finally:
            torch.use_deterministic_algorithms(deterministic)

    first_s: dict[str, float] = {}
    tokens_per_step = 16 * 256
    nano_rates: dict[str, list[float]] = {f"nanoGPT bare step, {n}": [] for n in steps}

    def between(i: int) -> None:
        if i == 0:  # untimed: allocator warm-up, compilation
            first_s.update({name: nano_seconds(name, 1) for name in steps})
        for name in steps:
            nano_rates[f"nanoGPT bare step, {name}"].append(
                counts[name] * tokens_per_step / nano_seconds(name, counts[name])
            )

    rounds, out = run_loop(ws_root, args, between)
    warmup_s = rounds.warmup_s
    loop_rates = [args.steps * tokens_per_step / s for s in rounds.seconds]
    rates = {"roost train (whole loop)": loop_rates, **nano_rates}
    load_after = os.getloadavg()

    print(
        f"\n4 layers, width 256, 4 heads, vocab 8192, batch 16 x 256; {args.threads} thread(s); roost --dtype "
        f"{args.dtype}{', --compile' if args.compile else ''}, eval every {args.eval_every} steps, checkpoint every "
        f"{args.ckpt_every}; {args.rounds} rounds of {args.steps} loop steps / {args.nano_steps} nanoGPT fp32 steps"
        + (f" / {args.bf16_steps} bf16 steps" if args.bf16_steps else "")
        + f"; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print("| side | tokens/s, median | per round |\n|---|---:|---|")
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"| {name} | {medians[name]:,.0f} | {', '.join(f'{x:,.0f}' for x in r)} |")
    steady = medians["roost train (whole loop)"]
    # the last evaluation is the steady one: under --compile the first also compiles the blocks for no_grad, once a run
    eval_s, ckpt_s = out["eval_s"][-1], statistics.median(out["ckpt_s"])
    step_s = tokens_per_step / steady
    ours = tokens_per_step / (step_s + eval_s / args.eval_every + ckpt_s / args.ckpt_every)
    print(
        f"| roost train, one evaluation (the last of {len(out['eval_s'])} timed) every {args.eval_every} steps and "
        f"one checkpoint ({len(out['ckpt_s'])} timed) every {args.ckpt_every} charged | **{ours:,.0f}** | "
        f"evaluation {eval_s:.1f} s (the first {out['eval_s'][0]:.1f} s), checkpoint {ckpt_s:.2f} s |"
    )
    for name in steps:
        print(f"\nroost train / nanoGPT {name} = {ours / medians[f'nanoGPT bare step, {name}']:.2f}x")
    result = out["result"]
    print(f"\nroost's first {args.warmup} steps (untimed above; compilation with --compile): {warmup_s:.1f} s")
    print("nanoGPT's first step (untimed above): " + ", ".join(f"{n} {s:.1f} s" for n, s in first_s.items()))
    print(f"roost run: step {result.step}, train loss {result.train_loss:.4f}, val loss {result.val_loss:.4f}")


def optimizer_only(args) -> None:
    """One Muon step on the depth-4 block matrices: torch.optim.Muon (bf16) against roost's, alternating."""
    from roost.model import GPT, GPTConfig
    from roost.train.muon import Muon
    from roost.train.optim import param_groups

    torch.set_num_threads(args.threads)
    kwargs = dict(lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True, adjust_lr_fn="original")
    model = GPT(GPTConfig.from_depth(4, vocab_size=8192, max_seq_len=256))
    matrices = param_groups(model)["matrix"]
    for p in matrices:
        p.grad = torch.randn_like(p)
    sides = {
        "torch.optim.Muon (per matrix, bf16)": torch.optim.Muon(matrices, **kwargs),
        "roost Muon, batched, bf16": Muon(matrices, ns_dtype=torch.bfloat16, **kwargs),
        "roost Muon, batched, fp32": Muon(matrices, ns_dtype=torch.float32, **kwargs),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for opt in sides.values():
        opt.step()
    for _ in range(args.rounds):
        for name, opt in sides.items():
            t0 = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - t0)
    print(f"\n{len(matrices)} matrices, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}\n")
    print("| Muon step | ms, median | per round |\n|---|---:|---|")
    for name, ts in times.items():
        print(f"| {name} | {1000 * statistics.median(ts):,.0f} | {', '.join(f'{1000 * t:,.0f}' for t in ts)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="roost train steps per round")
    p.add_argument("--nano-steps", type=int, default=4, help="nanoGPT fp32 steps per round")
    p.add_argument("--bf16-steps", type=int, default=1, help="nanoGPT bf16-autocast steps per round (0: none)")
    p.add_argument("--warmup", type=int, default=3, help="untimed roost steps before the first round")
    p.add_argument("--eval-every", type=int, default=100, help="roost train's default")
    p.add_argument("--ckpt-every", type=int, default=500, help="roost train's default")
    p.add_argument("--dtype", default="auto", help="roost train --dtype")
    p.add_argument("--compile", action="store_true", help="roost train --compile")
    p.add_argument("--nano-compile", action="store_true", help="also time nanoGPT fp32 under torch.compile")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--optimizer-only", action="store_true", help="time one Muon step, torch's against roost's")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--workdir", type=Path, default=ROOT / "tmp" / "bench-loop")
    args = p.parse_args()
    if args.warmup + args.rounds * args.steps >= min(args.eval_every, args.ckpt_every):
        p.error("the timed rounds must end before the first --eval-every / --ckpt-every step (they are charged apart)")
    if args.optimizer_only:
        optimizer_only(args)
    else:
        loop_against_nanogpt(args)


if __name__ == "__main__":
    main()
