"""``roost train-retriever``: pair mining, the masked InfoNCE loss, and a head the embedder loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_engine_fixtures import model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.embeddings import HEAD_FILE, TextEmbedder
from roost.search.retriever import (
    Pairs,
    RetrieverConfig,
    info_nce,
    mine_pairs,
    train_head,
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


def test_train_head_learns_the_pairing():
    """Positives are a fixed rotation of their anchors plus noise: the identity start misses it, training finds it."""
    rng = np.random.default_rng(0)
    n, d = 400, 16
    anchors = rng.standard_normal((n, d)).astype(np.float32)
    rot = np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32)
    positives = anchors @ rot + 0.05 * rng.standard_normal((n, d)).astype(np.float32)
    feats = np.concatenate([anchors, positives])
    pairs = Pairs([str(i) for i in range(2 * n)], np.arange(n), np.arange(n, 2 * n), {"synthetic": n})
    _, report = train_head(feats, pairs, RetrieverConfig(steps=150, batch_size=64, lr=1e-2, val_fraction=0.1))
    assert report["last_loss"] < report["first_loss"]
    assert report["val_recall@1_after"] > report["val_recall@1_before"] + 0.3


def test_cli_trains_a_head_the_embedder_loads(tmp_path, tokenizer):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    ws = Workspace(root)
    write_corpus(ws, make_posts(30))
    texts = ["goal striker", "pasta garlic"]
    plain = TextEmbedder.from_dir(ws.model).embed(texts)
    assert main(["train-retriever", "--workspace", str(root), "--steps", "20", "--batch-size", "16", "--dim", "32"]) == 0
    assert (ws.model / HEAD_FILE).is_file()
    emb = TextEmbedder.from_dir(ws.model)
    tuned = emb.embed(texts)
    assert tuned.shape == (2, 32) and emb.dim == 32 and not np.allclose(tuned[:, :32], plain[:, :32])
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1, atol=1e-5)
    assert (root / "runs" / "retriever" / "report.json").is_file()


def test_cli_refuses_a_corpus_without_pairs(tmp_path, tokenizer, capsys):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    posts = make_posts(6)
    for p in posts:
        p["hashtags"], p["reply_to"] = [], None
    write_corpus(Workspace(root), posts)
    assert main(["train-retriever", "--workspace", str(root)]) == 2
    assert "no training pairs" in capsys.readouterr().err
