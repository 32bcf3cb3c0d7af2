"""Training throughput: roost's GPT against Hugging Face ``LlamaForCausalLM`` of the same shape, side by side.

    .venv/bin/python bench/train_throughput.py --depth 4 --seq-len 256 --batch 8 --threads 1 --dtype bf16

Both models are built from one ``GPTConfig`` (HF's through roost.export's
``hf_config``, so shapes, RoPE and norms match), start from the same weights,
and run the same step on the same batches: forward and loss, backward,
grad-norm clipping, fused AdamW over all parameters. roost's loss is its
training loss (the fused lm_head + cross-entropy of roost/loss.py); HF's is
fp32 cross-entropy on its logits, as its ``ForCausalLMLoss`` computes it.
``--dtype bf16`` runs both under CPU bf16 autocast (fp32 master weights), what
``roost train --dtype auto`` does on CPUs with AVX512-BF16; ``fp32`` runs both
without. ``--malloc tuned`` (the default) first tunes glibc's malloc as
``roost train`` does on CPU (roost/train/allocator.py), for both models: it is
one process, and HF's step gains the most from it, since its loss allocates
the biggest tensors; ``--malloc default`` leaves glibc as it is. Timing
alternates between the two in rounds so they share the machine's noise; the
table gives the median tokens/s of each and the ratio. ``--loss-only`` times
the lm_head + loss alone instead: roost's fused loss against ``F.linear`` then
``F.cross_entropy`` on float logits, forward and backward. Last, each side's
peak memory over one step is measured in a fresh process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.nn.functional as F

from roost.train.allocator import keep_freed_memory


def build(args):
    from transformers import LlamaConfig, LlamaForCausalLM

    from roost.export import hf_config, hf_state_dict
    from roost.model import GPT, GPTConfig

    cfg = GPTConfig.from_depth(args.depth, vocab_size=args.vocab, max_seq_len=args.seq_len)
    torch.manual_seed(0)
    roost = GPT(cfg)
    hf = LlamaForCausalLM(LlamaConfig(**hf_config(cfg)))
    hf.config._attn_implementation = args.hf_attn
    missing, unexpected = hf.load_state_dict(hf_state_dict(roost), strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return cfg, roost, hf


def make_step(model, loss_fn, args):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def step(x, y):
        with autocast:
            loss = loss_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def hf_loss(hf, x, y):
    """How HF's own loss (``ForCausalLMLoss``) computes it: fp32 cross-entropy on the logits, mean over tokens."""
    logits = hf(input_ids=x, use_cache=False).logits
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))


def loss_steps(cfg, args) -> dict:
    """The lm_head + loss alone, forward and backward: roost's fused loss against ``F.linear`` + fp32 cross-entropy."""
    from roost.loss import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.batch * args.seq_len, cfg.n_embd, generator=g).requires_grad_()
    weight = (0.02 * torch.randn(cfg.vocab_size, cfg.n_embd, generator=g)).requires_grad_()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def make(loss_fn):
        def step(x, y):
            with autocast:
                loss = loss_fn(hidden, weight, y.reshape(-1))
            loss.backward()
            hidden.grad = weight.grad = None
            return loss.item()

        return step

    def plain(h, w, y):
        return F.cross_entropy(F.linear(h, w).float(), y)

    return {"roost fused lm_head + loss": make(linear_cross_entropy), "F.linear + F.cross_entropy": make(plain)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--steps", type=int, default=4, help="timed steps per round and model")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: both under CPU bf16 autocast")
    p.add_argument("--hf-attn", default="sdpa", help="HF attention implementation (sdpa or eager)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile: roost's blocks, as roost train --compile does; HF's whole forward and loss",
    )
    p.add_argument(
        "--malloc",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned: glibc malloc keeps freed memory, as roost train sets it on CPU",
    )
    p.add_argument(
        "--loss-only",
        action="store_true",
        help="time the lm_head + loss alone (forward and backward) instead of the whole step",
    )
    p.add_argument("--peak-of", type=int, help=argparse.SUPPRESS)  # internal: see peak_memory_mib
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.malloc == "tuned" and not keep_freed_memory():
        sys.exit("--malloc tuned: could not tune this platform's malloc (not glibc, or MALLOC_* / LD_PRELOAD set)")

    from tqdm import tqdm

    from roost.model import describe

    cfg, roost, hf = build(args)

    def roost_fn(x, y):
        return roost(x, y)[1]  # roost's training loss (roost/loss.py)

    def hf_fn(x, y):
        return hf_loss(hf, x, y)

    if args.compile:
        for block in roost.layers:  # as roost train --compile does (roost/train/run.py)
            block.compile()
        hf_fn = torch.compile(hf_fn)
    if args.loss_only:
        steps = loss_steps(cfg, args)
    else:
        steps = {"roost GPT": make_step(roost, roost_fn, args), "HF LlamaForCausalLM": make_step(hf, hf_fn, args)}
    ours, theirs = steps
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, args.vocab, (args.steps, args.batch, args.seq_len + 1), generator=g)
    batches = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]
    if args.peak_of is not None:
        before = rss_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from here (Linux)
        list(steps.values())[args.peak_of](*batches[0])
        print((rss_kib("VmHWM") - before) / 1024)
        return
    # one untimed step each (allocator warm-up, compilation) and a check that they compute the same loss
    first = [step(*batches[0]) for step in steps.values()]
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in tqdm(range(args.rounds), desc="rounds"):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for x, y in batches:
                step(x, y)
            times[name].append(time.perf_counter() - t0)

    tokens = args.steps * args.batch * args.seq_len
    rate = {name: tokens / statistics.median(ts) for name, ts in times.items()}
    print(f"\n{describe(cfg)}")
    print(
        f"batch {args.batch} x {args.seq_len} tokens, {args.dtype}, fused AdamW, {args.threads} thread(s), "
        f"HF attention: {args.hf_attn}, malloc {args.malloc}{', torch.compile' if args.compile else ''}; "
        f"first-step loss {first[0]:.4f} / {first[1]:.4f}\n"
    )
    print(f"| {'part' if args.loss_only else 'model'} | tokens/s (median of {args.rounds} rounds) | step ms |")
    print("|---|---:|---:|")
    for name, r in rate.items():
        print(f"| {name} | {r:,.0f} | {1000 * args.batch * args.seq_len / r:.1f} |")
    print(f"\n{ours} / {theirs} = {rate[ours] / rate[theirs]:.2f}x")
    if args.compile:  # a fresh process's first step would be the compilation's memory
        return
    print("\n| peak memory of one step, fresh process | MiB |\n|---|---:|")
    for i, name in enumerate(steps):
        print(f"| {name} | {peak_memory_mib(i):.0f} |")


def rss_kib(field: str) -> int:
    """VmRSS (resident now) or VmHWM (its high-water mark) of this process, in KiB."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1])


def peak_memory_mib(index: int) -> float:
    """How far resident memory rises above where it was during one step of the ``index``-th side (Linux).

    Measured in a fresh process, where the step's memory has not been allocated before and kept by malloc.
    """
    out = subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], "--peak-of", str(index)], check=True, capture_output=True, text=True
    ).stdout
    return float(out.split()[-1])


if __name__ == "__main__":
    main()
