"""``roost index`` + ``roost serve``: /search and the live post admin routes over real HTTP."""

from __future__ import annotations

import httpx
import pytest
from test_engine_fixtures import live_server, model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.workspace import Workspace

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def served_ws(tmp_path, tokenizer):  # noqa: F811
    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    write_corpus(Workspace(root), make_posts(30))
    assert main(["index", "--workspace", str(root)]) == 0
    return root


def search(base, **params):
    return httpx.get(f"{base}/search", params=params, timeout=30)


def test_search_modes_and_explain(served_ws):
    with live_server(served_ws) as (base, _):
        for mode in ("lexical", "semantic", "hybrid"):
            r = search(base, q="pasta garlic #foodie", k=5, mode=mode, explain="true")
            assert r.status_code == 200, r.text
            data = r.json()["data"]
            assert 1 <= len(data) <= 5
            assert {"id", "text", "author", "created_at", "score", "explain"} <= set(data[0])
            assert [d["score"] for d in data] == sorted((d["score"] for d in data), reverse=True)
        explain = search(base, q="pasta garlic", mode="hybrid", explain="true").json()["data"][0]["explain"]
        assert {"bm25", "vector", "relevance", "recency", "engagement", "author_quality"} <= set(explain)
        lexical = search(base, q="#foodie", k=100, mode="lexical", author="u0").json()["data"]
        assert lexical and all("#foodie" in d["text"] and d["author"] == "u0" for d in lexical)
        assert "explain" not in lexical[0]


BAD = [
    ({"q": ""}, "q"),
    ({"q": "x" * 2000}, "q"),
    ({"q": "a", "since": "last tuesday"}, "since"),
    ({"q": "a", "mode": "fuzzy"}, "mode"),
    ({"q": "a", "k": 0}, "k"),
    ({"q": "a", "k": 1000}, "k"),
    ({"q": "a", "k": "ten"}, "k"),
    ({"q": "a", "since": "2024-02-01", "until": "2024-01-01"}, "since"),
]


def test_bad_queries_get_400_with_openai_error(served_ws):
    with live_server(served_ws) as (base, _):
        for params, param in BAD:
            r = search(base, **params)
            assert r.status_code == 400, (params, r.text)
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error" and err["param"] == param and param in err["message"]


def test_admin_add_and_delete_are_live_and_durable(served_ws):
    post = {
        "id": "n1",
        "text": "  Zeppelin &amp; airship over the harbour #Blimp 🎈",
        "author_id": "u9",
        "created_at": "2024-06-01T10:00:00Z",
        "like_count": 3,
    }
    with live_server(served_ws, admin_key="admin-secret") as (base, _):
        r = httpx.post(f"{base}/admin/posts", json={"posts": [post]}, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_key"
        spam = " ".join(f"#tag{i}" for i in range(12))
        r = httpx.post(
            f"{base}/admin/posts",
            headers=ADMIN,
            timeout=30,
            json={
                "posts": [post, {"id": "n2", "text": "   "}, {"id": "n3", "text": spam}, {"id": "n1", "text": "again"}]
            },
        )
        # searchable when the POST returns: no refresh wait, no retry (how fast: bench/search.py latency, "post -> found")
        first = search(base, q="zeppelin airship", mode="lexical").json()["data"]
        assert r.status_code == 200, r.text
        assert first[0]["id"] == "n1"
        assert r.json()["added"] == ["n1"]
        assert [(x["id"], x["reason"]) for x in r.json()["rejected"]] == [
            ("n2", "empty"),
            ("n3", "spam"),
            ("n1", "duplicate_id_in_request"),
        ]  # ingest's filters
        for mode in ("semantic", "hybrid"):
            hits = search(base, q="zeppelin airship", mode=mode, k=100).json()["data"]
            assert "n1" in [h["id"] for h in hits], mode
        tagged = search(base, q="harbour", hashtag="#blimp", mode="lexical").json()["data"]
        assert [h["text"] for h in tagged] == ["Zeppelin & airship over the harbour #Blimp 🎈"]  # normalized
        assert search(base, q="🎈", mode="lexical").json()["data"][0]["id"] == "n1"

        r = httpx.delete(f"{base}/admin/posts/p3", headers=ADMIN, timeout=30)
        assert r.status_code == 200 and r.json()["deleted"] is True
        r = httpx.delete(f"{base}/admin/posts/p3", headers=ADMIN, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
        bad = httpx.post(f"{base}/admin/posts", json={"posts": [{"id": "x"}]}, headers=ADMIN, timeout=30)
        assert bad.status_code == 400 and "text" in bad.json()["error"]["message"]
    with live_server(served_ws) as (base, _):  # restart
        for mode in ("lexical", "semantic", "hybrid"):
            got = [
                h["id"]
                for h in search(base, q="zeppelin airship " + make_posts(30)[3]["text"], mode=mode, k=100).json()[
                    "data"
                ]
            ]
            assert "n1" in got and "p3" not in got, mode


def test_no_index_is_a_clear_error(tmp_path):
    with live_server(tmp_path / "empty") as (base, _):
        r = search(base, q="hello")
        assert r.status_code == 503 and "roost index" in r.json()["error"]["message"]


def test_author_filter_takes_handles_as_well_as_ids(tmp_path, tokenizer):  # noqa: F811
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_search_fixtures import START

    from roost.corpus import schema

    root = model_workspace(tmp_path, tokenizer, tiny_model(tokenizer))
    ws = Workspace(root)
    write_corpus(ws, make_posts(30))
    ids = ["u0", "u1", "u2", "u3"]
    users = {
        "id": ids,
        "username": ["Alice", "bob", "carol", "dave"],
        "name": ids,
        "created_at": [START] * 4,
        "followers_count": [1, 2, 3, 4],
    }
    pq.write_table(pa.table(users, schema=schema.USERS), ws.corpus / "users-00000.parquet")
    assert main(["index", "--workspace", str(root)]) == 0
    with live_server(root) as (base, _):
        by_id = search(base, q="pasta garlic", mode="lexical", k=100, author="u0").json()["data"]
        assert by_id and {d["author"] for d in by_id} == {"u0"} and by_id[0]["username"] == "Alice"
        for author in ("@Alice", "@alice", "alice", " Alice "):
            hits = search(base, q="pasta garlic", mode="lexical", k=100, author=author).json()["data"]
            assert [d["id"] for d in hits] == [d["id"] for d in by_id], author
        assert search(base, q="pasta garlic", mode="lexical", author="@nobody").json()["data"] == []


def test_a_model_or_index_that_fails_to_load_is_a_503_with_a_remedy(served_ws):
    from roost.search.embed import RETRIEVER_FILE

    model = Workspace(served_ws).model
    (model / RETRIEVER_FILE).write_bytes(b"not a safetensors file")  # a damaged retriever: the model cannot load
    with live_server(served_ws) as (base, _):
        assert search(base, q="pasta", mode="lexical").status_code == 200
        for mode in ("semantic", "hybrid"):
            r = search(base, q="pasta", mode=mode)
            err = r.json()["error"]
            assert r.status_code == 503 and err["code"] == "model_unavailable" and "train-retriever" in err["message"]
        assert any("semantic and hybrid modes disabled" in w for w in httpx.get(f"{base}/health").json()["warnings"])
    (model / RETRIEVER_FILE).unlink()
    docs = Workspace(served_ws).index / "docs.sqlite"
    docs.unlink()
    docs.mkdir()  # a doc store SQLite cannot open
    with live_server(served_ws) as (base, _):
        r = search(base, q="pasta", mode="lexical")
        err = r.json()["error"]
        assert r.status_code == 503 and err["code"] == "index_unavailable" and "roost index" in err["message"]
        assert httpx.get(f"{base}/health").status_code == 200  # the other surfaces still serve


def test_search_rerank_flag_reranks_hybrid_over_http(served_ws):
    with live_server(served_ws, search_rerank=5) as (base, _):
        hits = search(base, q="pasta garlic", mode="hybrid", k=10, explain="true").json()["data"]
        assert [("rerank" in h["explain"]) for h in hits] == [True] * 5 + [False] * (len(hits) - 5)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        assert all(
            "rerank" not in h["explain"]
            for h in search(base, q="pasta garlic", mode="semantic", explain="true").json()["data"]
        )
    assert main(["serve", "--workspace", str(served_ws), "--search-rerank", "-1"]) == 2
