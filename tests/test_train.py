"""Training: loader, schedule, optimizer groups, config checks, checkpoints, and a short real run."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from test_train_fixtures import WORDS, make_token_workspace

from roost.cli import main
from roost.errors import UserError
from roost.model import GPT, GPTConfig
from roost.tokens import TokenShards
from roost.train import checkpoint
from roost.train.config import TrainConfig
from roost.train.data import IGNORE_INDEX, PackedLoader, sequence_starts
from roost.train.dist import DistInfo
from roost.train.optim import build_optimizers, derive_lrs, param_groups
from roost.train.pretrain import train
from roost.train.schedule import lr_factor

TINY = dict(depth=1, seq_len=32, max_seq_len=64, device_batch=4, warmup=2, eval_tokens=512)


@pytest.fixture(scope="module")
def token_ws(tmp_path_factory):
    return make_token_workspace(tmp_path_factory.mktemp("tok") / "workspace")


def test_sequence_starts_are_document_starts_without_overlap():
    doc_starts = np.array([0, 3, 10, 11, 12, 30, 31, 50])
    starts = sequence_starts(doc_starts, num_tokens=60, seq_len=8)
    assert starts.tolist() == [0, 10, 30, 50]  # each the first document start at or after the previous end
    assert set(starts) <= set(doc_starts)
    assert np.all(np.diff(starts) >= 8)


def _loader(shards: TokenShards, **kw) -> PackedLoader:
    args = dict(seq_len=32, batch_size=4, seed=7)
    args.update(kw)
    return PackedLoader(shards.shards, shards.doc_starts, **args)


def test_loader_sequences_start_with_bos_and_targets_shift(token_ws):
    shards = TokenShards(token_ws.tokens, "train")
    loader = _loader(shards)
    for _ in range(loader.batches_per_epoch + 2):  # into the second epoch
        x, y = loader.next_batch()
        assert x.shape == y.shape == (4, 32) and x.dtype == torch.long
        assert torch.all(x[:, 0] == shards.bos_id)
        real = y[:, :-1] != IGNORE_INDEX
        assert torch.equal(y[:, :-1][real], x[:, 1:][real])
    assert loader.state.epoch == 1


def test_loader_is_deterministic_and_resumes_from_its_state(token_ws):
    shards = TokenShards(token_ws.tokens, "train")
    a, b = _loader(shards), _loader(shards)
    n = a.batches_per_epoch + 3
    run_a = [a.next_batch()[0] for _ in range(n)]
    assert all(torch.equal(p, q) for p, q in zip(run_a, (b.next_batch()[0] for _ in range(n))))
    other_seed = _loader(shards, seed=8)
    assert not all(torch.equal(p, other_seed.next_batch()[0]) for p in run_a[:3])

    first = _loader(shards)
    for _ in range(a.batches_per_epoch - 1):  # stop just before the epoch ends
        first.next_batch()
    state = json.loads(json.dumps(first.state_dict()))  # it goes through meta.json
    resumed = _loader(shards)
    resumed.load_state_dict(state)
    for expected in run_a[a.batches_per_epoch - 1 :]:
        assert torch.equal(resumed.next_batch()[0], expected)

    with pytest.raises(ValueError, match="token shards or --seq-len changed"):
        _loader(shards, seq_len=16).load_state_dict(state)


def test_ranks_split_the_global_order_without_overlap(token_ws):
    shards = TokenShards(token_ws.tokens, "train")
    world = 3
    single = _loader(shards, batch_size=2)
    ranks = [_loader(shards, batch_size=2, rank=r, world_size=world) for r in range(world)]
    rounds = ranks[0].batches_per_epoch // world
    global_order = [single.next_batch()[0] for _ in range(rounds * world)]
    for k in range(rounds):
        for r, loader in enumerate(ranks):
            assert torch.equal(loader.next_batch()[0], global_order[k * world + r])
    seen = torch.cat(global_order)
    assert len({tuple(row.tolist()) for row in seen}) == len(seen)  # no sequence twice in an epoch


def test_loader_refuses_data_too_small_for_one_batch():
    shard = np.arange(20, dtype=np.uint16)
    with pytest.raises(ValueError, match="no full batch.*lower --seq-len"):
        PackedLoader([shard], [np.array([0, 10])], seq_len=8, batch_size=4)


def test_a_small_validation_split_shrinks_the_batch_instead_of_failing():
    shard = np.arange(40, dtype=np.uint16)
    loader = PackedLoader(
        [shard], [np.array([0, 10, 20, 30])], seq_len=8, batch_size=16, shuffle=False, shrink_batch=True
    )
    x, _ = loader.next_batch()
    assert loader.batch_size == 4 and x[:, 0].tolist() == [0, 10, 20, 30]


def test_schedule_shapes():
    kw = dict(warmup=10, cooldown=0.5, min_lr=0.1)
    assert lr_factor(0, 0.0, schedule="wsd", **kw) == pytest.approx(0.1)
    assert lr_factor(9, 0.09, schedule="wsd", **kw) == pytest.approx(1.0)
    assert lr_factor(40, 0.4, schedule="wsd", **kw) == 1.0  # stable
    assert lr_factor(75, 0.75, schedule="wsd", **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway down
    assert lr_factor(100, 1.0, schedule="wsd", **kw) == pytest.approx(0.1)
    assert lr_factor(50, 0.5, schedule="cosine", **kw) == pytest.approx(0.55)
    assert lr_factor(100, 1.0, schedule="cosine", **kw) == pytest.approx(0.1)
    cos = [lr_factor(s, s / 100, schedule="cosine", **kw) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(cos, cos[1:]))


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    model = GPT(GPTConfig.tiny(vocab_size=64))
    groups = param_groups(model)
    assert groups["embedding"] == [model.embed_tokens.weight] and groups["unembedding"] == [model.lm_head.weight]
    assert all(p.ndim == 2 for p in groups["matrix"]) and all(p.ndim == 1 for p in groups["norm"])
    assert sum(map(len, groups.values())) == len(list(model.parameters()))
    adamw, muon = build_optimizers(model, "muon", 64, torch.device("cpu"))
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    assert {id(p) for g in muon.param_groups for p in g["params"]} == {id(p) for p in groups["matrix"]}
    only = build_optimizers(model, "adamw", 64, torch.device("cpu"))
    assert len(only) == 1 and sum(len(g["params"]) for g in only[0].param_groups) == len(list(model.parameters()))
    # AdamW rates shrink with width as 1/sqrt(width); Muon's does not.
    assert derive_lrs(3072, "muon").embedding == pytest.approx(derive_lrs(768, "muon").embedding / 2)
    assert derive_lrs(3072, "muon").matrix == derive_lrs(768, "muon").matrix
    assert derive_lrs(768, "adamw", matrix_lr=0.5).matrix == 0.5


def test_small_batches_take_smaller_adamw_steps():
    """Adam's square-root rule from 65,536 tokens a step down to 2,048; Muon's rate is orthogonalised."""
    full, small = derive_lrs(256, "muon", batch_tokens=65_536), derive_lrs(256, "muon", batch_tokens=4_096)
    for group in ("embedding", "unembedding", "norm"):
        assert getattr(small, group) == pytest.approx(getattr(full, group) / 4)
    assert small.matrix == full.matrix
    assert derive_lrs(256, "muon", batch_tokens=16_384).embedding == pytest.approx(full.embedding / 2)
    smallest = derive_lrs(256, "muon", batch_tokens=2_048)
    assert smallest.embedding == pytest.approx(full.embedding / 32**0.5)
    assert derive_lrs(256, "muon", batch_tokens=128) == smallest  # below the smallest batch measured: its rates
    assert derive_lrs(256, "muon", batch_tokens=2**19) == full  # nanochat's own batch: nanochat's rates
    assert derive_lrs(256, "adamw", batch_tokens=4_096).matrix == derive_lrs(256, "adamw").matrix


def test_a_tied_table_learns_at_the_lm_heads_rate():
    """The tied table is the output layer too: at the embedding's rate its loss blows up (it did, to ~50)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=64, tie_embeddings=True))
    opts = build_optimizers(model, "muon", 64, torch.device("cpu"))
    table = next(g for g in opts[0].param_groups if any(p is model.embed_tokens.weight for p in g["params"]))
    assert table["lr"] == derive_lrs(64, "muon").unembedding
    x = torch.randint(0, 64, (8, 33))
    losses = []
    for _ in range(30):
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        for opt in opts:
            opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5 and max(losses) < losses[0] + 0.1


def test_weight_decay_reaches_the_block_matrices_only():
    model = GPT(GPTConfig.tiny(vocab_size=64))

    def decays(opts: list[torch.optim.Optimizer]) -> list[tuple[int, float]]:
        return [(len(g["params"]), g["weight_decay"]) for o in opts for g in o.param_groups]

    matrices = len(param_groups(model)["matrix"])
    # defaults: both optimizers decay the matrices by MATRIX_WEIGHT_DECAY, nothing else decays
    assert decays(build_optimizers(model, "muon", 64, torch.device("cpu")))[-1] == (matrices, 0.1)
    assert decays(build_optimizers(model, "adamw", 64, torch.device("cpu")))[-1] == (matrices, 0.1)
    adamw, muon = build_optimizers(model, "muon", 64, torch.device("cpu"), matrix_weight_decay=0.05)
    assert decays([muon]) == [(matrices, 0.05)] and all(wd == 0.0 for _, wd in decays([adamw]))
    assert decays(build_optimizers(model, "muon", 64, torch.device("cpu"), matrix_weight_decay=0.0))[-1] == (
        matrices,
        0.0,
    )
    assert decays(build_optimizers(model, "adamw", 64, torch.device("cpu"), matrix_weight_decay=0.0))[-1] == (
        matrices,
        0.0,
    )
    # a decaying Muon step shrinks a matrix whose gradient is zero (its update is then zero): decoupled decay
    w = param_groups(model)["matrix"][0]
    before = w.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    muon.step()
    assert torch.allclose(w, before * (1 - muon.param_groups[0]["lr"] * 0.05))
    with pytest.raises(UserError, match="--weight-decay must be in"):
        TrainConfig(weight_decay=1.5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--batch-tokens", "1000"],
            "--batch-tokens 1000 is not a multiple of .* = 128; use --batch-tokens 896 or 1024",
        ),
        (["--seq-len", "128"], "--seq-len 128 is above the model's context --max-seq-len 64"),
        (["--steps", "3", "--minutes", "1"], "at most one of --steps, --tokens, --minutes"),
        (["--optimizer", "sgd"], "--optimizer must be one of adamw, muon"),
        (["--dtype", "float16"], "--dtype must be one of auto, bfloat16, float32"),
        (["--depth", "0"], "--depth must be a positive number"),
        (["--depth", "200"], "--depth 200 .* needs about .* GiB .* use a smaller --depth"),
    ],
)
def test_bad_config_is_refused_with_what_to_change(token_ws, capsys, argv, message):
    base = [
        "train",
        "--workspace",
        str(token_ws.root),
        "--depth",
        "1",
        "--seq-len",
        "32",
        "--max-seq-len",
        "64",
        "--device-batch",
        "4",
        "--steps",
        "2",
    ]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("roost train: error:")
    assert __import__("re").search(message, err), err
    assert not token_ws.checkpoints.exists()


def test_missing_tokens_stage_names_the_command(tmp_path, capsys):
    assert main(["train", "--workspace", str(tmp_path / "empty")]) == 2
    assert "run `roost tokenizer" in capsys.readouterr().err


def test_metrics_log_on_resume_drops_what_came_after_the_checkpoint(tmp_path):
    from roost.train.metrics import MetricsLog, read_metrics

    lines = [
        {"step": 0, "val_loss": 5.0},
        {"step": 1, "loss": 4.0},
        {"step": 2, "loss": 3.0},
        {"step": 2, "val_loss": 3.5},
        {"step": 3, "loss": 2.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 4, "lo')
    log = MetricsLog(tmp_path, resume_step=2)
    log.log({"step": 2, "val_loss": 3.4})
    log.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [*lines[:3], {"step": 2, "val_loss": 3.4}]


def _model_and_opts():
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=64))
    opts = build_optimizers(model, "muon", 64, torch.device("cpu"))
    x = torch.randint(0, 64, (2, 16))
    model(x, x)[1].backward()
    for o in opts:
        o.step()
    return model, opts


def test_checkpoint_write_that_fails_midway_leaves_the_previous_one(tmp_path, monkeypatch):
    info = DistInfo(0, 0, 1, torch.device("cpu"))
    model, opts = _model_and_opts()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    first = checkpoint.save(tmp_path, 1, model, opts, {"note": "one"}, info, keep=2)

    def crash(folder, meta):
        assert any(folder.iterdir())  # the model shards are already written
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_write_meta", crash)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, 2, model, opts, {}, info, keep=2)
    assert checkpoint.latest_checkpoint(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001"]
    fresh = GPT(GPTConfig.tiny(vocab_size=64))
    checkpoint.load_model(first, fresh)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())


def test_keep_prunes_old_checkpoints_and_load_restores_optimizer(tmp_path):
    info = DistInfo(0, 0, 1, torch.device("cpu"))
    model, opts = _model_and_opts()
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, model, opts, {"step_note": step}, info, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step-000002", "step-000003"]
    assert (tmp_path / "latest").read_text().strip() == "step-000003"
    model2 = GPT(GPTConfig.tiny(vocab_size=64))
    opts2 = build_optimizers(model2, "muon", 64, torch.device("cpu"))
    meta = checkpoint.load(tmp_path / "step-000003", model2, opts2, info)
    assert meta["step"] == 3 and meta["step_note"] == 3
    for o, o2 in zip(opts, opts2):
        for p, p2 in zip(
            (p for g in o.param_groups for p in g["params"]), (p for g in o2.param_groups for p in g["params"])
        ):
            for key, value in o.state[p].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(o2.state[p2][key])), key


def test_loss_falls_and_the_run_writes_metrics_plot_and_model(token_ws, tmp_path, capsys):
    import shutil

    from roost.export import load_hf

    ws_root = tmp_path / "workspace"
    shutil.copytree(token_ws.root, ws_root)
    ws = type(token_ws)(ws_root)
    result = train(ws, TrainConfig(**TINY, steps=40, eval_every=20, ckpt_every=20, run="t"))
    assert "by heart" not in capsys.readouterr().out  # validation fell all the way
    records = [json.loads(line) for line in (ws.root / "runs/t/metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(val) == 3 and val[-1] < 0.5 * val[0] and val[0] > math.log(300) - 1  # starts near uniform
    assert result.val_bpb is not None and 0 < result.val_bpb < 8
    train_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_records] == list(range(1, 41))
    assert all({"lr", "lr_mult", "grad_norm", "tokens_per_s"} <= r.keys() for r in train_records)
    assert (ws.root / "runs/t/loss.png").stat().st_size > 1000
    assert result.checkpoint.name == "step-000040"
    served = load_hf(ws.model)
    trained = GPT(GPTConfig.from_dict(checkpoint.read_meta(result.checkpoint)["model_config"]))
    checkpoint.load_model(result.checkpoint, trained)
    assert all(torch.equal(served.state_dict()[k], v) for k, v in trained.state_dict().items())
    assert ws.read_manifest("model")["counts"]["steps"] == 40
    # the run's AdamW groups took the rates of its own step (4 x 32 tokens), not nanochat's full ones
    opts = build_optimizers(trained, "muon", trained.config.n_embd, torch.device("cpu"))
    checkpoint.load(result.checkpoint, trained, opts, DistInfo(0, 0, 1, torch.device("cpu")))
    step_rates = derive_lrs(trained.config.n_embd, "muon", batch_tokens=4 * 32)
    assert opts[0].param_groups[0]["base_lr"] == pytest.approx(step_rates.embedding)

    # a second run without --resume or --fresh would mix runs: refused; --resume may not change the model
    with pytest.raises(ValueError, match="pass --resume to continue"):
        train(ws, TrainConfig(**TINY, steps=2))
    assert main(["train", "--workspace", str(ws.root), "--resume", "--depth", "2", "--steps", "50"]) == 2
    assert "--resume cannot change the model or data order: --depth 2 (checkpoint has 1)" in capsys.readouterr().err


def test_a_run_that_learns_its_text_by_heart_says_so_once(tmp_path, capsys):
    """Posts of random word order: after the word frequencies, all that is left to learn is the posts themselves."""

    def shuffled(n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        return [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(n)]

    posts = {"train": shuffled(40, 0), "val": shuffled(40, 1)}
    ws = make_token_workspace(tmp_path / "workspace", vocab_size=300, posts=posts)
    train(ws, TrainConfig(**TINY, steps=160, eval_every=20, run="o"))
    records = [json.loads(line) for line in (ws.root / "runs/o/metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_loss"] for r in records if "val_loss" in r}
    best_step = min(val, key=val.get)
    assert val[160] > 1.1 * val[best_step]  # it did learn the posts by heart
    out = capsys.readouterr().out
    assert out.count("learning the training text by heart") == 1
    assert f"above its best ({val[best_step]:.4f} at step {best_step})" in out


def test_dtype_auto_picks_bf16_where_the_cpu_has_it_and_bf16_training_follows_fp32(token_ws, tmp_path):
    import shutil

    from roost.export import load_hf
    from roost.precision import compute_dtype

    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert compute_dtype("auto", cpu) == (torch.bfloat16 if native else torch.float32)
    assert compute_dtype("float32", cpu) == torch.float32 and compute_dtype("bfloat16", cpu) == torch.bfloat16
    weights = {}
    for dtype in ("float32", "bfloat16"):
        ws = type(token_ws)(tmp_path / dtype)
        shutil.copytree(token_ws.root, ws.root)
        train(ws, TrainConfig(**TINY, steps=4, eval_every=4, ckpt_every=4, run="t", dtype=dtype))
        weights[dtype] = load_hf(ws.model).state_dict()
    for name, w32 in weights["float32"].items():
        w16 = weights["bfloat16"][name]
        assert w16.dtype == torch.float32  # master weights stay fp32 under autocast
        assert (w16 - w32).norm() <= 0.05 * w32.norm(), name  # the same training, rounded differently
    assert any(not torch.equal(weights["bfloat16"][k], w) for k, w in weights["float32"].items())  # autocast ran
