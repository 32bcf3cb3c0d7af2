"""A full disk, for real: a small tmpfs filled to the last byte (or nearly) under the index, a checkpoint and
the live server. Each write that cannot finish fails with a clear error and leaves what was there before intact.

Mounting a tmpfs needs root (as CI and the project's machines run); elsewhere these tests skip and say why.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from test_engine_fixtures import live_server
from test_search_fixtures import make_posts, write_corpus

from roost.cli import main
from roost.model import GPT, GPTConfig
from roost.train import checkpoint
from roost.train.dist import DistInfo
from roost.workspace import Workspace, disk_full, file_hash

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 16 MiB tmpfs of its own (so filling it troubles no one else), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a real disk to fill) needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all but ``leave`` bytes of the disk with one file; delete it to free the space again."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (shutil.disk_usage(disk).free - leave))
    return filler


@pytest.mark.parametrize("leave", [0, 96 * 1024], ids=["no-byte-left", "96KiB-left"])
def test_roost_index_on_a_full_disk_fails_clearly_and_keeps_the_previous_index(small_disk, capsys, leave):
    ws = Workspace(small_disk / "workspace")
    write_corpus(ws, make_posts(2000))
    assert main(["index", "--workspace", str(ws.root), "--no-vectors"]) == 0
    before = file_hash(ws.index)
    filler = fill(small_disk, leave)
    capsys.readouterr()
    assert main(["index", "--workspace", str(ws.root), "--no-vectors"]) == 2
    err = capsys.readouterr().err
    assert "roost index: error: the disk is full" in err and "previous artifacts are intact" in err, err
    assert file_hash(ws.index) == before
    assert sorted(p.name for p in ws.root.iterdir()) == ["corpus", "index"]  # the half-built copy is gone
    filler.unlink()
    assert main(["index", "--workspace", str(ws.root), "--no-vectors"]) == 0  # space back: it just works


@pytest.mark.parametrize("leave", [0, 64 * 1024], ids=["no-byte-left", "64KiB-left"])
def test_a_checkpoint_on_a_full_disk_fails_clearly_and_keeps_the_previous_one(small_disk, leave):
    info = DistInfo(0, 0, 1, torch.device("cpu"))
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=64))
    opts = [torch.optim.AdamW(model.parameters())]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    root = small_disk / "checkpoints"
    first = checkpoint.save(root, 1, model, opts, {"note": "one"}, info, keep=2)
    fill(small_disk, leave)  # with 64 KiB, a shard starts and torch's writer fails midway
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(BaseException) as failed:  # torch's CheckpointException is a BaseException
        checkpoint.save(root, 2, model, opts, {"note": "two"}, info, keep=2)
    cause = disk_full(failed.value, root)  # what `roost train` reports as a full disk, with this cause
    assert cause is not None, repr(failed.value)
    if leave == 0:
        assert "No space left" in str(cause)
    assert checkpoint.latest_checkpoint(root) == first
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000001"]
    fresh = GPT(GPTConfig.tiny(vocab_size=64))
    checkpoint.load_model(first, fresh)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())


def test_the_server_on_a_full_disk_answers_507_and_keeps_what_it_acknowledged(small_disk):
    ws = Workspace(small_disk / "workspace")
    write_corpus(ws, make_posts(50))
    assert main(["index", "--workspace", str(ws.root), "--no-vectors"]) == 0
    campaign = {
        "advertiser": "Acme",
        "name": "Boots",
        "budget": 50,
        "bid_type": "cpc",
        "bid": 0.5,
        "targeting": {"keywords": ["goal"]},
        "creatives": [{"text": "boots for the match", "landing_url": "https://acme.example/"}],
    }
    with live_server(ws.root, admin_key="admin-secret") as (url, _), httpx.Client(base_url=url) as http:
        http.post("/admin/campaigns", json=campaign, headers=ADMIN).raise_for_status()
        [ad] = http.post("/ads/serve", json={"query": "goal"}).json()["ads"]
        assert http.get("/ads/click", params={"t": ad["click_url"].split("t=")[1]}).status_code == 302
        [other] = http.post("/ads/serve", json={"query": "goal"}).json()["ads"]
        filler = fill(small_disk)
        for r in (
            http.post("/ads/serve", json={"query": "goal"}),
            http.get("/ads/click", params={"t": other["click_url"].split("t=")[1]}),
            http.post("/admin/posts", json={"posts": [{"id": "new", "text": "goal keeper"}]}, headers=ADMIN),
        ):
            assert r.status_code == 507, r.text
            error = r.json()["error"]
            assert error["code"] == "disk_full" and "disk is full" in error["message"] and r.headers["retry-after"]
        assert http.get("/health").status_code == 200
        assert http.get("/search", params={"q": "goal", "mode": "lexical"}).json()["data"]  # reads still work
        filler.unlink()
        view = http.get(f"/admin/campaigns/{ad['campaign_id']}", headers=ADMIN).json()
        assert (view["impressions"], view["clicks"]) == (2, 1)  # the acknowledged ones, none of the failed
        assert view["spend_micros"] == int(ad["price"] * 1e6)
        assert http.get("/search", params={"q": "keeper", "mode": "lexical", "author": "new"}).status_code == 200
        assert "new" not in [
            h["id"] for h in http.get("/search", params={"q": "keeper", "mode": "lexical"}).json()["data"]
        ]
        assert http.get("/ads/click", params={"t": other["click_url"].split("t=")[1]}).status_code == 302
        assert (
            http.post("/admin/posts", json={"posts": [{"id": "new", "text": "goal keeper"}]}, headers=ADMIN).status_code
            == 200
        )


def test_disk_full_reads_through_wrapped_errors_and_nothing_else():
    class Wrapper(Exception):  # the shape of DCP's CheckpointException and torchrun's ChildFailedError
        def __init__(self, failures: dict):
            super().__init__("wrapped")
            self.failures = failures

    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full(Wrapper({0: (enospc, "traceback")})) is enospc
    try:
        raise ValueError("could not save") from enospc
    except ValueError as e:
        assert disk_full(e) is enospc
    assert disk_full(Wrapper({0: object()})) is None  # records that are not exceptions (torchrun's ProcessFailure)
    assert disk_full(ValueError("a bad flag")) is None
