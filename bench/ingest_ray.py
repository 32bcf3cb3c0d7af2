"""Ingest on Ray against the local engine, on this machine: time, posts/s by node count, worker memory.

    nice .venv/bin/python bench/ingest_ray.py --n 1000000 --big 4000000

Generates ``--n`` posts (bench/ingest.py's generator: ~5% exact and ~5% near duplicates, threads, junk
lines) cut into ``--files`` JSONL files, then ingests them with the local engine (``workers`` 0: one per
core) and with the Ray engine on three Ray clusters started here on 127.0.0.1 (``ray.cluster_utils``):
one node with every core, one node of one CPU, two nodes of one CPU each. The two one-CPU clusters show
how the rate grows with nodes; the first is the Ray engine's overhead against the local engine on the
same cores. ``--big`` ingests more posts on the two-node cluster, cut into proportionally more files of the same
size, to compare the peak memory of a Ray worker (the largest VmHWM of any Ray worker process, polled
from /proc) at two corpus sizes. Every run
checks that Ray kept the same posts as the local engine. ``--driver-only`` runs only the one-node Ray ingest at
``--n`` and prints its driver's peak RSS (VmHWM, reset before the run) and its threads, to compare commits.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import generate  # noqa: E402  (bench/ingest.py)

MB = 1 << 20


def split(src: Path, out: Path, files: int) -> list[Path]:
    """``src``'s lines dealt into ``files`` files in order (the order is what decides which copy is kept)."""
    with src.open("rb") as f:
        per = -(-sum(1 for _ in f) // files)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"part-{i:03d}.jsonl" for i in range(files)]
    with src.open("rb") as f:  # streamed: a 4M-post file is 1.4 GB
        for p in paths:
            with p.open("wb") as o:
                o.writelines(itertools.islice(f, per))
    return paths


class WorkerPeak:
    """The largest peak RSS (VmHWM) of any Ray worker process seen while it runs, polled from /proc."""

    def __init__(self) -> None:
        self.peak_kb, self.who = 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if not (cmd.startswith(b"ray::") or b"default_worker.py" in cmd):
                    continue
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:") and int(line.split()[1]) > self.peak_kb:
                        self.peak_kb, self.who = int(line.split()[1]), cmd.split(b"\0")[0][:60].decode(errors="replace")
            except OSError:
                continue

    def __enter__(self) -> WorkerPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()


def run_ray(files: list[Path], ws_dir: Path, nodes: list[int], range_rows: int) -> tuple[float, int, float, set]:
    """(seconds, posts read, peak worker MiB, kept ids) of one Ray ingest on a fresh cluster of ``nodes``; prints
    the driver's peak RSS during the ingest and the threads it wrote."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    from roost.corpus import IngestConfig
    from roost.corpus.ray_engine import ingest_ray
    from roost.corpus.schema import read_table
    from roost.workspace import Workspace

    shutil.rmtree(ws_dir, ignore_errors=True)
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": nodes[0], "object_store_memory": 512 * MB, "include_dashboard": False},
    )
    try:
        for n in nodes[1:]:
            c.add_node(num_cpus=n, object_store_memory=512 * MB)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False, logging_level="ERROR")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here: the driver's peak in this ingest
        with WorkerPeak() as peak:
            t = time.perf_counter()
            rep = ingest_ray(
                [str(f) for f in files], Workspace(ws_dir), IngestConfig(), progress=False, range_rows=range_rows
            )
            secs = time.perf_counter() - t
        driver = next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in x)
        print(f"ray {nodes}: driver peak RSS {driver / 1024:,.0f} MiB; {rep.threads:,} threads", flush=True)
        kept = set(read_table(Workspace(ws_dir).corpus, "posts", ["id"]).column("id").to_pylist())
        print(f"ray {nodes} {rep.read:,} posts: peak worker {peak.peak_kb / 1024:,.0f} MiB in {peak.who!r}", flush=True)
        return secs, rep.read, peak.peak_kb / 1024, kept
    finally:
        ray.shutdown()
        c.shutdown()


def run_local(files: list[Path], ws_dir: Path) -> tuple[float, int, set]:
    from roost.corpus import IngestConfig, ingest
    from roost.corpus.schema import read_table
    from roost.workspace import Workspace

    shutil.rmtree(ws_dir, ignore_errors=True)
    t = time.perf_counter()
    rep = ingest(files, Workspace(ws_dir), IngestConfig(), progress=False)
    secs = time.perf_counter() - t
    return secs, rep.read, set(read_table(Workspace(ws_dir).corpus, "posts", ["id"]).column("id").to_pylist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="posts for the engine comparison (default 100,000)")
    ap.add_argument("--big", type=int, default=0, help="posts for the second memory point (0: skip)")
    ap.add_argument("--files", type=int, default=16, help="source files the posts are cut into (default 16)")
    ap.add_argument("--range-rows", type=int, default=500_000, help="rows a shuffle range holds at most")
    ap.add_argument("--memory-only", action="store_true", help="only the two-node runs at --n and --big")
    ap.add_argument("--driver-only", action="store_true", help="only the one-node Ray run at --n")
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "roost-bench-ray"))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    data = Path(args.data_dir)
    rows = []

    def corpus(n: int) -> list[Path]:
        """``n`` posts in files of the same size as the ``--n`` run's (a cluster reads many bounded files, so
        a task's input, and with it a worker's memory, should not grow with the corpus)."""
        one = data / f"posts-{n}.jsonl"
        if not one.exists():
            data.mkdir(parents=True, exist_ok=True)
            generate(one, n)
        return split(one, data / f"src-{n}", max(1, round(args.files * n / args.n)))

    files = corpus(args.n)
    two = ("ray engine", "1 x 1 CPU + 1 x 1 CPU")
    if args.driver_only:
        secs, read, peak, _ = run_ray(files, data / "ws-ray", [cores], args.range_rows)
        _table([("ray engine", f"1 x {cores} CPU", args.n, secs, read / secs, peak)])
        return
    if args.memory_only:
        for n in (args.n, args.big):
            secs, read, peak, _ = run_ray(corpus(n), data / "ws-ray", [1, 1], args.range_rows)
            rows.append((*two, n, secs, read / secs, peak))
        _table(rows)
        return
    t_local, read, kept = run_local(files, data / "ws-local")
    rows.append(("local engine", f"1 x {cores} CPU", args.n, t_local, read / t_local, None))
    for label, nodes in (("ray engine", [cores]), ("ray engine", [1]), ("ray engine", [1, 1])):
        secs, read, peak, ray_kept = run_ray(files, data / "ws-ray", nodes, args.range_rows)
        assert ray_kept == kept, "the Ray engine kept other posts than the local engine"
        rows.append((label, " + ".join(f"1 x {n} CPU" for n in nodes), args.n, secs, read / secs, peak))
    if args.big:
        secs, read, peak, _ = run_ray(corpus(args.big), data / "ws-ray", [1, 1], args.range_rows)
        rows.append((*two, args.big, secs, read / secs, peak))
    _table(rows)
    print(f"Ray on one node / local, same {cores} cores: {rows[1][3] / t_local:.2f}x the time")
    print(f"2 nodes / 1 node of one CPU: {rows[3][4] / rows[2][4]:.2f}x the posts/s")
    per_core = rows[3][4] / 2
    print(
        f"per-core rate on 2 one-CPU nodes: {per_core:,.0f} posts/s; 1B posts in an hour needs "
        f"{1e9 / 3600 / per_core:,.0f} such cores"
    )


def _table(rows: list[tuple]) -> None:
    print(f"\n{'engine':<13} {'nodes':<24} {'posts':>9} {'seconds':>8} {'posts/s':>8} {'peak worker MiB':>16}")
    for name, nodes, n, secs, rate, peak in rows:
        print(f"{name:<13} {nodes:<24} {n:>9,} {secs:>8.1f} {rate:>8,.0f} {'' if peak is None else f'{peak:,.0f}':>16}")
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
