"""Normalization, each filter and its counter, threads, and the config file."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from test_corpus_fixtures import posts, run, v2, write_jsonl

from roost.corpus import IngestConfig, load_config
from roost.corpus.normalize import normalize_post
from roost.corpus.schema import PLACEHOLDERS, read_table
from roost.corpus.threads import build_threads


def test_normalize_repairs_text_and_keeps_emoji():
    n = normalize_post("caf\u00c3\u00a9  &amp;\tcr\u00e8me\u0301 \U0001f600\r\n\r\n\r\n  next\x07 line ")
    assert n.text == "café & crèmé 😀\n\nnext line"
    assert "\u00c3" not in n.text  # mojibake fixed by ftfy
    decomposed = normalize_post("Cafe\u0301 ok")
    assert decomposed.text == "Café ok" and len(decomposed.text) == 7  # NFC


def test_entities_and_placeholders():
    text = "Hey @Alice_B, see https://ex.com/a?b=1. #Python #py3 & mail x.y@mail.org or +44 20 7946 0958"
    kept = normalize_post(text)
    assert kept.hashtags == ["python", "py3"] and kept.mentions == ["alice_b"]
    assert kept.urls == ["https://ex.com/a?b=1"]
    assert "https://ex.com/a?b=1." in kept.text and "@Alice_B" in kept.text
    assert PLACEHOLDERS["email"] in kept.text and PLACEHOLDERS["phone"] in kept.text and kept.pii == 2
    assert "x.y@mail.org" not in kept.text and "7946" not in kept.text
    ph = normalize_post(text, urls_mode="placeholder", mentions_mode="placeholder")
    assert ph.text.startswith(f"Hey {PLACEHOLDERS['mention']}, see {PLACEHOLDERS['url']}. #Python")
    assert ph.mentions == ["alice_b"]  # extracted before replacement
    off = normalize_post(text, scrub_pii=False)
    assert "x.y@mail.org" in off.text and off.pii == 0


def test_dates_and_url_digits_are_not_phone_numbers():
    n = normalize_post("on 2018-10-10 at 12:30 see https://x.com/status/1234567890123 ok")
    assert PLACEHOLDERS["phone"] not in n.text and n.pii == 0


def test_each_filter_is_counted(ws, tmp_path):
    long = "a perfectly ordinary post about the weather today in the north of the country where it rains a lot"
    rows = [
        v2(1, "a perfectly ordinary post about the weather today"),
        v2(2, "  "),
        v2(3, "ok"),
        v2(4, "RT @x: a perfectly ordinary post about the weather"),
        v2(5, "retweet by reference", referenced_tweets=[{"type": "retweeted", "id": "1"}]),
        v2(6, " ".join(f"#tag{i}" for i in range(12)) + " buy now"),
        v2(7, "#only #tags @and https://links.example"),
        v2(8, "a perfectly ordinary post about the weather today"),
        v2(1, "same id again but a different text entirely"),
        v2(9, long),
        v2(10, long + " again"),
    ]
    rep = run(ws, write_jsonl(tmp_path / "f.jsonl", rows))
    assert rep.dropped == {
        "empty": 1,
        "too_short": 1,
        "retweet": 2,
        "spam": 2,
        "duplicate": 1,
        "duplicate_id": 1,
        "near_duplicate": 1,
    }
    assert rep.kept == 2 and set(posts(ws)) == {"1", "9"}


def test_filters_can_be_switched_off(ws, tmp_path):
    rows = [
        v2(1, "RT @x: hello there my friends"),
        v2(2, " ".join(f"#t{i}" for i in range(20)) + " hi"),
        v2(3, "hello there my friend, how are you"),
        v2(4, "hello there my friend, how are you"),
    ]
    rep = run(
        ws,
        write_jsonl(tmp_path / "f.jsonl", rows),
        drop_retweets=False,
        drop_spam=False,
        dedup_exact=False,
        dedup_near=False,
    )
    assert rep.kept == 4 and rep.dropped == {}


@pytest.mark.parametrize("model", ["fasttext", "lingua"])
def test_language_filter_identifies_posts_without_a_tag(ws, tmp_path, model):
    rows = [
        {k: v for k, v in v2(i, t).items() if k != "lang"}
        for i, t in enumerate(
            [
                "The weather is lovely today and I am going for a long walk in the park",
                "El tiempo es precioso hoy y voy a dar un largo paseo por el parque",
                "Das Wetter ist heute herrlich und ich mache einen langen Spaziergang im Park",
            ]
        )
    ]
    rows.append(v2(9, "tagged by the platform as english, trusted as such"))
    rep = run(ws, write_jsonl(tmp_path / "f.jsonl", rows), languages=["en", "es"], lang_model=model)
    assert rep.dropped == {"language": 1}
    assert {p["lang"] for p in posts(ws).values()} == {"en", "es"}
    rep2 = run(
        ws,
        write_jsonl(tmp_path / "g.jsonl", [{**v2(20, "Je suis très content de vous voir ici ce soir"), "lang": "en"}]),
        lang_source="detect",
        languages=["en"],
        lang_candidates=["en", "fr"],
        lang_model=model,
    )
    assert rep2.dropped == {"language": 1}  # "detect" ignores the record's own tag
    with pytest.raises(ValueError, match=f"{model} does not know xx"):
        IngestConfig(lang_candidates=["en", "xx"], lang_model=model)


def test_fasttext_answers_und_without_letters_and_keeps_to_candidates():
    from roost.corpus.filters import detect_languages

    texts = [
        "",
        "👍 #tbt @someone https://t.co/x 123",
        "Bonjour à tous, quelle belle journée aujourd'hui",
        "I LOVE THIS SONG SO MUCH, BEST ONE OF THE YEAR",
    ]
    assert detect_languages(texts) == ["und", "und", "fr", "en"]
    # restricted to en/de, French text gets the likelier of the two, or und when neither is near the top
    assert detect_languages(texts[2:3], candidates=["en", "de"])[0] in ("en", "de", "und")
    assert detect_languages(texts[2:3], candidates=["fr", "en"]) == ["fr"]


def test_near_duplicate_threshold_is_configurable(ws, tmp_path):
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    rows = [v2(1, base), v2(2, base.replace("today", "tonight"))]
    src = write_jsonl(tmp_path / "f.jsonl", rows)
    assert run(ws, src, near_dup_threshold=0.95).dropped == {}
    assert run(ws.__class__(ws.root.parent / "ws2"), src, near_dup_threshold=0.7).dropped == {"near_duplicate": 1}


def test_threads_from_reply_and_conversation_ids():
    ids = pa.array(["r", "a", "b", "c", "lonely", "x", "y"])
    reply = pa.array([None, "r", "a", "missing", None, "y", "x"])  # c's parent is absent; x <-> y loop
    conv = pa.array(["r", "r", "r", "r", "lonely", None, None])
    rows = {r["post_id"]: r for r in build_threads(ids, reply, conv).to_pylist()}
    assert rows["r"] == {"thread_id": "r", "post_id": "r", "parent_id": None, "depth": 0}
    assert rows["a"]["parent_id"] == "r" and rows["a"]["depth"] == 1
    assert rows["b"] == {"thread_id": "r", "post_id": "b", "parent_id": "a", "depth": 2}
    assert rows["c"]["parent_id"] == "r" and rows["c"]["depth"] == 1  # the root stands in for a missing parent
    assert "lonely" not in rows  # a root without replies is no thread


def test_threads_table_spans_ingests(ws, tmp_path):
    run(ws, write_jsonl(tmp_path / "a.jsonl", [v2(1, "the root post of a thread")]))
    run(
        ws,
        write_jsonl(
            tmp_path / "b.jsonl",
            [
                v2(
                    2,
                    "a late reply to the root",
                    conversation_id="1",
                    referenced_tweets=[{"type": "replied_to", "id": "1"}],
                )
            ],
        ),
    )
    th = read_table(ws.corpus, "threads").to_pylist()
    assert sorted((t["post_id"], t["depth"]) for t in th) == [("1", 0), ("2", 1)]
    assert len(list(ws.corpus.glob("threads-*.parquet"))) == 1  # replaced, not appended


def test_config_from_json_and_toml(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"min_chars": 10, "columns": {"text": "body"}}))
    c = load_config(tmp_path / "c.json")
    assert c.min_chars == 10 and c.columns.text == "body" and c.columns.id == "id"
    (tmp_path / "c.toml").write_text(
        '[ingest]\nlanguages = ["EN"]\nurls = "placeholder"\n[ingest.columns]\nid = "pid"\n'
    )
    t = load_config(tmp_path / "c.toml")
    assert t.languages == ["en"] and t.urls == "placeholder" and t.columns.id == "pid"
    assert load_config(None) == IngestConfig()


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"min_char": 3}, "unknown key(s) min_char"),
        ({"columns": {"txt": "x"}}, "[columns]: unknown key(s) txt"),
        ({"urls": "drop"}, "urls must be"),
        ({"near_dup_threshold": 2}, "near_dup_threshold"),
    ],
)
def test_config_refuses_unknown_keys_and_bad_values(tmp_path, body, needle):
    (tmp_path / "c.json").write_text(json.dumps(body))
    with pytest.raises(ValueError) as e:
        load_config(tmp_path / "c.json")
    assert needle in str(e.value)


def test_pii_is_scrubbed_in_stored_posts(ws, tmp_path):
    run(ws, write_jsonl(tmp_path / "f.jsonl", [v2(1, "write to jane.doe@example.com or call 555-123-4567 today")]))
    text = read_table(ws.corpus, "posts").column("text")[0].as_py()
    assert text == f"write to {PLACEHOLDERS['email']} or call {PLACEHOLDERS['phone']} today"
    assert ws.read_manifest("corpus")["counts"]["pii_scrubbed"] == 2


def test_empty_text_is_an_empty_post_not_a_malformed_record(ws, tmp_path):
    src = write_jsonl(tmp_path / "e.jsonl", [v2(1, ""), v2(2, "a perfectly fine post about football"), {"id": "3"}])
    rep = run(ws, src)
    assert rep.dropped.get("empty") == 1
    assert rep.malformed == {"missing_field": 1}  # the record with no text field at all
    assert list(posts(ws)) == ["2"]
