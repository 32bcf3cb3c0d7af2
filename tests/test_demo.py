"""`roost demo`: every stage builds from the sample network, and a rerun skips what is up to date."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from test_demo_fixtures import build_tiny, tiny_config
from test_engine_fixtures import live_server

from roost.ads.setup import open_store
from roost.cli import main
from roost.demo import Demo
from roost.workspace import Workspace, file_hash

STAGES = ["sample", "ingest", "tokenizer", "tokens", "train", "sft", "retriever", "index", "ads", "safety"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "workspace"
    return root, build_tiny(root)


def test_first_run_builds_every_artifact(built):
    root, demo = built
    ws = Workspace(root)
    assert [r.name for r in demo.results] == STAGES
    ran = {r.name for r in demo.results if r.ran}
    assert ran == set(STAGES)
    assert (ws.model / "config.json").is_file() and (ws.model / "retriever.safetensors").is_file()
    assert ws.read_manifest("model")["source"] == "roost sft"  # the chat model is what is served
    assert (root / "runs" / "pretrain" / "loss.png").is_file()
    index = ws.read_manifest("index")
    assert index["inputs"]["corpus"] == ws.stage_hash("corpus") and index["counts"]["vectors"] > 0
    store = open_store(ws)
    sample_ids = {c["id"] for c in json.loads((root / "sample" / "ads.json").read_text())["campaigns"]}
    assert {r["id"] for r in store.campaign_rows()} == sample_ids
    store.close()
    assert "total" in demo.summary() and all(name in demo.summary() for name in STAGES)


def test_ads_manifest_and_file_modes(built):
    """workspace/ads/ says what made its probes, from which corpus and model; the model's files are all
    readable as the umask allows (safetensors wrote model.safetensors 0600)."""
    root, _ = built
    ws = Workspace(root)
    ads = ws.read_manifest("ads")
    safety = ads["artifacts"]["safety.json"]
    assert safety["sha256"] == file_hash(root / "ads" / "safety.json") and "click_secret" not in ads["artifacts"]
    assert safety["inputs"] == ads["inputs"] == {"corpus": ws.stage_hash("corpus"), "model": ws.stage_hash("model")}
    umask = os.umask(0)
    os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in ws.model.iterdir()} == {
        p.name: 0o666 & ~umask for p in ws.model.iterdir()
    }


def test_second_run_skips_every_stage(built):
    root, _ = built
    created = {s: Workspace(root).read_manifest(s)["created"] for s in ("corpus", "tokenizer", "tokens", "index")}
    again = build_tiny(root)
    assert [r.name for r in again.results if r.ran] == []
    assert {s: Workspace(root).read_manifest(s)["created"] for s in created} == created
    store = open_store(Workspace(root))
    assert len(store.campaign_rows()) == 20  # not loaded twice
    store.close()


def test_ui_routes_over_the_built_workspace(built):
    root, _ = built
    with live_server(root) as (url, _):
        page = httpx.get(url + "/")
        assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
        assert (
            httpx.get(url + "/static/app.js")
            .headers["content-type"]
            .startswith(("application/javascript", "text/javascript"))
        )
        for bad in ("/static/nope.js", "/static/..%2Fdemo.py", "/ui/runs/..%2F..%2Fsample/loss.png"):
            r = httpx.get(url + bad)
            assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", bad

        posts = httpx.get(url + "/timeline", params={"n": 5}).json()["data"]
        assert len(posts) == 5 and all(p["username"] for p in posts)
        assert [p["created_at"] for p in posts] == sorted((p["created_at"] for p in posts), reverse=True)
        author = httpx.get(url + "/ui/users", params={"n": 1}).json()["data"][0]
        named = httpx.get(url + "/ui/users", params={"ids": f"{author['id']},nobody"}).json()["data"]
        assert named == [{"id": author["id"], "username": author["username"]}, {"id": "nobody", "username": None}]
        mine = httpx.get(url + "/timeline", params={"user_id": author["id"], "n": 100}).json()["data"]
        assert len(mine) == author["posts"] and {p["author"] for p in mine} == {author["id"]}
        for params, status, param in (
            ({"user_id": "nobody"}, 404, "user_id"),
            ({"n": 0}, 400, "n"),
            ({"n": 101}, 400, "n"),
        ):
            r = httpx.get(url + "/timeline", params=params)
            assert r.status_code == status and r.json()["error"]["param"] == param

        assert httpx.get(url + "/health").json()["warnings"] == []  # brand safety is on: the demo trained it
        s = httpx.get(url + "/ui/summary").json()
        run, chat = s["runs"]
        assert run["name"] == "pretrain" and run["steps"] == 10 and run["has_plot"] and len(run["curve"]) == 10
        assert chat["name"] == "sft" and chat["steps"] == 5 and s["model"]["source"] == "roost sft"
        assert s["index"]["live_posts"] == s["index"]["posts"] == s["corpus"]["posts"]
        assert s["ads"]["campaigns"] == 20 and s["ads"]["spend"] == 0 and len(s["ads"]["top"]) == 10
        png = httpx.get(url + "/ui/runs/pretrain/loss.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

        ad = httpx.post(url + "/ads/serve", json={"context_post_ids": [p["id"] for p in posts], "slots": 1}).json()
        assert ad["ads"] and {"pctr", "similarity", "matched_terms"} <= set(ad["ads"][0]["why"])
    with live_server(root, api_keys=["k1"]) as (url, _):
        assert httpx.get(url + "/timeline").status_code == 401
        assert httpx.get(url + "/timeline", headers={"Authorization": "Bearer k1"}).status_code == 200
        assert httpx.get(url + "/").status_code == 200  # the page itself is public; it asks for the key


def test_changed_training_reruns_only_what_depends_on_it(built):
    root, _ = built
    ws = Workspace(root)
    corpus, tokens = ws.read_manifest("corpus"), ws.read_manifest("tokens")
    demo = build_tiny(root, train_steps=12)
    assert [r.name for r in demo.results if r.ran] == ["train", "sft", "retriever", "index", "safety"]
    assert ws.read_manifest("corpus") == corpus and ws.read_manifest("tokens") == tokens
    assert ws.read_manifest("checkpoints")["counts"]["step"] == 12
    assert ws.read_manifest("index")["inputs"]["model"] == file_hash(ws.model)


def test_sft_trains_on_replies_that_take_up_the_question(built):
    from dataclasses import replace

    from roost.train.conversations import _content_words, mine_conversations

    root, demo = built
    ws, mining = Workspace(root), demo.sft_config().mining
    assert ws.read_manifest("model")["sft"]["mining"]["min_shared_words"] == 1
    mined = mine_conversations(ws.corpus, mining)
    assert mined.train and mined.val
    for c in mined.train + mined.val:
        for user, assistant in zip(c.messages[0::2], c.messages[1::2]):
            assert _content_words([user["content"]]) & _content_words([assistant["content"]]), c.messages
    assert len(mine_conversations(ws.corpus, replace(mining, min_shared_words=0)).train) > len(mined.train)


def test_cli_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--help"])
    assert exit_.value.code == 0 and "--train-minutes" in capsys.readouterr().out
    assert main(["demo", "--train-minutes", "0", "--no-serve"]) == 2
    assert "--train-minutes must be > 0" in capsys.readouterr().err


def test_ads_stage_replaces_another_samples_campaigns(built):
    root, _ = built
    path = root / "sample" / "ads.json"
    doc = json.loads(path.read_text())
    doc["campaigns"][0]["name"] = "Renamed by another sample"
    path.write_text(json.dumps(doc))
    demo = Demo(tiny_config(root), say=lambda _: None)
    assert demo.ads()[0] is True
    store = open_store(Workspace(root))
    rows = {r["id"]: r["name"] for r in store.campaign_rows()}
    store.close()
    assert len(rows) == 20 and rows[doc["campaigns"][0]["id"]] == "Renamed by another sample"
    assert demo.ads()[0] is False


def test_demo_help_states_the_config_defaults(capsys):
    from dataclasses import fields

    from roost.demo import DemoConfig

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = {f.name: f.default for f in fields(DemoConfig)}
    for name in ("posts", "users", "train_minutes", "retriever_steps"):
        assert f"(default: {defaults[name]})" in text, name
