"""A tiny workspace for the SFT tests: a corpus of reply threads in the corpus schema, a real BPE tokenizer, a model.

The corpus is written the way ingest writes it (Parquet shards with the
``roost.corpus.schema`` tables, threads built by ``roost.corpus.threads``), so
the tests need no ingest run and no data outside the repository.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from roost.corpus.schema import POSTS
from roost.corpus.threads import build_threads
from roost.export import save_hf
from roost.model import GPT, GPTConfig
from roost.tokenizer import RoostTokenizer, TokenizerConfig, train_bpe
from roost.workspace import Workspace

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

# Question/answer pairs a tiny model can learn in a few dozen steps.
COLORS = {"sky": "blue", "grass": "green", "sun": "yellow", "snow": "white", "night": "black", "rose": "red"}


def write_corpus(ws: Workspace, posts: list[tuple[str, str, str, str | None]]) -> None:
    """``posts`` as (id, author, text, reply_to) in time order -> posts and threads shards and a manifest."""
    rows = [
        {
            "id": pid,
            "text": text,
            "author_id": author,
            "created_at": T0 + timedelta(minutes=i),
            "lang": "en",
            "reply_to": parent,
            "conversation_id": None,
            "hashtags": [],
            "mentions": [],
            "urls": [],
            "like_count": 0,
            "retweet_count": 0,
            "reply_count": 0,
            "source": "test",
        }
        for i, (pid, author, text, parent) in enumerate(posts)
    ]
    table = pa.Table.from_pylist(rows, schema=POSTS)
    ws.corpus.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, ws.corpus / "posts-00000.parquet")
    threads = build_threads(table.column("id"), table.column("reply_to"), table.column("conversation_id"))
    pq.write_table(threads, ws.corpus / "threads-00000.parquet")
    ws.write_manifest("corpus", counts={"posts": table.num_rows, "threads": threads.num_rows})


def chat_posts(n_threads: int, seed: int = 0) -> list[tuple[str, str, str, str | None]]:
    """Two-party threads: 'what color is the X' -> 'the X is C' -> 'and the Y' -> 'the Y is D', plus loners."""
    rng = random.Random(seed)
    things = sorted(COLORS)
    posts = []
    for t in range(n_threads):
        asker, answerer = f"u{rng.randrange(50)}", f"a{rng.randrange(50)}"
        a, b = rng.sample(things, 2)
        root, r1, r2, r3 = (f"{t}-{k}" for k in range(4))
        posts += [
            (root, asker, f"what color is the {a}", None),
            (r1, answerer, f"the {a} is {COLORS[a]}", root),
            (r2, asker, f"and the {b}", r1),
            (r3, answerer, f"the {b} is {COLORS[b]}", r2),
            (f"{t}-solo", f"s{t}", f"just a post about the {b}", None),
        ]
    return posts


def make_sft_workspace(root, n_threads: int = 120, vocab_size: int = 300, max_seq_len: int = 64) -> Workspace:
    """Corpus, tokenizer and a pretrained (randomly initialised) model in ``model/``, as `roost train` leaves it."""
    ws = Workspace(root)
    posts = chat_posts(n_threads)
    write_corpus(ws, posts)
    hf = train_bpe([text for _, _, text, _ in posts], TokenizerConfig(vocab_size=vocab_size, min_frequency=1))
    ws.tokenizer.mkdir(parents=True)
    hf.save(str(ws.tokenizer / "tokenizer.json"))
    tok = RoostTokenizer(hf)
    ws.write_manifest("tokenizer", vocab_size=tok.vocab_size, special_tokens=tok.special_ids)
    save_pretrained(ws, GPTConfig.from_depth(1, vocab_size=tok.vocab_size, max_seq_len=max_seq_len))
    return ws


def save_pretrained(ws: Workspace, config: GPTConfig, seed: int = 0) -> GPT:
    import torch

    torch.manual_seed(seed)
    model = GPT(config)
    save_hf(model, ws.model, ws.tokenizer, manifest=ws.manifest("model", source="roost train"))
    return model
