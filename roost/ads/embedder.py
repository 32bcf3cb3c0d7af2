"""Which embedding function ads use: the workspace's model, or a hashed bag of words.

Retrieval and brand safety take any ``Callable[[list[str]], np.ndarray]`` that
returns L2-normalized rows, plus a ``space`` string naming it (cached creative
vectors and trained probes are only valid within one space). The model's space
is the content hash of ``workspace/model``. The hashing embedder is lexical,
needs no model, and is what ``--embedder hashing`` and the tests use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from roost.ads.catalog import words
from roost.embedfn import EmbedFn
from roost.errors import UserError
from roost.workspace import StageMissing, Workspace, file_hash

if TYPE_CHECKING:
    from roost.embeddings import TextEmbedder


# Function words every text shares: left in, they would decide most of a bag-of-words similarity.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "get",
        "got",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "more",
        "my",
        "no",
        "not",
        "now",
        "of",
        "on",
        "one",
        "or",
        "our",
        "out",
        "so",
        "some",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


@dataclass
class HashingEmbedder:
    """Signed feature hashing of a text's content words, log-scaled counts, L2-normalized."""

    dim: int = 256

    @property
    def space(self) -> str:
        return f"hashing-{self.dim}-v2"

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                if w in STOPWORDS or len(w) < 2:
                    continue
                h = xxhash.xxh64_intdigest(w.encode())
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        out = np.sign(out) * np.log1p(np.abs(out))  # a word said five times is not five times the topic
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def has_model(ws: Workspace) -> bool:
    return (ws.model / "config.json").is_file()


def model_embedder(ws: Workspace, loaded: TextEmbedder | None = None) -> tuple[EmbedFn, str]:
    """The workspace model's embedding function and its space id; StageMissing without a model. ``loaded``: that
    model already in memory (the server's), used rather than reading it again."""
    if not has_model(ws):
        raise StageMissing(
            f"no model at {ws.model} (config.json missing): train and export one first, or use --embedder hashing"
        )
    if loaded is None:
        from roost.embeddings import TextEmbedder

        loaded = TextEmbedder.from_dir(ws.model)
    return loaded.embed, f"model-{file_hash(ws.model / 'model.safetensors')[:16]}"


def resolve_embedder(ws: Workspace, kind: str, loaded: TextEmbedder | None = None) -> tuple[EmbedFn, str]:
    """``kind``: "model" (the workspace model, ``loaded`` if given), "hashing", or "auto" (the model when there
    is one)."""
    if kind == "hashing" or (kind == "auto" and not has_model(ws)):
        h = HashingEmbedder()
        return h, h.space
    if kind in ("model", "auto"):
        return model_embedder(ws, loaded)
    raise UserError(f"embedder must be model, hashing or auto, got {kind!r}")
