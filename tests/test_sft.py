"""SFT: packing with the loss mask, a real fine-tuning run, the exported chat model, and refusals."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from test_sft_fixtures import COLORS, make_sft_workspace, write_corpus

from roost.cli import main
from roost.export import load_hf
from roost.model import GPTConfig
from roost.tokenizer import load_tokenizer, render_chat
from roost.train import checkpoint
from roost.train.conversations import Conversation
from roost.train.data import IGNORE_INDEX
from roost.train.dist import DistInfo
from roost.train.optim import build_optimizers
from roost.train.sft import (
    ChatLoader,
    SFTConfig,
    load_pretrained,
    pack_conversations,
    sft,
    weights_hash,
)
from roost.workspace import StageMissing

TINY = {"seq_len": 48, "device_batch": 8, "eval_tokens": 384}


@pytest.fixture(scope="module")
def sft_ws(tmp_path_factory):
    return make_sft_workspace(tmp_path_factory.mktemp("sft") / "workspace")


def _copy(ws, dest):
    shutil.copytree(ws.root, dest)
    return type(ws)(dest)


def _chat(user: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def test_packing_keeps_whole_conversations_and_masks_all_but_assistant_tokens(sft_ws):
    tok = load_tokenizer(sft_ws.tokenizer)
    convs = [
        Conversation(str(i), (str(i),), _chat("what color is the " + t, f"the {t} is {c}"))
        for i, (t, c) in enumerate(COLORS.items())
    ]
    packed = pack_conversations(tok, convs, seq_len=47)
    assert packed.row_len == 48 and packed.conversations == 6 and packed.cropped == packed.dropped == 0
    assert packed.rows < 6  # several short conversations share a row
    rows_ids, rows_labels = packed.ids.reshape(-1, 48), packed.labels.reshape(-1, 48)
    for ids, labels in zip(rows_ids, rows_labels):
        assert ids[0] == tok.bos_id  # every row starts a conversation
        text = tok.decode([i for i in ids if i != tok.pad_id])
        assert text.count("<|bos|>") == text.count("<|assistant|>") >= 1
        trained = tok.decode(ids[labels != IGNORE_INDEX].tolist())
        # exactly the assistant answers, each with its <|end|>, in order
        answers = [m.split("<|end|>")[0] for m in text.split("<|assistant|>")[1:]]
        assert trained == "".join(a + "<|end|>" for a in answers)
        assert np.all(labels[ids == tok.pad_id] == IGNORE_INDEX)
    assert sorted(tok.decode(packed.ids[packed.ids != tok.pad_id].tolist()).split("<|bos|>")[1:]) == sorted(
        render_chat(c.messages).removeprefix("<|bos|>") for c in convs
    )

    long = [Conversation("x", ("x",), _chat("what color is the sky " * 20, "blue"))]
    assert pack_conversations(tok, long, seq_len=47).dropped == 1  # cropped before the answer: nothing to learn


def test_chat_loader_targets_are_the_shifted_labels_and_resume(sft_ws):
    tok = load_tokenizer(sft_ws.tokenizer)
    convs = [
        Conversation(str(i), (str(i),), _chat(f"what color is the {t}", f"the {t} is {COLORS[t]}"))
        for i, t in enumerate(sorted(COLORS) * 4)
    ]
    packed = pack_conversations(tok, convs, seq_len=31)
    loader = ChatLoader(packed, batch_size=2, seed=3)
    batches = [loader.next_batch() for _ in range(loader.batches_per_epoch + 1)]  # into the second epoch
    targets = {
        tuple(ids[:-1]): labels[1:].tolist()
        for ids, labels in zip(packed.ids.reshape(-1, 32).tolist(), packed.labels.reshape(-1, 32))
    }
    for x, y in batches:
        assert torch.all(x[:, 0] == tok.bos_id)
        assert all(targets[tuple(xr)] == yr for xr, yr in zip(x.tolist(), y.tolist()))
    state = json.loads(json.dumps(ChatLoader(packed, batch_size=2, seed=3).state_dict()))
    again = ChatLoader(packed, batch_size=2, seed=3)
    again.next_batch()
    again.load_state_dict(state)
    assert torch.equal(again.next_batch()[1], batches[0][1])


def test_sft_loss_falls_and_writes_a_chat_model_with_its_template(sft_ws, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ws = _copy(sft_ws, tmp_path / "ws")
    pretrained = load_hf(ws.model)
    result = sft(ws, SFTConfig.make(dict(TINY, steps=100, eval_every=50)))
    records = [json.loads(line) for line in (ws.root / "runs/sft/metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(val) == 3 and val[-1] < 0.1 * val[0]
    assert result.checkpoint == ws.checkpoints / "sft/step-000100" and result.model_dir == ws.model

    manifest = ws.read_manifest("model")
    assert manifest["source"] == "roost sft" and manifest["counts"]["steps"] == 100
    assert manifest["inputs"] == {
        "corpus": ws.stage_hash("corpus"),
        "tokenizer": ws.stage_hash("tokenizer"),
        "pretrained": weights_hash(pretrained),
    }
    assert manifest["counts"]["train_conversations"] + manifest["counts"]["val_conversations"] == 120
    tuned = load_hf(ws.model)
    assert not torch.equal(tuned.layers[0].mlp.up_proj.weight, pretrained.layers[0].mlp.up_proj.weight)

    # transformers formats chats exactly as roost does
    hf_tok = AutoTokenizer.from_pretrained(ws.model)
    tok = load_tokenizer(ws.model)
    chat = [
        {"role": "system", "content": "be brief"},
        *_chat("what color is the sky", "the sky is blue"),
        {"role": "user", "content": "and the rose"},
    ]
    for gen in (False, True):
        assert hf_tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen) == render_chat(chat, gen)
        ids = hf_tok.apply_chat_template(chat, tokenize=True, add_generation_prompt=gen, return_dict=True)["input_ids"]
        assert list(ids) == tok.encode_chat(chat, gen)[0]

    # the exported model, run by transformers with its chat template, answers as it learned and stops at <|end|>
    hf_model = AutoModelForCausalLM.from_pretrained(ws.model)
    right = 0
    for thing, color in COLORS.items():
        prompt = hf_tok.apply_chat_template(
            _chat(f"what color is the {thing}", "")[:1],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        out = hf_model.generate(**prompt, max_new_tokens=20, do_sample=False)
        reply = hf_tok.decode(out[0, prompt["input_ids"].shape[1] :])
        assert re.fullmatch(rf"the {thing[:2]}\w* is \w+<\|end\|>", reply), reply
        right += reply == f"the {thing} is {color}<|end|>"
    assert right >= 4


def test_starts_from_the_pretraining_checkpoint_and_leaves_it(sft_ws, tmp_path):
    ws = _copy(sft_ws, tmp_path / "ws")
    info = DistInfo(0, 0, 1, torch.device("cpu"))
    config = GPTConfig.from_depth(1, vocab_size=load_tokenizer(ws.tokenizer).vocab_size, max_seq_len=64)
    torch.manual_seed(5)
    from roost.model import GPT

    model = GPT(config)
    opts = build_optimizers(model, "muon", config.n_embd, info.device)
    ckpt = checkpoint.save(ws.checkpoints, 7, model, opts, {"model_config": config.to_dict()}, info, keep=1)
    found = load_pretrained(ws)
    assert found.source == str(ckpt) and found.step == 7 and found.weights_hash == weights_hash(model)

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
                "--steps",
                "2",
                "--eval-tokens",
                "384",
            ]
        )
        == 0
    )
    assert checkpoint.latest_checkpoint(ws.checkpoints) == ckpt  # pretraining's checkpoint stays the newest
    assert ws.read_manifest("model")["pretrained"] == {
        "source": str(ckpt),
        "weights_hash": found.weights_hash,
        "step": 7,
    }

    shutil.rmtree(ws.checkpoints)  # now model/ is the fine-tuned one and no pretraining checkpoint is left
    with pytest.raises(StageMissing, match=r"already fine-tuned by `roost sft` .* run `roost train"):
        load_pretrained(ws)


def _sft_cli(ws_root, *args) -> list[str]:
    return ["sft", "--workspace", str(ws_root), "--seq-len", "48", "--device-batch", "8", "--eval-tokens", "384", *args]


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("no_threads", [], r"no reply threads .* run `roost ingest`"),
        ("no_model", [], r"no pretrained model to fine-tune .* run `roost train --workspace"),
        ("no_corpus", [], r"no corpus/ artifact yet .* run `roost ingest --workspace"),
        ("", ["--resume"], r"--resume: no SFT checkpoint in .*checkpoints/sft"),
        ("", ["--seq-len", "100"], r"--seq-len 100 is above the pretrained model's context 64"),
        ("", ["--lr-frac", "2"], r"--lr-frac must be in \(0, 1\]"),
        ("", ["--epochs", "2", "--steps", "3"], r"at most one of --epochs, --steps"),
        ("", ["--resume", "--fresh"], r"give --resume or --fresh, not both"),
    ],
)
def test_bad_input_is_refused_naming_what_to_do(sft_ws, tmp_path, capsys, setup, args, message):
    ws = _copy(sft_ws, tmp_path / "ws")
    if setup == "no_threads":
        write_corpus(ws, [("p1", "ann", "just me", None), ("p2", "bob", "me too", None)])
    elif setup == "no_model":
        shutil.rmtree(ws.model)
    elif setup == "no_corpus":
        shutil.rmtree(ws.corpus)
    assert main(_sft_cli(ws.root, *args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("roost sft: error:")
    assert re.search(message, err), err
    assert not (ws.checkpoints / "sft").exists()


def test_a_second_run_needs_resume_or_fresh_and_resume_keeps_the_data(sft_ws, tmp_path, capsys):
    ws = _copy(sft_ws, tmp_path / "ws")
    assert main(_sft_cli(ws.root, "--steps", "2", "--system-prompt", "be kind")) == 0
    capsys.readouterr()
    assert main(_sft_cli(ws.root, "--steps", "2")) == 2
    assert "pass --resume to continue that fine-tuning, or --fresh" in capsys.readouterr().err
    assert main(_sft_cli(ws.root, "--resume", "--steps", "3", "--system-prompt", "be rude")) == 2
    assert (
        "--resume cannot change the conversations or learning rates: --system-prompt 'be rude' "
        "(checkpoint has --system-prompt 'be kind')"
    ) in capsys.readouterr().err
    assert main(_sft_cli(ws.root, "--resume", "--steps", "3")) == 0
    assert checkpoint.read_meta(checkpoint.latest_checkpoint(ws.checkpoints / "sft"))["step"] == 3
    assert main(_sft_cli(ws.root, "--fresh", "--steps", "1")) == 2  # model/ is now the fine-tuned one
    assert "already fine-tuned by `roost sft`" in capsys.readouterr().err
