"""Ad serving benchmark: decisions/s and p50/p99 latency of ``AdService.serve`` at 10k and 100k campaigns.

Campaigns and queries are drawn from the sample network's topic banks. Every
decision is the full path: embed the query, ANN + keyword candidates,
eligibility (live budget and frequency-cap reads from SQLite), pacing, pCTR,
GSP auction, and the impressions committed (``--durability process``, the
server's default: WAL with ``synchronous=NORMAL``; ``power``: ``FULL``).

Wall-clock latency on a shared machine includes waiting for a core, so each
row also gives the CPU time per decision (``time.thread_time`` around each
call: the decision's own work, whatever the load).

Peer: the same service with the ANN index swapped for an exact scan of every
creative vector (numpy matrix product), in the same run; the table gives the
latency ratio.

    .venv/bin/python bench/ads.py --campaigns 10000 100000 --requests 2000
    .venv/bin/python bench/ads.py --campaigns 100000 --requests 1000 --durability power
    .venv/bin/python bench/ads.py --campaigns 10000 --embedder model --workspace workspace
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from roost.ads.campaign import CampaignSpec
from roost.ads.clicks import ClickSigner
from roost.ads.embedder import resolve_embedder
from roost.ads.retrieval import CreativeIndex
from roost.ads.service import AdRequest, AdService
from roost.ads.setup import settle_heap
from roost.ads.store import AdStore, synchronous_for
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


def make_requests(n: int, rng: random.Random) -> list[AdRequest]:
    topics = sorted(BANKS)
    out = []
    for _ in range(n):
        bank = BANKS[rng.choice(topics)]
        # a random number makes each query new, so the query-embedding cache never helps
        out.append(
            AdRequest(
                user_id=f"u{rng.randrange(10_000)}",
                slots=2,
                query=f"{rng.choice(bank.subjects)} {rng.choice(bank.claims)} {rng.randrange(10**6)}",
            )
        )
    return out


class ExactIndex(CreativeIndex):
    """The peer: score every creative vector for every query (a full scan)."""

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not hasattr(self, "_keys"):
            self._keys = np.array(sorted(self.rows, key=self.rows.get), dtype=np.int64)
        sims = self.matrix @ query
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.argsort(-sims[top])]
        return [(int(self._keys[i]), float(sims[i])) for i in top]


def time_serving(
    service: AdService, requests: list[AdRequest], threads: int
) -> tuple[float, np.ndarray, np.ndarray, int]:
    """(decisions/s, wall latencies in ms, CPU ms per decision, ads served) over ``requests`` split across ``threads``."""
    lat: list[float] = []
    cpu: list[float] = []
    served = [0]
    lock = threading.Lock()

    def worker(part: list[AdRequest]) -> None:
        mine, mine_cpu, n = [], [], 0
        for req in part:
            t, c = time.perf_counter(), time.thread_time()
            n += len(service.serve(req))
            mine_cpu.append((time.thread_time() - c) * 1000)
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            lat.extend(mine)
            cpu.extend(mine_cpu)
            served[0] += n

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(requests[k::threads],)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(requests) / (time.perf_counter() - start), np.array(lat), np.array(cpu), served[0]


def bench(n: int, args, embed, space) -> list[dict]:
    rng = random.Random(n)
    specs = make_campaigns(n, rng)
    rows = []
    with tempfile.TemporaryDirectory(prefix="roost-bench-ads-") as tmp:
        store = AdStore(Path(tmp) / "ads.db", synchronous=synchronous_for(args.durability))
        store.add_campaigns(specs)
        t = time.perf_counter()
        service = AdService(store, ClickSigner(b"bench-secret-0123456789abcdef012"), embed=embed, space=space, seed=0)
        settle_heap()  # as open_service does for the server
        build_s = time.perf_counter() - t
        for name in ("ann (usearch)", "exact scan (peer)"):
            if name.startswith("exact"):
                exact = ExactIndex(store, embed, space)
                exact.rows, exact.matrix, exact.index = service.index.rows, service.index.matrix, service.index.index
                service.index = exact
            time_serving(service, make_requests(50, rng), 1)  # warm up
            for threads in (1, 2):
                rate, lat, cpu, ads = time_serving(service, make_requests(args.requests, rng), threads)
                rows.append(
                    {
                        "campaigns": n,
                        "retrieval": name,
                        "threads": threads,
                        "decisions/s": rate,
                        "p50 ms": float(np.percentile(lat, 50)),
                        "p99 ms": float(np.percentile(lat, 99)),
                        "cpu ms mean": float(cpu.mean()),
                        "cpu ms p99": float(np.percentile(cpu, 99)),
                        "ads/decision": ads / args.requests,
                        "startup s": build_s,
                    }
                )
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
    args = p.parse_args()
    torch.set_num_threads(1)
    embed, space = resolve_embedder(Workspace(args.workspace), args.embedder)
    rows = [row for n in args.campaigns for row in bench(n, args, embed, space)]
    cols = [
        "campaigns",
        "retrieval",
        "threads",
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
        f"impressions committed with durability={args.durability} (synchronous={synchronous_for(args.durability)})"
    )
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    for n in args.campaigns:
        ann = next(r for r in rows if r["campaigns"] == n and r["threads"] == 1 and r["retrieval"].startswith("ann"))
        ex = next(r for r in rows if r["campaigns"] == n and r["threads"] == 1 and r["retrieval"].startswith("exact"))
        print(
            f"{n} campaigns, 1 thread: ANN p99 {ann['p99 ms']:.2f} ms (CPU {ann['cpu ms p99']:.2f} ms) "
            f"vs exact scan {ex['p99 ms']:.2f} ms (CPU {ex['cpu ms p99']:.2f} ms) "
            f"({ex['p99 ms'] / ann['p99 ms']:.2f}x); decisions/s {ann['decisions/s'] / ex['decisions/s']:.2f}x"
        )


if __name__ == "__main__":
    main()
