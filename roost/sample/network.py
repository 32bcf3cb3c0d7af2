"""The sample network's people: users with interests and languages, and who follows whom.

Interests drive everything downstream: what a user posts about, whose posts they
reply to, whom they follow (people with shared interests, and popular people,
more often) and which ads they click (:mod:`roost.sample.truth`).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
import unicodedata
from dataclasses import dataclass, field

from roost.sample.phrases import FIRST_NAMES, LANGUAGE_WEIGHTS, LANGUAGES, LAST_NAMES
from roost.sample.topics import BANKS, TOPICS

SPAM_USER_RATE = 0.01
MAX_INTERESTS = 4


@dataclass
class User:
    idx: int
    username: str
    name: str
    lang: str
    created_ms: int
    interests: dict[str, float]  # topic -> weight; weights sum to 1
    fame: float  # drives followers and engagement
    activity: float  # drives how often the user posts
    spam: bool = False
    followees: list[int] = field(default_factory=list)
    followers: int = 0


def ascii_slug(s: str) -> str:
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", s.lower())


class Sampler:
    """Weighted choice over a fixed population, O(log n) a draw."""

    def __init__(self, items: list[int], weights: list[float]):
        self.items = items
        self.cum = list(itertools.accumulate(weights))

    def __bool__(self) -> bool:
        return bool(self.items)

    def draw(self, rng: random.Random) -> int:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


def _interests(rng: random.Random, topic_weights: list[float]) -> dict[str, float]:
    k = min(MAX_INTERESTS, 1 + int(rng.expovariate(0.8)))
    chosen: list[str] = []
    while len(chosen) < k:
        t = rng.choices(TOPICS, weights=topic_weights)[0]
        if t not in chosen:
            chosen.append(t)
    raw = [rng.gammavariate(1.0, 1.0) + 0.05 for _ in chosen]
    # Round once here: the generator and the ground truth files use the same numbers.
    weights = [round(w / sum(raw), 3) for w in raw]
    weights[0] = round(1.0 - sum(weights[1:]), 3)
    return dict(sorted(zip(chosen, weights), key=lambda kv: -kv[1]))


def make_users(rng: random.Random, n: int, start_ms: int) -> list[User]:
    # Some topics are more popular than others; which ones depends on the seed.
    topic_weights = [1.0 / (rank + 1) ** 0.6 for rank in range(len(TOPICS))]
    rng.shuffle(topic_weights)
    n_spam = max(1, round(n * SPAM_USER_RATE)) if n >= 10 else 0
    taken: set[str] = set()
    users: list[User] = []
    for i in range(n):
        spam = i >= n - n_spam
        lang = "en" if spam else rng.choices(LANGUAGES, weights=LANGUAGE_WEIGHTS)[0]
        first, last = rng.choice(FIRST_NAMES[lang]), rng.choice(LAST_NAMES[lang])
        if spam:
            base = rng.choice(["crypto_gains", "free_prizes", "promo_deals", "win_big"])
        else:
            base = rng.choice([ascii_slug(first) + ascii_slug(last)[:4], ascii_slug(first) + "_" + ascii_slug(last)])
        username = base[:11]
        while username in taken:
            username = f"{base[:11]}{rng.randrange(10000)}"
        taken.add(username)
        interests = {"crypto": 1.0} if spam else _interests(rng, topic_weights)
        name = f"{first} {last}"
        if rng.random() < 0.1:
            name += " " + rng.choice(BANKS[next(iter(interests))].emoji)
        users.append(
            User(
                idx=i,
                username=username,
                name=name,
                lang=lang,
                # spam accounts are young: platforms suspend them within weeks
                created_ms=start_ms
                - rng.randrange(*((1, 60) if spam else (30, 5000))) * 86_400_000
                - rng.randrange(86_400_000),
                interests=interests,
                fame=0.05 if spam else rng.paretovariate(1.3),
                activity=3.0 if spam else rng.paretovariate(1.8),
                spam=spam,
            )
        )
    return users


def topic_samplers(users: list[User], weight: str) -> dict[str, Sampler]:
    """Per topic: a sampler over the (non-spam) users interested in it, by interest x ``weight``."""
    out: dict[str, Sampler] = {}
    for t in TOPICS:
        members = [u for u in users if t in u.interests and not u.spam]
        out[t] = Sampler([u.idx for u in members], [u.interests[t] * getattr(u, weight) for u in members])
    return out


def make_follows(rng: random.Random, users: list[User]) -> list[tuple[int, int]]:
    """Each user follows people who share an interest (80%) or anyone popular (20%)."""
    by_topic = topic_samplers(users, "fame")
    anyone = Sampler([u.idx for u in users if not u.spam], [u.fame for u in users if not u.spam])
    edges: list[tuple[int, int]] = []
    n = len(users)
    for u in users:
        want = min(n - 1, max(1, int(rng.lognormvariate(math.log(25), 0.8))))
        if u.spam:
            want = min(n - 1, 3 * want)
        topics, tweights = list(u.interests), list(u.interests.values())
        seen = {u.idx}
        for _ in range(3 * want):
            if len(u.followees) >= want:
                break
            pick = by_topic[rng.choices(topics, weights=tweights)[0]] if rng.random() < 0.8 else anyone
            if not pick:
                continue
            v = pick.draw(rng)
            if v not in seen:
                seen.add(v)
                u.followees.append(v)
                edges.append((u.idx, v))
    for _, v in edges:
        users[v].followers += 1
    return edges
