"""Every source format ingest reads, compressed or not, and bad files counted rather than crashing."""

from __future__ import annotations

import csv
import gzip
import json
import zipfile
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_corpus_fixtures import (
    ACCOUNT_JS,
    archive_entry,
    posts,
    run,
    tweets_js,
    v2,
    write_archive,
    write_bytes,
    write_jsonl,
)

from roost.corpus.schema import read_table


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_archive_zip_reads_tweets_author_counts_and_times(ws, tmp_path, suffix):
    z = write_archive(
        tmp_path / "twitter-2023.zip",
        [
            archive_entry(1, "first post from my archive &amp; more"),
            archive_entry(2, "a reply in my own thread here", reply_to="1"),
        ],
    )
    z = write_bytes(tmp_path / f"twitter-2023.zip{suffix}", z.read_bytes())
    rep = run(ws, z)
    assert (rep.read, rep.kept) == (2, 2)
    p = posts(ws)
    assert p["1"]["text"] == "first post from my archive & more"
    assert p["1"]["author_id"] == "42"  # from data/account.js
    assert p["1"]["like_count"] == 3 and p["1"]["retweet_count"] == 1
    assert p["1"]["created_at"] == datetime(2018, 10, 10, 20, 19, 24, tzinfo=timezone.utc)
    assert p["2"]["reply_to"] == "1"
    assert p["1"]["source"] == f"{z}:data/tweets.js"
    users = read_table(ws.corpus, "users").to_pylist()
    assert [(u["id"], u["username"], u["name"]) for u in users] == [("42", "ada", "Ada L")]


def test_bare_tweets_js_uses_account_js_beside_it(ws, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "account.js").write_text(ACCOUNT_JS)
    write_bytes(d / "tweets.js.gz", tweets_js([archive_entry(7, "seven is a fine number")]).encode())
    rep = run(ws, d / "tweets.js.gz")
    assert rep.kept == 1
    assert posts(ws)["7"]["author_id"] == "42"


def test_archive_with_truncated_tweets_js_counts_the_break(ws, tmp_path):
    body = tweets_js([archive_entry(i, f"post number {i} is here to stay") for i in range(5)])
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("data/tweets.js", body[: len(body) * 2 // 3])
    rep = run(ws, z)
    assert rep.malformed.get("truncated_file") == 1
    assert 1 <= rep.kept < 5 and rep.read == rep.kept + 1


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_v2_response_per_line_with_users(ws, tmp_path, suffix):
    resp = {
        "data": [v2(1, "hello from the v2 api"), v2(2, "another one bites the dust")],
        "includes": {
            "users": [
                {
                    "id": "u1",
                    "username": "bob",
                    "name": "Bob",
                    "created_at": "2010-01-01T00:00:00.000Z",
                    "public_metrics": {"followers_count": 9},
                }
            ]
        },
        "meta": {"result_count": 2},
    }
    src = write_jsonl(tmp_path / f"resp.jsonl{suffix}", [resp, {"data": [v2(3, "third tweet on a second page")]}])
    rep = run(ws, src)
    assert (rep.read, rep.kept) == (3, 3)
    assert set(posts(ws)) == {"1", "2", "3"}
    users = read_table(ws.corpus, "users").to_pylist()
    assert users[0]["username"] == "bob" and users[0]["followers_count"] == 9


def test_v2_response_one_per_file_pretty_printed(ws, tmp_path):
    resp = {
        "data": [
            v2(
                1,
                "pretty printed response file",
                public_metrics={"like_count": 5, "retweet_count": 2, "reply_count": 1},
            )
        ]
    }
    src = tmp_path / "page1.json"
    src.write_text(json.dumps(resp, indent=2))
    rep = run(ws, src)
    assert rep.kept == 1
    p = posts(ws)["1"]
    assert (p["like_count"], p["retweet_count"], p["reply_count"]) == (5, 2, 1)


def test_v1_jsonl_shapes(ws, tmp_path):
    rows = [
        {
            "id": 10,
            "id_str": "10",
            "full_text": "full text wins over text",
            "text": "short",
            "created_at": "Mon Jan 02 03:04:05 +0000 2017",
            "lang": "en",
            "user": {"id_str": "77", "screen_name": "carol", "name": "Carol", "followers_count": 12},
        },
        {
            "id_str": "11",
            "text": "truncated version…",
            "truncated": True,
            "lang": "en",
            "extended_tweet": {"full_text": "the extended tweet has the whole text"},
            "user": {"id_str": "77"},
        },
        {"id_str": "12", "text": "RT @carol: full text wins", "retweeted_status": {"id_str": "10"}, "lang": "en"},
        {"id_str": "13", "text": "replying to the first one", "in_reply_to_status_id_str": "10", "lang": "en"},
    ]
    rep = run(ws, write_jsonl(tmp_path / "v1.jsonl.zst", rows))
    assert rep.dropped == {"retweet": 1} and rep.kept == 3
    p = posts(ws)
    assert p["10"]["text"] == "full text wins over text" and p["10"]["author_id"] == "77"
    assert p["11"]["text"] == "the extended tweet has the whole text"
    assert p["13"]["reply_to"] == "10"
    assert read_table(ws.corpus, "users").to_pylist()[0]["username"] == "carol"


def test_csv_with_column_mapping(ws, tmp_path):
    src = tmp_path / "posts.csv.gz"
    rows = [
        ["pid", "body", "who", "when", "parent"],
        ["a1", "csv posts, with commas, work", "w1", "2022-02-02T10:00:00Z", ""],
        ["a2", "a reply written in\na csv cell", "w2", "1650000000", "a1"],
    ]
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    write_bytes(src, buf.getvalue().encode())
    columns = {"id": "pid", "text": "body", "author": "who", "created_at": "when", "reply_to": "parent"}
    rep = run(ws, src, columns=columns, lang_source="off")
    assert rep.kept == 2
    p = posts(ws)
    assert p["a1"]["text"] == "csv posts, with commas, work" and p["a1"]["author_id"] == "w1"
    assert p["a2"]["text"] == "a reply written in\na csv cell" and p["a2"]["reply_to"] == "a1"
    assert p["a2"]["created_at"] == datetime.fromtimestamp(1650000000, timezone.utc)
    th = read_table(ws.corpus, "threads").to_pylist()
    assert {(t["post_id"], t["parent_id"], t["depth"]) for t in th} == {("a1", None, 0), ("a2", "a1", 1)}


def test_csv_without_the_text_column_is_one_reject_not_a_crash(ws, tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("id,content\n1,hello there\n")
    rep = run(ws, src)
    assert rep.malformed == {"missing_field": 1} and rep.kept == 0
    assert "columns.text" in (ws.corpus / "rejects.jsonl").read_text()


@pytest.mark.parametrize("suffix", ["", ".zst"])
def test_parquet_with_column_mapping(ws, tmp_path, suffix):
    t = pa.table(
        {
            "post_id": [1, 2],
            "content": ["parquet rows are posts too", None],
            "ts": pa.array([datetime(2021, 1, 1, tzinfo=timezone.utc)] * 2, pa.timestamp("s", tz="UTC")),
        }
    )
    pq.write_table(t, tmp_path / "p.parquet")
    src = write_bytes(tmp_path / f"p.parquet{suffix}", (tmp_path / "p.parquet").read_bytes())
    rep = run(ws, src, columns={"id": "post_id", "text": "content", "created_at": "ts"}, lang_source="off")
    assert rep.kept == 1 and rep.malformed == {"missing_field": 1}
    assert posts(ws)["1"]["created_at"] == datetime(2021, 1, 1, tzinfo=timezone.utc)


def test_plain_text_one_post_per_line(ws, tmp_path):
    src = write_bytes(tmp_path / "train_text.txt", b"@user this is the first tweet\n\n@user second one here \n")
    rep = run(ws, src, lang_source="off")
    assert rep.read == 3 and rep.kept == 2 and rep.dropped == {"empty": 1}
    texts = sorted(p["text"] for p in posts(ws).values())
    assert texts == ["@user second one here", "@user this is the first tweet"]
    assert all(p["mentions"] == ["user"] for p in posts(ws).values())


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_compressed_stream_is_counted(ws, tmp_path, suffix):
    rows = "".join(json.dumps(v2(i, f"tweet number {i} of many in a long file")) + "\n" for i in range(4000))
    full = write_bytes(tmp_path / f"f.jsonl{suffix}", rows.encode())
    data = full.read_bytes()
    full.write_bytes(data[: len(data) - 12])
    rep = run(ws, full)
    assert rep.malformed.get("truncated_file") == 1
    assert rep.read == rep.kept + sum(rep.malformed.values()) + sum(rep.dropped.values())
    assert rep.kept > 0


def test_folder_source_reads_every_file(ws, tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    write_jsonl(d / "a.jsonl", [v2(1, "file a has a tweet")])
    write_jsonl(d / "b.jsonl.gz", [v2(2, "file b has another tweet")])
    (d / ".hidden.jsonl").write_text(json.dumps(v2(3, "hidden files are skipped")) + "\n")
    rep = run(ws, d)
    assert set(posts(ws)) == {"1", "2"} and len(rep.sources) == 2


def test_gzip_magic_is_sniffed_without_suffix(ws, tmp_path):
    (tmp_path / "noext").write_bytes(gzip.compress((json.dumps(v2(5, "gzip without a suffix")) + "\n").encode()))
    assert run(ws, tmp_path / "noext").kept == 1


def test_long_v2_response_lines_are_json_lines_not_one_document(ws, tmp_path):
    page = {"data": [v2(i, f"tweet {i} " + " ".join(str(i * j) for j in range(40))) for i in range(300)]}
    line = json.dumps(page)
    assert len(line) > 1 << 16  # longer than the format sniffer's peek
    rep = run(ws, write_jsonl(tmp_path / "pages.json", [line, json.dumps({"data": [v2(999, "second page")]})]))
    assert rep.read == 301 and rep.malformed == {}
