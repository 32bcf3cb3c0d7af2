"""Ad serving benchmark: decisions/s and p50/p99 latency of ``AdService.serve`` at 10k and 100k campaigns.

Campaigns and queries are drawn from the sample network's topic banks. Every
decision is the full path: embed the query, ANN + keyword candidates,
eligibility (live budget and frequency-cap reads from SQLite), pacing, pCTR,
GSP auction, and the impressions committed (``--durability process``, the
server's default: WAL with ``synchronous=NORMAL``; ``power``: ``FULL``).

Wall-clock latency on a shared machine includes waiting for a core, so each
row also gives the CPU time per decision (``time.thread_time`` around each
call: the decision's own work, whatever the load).

Workers: 1 and 2 threads in one process (they share the GIL), and
``--processes N``: N forked worker processes, each a copy of the service after
start-up sharing the one database, as a production server runs replicas; the
requests are split across them and decisions/s is for all together.

Brand safety is on (``--no-safety`` turns it off): a probe (roost.ads.brand_safety) trained at start on
the sample network's abusive sentences (roost.sample.moderation) against its ordinary posts, so every
decision scores its context as the server does. Frequency caps are on (the service's default cap, and
a third of the campaigns set their own).

Peer: the same service with the ANN index swapped for an exact scan of every
creative vector (numpy matrix product), in the same run; the table gives the
latency ratio (``--no-peer`` leaves it out).

``--ads-db postgresql`` runs the same on a throwaway PostgreSQL (roost.ads.pgtemp,
fsync and synchronous_commit on) instead of a SQLite file.

    .venv/bin/python bench/ads.py --campaigns 10000 100000 --requests 2000
    .venv/bin/python bench/ads.py --campaigns 100000 --requests 2000 --processes 2 --no-peer
    .venv/bin/python bench/ads.py --campaigns 100000 --requests 2000 --processes 2 3 --no-peer --ads-db sqlite postgresql
    .venv/bin/python bench/ads.py --campaigns 100000 --requests 1000 --durability power
    .venv/bin/python bench/ads.py --campaigns 10000 --embedder model --workspace workspace
    .venv/bin/python bench/ads.py --campaigns 100000 --requests 200 --no-peer --profile 1000
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from roost.ads.brand_safety import SafetyProbes
from roost.ads.campaign import CampaignSpec
from roost.ads.clicks import ClickSigner
from roost.ads.db import synchronous_for
from roost.ads.embedder import resolve_embedder
from roost.ads.pgtemp import PgSettings, temporary_postgres
from roost.ads.retrieval import CreativeIndex
from roost.ads.service import AdRequest, AdService
from roost.ads.setup import settle_heap
from roost.ads.store import AdStore
from roost.sample.moderation import BANKS as UNSAFE_BANKS
from roost.sample.topics import BANKS
from roost.workspace import Workspace


def make_campaigns(n: int, rng: random.Random) -> list[CampaignSpec]:
    topics = sorted(BANKS)
    specs = []
    for i in tqdm(range(n), desc="making campaigns", unit="campaign"):
        topic = rng.choice(topics)
        bank = BANKS[topic]
        cpc = rng.random() < 0.7
        specs.append(
            CampaignSpec.model_validate(
                {
                    "id": f"c{i}",
                    "advertiser": f"{rng.choice(bank.brands)} {i % 997}",
                    "name": f"{topic} {i}",
                    "budget": rng.randint(50, 5000),
                    "daily_budget": rng.choice([None, 50]),
                    "bid_type": "cpc" if cpc else "cpm",
                    "bid": round(rng.uniform(0.05, 2.0) if cpc else rng.uniform(0.5, 10), 2),
                    "targeting": {"keywords": rng.sample(bank.keywords, 2), "topics": [topic]},
                    "frequency_cap": rng.choice([None, 3]),
                    "creatives": [
                        {
                            "text": f"{rng.choice(bank.brands)} {rng.choice(bank.products)}: {rng.choice(bank.opinions)}",
                            "landing_url": f"https://ads.example/{i}/{k}",
                        }
                        for k in range(rng.choice([1, 1, 2]))
                    ],
                }
            )
        )
    return specs


def make_requests(n: int, rng: random.Random, contexts: int = 0) -> list[AdRequest]:
    """``n`` requests of random users; ``contexts`` > 0: their queries drawn from that many distinct texts (as
    the posts of timelines and pages come back), 0: every query new."""
    topics = sorted(BANKS)

    def query(bank) -> str:
        # a random number makes each query new, so the service's per-text cache never helps
        return f"{rng.choice(bank.subjects)} {rng.choice(bank.claims)} {rng.randrange(10**6)}"

    pool = [query(BANKS[rng.choice(topics)]) for _ in range(contexts)]
    out = []
    for _ in range(n):
        if pool:
            user, text = rng.randrange(10_000), rng.choice(pool)
        else:
            bank = BANKS[rng.choice(topics)]
            user = rng.randrange(10_000)
            text = query(bank)
        out.append(AdRequest(user_id=f"u{user}", slots=2, query=text))
    return out


def train_safety(embed, space: str, rng: random.Random, n: int = 300) -> SafetyProbes:
    """A brand-safety probe from the sample's abusive sentences (unsafe) and its topic posts (safe)."""
    unsafe = [" ".join(rng.choice(part) for part in UNSAFE_BANKS[rng.choice(sorted(UNSAFE_BANKS))]) for _ in range(n)]
    banks = [BANKS[t] for t in sorted(BANKS)]
    safe = [f"{rng.choice(b.subjects)} {rng.choice(b.claims)}" for b in (rng.choice(banks) for _ in range(n))]
    texts = unsafe + safe
    probes = SafetyProbes(space=space).bind(embed)
    probes.add("moderation", texts, np.asarray(embed(texts)), np.array([1] * n + [0] * n), {1})
    return probes


class ExactIndex(CreativeIndex):
    """The peer: score every creative vector for every query (a full scan)."""

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_keys"):
            self._keys = np.array(sorted(self.rows, key=self.rows.get), dtype=np.int64)
        sims = self.matrix @ query
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.argsort(-sims[top])]
        return self._keys[top], sims[top]


def _serve_all(service: AdService, part: list[AdRequest]) -> tuple[list[float], list[float], int]:
    """Serve ``part`` one by one: (wall ms, CPU ms, ads served)."""
    lat, cpu, n = [], [], 0
    for req in part:
        t, c = time.perf_counter(), time.thread_time()
        n += len(service.serve(req))
        cpu.append((time.thread_time() - c) * 1000)
        lat.append((time.perf_counter() - t) * 1000)
    return lat, cpu, n


def time_serving(
    service: AdService, requests: list[AdRequest], threads: int
) -> tuple[float, np.ndarray, np.ndarray, int]:
    """(decisions/s, wall latencies in ms, CPU ms per decision, ads served) over ``requests`` split across ``threads``."""
    results: list[tuple[list[float], list[float], int]] = []
    lock = threading.Lock()

    def worker(part: list[AdRequest]) -> None:
        got = _serve_all(service, part)
        with lock:
            results.append(got)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(requests[k::threads],)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return _totals(len(requests) / (time.perf_counter() - start), results)


def time_processes(
    service: AdService, requests: list[AdRequest], processes: int
) -> tuple[float, np.ndarray, np.ndarray, int]:
    """As :func:`time_serving`, with ``processes`` forked copies of the service (replicas on one database).

    The workers are forked after start-up, so each holds the catalog and index without building them
    (copy-on-write pages), opens its own database connections (roost.ads.db does after a fork), and
    waits for one signal, so the clock runs only while they all serve.
    """
    ctx = mp.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()

    def worker(part: list[AdRequest]) -> None:
        go.wait()
        out.put(_serve_all(service, part))

    pool = [ctx.Process(target=worker, args=(requests[k::processes],)) for k in range(processes)]
    for p in pool:
        p.start()
    time.sleep(1.0)  # let every worker reach the start line
    start = time.perf_counter()
    go.set()
    results = [out.get() for _ in pool]
    elapsed = time.perf_counter() - start
    for p in pool:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a serving process exited with {p.exitcode}")
    return _totals(len(requests) / elapsed, results)


def profile(service: AdService, requests: list[AdRequest], top: int = 30) -> None:
    """Where one thread's decisions spend their time: cProfile over ``requests``, by cumulative time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for req in requests:
        service.serve(req)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def _totals(rate: float, results: list[tuple[list[float], list[float], int]]):
    lat = np.array([x for r in results for x in r[0]])
    cpu = np.array([x for r in results for x in r[1]])
    return rate, lat, cpu, sum(r[2] for r in results)


def open_bench_store(args, ads_db: str, tmp: str, stack: contextlib.ExitStack) -> AdStore:
    """An empty ads store: a SQLite file in ``tmp``, or a database on a throwaway PostgreSQL (``--ads-db``)."""
    if ads_db == "postgresql":
        pg = stack.enter_context(temporary_postgres(PgSettings(fsync=True)))
        return AdStore(pg.create_database("bench"), synchronous=synchronous_for(args.durability), migrate=True)
    return AdStore(Path(tmp) / "ads.db", synchronous=synchronous_for(args.durability))


def bench(n: int, ads_db: str, args, embed, space) -> list[dict]:
    rng = random.Random(n)
    specs = make_campaigns(n, rng)
    rows = []
    with tempfile.TemporaryDirectory(prefix="roost-bench-ads-") as tmp, contextlib.ExitStack() as stack:
        store = open_bench_store(args, ads_db, tmp, stack)
        store.add_campaigns(specs)
        # the same campaigns (same seed) get the same creative ids, so a saved graph from an earlier run fits
        index_path = Path(args.index_dir) / f"creatives-{n}-{space}.usearch" if args.index_dir else None
        t = time.perf_counter()
        service = AdService(
            store,
            ClickSigner(b"bench-secret-0123456789abcdef012"),
            embed=embed,
            space=space,
            seed=0,
            index_path=index_path,
            safety=None if args.no_safety else train_safety(embed, space, random.Random(1)),
        )
        if index_path is not None and not index_path.exists():
            service.index.save()
        settle_heap()  # as open_service does for the server
        build_s = time.perf_counter() - t
        for name in ("ann (usearch)", "exact scan (peer)")[: 1 if args.no_peer else 2]:
            if name.startswith("exact"):
                exact = ExactIndex(store, embed, space)
                exact.__dict__.update(service.index.__dict__)  # the same vectors and graph, searched by a full scan
                service.index = exact
            time_serving(service, make_requests(50, rng), 1)  # warm up
            if args.profile:
                profile(service, make_requests(args.profile, rng))
            workers = [(f"{k} thread{'s' if k > 1 else ''}", time_serving, k) for k in (1, 2)]
            workers += [(f"{k} processes", time_processes, k) for k in args.processes]
            for label, run, k in workers:
                rate, lat, cpu, ads = run(service, make_requests(args.requests, rng, args.contexts), k)
                rows.append(
                    {
                        "campaigns": n,
                        "ads db": ads_db,
                        "retrieval": name,
                        "workers": label,
                        "decisions/s": rate,
                        "p50 ms": float(np.percentile(lat, 50)),
                        "p99 ms": float(np.percentile(lat, 99)),
                        "cpu ms mean": float(cpu.mean()),
                        "cpu ms p99": float(np.percentile(cpu, 99)),
                        "ads/decision": ads / args.requests,
                        "startup s": build_s,
                    }
                )
                print(rows[-1], flush=True)
        service.close()
        store.close()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--campaigns", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--requests", type=int, default=2000, help="timed decisions per configuration")
    p.add_argument("--embedder", choices=("hashing", "model"), default="hashing")
    p.add_argument(
        "--durability",
        choices=("process", "power"),
        default="process",
        help="what a committed impression survives: process (server default, synchronous=NORMAL) "
        "or power (synchronous=FULL, one fsync per decision)",
    )
    p.add_argument("--workspace", default="workspace", help="for --embedder model: the workspace with model/")
    p.add_argument("--processes", type=int, nargs="*", default=[], help="also time N forked serving processes")
    p.add_argument(
        "--ads-db", choices=("sqlite", "postgresql"), nargs="+", default=["sqlite"], help="one or both, same run"
    )
    p.add_argument("--profile", type=int, default=0, metavar="N", help="first print a cProfile of N decisions")
    p.add_argument("--no-safety", action="store_true", help="serve without brand safety (on by default)")
    p.add_argument(
        "--contexts",
        type=int,
        default=0,
        metavar="N",
        help="draw each row's queries from N distinct texts (repeated contexts; default 0: every query new)",
    )
    p.add_argument("--no-peer", action="store_true", help="leave out the exact-scan peer rows")
    p.add_argument(
        "--index-dir", default=None, help="keep the built creative index here and load it on the next run (faster)"
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    embed, space = resolve_embedder(Workspace(args.workspace), args.embedder)
    rows = [row for n in args.campaigns for db in args.ads_db for row in bench(n, db, args, embed, space)]
    cols = [
        "campaigns",
        "ads db",
        "retrieval",
        "workers",
        "decisions/s",
        "p50 ms",
        "p99 ms",
        "cpu ms mean",
        "cpu ms p99",
        "ads/decision",
        "startup s",
    ]
    print(
        f"\nembedder: {space}; {args.requests} decisions per row, 2 ads each asked; "
        f"impressions committed with durability={args.durability} (synchronous={synchronous_for(args.durability)}"
        f" for SQLite; PostgreSQL: fsync on, synchronous_commit {'off' if args.durability == 'process' else 'on'}); brand safety {'off' if args.no_safety else 'on'}, "
        f"frequency caps on; {f'queries drawn from {args.contexts} distinct texts' if args.contexts else 'every query new'}"
        f"; load average {os.getloadavg()}"
    )
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    for n in [] if args.no_peer else args.campaigns:
        one = [r for r in rows if r["campaigns"] == n and r["workers"] == "1 thread"]
        ann = next(r for r in one if r["retrieval"].startswith("ann"))
        ex = next(r for r in one if r["retrieval"].startswith("exact"))
        print(
            f"{n} campaigns, 1 thread: ANN p99 {ann['p99 ms']:.2f} ms (CPU {ann['cpu ms p99']:.2f} ms) "
            f"vs exact scan {ex['p99 ms']:.2f} ms (CPU {ex['cpu ms p99']:.2f} ms) "
            f"({ex['p99 ms'] / ann['p99 ms']:.2f}x); decisions/s {ann['decisions/s'] / ex['decisions/s']:.2f}x"
        )


if __name__ == "__main__":
    main()
