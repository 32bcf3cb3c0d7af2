import pytest
import torch
import torch.nn.functional as F

from roost.model import GPT, GPTConfig, attend, describe


class DenseKVCache:
    """Reference cache for the protocol in roost/model.py: keeps every key and value, masks by position.

    Set ``positions`` [B, T] before each forward; a query attends to every
    cached key whose absolute position is not after its own.
    """

    def __init__(self):
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        self.key_pos: dict[int, torch.Tensor] = {}
        self.positions: torch.Tensor | None = None

    def update(self, layer_idx, k, v):
        if layer_idx in self.k:
            self.k[layer_idx] = torch.cat([self.k[layer_idx], k], dim=2)
            self.v[layer_idx] = torch.cat([self.v[layer_idx], v], dim=2)
            self.key_pos[layer_idx] = torch.cat([self.key_pos[layer_idx], self.positions], dim=1)
        else:
            self.k[layer_idx], self.v[layer_idx], self.key_pos[layer_idx] = k, v, self.positions
        mask = self.key_pos[layer_idx][:, None, None, :] <= self.positions[:, None, :, None]
        return self.k[layer_idx], self.v[layer_idx], mask


def tiny(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig.tiny(vocab_size=97, **kw)).eval()


def decode_with_cache(model, idx, prefill):
    """Logits for idx [B, T]: a prefill of ``prefill`` tokens, then one token at a time."""
    B, T = idx.shape
    cache, out = DenseKVCache(), []
    chunks = [(0, prefill)] + [(t, t + 1) for t in range(prefill, T)]
    for a, b in chunks:
        cache.positions = torch.arange(a, b).expand(B, -1)
        out.append(model(idx[:, a:b], kv_cache=cache, positions=cache.positions))
    return torch.cat(out, dim=1)


# --- config ---------------------------------------------------------------------------------------


def test_config_rejects_bad_shapes_with_clear_errors():
    with pytest.raises(ValueError, match="n_head=6 is not divisible by n_kv_head=4"):
        GPTConfig(n_head=6, n_kv_head=4, n_embd=384)
    with pytest.raises(ValueError, match="n_embd=100 is not divisible by n_head=3"):
        GPTConfig(n_head=3, n_kv_head=3, n_embd=100)
    with pytest.raises(ValueError, match="mlp must be one of"):
        GPTConfig(mlp="gelu")
    with pytest.raises(ValueError, match="n_layer must be a positive integer"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['n_heads'\]"):
        GPTConfig.from_dict({"n_heads": 4})
    with pytest.raises(ValueError, match="n_head=4 is not divisible by n_kv_head=3"):
        GPTConfig.from_depth(4, n_kv_head=3)


def test_from_depth_follows_one_dial():
    small = GPTConfig.from_depth(4, vocab_size=1000, max_seq_len=256)
    assert (small.n_layer, small.n_embd, small.head_dim, small.n_head, small.n_kv_head) == (4, 256, 64, 4, 4)
    assert small.intermediate_size % 64 == 0 and abs(small.intermediate_size - 256 * 8 / 3) <= 32
    assert (small.vocab_size, small.max_seq_len) == (1000, 256)
    big = GPTConfig.from_depth(20, n_kv_head=5)
    assert (big.n_embd, big.head_dim, big.n_head, big.n_kv_head) == (1280, 128, 10, 5)
    assert GPTConfig.from_depth(4, mlp="relu2").intermediate_size == 1024


def test_config_round_trips_through_dict():
    c = GPTConfig.tiny(tie_embeddings=True, qk_norm=True, rope_theta=50000.0)
    assert GPTConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("kw", [{}, {"tie_embeddings": True}, {"mlp": "relu2", "qk_norm": True}])
def test_param_count_matches_the_module(kw):
    model = tiny(**kw)
    assert model.num_params() == model.config.num_params()
    if kw.get("tie_embeddings"):
        assert model.lm_head.weight is model.embed_tokens.weight


def test_flops_per_token_is_6n_plus_attention():
    c = GPTConfig.from_depth(4, vocab_size=1000)
    matmul = c.num_params() - c.vocab_size * c.n_embd  # the embedding lookup is not a matmul
    assert c.flops_per_token(512) == 6 * matmul + 12 * 4 * 4 * 64 * 512
    assert GPT(GPTConfig.tiny()).flops_per_token(64) == GPTConfig.tiny().flops_per_token(64)
    text = describe(c)
    assert "4 layers" in text and f"{c.num_params() / 1e6:.2f}M parameters" in text


# --- init and forward -----------------------------------------------------------------------------


def test_init_is_deterministic_under_seed():
    a, b, c = tiny(), tiny(), GPT(GPTConfig.tiny(vocab_size=97))
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.embed_tokens.weight, c.embed_tokens.weight)
    assert set(a.state_dict()) == {n for n, _ in a.named_parameters(remove_duplicate=False)}  # no rope buffers


def test_meta_device_build_then_init():
    with torch.device("meta"):
        model = GPT(GPTConfig.tiny(vocab_size=97, tie_embeddings=True))
    model.to_empty(device="cpu")
    model.init_weights()
    assert model.lm_head.weight is model.embed_tokens.weight
    ref = tiny()
    assert torch.equal(model.rope_cos, ref.rope_cos) and torch.equal(model.rope_sin, ref.rope_sin)
    assert torch.isfinite(model(torch.randint(0, 97, (1, 8)))).all()


def test_forward_shapes_and_loss_ignores_masked_targets():
    model = tiny()
    idx = torch.randint(0, 97, (3, 16))
    logits = model(idx)
    assert logits.shape == (3, 16, 97)
    targets = idx.roll(-1, dims=1)
    targets[:, :5] = -100
    _, loss = model(idx, targets)
    expected = F.cross_entropy(logits[:, 5:].reshape(-1, 97), targets[:, 5:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    _, per_token = model(idx, targets, loss_reduction="none")
    assert per_token.shape == (3, 16) and (per_token[:, :5] == 0).all()
    torch.testing.assert_close(per_token[:, 5:].mean(), expected)


def test_forward_is_causal():
    model = tiny()
    idx = torch.randint(0, 97, (1, 12))
    changed = idx.clone()
    changed[0, 8] = (changed[0, 8] + 1) % 97
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_rope_depends_only_on_relative_position():
    model = tiny()
    idx = torch.randint(0, 97, (2, 10))
    shifted = torch.arange(10).expand(2, -1) + 37
    torch.testing.assert_close(model(idx, positions=shifted), model(idx), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(idx, positions=torch.arange(10).expand(2, -1)), model(idx))


def test_too_long_or_misshapen_input_is_refused():
    model = tiny()
    with pytest.raises(ValueError, match="longer than max_seq_len=128"):
        model(torch.zeros(1, 129, dtype=torch.long))
    with pytest.raises(ValueError, match=r"positions shape \(1, 4\) must match idx shape \(1, 5\)"):
        model(torch.zeros(1, 5, dtype=torch.long), positions=torch.arange(4)[None])


# --- attention and the KV cache -------------------------------------------------------------------


def test_gqa_paths_agree_with_expanded_heads():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    ke, ve = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    ref = F.scaled_dot_product_attention(q, ke, ve, is_causal=True)
    causal = torch.ones(6, 6, dtype=torch.bool).tril().expand(2, 1, 6, 6)
    torch.testing.assert_close(attend(q, k, v, None, is_causal=True), ref)
    torch.testing.assert_close(attend(q, k, v, causal, is_causal=False), ref)


@pytest.mark.parametrize(
    "kw", [{}, {"n_kv_head": 4}, {"n_kv_head": 1, "tie_embeddings": True}, {"mlp": "relu2", "qk_norm": True}]
)
def test_decoding_with_a_cache_matches_a_full_forward(kw):
    model = tiny(**kw)
    idx = torch.randint(0, 97, (2, 14))
    with torch.no_grad():
        full = model(idx)
        torch.testing.assert_close(decode_with_cache(model, idx, prefill=1), full, atol=1e-5, rtol=0)
        torch.testing.assert_close(decode_with_cache(model, idx, prefill=9), full, atol=1e-5, rtol=0)


def test_training_step_lowers_the_loss():
    model = tiny().train()
    idx = torch.randint(0, 97, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kw", [{}, {"tie_embeddings": True}, {"mlp": "relu2", "qk_norm": True}])
def test_decode_layout_changes_strides_not_values(kw):
    model = tiny(**kw)
    idx = torch.randint(0, 97, (2, 10))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(idx)
    assert not model.decode_ready and all(p.is_contiguous() for p in model.parameters())  # training layout
    with torch.no_grad():
        torch.testing.assert_close(decode_with_cache(model, idx, prefill=3), before, atol=1e-5, rtol=0)
    assert model.decode_ready  # decoding with a cache applied the layout
    assert model.decode_layout() is model.decode_layout()  # idempotent, returns the model
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.stride(0) == 1 for m in linears)  # column-major
    attn = model.layers[0].self_attn
    assert attn.q_proj.weight.data_ptr() == attn.qkv_weight.data_ptr()  # q, k, v are views into the fused weight
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    with torch.no_grad():
        torch.testing.assert_close(model(idx), before, atol=1e-5, rtol=0)
    # still trainable (grads reach the separate weights), and the fused weights follow the in-place updates
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    opt.step()
    assert not any(torch.equal(model.state_dict()[k], state[k]) for k in state)
    with torch.no_grad():
        fused = model(idx)
        with torch.enable_grad():
            separate = model(idx)
    torch.testing.assert_close(fused, separate, atol=1e-5, rtol=0)


def test_decode_layout_falls_back_when_weights_are_replaced():
    """``.to()`` makes new weight tensors; the stale fused copy must not be used."""
    model = tiny().decode_layout()
    idx = torch.randint(0, 97, (1, 6))
    model = model.to(torch.float64)
    with torch.no_grad():
        for block in model.layers:
            block.self_attn.q_proj.weight.add_(0.5)
        out = model(idx)
        with torch.enable_grad():
            ref = model(idx)
    torch.testing.assert_close(out, ref)
