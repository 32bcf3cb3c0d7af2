"""Appending, idempotence, persisted dedup, crash leftovers, rejects, the accounting invariant, the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from datasketch import MinHash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corpus_fixtures import (
    accounting,
    posts,
    run,
    v2,
    write_bytes,
    write_jsonl,
)

from roost.cli import main as cli
from roost.corpus.dedup import HashSet
from roost.corpus.minhash import MinHasher, shingle_hashes
from roost.corpus.schema import read_table, table_files
from roost.workspace import Workspace

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
]


def sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choices(WORDS, k=n)) + f" {rng.getrandbits(32):x}"


def test_reingesting_the_same_file_adds_nothing(ws, tmp_path):
    rng = random.Random(0)
    src = write_jsonl(tmp_path / "a.jsonl", [v2(i, sentence(rng)) for i in range(50)] + ["{broken"])
    first = run(ws, src)
    shards = table_files(ws.corpus, "posts")
    again = run(ws, src)
    assert first.kept == 50 and again.kept == 0
    assert again.dropped == {"duplicate_id": 50} and again.malformed == {"bad_json": 1}
    assert table_files(ws.corpus, "posts") == shards and len(posts(ws)) == 50
    counts = ws.read_manifest("corpus")["counts"]
    assert counts["read"] == 102 and counts["kept"] == 50 and counts["posts"] == 50
    assert counts["read"] == counts["kept"] + sum(counts["dropped"].values()) + sum(counts["malformed"].values())


def test_appending_dedups_against_what_is_stored(ws, tmp_path):
    rng = random.Random(1)
    texts = [sentence(rng, 40) for _ in range(30)]
    run(ws, write_jsonl(tmp_path / "a.jsonl", [v2(i, t) for i, t in enumerate(texts)]))
    second = [
        v2(100, texts[0]),  # exact copy, new id
        v2(101, texts[1].replace(texts[1].split()[-1], "zz")),  # one word changed
        v2(102, sentence(rng, 20)),
    ]  # new
    rep = run(ws, write_jsonl(tmp_path / "b.jsonl", second))
    assert rep.dropped == {"duplicate": 1, "near_duplicate": 1} and rep.kept == 1
    assert len(table_files(ws.corpus, "posts")) == 2 and "102" in posts(ws)
    assert len(ws.read_manifest("corpus")["runs"]) == 2


def test_changing_near_dup_settings_is_refused(ws, tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [v2(1, "one post is enough for this")])
    run(ws, src)
    with pytest.raises(ValueError, match="deduplicated with"):
        run(ws, src, num_perm=64)


def test_leftovers_of_a_crashed_run_are_removed(ws, tmp_path):
    run(ws, write_jsonl(tmp_path / "a.jsonl", [v2(1, "the only post that was committed")]))
    stray = ws.corpus / "posts-19990101T000000-dead00-00000.parquet"
    stray.write_bytes((table_files(ws.corpus, "posts")[0]).read_bytes())  # a sealed shard the manifest never listed
    (ws.corpus / ".posts-x.parquet.tmp").write_bytes(b"half")
    rep = run(ws, write_jsonl(tmp_path / "b.jsonl", [v2(2, "a second post in a second run")]))
    assert not stray.exists() and not (ws.corpus / ".posts-x.parquet.tmp").exists()
    assert set(posts(ws)) == {"1", "2"} and rep.total_posts == 2


def test_rejects_name_file_line_and_reason(ws, tmp_path):
    good = json.dumps(v2(1, "a good post among bad ones")).encode()
    lines = [
        good,
        b"{not json",
        b'{"id": "2", "text": "bad \xff utf8"}',
        b'{"id": "3", "text": "nul \x00 byte"}',
        json.dumps({"id": "4", "text": ["wrong", "type"]}).encode(),
        json.dumps({"text": "no id"}).encode(),
        json.dumps({"id": "6", "text": "x" * 300}).encode(),
        json.dumps({"id": "7", "text": "bad time", "created_at": "yesterday"}).encode(),
        b"[" * 100_000,
        json.dumps({"id": "9", "text": "lone surrogate \udc80 here"}).encode(),
    ]
    src = write_bytes(tmp_path / "bad.jsonl.gz", b"\n".join(lines) + b"\n")
    rep = run(ws, src, max_field_chars=200, max_line_bytes=50_000)
    assert rep.kept == 1 and rep.read == 10 == accounting(rep)
    assert rep.malformed == {
        "bad_json": 1,
        "invalid_utf8": 2,
        "nul_byte": 1,
        "wrong_type": 1,
        "missing_field": 1,
        "field_too_long": 2,
        "bad_timestamp": 1,
    }
    rejects = [json.loads(x) for x in (ws.corpus / "rejects.jsonl").read_text().splitlines()]
    by_line = {r["line"]: r for r in rejects}
    assert set(by_line) == set(range(2, 11))
    assert all(r["file"] == str(src) for r in rejects)
    assert by_line[2]["reason"] == "bad_json" and by_line[2]["sample"].startswith("{not json")
    assert by_line[5]["reason"] == "wrong_type" and "text" in by_line[5]["detail"]
    assert by_line[9]["reason"] == "field_too_long" and len(by_line[9]["sample"]) <= 200


def test_two_workers_give_the_same_corpus(tmp_path):
    rng = random.Random(3)
    rows = [v2(i, sentence(rng)) for i in range(300)] + [v2(i, sentence(rng)) for i in range(290, 310)] + ["{x"]
    src = write_jsonl(tmp_path / "a.jsonl", rows)
    one = run(Workspace(tmp_path / "w1"), src)
    two = run(Workspace(tmp_path / "w2"), src, workers=2)
    assert (one.kept, one.dropped, one.malformed) == (two.kept, two.dropped, two.malformed)
    a = read_table(tmp_path / "w1" / "corpus", "posts").drop_columns(["source"])
    b = read_table(tmp_path / "w2" / "corpus", "posts").drop_columns(["source"])
    assert a.equals(b)


def test_verdicts_do_not_depend_on_batches_or_runs(tmp_path):
    """B repeats A's id with new text (dropped: its text never reaches the text check), C has B's text (kept),
    D and E are near copies of C, F copies A's text, G repeats F's id. Each post is judged against every earlier post that
    reached the check, so one batch, batches of one, and one run per post all drop the same posts for the
    same reasons (what lets the Ray engine, which judges all at once, match the local one)."""
    rng = random.Random(5)
    words = [sentence(rng, 80) for _ in range(2)]
    near = words[1].split()
    near[10] = "zz"
    d_text = " ".join(near)
    near[60] = "yy"
    rows = [
        v2(1, words[0]),
        v2(1, words[1]),
        v2(3, words[1]),
        v2(4, d_text),
        v2(5, " ".join(near)),
        v2(6, words[0]),
        v2(6, sentence(rng, 20)),
        v2(7, sentence(rng, 20)),
    ]
    whole = run(Workspace(tmp_path / "w1"), write_jsonl(tmp_path / "all.jsonl", rows))
    ones = run(Workspace(tmp_path / "w2"), write_jsonl(tmp_path / "all2.jsonl", rows), batch_size=1)
    ws = Workspace(tmp_path / "w3")
    reps = [run(ws, write_jsonl(tmp_path / f"r{i}.jsonl", [row])) for i, row in enumerate(rows)]
    per_run = {k: sum(r.dropped.get(k, 0) for r in reps) for k in whole.dropped}
    assert whole.dropped == {"duplicate_id": 2, "duplicate": 1, "near_duplicate": 2}
    assert ones.dropped == whole.dropped == per_run
    assert set(posts(ws)) == set(posts(Workspace(tmp_path / "w1"))) == {"1", "3", "7"}


def test_a_corpus_with_the_old_single_file_dedup_state_is_converted(ws, tmp_path):
    """Workspaces from before the Parquet key folders stored one dedup-<run>.npz; the next ingest reads it."""
    from roost.corpus.dedup_store import KINDS, read_keys

    rng = random.Random(2)
    src = write_jsonl(tmp_path / "a.jsonl", [v2(i, sentence(rng)) for i in range(20)])
    run(ws, src)
    m = ws.read_manifest("corpus")
    keys = {k: read_keys(ws.corpus, m["dedup_state"][k]) for k in KINDS}
    params = np.array(sorted(m["dedup_state"]["params"].items()), dtype=object).astype(str)
    np.savez(ws.corpus / "dedup-old.npz", params=params, **keys)
    ws.write_manifest(
        "corpus",
        inputs=m["inputs"],
        counts=m["counts"],
        files=m["files"],
        dedup_state="dedup-old.npz",
        config=m["config"],
        runs=m["runs"],
    )
    again = run(ws, src)
    assert again.kept == 0 and again.dropped == {"duplicate_id": 20}
    assert not (ws.corpus / "dedup-old.npz").exists()
    assert all(len(ws.read_manifest("corpus")["dedup_state"][k]) == 2 for k in KINDS)


def test_batch_minhash_equals_datasketch():
    h = MinHasher(num_perm=64, threshold=0.8, shingle_words=3, seed=7)
    texts = ["the cat sat on the mat today", "Two words", "", "emoji 😀 and ümlauts sit here too in a row"]
    hashes, counts = shingle_hashes(texts, 3)
    assert counts.tolist() == [5, 1, 1, 8]  # word 3-grams; short and empty texts have one shingle
    sigs = h.signatures(texts)
    per_doc = np.split(hashes, np.cumsum(counts)[:-1])
    for doc_hashes, sig in zip(per_doc, sigs):
        ref = MinHash(num_perm=64, seed=7, scheme="affine32", hashfunc=int)
        ref.update_batch(doc_hashes.tolist())
        assert np.array_equal(ref.hashvalues, sig)
    assert h.band_keys(sigs).shape == (4, h.bands) and h.bands * h.rows <= 64


def test_shingles_ignore_case_and_spacing_but_not_order():
    (a, b, c, d), _ = shingle_hashes(["Big RED dog", "big red  dog", "red big dog", "big red\ndog"], 3)
    assert a == b == d and a != c
    h, counts = shingle_hashes(["one two three four", "one two three five"], 3)
    assert h[0] == h[2] and h[1] != h[3] and counts.tolist() == [2, 2]


def test_hashset_membership_survives_merges():
    rng = np.random.default_rng(0)
    s, seen = HashSet(), []
    for _ in range(30):
        keys = rng.integers(0, 2**63, 50, dtype=np.uint64)
        s.add(keys)
        seen.append(keys)
    allk = np.concatenate(seen)
    assert s.contains(allk).all() and len(s) == len(np.unique(allk))
    assert not s.contains(rng.integers(0, 2**63, 1000, dtype=np.uint64)).any()


junk_line = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(str.encode),
    st.builds(
        lambda v: json.dumps({"id": v, "text": "t" * 5}).encode(),
        st.one_of(st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)),
    ),
    st.builds(
        lambda t, i: json.dumps({"data": [{"id": str(i), "text": t}], "includes": {"users": [{"id": i}]}}).encode(),
        st.text(max_size=40),
        st.integers(0, 50),
    ),
    st.builds(lambda t, i: json.dumps(v2(i, t))[: len(t) + 20].encode(), st.text(max_size=30), st.integers(0, 50)),
    st.builds(
        lambda t, i: json.dumps({**v2(i, t), "created_at": t, "public_metrics": t}).encode(),
        st.text(max_size=20),
        st.integers(0, 50),
    ),
    st.builds(lambda t, i: json.dumps(v2(i, t)).encode(), st.text(max_size=80), st.integers(0, 50)),
    st.builds(
        lambda big, i: json.dumps(
            {**v2(i, "numbers out of range here"), "created_at": big, "public_metrics": {"like_count": big}}
        ).encode(),
        st.one_of(st.integers(), st.floats(allow_nan=False)),
        st.integers(0, 50),
    ),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(junk_line, max_size=25), suffix=st.sampled_from(["jsonl", "txt", "json"]))
def test_accounting_adds_up_whatever_the_input(tmp_path_factory, lines, suffix):
    d = tmp_path_factory.mktemp("junk")
    src = write_bytes(d / f"junk.{suffix}", b"\n".join(lines))
    ws = Workspace(d / "ws")
    rep = run(ws, src, lang_source="off", max_line_bytes=500)
    assert rep.read == accounting(rep)
    m = ws.read_manifest("corpus")
    assert m["counts"]["kept"] == len(read_table(ws.corpus, "posts")) == rep.kept
    rejects = ws.corpus / "rejects.jsonl"
    # one JSON line each: count b"\n" (a sample may hold U+0085 or U+2028, which str.splitlines also splits on)
    n_rejects = rejects.read_bytes().count(b"\n") if rejects.exists() else 0
    assert n_rejects == sum(rep.malformed.values())


def test_cli_ingest_and_stats(tmp_path, capsys):
    rng = random.Random(5)
    src = write_jsonl(tmp_path / "a.jsonl", [v2(i, sentence(rng) + " #roost") for i in range(20)] + ["{bad"])
    (tmp_path / "c.toml").write_text("workers = 1\nlang_source = 'auto'\n")
    ws = str(tmp_path / "ws")
    assert cli(["ingest", str(src), "--workspace", ws, "--config", str(tmp_path / "c.toml"), "-q"]) == 0
    assert "kept 20" in capsys.readouterr().out
    assert cli(["corpus", "stats", "--workspace", ws]) == 0
    out = capsys.readouterr().out
    assert "#roost" in out and "accounting: read 21 = kept 20 + dropped 0 + malformed 1" in out
    assert "2023-05-01" in out and "en" in out
    (tmp_path / "bad.json").write_text('{"min_chars": 1, "colour": "red"}')
    assert cli(["ingest", str(src), "--workspace", ws, "--config", str(tmp_path / "bad.json")]) == 2
    assert "unknown key(s) colour" in capsys.readouterr().err
    assert cli(["corpus", "stats", "--workspace", str(tmp_path / "empty")]) == 2
    assert "roost ingest" in capsys.readouterr().err


def test_a_sample_network_folder_ingests_its_posts_and_nothing_else(tmp_path):
    from roost.sample import generate

    summary = generate(tmp_path / "sample", users=30, posts=300, seed=3, campaigns=10)
    rep = run(Workspace(tmp_path / "ws"), tmp_path / "sample")
    assert rep.malformed == {}  # users.jsonl, ads.json and truth/ are not read as posts
    assert rep.read == summary.posts and accounting(rep) == rep.read
