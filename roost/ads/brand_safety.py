"""Brand safety: classifiers over a text's model tokens and its embedding flag unsafe context.

By default the one probe, ``moderation``, learns from the network's own
signals: the posts ingest saw removed, withheld or marked sensitive
(``corpus/moderation.jsonl``) against the posts nobody acted on
(:func:`workspace_examples`), so a workspace needs no labelled files. Those
labels are noisy (platforms miss some unsafe posts and flag some safe ones),
and the probe (:mod:`roost.ads.safety_model`) is weighted for its rare positives so it does not learn to say
"safe" always. Probes can also be trained from labelled files in the TweetEval
format (a text file with one example per line and a label file with one integer
label per line). A context's unsafe score is the highest probability any probe
gives to any of its texts or their sentences (:meth:`SafetyProbes.scores`); no
ad is served next to context scoring above the campaign's
``brand_safety_threshold``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from roost.ads.safety_model import Tokenize, TokenProbe, tokens_for
from roost.errors import UserError
from roost.workspace import atomic_write_json

FORMAT = 2  # 1 (no "format" key): logistic regression on the embeddings alone
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentence_split(text: str) -> list[str]:
    """The text's sentences (split after . ! or ? and a space), without empty ones."""
    return [s for s in SENTENCE_END.split(text) if s.strip()]


@dataclass
class SafetyProbes:
    """Named classifiers (:class:`TokenProbe`), each over the text's tokens and its embedding in ``space``.

    Scoring needs the tokens the probes were trained on: :meth:`bind` them from the embedder (the model's
    tokenizer, or the hashing embedder's words) after loading.
    """

    space: str  # embedding space the probes were trained in
    tokens: str = ""  # "model" (the model tokenizer's ids) or "words" (no model); set by bind()
    names: list[str] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)  # TokenProbe fields, one per name
    metrics: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)  # what it was trained from (e.g. the corpus's hash), to redo it
    format: int = FORMAT
    _tokenize: Tokenize | None = field(default=None, repr=False, compare=False)
    _scorers: list = field(default_factory=list, repr=False, compare=False)

    def bind(self, embed) -> SafetyProbes:
        """Use ``embed``'s tokens (the embedder the vectors come from); refuse a different kind than trained on."""
        kind, tokenize = tokens_for(embed)
        if self.tokens and kind != self.tokens:
            raise UserError(
                f"brand-safety probes were trained on {self.tokens} tokens, the embedder gives {kind} tokens: "
                "rerun `roost ads train-safety` with this embedder"
            )
        self.tokens, self._tokenize = kind, tokenize
        self._scorers = [TokenProbe(**p).scorer(tokenize) for p in self.probes]
        return self

    def _bound(self) -> Tokenize:
        if self._tokenize is None:
            raise RuntimeError("SafetyProbes.bind(embed) first: scoring needs the tokens the probes were trained on")
        return self._tokenize

    def scores(self, texts: list[str], vecs: np.ndarray, sentences: bool = True) -> np.ndarray:
        """Unsafe probability per text (``vecs``: their embeddings, one row each): the max over the probes and,
        with ``sentences`` (as a context is served), over the text and each of its sentences.

        Why sentences: an abusive clause at the head of an ordinary post ("tonight i will kill that ref. My
        two cents: ...") is diluted in the whole post's TF-IDF: two such threats scored 0.06 and 0.14 whole,
        below every strict advertiser's threshold, and above 0.99 alone (BENCHMARKS.md, Ads). Each sentence
        is scored with its post's embedding, so this costs token lookups, not another embedding per decision.
        """
        self._bound()
        if not sentences or not texts:
            return np.max([score(texts, vecs) for score in self._scorers], axis=0)
        parts = [[text, *split] if len(split := sentence_split(text)) > 1 else [text] for text in texts]
        flat = [part for ps in parts for part in ps]
        owner = np.repeat(np.arange(len(texts)), [len(ps) for ps in parts])
        scored = self.scores(flat, np.atleast_2d(vecs)[owner], sentences=False)
        return np.maximum.reduceat(scored, np.cumsum([0] + [len(ps) for ps in parts[:-1]]))

    def add(self, name: str, texts: list[str], vecs: np.ndarray, labels: np.ndarray, unsafe: set[int]) -> None:
        """Train probe ``name`` (C and the embedding weight chosen by cross-validation on these examples)."""
        y = np.isin(labels, list(unsafe)).astype(np.int64)
        if not 0 < y.sum() < len(y):
            raise UserError(
                f"probe {name!r}: need both safe and unsafe examples (unsafe labels {sorted(unsafe)}), "
                f"have {int(y.sum())} unsafe of {len(y)}"
            )
        probe = TokenProbe.fit(texts, vecs, y, self._bound())
        self.names.append(name)
        self.probes.append(asdict(probe))
        self._scorers.append(probe.scorer(self._bound()))

    def evaluate(self, name: str, texts: list[str], vecs: np.ndarray, labels: np.ndarray, unsafe: set[int]) -> dict:
        """AUC and macro-F1 (at 0.5) of one probe on held-out examples."""
        from sklearn.metrics import f1_score, roc_auc_score

        p = self._scorers[self.names.index(name)](texts, vecs)
        y = np.isin(labels, list(unsafe)).astype(np.int64)
        m = {"auc": float(roc_auc_score(y, p)), "macro_f1": float(f1_score(y, p > 0.5, average="macro")), "n": len(y)}
        self.metrics[name] = m
        return m

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {k: v for k, v in asdict(self).items() if not k.startswith("_")})

    @classmethod
    def load(cls, path: str | Path, embed=None) -> SafetyProbes:
        """The saved probes, bound to ``embed``'s tokens when given; a clear error for an older format."""
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise UserError(
                f"{path} holds brand-safety probes in an older format (embeddings only, format "
                f"{data.get('format', 1)}; this roost reads {FORMAT}): rerun `roost ads train-safety`"
            )
        probes = cls(**data)
        return probes.bind(embed) if embed is not None else probes


def workspace_examples(
    corpus_dir: str | Path, negatives_per_positive: int = 20, max_negatives: int = 50_000, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels from the corpus: every post the platform acted on, and a sample of the rest.

    Raises ValueError, saying what to do, when the corpus has no moderation signals.
    """
    from roost.corpus.schema import MODERATION_LOG, read_table

    log = Path(corpus_dir) / MODERATION_LOG
    flagged = set()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                flagged.add(json.loads(line)["id"])
    posts = read_table(corpus_dir, "posts", ["id", "text"])
    ids, texts = posts.column("id").to_pylist(), posts.column("text").to_pylist()
    pos = [t for i, t in zip(ids, texts) if i in flagged]
    if not pos:
        raise UserError(
            f"no moderation signals in {corpus_dir}: none of its posts was removed, withheld or marked "
            "sensitive (API v2 withheld/possibly_sensitive, or a 'moderation' column in CSV/Parquet); "
            "train from labelled files instead: --train NAME TEXTS LABELS"
        )
    rest = [t for i, t in zip(ids, texts) if i not in flagged]
    rng = np.random.default_rng(seed)
    n = min(len(rest), max_negatives, negatives_per_positive * len(pos))
    neg = [rest[k] for k in sorted(rng.choice(len(rest), size=n, replace=False))]
    return pos + neg, np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)


def train_from_signals(
    corpus_dir: str | Path,
    embed,
    space: str,
    limit: int | None = None,
    held_out: float = 0.2,
    seed: int = 0,
    threads: str = "fixed",
) -> SafetyProbes:
    """The ``moderation`` probe from the corpus's own signals, with AUC and macro-F1 on a held-out share.

    The held-out figures are against the platform's signals, which are noisy:
    the probe's real quality is measured against ground truth elsewhere (the
    sample's truth, TweetEval in BENCHMARKS.md).
    """
    from roost.ads.retrieval import embed_in_batches

    texts, labels = workspace_examples(corpus_dir, seed=seed)
    order = np.random.default_rng(seed).permutation(len(texts))[:limit]
    cut = max(1, int(len(order) * (1 - held_out)))
    shuffled = [texts[i] for i in order]
    vecs = embed_in_batches(embed, shuffled, desc="embedding moderated posts", threads=threads)
    probes = SafetyProbes(space=space).bind(embed)
    probes.add("moderation", shuffled[:cut], vecs[:cut], labels[order[:cut]], {1})
    if len(set(labels[order[cut:]].tolist())) == 2:
        probes.evaluate("moderation", shuffled[cut:], vecs[cut:], labels[order[cut:]], {1})
        probes.metrics["moderation"].update(flagged=int(labels.sum()), examples=len(texts))
    return probes
