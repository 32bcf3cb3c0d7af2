"""The served brand-safety classifier: TF-IDF over the model tokenizer's ids next to the model's embedding.

A tiny random model's embeddings say nothing about safety, so what these tests see flagged is the token
features' doing: they fail if training or serving drops the tokens (as the embedding-only probe did)."""

import json

import numpy as np
import pytest
from test_ads_service import spec
from test_engine_fixtures import model_workspace, tiny_model

from roost.ads.brand_safety import SafetyProbes
from roost.ads.safety_model import TokenProbe, model_tokens
from roost.ads.service import AdRequest
from roost.ads.setup import open_service, safety_path
from roost.ads.store import AdStore
from roost.cli import main
from roost.errors import UserError
from roost.tokenizer import MIN_VOCAB_SIZE, RoostTokenizer, TokenizerConfig, train_bpe
from roost.workspace import Workspace

SAFE = ["what a lovely morning run", "sunny walk in the park", "calm coffee with friends", "crisp autumn hike"]
SHOES = "running shoes for the park"
UNSAFE = ["what a zorblax morning run", "sunny zorblax in the park", "calm zorblax with friends", "zorblax autumn hike"]


@pytest.fixture(scope="module")
def tokenizer():
    return RoostTokenizer(train_bpe((SAFE + UNSAFE) * 10, TokenizerConfig(vocab_size=MIN_VOCAB_SIZE + 60)))


def test_the_classifier_separates_classes_by_a_token_the_embeddings_cannot_tell_apart(tokenizer):
    texts, y = SAFE * 5 + UNSAFE * 5, np.array([0] * 20 + [1] * 20)
    same = np.ones((len(texts), 8), dtype=np.float32)  # every text the same embedding
    probe = TokenProbe.fit(texts, same, y, model_tokens(tokenizer))
    assert set(probe.chosen) >= {"C", "weight"} and probe.chosen["C"] in (1.0, 4.0, 16.0)  # chosen by CV
    p = probe.scorer(model_tokens(tokenizer))(["zorblax in the park", "a lovely walk in the park"], np.ones((2, 8)))
    assert p[0] > 0.5 > p[1]


def write_labelled(tmp_path) -> tuple[str, str]:
    (tmp_path / "t.txt").write_text("\n".join(SAFE * 5 + UNSAFE * 5) + "\n")
    (tmp_path / "l.txt").write_text("\n".join(["0"] * 20 + ["1"] * 20) + "\n")
    return str(tmp_path / "t.txt"), str(tmp_path / "l.txt")


def test_train_safety_saves_model_token_probes_and_serving_keeps_strict_ads_off_unsafe_context(tmp_path, tokenizer):
    ws = Workspace(model_workspace(tmp_path / "ws", tokenizer, tiny_model(tokenizer)))
    ws.write_manifest("model")  # as `roost train` leaves it: the safety artifact records the model it used
    texts, labels = write_labelled(tmp_path)
    assert main(["ads", "train-safety", "-w", str(ws.root), "--train", "hate", texts, labels]) == 0
    saved = json.loads(safety_path(ws).read_text())
    assert saved["format"] == 2 and saved["tokens"] == "model" and saved["names"] == ["hate"]
    assert any("_" in t for t in saved["probes"][0]["vocab"])  # bigrams of the model's token ids

    AdStore(ws.ads_db).add_campaigns([spec("careful", SHOES), spec("bold", SHOES, brand_safety_threshold=1.0)])
    svc = open_service(ws)
    assert svc.space.startswith("model-") and svc.safety.tokens == "model"
    unsafe, safe = "zorblax in the park", "a lovely walk in the park"
    assert svc.context(AdRequest(context_text=unsafe)).unsafe > 0.5 > svc.context(AdRequest(context_text=safe)).unsafe
    assert [a.campaign_id for a in svc.serve(AdRequest(context_text=unsafe, slots=2))] == ["bold"]
    assert sorted(a.campaign_id for a in svc.serve(AdRequest(context_text=safe, slots=2))) == ["bold", "careful"]


def test_probes_saved_by_an_older_roost_say_to_rerun_train_safety(tmp_path):
    ws = Workspace(tmp_path / "ws")
    safety_path(ws).parent.mkdir(parents=True, exist_ok=True)
    safety_path(ws).write_text(json.dumps({"space": "hashing-256", "names": ["x"], "weights": [[0.0]], "biases": [0]}))
    with pytest.raises(UserError, match="older format.*rerun `roost ads train-safety`"):
        SafetyProbes.load(safety_path(ws))
    with pytest.raises(UserError, match="rerun `roost ads train-safety`"):
        open_service(ws, embedder="hashing")


def test_the_served_scorer_gives_what_scikit_learns_tfidf_and_lr_give(tokenizer):
    """Serving computes TF-IDF by hand (sklearn's transform was most of a decision's time): same numbers."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, y = SAFE * 5 + UNSAFE * 5, np.array([0] * 20 + [1] * 20)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(texts), 8))
    tokenize = model_tokens(tokenizer)
    probe = TokenProbe.fit(texts, vecs, y, tokenize)
    queries = ["zorblax zorblax in the park park", "a lovely walk", "", "qqq unknown words only"]
    qvecs = rng.normal(size=(len(queries), 8))
    vec = TfidfVectorizer(analyzer=tokenize, sublinear_tf=True, vocabulary={t: i for i, t in enumerate(probe.vocab)})
    vec.idf_ = np.asarray(probe.idf)
    z = vec.transform(queries) @ np.asarray(probe.token_weights)
    z += qvecs @ (np.asarray(probe.emb_weights) * probe.emb_weight) + probe.bias
    np.testing.assert_allclose(probe.scorer(tokenize)(queries, qvecs), 1 / (1 + np.exp(-z)), rtol=1e-9, atol=1e-12)
