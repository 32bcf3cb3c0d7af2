"""The sample ad inventory: advertisers, campaigns and creatives over the topics.

Each campaign has exactly the shape the ads admin API accepts, plus an ``"id"``
(``cmp-0001``, ...) that the ads store keeps as its external id and the click
model in :mod:`roost.sample.truth` is keyed by. Money is in currency units.
"""

from __future__ import annotations

import random
from typing import Any

from roost.sample.network import ascii_slug
from roost.sample.phrases import LANGUAGES
from roost.sample.topics import BANKS, TOPICS

ADVERTISER_SUFFIXES = ("Co", "Labs", "Supply", "Outfitters", "Club", "Store", "Works", "Hub")
CAMPAIGN_NAMES = ("Spring Push", "Summer Sale", "Launch", "Always-on", "Holiday", "Back to School", "Retargeting")
CREATIVES = (
    "{P} for every {topic} fan: save {pct}% this week at {brand}.",
    "New {product} just dropped. Shop now at {brand}!",
    "Into {topic}? Get {product} from {brand}, free shipping today.",
    "{brand}: the {product} everyone into {topic} is talking about.",
    "Upgrade your {topic} game with {product} from {brand}. {pct}% off.",
)


def _advertisers(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(name, topic) pairs; every topic gets at least one advertiser once there are enough."""
    out: list[tuple[str, str]] = []
    taken: set[str] = set()
    for i in range(n):
        topic = TOPICS[i] if i < len(TOPICS) else rng.choice(TOPICS)
        name = f"{rng.choice(BANKS[topic].brands)} {rng.choice(ADVERTISER_SUFFIXES)}"
        while name in taken:
            name = f"{rng.choice(BANKS[topic].brands)} {rng.choice(ADVERTISER_SUFFIXES)} {rng.randrange(2, 100)}"
        taken.add(name)
        out.append((name, topic))
    return out


def _creative(rng: random.Random, brand: str, topic: str, product: str, cid: str) -> dict[str, str]:
    text = rng.choice(CREATIVES).format(
        P=product[0].upper() + product[1:],
        product=product,
        topic=topic.upper() if len(topic) <= 2 else topic,
        brand=brand,
        pct=rng.choice((10, 15, 20, 25, 30)),
    )
    url = f"https://{ascii_slug(brand)}.example.com/{ascii_slug(product)}?utm_campaign={cid}"
    return {"text": text, "landing_url": url}


def make_campaigns(rng: random.Random, n: int) -> list[dict[str, Any]]:
    advertisers = _advertisers(rng, max(1, n // 3))
    campaigns = []
    for i in range(n):
        cid = f"cmp-{i + 1:04d}"
        brand, topic = advertisers[i] if i < len(advertisers) else rng.choice(advertisers)
        bank = BANKS[topic]
        topics = [topic]
        if rng.random() < 0.25:
            topics.append(rng.choice(bank.related))
        product = rng.choice(bank.products)
        budget = round(10 ** rng.uniform(2.3, 4.7), 2)
        bid_type = "cpc" if rng.random() < 0.7 else "cpm"
        bid = round(rng.uniform(0.1, 3.0) if bid_type == "cpc" else rng.uniform(0.5, 20.0), 2)
        roll = rng.random()
        languages = ["en"] if roll < 0.7 else ["en", rng.choice(LANGUAGES[1:])] if roll < 0.85 else list(LANGUAGES)
        campaign: dict[str, Any] = {
            "id": cid,
            "advertiser": brand,
            "name": f"{product[0].upper() + product[1:]} {rng.choice(CAMPAIGN_NAMES)}",
            "budget": budget,
            "daily_budget": max(1.0, round(budget / rng.randint(7, 60), 2)),
            "bid_type": bid_type,
            "bid": bid,
            "max_bid": round(bid * rng.uniform(1.0, 2.5), 2),
            "targeting": {
                "keywords": sorted(set(rng.sample(bank.keywords, rng.randint(2, 4))) | {product}),
                "topics": topics,
                "languages": languages,
            },
            "frequency_cap": rng.randint(1, 10),
            "creatives": [_creative(rng, brand, topic, product, cid) for _ in range(rng.randint(1, 3))],
        }
        if rng.random() < 0.4:
            campaign["brand_safety_threshold"] = round(rng.uniform(0.2, 0.9), 2)
        campaigns.append(campaign)
    return campaigns
