"""Continued pretraining of an open model: ``roost import`` -> ``roost tokenizer --from-model`` ->
``roost train --init model`` -> ``roost sft`` -> served.

The "open model" is a tiny randomly initialised ``transformers.LlamaForCausalLM``
(a shape roost's own ``--depth`` never makes: grouped-query attention, its own
MLP width and RoPE base, a vocabulary padded past its tokenizer's) saved with
``save_pretrained``, beside a tokenizer with roost's special tokens trained on
other text than the corpus. Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from test_sft_fixtures import chat_posts, write_corpus

from roost.cli import main
from roost.export import load_hf
from roost.model import GPT
from roost.tokenizer import TokenizerConfig, hf_tokenizer_files, load_tokenizer, placeholder_ids, train_bpe
from roost.tokens import TokenShards
from roost.train.data import PackedLoader
from roost.workspace import Workspace

TRAIN = [
    "--seq-len",
    "48",
    "--device-batch",
    "8",
    "--eval-tokens",
    "384",
    "--eval-every",
    "10",
    "--ckpt-every",
    "10",
    "--device",
    "cpu",
    "--dtype",
    "float32",
]
SEED = 1337  # TrainConfig's default seed: the data order of the first batch


def save_open_model(folder: Path) -> None:
    """A tiny random HF Llama with its own tokenizer (trained on other text than the corpus), as a Hub folder holds."""
    from transformers import LlamaConfig, LlamaForCausalLM

    other_text = [
        f"the {a} and the {b} were seen near the {c} today"
        for a in ("sky", "cat", "sea", "road")
        for b in ("sun", "dog", "grass", "snow")
        for c in ("rose", "night", "hill")
    ]
    tok_dir = folder.parent / "open-tokenizer"
    tok_dir.mkdir()
    train_bpe(other_text, TokenizerConfig(vocab_size=320, min_frequency=1)).save(str(tok_dir / "tokenizer.json"))
    vocab = load_tokenizer(tok_dir).vocab_size
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab + 8,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=96,
        rope_theta=50000.0,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    hf_tokenizer_files(tok_dir, folder)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Workspace:
    """A workspace with a corpus of reply threads, the open model imported and its tokenizer's token shards."""
    root = tmp_path_factory.mktemp("cpt")
    save_open_model(root / "open-model")
    ws = Workspace(root / "workspace")
    write_corpus(ws, chat_posts(80))
    assert main(["import", "--from", str(root / "open-model"), "--workspace", str(ws.root)]) == 0
    return ws


def _copy(ws: Workspace, dest: Path) -> Workspace:
    shutil.copytree(ws.root, dest)
    return Workspace(dest)


def _train(ws: Workspace, *args: str) -> int:
    return main(["train", "--init", "model", "--workspace", str(ws.root), *TRAIN, *args])


def test_continues_pretraining_the_imported_model_then_sft_and_serving(imported, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from roost.engine import Engine
    from roost.engine.sampling import SamplingParams

    ws = _copy(imported, tmp_path / "ws")
    open_model = load_hf(ws.model)
    model_tokenizer = (ws.model / "tokenizer.json").read_bytes()
    assert main(["tokenizer", "--from-model", "--workspace", str(ws.root)]) == 0
    assert f"(from {ws.model})" in capsys.readouterr().out
    assert (ws.tokenizer / "tokenizer.json").read_bytes() == model_tokenizer  # kept, not retrained

    # the first step's loss is the imported model's on that batch: training starts from its weights
    train = TokenShards(ws.tokens, "train")
    first = PackedLoader(
        train.shards, train.doc_starts, 48, 8, seed=SEED, ignore_targets=placeholder_ids(ws.tokenizer)
    ).next_batch()
    with torch.no_grad():
        open_loss = open_model(*first)[1].item()
        torch.manual_seed(SEED)
        scratch_loss = GPT(open_model.config)(*first)[1].item()
    assert abs(open_loss - scratch_loss) > 1e-3  # so the equality below tells the two starts apart
    assert _train(ws, "--steps", "30") == 0
    records = [json.loads(line) for line in (ws.root / "runs/pretrain/metrics.jsonl").read_text().splitlines()]
    assert [r for r in records if "loss" in r][0]["loss"] == pytest.approx(open_loss, abs=1e-4)
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(val) == 4 and val[-1] < 0.6 * val[0]

    # the architecture, vocabulary and tokenizer are the open model's
    trained = load_hf(ws.model)
    assert trained.config == open_model.config and trained.config.vocab_size == train.vocab_size + 8
    assert (ws.model / "tokenizer.json").read_bytes() == model_tokenizer
    manifest = ws.read_manifest("model")
    assert manifest["source"] == "roost train" and manifest["counts"]["steps"] == 30 and "init" in manifest["inputs"]

    # resumable as from scratch: redo the last 10 steps from step 20, bit for bit
    weights = {k: v.clone() for k, v in trained.state_dict().items()}
    shutil.rmtree(ws.checkpoints / "step-000030")
    assert _train(ws, "--resume") == 0
    for name, tensor in load_hf(ws.model).state_dict().items():
        assert torch.equal(tensor, weights[name]), name

    # SFT starts from the continued model; transformers and roost's engine serve the result
    assert (
        main(
            [
                "sft",
                "--workspace",
                str(ws.root),
                "--seq-len",
                "48",
                "--device-batch",
                "8",
                "--eval-tokens",
                "384",
                "--steps",
                "5",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "from " + str(ws.checkpoints / "step-000030") in capsys.readouterr().out
    tuned = load_hf(ws.model)
    assert tuned.config == open_model.config and ws.read_manifest("model")["source"] == "roost sft"
    hf = AutoModelForCausalLM.from_pretrained(ws.model)
    ids = torch.tensor([load_tokenizer(ws.model).encode_chat([{"role": "user", "content": "the sky"}], True)[0]])
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, tuned(ids), atol=1e-4, rtol=1e-4)
    engine = Engine(tuned, load_tokenizer(ws.model))
    try:
        assert isinstance(engine.generate(ids[0].tolist(), SamplingParams(max_tokens=4, temperature=0))[0], str)
    finally:
        engine.close()


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (
            "trained tokenizer",
            [],
            r"--init model: .*tokenizer is not .*model's tokenizer; run `roost tokenizer --from-model",
        ),
        ("from model", ["--depth", "3"], r"--depth cannot go with --init model"),
        ("from model", ["--seq-len", "200", "--max-seq-len", "256"], r"--max-seq-len cannot go with --init model"),
        ("from model", ["--seq-len", "200"], r"--seq-len 200 is above the model's context 96"),
        ("no model", [], r"--init model: no model in .*; bring one in with `roost import --from DIR`"),
    ],
)
def test_bad_input_is_refused_naming_what_to_do(imported, tmp_path, capsys, setup, args, message):
    ws = _copy(imported, tmp_path / "ws")
    if setup == "trained tokenizer":  # shards in a vocabulary the model never learned
        assert main(["tokenizer", "--vocab-size", "300", "--workspace", str(ws.root)]) == 0
    else:
        assert main(["tokenizer", "--from-model", "--workspace", str(ws.root)]) == 0
    if setup == "no model":
        shutil.rmtree(ws.model)
    capsys.readouterr()
    assert _train(ws, "--steps", "1", *args) == 2
    assert re.search(message, capsys.readouterr().err), message
    assert not ws.checkpoints.exists()


def test_tokenizer_from_model_needs_a_model_and_takes_no_vocab_size(imported, tmp_path, capsys):
    ws = _copy(imported, tmp_path / "ws")
    assert main(["tokenizer", "--from-model", "--vocab-size", "300", "--workspace", str(ws.root)]) == 2
    assert "--vocab-size does not go with --from-model" in capsys.readouterr().err
    shutil.rmtree(ws.model)
    assert main(["tokenizer", "--from-model", "--workspace", str(ws.root)]) == 2
    assert "`roost import --from DIR` a Hugging Face model first" in capsys.readouterr().err
    assert not ws.tokenizer.exists()
