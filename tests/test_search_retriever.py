"""``roost train-retriever``: pair mining, the masked InfoNCE loss, the token-bag retriever search loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_engine_fixtures import model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.search.embed import RETRIEVER_FILE, Retriever, TokenBagEncoder, load_embedder
from roost.search.retriever import (
    Pairs,
    RetrieverConfig,
    info_nce,
    initial_table,
    mine_pairs,
    train_retriever,
)
from roost.workspace import Workspace


def test_mine_pairs_kinds_and_no_hashtag_leak():
    ids = ["a", "b", "c", "d"]
    texts = ["goal for the #GameDay team", "what a game, what a day", "pasta tonight #GameDay", "oven bake #rare1"]
    pairs = mine_pairs(ids, texts, [None, "a", None, None], [["gameday"], [], ["gameday"], ["rare1"]],
                       RetrieverConfig(rare_max_posts=5))
    assert pairs.kinds == {"hashtag": 3, "rare_hashtag": 1, "reply": 1}
    got = {(pairs.texts[a], pairs.texts[p]) for a, p in zip(pairs.anchor, pairs.positive)}
    assert ("game day", "goal for the team") in got           # the hashtag's words -> the post without it
    assert ("goal for the team", "pasta tonight") in got      # two posts sharing a rare tag, tag stripped
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


def test_train_retriever_learns_associations_the_table_lacks():
    """Anchors are 'query' tokens, positives 'post' tokens of the same topic with no token in common: the
    untrained random table cannot pair them, training must move the rows so it does."""
    rng = np.random.default_rng(0)
    topics, per = 40, 4                          # topic t: query tokens 0..159, post tokens 160..319
    texts, anchor, positive = [], [], []
    for t in range(topics):
        q = [int(x) for x in rng.choice(per, 2, replace=False) + t * per]
        for j in range(3):
            p = [int(x) for x in rng.choice(per, 3) + topics * per + t * per]
            texts += [q, p]
            anchor.append(len(texts) - 2)
            positive.append(len(texts) - 1)
    order = rng.permutation(len(anchor))
    pairs = Pairs([str(i) for i in range(len(texts))], np.array(anchor)[order], np.array(positive)[order], {"x": 1})
    table = torch.randn(2 * topics * per, 16)
    enc, report = train_retriever(table, texts, pairs, RetrieverConfig(steps=150, batch_size=32, val_fraction=0.1))
    assert report["last_loss"] < report["first_loss"] / 2
    assert report["val_recall@1_before"] + 0.4 < report["val_recall@1_after"]
    assert not torch.equal(enc.bag.weight, table)
    assert initial_table(table, 8).shape == (len(table), 8)
    with pytest.raises(ValueError, match="dim=17"):
        initial_table(table, 17)


def test_token_bag_is_the_mean_of_rows_and_round_trips(tmp_path):
    table = torch.randn(10, 4)
    enc = TokenBagEncoder(table, max_len=3)
    v = enc([[1, 2, 2, 9], [5], []])
    assert torch.allclose(v[0], F.normalize(table[[1, 2, 2]].mean(0), dim=0), atol=1e-6)  # cut to max_len
    assert torch.allclose(v[1], F.normalize(table[5], dim=0)) and torch.count_nonzero(v[2]) == 0
    loaded = TokenBagEncoder.load(enc.save(tmp_path / RETRIEVER_FILE))
    assert loaded.max_len == 3 and torch.equal(loaded.bag.weight, enc.bag.weight)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="not a retriever"):
        TokenBagEncoder.load(tmp_path / "bad.safetensors")


def test_cli_trains_a_retriever_search_loads(tmp_path, tokenizer):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    ws = Workspace(root)
    write_corpus(ws, make_posts(30))
    texts = ["goal striker", "pasta garlic"]
    plain = load_embedder(ws.model)(texts)
    assert main(["train-retriever", "--workspace", str(root), "--steps", "20", "--batch-size", "16", "--dim", "32"]) == 0
    assert (ws.model / RETRIEVER_FILE).is_file()
    embed = load_embedder(ws.model)
    assert isinstance(embed, Retriever) and embed.dim == 32
    tuned = embed(texts)
    assert tuned.shape == (2, 32) and plain.shape[1] != 32
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1, atol=1e-5)
    assert np.allclose(embed(texts[:1]), tuned[:1], atol=1e-6)  # a text's vector does not depend on its batch
    assert json.loads((root / "runs" / "retriever" / "report.json").read_text())["config"]["lr"] == 1e-2


def test_cli_refuses_a_corpus_without_pairs(tmp_path, tokenizer, capsys):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    posts = make_posts(6)
    for p in posts:
        p["hashtags"], p["reply_to"] = [], None
    write_corpus(Workspace(root), posts)
    assert main(["train-retriever", "--workspace", str(root)]) == 2
    assert "no training pairs" in capsys.readouterr().err
