import json
import os

import pytest

from roost.workspace import StageMissing, atomic_dir, atomic_write_json, file_hash


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


def test_atomic_dir_gives_files_the_umasks_permissions(tmp_path):
    """A writer that makes its file private (safetensors' save_file: 0600) still leaves a readable artifact."""
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text("{}")
            (tmp / "run.sh").write_text("")
            os.chmod(tmp / "run.sh", 0o755)
        os.umask(0o077)
        with atomic_dir(tmp_path / "private") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()}
    assert modes == {"model.safetensors": 0o644, "config.json": 0o644, "run.sh": 0o755}  # never narrowed
    assert (tmp_path / "private" / "model.safetensors").stat().st_mode & 0o777 == 0o600  # a umask of 077 holds


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
