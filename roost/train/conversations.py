"""Chat conversations mined from the corpus's reply threads: the data ``roost sft`` fine-tunes on.

A reply thread is a tree (the corpus ``threads`` table); each root-to-leaf path
is a candidate conversation, the root post a user turn and the replies
alternating assistant, user, assistant, ... Posts in a row by the same author
(a self-reply thread) are one turn, joined by a newline.

Social threads are many-voiced, and a chat model should learn a *dialogue*: so
by default (``two_party``) a path is kept only while the root's author and the
first replier take turns, and cut where a third voice comes in. A path is also
cut at a post with no text. A conversation must end with an assistant turn (a
trailing user turn teaches nothing) and have at least a user and an assistant
turn. The @handles a reply starts with are dropped: the platform puts them
there, and a chat model should not answer "@someone ...". Paths that collapse
to the same turns, or to a prefix of a kept conversation, are dropped, so no
reply is trained on twice.

A chat model should answer what it is asked, and a social reply often does not
(a new aside, a switch of language, an emoji): with ``min_shared_words`` > 0 a
conversation is also cut at the first assistant turn that shares fewer content
words (3+ letters, not a stopword, case-folded) with the user turn it replies
to. On the sample network 1 keeps the replies that take up their parent's
subject (6,144 of the 50k-post network's 10,348 training conversations) and
drops the ones a chat model should not copy: a bare "Same here.", a switch of
language. ``roost demo`` mines with 1; ``roost sft`` keeps every reply unless
asked (0), since real replies share fewer words with their parent than the
sample's do.

The pretrained model can judge too (``min_answer_gain``, off unless given):
each (user turn, assistant turn) pair is scored by how much the user turn
raises the reply's likelihood under it (roost.train.answer_gain, nats per
token) and a conversation is cut at the first assistant turn scoring below the
threshold, after the shared-words cut. Shared words see only the surface; the
gain sees whether the reply needed its parent. On the sample network (where
every English reply names its parent's subject) it does not sort by topic but
by act: of the first answers that share a word, those with a gain >= 0 are 79%
answers to questions, those below 28% (BENCHMARKS.md, "Chat"). It is off by
default: it scores every reply with the model before training (about a minute
for the demo's), and cutting by it did not raise the chat's on-topic share.
The caller brings the scorer, so this module stays torch-free.

The train/validation split is by thread (an xxh64 hash of the root id, as
:class:`roost.tokenizer.ValSplit` does for posts): conversations of one
thread share their first turns, so they must stay on one side. It is drawn
among the threads that kept a conversation, so a small network cut hard by
``min_shared_words`` still holds one out.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from roost.corpus import schema
from roost.errors import UserError
from roost.tokenizer import ValSplit

MIN_TURNS = 2  # a user turn and an assistant turn
_CONTENT_WORD = re.compile(r"[^\W\d_]{3,}")
_STOPWORDS = frozenset(
    "the and for are but not you all any can had her was one our out has his how its may now see who did get got "
    "let say she too yes yet lol omg why him off own few "
    "that this with have just what your about really think from they them there their been were would could should "
    "like dont when then than into some more most much very will also only even does here want know make made being "
    "because still over after before other which while where these those".split()
)
# The run of @handles (or ingest's mention placeholders) a reply starts with.
LEADING_MENTIONS = re.compile(r"^(?:\s*(?:@\w+|" + re.escape(schema.PLACEHOLDERS["mention"]) + r"))+\s*")


@dataclass
class MiningConfig:
    system_prompt: str | None = None  # a system turn put before every conversation; None for none
    two_party: bool = True  # cut a path where someone other than the root's author and the first replier speaks
    strip_reply_mentions: bool = True  # drop the @handles a reply starts with (the platform adds them, not the writer)
    val_fraction: float = 0.05  # threads held out for validation (by hash of the root id)
    min_shared_words: int = 0  # cut at the first reply sharing fewer content words with its user turn; 0: never
    # cut at the first reply whose answer gain (nats/token the user turn adds to its log-likelihood under the
    # pretrained model) is below this; None: never
    min_answer_gain: float | None = None

    def __post_init__(self) -> None:
        if self.min_shared_words < 0:
            raise UserError(f"--min-shared-words must be >= 0, got {self.min_shared_words}")
        if self.min_answer_gain is not None and (
            isinstance(self.min_answer_gain, bool)
            or not isinstance(self.min_answer_gain, (int, float))
            or not math.isfinite(self.min_answer_gain)
        ):
            raise UserError(
                f"--min-answer-gain must be a finite number of nats per token (e.g. 0: the parent must make the "
                f"reply likelier), got {self.min_answer_gain!r}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise UserError("--system-prompt is empty; leave it out for no system turn")


@dataclass(frozen=True)
class Conversation:
    thread_id: str
    post_ids: tuple[str, ...]  # the posts that make its turns, root first
    messages: list[dict[str, str]] = field(hash=False, compare=False)  # {"role", "content"}, as encode_chat takes


@dataclass
class MinedConversations:
    train: list[Conversation]
    val: list[Conversation]
    threads: int  # reply threads in the corpus
    paths: int  # root-to-leaf paths looked at

    @property
    def counts(self) -> dict[str, int]:
        return {
            "threads": self.threads,
            "paths": self.paths,
            "train_conversations": len(self.train),
            "val_conversations": len(self.val),
        }


@dataclass
class _Post:
    text: str
    author: str
    order: str  # sorts replies in the order they were posted: time, then id


# Scores (user turn, assistant turn) pairs: roost.train.answer_gain.answer_gains with the pretrained model.
AnswerScorer = Callable[[list[tuple[str, str]]], Sequence[float]]


def mine_conversations(
    corpus_dir: str | Path,
    cfg: MiningConfig | None = None,
    progress: bool = False,
    scorer: AnswerScorer | None = None,
) -> MinedConversations:
    """Conversations from every reply thread of the corpus, split into train and validation.

    ``scorer`` is needed when ``cfg.min_answer_gain`` is set: it scores every distinct pair at once (batched).
    """
    from tqdm import tqdm

    cfg = cfg or MiningConfig()
    if cfg.min_answer_gain is not None and scorer is None:
        raise ValueError("MiningConfig.min_answer_gain is set but no scorer was given to score the replies")
    corpus_dir = Path(corpus_dir)
    threads = schema.read_table(corpus_dir, "threads", columns=["thread_id", "post_id", "parent_id"])
    if threads.num_rows == 0:
        raise UserError(
            f"corpus {corpus_dir} has no reply threads (its threads table is empty), so there are no "
            "conversations to fine-tune on; run `roost ingest` on posts that include replies first"
        )
    posts = _thread_posts(corpus_dir, threads.column("post_id"))
    children: dict[str, list[str]] = defaultdict(list)
    for post_id, parent_id in zip(threads.column("post_id").to_pylist(), threads.column("parent_id").to_pylist()):
        if parent_id is not None:
            children[parent_id].append(post_id)
    for kids in children.values():
        kids.sort(key=lambda p: posts[p].order if p in posts else "")
    roots = sorted(set(threads.column("thread_id").to_pylist()))
    turns_by_root, n_paths = {}, 0
    for root in tqdm(roots, desc="sft: mining threads", unit="thread", disable=not progress):
        paths = _root_to_leaf_paths(root, children)
        n_paths += len(paths)
        turns_by_root[root] = [_turns(p, posts, cfg) for p in paths]
    if cfg.min_answer_gain is not None:
        _cut_by_answer_gain(turns_by_root, scorer, cfg.min_answer_gain)
    by_root = {}
    for root, paths_turns in turns_by_root.items():
        found = _drop_repeats([c for c in (_conversation(root, t, cfg) for t in paths_turns) if c is not None])
        if found:
            by_root[root] = found
    # chosen among the threads that kept a conversation, so cutting threads (min_shared_words) leaves some held out
    val_threads = set(_val_threads(list(by_root), cfg.val_fraction))
    train = [c for root, found in by_root.items() if root not in val_threads for c in found]
    val = [c for root, found in by_root.items() if root in val_threads for c in found]
    return MinedConversations(train, val, threads=len(roots), paths=n_paths)


def _thread_posts(corpus_dir: Path, post_ids: pa.ChunkedArray) -> dict[str, _Post]:
    """The posts in threads, by id, read with a filter pushed down to the Parquet scan."""
    table = schema.dataset(corpus_dir, "posts").to_table(
        columns=["id", "text", "author_id", "created_at"], filter=ds.field("id").isin(post_ids.combine_chunks())
    )
    times = pc.fill_null(pc.cast(table.column("created_at"), pa.int64()), 0).to_numpy(zero_copy_only=False)
    columns = (table.column(name).to_pylist() for name in ("id", "text", "author_id"))
    return {
        post_id: _Post(text or "", author or "", f"{int(t):020d}:{post_id}")
        for post_id, text, author, t in zip(*columns, times)
    }


def _val_threads(roots: list[str], fraction: float) -> list[str]:
    """The roots held out: hash below the fraction's threshold; at least one when there are two or more threads."""
    if fraction == 0 or len(roots) < 2:
        return []
    hashes = ValSplit.hashes(roots)
    chosen = ValSplit(min(int(fraction * 2**64), 2**64 - 1)).is_val(roots)
    if not chosen.any():
        chosen[int(np.argmin(hashes))] = True
    if chosen.all():
        chosen[int(np.argmax(hashes))] = False
    return [r for r, v in zip(roots, chosen) if v]


def _root_to_leaf_paths(root: str, children: dict[str, list[str]]) -> list[list[str]]:
    paths, stack = [], [[root]]
    while stack:
        path = stack.pop()
        kids = children.get(path[-1])
        if not kids:
            paths.append(path)
        else:
            stack.extend(path + [k] for k in reversed(kids))  # reversed: the first reply's path comes out first
    return paths


_Turn = tuple[str, list[str], list[str]]  # (author, texts, post ids)


def _turns(path: list[str], posts: dict[str, _Post], cfg: MiningConfig) -> list[_Turn]:
    """The path as turns, one per run of posts by one author, cut as the module docstring says."""
    turns: list[_Turn] = []
    for post_id in path:
        post = posts.get(post_id)
        text = post.text if post is not None else ""
        if turns and cfg.strip_reply_mentions:
            text = LEADING_MENTIONS.sub("", text)
        if not text.strip():
            break
        if turns and turns[-1][0] == post.author:
            turns[-1][1].append(text)
            turns[-1][2].append(post_id)
            continue
        if cfg.two_party and len(turns) >= 2 and post.author != turns[len(turns) % 2][0]:
            break
        turns.append((post.author, [text], [post_id]))
    if cfg.min_shared_words:
        turns = _answering_prefix(turns, cfg.min_shared_words)
    return turns


def _content(turn: _Turn) -> str:
    """A turn's message: its posts' texts, a line each."""
    return "\n".join(turn[1])


def _cut_by_answer_gain(turns_by_root: dict[str, list[list[_Turn]]], scorer: AnswerScorer, threshold: float) -> None:
    """Cut every path (in place) at its first assistant turn whose answer gain is below ``threshold``."""
    pairs = sorted(
        {
            (_content(turns[i - 1]), _content(turns[i]))
            for paths in turns_by_root.values()
            for turns in paths
            for i in range(1, len(turns), 2)
        }
    )
    gains = dict(zip(pairs, scorer(pairs)))
    for paths in turns_by_root.values():
        for turns in paths:
            for i in range(1, len(turns), 2):
                if not gains[(_content(turns[i - 1]), _content(turns[i]))] >= threshold:  # a NaN gain fails too
                    del turns[i:]
                    break


def _conversation(root: str, turns: list[_Turn], cfg: MiningConfig) -> Conversation | None:
    """The turns as alternating user/assistant messages ending on an assistant turn; None if under two turns."""
    if len(turns) % 2:  # end on an assistant turn
        turns = turns[:-1]
    if len(turns) < MIN_TURNS:
        return None
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages += [{"role": ("user", "assistant")[i % 2], "content": _content(turn)} for i, turn in enumerate(turns)]
    return Conversation(root, tuple(p for _, _, ids in turns for p in ids), messages)


def _content_words(texts: list[str]) -> set[str]:
    return {w for t in texts for w in _CONTENT_WORD.findall(t.lower())} - _STOPWORDS


def _answering_prefix(turns: list, min_shared: int) -> list:
    """The turns up to (not including) the first assistant turn that shares under ``min_shared`` content
    words with the user turn before it."""
    for i in range(1, len(turns), 2):
        if len(_content_words(turns[i][1]) & _content_words(turns[i - 1][1])) < min_shared:
            return turns[:i]
    return turns


def _drop_repeats(conversations: list[Conversation]) -> list[Conversation]:
    """Keep each distinct conversation once, and none that is a prefix of another (its replies would count twice)."""
    seen: set[tuple[str, ...]] = set()
    prefixes = {c.post_ids[:k] for c in conversations for k in range(1, len(c.post_ids))}
    kept = []
    for c in conversations:
        if c.post_ids not in seen and c.post_ids not in prefixes:
            seen.add(c.post_ids)
            kept.append(c)
    return kept
