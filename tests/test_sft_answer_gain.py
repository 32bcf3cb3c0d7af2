"""The pretrained model's answer gain as a mining signal: scoring, the cut it makes, and its flag."""

from __future__ import annotations

import math
import re
import shutil

import pytest
import torch
from test_sft_fixtures import COLORS, make_sft_workspace, write_corpus

from roost.cli import main
from roost.errors import UserError
from roost.model import GPT, GPTConfig
from roost.tokenizer import RoostTokenizer, TokenizerConfig, train_bpe
from roost.train.answer_gain import CONTEXT_SEP, answer_gains
from roost.train.conversations import MiningConfig, mine_conversations


def _question(thing: str) -> str:
    return f"what color is the {thing}"


def _answer(thing: str) -> str:
    return f"the {thing} is {COLORS[thing]}"


@pytest.fixture(scope="module")
def answering_model():
    """A tiny model trained on questions followed by their answers, and on the answers alone (after the separator,
    as answer_gains frames a reply with no parent): its likelihood of an answer with no question is the marginal."""
    docs = [_question(t) + CONTEXT_SEP + _answer(t) for t in sorted(COLORS)]
    docs += [CONTEXT_SEP + _answer(t) for t in sorted(COLORS)]
    tok = RoostTokenizer(train_bpe(docs, TokenizerConfig(vocab_size=280, min_frequency=1)))
    rows = [[tok.bos_id, *tok.encode(d)] for d in docs]
    width = max(map(len, rows))
    x = torch.tensor([r + [tok.pad_id] * (width - len(r)) for r in rows])
    y = torch.tensor([r[1:] + [-100] * (width - len(r) + 1) for r in rows])
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=tok.vocab_size, max_seq_len=64))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5  # it learnt the pairs
    return model, tok


def test_a_reply_that_takes_up_its_parent_gains_more_than_an_unrelated_one(answering_model):
    model, tok = answering_model
    things = sorted(COLORS)
    pairs = [(_question(a), _answer(b)) for a in things for b in things]
    gains = dict(zip(pairs, answer_gains(model, tok, pairs, batch_tokens=64)))  # several batches
    for a in things:
        on_subject = gains[(_question(a), _answer(a))]
        assert on_subject > 0.1  # the question made its answer likelier
        for b in things:
            if b != a:
                assert gains[(_question(a), _answer(b))] < 0, (a, b)  # ... and an answer to another one less likely
                assert gains[(_question(b), _answer(b))] > gains[(_question(a), _answer(b))] + 0.1, (a, b)
    # batching does not change a score
    alone = answer_gains(model, tok, pairs[:1], batch_tokens=10_000)
    assert alone[0] == pytest.approx(gains[pairs[0]], abs=1e-5)
    assert len(answer_gains(model, tok, [])) == 0


def test_long_parents_are_cropped_from_the_left_to_the_models_context(answering_model):
    model, tok = answering_model
    long_parent = "blah " * 200 + _question("sky")  # far beyond max_seq_len 64 tokens; its end is kept
    (gain,) = answer_gains(model, tok, [(long_parent, _answer("sky"))])
    assert math.isfinite(gain)


# r (ann) -> b1 (bob, on subject) -> a2 (ann) -> b3 (bob, off subject) -> a4 (ann) -> b5 (bob, on subject)
# r2 (cat) -> d1 (dan, off subject at once)
THREADS = [
    ("r", "ann", _question("sky"), None),
    ("b1", "bob", _answer("sky"), "r"),
    ("a2", "ann", _question("grass"), "b1"),
    ("b3", "bob", _answer("rose"), "a2"),
    ("a4", "ann", _question("snow"), "b3"),
    ("b5", "bob", _answer("snow"), "a4"),
    ("r2", "cat", _question("sun"), None),
    ("d1", "dan", _answer("night"), "r2"),
]


def test_mining_cuts_each_conversation_at_its_first_reply_below_the_threshold(ws, answering_model):
    model, tok = answering_model
    write_corpus(ws, THREADS)
    calls = []

    def scorer(pairs):
        calls.append(pairs)
        return answer_gains(model, tok, pairs)

    kept = mine_conversations(ws.corpus, MiningConfig(val_fraction=0.0, min_answer_gain=0.0), scorer=scorer)
    assert [c.post_ids for c in kept.train] == [("r", "b1")]  # cut at b3, which answers another question; r2 dropped
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0])) == 4  # every distinct pair, in one call

    everything = mine_conversations(ws.corpus, MiningConfig(val_fraction=0.0, min_answer_gain=-100.0), scorer=scorer)
    assert sorted(c.post_ids for c in everything.train) == [("r", "b1", "a2", "b3", "a4", "b5"), ("r2", "d1")]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "0.5", True])
def test_bad_thresholds_are_refused(bad):
    with pytest.raises(UserError, match=r"--min-answer-gain must be a finite number"):
        MiningConfig(min_answer_gain=bad)


def test_a_threshold_without_a_scorer_is_a_programming_error(ws):
    write_corpus(ws, THREADS)
    with pytest.raises(ValueError, match="no scorer"):
        mine_conversations(ws.corpus, MiningConfig(min_answer_gain=0.0))


def _sft_cli(ws_root, *args) -> list[str]:
    return ["sft", "--workspace", str(ws_root), "--seq-len", "48", "--device-batch", "8", "--eval-tokens", "384", *args]


def test_roost_sft_flag_scores_with_the_pretrained_model(tmp_path, capsys):
    ws = make_sft_workspace(tmp_path / "ws", n_threads=40)
    shutil.copytree(ws.root, tmp_path / "ws2")
    assert main(_sft_cli(ws.root, "--steps", "1", "--min-answer-gain", "-1000")) == 0
    assert ws.read_manifest("model")["sft"]["mining"]["min_answer_gain"] == -1000.0
    assert "sft: scoring answers" in capsys.readouterr().err  # the progress bar

    for value, message in (
        ("1000", r"no training conversations .* lower --min-answer-gain"),
        ("nan", r"--min-answer-gain must be a finite"),
    ):
        assert main(_sft_cli(tmp_path / "ws2", "--steps", "1", "--min-answer-gain", value)) == 2
        err = capsys.readouterr().err
        assert "roost sft: error:" in err and re.search(message, err), err
    with pytest.raises(SystemExit):
        main(_sft_cli(tmp_path / "ws2", "--min-answer-gain", "high"))


def test_resume_scores_with_the_same_pretrained_model_or_refuses(tmp_path, capsys):
    from roost.train import checkpoint
    from roost.train.dist import DistInfo
    from roost.train.optim import build_optimizers

    ws = make_sft_workspace(tmp_path / "ws", n_threads=40)
    info = DistInfo(0, 0, 1, torch.device("cpu"))

    def pretraining_checkpoint(step: int, seed: int) -> None:
        torch.manual_seed(seed)
        model = GPT(GPTConfig.from_depth(1, vocab_size=ws.read_manifest("tokenizer")["vocab_size"], max_seq_len=64))
        opts = build_optimizers(model, "muon", model.config.n_embd, info.device)
        checkpoint.save(ws.checkpoints, step, model, opts, {"model_config": model.config.to_dict()}, info, keep=1)

    pretraining_checkpoint(7, seed=5)
    assert main(_sft_cli(ws.root, "--steps", "1", "--min-answer-gain", "-1")) == 0
    assert main(_sft_cli(ws.root, "--resume", "--steps", "2")) == 0  # scored again with the same weights
    pretraining_checkpoint(8, seed=6)  # the pretraining checkpoint SFT would read now is another model
    capsys.readouterr()
    assert main(_sft_cli(ws.root, "--resume", "--steps", "3")) == 2
    assert "is not the one this fine-tuning started from" in capsys.readouterr().err
    shutil.rmtree(checkpoint.step_dir(ws.checkpoints, 8))  # keep=1 left only step 8; model/ is SFT's now
    assert main(_sft_cli(ws.root, "--resume", "--steps", "3")) == 2
    assert "--resume with --min-answer-gain scores the replies again" in capsys.readouterr().err
