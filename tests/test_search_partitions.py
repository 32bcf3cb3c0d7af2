"""A partitioned search index: same answers as one index, global BM25, live writes, faults, replicas.

The HTTP tests run real ``roost serve-partition`` processes on 127.0.0.1 behind a real front server."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tantivy
from test_engine_fixtures import live_server, model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.search.dfs import FIELDNORMS, fieldnorm, merge
from roost.search.docstore import Filters, Post
from roost.search.embed import load_search_model
from roost.search.engine import SearchIndex, SearchRequest
from roost.search.front import FrontConfig, PartitionedIndex
from roost.search.lexical import LexicalIndex
from roost.search.partition import build_partitioned_index, part_dir, partition_of, partition_vector_config
from roost.search.replica import LocalPartition, RemotePartition
from roost.search.vector import VectorConfig
from roost.workspace import Workspace

ADMIN = {"Authorization": "Bearer admin-secret"}
QUERIES = ["pasta garlic", "goal derby #worldcup", "gpu tokens", "keeper", "oven sauce dinner", "neural 🤖", "zzz"]


def corpus_posts() -> list[dict]:
    posts = make_posts(150)
    for i, p in enumerate(posts):  # lengths vary, so the average length and the length norm matter
        p["text"] += " extra words here" * (i % 5)
    return posts


@pytest.fixture(scope="module")
def model_root(tmp_path_factory, tokenizer):  # noqa: F811
    return model_workspace(tmp_path_factory.mktemp("model"), tokenizer, tiny_model(tokenizer))


@pytest.fixture(scope="module")
def one(tmp_path_factory, model_root):
    """One index over the corpus, and the search model: what the partitions must answer like."""
    ws = Workspace(workspace_with_index(model_root, tmp_path_factory.mktemp("one") / "ws", 0))
    model = load_search_model(ws.model)
    return SearchIndex(ws.index, model), model


def workspace_with_index(model_root: Path, dest: Path, parts: int) -> Path:
    """A copy of the model workspace with the corpus, indexed as one index (0) or ``parts`` partitions."""
    shutil.copytree(model_root, dest)
    ws = Workspace(dest)
    write_corpus(ws, corpus_posts())
    if parts == 0:
        assert main(["index", "--workspace", str(dest)]) == 0
    else:
        build_partitioned_index(ws, parts, model_dir=ws.model)
    return dest


def test_partition_of_is_stable_and_spreads():
    ids = [f"post-{i}" for i in range(3000)]
    assert [partition_of(i, 3) for i in ids] == [partition_of(i, 3) for i in ids]
    counts = [sum(partition_of(i, 3) == p for i in ids) for p in range(3)]
    assert min(counts) > 900, counts


def test_partition_ef_falls_with_the_partition_count():
    efs = [partition_vector_config(p).expansion_search for p in (1, 2, 4, 16, 10_000)]
    assert efs[0] == VectorConfig().expansion_search  # one partition searches as one index
    assert efs == sorted(efs, reverse=True) and len(set(efs)) == len(efs) and efs[-1] >= 16


def test_fieldnorm_matches_tantivys_stored_lengths(tmp_path):
    """The re-scoring must use the document length tantivy scores with: exact to 40 tokens, bucketed past."""
    assert FIELDNORMS[:41] == list(range(41)) and FIELDNORMS == sorted(set(FIELDNORMS)) and len(FIELDNORMS) == 256
    ix = LexicalIndex(tmp_path / "lex")
    lengths = [3, 40, 41, 45, 57, 100, 333]
    ix.add([Post(id=str(n), text=" ".join(["w"] + ["x"] * (n - 1)), key=n) for n in lengths])
    ix.commit()
    q = tantivy.Query.term_query(ix.schema, "body", "w")
    searcher = ix.index.searcher()
    for _, addr in searcher.search(q, 10).hits:
        key = searcher.fast_field_values("key", [addr])[0]
        dl = [d for d in _flatten(q.explain(searcher, addr).to_json()) if d.startswith("dl")][0]
        assert float(dl.split("=")[1]) == fieldnorm(key), (key, dl)


def _flatten(explanation: str) -> list[str]:
    import json

    out = []

    def walk(n):
        out.append(f"{n['description'].split(',')[0]}={n['value']}")
        for c in n.get("details", []):
            walk(c)

    walk(json.loads(explanation))
    return out


class CountingPartition(LocalPartition):
    """A partition in this process that counts the first rounds (term counts asked for) it answers, and the
    depths it is asked for candidates at."""

    asked = 0
    depths: list = []

    def term_stats(self, terms):
        CountingPartition.asked += 1
        return super().term_stats(terms)

    def candidates(self, req, qvec, stats, depth=None):
        CountingPartition.depths.append(depth)
        return super().candidates(req, qvec, stats, depth)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_partitions_answer_as_one_index(tmp_path, model_root, one, parts):
    one, model = one
    part_ws = workspace_with_index(model_root, tmp_path / "parts", parts)
    indexes = [SearchIndex(part_dir(Workspace(part_ws).index, i), model) for i in range(parts)]
    replicas = [[CountingPartition(ix)] for ix in indexes]
    sizes = [ix.docs.count() for ix in indexes]
    assert sum(sizes) == one.docs.count() == 150 and (parts == 1 or min(sizes) > 0)
    filters = [Filters(), Filters(author="u1"), Filters(hashtag="foodie")]
    # the front's term table holds every partition's whole dictionary (one round a query), or only each
    # partition's 5 most frequent terms (most queries ask the partitions for their counts first); each
    # partition is first asked for 1.5 times its share of each list's top n, or for a fifth of it (so that
    # most queries ask partitions again for all n)
    n = one.ranking.candidates
    for config in (FrontConfig(), FrontConfig(vocabulary_limit=5), FrontConfig(first_share=0.2)):
        limit = config.vocabulary_limit
        front = PartitionedIndex(replicas, model, config=config)
        CountingPartition.asked, CountingPartition.depths = 0, []
        for mode in ("lexical", "semantic", "hybrid"):
            for q in QUERIES:
                for f in filters:
                    want = one.search(SearchRequest(q=q, k=10, mode=mode, filters=f))
                    got = front.search_partial(SearchRequest(q=q, k=10, mode=mode, filters=f))
                    assert not got.partial
                    assert [h.post.id for h in got.hits] == [h.post.id for h in want], (limit, mode, q, f)
                    assert [h.score for h in got.hits] == pytest.approx([h.score for h in want], rel=1e-4)
        if limit > 1000 or parts == 1:  # the table knew every term; one partition's own counts are the sums
            assert CountingPartition.asked == 0
        else:
            assert 0 < CountingPartition.asked <= parts * len(QUERIES)  # asked once a query, then kept
        first = n if parts == 1 else math.ceil(config.first_share * n / parts)
        assert first in CountingPartition.depths and set(CountingPartition.depths) <= {first, n}
        if config.first_share < 1 and parts > 1:
            assert CountingPartition.depths.count(n) > len(QUERIES)  # asked again, and the answers still agree
    # the sums of the partitions' counts are the one index's counts
    terms = LexicalIndex.query_terms("pasta garlic keeper")
    total, single = merge([r[0].term_stats(terms) for r in replicas]), one.lexical.term_stats(terms)
    assert total.docs == single.docs and total.df == single.df
    assert total.tokens["body"] == pytest.approx(single.tokens["body"], rel=1e-5)


def test_term_table_follows_writes(tmp_path, model_root, one):
    """Posts added through the front add their counts to its table, exactly; an emptied table asks, then reloads."""
    _, model = one
    part_ws = workspace_with_index(model_root, tmp_path / "parts", 2)
    replicas = [[CountingPartition(SearchIndex(part_dir(Workspace(part_ws).index, i), model))] for i in range(2)]
    front = PartitionedIndex(replicas, model)
    terms = LexicalIndex.query_terms("quokka pasta garlic numbat")

    def summed():
        return merge([r[0].term_stats(terms) for r in replicas])

    before = front._terms.lookup(terms)
    assert before is not None and before.df["body"]["quokka"] == 0 and before.df == summed().df
    new = [
        Post(id=f"w{i}", text=f"quokka pasta {'numbat ' * i}garlic", author_id="u9", created_at=1e9) for i in range(4)
    ]
    front.add(new)
    after, want = front._terms.lookup(terms), summed()
    assert after.docs == want.docs == before.docs + 4 and after.df == want.df and after.df["body"]["quokka"] == 4
    assert after.tokens["body"] == pytest.approx(want.tokens["body"], rel=1e-6)
    CountingPartition.asked = 0
    assert [h.post.id for h in front.search(SearchRequest(q="numbat", k=3, mode="lexical"))] == ["w3", "w2", "w1"]
    assert CountingPartition.asked == 0
    assert front.delete("w3")  # tantivy counts it until a merge, and so does the table until a reload
    assert [h.post.id for h in front.search(SearchRequest(q="numbat", k=3, mode="lexical"))] == ["w2", "w1"]
    assert CountingPartition.asked == 0
    front._terms.invalidate()  # as after a replay: queries ask the partitions until the table is reloaded
    assert front._terms.lookup(terms) is None
    front.search(SearchRequest(q="numbat", k=3, mode="lexical"))
    assert CountingPartition.asked == 2
    front._terms.reload()
    assert front._terms.lookup(terms).df == summed().df
    front.close()


def test_partition_routes_need_the_key_and_refuse_bad_bodies(tmp_path, model_root):
    """The query routes (plain Starlette routes, for speed) keep the key check and the 4xx error bodies."""
    from fastapi.testclient import TestClient

    from roost.server.partition import PartitionConfig, create_partition_app

    ws = workspace_with_index(model_root, tmp_path / "ws", 2)
    config = PartitionConfig(ws, 0, part_dir(Workspace(ws).index, 0), key="part-secret")
    body = {"request": {"q": "pasta", "k": 5, "mode": "lexical"}, "qvec": None, "stats": None, "depth": 3}
    app = create_partition_app(config)
    # one partition of two searches its vectors with less ef than one index (the same recall at half the posts)
    ef = app.state.roost.partition.index.vectors.config.expansion_search
    assert ef == partition_vector_config(2).expansion_search < VectorConfig().expansion_search
    with TestClient(app) as client:
        for path in ("/partition/candidates", "/partition/stats", "/partition/vocabulary"):
            r = client.post(path, json=body)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", path
        auth = {"Authorization": "Bearer part-secret"}
        r = client.post("/partition/candidates", json=body, headers=auth)
        assert r.status_code == 200 and len(r.json()["lists"]["bm25"]) <= 3
        for bad, param in (({**body, "depth": 0}, "depth"), ({**body, "request": {"k": 5}}, "request")):
            r = client.post("/partition/candidates", json=bad, headers=auth)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        r = client.post("/partition/candidates", content=b"{not json", headers=auth)
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
        r = client.post("/partition/vocabulary", json={"limit": "all"}, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


# ---- real processes ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PartitionProcess:
    """``roost serve-partition`` in its own process, started and stopped by the test."""

    def __init__(self, ws: Path, part: int, index_dir: Path | None = None):
        self.ws, self.part, self.index_dir = ws, part, index_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> PartitionProcess:
        cmd = [sys.executable, "-m", "roost", "serve-partition", "--workspace", str(self.ws)]
        cmd += ["--partition", str(self.part), "--port", str(self.port)]
        if self.index_dir is not None:
            cmd += ["--index-dir", str(self.index_dir)]
        self.proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, f"partition {self.part} exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, f"partition {self.part} did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/partition/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path, model_root):
    """Partition 0 with two replicas (copies of its folder), partition 1 with one."""
    ws = workspace_with_index(model_root, tmp_path / "ws", 2)
    copy = tmp_path / "replica-0b"
    shutil.copytree(part_dir(Workspace(ws).index, 0), copy)
    procs = [PartitionProcess(ws, 0), PartitionProcess(ws, 0, copy), PartitionProcess(ws, 1)]
    try:
        for p in procs:
            p.start()
        yield ws, procs
    finally:
        for p in procs:
            p.kill()


def ids(base: str, q: str, mode: str = "hybrid", k: int = 10) -> tuple[list[str], dict]:
    r = httpx.get(f"{base}/search", params={"q": q, "mode": mode, "k": k}, timeout=30)
    assert r.status_code == 200, r.text
    return [d["id"] for d in r.json()["data"]], r.json()


def post_on(part: int, stem: str) -> str:
    return next(f"{stem}-{i}" for i in range(1000) if partition_of(f"{stem}-{i}", 2) == part)


def test_front_over_partition_servers(cluster, one):
    ws, (p0a, p0b, p1) = cluster
    one, _ = one
    urls = [f"{p0a.url},{p0b.url}", p1.url]
    with live_server(ws, search_partitions=urls, admin_key="admin-secret", search_deadline_s=1.5) as (base, _):
        for mode in ("lexical", "hybrid"):  # over HTTP, the same answers as one index
            for q in QUERIES[:4]:
                got, body = ids(base, q, mode)
                assert body["partial"] is False and body["missing_partitions"] == []
                assert got == [h.post.id for h in one.search(SearchRequest(q=q, k=10, mode=mode))], (mode, q)
                assert 0 < body["partition_ms"] <= body["took_ms"]  # the slowest partition's own time

        # live writes: routed to the owning partition, searchable at once, deletes hold in every mode
        new = post_on(1, "fresh")
        r = httpx.post(
            f"{base}/admin/posts", json={"posts": [{"id": new, "text": "quokka sighting today"}]}, headers=ADMIN
        )
        assert r.status_code == 200 and r.json()["added"] == [new], r.text
        assert ids(base, "quokka", "lexical")[0] == [new]
        assert httpx.delete(f"{base}/admin/posts/{new}", headers=ADMIN).status_code == 200
        for mode in ("lexical", "semantic", "hybrid"):
            assert new not in ids(base, "quokka sighting", mode)[0]

        # a partition that is down or stalled: a partial answer naming it, never a 5xx
        p1.proc.send_signal(signal.SIGSTOP)
        got, body = ids(base, "pasta garlic keeper gpu", "lexical", k=100)
        assert body["partial"] is True and body["missing_partitions"] == [1]
        assert got and all(partition_of(i, 2) == 0 for i in got)
        p1.proc.send_signal(signal.SIGCONT)
        p1.kill()
        assert ids(base, "keeper", "lexical")[1]["missing_partitions"] == [1]
        pending = post_on(1, "pending")
        write = httpx.post(f"{base}/admin/posts", json={"posts": [{"id": pending, "text": "wombat"}]}, headers=ADMIN)
        assert write.status_code == 503 and write.json()["error"]["code"] == "partition_unavailable"
        p1.start()  # a restarted partition serves again, and gets the write it missed from the log
        got, body = ids(base, "wombat", "lexical")
        assert body["partial"] is False and got == [pending]

        # a call sent and never read (the query failed elsewhere) must not answer this thread's next call
        direct = RemotePartition(p1.url)
        direct.begin("candidates", SearchRequest(q="wombat", mode="lexical"), None, None).abandon()
        assert direct.term_stats(["wombat"]).df["body"] == {"wombat": 1}
        direct.close()

        # replicas: one replica down takes writes through the other; back up, it is replayed from the log
        p0a.kill()
        kept = post_on(0, "kept")
        r = httpx.post(f"{base}/admin/posts", json={"posts": [{"id": kept, "text": "platypus spotted"}]}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["added"] == [kept], r.text
        assert ids(base, "platypus", "lexical")[0] == [kept]  # served by replica b
        p0a.start()
        assert ids(base, "platypus", "lexical")[0] == [kept]
        p0b.kill()  # only the restarted replica a is left: it must have caught up
        got, body = ids(base, "platypus", "lexical")
        assert body["partial"] is False and got == [kept]
        assert httpx.get(f"{p0a.url}/partition/health").json()["applied"] >= 1


def test_partitions_built_as_ray_tasks(tmp_path, model_root, one):
    """`roost index --partitions N --engine ray`: each partition embedded by a Ray task on a real cluster
    (one node on 127.0.0.1), and the result answers as one index."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # nodes on loopback only; read when ray is imported
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "object_store_memory": 80 * 2**20, "include_dashboard": False},
    )
    try:
        shutil.copytree(model_root, tmp_path / "ws")
        ws = Workspace(tmp_path / "ws")
        write_corpus(ws, corpus_posts())
        assert (
            main(["index", "-w", str(ws.root), "--partitions", "2", "--engine", "ray", "--address", cluster.address])
            == 0
        )
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    finally:
        ray.shutdown()
        cluster.shutdown()
    one, model = one
    front = PartitionedIndex([[LocalPartition(SearchIndex(part_dir(ws.index, i), model))] for i in range(2)], model)
    for q in QUERIES:
        want = [h.post.id for h in one.search(SearchRequest(q=q, k=10, mode="hybrid"))]
        assert [h.post.id for h in front.search(SearchRequest(q=q, k=10, mode="hybrid"))] == want, q


def test_serve_opens_a_partitioned_index_in_process(tmp_path, model_root, one):
    """`roost serve` on a partitioned index with no partition servers: every partition in its own process."""
    ws = workspace_with_index(model_root, tmp_path / "ws", 2)
    one, _ = one
    with live_server(ws, admin_key="admin-secret") as (base, _):
        for q in QUERIES[:3]:
            assert ids(base, q)[0] == [h.post.id for h in one.search(SearchRequest(q=q, k=10, mode="hybrid"))]
        new = post_on(0, "inproc")
        r = httpx.post(f"{base}/admin/posts", json={"posts": [{"id": new, "text": "echidna"}]}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["added"] == [new], r.text
        assert ids(base, "echidna", "lexical")[0] == [new]
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
