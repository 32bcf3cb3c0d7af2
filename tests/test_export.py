import json
from pathlib import Path

import pytest
import torch

from roost.export import hf_config, load_hf, save_hf
from roost.model import GPT, GPTConfig
from roost.tokenizer import MIN_VOCAB_SIZE, RoostTokenizer, TokenizerConfig, load_tokenizer, train_bpe

WORDS = "the cat dog sat on a mat big red blue café naïve 日本 👍 #roost @alice".split()


def save_tiny_tokenizer(folder: Path) -> RoostTokenizer:
    """A BPE tokenizer trained on a few hundred made-up sentences, saved as ``folder/tokenizer.json``."""
    g = torch.Generator().manual_seed(0)
    texts = [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (8,), generator=g).tolist()) for _ in range(300)]
    folder.mkdir(parents=True, exist_ok=True)
    train_bpe(texts, TokenizerConfig(vocab_size=MIN_VOCAB_SIZE + 40)).save(str(folder / "tokenizer.json"))
    return load_tokenizer(folder)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    save_tiny_tokenizer(folder)
    return folder


def tiny_model(vocab_size: int, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.tiny(vocab_size=vocab_size, **kw)).eval()


def hf_logits(folder: Path, idx: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(idx).logits


@pytest.mark.parametrize(
    "kw", [{}, {"tie_embeddings": True}, {"n_kv_head": 4, "rope_theta": 50000.0, "norm_eps": 1e-6}, {"n_kv_head": 1}]
)
def test_transformers_loads_the_export_with_the_same_logits(tmp_path, tok_dir, kw):
    vocab = load_tokenizer(tok_dir).vocab_size
    model = tiny_model(vocab, **kw)
    save_hf(model, tmp_path / "hf", tok_dir)
    idx = torch.randint(0, vocab, (2, 20))
    with torch.no_grad():
        ours = model(idx)
    assert (hf_logits(tmp_path / "hf", idx) - ours).abs().max() < 1e-4
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert config["tie_word_embeddings"] == model.config.tie_embeddings
    assert config["num_key_value_heads"] == model.config.n_kv_head


def test_exported_tokenizer_and_special_ids_work_in_transformers(tmp_path, tok_dir):
    from transformers import AutoTokenizer, GenerationConfig

    tok = load_tokenizer(tok_dir)
    save_hf(tiny_model(tok.vocab_size), tmp_path / "hf", tok_dir)
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True)
    text = "the café sat on 日本 👍 #roost"
    assert hf_tok.encode(text, add_special_tokens=False) == tok.encode(text)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    ids = (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"])
    assert ids == (tok.bos_id, tok.eos_id, tok.pad_id)
    gen = GenerationConfig.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert gen.eos_token_id == [tok.eos_id, tok.end_id]


@pytest.mark.parametrize("kw", [{}, {"tie_embeddings": True}])
def test_load_hf_round_trips_exactly(tmp_path, kw):
    model = tiny_model(97, **kw)
    save_hf(model, tmp_path / "hf")
    loaded = load_hf(tmp_path / "hf")
    assert loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    if model.config.tie_embeddings:
        assert loaded.lm_head.weight is loaded.embed_tokens.weight
    idx = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


def test_load_hf_reads_a_folder_made_by_transformers(tmp_path):
    """A Llama written by transformers itself, sharded, loads with the same logits."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = GPTConfig.tiny(vocab_size=97, rope_theta=20000.0)
    torch.manual_seed(1)
    hf = LlamaForCausalLM(LlamaConfig(**hf_config(config))).eval()
    hf.save_pretrained(tmp_path / "hf", max_shard_size="40KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    ours = load_hf(tmp_path / "hf")
    assert ours.config == config
    idx = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        assert (ours(idx) - hf(idx).logits).abs().max() < 1e-4


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"mlp": "relu2"}, "mlp='relu2' \\(Llama has only a SwiGLU MLP\\)"),
        ({"qk_norm": True}, "qk_norm=True \\(Llama has no QK-norm\\)"),
    ],
)
def test_non_llama_models_refuse_export(tmp_path, kw, message):
    out = tmp_path / "hf"
    with pytest.raises(ValueError, match="cannot export to Hugging Face Llama: " + message):
        save_hf(tiny_model(97, **kw), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_previous_folder(tmp_path):
    good = tiny_model(97)
    save_hf(good, tmp_path / "hf")
    before = (tmp_path / "hf" / "model.safetensors").read_bytes()
    with pytest.raises(FileNotFoundError, match="no tokenizer at"):
        save_hf(tiny_model(97, seed=1), tmp_path / "hf", tmp_path / "no-such-tokenizer")
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_act": "gelu"}, "unsupported hidden_act='gelu'"),
        ({"attention_bias": True}, "unsupported attention_bias=True"),
        ({"model_type": "mistral"}, "unsupported model_type='mistral'"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "unsupported rope_scaling="),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "unsupported rope_parameters.rope_type='yarn'"),
        ({"num_key_value_heads": 3}, "n_head=4 is not divisible by n_kv_head=3"),
        (
            {"intermediate_size": 96},
            r"weight layers.0.mlp.gate_proj.weight has shape \(128, 64\), config.json implies \(96, 64\)",
        ),
    ],
)
def test_load_hf_refuses_unsupported_folders_by_name(tmp_path, change, message):
    save_hf(tiny_model(97), tmp_path / "hf")
    path = tmp_path / "hf" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=message):
        load_hf(tmp_path / "hf")


def test_load_hf_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder: no config.json"):
        load_hf(tmp_path)
    save_hf(tiny_model(97), tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_hf(tmp_path / "hf")


# --- the commands ---------------------------------------------------------------------------------


def test_roost_import_makes_the_served_model(tmp_path, tok_dir, ws, capsys):
    from roost.cli import main

    tok = load_tokenizer(tok_dir)
    model = tiny_model(tok.vocab_size, tie_embeddings=True)
    save_hf(model, tmp_path / "hf", tok_dir)
    assert main(["import", "--from", str(tmp_path / "hf"), "--workspace", str(ws.root)]) == 0
    assert "import: GPT: 2 layers" in capsys.readouterr().out
    loaded = load_hf(ws.model)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    manifest = ws.require("model")
    assert manifest["counts"]["params"] == model.num_params()
    assert manifest["model_config"] == model.config.to_dict()
    assert load_tokenizer(ws.model).encode("big red cat") == tok.encode("big red cat")


def test_roost_import_refuses_a_folder_roost_cannot_serve(tmp_path, ws, capsys):
    from roost.cli import main

    save_hf(tiny_model(97), tmp_path / "hf")  # no tokenizer
    assert main(["import", "--from", str(tmp_path / "hf"), "--workspace", str(ws.root)]) == 2
    assert "no tokenizer at" in capsys.readouterr().err
    assert not ws.model.exists()
    assert main(["import", "--from", str(tmp_path / "nowhere"), "--workspace", str(ws.root)]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_roost_export_writes_the_latest_checkpoint(tmp_path, tok_dir, ws, capsys):
    import shutil

    from roost.cli import main
    from roost.train import checkpoint
    from roost.train.dist import DistInfo

    assert main(["export", "--out", str(tmp_path / "out"), "--workspace", str(ws.root)]) == 2
    assert "no complete checkpoint in" in capsys.readouterr().err

    shutil.copytree(tok_dir, ws.tokenizer)
    vocab = load_tokenizer(tok_dir).vocab_size
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    for step, seed in ((1, 0), (2, 1)):
        model = tiny_model(vocab, seed=seed)
        opt = torch.optim.AdamW(model.parameters())
        checkpoint.save(ws.checkpoints, step, model, [opt], {"model_config": model.config.to_dict()}, info, keep=2)
    assert main(["export", "--format", "hf", "--out", str(tmp_path / "out"), "--workspace", str(ws.root)]) == 0
    idx = torch.randint(0, vocab, (1, 10))
    with torch.no_grad():
        assert (hf_logits(tmp_path / "out", idx) - model(idx)).abs().max() < 1e-4  # the latest: step 2
    assert (tmp_path / "out" / "tokenizer.json").exists()
    first = checkpoint.step_dir(ws.checkpoints, 1)
    assert main(["export", "--out", str(tmp_path / "one"), "--checkpoint", str(first), "-w", str(ws.root)]) == 0
    assert torch.equal(load_hf(tmp_path / "one").embed_tokens.weight, tiny_model(vocab, seed=0).embed_tokens.weight)
