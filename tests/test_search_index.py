"""The search index itself: lexical tokens, filters, fusion, live adds/deletes, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from test_search_fixtures import START, bow_embed, make_posts, write_corpus

from roost.search.build import build_workspace_index
from roost.search.docstore import Filters, Post
from roost.search.engine import (
    MODES,
    QueryError,
    SearchIndex,
    SearchRequest,
    parse_time,
)
from roost.search.ranking import RankingConfig, fuse, rrf, score_fusion
from roost.search.text import (
    hashtag_words,
    segment,
    split_hashtag,
    tokenize,
    word_counts,
)
from roost.search.vector import VectorConfig, VectorIndex


@pytest.fixture
def index(ws):
    write_corpus(ws, make_posts(60))
    build_workspace_index(ws, bow_embed)
    ix = SearchIndex(ws.index, bow_embed)
    yield ix
    ix.close()


TOPIC_OF = {p["id"]: p["topic"] for p in make_posts(60)}


def ids(hits):
    return [h.post.id for h in hits]


def test_tokenize_keeps_hashtags_mentions_emoji():
    terms = tokenize("Loved the #WorldCup final with @Ana ⚽🔥 <|url|> don't")
    assert {"#worldcup", "worldcup", "world", "cup", "@ana", "⚽", "🔥", "don't"} <= set(terms)
    assert "url" not in terms and "<" not in terms  # placeholders are not words
    assert split_hashtag("#HTTPServer_error2") == ["http", "server", "error", "2"]
    counts = word_counts(["game of thrones tonight", "the game", "thrones"])
    assert segment("gameofthrones", counts) == ["game", "of", "thrones"]
    assert hashtag_words("#GameOfThrones", counts) == ["game", "of", "thrones"]


def test_manifest_and_counts(ws, index):
    m = ws.read_manifest("index")
    assert m["counts"]["posts"] == 60 and m["counts"]["vectors"] == 60 and m["semantic"] is True
    assert m["inputs"]["corpus"] == ws.stage_hash("corpus")


def test_lexical_finds_hashtags_mentions_and_emoji(index):
    hits = index.search(SearchRequest("#foodie", k=100, mode="lexical"))
    assert hits and all("#foodie" in h.post.text for h in hits)
    assert len(hits) == 10  # p0..p59, cooking every 3rd, hashtags on even ones: 10 posts
    emoji = index.search(SearchRequest("🤖", k=100, mode="lexical"))
    assert ids(emoji) and all("🤖" in h.post.text for h in emoji)
    index.add([Post(id="m1", text="thanks @Ana for the tips", author_id="u9")])
    assert ids(index.search(SearchRequest("@ana", mode="lexical"))) == ["m1"]


@pytest.mark.parametrize("mode", MODES)
def test_filters_hold_in_every_mode(index, mode):
    cases = [
        (Filters(author="u1"), lambda p: p.author_id == "u1"),
        (Filters(lang="es"), lambda p: p.lang == "es"),
        (Filters(hashtag="worldcup"), lambda p: "worldcup" in p.hashtags),
        (
            Filters(since=(START.timestamp() + 10 * 86400), until=(START.timestamp() + 20 * 86400)),
            lambda p: START.timestamp() + 10 * 86400 <= p.created_at < START.timestamp() + 20 * 86400,
        ),
    ]
    for f, ok in cases:
        hits = index.search(SearchRequest("goal pasta model striker", k=50, mode=mode, filters=f))
        assert hits, f
        assert all(ok(h.post) for h in hits), (f, ids(hits))


def test_semantic_and_hybrid_rank_topic_posts_first(index):
    for mode in ("semantic", "hybrid"):
        top = index.search(SearchRequest("striker penalty derby", k=5, mode=mode))
        assert {TOPIC_OF[i] for i in ids(top)} == {"football"}, (mode, ids(top))


def test_explain_has_every_component(index):
    h = index.search(SearchRequest("pasta garlic", k=3, mode="hybrid"))[0]
    d = h.to_dict(explain=True)
    assert {"id", "text", "author", "created_at", "score", "explain"} <= set(d)
    e = d["explain"]
    assert {
        "bm25",
        "vector",
        "norm_bm25",
        "norm_vector",
        "relevance",
        "recency",
        "engagement",
        "author_quality",
    } <= set(e)
    cfg = index.ranking
    assert e["relevance"] == pytest.approx(
        (cfg.w_lexical * e["norm_bm25"] + cfg.w_vector * e["norm_vector"]) / (cfg.w_lexical + cfg.w_vector)
    )
    expect = (
        cfg.w_relevance * e["relevance"]
        + cfg.w_recency * e["recency"]
        + cfg.w_engagement * e["engagement"]
        + cfg.w_author * e["author_quality"]
    )
    assert d["score"] == pytest.approx(expect)
    assert 0 < e["author_quality"] < 1 and 0 <= e["recency"] <= 1


def test_rrf_math():
    fused = rrf({"bm25": [(1, 9.0), (2, 5.0)], "vector": [(2, 0.9), (3, 0.5)]}, k=60)
    assert fused[2].components["rrf_bm25"] == pytest.approx(1 / 62)
    assert fused[2].components["rrf_vector"] == pytest.approx(1 / 61)
    assert fused[2].components["relevance"] == pytest.approx((1 / 62 + 1 / 61) / (2 / 61))
    assert fused[2].components["relevance"] > fused[1].components["relevance"] > fused[3].components["relevance"]


def test_score_fusion_math():
    lists = {"bm25": [(1, 9.0), (2, 4.5)], "vector": [(2, 0.9), (3, 0.7), (4, 0.5), (5, 0.1)]}
    fused = score_fusion(lists, depth=3, weights={"bm25": 1.0, "vector": 3.0})
    c = {k: s.components for k, s in fused.items()}
    assert c[1]["norm_bm25"] == 1.0 and c[2]["norm_bm25"] == pytest.approx(0.5)  # BM25: divided by the best
    assert c[2]["norm_vector"] == 1.0 and c[3]["norm_vector"] == pytest.approx(0.5) and c[4]["norm_vector"] == 0.0
    assert c[5]["norm_vector"] == 0.0  # past the depth: clamped, not negative
    assert c[2]["relevance"] == pytest.approx((0.5 + 3 * 1.0) / 4) and c[1]["relevance"] == pytest.approx(1 / 4)
    assert c[3]["relevance"] == pytest.approx(3 * 0.5 / 4)  # a vector-only hit: the bm25 part counts 0
    # far ahead in one list beats a close second in both: what RRF cannot tell
    sure = {"bm25": [(1, 10.0), (2, 1.0)], "vector": [(2, 0.50), (1, 0.49), (3, 0.1)]}
    assert (
        fuse(sure, RankingConfig(fusion="score"))[1].components["relevance"]
        > fuse(sure, RankingConfig(fusion="score"))[2].components["relevance"]
    )
    with pytest.raises(ValueError, match="fusion"):
        fuse(sure, RankingConfig(fusion="borda"))


def test_ranking_weights_change_order(ws):
    write_corpus(ws, make_posts(12))
    build_workspace_index(ws, bow_embed)
    old = SearchIndex(ws.index, bow_embed, ranking=RankingConfig(w_recency=0, w_engagement=0, w_author=0))
    base = ids(old.search(SearchRequest("pasta recipe oven garlic", k=4)))
    old.close()
    new = SearchIndex(ws.index, bow_embed, ranking=RankingConfig(w_recency=100.0, recency_half_life_days=1))
    boosted = new.search(SearchRequest("pasta recipe oven garlic", k=4))
    assert ids(boosted) != base
    assert [h.post.created_at for h in boosted] == sorted((h.post.created_at for h in boosted), reverse=True)
    new.close()


def test_live_add_delete_durable_across_restart(ws, index):
    index.add(
        [
            Post(
                id="live1",
                text="zeppelin airship over the harbour #blimp",
                author_id="u7",
                created_at=START.timestamp() + 100 * 86400,
                hashtags=["blimp"],
            )
        ]
    )
    for mode in MODES:  # searchable as soon as add returns
        assert ids(index.search(SearchRequest("zeppelin airship", k=3, mode=mode)))[0] == "live1"
    victim = ids(index.search(SearchRequest("pasta", k=1, mode="lexical")))[0]
    assert index.delete(victim) and not index.delete(victim) and not index.delete("nope")
    index.close()
    again = SearchIndex(ws.index, bow_embed)  # restart: the vector file was never re-saved
    for mode in MODES:
        got = ids(again.search(SearchRequest("zeppelin airship pasta recipe oven garlic sauce", k=100, mode=mode)))
        assert "live1" in got and victim not in got, mode
    assert again.vectors.contains(again.docs.key_of("live1"))
    # re-adding a deleted id works, and replacing a live id leaves one copy
    again.add([Post(id=victim, text="back again pasta"), Post(id="live2", text="pasta one")])
    again.add([Post(id="live2", text="pasta two")])
    hits = again.search(SearchRequest("pasta", k=100, mode="lexical"))
    assert ids(hits).count("live2") == 1 and victim in ids(hits)
    assert next(h for h in hits if h.post.id == "live2").post.text == "pasta two"
    again.close()


def test_bad_requests_name_the_parameter(index):
    bad = [
        (SearchRequest("  "), "q"),
        (SearchRequest("x" * 1001), "q"),
        (SearchRequest("a", k=0), "k"),
        (SearchRequest("a", k=101), "k"),
        (SearchRequest("a", mode="fuzzy"), "mode"),
        (SearchRequest("a", filters=Filters(since=2.0, until=1.0)), "since"),
    ]
    for req, param in bad:
        with pytest.raises(QueryError) as e:
            index.search(req)
        assert e.value.param == param
    with pytest.raises(QueryError, match="until"):
        parse_time("yesterday", "until")
    assert parse_time("2024-01-02", "since") == START.timestamp() + 86400


def test_lexical_only_index_refuses_semantic_clearly(ws):
    write_corpus(ws, make_posts(9))
    build_workspace_index(ws, None)
    ix = SearchIndex(ws.index, None)
    assert ids(ix.search(SearchRequest("pasta", mode="lexical")))
    with pytest.raises(QueryError, match="built without a model"):
        ix.search(SearchRequest("pasta", mode="hybrid"))
    ix.close()


def test_vector_index_exact_and_graph_agree(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact, graph = VectorIndex(32, VectorConfig(exact_below=10**9)), VectorIndex(32, VectorConfig(exact_below=0))
    for v in (exact, graph):
        v.add(np.arange(500), x)
    truth = np.argsort(-(x @ x[7]))[:10]
    assert [k for k, _ in exact.search(x[7], 10)] == truth.tolist()
    assert len({k for k, _ in graph.search(x[7], 10)} & set(truth.tolist())) >= 9
    graph.remove([7])
    graph.save(tmp_path / "v.usearch")
    loaded = VectorIndex.load(tmp_path / "v.usearch")
    assert len(loaded) == 499 and 7 not in [k for k, _ in loaded.search(x[7], 10)]
    assert [k for k, _ in loaded.search_among(x[7], [7, 3, int(truth[1])], 1)] == [int(truth[1])]


def test_semantic_filters_past_the_exact_threshold(ws, index):
    """Many posts pass the filter: the graph is searched with over-fetching, then the filter applies."""
    index.close()
    graph = SearchIndex(ws.index, bow_embed, vector_config=VectorConfig(exact_below=5))
    hits = graph.search(SearchRequest("garlic sauce", k=5, mode="semantic", filters=Filters(lang="en")))
    assert len(hits) == 5 and all(h.post.lang == "en" for h in hits)
    graph.close()


def test_no_match_threshold_applies_only_when_no_word_matches(index):
    from dataclasses import replace

    index.ranking = replace(index.ranking, min_similarity=0.99)
    for mode in ("semantic", "hybrid"):
        # no word of "zeppelin blimp" is in any post: every vector hit is below 0.99, so nothing comes back
        assert index.search(SearchRequest("zeppelin blimp", k=10, mode=mode)) == [], mode
        # "pasta" is a word of some posts: the vector list keeps its hits, however low
        hits = index.search(SearchRequest("pasta zeppelin", k=10, mode=mode))
        assert len(hits) == 10 and min(h.components["vector"] for h in hits if "vector" in h.components) < 0.99
    index.ranking = replace(index.ranking, min_similarity=-1.0)
    assert len(index.search(SearchRequest("zeppelin blimp", k=10, mode="semantic"))) == 10


def test_weighted_fusion_follows_the_weights(index):
    from dataclasses import replace

    q = SearchRequest("striker penalty #foodie", k=20, mode="hybrid")
    index.ranking = replace(index.ranking, w_recency=0.0, w_engagement=0.0, w_author=0.0)  # relevance alone
    for fusion in ("score", "rrf"):
        for w_lexical, w_vector, follows in ((1.0, 0.0, "bm25"), (0.0, 1.0, "vector")):
            index.ranking = replace(index.ranking, fusion=fusion, w_lexical=w_lexical, w_vector=w_vector)
            part = [h.components.get(follows, -1.0) for h in index.search(q)]
            assert part[0] > 0 and part == sorted(part, reverse=True), (fusion, follows, part)  # that list alone


def test_rerank_reorders_the_top_of_hybrid_only(index):
    from dataclasses import replace

    q = SearchRequest("striker penalty", k=10, mode="hybrid")
    before = index.search(q)
    favourite = before[4].post.id  # the re-ranker prefers the fifth post, and nothing else
    index.model = replace(
        index.model, rerank=lambda query, texts: np.array([1.0 if t == before[4].post.text else 0.0 for t in texts])
    )
    index.ranking = replace(index.ranking, rerank_top=5)
    after = index.search(q)
    assert after[0].post.id == favourite and ids(after)[1:5] == [i for i in ids(before)[:5] if i != favourite]
    assert ids(after)[5:] == ids(before)[5:]  # below the re-ranked top nothing moves
    assert [h.score for h in after] == [h.score for h in before]  # positions keep their scores: still sorted
    assert after[0].components["rerank"] == 1.0 and "rerank" not in after[5].components
    assert all("rerank" not in h.components for h in index.search(replace(q, mode="semantic")))


def test_posts_the_doc_store_kept_but_tantivy_lost_are_indexed_on_open(ws, index):
    from roost.search.docstore import Post

    # a crash between the doc store's write and tantivy's commit: the post is only in the doc store
    key = index.docs.next_key()
    index.docs.add(
        [Post(id="lost", text="zeppelin over the harbour", key=key)], bow_embed(["zeppelin over the harbour"])
    )
    assert index.search(SearchRequest("zeppelin", mode="lexical")) == []
    index.close()
    reopened = SearchIndex(ws.index, bow_embed)
    try:
        for mode in ("lexical", "semantic", "hybrid"):
            assert ids(reopened.search(SearchRequest("zeppelin", k=3, mode=mode)))[0] == "lost", mode
        assert reopened.lexical.max_key() == key
    finally:
        reopened.close()
