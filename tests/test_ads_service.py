"""One ad decision end to end in-process: retrieval, eligibility rules, pacing, and the model path."""

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roost.ads.campaign import CampaignSpec
from roost.ads.clicks import ClickSigner
from roost.ads.context import UserHistory
from roost.ads.embedder import HashingEmbedder
from roost.ads.pacing import DAY_S
from roost.ads.service import AdRequest, AdService
from roost.ads.store import AdStore
from roost.corpus.schema import POSTS

NOON = 1_767_225_600 + DAY_S / 2  # 2026-01-01 12:00 UTC


def spec(cid, text, keywords=(), bid=0.5, **over) -> CampaignSpec:
    body = {
        "id": cid,
        "advertiser": "Acme",
        "name": cid,
        "budget": 100,
        "bid_type": "cpc",
        "bid": bid,
        "targeting": {"keywords": list(keywords)},
        "creatives": [{"text": text, "landing_url": f"https://{cid}.example/"}],
    }
    body.update(over)
    return CampaignSpec.model_validate(body)


def service(tmp_path, specs, clock=lambda: NOON, **kwargs) -> AdService:
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(specs, now=NOON - DAY_S)
    h = HashingEmbedder()
    return AdService(
        store, ClickSigner(b"0123456789abcdef0123456789abcdef"), embed=h, space=h.space, clock=clock, seed=0, **kwargs
    )


def served(svc, **req) -> list[str]:
    return [ad.campaign_id for ad in svc.serve(AdRequest(**req))]


def test_model_retrieval_finds_unkeyworded_creatives_and_keyword_retrieval_does_not(tmp_path):
    specs = [spec("tea", "green tea leaves brewed fresh"), spec("shoes", "trail running shoes", keywords=["trail"])]
    svc = service(tmp_path, specs)
    assert served(svc, query="I love green tea in the morning") == ["tea"]
    svc.config.retrieval = "keyword"
    assert served(svc, query="I love green tea in the morning") == []
    assert served(svc, query="off to the trail") == ["shoes"]


def test_higher_ecpm_wins_the_first_slot_and_prices_follow_gsp(tmp_path):
    specs = [spec("a", "running shoes", bid=1.0), spec("b", "running shoes", bid=0.5)]
    svc = service(tmp_path, specs)
    ads = svc.serve(AdRequest(query="running shoes", slots=2))
    assert [a.campaign_id for a in ads] == ["a", "b"]
    assert ads[0].price_micros == pytest.approx(500_000, abs=1) and ads[1].price_micros < 500_000


def test_eligibility_rules(tmp_path):
    day_start = datetime.fromtimestamp(NOON - DAY_S / 2, timezone.utc).isoformat()
    specs = [
        spec("capped", "running shoes", frequency_cap=2),
        spec("later", "running shoes", schedule={"start": "2027-01-01T00:00:00Z"}),
        spec("mornings", "running shoes", schedule={"start": day_start, "hours": [6, 7, 8]}),
        spec("german", "running shoes", targeting={"languages": ["de"]}),
        spec("paused", "running shoes", status="paused"),
    ]
    svc = service(tmp_path, specs)
    assert served(svc, query="running shoes", user_id="u1", slots=5, lang="en") == ["capped"]
    assert served(svc, query="running shoes", user_id="u1", slots=5, lang="en") == ["capped"]
    assert served(svc, query="running shoes", user_id="u1", slots=5, lang="en") == []  # cap of 2 reached
    assert sorted(served(svc, query="running shoes", user_id="u2", slots=5, lang="de")) == ["capped", "german"]


def test_pacing_holds_back_a_campaign_that_spent_its_day_too_early(tmp_path):
    now = [1_767_225_600 + DAY_S * 0.1]  # 02:24 UTC
    svc = service(tmp_path, [spec("paced", "running shoes", bid=0.5, daily_budget=1)], clock=lambda: now[0])
    shown = 0
    for _ in range(30):
        for ad in svc.serve(AdRequest(query="running shoes")):
            shown += 1
            svc.click(ad.click_token)  # every ad clicked: spend races ahead of the clock
    view = svc.store.campaign_view("paced")
    assert view["spend"] <= 0.1 * 1 + 0.1 + 0.5  # about the day's elapsed share, not the whole daily budget
    now[0] = 1_767_225_600 + DAY_S * 0.9
    assert served(svc, query="running shoes") == ["paced"]  # later in the day it runs again


def test_brand_safety_threshold_per_campaign(tmp_path):
    from roost.ads.brand_safety import SafetyProbes

    h = HashingEmbedder()
    texts = ["you are vile trash and i hate you"] * 20 + ["lovely morning run in the park"] * 20
    probes = SafetyProbes(space=h.space).bind(h)
    probes.add("hate", texts, h(texts), np.array([1] * 20 + [0] * 20), {1})
    specs = [
        spec("careful", "running shoes for the park"),
        spec("bold", "running shoes for the park", brand_safety_threshold=1.0),
    ]
    svc = service(tmp_path, specs, safety=probes)
    assert sorted(served(svc, context_text="lovely run in the park, running shoes", slots=2)) == ["bold", "careful"]
    assert served(svc, context_text="vile trash, i hate you, running shoes", slots=2) == ["bold"]


def write_posts(corpus, rows: list[tuple[str, str, str, float]]) -> None:
    """A corpus posts shard from (id, text, author, unix time) rows."""
    corpus.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    table = pa.table(
        {
            "id": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "author_id": [r[2] for r in rows],
            "created_at": pa.array(
                [datetime.fromtimestamp(r[3], timezone.utc) for r in rows], POSTS.field("created_at").type
            ),
            "lang": ["en"] * n,
            "reply_to": [None] * n,
            "conversation_id": [None] * n,
            "hashtags": [[]] * n,
            "mentions": [[]] * n,
            "urls": [[]] * n,
            "like_count": [0] * n,
            "retweet_count": [0] * n,
            "reply_count": [0] * n,
            "source": ["t"] * n,
        },
        schema=POSTS,
    )
    pq.write_table(table, corpus / "posts-00000.parquet")


def test_users_recent_posts_are_the_context(tmp_path):
    corpus = tmp_path / "corpus"
    write_posts(
        corpus,
        [
            ("p1", "my sourdough bread finally rose", "alice", 1),
            ("p2", "new trail shoes today", "bob", 2),
            ("p3", "baking bread all weekend", "alice", 3),
        ],
    )
    history = UserHistory.from_corpus(corpus, keep=1)
    assert [t for _, t in history.recent["alice"]] == ["baking bread all weekend"] and history.activity["alice"] == 2
    assert history.post_texts(["p1", "zz"]) == ["my sourdough bread finally rose"]  # not kept: read from the corpus
    svc = service(
        tmp_path, [spec("bakery", "fresh bread from our bakery"), spec("shoes", "trail shoes sale")], history=history
    )
    assert served(svc, user_id="alice") == ["bakery"]
    assert served(svc, user_id="bob") == ["shoes"]
    assert served(svc, context_post_ids=["p1"]) == ["bakery"]


def test_the_workspace_model_embeds_creatives_once(tmp_path):
    from test_engine_fixtures import model_workspace, tiny_model

    from roost.ads.setup import open_service
    from roost.tokenizer import (
        MIN_VOCAB_SIZE,
        RoostTokenizer,
        TokenizerConfig,
        train_bpe,
    )
    from roost.workspace import Workspace

    texts = ["the cat sat on a mat", "a red dog ran", "blue hat on a big log"] * 30
    tok = RoostTokenizer(train_bpe(texts, TokenizerConfig(vocab_size=MIN_VOCAB_SIZE + 20)))
    ws = Workspace(model_workspace(tmp_path, tok, tiny_model(tok)))
    AdStore(ws.ads_db).add_campaigns([spec("cat", "the cat sat on a mat"), spec("dog", "a red dog ran")])
    svc = open_service(ws)
    assert svc.space.startswith("model-")
    assert len(svc.store.cached_embeddings(svc.space)) == 2
    assert served(svc, query="the cat sat on a mat") == ["cat"]
    calls = []
    svc2 = open_service(ws)
    svc2.index.embed = lambda texts: calls.append(texts)
    svc2.refresh(["cat"])
    assert calls == []  # the cached vectors were used


def test_the_saved_creative_index_is_reused_and_rebuilt_when_the_db_changes(tmp_path):
    from roost.ads.setup import ads_dir, open_service
    from roost.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    AdStore(ws.ads_db).add_campaigns([spec("tea", "green tea leaves"), spec("shoes", "trail running shoes")])
    open_service(ws, embedder="hashing")
    saved = ads_dir(ws) / "creatives-hashing-256-v2.usearch"
    stamp = saved.stat().st_mtime_ns
    assert served(open_service(ws, embedder="hashing"), query="green tea") == ["tea"]
    assert saved.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    for f in ws.root.glob("ads.db*"):
        f.unlink()
    # a new database reuses creative ids 1 and 2 for other texts: the saved graph must not be trusted
    AdStore(ws.ads_db).add_campaigns([spec("coffee", "espresso beans roast"), spec("chess", "rook endgame gambit")])
    svc = open_service(ws, embedder="hashing")
    assert saved.stat().st_mtime_ns != stamp
    assert served(svc, query="espresso beans") == ["coffee"]


def test_targeting_over_arrays_needs_every_word_of_a_term(tmp_path):
    """The catalog's array match (one gather over candidates' term ids) is the keyword rule: all words of a term."""
    from roost.ads.catalog import Catalog

    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(
        [
            spec("pc", "x", ["gaming pc", "console"]),
            spec("chairs", "x", ["gaming chair"], targeting={"keywords": ["gaming chair"], "topics": ["furniture"]}),
            spec("tea", "x", ["green tea", "matcha", "oolong tea"]),
        ]
    )
    arrays = Catalog(store).arrays
    rows = np.array([arrays.row[c] for c in ("tea", "pc", "chairs", "pc")])
    assert arrays.targeted(rows, {"gaming", "pc"}).tolist() == [False, True, False, True]
    assert arrays.targeted(rows, {"gaming", "tea"}).tolist() == [False, False, False, False]  # no whole term
    assert arrays.targeted(rows, {"furniture", "oolong", "tea"}).tolist() == [True, False, True, False]
    assert arrays.targeted(rows[:0], {"pc"}).tolist() == []
