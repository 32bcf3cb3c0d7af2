"""Learning at a fixed CPU time budget: AdamW against Muon (or bf16 against fp32, or roost against GPT-2) on tweets.

    .venv/bin/python bench/learning.py --minutes 20 --depth 2
    .venv/bin/python bench/learning.py --minutes 15 --runs muon,gpt2 --depth 4 --seq-len 256 \
        --device-batch 16 --vocab-size 8192   # roost train's defaults against nanoGPT's recipe

Data: every TweetEval task's ``train_text.txt`` for training and ``val_text.txt``
for validation (../shared/data/tweeteval; val tweets that also appear in
train are dropped). The path is direct, not ``roost ingest``: the corpus stage
picks validation posts by a hash of the post id, and this benchmark needs
TweetEval's own train/val split. It trains roost's BPE tokenizer
(``roost.tokenizer.train_bpe``) on the train tweets and writes the token shards
with the tokens stage's own writer, then runs each of ``--runs`` (a kind of
``KINDS``, optionally ``:DTYPE``) for ``--minutes``, all at the same time with
one thread each, and prints the validation loss and bits per byte each
reached, with the curves (validation bits per byte and training loss against
training seconds) in one plot.

The budget is each process's CPU time by default (``--clock cpu``, ``roost
train --clock cpu``): on this shared 2-core machine the wall clock gives a run
whatever CPU other work leaves it, so equal wall minutes are not equal work.
``--clock wall`` reproduces the runs recorded before the option existed.

The run ``gpt2`` is not ``roost train`` but nanoGPT's GPT-2 recipe (bench/nanogpt.py: model,
AdamW, clipping; bench/nanogpt_train.py: its cosine, fitted to the time budget, and the loop) on
the same shards, in the same order, at the same depth, batch and sequence length, for the same
training seconds, evaluated by the same code: the peer roost's choices are measured against.
The other kinds change one of roost's choices at a time (see ``KINDS``): ``adamw`` (no Muon),
``muon-cosine`` (cosine instead of WSD) and ``gpt2-roost-arch`` (the recipe on roost's model).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paths import TWEETEVAL  # noqa: E402  (bench/paths.py: ../shared beside the repository)

DATA = TWEETEVAL
RECIPE = "gpt2"  # --runs name of nanoGPT's GPT-2 recipe (bench/nanogpt_train.py)


def read_tweets(data: Path) -> tuple[list[str], list[str]]:
    def lines(name: str) -> list[str]:
        out = []
        for f in sorted(data.rglob(name)):
            out += [t.strip() for t in f.read_text(encoding="utf-8").splitlines() if t.strip()]
        return out

    train = lines("train_text.txt")
    seen = set(train)
    val = [t for t in dict.fromkeys(lines("val_text.txt")) if t not in seen]
    return train, val


def prepare(ws_root: Path, data: Path, vocab_size: int) -> None:
    """Tokenizer and token shards in ``ws_root``, in the workspace format ``roost train`` reads."""
    import numpy as np

    from roost.tokenizer import RoostTokenizer, TokenizerConfig, bytes_per_token, train_bpe
    from roost.tokens import _ShardWriter, token_dtype
    from roost.workspace import Workspace

    ws = Workspace(ws_root)
    if ws.read_manifest("tokens") is not None:
        return
    train, val = read_tweets(data)
    print(f"TweetEval: {len(train):,} train tweets, {len(val):,} val tweets (not in train)")
    hf = train_bpe(train, TokenizerConfig(vocab_size=vocab_size), length=len(train))
    ws.tokenizer.mkdir(parents=True, exist_ok=True)
    hf.save(str(ws.tokenizer / "tokenizer.json"))
    tok = RoostTokenizer(hf)
    n_bytes, n_tokens = bytes_per_token(tok, val)
    ws.write_manifest(
        "tokenizer",
        {"tweeteval": str(data)},
        {"train_posts": len(train)},
        vocab_size=tok.vocab_size,
        bytes_per_token=n_bytes / n_tokens,
        special_tokens=tok.special_ids,
    )
    ws.tokens.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tok.vocab_size)
    writers = {}
    for split, texts in (("train", train), ("val", val)):
        w = writers[split] = _ShardWriter(ws.tokens, split, dtype, 2**27)
        w.write([np.asarray([tok.bos_id, *ids], dtype=dtype) for ids in tok.encode_batch(texts)])
        w.close()
    ws.write_manifest(
        "tokens",
        {"tokenizer": ws.stage_hash("tokenizer")},
        {f"{s}_{k}": getattr(w, f"num_{k}") for s, w in writers.items() for k in ("tokens", "docs")},
        dtype=dtype.name,
        vocab_size=tok.vocab_size,
        bos_id=tok.bos_id,
        shards={s: w.names for s, w in writers.items()},
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="training time per run (default: 20)")
    p.add_argument(
        "--runs",
        default="adamw,muon",
        help=f"runs side by side, each KIND or KIND:DTYPE (e.g. muon:bfloat16,muon:float32); kinds: {', '.join(KINDS)}",
    )
    p.add_argument(
        "--clock",
        default="cpu",
        choices=("cpu", "wall"),
        help="what --minutes counts in every run: each process's CPU time (default; fair on a shared machine) or "
        "elapsed time (as the runs recorded before this option were)",
    )
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--device-batch", type=int, default=8)
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--extra", default="", help="more `roost train` flags, e.g. '--schedule cosine'")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/roost-bench-learning"))
    p.add_argument("--plot", type=Path, default=ROOT / "bench" / "learning_curves.png")
    p.add_argument(
        "--baseline",
        default=RECIPE,
        help=f"the run the others are compared with, as named in the table (default: {RECIPE}; e.g. gpt2-bfloat16)",
    )
    p.add_argument("--report-only", action="store_true", help="report the runs already in --workdir, train nothing")
    args = p.parse_args()

    if not args.report_only:
        train_all(args)
    results = {}
    for name in map(run_name, args.runs.split(",")):
        metrics = args.workdir / name / "runs" / name / "metrics.jsonl"
        results[name] = [json.loads(line) for line in metrics.read_text().splitlines()]
    report(results, args)


@dataclass(frozen=True)
class RunKind:
    """One run of the comparison: which trainer, with which flags beyond the shared shape and budget."""

    trainer: str  # "roost" (roost train) or "recipe" (bench/nanogpt_train.py)
    flags: tuple[str, ...] = ()


# The ablation between roost train's defaults (muon) and nanoGPT's recipe (gpt2), one choice changed per run:
# muon vs adamw isolates Muon, muon vs muon-cosine the schedule, gpt2 vs gpt2-roost-arch the architecture.
KINDS = {
    "muon": RunKind("roost", ("--optimizer", "muon")),  # roost train's defaults: Muon, WSD, roost's GPT
    "adamw": RunKind("roost", ("--optimizer", "adamw")),  # roost's AdamW (its per-group rates) instead of Muon
    "muon-cosine": RunKind("roost", ("--optimizer", "muon", "--schedule", "cosine")),  # cosine instead of WSD
    RECIPE: RunKind("recipe", ("--arch", "gpt2")),  # nanoGPT's GPT-2 recipe
    "gpt2-roost-arch": RunKind("recipe", ("--arch", "roost")),  # the recipe's training on roost's architecture
}


def run_name(spec: str) -> str:
    """A run's folder and label: ``muon:bfloat16`` -> ``muon-bfloat16``."""
    return spec.replace(":", "-")


def run_command(spec: str, ws: Path, args) -> list[str]:
    """The command of one ``--runs`` entry, ``KIND`` or ``KIND:DTYPE``."""
    kind_name, _, dtype = spec.partition(":")
    if kind_name not in KINDS:
        raise SystemExit(f"--runs: unknown run {kind_name!r}; use one of {', '.join(KINDS)}")
    kind, name = KINDS[kind_name], run_name(spec)
    where = ("--workspace", str(ws), "--run", name, "--minutes", str(args.minutes), "--clock", args.clock)
    if kind.trainer == "recipe":
        recipe = [sys.executable, str(ROOT / "bench" / "nanogpt_train.py"), *where, *shape_flags(args), *kind.flags]
        return [*recipe, *(["--dtype", dtype] if dtype else [])]
    return [
        *(sys.executable, "-m", "roost", "train", *where, *shape_flags(args), "--max-seq-len", str(args.seq_len)),
        *kind.flags,
        *("--device", "cpu", "--ckpt-every", "1000000"),
        *(["--dtype", dtype] if dtype else []),
        *args.extra.split(),
    ]


def train_all(args) -> None:
    base = args.workdir / "data"
    prepare(base, args.data, args.vocab_size)
    procs = {}
    for spec in args.runs.split(","):
        name = run_name(spec)
        ws = args.workdir / name
        cmd = run_command(spec, ws, args)
        shutil.rmtree(ws, ignore_errors=True)
        shutil.copytree(base, ws)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        log = open(args.workdir / f"{name}.log", "w")
        print("$", " ".join(cmd))
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"{name} run failed (exit {proc.returncode}); see {args.workdir / f'{name}.log'}")
        log.close()


def shape_flags(args) -> list[str]:
    """The flags both trainers take alike: model depth, batch shape, evaluation interval."""
    return [
        *("--depth", str(args.depth), "--seq-len", str(args.seq_len), "--device-batch", str(args.device_batch)),
        *("--eval-every", str(args.eval_every)),
    ]


def final_fp32_val(ws_root: Path, args) -> dict | None:
    """The exported model's validation loss and bits per byte in fp32 over the whole val split, so bf16 and fp32 runs
    are judged alike; None for a run stopped before its end (no final model).

    The recipe's run exports no roost model: its trainer measured the same (roost's Evaluator, whole split, fp32).
    """
    recipe = ws_root / "runs" / ws_root.name / "final_val.json"
    if recipe.is_file():
        return json.loads(recipe.read_text())
    if not (ws_root / "model").is_dir():
        return None
    from roost.eval.lm import validation_loss
    from roost.tokens import TokenShards
    from roost.workspace import Workspace

    ws = Workspace(ws_root)
    every_token = TokenShards(ws.tokens, "val").num_tokens
    return validation_loss(ws, max_tokens=every_token, seq_len=args.seq_len, batch_size=args.device_batch)


def summary(records: list[dict], whole: dict | None) -> dict[str, float]:
    """A run's figures: steps and training seconds, last and best validation on the slice, the whole split (NaN
    for an unfinished run)."""
    whole = whole or {"val_loss": float("nan")}
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    return {
        "steps": train[-1]["step"],
        "seconds": train[-1]["seconds"],
        "val_loss": val[-1]["val_loss"],
        "val_bpb": val[-1].get("val_bpb", float("nan")),
        "best_val_loss": min(r["val_loss"] for r in val),
        "whole_loss": whole["val_loss"],
        "whole_bpb": whole.get("val_bpb", float("nan")),
    }


def at_equal_seconds(results: dict[str, list[dict]], baseline: str) -> None:
    """Every run's validation bits per byte on the slice at the training seconds all of them reached, interpolated
    linearly between evaluations: the comparison that holds when some runs were stopped before their budget's end."""
    import numpy as np

    curves = {}
    for name, records in results.items():
        secs = {r["step"]: r["seconds"] for r in records if "loss" in r}
        val = [(secs.get(r["step"], 0.0), r["val_bpb"]) for r in records if "val_bpb" in r]
        curves[name] = np.array(val).T
    reached = min(c[0][-1] for c in curves.values())
    print(f"\nvalidation bits/byte (slice) at {reached:.0f} training seconds, the most every run reached:\n")
    print(f"| run | bits/byte | vs {baseline} |\n|---|---:|---:|")
    at = {name: float(np.interp(reached, *c)) for name, c in curves.items()}
    for name, bpb in at.items():
        vs = f"{bpb / at[baseline] - 1:+.1%}" if baseline in at and name != baseline else ""
        print(f"| {name} | {bpb:.4f} | {vs} |")


def report(results: dict[str, list[dict]], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens_per_step = args.device_batch * args.seq_len
    print(
        f"\ndepth {args.depth}, seq_len {args.seq_len}, {tokens_per_step} tokens/step, vocab {args.vocab_size}, "
        f"{args.minutes:g} min ({args.clock} clock) each, 1 thread each, all at once\n"
    )
    rows = {name: summary(records, final_fp32_val(args.workdir / name, args)) for name, records in results.items()}
    base = rows.get(args.baseline)

    def versus(name: str, key: str) -> str:
        """This run's bits per byte against the baseline's at both their ends: negative is fewer (better)."""
        finished = all(not math.isnan(r["whole_loss"]) for r in (rows[name], base or {"whole_loss": math.nan}))
        return f"{rows[name][key] / base[key] - 1:+.1%}" if finished and name != args.baseline else ""

    print(
        f"| run | steps | train tokens | tokens/s | final val loss | final val bits/byte | vs {args.baseline} | "
        f"best val loss | final model, fp32 val loss (whole split) | bits/byte (whole split) | vs {args.baseline} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    fig, (ax_bpb, ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, records in results.items():
        r = rows[name]
        print(
            f"| {name}{'' if math.isfinite(r['whole_loss']) else ' (unfinished)'} | {r['steps']:,} | {r['steps'] * tokens_per_step:,} | "
            f"{r['steps'] * tokens_per_step / r['seconds']:,.0f} | {r['val_loss']:.4f} | {r['val_bpb']:.4f} | "
            f"{versus(name, 'val_bpb')} | {r['best_val_loss']:.4f} | {r['whole_loss']:.4f} | {r['whole_bpb']:.4f} | "
            f"{versus(name, 'whole_bpb')} |"
        )
        train = [r for r in records if "loss" in r]
        secs = {r["step"]: r["seconds"] for r in train}
        ax.plot([r["seconds"] for r in train], [r["loss"] for r in train], linewidth=0.6, label=f"{name} train")
        bpb = [r for r in records if "val_bpb" in r]
        ax_bpb.plot([secs.get(r["step"], 0) for r in bpb], [r["val_bpb"] for r in bpb], "o-", ms=3, label=name)
    for axis, label in ((ax_bpb, "validation bits per byte"), (ax, "training loss (nats/token)")):
        axis.set_xlabel(f"training seconds ({'CPU time' if args.clock == 'cpu' else 'wall clock'}, 1 thread)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    ax.set_ylim(top=min(8.5, ax.get_ylim()[1]))
    at_equal_seconds(results, args.baseline)
    fig.suptitle(f"TweetEval, depth {args.depth}: {', '.join(results)} at equal CPU time")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\ncurves: {args.plot}")


if __name__ == "__main__":
    main()
