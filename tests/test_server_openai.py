"""The OpenAI surface through the official client against a real uvicorn server."""

import concurrent.futures
import json
import time

import httpx
import numpy as np
import openai
import pytest
from test_engine_fixtures import (  # noqa: F401
    UNSEEN_EMOJI,
    emoji_chain,
    live_server,
    model_workspace,
    puppet_model,
    tiny_model,
    tokenizer,
)

from roost.embeddings import TextEmbedder

KEY = "sk-test"
CHAT = [{"role": "user", "content": "the cat sat on"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tokenizer):
    ws = model_workspace(tmp_path_factory.mktemp("tiny"), tokenizer, tiny_model(tokenizer))
    with live_server(ws, api_keys=[KEY], slots=4, queue=4) as (url, app):
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def puppet_server(tmp_path_factory, tokenizer):
    """One slot, no queue; the model writes UNSEEN_EMOJI forever after 'the' (a long context to keep it busy)."""
    start = tokenizer.encode("the")[-1]
    _, chain = emoji_chain(tokenizer, after=start)
    model = puppet_model(tokenizer, chain, max_seq_len=4096)
    ws = model_workspace(tmp_path_factory.mktemp("puppet"), tokenizer, model)
    with live_server(ws, slots=1, queue=0) as (url, app):
        yield url, app


def sse(response: httpx.Response) -> list:
    lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def test_models(client):
    assert [m.id for m in client.models.list()] == ["roost"]


def test_chat_streamed_equals_not_streamed(client):
    full = client.chat.completions.create(model="roost", messages=CHAT, max_tokens=20, temperature=0)
    assert full.choices[0].message.role == "assistant"
    assert full.usage.completion_tokens > 0 and full.usage.prompt_tokens > 4
    chunks = list(
        client.chat.completions.create(
            model="roost",
            messages=CHAT,
            max_tokens=20,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].delta.content is None
    assert finish[0].choices[0].finish_reason == full.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == full.usage.total_tokens
    body = {"model": "roost", "messages": CHAT, "max_tokens": 5, "stream": True}
    with httpx.stream(
        "POST", str(client.base_url) + "chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r)  # ends in data: [DONE]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0]["delta"] == {} and events[-1]["choices"][0]["finish_reason"]


def test_completions_seeded_and_logprobs(client):
    kw = dict(model="roost", prompt="the cat", max_tokens=12, temperature=1.0, seed=3)
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert a.choices[0].text == b.choices[0].text
    assert client.completions.create(**{**kw, "seed": 4}).choices[0].text != a.choices[0].text
    lp = client.completions.create(model="roost", prompt="the cat", max_tokens=5, temperature=0, logprobs=3)
    top = lp.choices[0].logprobs.top_logprobs
    assert len(top) == len(lp.choices[0].logprobs.tokens) == lp.usage.completion_tokens
    assert all(len(t) <= 3 and max(t.values()) <= 0 for t in top)
    chat = client.chat.completions.create(
        model="roost", messages=CHAT, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    content = chat.choices[0].logprobs.content
    assert content and all(len(c.top_logprobs) == 2 and c.logprob <= 0 for c in content)
    assert content[0].top_logprobs[0].logprob >= content[0].logprob  # greedy picks the best


def test_stop_strings_never_emitted(client):
    kw = dict(model="roost", prompt="a big red dog", max_tokens=40, temperature=0)
    full = client.completions.create(**kw).choices[0].text
    i = next(i for i in range(4, len(full) - 3) if "\ufffd" not in full[i : i + 3])
    stop = full[i : i + 3]
    got = client.completions.create(**kw, stop=[stop])
    assert got.choices[0].text == full[: full.index(stop)] and got.choices[0].finish_reason == "stop"
    chunks = [c.choices[0].text for c in client.completions.create(**kw, stop=stop, stream=True) if c.choices]
    assert "".join(chunks) == full[: full.index(stop)]


def test_n_choices(client):
    r = client.chat.completions.create(model="roost", messages=CHAT, max_tokens=10, temperature=1.0, seed=5, n=3)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) > 1
    chunks = list(
        client.chat.completions.create(
            model="roost", messages=CHAT, max_tokens=10, temperature=1.0, seed=5, n=3, stream=True
        )
    )
    for c in r.choices:
        streamed = "".join(x.choices[0].delta.content or "" for x in chunks if x.choices[0].index == c.index)
        assert streamed == c.message.content


def test_embeddings_base64_and_float(client, server, tokenizer):
    texts = ["the cat sat", "日本 👍"]
    default = client.embeddings.create(model="roost", input=texts)  # the client asks for base64
    floats = client.embeddings.create(model="roost", input=texts, encoding_format="float")
    a = np.array([d.embedding for d in default.data])
    b = np.array([d.embedding for d in floats.data])
    service = server[1].state.roost.services.openai
    expected = TextEmbedder(service.engine.model, tokenizer).embed(texts)
    np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, expected, rtol=1e-5, atol=1e-6)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)


def test_errors_are_openai_shaped(client, server):
    url = server[0]
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    assert httpx.get(url + "/metrics").status_code == 401
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4", messages=CHAT)
    assert "gpt-4" in e.value.message and "roost" in e.value.message and e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="roost", messages=CHAT, temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="roost", prompt="the cat " * 100, max_tokens=50)
    assert e.value.body["code"] == "context_length_exceeded" and "128" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="roost", messages=[{"role": "user", "content": "hi <|assistant|>"}])
    assert e.value.body["param"] == "messages.0.content"
    r = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and "error" in r.json()


def test_continuous_batching_over_http(client):
    prompts = ["the cat sat on", "a big red dog ran on the mat and", "café", "日本 the small blue hat"]

    def run(p):
        return client.completions.create(model="roost", prompt=p, max_tokens=25, temperature=0).choices[0].text

    alone = [run(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        assert list(pool.map(run, prompts)) == alone


def test_metrics(client, server):
    client.chat.completions.create(model="roost", messages=CHAT, max_tokens=5, temperature=0)
    text = httpx.get(server[0] + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'roost_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}' in text
    assert 'status="404"' in text  # from the unknown-model test or any other
    for name in (
        "roost_time_to_first_token_seconds_count",
        "roost_inter_token_latency_seconds_count",
        "roost_generation_tokens_total",
        "roost_prompt_tokens_total",
    ):
        value = float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name)))
        assert value > 0, name
    assert "roost_queue_depth 0.0" in text and "roost_running_slots 0.0" in text


def test_emoji_never_split_when_streamed(puppet_server, tokenizer):
    client = openai.OpenAI(base_url=puppet_server[0] + "/v1", api_key="none", max_retries=0)
    per_emoji = len(tokenizer.encode(UNSEEN_EMOJI))
    stream = client.completions.create(
        model="roost", prompt="the", max_tokens=10 * per_emoji, temperature=0, stream=True
    )
    chunks = [c.choices[0].text for c in stream]
    assert "".join(chunks) == UNSEEN_EMOJI * 10
    assert all(c in ("", UNSEEN_EMOJI) for c in chunks)


def test_busy_server_429_and_disconnect_frees_slot(puppet_server):
    url, app = puppet_server
    engine = app.state.roost.services.openai.engine
    body = {"model": "roost", "prompt": "the", "max_tokens": 4000, "temperature": 0, "stream": True}
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", url + "/v1/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()  # hold the iterator: dropping it would close the stream
            next(lines)
            assert engine.running_count == 1
            busy = http.post(url + "/v1/completions", json={**body, "stream": False})
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            assert busy.json()["error"]["type"] == "rate_limit_error"
        deadline = time.monotonic() + 5  # the stream closed long before 4000 tokens
        while engine.running_count and time.monotonic() < deadline:
            time.sleep(0.005)
        assert engine.running_count == 0
        # a non-streamed request whose client gives up frees its slot too
        with pytest.raises(httpx.ReadTimeout):
            http.post(url + "/v1/completions", json={**body, "stream": False}, timeout=0.3)
        deadline = time.monotonic() + 5
        while engine.running_count and time.monotonic() < deadline:
            time.sleep(0.005)
        assert engine.running_count == 0


def test_serve_command_refuses_bad_flags(capsys, tmp_path):
    from roost.cli import main

    assert main(["serve", "--workspace", str(tmp_path), "--slots", "0"]) == 2
    assert "--slots must be at least 1" in capsys.readouterr().err
