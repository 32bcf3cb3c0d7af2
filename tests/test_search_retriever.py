"""``roost train-retriever``: pair mining, the masked InfoNCE loss, the post and query encoders, tag expansion,
the tuned ranking and no-match threshold search loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_engine_fixtures import model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.model import GPT, GPTConfig
from roost.search.embed import (
    RETRIEVER_FILE,
    QueryEncoder,
    Retriever,
    TokenBagEncoder,
    load_retriever,
    load_search_model,
    save_retriever,
)
from roost.search.engine import SearchIndex, SearchRequest
from roost.search.expand import ExpansionConfig, TagExpander
from roost.search.retriever import (
    Pairs,
    RetrieverConfig,
    info_nce,
    initial_table,
    mine_pairs,
    train_query_encoder,
    train_retriever,
)
from roost.workspace import Workspace


def test_mine_pairs_kinds_and_no_hashtag_leak():
    ids = ["a", "b", "c", "d"]
    texts = ["goal for the #GameDay team", "what a game, what a day", "pasta tonight #GameDay", "oven bake #rare1"]
    pairs = mine_pairs(
        ids,
        texts,
        [None, "a", None, None],
        [["gameday"], [], ["gameday"], ["rare1"]],
        RetrieverConfig(rare_max_posts=5),
    )
    assert pairs.kinds == {"hashtag": 3, "rare_hashtag": 1, "reply": 1}
    got = {(pairs.texts[a], pairs.texts[p]) for a, p in zip(pairs.anchor, pairs.positive)}
    assert ("game day", "goal for the team") in got  # the hashtag's words -> the post without it
    assert ("goal for the team", "pasta tonight") in got  # two posts sharing a rare tag, tag stripped
    assert ("goal for the #GameDay team", "what a game, what a day") in got  # post -> reply
    assert ("rare 1", "oven bake") in got
    assert len(got) == 5


def test_info_nce_masks_duplicate_texts_out_of_the_negatives():
    torch.manual_seed(0)
    a, p = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    a_idx, p_idx = torch.tensor([0, 0, 1, 2]), torch.tensor([3, 4, 5, 6])  # rows 0 and 1 share an anchor text
    loss = info_nce(a, p, a_idx, p_idx, 0.1)
    logits = a @ p.T / 0.1
    logits[0, 1] = logits[1, 0] = float("-inf")
    t = torch.arange(4)
    assert loss.item() == pytest.approx((0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))).item())
    assert loss.item() != pytest.approx(info_nce(a, p, torch.arange(4), p_idx, 0.1).item())


def topic_pairs(topics: int = 40, per: int = 4, seed: int = 0) -> tuple[list[list[int]], Pairs]:
    """Anchors are 'query' tokens, positives 'post' tokens of the same topic with no token in common."""
    rng = np.random.default_rng(seed)
    texts, anchor, positive = [], [], []
    for t in range(topics):  # topic t: query tokens 0..159, post tokens 160..319
        q = [int(x) for x in rng.choice(per, 2, replace=False) + t * per]
        for _ in range(3):
            p = [int(x) for x in rng.choice(per, 3) + topics * per + t * per]
            texts += [q, p]
            anchor.append(len(texts) - 2)
            positive.append(len(texts) - 1)
    order = rng.permutation(len(anchor))
    return texts, Pairs(
        [str(i) for i in range(len(texts))], np.array(anchor)[order], np.array(positive)[order], {"x": 1}
    )


def test_train_retriever_learns_associations_the_table_lacks():
    """The untrained random table cannot pair a topic's query and post tokens; training must move the rows."""
    texts, pairs = topic_pairs()
    table = torch.randn(320, 16)
    enc, report = train_retriever(table, texts, pairs, RetrieverConfig(steps=150, batch_size=32, val_fraction=0.1))
    assert report["last_loss"] < report["first_loss"] / 2
    assert report["val_recall@1_before"] + 0.4 < report["val_recall@1_after"]
    assert not torch.equal(enc.bag.weight, table)
    assert initial_table(table, 8).shape == (len(table), 8)
    with pytest.raises(ValueError, match="dim=17"):
        initial_table(table, 17)


def tiny_query_encoder(bag: TokenBagEncoder) -> QueryEncoder:
    torch.manual_seed(0)
    lm = GPT(GPTConfig.tiny(vocab_size=bag.bag.num_embeddings, n_layer=1, n_embd=32, n_head=2, n_kv_head=2))
    lm.init_weights()
    return QueryEncoder(bag, lm, bos_id=0, pad_id=1, max_len=8)


def test_query_encoder_starts_as_the_bag_and_learns_what_the_frozen_bag_cannot():
    texts, pairs = topic_pairs()
    bag = TokenBagEncoder(torch.randn(320, 16))
    query = tiny_query_encoder(bag).eval()
    with torch.no_grad():
        assert torch.allclose(query([[5, 6], [7]]), bag([[5, 6], [7]]), atol=1e-6)  # zero map: the bag alone
    table = bag.bag.weight.detach().clone()
    report = train_query_encoder(
        query,
        texts,
        pairs,
        RetrieverConfig(query_steps=150, query_batch_size=32, query_proj_lr=1e-2, query_lr=3e-3, val_fraction=0.1),
    )
    assert torch.equal(bag.bag.weight, table)  # post vectors stay as the index has them
    assert report["last_loss"] < report["first_loss"] * 0.7
    assert report["val_recall@1_before"] + 0.3 < report["val_recall@1_after"]


def test_retriever_file_round_trips_encoders_settings_and_expansion(tmp_path, tokenizer):  # noqa: F811
    bag = TokenBagEncoder(torch.randn(tokenizer.vocab_size, 16), max_len=3)
    v = bag([[1, 2, 2, 9], [5], []])
    assert torch.allclose(v[0], F.normalize(bag.bag.weight[[1, 2, 2]].mean(0), dim=0), atol=1e-6)  # cut to max_len
    assert torch.count_nonzero(v[2]) == 0
    query = tiny_query_encoder(bag)
    torch.nn.init.normal_(query.proj.weight)  # a trained map, not the zero start
    settings = {
        "ranking": {"w_vector": 2.0, "min_similarity": 0.3},
        "expansion": {"tags": ["gameday"], "words": ["game day"], "config": {"top": 1, "min_similarity": 0.1}},
    }
    save_retriever(tmp_path / RETRIEVER_FILE, bag, query, settings, np.ones((1, 16), np.float32))
    bag2, query2, got = load_retriever(tmp_path / RETRIEVER_FILE, tokenizer)
    assert bag2.max_len == 3 and torch.equal(bag2.bag.weight, bag.bag.weight)
    with torch.no_grad():
        assert torch.allclose(query2([[3, 4, 5]]), query.eval()([[3, 4, 5]]), atol=1e-6)
    assert got["ranking"] == settings["ranking"] and got["expansion_vectors"].shape == (1, 16)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="not a retriever"):
        load_retriever(tmp_path / "bad.safetensors", tokenizer)


def test_tag_expander_predicts_the_nearest_tags_above_the_threshold():
    vecs = np.eye(3, dtype=np.float32)
    ex = TagExpander(
        ["gameday", "foodie", "NoFilter"],
        ["game day", "foodie", "no filter"],
        vecs,
        ExpansionConfig(top=2, min_similarity=0.5),
    )
    posts = np.array([[0.9, 0.6, 0.0], [0.0, 0.0, 0.4], [0.1, 0.0, 0.95]], dtype=np.float32)
    assert ex(posts) == [
        ["#gameday", "gameday", "game", "day", "#foodie", "foodie"],
        [],
        ["#NoFilter", "NoFilter", "no", "filter"],
    ]


def test_cli_trains_a_retriever_search_loads(tmp_path, tokenizer):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    ws = Workspace(root)
    write_corpus(ws, make_posts(60))
    texts = ["goal striker", "pasta garlic"]
    threads = torch.get_num_threads()
    plain = load_search_model(ws.model).embed(texts)
    assert (
        main(
            [
                "train-retriever",
                "--workspace",
                str(root),
                "--steps",
                "20",
                "--batch-size",
                "16",
                "--dim",
                "32",
                "--query-steps",
                "5",
                "--threads",
                "auto",
            ]
        )
        == 0
    )
    assert torch.get_num_threads() == threads  # auto hands the process's own count back
    assert (ws.model / RETRIEVER_FILE).is_file()
    model = load_search_model(ws.model)
    assert isinstance(model.embed, Retriever) and model.embed.dim == 32 and model.embed.query_encoder is not None
    tuned = model.embed(texts)
    assert tuned.shape == (2, 32) and plain.shape[1] != 32
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1, atol=1e-5)
    assert np.allclose(model.embed(texts[:1]), tuned[:1], atol=1e-6)  # a text's vector does not depend on its batch
    q = model.queries(texts)
    assert q.shape == (2, 32) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    assert model.expand is not None and "worldcup" in model.expand.tags
    report = json.loads((root / "runs" / "retriever" / "report.json").read_text())
    assert report["config"]["lr"] == 1e-2 and report["held_out_posts"] > 0 and report["config"]["threads"] == "auto"
    assert model.ranking.min_similarity == report["tuning"]["chosen"]["min_similarity"] > -1.0

    # the calibrated threshold: a query nothing matches returns nothing, in every mode
    assert main(["index", "--workspace", str(root)]) == 0
    index = SearchIndex(ws.index, model)
    try:
        for mode in ("lexical", "semantic", "hybrid"):
            assert index.search(SearchRequest(q="qzxvjkwplm", mode=mode)) == [], mode
        assert index.search(SearchRequest(q="pasta garlic", mode="hybrid"))
    finally:
        index.close()


def test_cli_refuses_a_corpus_without_pairs(tmp_path, tokenizer, capsys):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    posts = make_posts(6)
    for p in posts:
        p["hashtags"], p["reply_to"] = [], None
    write_corpus(Workspace(root), posts)
    assert main(["train-retriever", "--workspace", str(root)]) == 2
    assert "no training pairs" in capsys.readouterr().err


def test_query_likelihood_is_the_mean_log_prob_of_the_query_after_the_post(tokenizer):  # noqa: F811
    from roost.search.rerank import QueryLikelihood

    model = tiny_model(tokenizer).eval()
    rerank = QueryLikelihood(model, tokenizer)
    posts = ["pasta with garlic tonight", "the striker scored"]
    scores = rerank("garlic pasta", posts)
    q = tokenizer.encode(" garlic pasta")
    for post, score in zip(posts, scores):
        ids = [tokenizer.bos_id, *tokenizer.encode(post)]
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([ids + q])).float(), dim=-1)[0]
        expected = np.mean([logp[len(ids) - 1 + j, t].item() for j, t in enumerate(q)])
        assert score == pytest.approx(expected, abs=1e-4)  # batching and right padding change nothing
    assert scores[0] != scores[1] and rerank("", posts).tolist() == [0.0, 0.0]
