"""One request must not stall the server: body, prompt and input limits, rate and concurrency per client,
lone surrogates, and 500s that keep the exception to the log. A real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from test_engine_fixtures import live_server, model_workspace, tiny_model, tokenizer  # noqa: F401

from roost.server.limits import Limits

KEY, OTHER, THIRD, ADMIN_KEY = "sk-user", "sk-other", "sk-third", "admin-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tokenizer):  # noqa: F811
    return model_workspace(tmp_path_factory.mktemp("limits"), tokenizer, tiny_model(tokenizer))


@pytest.fixture(scope="module")
def server(ws):
    with live_server(ws, api_keys=[KEY, OTHER], admin_key=ADMIN_KEY) as (url, app):
        yield url, app


def assert_error(r: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


def test_tokenizing_a_long_prompt_leaves_the_event_loop_free(ws):
    """An 800 KB prompt (allowed here) is tokenized in a worker thread that lets go of the GIL: /health answers
    within a fraction of the 1-3 s the tokenizing takes (before: it waited for all of it)."""
    limits = Limits(max_prompt_chars=1_000_000)
    with live_server(ws, limits=limits) as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        prompt = "the cat sat on a mat 日本 " * 32_000
        done: dict = {}
        worker = threading.Thread(
            target=lambda: done.setdefault(
                "r", http.post("/v1/completions", json={"model": "roost", "prompt": prompt, "max_tokens": 1})
            )
        )
        worker.start()
        slowest, polls = 0.0, 0
        while worker.is_alive():
            t0 = time.perf_counter()
            assert http.get("/health").status_code == 200
            slowest, polls = max(slowest, time.perf_counter() - t0), polls + 1
            time.sleep(0.01)
        worker.join()
    assert_error(done["r"], 400, code="context_length_exceeded")
    assert slowest < 0.5, f"/health waited {slowest:.2f} s while a prompt was tokenized"
    assert polls >= 3, "the prompt was tokenized too fast to tell"


def test_bodies_prompts_and_inputs_past_the_limits_are_refused_before_any_work(server):
    url, _ = server
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        t0 = time.perf_counter()
        big = b'{"model": "roost", "prompt": "' + b"a" * (5 * 2**20) + b'"}'
        assert_error(
            http.post("/v1/completions", content=big, headers={"content-type": "application/json"}),
            413,
            code="request_too_large",
        )
        chunked = (big[i : i + 2**16] for i in range(0, len(big), 2**16))  # no Content-Length: counted as it comes
        assert_error(
            http.post("/v1/completions", content=chunked, headers={"content-type": "application/json"}),
            413,
            code="request_too_large",
        )
        long = "the cat " * 12_500 + "!"  # 100,001 characters
        chat = {"model": "roost", "messages": [{"role": "user", "content": long}]}
        assert_error(http.post("/v1/chat/completions", json=chat), 400, "messages", "context_length_exceeded")
        assert_error(
            http.post("/v1/completions", json={"model": "roost", "prompt": long}),
            400,
            "prompt",
            "context_length_exceeded",
        )
        assert_error(
            http.post("/v1/embeddings", json={"model": "roost", "input": ["x", long]}),
            400,
            "input",
            "context_length_exceeded",
        )
        assert_error(http.post("/v1/embeddings", json={"model": "roost", "input": ["the cat"] * 257}), 400, "input")
        assert time.perf_counter() - t0 < 10
        ok = http.post("/v1/embeddings", json={"model": "roost", "input": ["the cat"] * 256})
        assert ok.status_code == 200 and len(ok.json()["data"]) == 256


@pytest.mark.parametrize(
    "path, body, param",
    [
        (
            "/v1/chat/completions",
            '{"model": "roost", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
            "messages.0.content",
        ),
        ("/v1/completions", '{"model": "roost", "prompt": "\\udfff the cat"}', "prompt"),
        ("/v1/embeddings", '{"model": "roost", "input": ["ok", "\\ud800"]}', "input.1"),
        ("/v1/embeddings", '{"model": "\\ud800", "input": "the cat"}', "model"),
        ("/admin/posts", '{"posts": [{"id": "p1", "text": "hello", "author_id": "\\ud800"}]}', "posts.0.author_id"),
        (
            "/admin/campaigns",
            '{"advertiser": "A", "name": "\\udc00", "budget": 1, "bid_type": "cpc", "bid": 0.1,'
            ' "creatives": [{"text": "t", "landing_url": "https://a.example"}]}',
            "name",
        ),
        (
            "/v1/completions",
            b'{"model": "roost", "prompt": "raw \xed\xa0\x80 bytes"}',
            "prompt",
        ),  # Python's json takes it
        ("/v1/completions", '{"model": "roost", "prompt": "x", "\\ud800": 1}', "(a key)"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(server, path, body, param):
    url, _ = server
    headers = {
        "content-type": "application/json",
        "Authorization": f"Bearer {ADMIN_KEY if path.startswith('/admin') else KEY}",
    }
    error = assert_error(httpx.post(url + path, content=body, headers=headers, timeout=30), 400, param)
    assert "surrogate" in error["message"]


def test_a_surrogate_pair_is_just_an_emoji(server):
    body = '{"model": "roost", "input": "the cat \\ud83e\\udd9c"}'
    r = httpx.post(server[0] + "/v1/embeddings", content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 200, r.text


def _hold(url: str, key: str) -> socket.socket:
    """A request that stays in flight: its headers promise a body that never comes."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.sendall(
        f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
    )
    return sock


def test_per_client_rate_and_concurrency_limits_answer_429_with_retry_after(ws):
    limits = Limits(rate=4, burst=4, concurrency=2)
    with live_server(ws, api_keys=[KEY, OTHER, THIRD], limits=limits) as (url, _), httpx.Client(base_url=url) as http:
        codes = [http.get("/v1/models", headers=AUTH).status_code for _ in range(5)]
        assert codes == [200] * 4 + [429]
        r = http.get("/v1/models", headers=AUTH)
        assert assert_error(r, 429, code="rate_limit_exceeded")["type"] == "rate_limit_error"
        assert int(r.headers["retry-after"]) >= 1
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {OTHER}"}).status_code == 200  # own bucket
        assert all(http.get("/health").status_code == 200 for _ in range(10))  # a monitor is never limited
        time.sleep(1.0)  # four tokens back
        assert http.get("/v1/models", headers=AUTH).status_code == 200

        third = {"Authorization": f"Bearer {THIRD}"}
        held = [_hold(url, THIRD), _hold(url, THIRD)]
        try:
            time.sleep(1.0)  # both reach the server first (a request sent meanwhile would be in flight too)
            for sock in held:
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)  # no answer yet: both are in flight, neither was refused
            r = http.get("/v1/models", headers=third)
            assert_error(r, 429, code="rate_limit_exceeded")
            assert "in flight" in r.json()["error"]["message"] and r.headers["retry-after"] == "1"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while http.get("/v1/models", headers=third).status_code != 200:
            assert time.monotonic() < deadline, "the held requests were never released"
            time.sleep(0.3)


def test_a_500_carries_no_exception_text(server):
    url, app = server

    def boom() -> None:
        raise RuntimeError("NOT NULL constraint failed: campaigns.status in /secret/path")

    app.router.add_api_route("/boom", boom)
    r = httpx.get(url + "/boom")
    error = assert_error(r, 500, code="internal_error")
    assert error["type"] == "server_error"
    assert "constraint" not in r.text and "secret" not in r.text and "RuntimeError" not in r.text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-body-bytes", "0"], "max_body_bytes must be at least 1"),
        (["--rate-limit", "-1"], "rate must be 0 (off) or more"),
        (["--public-url", "evil.example"], "--public-url must be an http or https URL"),
    ],
)
def test_serve_refuses_bad_limit_flags(capsys, tmp_path, flags, message):
    from roost.cli import main

    assert main(["serve", "--workspace", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err
