"""``roost serve --llm-url``: a second real roost server stands in for vLLM; chat and completions go through.

The engine server has a tiny model and its own API key; the front server has no
model and sends generation to it. Greedy answers through the front equal the
engine's own, streamed or not, usage included; the engine's errors and auth
pass through; an engine that is down is a 502 and makes the front not ready.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from test_engine_fixtures import live_server, model_workspace, tiny_model, tokenizer  # noqa: F401

from roost.ads.pgtemp import free_port

ENGINE_KEY, FRONT_KEY = "engine-key", "front-key"
CHAT = {
    "model": "roost",
    "messages": [{"role": "user", "content": "the cat sat on"}],
    "max_tokens": 12,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tokenizer):
    ws = model_workspace(tmp_path_factory.mktemp("engine"), tokenizer, tiny_model(tokenizer))
    with live_server(ws, api_keys=[ENGINE_KEY], slots=4, queue=8) as (url, _):
        yield url


@pytest.fixture(scope="module")
def front(tmp_path_factory, engine):
    ws = tmp_path_factory.mktemp("front") / "workspace"  # no model: generation can only come from the engine
    with live_server(ws, api_keys=[FRONT_KEY], llm_url=engine + "/v1", llm_api_key=ENGINE_KEY) as (url, _):
        yield url


def sse(text: str) -> list:
    """The data of each server-sent event, JSON-decoded ('[DONE]' kept as text)."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_chat_and_completions_answer_as_the_engine_does(engine, front):
    direct = httpx.post(engine + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {ENGINE_KEY}"})
    client = openai.OpenAI(base_url=front + "/v1", api_key=FRONT_KEY, max_retries=0)
    via = client.chat.completions.create(**CHAT)
    want = direct.json()
    assert via.choices[0].message.content == want["choices"][0]["message"]["content"]
    assert via.choices[0].finish_reason == want["choices"][0]["finish_reason"]
    assert via.usage.prompt_tokens == want["usage"]["prompt_tokens"] > 0
    assert via.usage.completion_tokens == want["usage"]["completion_tokens"] > 0
    done = client.completions.create(model="roost", prompt="the dog ran", max_tokens=5, temperature=0)
    direct = httpx.post(
        engine + "/v1/completions",
        json={"model": "roost", "prompt": "the dog ran", "max_tokens": 5, "temperature": 0},
        headers={"Authorization": f"Bearer {ENGINE_KEY}"},
    ).json()
    assert (
        done.choices[0].text == direct["choices"][0]["text"]
        and done.usage.total_tokens == direct["usage"]["total_tokens"]
    )
    assert [m.id for m in client.models.list().data] == ["roost"]


def test_streaming_passes_chunks_usage_and_done(engine, front):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream(
        "POST", front + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {FRONT_KEY}"}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.read().decode())
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-2] if c["choices"])
    plain = httpx.post(
        engine + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {ENGINE_KEY}"}
    ).json()
    assert text == plain["choices"][0]["message"]["content"] and usage == plain["usage"]


def test_errors_and_auth_pass_through(engine, front, tmp_path):
    r = httpx.post(front + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"  # the front's own key first
    auth = {"Authorization": f"Bearer {FRONT_KEY}"}
    bad = {**CHAT, "max_tokens": -1}
    via = httpx.post(front + "/v1/chat/completions", json=bad, headers=auth)
    direct = httpx.post(engine + "/v1/chat/completions", json=bad, headers={"Authorization": f"Bearer {ENGINE_KEY}"})
    assert via.status_code == direct.status_code == 400 and via.json() == direct.json()
    r = httpx.post(front + "/v1/chat/completions", content=b"{nope", headers=auth)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    # no --llm-api-key: the client's own Authorization goes to the engine, which checks it
    with live_server(tmp_path / "ws", llm_url=engine + "/v1") as (url, _):
        ok = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {ENGINE_KEY}"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
        denied = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer wrong"})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"


def test_an_engine_that_is_down_is_a_502_and_the_replica_is_not_ready(tmp_path):
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with live_server(tmp_path / "ws", llm_url=down) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json=CHAT)
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unavailable", r.text
        with httpx.stream("POST", url + "/v1/chat/completions", json={**CHAT, "stream": True}) as s:
            assert s.status_code == 502
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
        assert "unreachable" in ready.json()["error"]["message"]
        assert httpx.get(url + "/health").status_code == 200  # alive, just not ready


def test_ready_when_the_engine_answers(front):
    r = httpx.get(front + "/ready")
    assert r.status_code == 200 and r.json()["checks"]["model"] == "ok", r.text
