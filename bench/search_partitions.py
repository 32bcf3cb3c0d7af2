"""Partitioned search through HTTP: hybrid latency with 1, 2 and 4 partitions against one index, same run.

    .venv/bin/python bench/search_partitions.py --posts 1000000 --model workspace/model --work tmp/bench-parts

Posts are synthetic (bench/search.py's generator: TweetEval's words by frequency), embedded once with the
trained model's retriever and the vectors reused by every layout, so each layout indexes the same posts with
the same vectors. Each layout is served by real processes on 127.0.0.1: ``roost serve`` over one index (the
peer), or ``roost serve --search-partition ...`` in front of P ``roost serve-partition`` processes. One
client sends the same queries to every layout, all served at once, interleaved query by query (so a busy
moment on a shared machine falls on every layout alike). Prints latency per layout, the fan-out overhead two
ways (the front over P partitions against one index at p50; and, per query, the front's latency less its
slowest partition's own time for the query, which the front reports as ``partition_ms``), and memory per
partition process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import queries, rss_mib, synthetic_posts  # noqa: E402  (bench/search.py)

from roost.search.build import BuildConfig, build_index  # noqa: E402
from roost.search.embed import load_search_model  # noqa: E402
from roost.search.engine import SearchModel  # noqa: E402
from roost.search.partition import partition_of  # noqa: E402
from roost.search.vector import VectorConfig  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_rss_mib(pid: int) -> str:
    """Resident memory as "total (anonymous)" MiB: the rest is file pages (the doc store is read through a
    memory map), which the kernel can drop and which every replica of a file on one machine shares."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return f"{fields.get('VmRSS', float('nan')):.0f} ({fields.get('RssAnon', float('nan')):.0f})"


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def embed_all(model: SearchModel, posts_n: int, out: Path) -> tuple[dict[str, int], np.ndarray]:
    """Every post's vector, once (the slow part), kept in ``out`` for the next run."""
    texts = [p.text for batch in synthetic_posts(posts_n, seed=0) for p in batch]
    if out.exists():
        vecs = np.load(out, mmap_mode="r")
    else:
        t0 = time.perf_counter()
        vecs = np.concatenate([model.embed(texts[i : i + 4096]) for i in range(0, len(texts), 4096)])
        np.save(out, vecs)
        print(f"embedded {len(texts):,} posts in {time.perf_counter() - t0:.0f} s")
    return {t: i for i, t in enumerate(texts)}, vecs


def build_layout(
    root: Path, parts: int, model: SearchModel, row: dict[str, int], vecs: np.ndarray, n: int, vector: VectorConfig
) -> None:
    """``parts`` partition folders under ``root`` (part-0 ...), keys by place in the corpus."""
    if (root / "done").exists():
        return
    lookup = SearchModel(
        lambda texts: np.asarray(vecs[[row[t] for t in texts]]), model.queries, model.ranking, model.expand
    )
    for i in range(parts):

        def mine(i=i):
            pos = 0
            for batch in synthetic_posts(n, seed=0):
                for j, p in enumerate(batch):
                    p.key = pos + j
                pos += len(batch)
                yield [p for p in batch if partition_of(p.id, parts) == i]

        build_index(mine(), root / f"part-{i}", lookup, config=BuildConfig(threads=2), vector_config=vector)
    (root / "done").touch()


def workspace(root: Path, model_dir: Path, manifest: dict) -> Path:
    """A workspace folder whose model is ``model_dir`` and whose index manifest is ``manifest``."""
    (root / "index").mkdir(parents=True, exist_ok=True)
    if not (root / "model").exists():
        (root / "model").symlink_to(model_dir.resolve())
    (root / "index" / "manifest.json").write_text(json.dumps({"stage": "index", "inputs": {}, **manifest}))
    return root


@contextlib.contextmanager
def launched(cmd: list[str]):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def wait_up(procs: list[tuple[subprocess.Popen, str]]) -> None:
    """Wait until every process answers 200 on its URL."""
    deadline = time.monotonic() + 900
    for proc, url in procs:
        while True:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"{proc.args} did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            time.sleep(0.5)


def measure(bases: list[str], qs: list[str], mode: str) -> list[dict]:
    """The same queries to every layout, interleaved: each query goes to every layout in turn (the first
    layout rotating), so a busy moment on this shared machine falls on all of them alike."""
    lat = [[] for _ in bases]
    over = [[] for _ in bases]
    partial = [0 for _ in bases]
    with httpx.Client(timeout=60) as client:
        for q in qs[:20]:  # warm-up
            for base in bases:
                client.get(f"{base}/search", params={"q": q, "mode": mode, "k": 10})
        for n, q in enumerate(qs):
            for j in range(len(bases)):
                j = (j + n) % len(bases)
                t0 = time.perf_counter()
                r = client.get(f"{bases[j]}/search", params={"q": q, "mode": mode, "k": 10})
                lat[j].append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
                body = r.json()
                partial[j] += bool(body.get("partial"))
                if "partition_ms" in body:  # what the front added to its slowest partition's own time
                    over[j].append(lat[j][-1] - body["partition_ms"])
    out = []
    for j in range(len(bases)):
        a = np.array(lat[j])
        paired = a - np.array(lat[0])  # this layout against the first (the peer), query by query
        out.append(
            {
                "p50": float(np.percentile(a, 50)),
                "p99": float(np.percentile(a, 99)),
                "partial": partial[j],
                "paired_p50": float(np.percentile(paired, 50)),
                "over_slowest_p50": float(np.percentile(over[j], 50)) if over[j] else float("nan"),
            }
        )
    return out


def serve_layouts(stack: contextlib.ExitStack, layouts: list[tuple[Path, int, Path | None]]) -> list[tuple[str, list]]:
    """Start every layout's processes, (workspace, P, layout folder) each: P partition servers and a front, or
    (P = 0) one server over one index. All partition servers start at once, then all fronts; (URL, procs) each."""
    roost = [sys.executable, "-m", "roost"]
    parts_of, waiting = [], []
    for ws, parts, layout in layouts:
        procs, urls = [], []
        for i in range(parts):
            port = free_port()
            cmd = roost + ["serve-partition", "-w", str(ws), "--partition", str(i), "--port", str(port)]
            procs.append(stack.enter_context(launched(cmd + ["--index-dir", str(layout / f"part-{i}")])))
            urls.append(f"http://127.0.0.1:{port}")
            waiting.append((procs[-1], f"{urls[-1]}/partition/health"))
        parts_of.append((procs, urls))
    wait_up(waiting)
    out, waiting = [], []
    for (ws, _, _), (procs, urls) in zip(layouts, parts_of):
        port = free_port()
        cmd = roost + ["serve", "-w", str(ws), "--port", str(port), "--search-deadline", "30", "--rate-limit", "0"]
        for u in urls:
            cmd += ["--search-partition", u]
        procs.append(stack.enter_context(launched(cmd)))
        waiting.append((procs[-1], f"http://127.0.0.1:{port}/health"))
        out.append((f"http://127.0.0.1:{port}", procs))
    wait_up(waiting)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=100_000)
    ap.add_argument("--model", type=Path, required=True, help="a workspace/model folder with a trained retriever")
    ap.add_argument("--work", type=Path, default=Path("tmp/bench-parts"))
    ap.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--modes", nargs="+", default=["hybrid", "lexical"])
    ap.add_argument("--vector-dtype", default="f16", help="usearch storage (i8 builds and loads faster)")
    ap.add_argument("--connectivity", type=int, default=16)
    ap.add_argument("--expansion-add", type=int, default=64)
    args = ap.parse_args()
    work = args.work / f"n{args.posts}"
    work.mkdir(parents=True, exist_ok=True)
    model = load_search_model(args.model)
    row, vecs = embed_all(model, args.posts, work / "vectors.npy")
    qs = queries(args.queries, seed=0)
    for parts in sorted(set([1, *args.partitions])):
        t0 = time.perf_counter()
        vector = VectorConfig(dtype=args.vector_dtype, connectivity=args.connectivity, expansion_add=args.expansion_add)
        build_layout(work / f"layout-{parts}", parts, model, row, vecs, args.posts, vector)
        print(f"layout {parts}: built in {time.perf_counter() - t0:.0f} s, {dir_mib(work / f'layout-{parts}'):.0f} MiB")
    # the peer: one index served by one `roost serve`
    single = workspace(work / "ws-single", args.model, {"semantic": True})
    for name in ("docs.sqlite", "lexical", "vectors.usearch"):
        link = single / "index" / name
        if not link.exists():
            link.symlink_to((work / "layout-1" / "part-0" / name).resolve())
    names = ["one index (peer)"] + [f"front + {parts} partitions" for parts in args.partitions]
    with contextlib.ExitStack() as stack:
        specs: list[tuple[Path, int, Path | None]] = [(single, 0, None)]
        for parts in args.partitions:
            ws = workspace(work / f"ws-{parts}", args.model, {"semantic": True, "partitions": parts})
            specs.append((ws, parts, work / f"layout-{parts}"))
        layouts = serve_layouts(stack, specs)
        bases = [base for base, _ in layouts]
        results = {mode: measure(bases, qs, mode) for mode in args.modes}
        rss = [[vm_rss_mib(p.pid) for p in procs] for _, procs in layouts]
    print(f"\n{args.posts:,} posts, {args.queries} queries, k=10, one client; load average {os.getloadavg()[0]:.1f}")
    first = args.modes[0]
    head = "| layout | " + " | ".join(f"{m} p50 ms | {m} p99 ms" for m in args.modes)
    print(
        head + f" | {first} p50 over one index | {first} over one index, query by query, p50"
        f" | {first} over the slowest partition's own time, p50 | RSS (anonymous) per partition MiB"
        " | front RSS (anonymous) MiB |"
    )
    print("|---|" + "---:|" * (2 * len(args.modes) + 5))
    for j, name in enumerate(names):
        r = {m: results[m][j] for m in args.modes}
        cells = " | ".join(f"{r[m]['p50']:.1f} | {r[m]['p99']:.1f}" for m in args.modes)
        over = r[first]["p50"] - results[first][0]["p50"]
        per = ", ".join(rss[j][:-1]) or "-"
        print(
            f"| {name} | {cells} | {over:+.1f} | {r[first]['paired_p50']:+.1f} | {r[first]['over_slowest_p50']:.1f}"
            f" | {per} | {rss[j][-1]} |"
        )
    print(f"bench process RSS {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
