"""Token shards: the corpus tokenized into train and validation ``.bin`` files.

``workspace/tokens/`` holds ``{split}-{k:05d}.bin`` (raw token ids, uint16 when
the vocabulary fits, else uint32; open with ``np.memmap``), next to each a
``{split}-{k:05d}.starts.npy`` (int64 offset of every document's first token,
which is always ``<|bos|>``), and ``manifest.json`` (dtype, shards, counts,
the tokenizer and corpus it came from). A document never spans two shards.
Posts go to validation by the tokenizer stage's :class:`~roost.tokenizer.ValSplit`,
so the tokenizer never saw a validation post.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from roost.corpus import schema
from roost.errors import UserError
from roost.tokenizer import ValSplit, load_tokenizer
from roost.workspace import MANIFEST, StageMissing, Workspace, atomic_dir

SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


@dataclass
class TokensConfig:
    shard_tokens: int = 2**27  # tokens per shard before a new one starts (256 MiB of uint16)
    batch_size: int = 1024  # posts per encode_batch call


@dataclass
class _ShardWriter:
    """Appends documents to ``{split}-NNNNN.bin`` files, starting a new shard when one is full."""

    folder: Path
    split: str
    dtype: np.dtype
    shard_tokens: int
    names: list[str] = field(default_factory=list)
    num_tokens: int = 0
    num_docs: int = 0
    _file: BinaryIO | None = None
    _starts: list[int] = field(default_factory=list)
    _fill: int = 0

    def write(self, docs: list[np.ndarray]) -> None:
        for doc in docs:
            if self._file is None or (self._fill and self._fill + len(doc) > self.shard_tokens):
                self._open_next()
            self._starts.append(self._fill)
            self._file.write(doc.tobytes())
            self._fill += len(doc)
            self.num_tokens += len(doc)
            self.num_docs += 1

    def _open_next(self) -> None:
        self.close()
        name = f"{self.split}-{len(self.names):05d}"
        self.names.append(name)
        self._file = open(self.folder / f"{name}.bin", "wb")

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        np.save(self.folder / f"{self.names[-1]}.starts.npy", np.asarray(self._starts, dtype=np.int64))
        self._file, self._starts, self._fill = None, [], 0


def tokenize_corpus(ws: Workspace, cfg: TokensConfig | None = None, force: bool = False) -> dict:
    """Tokenize every post into the train/val shards; skipped when already made from these inputs.

    Streams the corpus in batches (memory stays bounded), encodes each batch on
    all cores, prepends ``<|bos|>`` to every post, and writes into a temporary
    folder swapped into place at the end, so a crash leaves the old shards intact.
    """
    from tqdm import tqdm

    cfg = cfg or TokensConfig()
    inputs = {"corpus": ws.stage_hash("corpus"), "tokenizer": ws.stage_hash("tokenizer")}
    if not force and ws.up_to_date("tokens", inputs):
        return ws.read_manifest("tokens")
    tok_manifest = ws.require("tokenizer")
    if tok_manifest["inputs"].get("corpus") != inputs["corpus"]:
        raise UserError(
            f"{ws.tokenizer} was trained on another corpus than {ws.corpus}; "
            f"run `roost tokenizer --workspace {ws.root}` to retrain it"
        )
    split = ValSplit(int(tok_manifest["val_threshold"]))
    tok = load_tokenizer(ws.tokenizer)
    dtype = token_dtype(tok.vocab_size)
    bos = np.array([tok.bos_id], dtype=dtype)
    n_posts = schema.dataset(ws.corpus, "posts").count_rows()
    with atomic_dir(ws.tokens) as tmp:
        writers = {s: _ShardWriter(tmp, s, dtype, cfg.shard_tokens) for s in SPLITS}
        with tqdm(total=n_posts, desc="tokens: encoding posts", unit="post") as bar:
            for batch in schema.iter_batches(ws.corpus, "posts", columns=["id", "text"], batch_size=cfg.batch_size):
                texts = [t or "" for t in batch.column("text").to_pylist()]
                is_val = split.is_val(batch.column("id").to_pylist())
                docs = [np.concatenate([bos, np.asarray(ids, dtype=dtype)]) for ids in tok.encode_batch(texts)]
                writers["val"].write([d for d, v in zip(docs, is_val) if v])
                writers["train"].write([d for d, v in zip(docs, is_val) if not v])
                bar.update(len(texts))
        for w in writers.values():
            w.close()
        return ws.write_manifest(
            "tokens",
            inputs,
            counts={f"{s}_{k}": getattr(w, f"num_{k}") for s, w in writers.items() for k in ("tokens", "docs")},
            folder=tmp,
            dtype=dtype.name,
            vocab_size=tok.vocab_size,
            bos_id=tok.bos_id,
            shards={s: w.names for s, w in writers.items()},
        )


class TokenShards:
    """Read one split's token shards: what the training loader and evaluation consume.

    ``shards[k]`` is a read-only 1-D memmap of shard k, ``doc_starts[k]`` the
    offsets in it where documents (each opening with ``<|bos|>``) begin.
    """

    def __init__(self, tokens_dir: str | Path, split: str):
        if split not in SPLITS:
            raise UserError(f"split must be one of {SPLITS}, got {split!r}")
        folder = Path(tokens_dir)
        if not (folder / MANIFEST).exists():
            raise StageMissing(f"no token shards at {folder} (missing {MANIFEST}); run `roost tokenizer` first")
        self.manifest: dict = json.loads((folder / MANIFEST).read_text())
        self.split = split
        self.dtype = np.dtype(self.manifest["dtype"])
        self.vocab_size: int = int(self.manifest["vocab_size"])
        self.bos_id: int = int(self.manifest["bos_id"])
        names = self.manifest["shards"][split]
        self.shards: list[np.memmap] = [np.memmap(folder / f"{n}.bin", dtype=self.dtype, mode="r") for n in names]
        self.doc_starts: list[np.ndarray] = [np.load(folder / f"{n}.starts.npy") for n in names]
        self.num_tokens: int = sum(len(s) for s in self.shards)
        expected = int(self.manifest["counts"][f"{split}_tokens"])
        if self.num_tokens != expected:
            raise UserError(
                f"{folder}: {split} shards hold {self.num_tokens} tokens but the manifest says {expected}; "
                "the shards are damaged, rerun `roost tokenizer --force`"
            )

    @property
    def num_docs(self) -> int:
        return sum(len(s) for s in self.doc_starts)
