import time

import pytest
import torch
from test_engine_fixtures import UNSEEN_EMOJI, emoji_chain, puppet_model, tiny_model, tokenizer  # noqa: F401

from roost.engine import ContextLengthError, Engine, EngineConfig, KVCache, ParamError, QueueFull, SamplingParams
from roost.engine.detok import TextStream
from roost.engine.sampling import Sampler

PROMPTS = ["the cat sat on", "a big red dog ran on the mat and", "café", "日本 the small blue hat sat on a log"]


def prompt_ids(tok, text):
    return [tok.bos_id, *tok.encode(text)]


def greedy_reference(model, ids, max_tokens, stop_ids, banned=()):
    """Greedy decoding with a full forward per token (no cache): what the engine must reproduce."""
    out = []
    with torch.inference_mode():
        for _ in range(max_tokens):
            logits = model(torch.tensor([ids + out]))[0, -1]
            token = int(logits.index_fill(0, torch.tensor(banned, dtype=torch.long), float("-inf")).argmax())
            if token in stop_ids:
                break
            out.append(token)
    return out


@pytest.fixture(scope="module")
def engine(tokenizer):
    eng = Engine(tiny_model(tokenizer), tokenizer, EngineConfig(slots=4, queue=8))
    yield eng
    eng.close()


def test_kv_cache_matches_full_forward(engine, tokenizer):
    for text in PROMPTS[:2]:
        ids = prompt_ids(tokenizer, text)
        events = list(engine.submit(ids, SamplingParams(max_tokens=20, temperature=0)))
        got = [t for e in events for t in e.token_ids if t not in engine.stop_ids]
        assert got == greedy_reference(engine.model, ids, 20, engine.stop_ids, tokenizer.placeholder_ids)


def test_continuous_batching_equals_each_alone(engine, tokenizer):
    # different lengths, a short request that leaves a hole in the slots, and one that joins mid-flight
    params = [SamplingParams(max_tokens=m, temperature=0) for m in (30, 3, 30, 25)]
    alone = [engine.generate(prompt_ids(tokenizer, p), sp)[0] for p, sp in zip(PROMPTS, params)]
    requests = [engine.submit(prompt_ids(tokenizer, p), sp) for p, sp in zip(PROMPTS[:3], params[:3])]
    time.sleep(0.01)
    requests.append(engine.submit(prompt_ids(tokenizer, PROMPTS[3]), params[3]))
    together = ["".join(e.text for e in r) for r in requests]
    assert together == alone


def test_batched_prefill_with_more_requests_than_slots(tokenizer):
    eng = Engine(tiny_model(tokenizer), tokenizer, EngineConfig(slots=2, queue=4, prefill_tokens=64))
    try:
        params = SamplingParams(max_tokens=12, temperature=0)
        alone = [eng.generate(prompt_ids(tokenizer, p), params)[0] for p in PROMPTS]
        with eng._cv:  # hold the scheduler so that all four wait together, and two are prefilled in one forward
            requests = [eng.submit(prompt_ids(tokenizer, p), params) for p in PROMPTS]
        assert ["".join(e.text for e in r) for r in requests] == alone
        assert eng.running_count == 0
    finally:
        eng.close()


def test_seed_reproducible_whatever_else_runs(engine, tokenizer):
    sp = SamplingParams(max_tokens=20, temperature=1.0, seed=7)
    ids = prompt_ids(tokenizer, PROMPTS[0])
    alone = engine.generate(ids, sp)
    others = [
        engine.submit(prompt_ids(tokenizer, p), SamplingParams(max_tokens=20, temperature=1.0)) for p in PROMPTS[1:]
    ]
    assert engine.generate(ids, sp) == alone
    for r in others:
        list(r)
    assert engine.generate(ids, SamplingParams(max_tokens=20, temperature=1.0, seed=8)) != alone


def test_n_choices_share_prefill_and_differ_by_seed(engine, tokenizer):
    ids = prompt_ids(tokenizer, PROMPTS[1])
    greedy = engine.generate(ids, SamplingParams(max_tokens=15, temperature=0))[0]
    assert engine.generate(ids, SamplingParams(max_tokens=15, temperature=0, n=3)) == [greedy] * 3
    sampled = engine.generate(ids, SamplingParams(max_tokens=15, temperature=1.0, seed=1, n=3))
    assert len(set(sampled)) > 1
    assert sampled[1] == engine.generate(ids, SamplingParams(max_tokens=15, temperature=1.0, seed=2))[0]


def test_stop_string_across_tokens_is_never_emitted(engine, tokenizer):
    ids = prompt_ids(tokenizer, PROMPTS[0])
    full = engine.generate(ids, SamplingParams(max_tokens=40, temperature=0))[0]
    clean = [i for i in range(5, len(full) - 3) if "\ufffd" not in full[i : i + 3]]
    assert clean, f"need some decodable text to pick a stop string from: {full!r}"
    stop = full[clean[0] : clean[0] + 3]
    events = list(engine.submit(ids, SamplingParams(max_tokens=40, temperature=0, stop=[stop, "never seen"])))
    assert "".join(e.text for e in events) == full[: full.index(stop)]
    assert events[-1].finish_reason == "stop"
    assert all(stop not in e.text for e in events)


def test_text_stream_holds_partial_characters_and_stop_prefixes(tokenizer):
    ids = tokenizer.encode(UNSEEN_EMOJI + " the cat")
    stream = TextStream(tokenizer.decode, stop=[" cat"])
    deltas = [stream.add(i) for i in ids]
    assert all("\ufffd" not in d for d in deltas)
    assert deltas[0] == ""  # the first byte token of the emoji is not a character yet
    assert "".join(deltas) == UNSEEN_EMOJI + " the" and stream.stopped


def test_emoji_never_split(tokenizer):
    start = tokenizer.encode("the")[-1]
    _, chain = emoji_chain(tokenizer, after=start)
    eng = Engine(puppet_model(tokenizer, chain), tokenizer, EngineConfig(slots=2))
    try:
        events = list(eng.submit([tokenizer.bos_id, start], SamplingParams(max_tokens=12, temperature=0)))
    finally:
        eng.close()
    assert "".join(e.text for e in events) == UNSEEN_EMOJI * (12 // len(tokenizer.encode(UNSEEN_EMOJI)))
    assert all(e.text in ("", UNSEEN_EMOJI) for e in events)


def test_too_long_and_bad_params_refused(engine, tokenizer):
    ids = prompt_ids(tokenizer, PROMPTS[0])
    with pytest.raises(ContextLengthError, match="context window is 128"):
        engine.submit(ids, SamplingParams(max_tokens=128))
    with pytest.raises(ParamError, match="temperature") as e:
        engine.submit(ids, SamplingParams(temperature=3))
    assert e.value.param == "temperature"
    with pytest.raises(ParamError, match="outside the vocabulary"):
        engine.submit([10**6], SamplingParams())


def test_queue_full_and_cancel_frees_slot(tokenizer):
    start = tokenizer.encode("the")[-1]
    _, chain = emoji_chain(tokenizer, after=start)
    model = puppet_model(tokenizer, chain)
    eng = Engine(model, tokenizer, EngineConfig(slots=1, queue=1))
    try:
        long = SamplingParams(max_tokens=120, temperature=0)
        first = eng.submit([tokenizer.bos_id, start], long)
        second = eng.submit([tokenizer.bos_id, start], long)
        with pytest.raises(QueueFull):
            eng.submit([tokenizer.bos_id, start], long)
        next(iter(first))
        first.cancel()
        deadline = time.monotonic() + 5
        while first.completion_tokens and eng.waiting_count and time.monotonic() < deadline:
            time.sleep(0.001)
        assert eng.waiting_count == 0  # the cancelled request's slot went to the waiting one
        second.cancel()
        while eng.running_count and time.monotonic() < deadline:
            time.sleep(0.001)
        assert eng.running_count == 0
        assert first.completion_tokens < 120
    finally:
        eng.close()


def test_sampler_penalties_topk_topp_logprobs():
    logits = torch.tensor([3.0, 2.5, 0.0, -1.0])
    sampler = Sampler(SamplingParams(temperature=0, frequency_penalty=1.0, logprobs=2), 4, seed=0)
    first, lp = sampler(logits)
    assert first == 0 and sampler(logits)[0] == 1  # 3.0 - 1.0 < 2.5
    assert lp.logprob == pytest.approx(float(torch.log_softmax(logits, -1)[0]))
    assert [t for t, _ in lp.top] == [0, 1]
    for params in (SamplingParams(temperature=1.0, top_k=1), SamplingParams(temperature=1.0, top_p=0.01)):
        assert {Sampler(params, 4, seed=s)(logits)[0] for s in range(20)} == {0}


def test_kv_cache_gather_path_matches_view_path():
    torch.manual_seed(0)
    cache = KVCache(n_layer=1, slots=4, n_kv_head=2, max_len=8, head_dim=4)
    cache.k.normal_()
    cache.v.normal_()
    k, v = torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4)
    positions = torch.tensor([[3], [5]])
    results = []
    for slots in ([1, 2], [1, 3]):
        c = KVCache(1, 4, 2, 8, 4)
        c.k.copy_(cache.k)
        c.v.copy_(cache.v)
        c.k[:, 3], c.v[:, 3] = c.k[:, 2], c.v[:, 2]
        c.begin(slots, positions)
        results.append(c.update(0, k, v))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    keys, _, mask = results[0]
    assert keys.shape == (2, 2, 6, 4) and mask.tolist()[0][0][0] == [True] * 4 + [False] * 2
    assert torch.equal(keys[1, :, 5], k[1, :, 0])
