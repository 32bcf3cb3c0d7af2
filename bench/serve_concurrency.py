"""Serving throughput: aggregate tokens/s and time to first token with 1, 4 and 16 concurrent streams.

    .venv/bin/python bench/serve_concurrency.py --depth 4 --tokens 128 --rounds 3 --slots 16

Starts ``roost serve`` as a subprocess on a random-init GPT of the given depth
(see engine_decode.make_model_dir), then streams chat completions through HTTP
with httpx: ``c`` requests at once, each for exactly ``--tokens`` tokens
(``ignore_eos``), ``--rounds`` times per level. Aggregate tokens/s is all
generated tokens over the wall time of the round (median over rounds); TTFT is
measured per stream from sending the request to its first token's chunk
(``logprobs`` is on so that every token has a chunk, even one that ends in the
middle of a character and so carries no text yet).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_decode import make_model_dir


async def one_stream(client: httpx.AsyncClient, i: int, tokens: int) -> tuple[float, int]:
    body = {
        "model": "roost",
        "messages": [{"role": "user", "content": f"post number {i}: tell me more"}],
        "max_tokens": tokens,
        "temperature": 1.0,
        "seed": i,
        "ignore_eos": True,
        "stream": True,
        "logprobs": True,
        "stream_options": {"include_usage": True},
    }
    start, ttft, n = time.perf_counter(), None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if ttft is None and chunk["choices"] and chunk["choices"][0]["logprobs"]:
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                n = chunk["usage"]["completion_tokens"]
    return ttft if ttft is not None else float("nan"), n


async def level(url: str, concurrency: int, tokens: int, rounds: int) -> tuple[list[float], list[float]]:
    rates, ttfts = [], []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await one_stream(client, 0, 4)  # warm-up
        for r in range(rounds):
            t0 = time.perf_counter()
            results = await asyncio.gather(*(one_stream(client, r * 100 + i, tokens) for i in range(concurrency)))
            wall = time.perf_counter() - t0
            rates.append(sum(n for _, n in results) / wall)
            ttfts += [t for t, _ in results]
    return rates, ttfts


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--tokens", type=int, default=128, help="tokens per stream")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--levels", default="1,4,16")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    args = p.parse_args()

    from roost.model import GPTConfig, describe

    with tempfile.TemporaryDirectory() as tmp:
        make_model_dir(Path(tmp), args.depth, args.vocab, args.context)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roost",
                "serve",
                "--workspace",
                f"{tmp}/workspace",
                "--port",
                str(port),
                "--slots",
                str(args.slots),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("roost serve did not start")
                time.sleep(0.2)
            results = {
                c: asyncio.run(level(url, c, args.tokens, args.rounds)) for c in map(int, args.levels.split(","))
            }
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(describe(GPTConfig.from_depth(args.depth, vocab_size=args.vocab, max_seq_len=args.context)))
    print(
        f"{args.tokens} tokens per stream, {args.rounds} rounds per level, {args.slots} slots, "
        f"server torch threads {args.threads}"
    )
    print(f"{'streams':>7} {'tokens/s':>9} {'vs 1':>6} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12}")
    base = statistics.median(results[min(results)][0])
    for c, (rates, ttfts) in results.items():
        rate = statistics.median(rates)
        print(f"{c:7d} {rate:9.1f} {rate / base:5.1f}x {pct(ttfts, 0.5) * 1e3:12.1f} {pct(ttfts, 0.99) * 1e3:12.1f}")


if __name__ == "__main__":
    main()
