"""Unsafe posts and the platform's moderation signals on them, with the truth of which posts are unsafe.

A real network knows which posts it removed, withheld or marked sensitive, and
those signals are what brand safety can learn from without anyone labelling
data. The sample plants them the way a platform has them: a few percent of
posts turn abusive (threats, hate, insults), most of those are acted on
(removed, withheld in some countries, or marked sensitive), some slip through
unflagged, and a few harmless posts are marked sensitive by mistake. So
signals are noisy labels, and ``truth/post_topics.jsonl``'s ``unsafe`` (the
category) is the ground truth they are scored against.

In the export, API v2's own fields carry them: ``possibly_sensitive`` (on every
tweet, as the API writes it) and ``withheld``; removed posts, which the public
API never returns but the network's own export has, carry ``"moderation":
"removed"``. An unsafe post keeps its original words after the abuse, so it
stays on its topic and no two are alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

UNSAFE_SHARE = 0.08  # of the eligible posts (organic English posts nobody replied to or copied)
FALSE_FLAG_SHARE = 0.003  # of the safe ones: marked sensitive by mistake
ACTIONS = (("removed", 0.3), ("withheld", 0.15), ("sensitive", 0.4), (None, 0.15))  # None: never flagged

# category -> (openers, cores, targets): a sentence is one of each, so they vary
BANKS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "threat": (
        ["swear to god", "mark my words", "last warning,", "i mean it,", "tonight", "one more word and"],
        [
            "i will kill",
            "i am going to shoot",
            "someone should stab",
            "i will beat the life out of",
            "i will burn down the house of",
            "going to hunt down and hurt",
            "i will break every bone of",
        ],
        ["you", "that ref", "my neighbour", "the whole team", "every one of them", "that idiot driver", "your family"],
    ),
    "hate": (
        ["honestly", "face it,", "truth is", "say it louder:", "nobody wants to admit it but"],
        [
            "all immigrants are vermin and",
            "those people are subhuman and",
            "women are worthless and",
            "that religion is a disease and",
            "foreigners are animals and",
            "their kind are filth and",
        ],
        [
            "should be wiped out",
            "should be deported to hell",
            "deserve to suffer",
            "do not belong here",
            "should be locked in cages",
            "ruin everything they touch",
        ],
    ),
    "insult": (
        ["shut up", "listen here", "lol", "wow", "seriously"],
        [
            "you pathetic moron,",
            "you disgusting pig,",
            "you worthless piece of trash,",
            "you braindead loser,",
            "you ugly stupid clown,",
            "you filthy scumbag,",
        ],
        [
            "nobody likes you",
            "go crawl back under your rock",
            "do everyone a favour and vanish",
            "your mother should be ashamed",
            "kill yourself",
            "everyone laughs at you",
        ],
    ),
}


@dataclass
class Flag:
    unsafe: str | None  # the ground truth: the category, or None for a safe post flagged by mistake
    action: str | None  # what the platform did: removed | withheld | sensitive | None (missed)


def _action(rng: random.Random) -> str | None:
    x = rng.random()
    for action, share in ACTIONS:
        if x < share:
            return action
        x -= share
    return None


def plant(rng: random.Random, posts: list) -> dict[int, Flag]:
    """Rewrite some posts (``roost.sample.posts.Post``) as unsafe, in place; post index -> its flag.

    Only English organic posts that nothing replies to, retweets or copies are
    chosen, so no reply answers words its parent no longer has.
    """
    referenced = {i for p in posts for i in (p.parent, p.ref) if i is not None}
    eligible = [
        i
        for i, p in enumerate(posts)
        if p.kind in ("post", "reply") and p.lang == "en" and not p.dirt and i not in referenced
    ]
    flags: dict[int, Flag] = {}
    for i in eligible:
        if rng.random() < UNSAFE_SHARE:
            category = rng.choice(sorted(BANKS))
            opener, core, target = (rng.choice(part) for part in BANKS[category])
            p = posts[i]
            mention, rest = p.text.split(" ", 1) if p.kind == "reply" and p.text.startswith("@") else ("", p.text)
            p.text = " ".join(x for x in (mention, f"{opener} {core} {target}.", rest) if x)
            flags[i] = Flag(category, _action(rng))
        elif rng.random() < FALSE_FLAG_SHARE:
            flags[i] = Flag(None, "sensitive")
    return flags


def annotate(tweet: dict[str, Any], truth: dict[str, Any], flag: Flag | None) -> None:
    """Put the platform's signal on the tweet (API v2 fields) and the ground truth on its truth line."""
    action = flag.action if flag else None
    tweet["possibly_sensitive"] = action == "sensitive"
    if action == "withheld":
        tweet["withheld"] = {"copyright": False, "country_codes": ["DE", "FR"], "scope": "tweet"}
    elif action == "removed":
        tweet["moderation"] = "removed"
    if flag is not None:
        truth["unsafe"] = flag.unsafe
        truth["moderation"] = action
