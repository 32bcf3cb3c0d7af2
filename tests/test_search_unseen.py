"""The unseen-posts protocol: the split, the queries it builds, and ``roost eval search --unseen`` end to end."""

from __future__ import annotations

import json

from test_engine_fixtures import model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import TOPICS, make_posts, write_corpus

from roost.cli import main
from roost.search.text import word_counts
from roost.search.unseen import ABLATIONS, UnseenConfig, split_texts, unseen_task, write_split
from roost.workspace import Workspace


def test_split_is_disjoint_deduplicated_and_stable(tmp_path):
    texts = [f"post number {i} #tag{i % 7}" for i in range(400)] + ["post number 3 #tag3"]  # one repeat
    train, held = split_texts(texts, UnseenConfig(eval_fraction=0.25))
    assert not set(train) & set(held) and len(train) + len(held) == 400
    assert 60 < len(held) < 140
    rev_train, rev_held = split_texts(list(reversed(texts)), UnseenConfig(eval_fraction=0.25))
    assert set(rev_train) == set(train) and set(rev_held) == set(held)  # by text, not by position
    assert set(split_texts(texts, UnseenConfig(eval_fraction=0.25, seed=1))[1]) != set(held)
    a, b = write_split(texts, tmp_path, UnseenConfig(eval_fraction=0.25))
    assert a.read_text().splitlines() == train and b.read_text().splitlines() == held


def test_queries_are_tag_words_and_the_tags_leave_the_posts():
    texts = [
        "great striker goal #WorldCup",
        "derby penalty #worldcup tonight",
        "keeper saves #WorldCup #rare",
        "pasta for dinner #foodie",
        "oven bake #foodie",
    ]
    task = unseen_task(texts, UnseenConfig(min_posts=2), word_counts(["the world cup final"]))
    by_name = {q.name: q for q in task.queries}
    assert set(by_name) == {"#worldcup", "#foodie"}  # #rare is on one post only
    assert by_name["#worldcup"].text == "world cup" and by_name["#worldcup"].relevant == {"u0", "u1", "u2"}
    texts_out = [p.text for p in task.posts]
    assert texts_out[0] == "great striker goal" and texts_out[2] == "keeper saves #rare"
    assert all("#worldcup" not in t.lower() and "#foodie" not in t for t in texts_out)


def test_cli_runs_the_protocol_with_every_ablation_row(tmp_path, tokenizer, capsys):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    write_corpus(Workspace(root), make_posts(60))
    assert main(["train-retriever", "--workspace", str(root), "--steps", "10", "--query-steps", "3"]) == 0
    unseen = tmp_path / "unseen.txt"
    lines = [f"{' '.join(words.split()[i : i + 3])} #{tag}" for words, tag, _ in TOPICS.values() for i in range(4)]
    unseen.write_text("\n".join(lines) + "\n")
    out = tmp_path / "results.json"
    assert main(["eval", "search", "--workspace", str(root), "--unseen", str(unseen), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name, *_ in ABLATIONS)
    r = json.loads(out.read_text())["results"]["unseen"]
    assert r["posts"] == len(lines) and r["queries"] == len(TOPICS)
    assert [row["name"] for row in r["rows"]] == [name for name, *_ in ABLATIONS]
    for row in r["rows"]:
        assert set(row["metrics"]) == {"ndcg@10", "recall@100", "mrr"} and 0 <= row["metrics"]["ndcg@10"] <= 1
    # each query is a tag's only word ("worldcup") and the tag left its posts: BM25 alone cannot find them
    assert r["rows"][0]["metrics"]["recall@100"] == 0
    # with the tags kept in the posts, the same queries' words are there: BM25 finds every relevant post
    assert set(r["kept"]) == {"lexical", "semantic", "hybrid"} and r["kept"]["lexical"]["recall@100"] == 1.0
    assert "hashtags kept" in printed


def test_tuning_objective_is_the_worst_ratio_to_the_better_part():
    from roost.search.tune import worst_ratio

    parts = [
        {"lexical": {"ndcg@10": 0.1, "mrr": 0.2}, "semantic": {"ndcg@10": 0.2, "mrr": 0.4}},  # tags removed
        {"lexical": {"ndcg@10": 0.5, "mrr": 0.6}, "semantic": {"ndcg@10": 0.3, "mrr": 0.5}},
    ]  # tags kept
    wins_both = [{"ndcg@10": 0.21, "mrr": 0.44}, {"ndcg@10": 0.55, "mrr": 0.63}]
    assert abs(worst_ratio(wins_both, parts) - 1.05) < 1e-9  # 0.21 / 0.2 and 0.63 / 0.6: never loses
    big_on_kept = [{"ndcg@10": 0.18, "mrr": 0.40}, {"ndcg@10": 0.90, "mrr": 0.90}]
    assert abs(worst_ratio(big_on_kept, parts) - 0.9) < 1e-9  # loses to semantic on removed, whatever kept
    assert worst_ratio(big_on_kept, parts) < worst_ratio(wins_both, parts)


def test_tuning_keeps_exact_word_matches_before_it_maximises_the_worst_ratio():
    from roost.search.ranking import RankingConfig
    from roost.search.tune import choose, keeps_exact_matches

    parts = [
        {"lexical": {"ndcg@10": 0.08, "mrr": 0.17}, "semantic": {"ndcg@10": 0.18, "mrr": 0.30}},
        {"lexical": {"ndcg@10": 0.65, "mrr": 0.72}, "semantic": {"ndcg@10": 0.24, "mrr": 0.37}},
    ]
    buries_words = ([{"ndcg@10": 0.16, "mrr": 0.30}, {"ndcg@10": 0.63, "mrr": 0.76}], RankingConfig(w_vector=1.0))
    keeps_words = ([{"ndcg@10": 0.14, "mrr": 0.29}, {"ndcg@10": 0.70, "mrr": 0.81}], RankingConfig(w_vector=0.5))
    lexical_alone = ([parts[0]["lexical"], parts[1]["lexical"]], RankingConfig(w_vector=0.0))
    assert not keeps_exact_matches(buries_words[0], parts) and keeps_exact_matches(keeps_words[0], parts)
    # the first has the better worst ratio (0.89 against 0.78) but loses to BM25 where the words are there
    assert choose([buries_words, lexical_alone, keeps_words], parts)[1].w_vector == 0.5
    assert choose([buries_words, lexical_alone], parts)[1].w_vector == 0.0  # lexical alone always qualifies
