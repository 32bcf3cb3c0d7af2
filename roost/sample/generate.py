"""Generate the whole sample network into one folder, deterministically from a seed.

Layout of ``out_dir``::

    posts.jsonl      Twitter API v2 pages: {"data": [tweet, ...], "includes": {"users": [...]}, "meta": {...}}
    users.jsonl      one API v2 user object a line
    follows.csv      follower_id,followee_id
    ads.json         {"campaigns": [...]} in the ads admin API's shape, each with an "id"
    truth/           ground truth (see roost.sample.truth)
    manifest.json    config and counts (no timestamp, so the same seed gives byte-identical files)

Every part draws from its own random stream, so e.g. asking for more campaigns
leaves the posts unchanged.
"""

from __future__ import annotations

import calendar
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from roost import __version__
from roost.errors import UserError
from roost.sample import moderation
from roost.sample.ads import make_campaigns
from roost.sample.network import User, make_follows, make_users
from roost.sample.posts import Post, PostMaker, engagement, n_extras
from roost.sample.topics import TOPICS
from roost.sample.truth import TRUTH_DIR, ClickModel
from roost.sample.twitter import entities, iso, pages, snowflake
from roost.workspace import atomic_write_json, atomic_write_text

REFERENCE_TYPES = {"retweet": "retweeted", "quote": "quoted"}


@dataclass
class SampleConfig:
    users: int = 2000
    posts: int = 50_000
    campaigns: int = 200
    seed: int = 0
    start: str = "2024-01-01"  # first day of posts (UTC)
    days: int = 180  # posts spread over this many days

    def validate(self) -> None:
        if self.users < 2:
            raise UserError(f"users must be at least 2, got {self.users}")
        if self.posts < 1:
            raise UserError(f"posts must be at least 1, got {self.posts}")
        if self.campaigns < 0:
            raise UserError(f"campaigns must be >= 0, got {self.campaigns}")
        if self.days < 1:
            raise UserError(f"days must be at least 1, got {self.days}")
        try:
            time.strptime(self.start, "%Y-%m-%d")
        except ValueError:
            raise UserError(f"start must be a date like 2024-01-01, got {self.start!r}") from None

    @property
    def start_ms(self) -> int:
        return calendar.timegm(time.strptime(self.start, "%Y-%m-%d")) * 1000

    def rng(self, part: str) -> random.Random:
        return random.Random(f"roost-sample:{self.seed}:{part}")


@dataclass
class SampleSummary:
    out_dir: Path
    config: SampleConfig
    users: int
    follows: int
    posts: int
    campaigns: int
    kinds: dict[str, int] = field(default_factory=dict)  # posts by kind (post, reply, retweet, spam, ...)
    dirt: dict[str, int] = field(default_factory=dict)  # rewritten posts by kind (pii, mojibake, ...)
    moderation: dict[str, int] = field(default_factory=dict)  # unsafe posts by category, flags by action
    files: list[str] = field(default_factory=list)


def _user_json(u: User, uid: str, n_tweets: int) -> dict[str, Any]:
    about = "Giveaways daily, DM for promo." if u.spam else "Into " + ", ".join(u.interests) + "."
    return {
        "id": uid,
        "username": u.username,
        "name": u.name,
        "created_at": iso(u.created_ms),
        "description": about,
        "public_metrics": {
            "followers_count": u.followers,
            "following_count": len(u.followees),
            "tweet_count": n_tweets,
            "listed_count": u.followers // 20,
        },
    }


def _render(
    posts: list[Post], users: list[User], user_ids: list[str], flags: dict[int, moderation.Flag], bar: tqdm
) -> tuple[list[dict], list[dict]]:
    """Tweets in time order with snowflake ids, and their truth lines (``flags``: moderation, by post index)."""
    order = sorted(range(len(posts)), key=lambda i: (posts[i].ms, i))
    ids: list[str] = [""] * len(posts)
    last = 0
    for rank, i in enumerate(order):
        last = max(snowflake(posts[i].ms, rank), last + 1)
        ids[i] = str(last)
    by_name = {u.username: user_ids[u.idx] for u in users}
    tweets, truth = [], []
    for i in order:
        p, pid = posts[i], ids[i]
        t: dict[str, Any] = {
            "id": pid,
            "text": p.text,
            "author_id": user_ids[p.author],
            "created_at": iso(p.ms),
            "lang": p.lang,
            "conversation_id": ids[p.root] if p.root is not None else pid,
            "edit_history_tweet_ids": [pid],
        }
        if p.parent is not None:
            t["in_reply_to_user_id"] = user_ids[posts[p.parent].author]
            t["referenced_tweets"] = [{"type": "replied_to", "id": ids[p.parent]}]
        elif p.kind in ("retweet", "quote"):
            t["referenced_tweets"] = [{"type": REFERENCE_TYPES[p.kind], "id": ids[p.ref]}]
        t["public_metrics"] = {
            "like_count": p.likes,
            "retweet_count": p.retweets,
            "reply_count": p.replies,
            "quote_count": p.quotes,
        }
        if p.kind == "quote":
            src = posts[p.ref]
            status = f"https://twitter.com/{users[src.author].username}/status/{ids[p.ref]}"
            expanded = {k: v or status for k, v in p.urls.items()}
        else:
            expanded = p.urls
        ents = entities(p.text, by_name, expanded)
        if ents:
            t["entities"] = ents
        tweets.append(t)
        line: dict[str, Any] = {"id": pid, "topic": p.topic, "kind": p.kind, "lang": p.lang}
        if p.act:
            line["act"] = p.act
        if p.subject:
            line["subject"] = p.subject
        if p.question:
            line["question"] = True
        if p.dirt:
            line["dirt"] = p.dirt
        if p.ref is not None:
            line["copy_of" if p.kind in ("duplicate", "near_duplicate") else "ref"] = ids[p.ref]
        moderation.annotate(t, line, flags.get(i))
        truth.append(line)
        bar.update(1)
    return tweets, truth


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


def generate(out_dir: str | Path, *, progress: bool = False, **config) -> SampleSummary:
    """Write the sample network to ``out_dir`` (created if missing; each file replaced atomically); ``config``:
    :class:`SampleConfig`'s fields (users, posts, campaigns, seed, start, days), its defaults where absent."""
    cfg = SampleConfig(**config)
    cfg.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    start_ms, span_ms = cfg.start_ms, cfg.days * 86_400_000

    people = make_users(cfg.rng("users"), cfg.users, start_ms)
    follows = make_follows(cfg.rng("follows"), people)
    maker = PostMaker(cfg.rng("posts"), people, start_ms, span_ms)
    with tqdm(total=2 * cfg.posts, desc="sample posts", unit="post", disable=not progress) as bar:
        all_posts = maker.organic(cfg.posts - n_extras(cfg.posts), on_progress=lambda k: bar.update(k - bar.n))
        maker.modify(all_posts)
        all_posts += maker.extras(all_posts, cfg.posts)
        engagement(cfg.rng("engagement"), all_posts, people)
        flags = moderation.plant(cfg.rng("moderation"), all_posts)
        bar.update(cfg.posts - bar.n)
        user_ids = [str(snowflake(u.created_ms, u.idx)) for u in people]
        tweets, truth_lines = _render(all_posts, people, user_ids, flags, bar)
    n_tweets = Counter(p.author for p in all_posts)
    user_objs = [_user_json(u, user_ids[u.idx], n_tweets[u.idx]) for u in people]
    ads = make_campaigns(cfg.rng("ads"), cfg.campaigns)
    bases = cfg.rng("click")
    model = ClickModel(
        interests={user_ids[u.idx]: u.interests for u in people},
        campaign_topics={c["id"]: c["targeting"]["topics"] for c in ads},
        campaign_base={c["id"]: round(bases.gauss(-4.2, 0.4), 3) for c in ads},
    )

    by_id = {o["id"]: o for o in user_objs}
    files = {
        "posts.jsonl": _jsonl(pages(tweets, by_id)),
        "users.jsonl": _jsonl(user_objs),
        "follows.csv": "follower_id,followee_id\n" + "".join(f"{user_ids[a]},{user_ids[b]}\n" for a, b in follows),
        "ads.json": json.dumps({"campaigns": ads}, ensure_ascii=False, indent=2) + "\n",
        f"{TRUTH_DIR}/post_topics.jsonl": _jsonl(truth_lines),
    }
    for name, text in files.items():
        atomic_write_text(out / name, text)
    truth_json = {
        "topics.json": TOPICS,
        "user_interests.json": model.interests,
        "campaign_topics.json": model.campaign_topics,
        "click_model.json": model.params(),
    }
    for name, obj in truth_json.items():
        atomic_write_json(out / TRUTH_DIR / name, obj)

    summary = SampleSummary(
        out_dir=out,
        config=cfg,
        users=len(people),
        follows=len(follows),
        posts=len(all_posts),
        campaigns=len(ads),
        kinds=dict(Counter(p.kind for p in all_posts)),
        dirt=dict(Counter(d for p in all_posts for d in p.dirt if p.kind in ("post", "reply"))),
        moderation={
            **Counter(f"unsafe_{f.unsafe}" for f in flags.values() if f.unsafe),
            **Counter(f"flag_{f.action}" for f in flags.values() if f.action),
        },
        files=sorted([*files, *(f"{TRUTH_DIR}/{n}" for n in truth_json), "manifest.json"]),
    )
    manifest = {
        "stage": "sample",
        "roost_version": __version__,
        "config": asdict(cfg),
        "counts": {
            "users": summary.users,
            "follows": summary.follows,
            "posts": summary.posts,
            "campaigns": summary.campaigns,
            "kinds": summary.kinds,
            "dirt": summary.dirt,
            "moderation": summary.moderation,
        },
    }
    atomic_write_json(out / "manifest.json", manifest)
    return summary
