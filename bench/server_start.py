"""How long ``roost serve`` takes to start, how often it reads workspace/model, and its peak memory.

Builds a small real workspace in a scratch folder (``roost sample``, ``ingest``,
``tokenizer``, a random GPT of ``--depth`` exported as the served model, ``roost
index`` with vectors), then times ``create_app`` with every surface on (search
re-ranking too) in a fresh process and counts ``roost.export.load_hf`` calls.
Run it with ``PYTHONPATH=OTHER_TREE`` to measure another checkout the same way.

    .venv/bin/python bench/server_start.py --depth 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = r"""
import json, resource, sys, time
import roost, roost.export
from roost.server.app import ServeConfig, create_app
reads = []
real = roost.export.load_hf
roost.export.load_hf = lambda *a, **k: reads.append(1) or real(*a, **k)
t = time.perf_counter()
app = create_app(ServeConfig(workspace=sys.argv[1], search_rerank=5))
seconds = time.perf_counter() - t
print(json.dumps({"tree": str(roost.__file__), "seconds": seconds, "model_reads": len(reads),
                  "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(ws: Path, depth: int) -> int:
    """A workspace with a corpus, tokenizer, served model (random weights) and a semantic index; its params."""
    import torch

    from roost.cli import main
    from roost.export import save_hf
    from roost.model import GPT, GPTConfig
    from roost.tokenizer import load_tokenizer
    from roost.workspace import Workspace

    w = ["--workspace", str(ws)]
    assert main(["sample", *w, "--users", "50", "--posts", "500", "--campaigns", "10"]) == 0
    assert main(["ingest", str(ws / "sample"), *w]) == 0
    assert main(["tokenizer", *w, "--vocab-size", "2048"]) == 0
    tok = load_tokenizer(Workspace(ws).tokenizer)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_depth(depth, vocab_size=tok.vocab_size, max_seq_len=256)).eval()
    save_hf(model, Workspace(ws).model, Workspace(ws).tokenizer)
    assert main(["index", *w]) == 0
    return model.num_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        ws = Path(tmp) / "workspace"
        params = build(ws, args.depth)
        # cwd=tmp: `python -c` puts the working directory first on sys.path, which would shadow PYTHONPATH's tree
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", MEASURE, str(ws)], check=True, capture_output=True, text=True, cwd=tmp
                ).stdout.splitlines()[-1]
            )
            for _ in range(args.repeats)
        ]
    print(f"\nroost from {runs[0]['tree']}; model depth {args.depth}, {params / 1e6:.1f}M params")
    print("| run | create_app (s) | model reads | peak RSS (MiB) |\n|---|---|---|---|")
    for i, r in enumerate(runs, 1):
        print(f"| {i} | {r['seconds']:.2f} | {r['model_reads']} | {r['max_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
