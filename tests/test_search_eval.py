"""``roost eval search``: the metrics, the hashtag task's construction, and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roost.cli import main
from roost.search.eval import hashtag_task, ndcg_at, recall_at, reciprocal_rank
from roost.search.text import split_hashtag


def test_metrics_by_hand():
    ranked, rel = ["a", "x", "b", "y"], {"a", "b", "c"}
    ideal = 1 + 1 / 1.5849625 + 0.5
    assert ndcg_at(ranked, rel, 10) == pytest.approx((1 + 0.5) / ideal, rel=1e-6)
    assert ndcg_at(["a", "b", "c"], rel) == pytest.approx(1.0)
    assert recall_at(ranked, rel, 100) == pytest.approx(2 / 3) and recall_at(ranked, rel, 1) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y", "b"], rel) == pytest.approx(1 / 3) and reciprocal_rank(["x"], rel) == 0


def tweets() -> list[str]:
    out = []
    for i in range(8):
        out.append(f"rain again in the city number {i} #GloomyWeather")
        out.append(f"my cat ate breakfast {i} #catsofinstagram")
        out.append(f"sunny beach day {i} #summer #fun")
    return out + ["gloomy weather today", "cats of the world", "new on instagram", "duplicate", "duplicate"]


def test_hashtag_task_holds_out_tags_and_keeps_the_rest():
    task = hashtag_task(tweets(), min_posts=5, heldout_fraction=1.0)
    assert len(task.posts) == 28  # deduplicated
    q = {q.name: q for q in task.queries}
    assert set(q) == {"#gloomyweather", "#catsofinstagram", "#summer", "#fun"}
    assert q["#gloomyweather"].text == "gloomy weather" and q["#catsofinstagram"].text == "cats of instagram"
    by_id = {p.id: p for p in task.posts}
    assert len(q["#gloomyweather"].relevant) == 8
    assert all("#" not in by_id[pid].text for pid in q["#gloomyweather"].relevant)
    kept = hashtag_task(tweets(), min_posts=5, heldout_fraction=0.0)
    assert kept.queries == [] and sum("#summer" in p.text for p in kept.posts) == 8
    assert all(p.hashtags == ["fun", "summer"] for p in kept.posts if "#summer" in p.text)


def test_eval_command_writes_a_table_and_json(tmp_path, capsys):
    f = tmp_path / "tweets_text.txt"
    f.write_text("\n".join(tweets()), encoding="utf-8")
    out = tmp_path / "results.json"
    assert (
        main(["eval", "search", "-w", str(tmp_path / "ws"), "--tweets", str(f), "--no-vectors", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "NDCG@10" in printed and "lexical" in printed
    res = json.loads(out.read_text())["results"]["hashtags"]
    assert res["queries"] >= 1 and 0 <= res["metrics"]["lexical"]["ndcg@10"] <= 1
    assert main(["eval", "search", "-w", str(tmp_path / "ws")]) == 2  # no task data: a clear error


def test_topic_queries_from_sample_truth(tmp_path):
    from roost.search.eval import topic_queries

    truth = tmp_path / "truth"
    truth.mkdir()
    lines = [
        {"id": "1", "topic": "football"},
        {"id": "2", "topic": "football"},
        {"id": "3", "topic": "ai"},
        {"id": "4", "topic": None},
        {"id": "5", "topic": "pets"},
    ]
    (truth / "post_topics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    qs = topic_queries(tmp_path, live_ids={"1", "2", "3", "4"})  # the sample folder or truth/ both work
    assert [(q.text, q.relevant) for q in qs] == [("ai", {"3"}), ("football", {"1", "2"})]
    (truth / "post_topics.jsonl").write_text('{"id": "1", "topic": "ai"}\nnot json\n')
    with pytest.raises(ValueError, match="post_topics.jsonl:2"):
        topic_queries(truth, live_ids={"1"})


def test_trained_retriever_finds_what_bm25_cannot(tmp_path):
    """The hashtag task end to end, with the real index and the token-bag retriever: the query's words are
    never in the relevant posts, only beside the topic's words in posts with a kept tag. Training on pairs
    mined from the kept tags must teach that association, and hybrid fusion must bring it to the top."""
    import torch

    from roost.search.embed import Retriever, TokenBagEncoder
    from roost.search.eval import build_task_index, evaluate, is_heldout
    from roost.search.retriever import RetrieverConfig, mine_pairs, train_retriever
    from roost.tokenizer import (
        MIN_VOCAB_SIZE,
        RoostTokenizer,
        TokenizerConfig,
        train_bpe,
    )

    topics = {
        ("MatchNight", "GameDay"): "goal striker keeper derby penalty stadium",
        ("ReadingList", "BookWorm"): "novel chapter author library poetry fiction",
        ("AiWeek", "TechTalk"): "neural training gpu transformer dataset inference",
    }
    rng = np.random.default_rng(0)
    texts = []
    for (held, kept), words in topics.items():
        assert is_heldout(held.lower()) and not is_heldout(kept.lower())
        words = words.split()
        texts += [" ".join(rng.choice(words, 4, replace=False)) + f" #{held}" for _ in range(8)]
        query = " ".join(split_hashtag(held))
        texts += [f"{query} " + " ".join(rng.choice(words, 3, replace=False)) + f" #{kept}" for _ in range(5)]
    task = hashtag_task(texts, min_posts=5)
    assert sorted(q.text for q in task.queries) == ["ai week", "match night", "reading list"]
    tok = RoostTokenizer(train_bpe([p.text for p in task.posts] * 3, TokenizerConfig(vocab_size=MIN_VOCAB_SIZE + 150)))
    posts = task.posts
    pairs = mine_pairs(
        [p.id for p in posts],
        [p.text for p in posts],
        [None] * len(posts),
        [p.hashtags for p in posts],
        RetrieverConfig(),
    )
    table = 0.1 * torch.randn(tok.vocab_size, 32, generator=torch.Generator().manual_seed(0))  # an LM's scale
    encoder, _ = train_retriever(table, tok.encode_batch(pairs.texts), pairs, RetrieverConfig(steps=150, batch_size=16))
    ndcg = {}
    for name, enc in (("trained", encoder), ("untrained", TokenBagEncoder(table))):
        index = build_task_index(task, tmp_path / name, Retriever(tok, enc))
        ndcg[name] = {m: r["ndcg@10"] for m, r in evaluate(index, task.queries).items()}
        index.close()
    assert ndcg["trained"]["lexical"] < 0.05  # BM25 only finds the kept-tag posts, none relevant
    assert ndcg["trained"]["semantic"] > ndcg["untrained"]["semantic"] + 0.3
    assert ndcg["trained"]["hybrid"] > ndcg["trained"]["lexical"] + 0.3
