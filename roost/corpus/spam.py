"""The learned spam filter: signals a platform has, and a logistic regression trained on them.

Rules (``filters.is_spam``) catch tag and link stuffing post by post. Spam that
reads like a post needs what only the whole run shows: the same text posted by
many accounts, the links' domains (shorteners), and the account behind it (age,
followers) where the export has users. :func:`features` turns a batch of kept
posts into those signals; :class:`SpamModel` scores them.

The packaged model (``spam_model.json``) was trained by ``bench/spam.py --write``
on a sample network of another seed than the demo's, with the sample's ground
truth as labels; ``IngestConfig.spam_model`` takes a model trained on your own
labels instead (same JSON). At the end of a run ingest scores the run's new
posts and drops those at or above the model's threshold, as ``spam_learned``,
and lists every post dropped as spam (rules and model) in ``corpus/spam.jsonl``.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import xxhash

from roost.corpus.filters import strip_entities
from roost.errors import UserError

DEFAULT_MODEL = Path(__file__).with_name("spam_model.json")
# Link shorteners hide where a link goes; t.co is left out: Twitter wraps every link in it.
SHORTENERS = frozenset(
    "bit.ly tinyurl.com goo.gl ow.ly is.gd buff.ly t.ly rebrand.ly cutt.ly shorturl.at tiny.cc rb.gy bl.ink "
    "short.io s.id v.gd qr.ae adf.ly shorte.st bitly.com".split()
)
# What every post shows, and what only an export with users adds (NaN where the account is unknown).
TEXT_FEATURES = (
    "urls",
    "hashtags",
    "mentions",
    "entity_share",
    "shortener_links",
    "other_accounts_same_text",
    "reply_with_link",
    "pitch_marks",
)
ACCOUNT_FEATURES = ("account_age_days", "followers", "followers_per_year")
FEATURES = TEXT_FEATURES + ACCOUNT_FEATURES
MIN_SKELETON_WORDS = 4  # shorter texts ("happy birthday!") repeat across accounts without being spam
# Digits and ASCII punctuation to spaces: then str.split() gives the words (a regex costs 3x as much per post).
_NON_WORD = str.maketrans({c: " " for c in string.punctuation + string.digits})
# A sales pitch's words: money, discounts, calls to act. Not "!!": real posts shout as often as spam does.
_PITCH = re.compile(
    r"\$\d|\d+ ?%|\b(?:free|dm|claim|giveaway|click|followback|follow back|link in (?:my )?bio)\b", re.IGNORECASE
)
_PITCH_HINTS = ("$", "%", "free", "dm", "claim", "giveaway", "click", "follow", "bio")  # in the lower-cased text


def skeleton_key(text: str) -> int:
    """A hash of the post's words without links, mentions, tags, digits and case: the same pitch posted with
    other links or tags has the same key. 0 for posts too short to say."""
    words = [w for w in strip_entities(text).lower().translate(_NON_WORD).split() if w.isalpha()]  # no emoji
    return xxhash.xxh3_64_intdigest(" ".join(words).encode()) if len(words) >= MIN_SKELETON_WORDS else 0


def accounts_per_skeleton(skeletons: np.ndarray, authors: np.ndarray) -> dict[int, int]:
    """Skeleton key -> how many distinct accounts posted it (key 0, too short, left out)."""
    pairs = np.unique(np.stack([skeletons, authors], axis=1), axis=0) if len(skeletons) else np.zeros((0, 2), np.uint64)
    keys, counts = np.unique(pairs[:, 0], return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, counts) if k}


def author_keys(author_ids: list[str | None], post_ids: list[str]) -> np.ndarray:
    """A hash per post's account; a post with no author counts as its own account."""
    return np.fromiter(
        (
            xxhash.xxh3_64_intdigest((a if a is not None else "post:" + p).encode())
            for a, p in zip(author_ids, post_ids)
        ),
        np.uint64,
        len(post_ids),
    )


@dataclass
class Account:
    created_at: float | None  # epoch seconds
    followers: int | None


def accounts(users: pa.Table) -> dict[str, Account]:
    """The users table as id -> Account (the last row of an id wins)."""
    d = users.select(["id", "created_at", "followers_count"]).to_pydict()
    return {
        i: Account(c.timestamp() if c is not None else None, f)
        for i, c, f in zip(d["id"], d["created_at"], d["followers_count"])
    }


def post_signals(
    texts: list[str], urls: list, hashtags: list, mentions: list, reply_to: list
) -> tuple[np.ndarray, np.ndarray]:
    """(skeleton keys, TEXT_FEATURES rows with ``other_accounts_same_text`` left 0) of a batch of posts: the part
    that needs only the post, computed in ingest's workers; :func:`features` completes the rows at run end."""
    keys = np.fromiter(map(skeleton_key, texts), np.uint64, len(texts))
    out = np.zeros((len(texts), len(TEXT_FEATURES)), dtype=np.float32)
    for i, text in enumerate(texts):
        u, t, m = urls[i] or [], hashtags[i] or [], mentions[i] or []
        shorteners = sum((urlsplit(x).hostname or "").removeprefix("www.") in SHORTENERS for x in u)
        out[i] = (
            math.log1p(len(u)),
            math.log1p(len(t)),
            math.log1p(len(m)),
            min(1.0, (len(u) + len(t) + len(m)) / max(1, len(text.split()))),
            shorteners,
            0.0,
            float(reply_to[i] is not None and bool(u)),
            math.log1p(_pitch_marks(text)),
        )
    return keys, out


def _pitch_marks(text: str) -> int:
    low = text.lower()
    return len(_PITCH.findall(text)) if any(h in low for h in _PITCH_HINTS) else 0


def features(
    signals: np.ndarray,
    keys: np.ndarray,
    copies: dict[int, int],
    authors: list[str | None],
    times: np.ndarray,
    users: dict[str, Account],
) -> np.ndarray:
    """FEATURES rows: ``signals`` from :func:`post_signals` with the run-wide copy counts filled in and each
    post's account (NaN where the export has none), from its author and posting time (epoch seconds, NaN if
    unknown: :func:`epoch_seconds`)."""
    out = np.full((len(signals), len(FEATURES)), np.nan)
    out[:, : len(TEXT_FEATURES)] = signals
    col = TEXT_FEATURES.index("other_accounts_same_text")
    out[:, col] = np.log1p([max(0, copies.get(int(k), 1) - 1) for k in keys])
    for i, (author, t) in enumerate(zip(authors, times)):
        acct = users.get(author) if author is not None else None
        if acct is not None and acct.created_at is not None and not math.isnan(t):
            age = max(0.0, (t - acct.created_at) / 86_400)
            followers = acct.followers or 0
            out[i, len(TEXT_FEATURES) :] = (
                math.log1p(age),
                math.log1p(followers),
                math.log1p(followers / max(age / 365, 1 / 12)),
            )
    return out


def table_features(posts: pa.Table, users: dict[str, Account], copies: dict[int, int]) -> np.ndarray:
    """FEATURES of every post of a corpus posts table (for training: ingest computes them as it goes)."""
    d = posts.select(["text", "author_id", "created_at", "reply_to", "hashtags", "mentions", "urls"]).to_pydict()
    keys, signals = post_signals(d["text"], d["urls"], d["hashtags"], d["mentions"], d["reply_to"])
    return features(signals, keys, copies, d["author_id"], epoch_seconds(posts.column("created_at")), users)


def epoch_seconds(times: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as float epoch seconds, NaN where null."""
    import pyarrow.compute as pc

    micros = pc.cast(pc.cast(times, pa.timestamp("us", tz="UTC")), pa.int64())
    return pc.divide(pc.cast(micros, pa.float64()), 1e6).to_numpy(zero_copy_only=False).astype(np.float64)


@dataclass
class Head:
    """Standardized features -> logistic regression -> P(spam); at or above ``threshold`` is spam."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    @classmethod
    def fit(cls, names: tuple[str, ...], x: np.ndarray, y: np.ndarray, max_good_dropped: float) -> Head:
        """The threshold lets at most ``max_good_dropped`` of the good training rows through as spam."""
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(max_iter=2000, class_weight="balanced").fit((x - mean) / scale, y)
        head = cls(list(names), mean.tolist(), scale.tolist(), lr.coef_[0].tolist(), float(lr.intercept_[0]), 0.5)
        good = np.sort(head.scores(x[y == 0]))
        k = int(len(good) * max_good_dropped)
        head.threshold = float(max(0.5, np.nextafter(good[-k - 1], 1.0))) if len(good) else 0.5
        return head


@dataclass
class SpamModel:
    """Two heads: one for posts whose account the export describes, one on the text signals alone (plain
    text, CSV without users, an author missing from the users table), so a missing account never reads as
    a suspicious one."""

    accounts: Head
    text: Head
    trained_on: str = ""

    def decide(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(spam), is spam) per row of FEATURES."""
        known = ~np.isnan(x[:, len(TEXT_FEATURES) :]).any(1)
        scores = np.empty(len(x))
        scores[known] = self.accounts.scores(x[known])
        scores[~known] = self.text.scores(x[~known, : len(TEXT_FEATURES)])
        return scores, scores >= np.where(known, self.accounts.threshold, self.text.threshold)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, max_good_dropped: float = 0.001, trained_on: str = "") -> SpamModel:
        """Fit both heads on labelled rows (y = 1 spam); the account head on the rows that have one."""
        known = ~np.isnan(x[:, len(TEXT_FEATURES) :]).any(1)
        return cls(
            Head.fit(FEATURES, x[known], y[known], max_good_dropped),
            Head.fit(TEXT_FEATURES, x[:, : len(TEXT_FEATURES)], y, max_good_dropped),
            trained_on,
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path | None = None) -> SpamModel:
        path = Path(path or DEFAULT_MODEL)
        if not path.is_file():
            raise FileNotFoundError(f"spam model {path} not found; train one with bench/spam.py --write")
        d = json.loads(path.read_text())
        model = cls(Head(**d["accounts"]), Head(**d["text"]), d.get("trained_on", ""))
        if (tuple(model.accounts.features), tuple(model.text.features)) != (FEATURES, TEXT_FEATURES):
            raise UserError(
                f"spam model {path} was trained on other features than this roost computes "
                f"({list(FEATURES)}); retrain it (bench/spam.py --write)"
            )
        return model


def drop_learned_spam(folder: Path, shards: list[str], model: SpamModel, x: np.ndarray) -> tuple[int, list[dict]]:
    """Rewrite the run's new post shards without the posts ``model`` calls spam; ``x`` holds their FEATURES rows
    in the order the shards hold them. Returns how many were dropped and, for ``spam.jsonl``, each with its score."""
    import pyarrow.parquet as pq

    from roost.corpus.writer import rewrite_shard

    scores, spam = model.decide(x)
    n, log, start = 0, [], 0
    for name in shards:
        rows = pq.read_metadata(folder / name).num_rows
        mine, mine_scores = spam[start : start + rows], scores[start : start + rows]
        start += rows
        if mine.any():
            table = pq.read_table(folder / name)
            gone = table.filter(pa.array(mine)).select(["id", "author_id", "text"]).to_pylist()
            log += [{**row, "by": "model", "score": round(float(s), 4)} for row, s in zip(gone, mine_scores[mine])]
            rewrite_shard(folder / name, table.filter(pa.array(~mine)))
            n += int(mine.sum())
    if start != len(x):
        raise AssertionError(f"spam features for {len(x)} posts but the run's shards hold {start}")
    return n, log
