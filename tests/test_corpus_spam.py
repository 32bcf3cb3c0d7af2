"""The learned spam filter: its signals, its model, and ingest dropping and listing what it finds."""

from __future__ import annotations

import json
import math

import numpy as np
from test_corpus_fixtures import posts, run, v2, write_jsonl

from roost.corpus import IngestConfig
from roost.corpus.filters import is_spam
from roost.corpus.normalize import normalize_post
from roost.corpus.spam import (
    ACCOUNT_FEATURES,
    FEATURES,
    TEXT_FEATURES,
    SpamModel,
    accounts_per_skeleton,
    author_keys,
    skeleton_key,
)

PITCH = "Make $5000 a week from home, no experience needed"
ORGANIC = [
    "the match last night went to penalties and our keeper saved two of them",
    "finally tried the new ramen place downtown and the broth was worth the wait",
    "reading a long novel about sailors lost at sea, slow but beautiful so far",
    "my dog refuses to walk in the rain and just sits at the door looking at me",
    "the city council voted on the bike lanes today and the debate went on for hours",
    "baked bread for the first time this weekend, the crust came out far too hard",
]


def test_the_same_pitch_with_other_links_and_tags_has_one_key():
    a = skeleton_key(f"{PITCH} https://bit.ly/abc #money")
    assert a == skeleton_key(f"{PITCH.upper()} https://tinyurl.com/zz9 #win #free @someone") != 0
    assert skeleton_key("happy birthday!") == 0  # too short to say anything
    keys = np.array([a, a, a, 5, 0], dtype=np.uint64)
    who = author_keys(["u1", "u1", "u2", "u3", None], ["p1", "p2", "p3", "p4", "p5"])
    assert accounts_per_skeleton(keys, who) == {a: 2, 5: 1}


def test_fit_keeps_good_posts_under_the_budget_and_unknown_accounts_use_the_text_head():
    rng = np.random.default_rng(0)
    n = 4000
    y = (rng.random(n) < 0.1).astype(int)
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, TEXT_FEATURES.index("other_accounts_same_text")] += 4 * y
    x[:, FEATURES.index("account_age_days")] -= 3 * y
    x[: n // 2, len(TEXT_FEATURES) :] = np.nan  # half the posts come without account data
    model = SpamModel.fit(x, y, max_good_dropped=0.002)
    scores, spam = model.decide(x)
    assert spam[y == 0].mean() <= 0.002 and spam[y == 1].mean() > 0.8
    assert model.accounts.coef[FEATURES.index("account_age_days")] < 0  # young accounts are suspicious
    # an unknown account is not a suspicious one: the same text scores the same whatever NaN stands in
    row = x[:1].copy()
    assert model.decide(row)[0][0] == scores[0] and math.isnan(row[0, -1]) and len(ACCOUNT_FEATURES) == 3


def test_leading_reply_mentions_are_participants_not_stuffing():
    cfg = IngestConfig()
    thread_reply = " ".join(["@p"] * 15) + " I think you are all right about this one"
    assert not is_spam(normalize_post(thread_reply), cfg)
    assert is_spam(normalize_post("look at this " + " ".join(f"@p{i}" for i in range(12))), cfg)


def _users(ids: list[str], created: str, followers: int) -> dict:
    return {
        "data": [],
        "includes": {
            "users": [
                {
                    "id": i,
                    "username": i,
                    "name": i,
                    "created_at": created,
                    "public_metrics": {"followers_count": followers},
                }
                for i in ids
            ]
        },
    }


def test_ingest_drops_a_campaign_from_young_accounts_and_lists_it(ws, tmp_path):
    bots = [f"bot{i}" for i in range(6)]
    rows = [v2(i, text, author_id=f"human{i}") for i, text in enumerate(ORGANIC)]
    rows += [v2(100 + i, f"{PITCH} https://bit.ly/x{i}{'q' * i}", author_id=b) for i, b in enumerate(bots)]
    src = write_jsonl(
        tmp_path / "f.jsonl",
        [
            _users(bots, "2023-04-28T00:00:00.000Z", 1),
            _users([f"human{i}" for i in range(6)], "2015-01-01T00:00:00.000Z", 300),
            *rows,
        ],
    )
    rep = run(ws, src, dedup_near=False)  # near-dedup would take some copies first; the filter is under test
    assert rep.dropped == {"spam_learned": 6} and set(posts(ws)) == {str(i) for i in range(6)}
    listed = [json.loads(line) for line in (ws.corpus / "spam.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in listed) == [str(100 + i) for i in range(6)]
    assert all(r["by"] == "model" and r["score"] >= 0.5 and r["text"].startswith("Make $5000") for r in listed)
    assert ws.read_manifest("corpus")["counts"]["kept"] == 6  # accounting holds after the rewrite

    off = run(ws.__class__(tmp_path / "off"), src, spam_learned=False, dedup_near=False)
    assert off.kept == 12 and off.dropped == {}


def test_stats_show_handles_and_flag_spam_tags_that_dominate(ws, tmp_path):
    from roost.corpus.stats import corpus_stats, format_stats

    rows = [_users(["bot1", "human0"], "2015-01-01T00:00:00.000Z", 10)]
    rows += [v2(i, f"{ORGANIC[i % 6]} #followback #giveaway #win", author_id="bot1") for i in range(8)]
    rows += [v2(50 + i, f"{ORGANIC[i]} #cooking", author_id="human0") for i in range(3)]
    run(ws, write_jsonl(tmp_path / "f.jsonl", rows), drop_spam=False, dedup_near=False, dedup_exact=False)
    out = format_stats(corpus_stats(ws))
    assert "#followback  (spam-like)" in out and "#cooking  (spam-like)" not in out
    assert "WARNING: spam-like tags are 3 of the top 4 hashtags" in out
    assert "@bot1 (bot1)" in out and "@human0 (human0)" in out

    clean = ws.__class__(tmp_path / "clean")
    run(clean, write_jsonl(tmp_path / "g.jsonl", rows[:1] + rows[-3:]))
    assert "WARNING" not in format_stats(corpus_stats(clean))
