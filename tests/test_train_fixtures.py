"""A tiny workspace for the training tests: a real BPE tokenizer and token shards in the on-disk format.

It writes ``tokenizer/`` and ``tokens/`` the way the tokenizer stage does
(with roost.tokens' shard writer), from a small repetitive corpus, so the
tests need no corpus stage and no data outside the repository.
"""

from __future__ import annotations

import random

import numpy as np

from roost.tokenizer import RoostTokenizer, TokenizerConfig, train_bpe
from roost.tokens import _ShardWriter, token_dtype
from roost.workspace import Workspace

WORDS = "the cat sat on a mat and the dog ran to see it while birds sang in trees by the river".split()


def tiny_posts(n: int, seed: int) -> list[str]:
    """Short posts that repeat a few patterns, so a tiny model can learn them in a few steps."""
    rng = random.Random(seed)
    posts = []
    for _ in range(n):
        start = rng.randrange(len(WORDS))
        length = rng.randrange(4, 14)
        posts.append(" ".join(WORDS[(start + k) % len(WORDS)] for k in range(length)))
    return posts


def make_token_workspace(
    root, n_train: int = 400, n_val: int = 60, vocab_size: int = 320, posts: dict[str, list[str]] | None = None
) -> Workspace:
    """``posts``: the train and val posts to use instead of ``tiny_posts``."""
    ws = Workspace(root)
    posts = posts or {"train": tiny_posts(n_train, 0), "val": tiny_posts(n_val, 1)}
    train_texts, val_texts = posts["train"], posts["val"]
    hf = train_bpe(train_texts, TokenizerConfig(vocab_size=vocab_size, min_frequency=1))
    ws.tokenizer.mkdir(parents=True)
    hf.save(str(ws.tokenizer / "tokenizer.json"))
    tok = RoostTokenizer(hf)
    ws.write_manifest("tokenizer", vocab_size=tok.vocab_size, special_tokens=tok.special_ids)
    write_token_shards(ws, {"train": train_texts, "val": val_texts}, tok)
    return ws


def write_token_shards(
    ws: Workspace, texts: dict[str, list[str]], tok: RoostTokenizer, shard_tokens: int = 2500
) -> None:
    """Each split's posts as ``<|bos|>`` + ids, through the tokens stage's own shard writer (small shards: several)."""
    ws.tokens.mkdir(parents=True)
    dtype = token_dtype(tok.vocab_size)
    writers = {split: _ShardWriter(ws.tokens, split, dtype, shard_tokens) for split in texts}
    for split, posts in texts.items():
        writers[split].write([np.asarray([tok.bos_id, *ids], dtype=dtype) for ids in tok.encode_batch(posts)])
        writers[split].close()
    counts = {f"{s}_{k}": getattr(w, f"num_{k}") for s, w in writers.items() for k in ("tokens", "docs")}
    shards = {s: w.names for s, w in writers.items()}
    ws.write_manifest(
        "tokens", counts=counts, dtype=dtype.name, vocab_size=tok.vocab_size, bos_id=tok.bos_id, shards=shards
    )
