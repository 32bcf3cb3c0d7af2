"""Hugging Face format: save a GPT as a ``LlamaForCausalLM`` folder, and load one back.

roost's module names mirror Llama's, so the weights map one to one:
``embed_tokens.weight`` -> ``model.embed_tokens.weight``, ``lm_head.weight``
stays, everything else gains the ``model.`` prefix. A folder written here loads
offline with ``transformers.AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained``, and is what ``workspace/model/`` holds: the
served model every later stage reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from roost.errors import UserError
from roost.model import GPT, GPTConfig
from roost.workspace import atomic_dir, atomic_write_json

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # sharded checkpoints from the Hub
# what import copies as it is, besides the weights and config
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_exportable(config: GPTConfig) -> None:
    """Refuse, with the reason, a config that LlamaForCausalLM cannot represent."""
    if config.mlp != "swiglu":
        raise UserError(f"cannot export to Hugging Face Llama: mlp={config.mlp!r} (Llama has only a SwiGLU MLP)")
    if config.qk_norm:
        raise UserError("cannot export to Hugging Face Llama: qk_norm=True (Llama has no QK-norm)")


def hf_config(
    config: GPTConfig,
    *,
    dtype: torch.dtype = torch.float32,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> dict:
    """The ``config.json`` of a LlamaForCausalLM with exactly this GPT's shape.

    ``rope_theta`` is written both flat (transformers 4.x) and in
    ``rope_parameters`` (5.x), and the dtype as ``torch_dtype`` and ``dtype``,
    so either major version reads it. ``LlamaConfig(**hf_config(c))`` builds
    the same-shaped HF model (the training benchmark compares against it).
    """
    check_exportable(config)
    dtype_name = {d: name for name, d in DTYPES.items()}.get(dtype)
    if dtype_name is None:
        raise UserError(f"cannot export weights of dtype {dtype}; supported: {sorted(DTYPES)}")
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
        "torch_dtype": dtype_name,
        "dtype": dtype_name,
    }


def _refuse(source: Path, field: str, value, why: str) -> UserError:
    return UserError(f"{source / CONFIG}: unsupported {field}={value!r}: {why}")


def config_from_hf(hf: dict, source: Path = Path(".")) -> GPTConfig:
    """A GPTConfig from a Llama ``config.json``; any feature roost lacks is refused by name."""
    model_type = hf.get("model_type")
    if model_type != "llama":
        raise _refuse(source, "model_type", model_type, "roost loads Llama-shaped models only (model_type 'llama')")
    for field, supported in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False)):
        if hf.get(field, supported) != supported:
            raise _refuse(source, field, hf[field], f"roost supports only {field}={supported!r}")
    rope = hf.get("rope_parameters") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise _refuse(source, "rope_parameters.rope_type", rope_type, "roost implements plain RoPE only")
    if hf.get("rope_scaling"):
        raise _refuse(source, "rope_scaling", hf["rope_scaling"], "roost implements plain RoPE only")
    try:
        n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
        head_dim = hf.get("head_dim") or n_embd // n_head
        if head_dim * n_head != n_embd:
            raise _refuse(source, "head_dim", head_dim, "roost needs head_dim * num_attention_heads == hidden_size")
        return GPTConfig(
            vocab_size=hf["vocab_size"],
            n_layer=hf["num_hidden_layers"],
            n_head=n_head,
            n_kv_head=hf.get("num_key_value_heads") or n_head,
            n_embd=n_embd,
            intermediate_size=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings", 2048),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        )
    except KeyError as e:
        raise UserError(f"{source / CONFIG}: missing required field {e.args[0]!r}") from None


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face Llama names (a tied lm_head is left out: HF re-ties it)."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            if not model.config.tie_embeddings:
                out[name] = tensor.detach().contiguous().cpu()
        else:
            out[f"model.{name}"] = tensor.detach().contiguous().cpu()
    return out


def write_model_files(model: GPT, folder: Path, token_ids: dict[str, int | None]) -> None:
    """``config.json`` and ``model.safetensors`` into ``folder`` (not atomic: callers write into an atomic_dir)."""
    dtype = next(model.parameters()).dtype
    config = hf_config(model.config, dtype=dtype, **token_ids)  # refuses non-Llama configs before writing
    save_file(hf_state_dict(model), str(folder / WEIGHTS), metadata={"format": "pt"})
    atomic_write_json(folder / CONFIG, config)


def write_roost_tokenizer(tokenizer_dir: Path, folder: Path, model_max_length: int) -> dict[str, int | None]:
    """HF tokenizer files for a roost tokenizer, and generation_config.json; returns config.json's token ids.

    Generation stops at ``<|eos|>`` or at ``<|end|>`` (the end of a chat turn),
    so ``model.generate`` in transformers behaves like roost's engine, and
    ``suppress_tokens`` bans ingest's placeholders there as the engine does.
    """
    from roost.tokenizer import hf_tokenizer_files, load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    hf_tokenizer_files(tokenizer_dir, folder, model_max_length=model_max_length)
    ids = {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id}
    atomic_write_json(
        folder / "generation_config.json",
        {**ids, "eos_token_id": [tok.eos_id, tok.end_id], "suppress_tokens": tok.placeholder_ids},
    )
    return ids


def save_hf(
    model: GPT, out_dir: str | Path, tokenizer_dir: str | Path | None = None, *, manifest: dict | None = None
) -> Path:
    """Write ``out_dir`` as a Hugging Face Llama folder, atomically (old folder or new, never half).

    ``tokenizer_dir`` is a roost tokenizer folder (``workspace/tokenizer``);
    its special tokens give config.json's bos/eos/pad ids. ``manifest``, if
    given, is written as ``manifest.json`` (``Workspace.manifest(...)``).
    """
    check_exportable(model.config)
    with atomic_dir(out_dir) as tmp:
        token_ids = dict.fromkeys(("bos_token_id", "eos_token_id", "pad_token_id"))
        if tokenizer_dir is not None:
            token_ids = write_roost_tokenizer(Path(tokenizer_dir), tmp, model.config.max_seq_len)
        write_model_files(model, tmp, token_ids)
        if manifest is not None:
            atomic_write_json(tmp / "manifest.json", manifest)
    return Path(out_dir)


def copy_side_files(src: Path, dst: Path) -> None:
    """Copy an HF folder's tokenizer and generation files as they are."""
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def read_hf_config(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder: no {CONFIG}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def _weight_files(folder: Path) -> list[Path]:
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if (folder / WEIGHTS_INDEX).is_file():
        index = json.loads((folder / WEIGHTS_INDEX).read_text())
        return [folder / name for name in sorted(set(index["weight_map"].values()))]
    raise FileNotFoundError(f"{folder}: no {WEIGHTS} (or {WEIGHTS_INDEX}); roost reads safetensors weights only")


def load_hf(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> GPT:
    """A GPT from a Hugging Face Llama folder (config.json + safetensors), in eval mode."""
    folder = Path(folder)
    config = config_from_hf(read_hf_config(folder), folder)
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            for key in f.keys():
                name = key.removeprefix("model.")
                if "rotary_emb" not in name:  # older transformers saved inv_freq buffers
                    state[name] = f.get_tensor(key).to(dtype)
    if config.tie_embeddings:  # HF files of tied models may leave lm_head out
        state.setdefault("lm_head.weight", state.get("embed_tokens.weight"))
    with torch.device("meta"):  # no random init of weights about to be overwritten
        model = GPT(config)
    model.to_empty(device=device)
    model.tie_weights()
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{folder}: weights do not match a Llama of this config.json: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, tensor in expected.items():
        if tensor.shape != state[name].shape:
            raise UserError(
                f"{folder}: weight {name} has shape {tuple(state[name].shape)}, "
                f"config.json implies {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    model.reset_rope_tables()
    return model.to(dtype).eval()


def import_hf(src: str | Path, out_dir: str | Path, *, manifest: dict | None = None) -> GPT:
    """Copy a Hugging Face Llama folder into ``out_dir`` (the served model), checked and normalized.

    The weights are loaded (which refuses unsupported models by name) and
    written back in roost's layout; the tokenizer files are copied as they are,
    after checking roost's tokenizer can serve them (its special tokens).
    """
    from roost.tokenizer import load_tokenizer

    src = Path(src)
    hf = read_hf_config(src)
    dtype = DTYPES.get(hf.get("torch_dtype") or hf.get("dtype"), torch.float32)
    model = load_hf(src, dtype=dtype)
    try:
        tok = load_tokenizer(src)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"{src}: roost cannot serve this model's tokenizer: {e}") from None
    if tok.vocab_size > model.config.vocab_size:
        raise UserError(
            f"{src}: tokenizer has {tok.vocab_size} tokens, more than the model's vocab_size {model.config.vocab_size}"
        )
    token_ids = {k: hf.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    with atomic_dir(out_dir) as tmp:
        write_model_files(model, tmp, token_ids)
        copy_side_files(src, tmp)
        if manifest is not None:
            atomic_write_json(tmp / "manifest.json", manifest)
    return model
