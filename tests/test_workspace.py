import json
import os

import pytest

from roost.workspace import StageMissing, Workspace, atomic_dir, atomic_write_json, file_hash


def test_manifest_round_trip_and_up_to_date(ws):
    ws.corpus.mkdir(parents=True)
    m = ws.write_manifest("corpus", inputs={"a.jsonl": "abc"}, counts={"read": 3})
    assert ws.read_manifest("corpus") == m
    assert m["stage"] == "corpus" and m["counts"] == {"read": 3} and m["roost_version"]
    assert ws.up_to_date("corpus", {"a.jsonl": "abc"})
    assert not ws.up_to_date("corpus", {"a.jsonl": "abd"})
    assert len(ws.stage_hash("corpus")) == 64


def test_require_names_the_command(ws):
    with pytest.raises(StageMissing, match="roost tokenizer"):
        ws.require("tokenizer")


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("killed midway")
    assert (target / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp folder left behind
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_file_hash_sees_content_and_names(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_text("hello")
    h1 = file_hash(d)
    (d / "x").write_text("hellp")
    assert file_hash(d) != h1
    (d / "x").write_text("hello")
    assert file_hash(d) == h1
    os.rename(d / "x", d / "y")
    assert file_hash(d) != h1


def test_atomic_write_json(tmp_path):
    p = atomic_write_json(tmp_path / "sub" / "m.json", {"b": 1})
    assert json.loads(p.read_text()) == {"b": 1}
    assert list((tmp_path / "sub").iterdir()) == [p]
