"""Brand safety from the network's own signals: the sample plants unsafe posts and moderation flags with ground
truth, ingest keeps the flags (API v2 fields, a CSV column), ``roost ads train-safety`` learns from them with no
labelled files, and a server without a safety model says so at start and in /health."""

import csv
import json

import httpx
import numpy as np
import pytest
from test_engine_fixtures import live_server

from roost.ads.brand_safety import SafetyProbes
from roost.ads.embedder import HashingEmbedder
from roost.ads.setup import safety_path
from roost.cli import main
from roost.corpus.config import IngestConfig
from roost.corpus.ingest import ingest
from roost.corpus.schema import MODERATION_LOG
from roost.sample.generate import generate
from roost.workspace import Workspace


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    generate(out, users=80, posts=3000, campaigns=10, seed=0)
    tweets = [t for line in (out / "posts.jsonl").read_text().splitlines() for t in json.loads(line)["data"]]
    truth = {d["id"]: d for d in map(json.loads, (out / "truth" / "post_topics.jsonl").read_text().splitlines())}
    return out, tweets, truth


def test_the_sample_plants_unsafe_posts_and_noisy_flags_with_their_truth(sample):
    _, tweets, truth = sample
    unsafe = [t for t in tweets if truth[t["id"]].get("unsafe")]
    assert len(unsafe) >= 20 and {truth[t["id"]]["unsafe"] for t in unsafe} == {"threat", "hate", "insult"}
    assert all(isinstance(t["possibly_sensitive"], bool) for t in tweets)  # on every tweet, as API v2 has it
    for t in tweets:
        action = truth[t["id"]].get("moderation")
        assert t["possibly_sensitive"] == (action == "sensitive")
        assert ("withheld" in t) == (action == "withheld") and (t.get("moderation") == "removed") == (
            action == "removed"
        )
    flagged = [t for t in tweets if truth[t["id"]].get("moderation")]
    assert any(not truth[t["id"]]["unsafe"] for t in flagged)  # a safe post flagged by mistake ...
    assert any(truth[t["id"]]["moderation"] is None for t in unsafe)  # ... and an unsafe one missed: noisy labels


def test_ingest_keeps_api_v2_signals_and_a_configured_csv_column(tmp_path):
    page = {
        "data": [
            {"id": "1", "text": "a sunny walk in the park today", "possibly_sensitive": False},
            {"id": "2", "text": "something graphic happened downtown", "possibly_sensitive": True},
            {"id": "3", "text": "this one is withheld in some places", "withheld": {"country_codes": ["DE"]}},
            {"id": "4", "text": "the network took this one down", "moderation": "removed", "possibly_sensitive": True},
        ]
    }
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps(page) + "\n")
    ws = Workspace(tmp_path / "ws")
    ingest([src], ws, IngestConfig(workers=1, lang_source="off"))
    rows = [json.loads(x) for x in (ws.corpus / MODERATION_LOG).read_text().splitlines()]
    assert {(r["id"], r["label"]) for r in rows} == {("2", "sensitive"), ("3", "withheld"), ("4", "removed")}

    table = tmp_path / "posts.csv"
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["id", "text", "flag"],
                ["c1", "fine words about cooking", ""],
                ["c2", "words the moderators removed", "Removed"],
                ["c3", "another fine post", "0"],
            ]
        )
    ws2 = Workspace(tmp_path / "ws2")
    ingest([table], ws2, IngestConfig(workers=1, lang_source="off", columns={"moderation": "flag"}))
    rows = [json.loads(x) for x in (ws2.corpus / MODERATION_LOG).read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [("c2", "removed")]


def test_train_safety_learns_from_the_workspace_signals_and_finds_the_truly_unsafe(sample, tmp_path, capsys):
    out, _, truth = sample
    ws = Workspace(tmp_path / "ws")
    ingest([out / "posts.jsonl"], ws, IngestConfig(workers=1))
    assert main(["ads", "train-safety", "--workspace", str(ws.root), "--embedder", "hashing"]) == 0
    assert "moderation:" in capsys.readouterr().out
    probes = SafetyProbes.load(safety_path(ws), HashingEmbedder())
    assert probes.names == ["moderation"] and probes.metrics["moderation"]["auc"] > 0.8
    from roost.corpus.schema import read_table

    posts = read_table(ws.corpus, "posts", ["id", "text"]).to_pylist()
    texts = [p["text"] for p in posts]
    scores = probes.scores(texts, HashingEmbedder()(texts))
    is_unsafe = np.array([bool(truth[p["id"]].get("unsafe")) for p in posts])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(is_unsafe, scores) > 0.9  # against the ground truth, not the noisy signals
    assert (scores[is_unsafe] > 0.5).mean() > 0.7 and (scores[~is_unsafe] > 0.5).mean() < 0.1


def test_train_safety_without_signals_or_corpus_says_what_to_do(tmp_path, capsys):
    ws = Workspace(tmp_path / "ws")
    assert main(["ads", "train-safety", "--workspace", str(ws.root), "--embedder", "hashing"]) == 2
    assert "roost ingest" in capsys.readouterr().err
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"data": [{"id": "1", "text": "a calm and friendly post"}]}) + "\n")
    ingest([src], ws, IngestConfig(workers=1, lang_source="off"))
    assert main(["ads", "train-safety", "--workspace", str(ws.root), "--embedder", "hashing"]) == 2
    assert "no moderation signals" in capsys.readouterr().err


def test_a_server_without_a_safety_model_says_so_at_start_and_in_health(tmp_path, capfd):
    ws = Workspace(tmp_path / "ws")
    with live_server(ws.root) as (url, _):
        warnings = httpx.get(url + "/health").json()["warnings"]
    assert any("brand safety is off" in w for w in warnings), warnings
    assert "brand safety is off" in capfd.readouterr().err
    h = HashingEmbedder()
    probes = SafetyProbes(space=h.space).bind(h)
    texts = ["i will hurt you"] * 5 + ["nice day"] * 5
    probes.add("moderation", texts, h(texts), np.array([1] * 5 + [0] * 5), {1})
    probes.save(safety_path(ws))
    with live_server(ws.root) as (url, _):
        assert httpx.get(url + "/health").json()["warnings"] == []
