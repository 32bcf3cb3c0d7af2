"""`roost eval`: validation loss as training measures it, TweetEval-format classification, the report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from test_demo_fixtures import build_tiny

from roost.cli import main
from roost.eval.classify import ClassifyConfig, finetune, tfidf_baseline
from roost.eval.lm import validation_loss
from roost.eval.tweeteval import find_tasks
from roost.precision import compute_dtype
from roost.workspace import Workspace

WORDS = {0: "delicious tasty yummy", 1: "awful bland soggy", 2: "cheap pricey costly"}


def write_task(
    folder: Path, n_train: int = 120, n_val: int = 30, n_labels: int = 2, seed: int = 0, mapping: bool = True
) -> None:
    """A task whose label is told by one keyword among filler words."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    filler = ["the", "food", "at", "this", "place", "was", "really", "quite", "something", "tonight"]
    for split, n in (("train", n_train), ("val", n_val)):
        labels = [i % n_labels for i in range(n)]
        rng.shuffle(labels)
        texts = [" ".join([rng.choice(WORDS[y].split())] + rng.sample(filler, 5)) for y in labels]
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n")
        (folder / f"{split}_labels.txt").write_text("\n".join(map(str, labels)) + "\n")
    if mapping:
        (folder / "mapping.txt").write_text("".join(f"{i}\tlabel{i}\n" for i in range(n_labels)))


@pytest.fixture(scope="module")
def tiny_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "workspace"
    build_tiny(root, sft_steps=None)  # the served model is the pretrained one, as training measured it
    return Workspace(root)


@pytest.fixture(scope="module")
def tweeteval(tmp_path_factory):
    root = tmp_path_factory.mktemp("tweeteval")
    write_task(root / "food")
    write_task(root / "stance" / "price", n_labels=3, mapping=False, seed=1)
    (root / "stance" / "mapping.txt").write_text("0\tnone\n1\tagainst\n2\tfavor\n")
    write_task(root / "noval", seed=2)
    (root / "noval" / "train_text.txt").unlink()  # like TweetEval's sentiment: validation only
    return root


def test_find_tasks_reads_the_layout_and_refuses_bad_files(tweeteval, tmp_path):
    tasks = find_tasks(tweeteval)
    assert [t.name for t in tasks] == ["food", "noval", "stance/price"]
    assert tasks[2].label_names == ["none", "against", "favor"] and not tasks[1].has_train
    assert [t.name for t in find_tasks(tweeteval, ["stance"])] == ["stance/price"]
    with pytest.raises(ValueError, match="unknown task"):
        find_tasks(tweeteval, ["emoji"])

    write_task(tmp_path / "bad")
    (tmp_path / "bad" / "val_labels.txt").write_text("0\n" * 29 + "7\n")
    with pytest.raises(ValueError, match=r"val_labels.txt: label 7 is not in the task's mapping"):
        find_tasks(tmp_path)[0].split("val")
    (tmp_path / "bad" / "val_labels.txt").write_text("0\n" * 3)
    with pytest.raises(ValueError, match="must pair up line by line"):
        find_tasks(tmp_path)[0].split("val")


def test_baseline_and_finetune_learn_a_keyword_task(tweeteval, tiny_ws):
    [task] = find_tasks(tweeteval, ["food"])
    train, val = task.split("train"), task.split("val")
    assert tfidf_baseline(train, val)["accuracy"] == 1.0
    tuned = finetune(tiny_ws.model, train, val, 2, ClassifyConfig(finetune_steps=100, batch_size=16, max_len=48))
    assert tuned["accuracy"] >= 0.9 and 0 <= tuned["macro_f1"] <= 1
    untrained = finetune(tiny_ws.model, train, val, 2, ClassifyConfig(finetune_steps=0, max_len=48))
    assert untrained["accuracy"] <= 0.7  # the head starts random: the steps are what learns


def test_validation_loss_matches_what_training_measured(tiny_ws):
    metrics = [
        json.loads(line) for line in (tiny_ws.root / "runs" / "pretrain" / "metrics.jsonl").read_text().splitlines()
    ]
    last = [m for m in metrics if "val_loss" in m][-1]
    # the same slice training evaluated (seq_len 64, batch 4, eval_tokens 1024), on the exported model, in the
    # dtype training computed in (--dtype auto: bf16 autocast on CPUs with AVX512-BF16)
    dtype = compute_dtype("auto", torch.device("cpu"))
    got = validation_loss(tiny_ws, max_tokens=1024, seq_len=64, batch_size=4, dtype=dtype)
    assert got["val_loss"] == pytest.approx(last["val_loss"], rel=1e-5)
    assert got["val_bpb"] == pytest.approx(last["val_bpb"], rel=1e-5)
    assert got["tokens"] == 1024 and got["params"] > 0


def test_roost_eval_writes_results_and_report(tiny_ws, tweeteval, tmp_path):
    out = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "-w",
                str(tiny_ws.root),
                "--report",
                str(out),
                "--tweeteval",
                str(tweeteval),
                "--finetune-steps",
                "10",
                "--ads-requests",
                "30",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results["seconds"]) == {"lm", "chat", "tweeteval", "search", "ads"}
    assert results["chat"]["questions"] == 200 and 0 <= results["chat"]["on_topic"] <= 1
    assert np.isfinite(results["lm"]["val_loss"]) and results["lm"]["val_bpb"] > 0
    tasks = results["tweeteval"]["tasks"]
    assert set(tasks) == {"food", "stance/price"} and results["tweeteval"]["notes"] == [
        "noval: no train split, left out"
    ]
    assert {"tfidf", "probe", "finetune"} <= set(tasks["food"]) and tasks["food"]["n_val"] == 30
    assert set(results["search"]["topics"]["metrics"]) == {"lexical", "semantic", "hybrid"}
    assert {r["policy"] for r in results["ads"]["policies"]} == {"random", "keyword", "model+pctr"}
    assert (out / "calibration.png").is_file() and "calibration.png" in (out / "report.html").read_text()
    page = (out / "report.html").read_text()
    for png in ("loss.png", "tweeteval_f1.png", "tweeteval_accuracy.png", "search.png"):
        assert f"src='{png}'" in page and (out / png).read_bytes().startswith(b"\x89PNG")
    assert "stance/price" in page and "model+pctr" in page and "Chat: held-out questions" in page


def test_single_targets_and_missing_data(tiny_ws, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "lm", "-w", str(tiny_ws.root), "--report", str(out)]) == 0
    assert set(json.loads((out / "results.json").read_text())["seconds"]) == {"lm"}
    args = ["eval", "tweeteval", "-w", str(tiny_ws.root), "--report", str(out), "--tweeteval", str(tmp_path / "absent")]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert "no TweetEval data at" in results["tweeteval"]["skipped"]
    assert "Skipped: no TweetEval data" in (out / "report.html").read_text()
    assert main(args + ["--finetune-steps", "-1"]) == 2
    assert "finetune steps must be >= 0" in capsys.readouterr().err
