"""No placeholder is ever generated: ingest's <|email|>-style stand-ins are read, never written.

Training ignores them as targets (pretraining's loader, SFT's chat mask), the
engine's sampler never picks them, and the exported generation config
suppresses them for transformers. The end-to-end test trains a tiny model on
posts where ``<|email|>`` always follows "mail me at", once with the mask and
once without, and samples many completions from each.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_train_fixtures import tiny_posts, write_token_shards

from roost.corpus.schema import PLACEHOLDERS
from roost.engine import Engine, EngineConfig, SamplingParams
from roost.engine.sampling import Sampler
from roost.export import load_hf
from roost.tokenizer import PLACEHOLDER_TOKENS, RoostTokenizer, TokenizerConfig, load_tokenizer, train_bpe
from roost.train.config import TrainConfig
from roost.train.data import IGNORE_INDEX, PackedLoader
from roost.train.pretrain import train
from roost.workspace import Workspace

PROMPT = "mail me at "  # the text before a placeholder ends in its space (split before BPE)
TINY = dict(
    depth=1,
    seq_len=32,
    max_seq_len=64,
    device_batch=8,
    warmup=2,
    eval_tokens=512,
    steps=60,
    eval_every=60,
    ckpt_every=60,
    optimizer="adamw",
    lr=0.01,
)


def _posts(n: int, seed: int) -> list[str]:
    """Plain posts, every third one asking to be mailed at a scrubbed address."""
    return [
        f"{PROMPT}{PLACEHOLDERS['email']} for the {p}" if i % 3 == 0 else p for i, p in enumerate(tiny_posts(n, seed))
    ]


def _workspace(root) -> Workspace:
    ws = Workspace(root)
    hf = train_bpe(_posts(300, 0), TokenizerConfig(vocab_size=320, min_frequency=1))
    ws.tokenizer.mkdir(parents=True)
    hf.save(str(ws.tokenizer / "tokenizer.json"))
    tok = RoostTokenizer(hf)
    ws.write_manifest("tokenizer", vocab_size=tok.vocab_size, special_tokens=tok.special_ids)
    write_token_shards(ws, {"train": _posts(300, 0), "val": _posts(60, 1)}, tok)
    return ws


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Workspace]:
    """The same tiny run twice: as roost trains (placeholders masked) and with the mask lifted."""
    import roost.train.pretrain as pretrain

    out = {}
    for name in ("masked", "unmasked"):
        ws = _workspace(tmp_path_factory.mktemp(name) / "workspace")
        with pytest.MonkeyPatch.context() as mp:
            if name == "unmasked":
                mp.setattr(pretrain, "placeholder_ids", lambda _dir: [])
            train(ws, TrainConfig(**TINY, run=name, device="cpu", dtype="float32"))
        out[name] = ws
    return out


def _next_token_probs(ws: Workspace) -> tuple[torch.Tensor, RoostTokenizer]:
    tok = load_tokenizer(ws.model)
    model = load_hf(ws.model)
    with torch.no_grad():
        logits = model(torch.tensor([[tok.bos_id, *tok.encode(PROMPT)]]))
    return torch.softmax(logits[0, -1].float(), -1), tok


def _sample(ws: Workspace, n: int = 64) -> list[tuple[str, list[int]]]:
    tok = load_tokenizer(ws.model)
    engine = Engine(load_hf(ws.model), tok, EngineConfig(slots=8, queue=n))
    try:
        params = SamplingParams(max_tokens=6, temperature=1.0, seed=0, ignore_eos=True)
        requests = [
            engine.submit([tok.bos_id, *tok.encode(PROMPT)], SamplingParams(**{**vars(params), "seed": i}))
            for i in range(n)
        ]
        out = []
        for r in requests:
            events = list(r)
            out.append(("".join(e.text for e in events), [t for e in events for t in e.token_ids]))
        return out
    finally:
        engine.close()


def test_the_mask_keeps_placeholders_out_of_what_the_model_learns_to_write(trained):
    masked, tok = _next_token_probs(trained["masked"])
    unmasked, _ = _next_token_probs(trained["unmasked"])
    email = tok.special_ids[PLACEHOLDERS["email"]]
    assert unmasked[email] > 0.5  # without the mask the model learns to write the placeholder
    assert masked[email] < 0.01  # with it, the placeholder is pushed down like any non-target


def test_many_sampled_completions_hold_no_placeholder(trained):
    for name in ("masked", "unmasked"):  # the unmasked model wants to write <|email|>: the ban alone stops it
        samples = _sample(trained[name])
        tok = load_tokenizer(trained[name].model)
        assert len(samples) == 64 and all(ids for _, ids in samples)
        assert not any(set(ids) & set(tok.placeholder_ids) for _, ids in samples), name
        assert not any(p in text for text, _ in samples for p in PLACEHOLDER_TOKENS), name


def test_sampler_never_picks_a_banned_token_and_reports_logprobs_without_it():
    logits = torch.zeros(10)
    logits[3] = 50.0  # the model is sure of token 3
    for temperature in (0.0, 1.0):
        sampler = Sampler(SamplingParams(temperature=temperature, logprobs=2, seed=0), 10, seed=0, banned=[3])
        for _ in range(20):
            token, lp = sampler(logits)
            assert token != 3 and 3 not in [t for t, _ in lp.top]
            assert lp.logprob == pytest.approx(-torch.log(torch.tensor(9.0)).item(), abs=1e-5)
    assert Sampler(SamplingParams(temperature=0.0), 10, seed=0)(logits)[0] == 3  # not banned: chosen


def test_loader_and_chat_mask_ignore_placeholder_targets():
    import numpy as np

    shard = np.arange(40, dtype=np.uint16)
    loader = PackedLoader(
        [shard], [np.array([0, 10, 20, 30])], seq_len=8, batch_size=4, shuffle=False, ignore_targets=[5, 25]
    )
    x, y = loader.next_batch()
    assert 5 in x.tolist()[0] and (y == IGNORE_INDEX).sum() == 2 and not torch.isin(y, torch.tensor([5, 25])).any()

    tok = RoostTokenizer(train_bpe(_posts(50, 0), TokenizerConfig(vocab_size=320, min_frequency=1)))
    ids, mask = tok.encode_chat(
        [
            {"role": "user", "content": "how do I reach you?"},
            {"role": "assistant", "content": f"{PROMPT}{PLACEHOLDERS['email']} ok"},
        ]
    )
    email = tok.special_ids[PLACEHOLDERS["email"]]
    assert email in ids and mask[ids.index(email)] == 0
    assert sum(mask) == len(tok.encode(f"{PROMPT}{PLACEHOLDERS['email']} ok"))  # the rest of the answer + <|end|>


def test_exported_generation_config_suppresses_placeholders(trained):
    cfg = json.loads((trained["masked"].model / "generation_config.json").read_text())
    tok = load_tokenizer(trained["masked"].model)
    assert sorted(cfg["suppress_tokens"]) == sorted(tok.placeholder_ids) and len(cfg["suppress_tokens"]) == 4
