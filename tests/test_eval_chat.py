"""The chat section of `roost eval`: held-out questions, judges trained on the sample, and the figures."""

from __future__ import annotations

import json
import re

import pytest
from test_engine_fixtures import model_workspace, tiny_model, tokenizer  # noqa: F401 (a fixture)

from roost.corpus import IngestConfig, ingest
from roost.eval.chat import ChatEvalConfig, eval_chat, held_out_questions, score, train_judges
from roost.sample.generate import generate
from roost.sample.phrases import QUESTIONS, REPLIES, STATEMENTS
from roost.workspace import Workspace


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory, tokenizer):
    """A workspace with the sample network's corpus (1,200 posts) and a tiny random model."""
    root = tmp_path_factory.mktemp("chat")
    generate(root / "sample", posts=1200, users=80, seed=3, campaigns=5)
    ws = Workspace(model_workspace(root, tokenizer, tiny_model(tokenizer)))
    ingest([root / "sample/posts.jsonl"], ws, IngestConfig(workers=1), progress=False)
    return ws, root / "sample/truth"


def test_held_out_questions_come_from_templates_the_generator_never_writes():
    pairs = held_out_questions(40, seed=1)
    assert len(pairs) == 40 and len({t for _, t in pairs}) == 20  # round-robin over the topics
    corpus_templates = {
        re.sub(r"\{\w+\}", "", t).strip(" ?.:")
        for t in (*QUESTIONS, *STATEMENTS, *(x for v in REPLIES.values() for x in v))
    }
    assert not any(q.startswith(tuple(c for c in corpus_templates if len(c) > 8)) for q, _ in pairs)


def test_judges_tell_topic_and_reply_from_new_post(sample_ws):
    ws, truth_dir = sample_ws
    topic_judge, reply_judge, corpus, accuracy = train_judges(ws, truth_dir)
    assert accuracy["topic"] > 0.8 and accuracy["kind"] > 0.7, accuracy
    truth = [json.loads(line) for line in (truth_dir / "post_topics.jsonl").read_text().splitlines()]
    texts = {
        t["id"]: t["text"]
        for page in map(json.loads, (truth_dir.parent / "posts.jsonl").read_text().splitlines())
        for t in page["data"]
    }
    replies = [r for r in truth if r["kind"] == "reply" and r["lang"] == "en"][:60]
    roots = [r for r in truth if r["kind"] == "post" and r["lang"] == "en"][:60]
    strip = re.compile(r"^(?:\s*@\w+)+\s*")
    as_replies = score(
        [("q", r["topic"]) for r in replies],
        [strip.sub("", texts[r["id"]]) for r in replies],
        topic_judge,
        reply_judge,
        corpus,
    )
    as_posts = score(
        [("q", "football") for _ in roots], [texts[r["id"]] for r in roots], topic_judge, reply_judge, corpus
    )
    assert as_replies["on_topic"] > 0.8 and as_replies["reply_share"] > 0.7
    assert as_posts["reply_share"] < 0.3 and as_posts["on_topic"] < 0.3  # roots of every topic, judged as football
    assert score([("q", "football")] * 3, ["same", "same", "other"], topic_judge, reply_judge, corpus)[
        "repetition"
    ] == pytest.approx(2 / 3)


def test_eval_chat_runs_the_served_model(sample_ws):
    ws, truth_dir = sample_ws
    out = eval_chat(ws, truth_dir, ChatEvalConfig(questions=8, max_tokens=6, examples=3))
    assert out["questions"] == 8 and len(out["examples"]) == 3
    assert all(0.0 <= out[k] <= 1.0 for k in ("on_topic", "reply_share", "repetition", "echo_corpus"))
    assert all(e["question"].endswith("?") for e in out["examples"])
