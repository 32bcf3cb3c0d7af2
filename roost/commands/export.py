"""``roost export`` (a checkpoint to a Hugging Face folder) and ``roost import`` (such a folder into the workspace)."""

from __future__ import annotations

import argparse
from pathlib import Path

from roost.cli import UserError, add_workspace_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a trained model as a Hugging Face Llama folder",
        description=(
            "Write the model of a training checkpoint (default: the latest in workspace/checkpoints/) as a "
            "Hugging Face LlamaForCausalLM folder: config.json, model.safetensors and the tokenizer files, "
            "loadable offline with transformers.AutoModelForCausalLM.from_pretrained(DIR)."
        ),
    )
    p.add_argument("--format", choices=["hf"], default="hf", help="output format (default: hf)")
    p.add_argument("--out", required=True, type=Path, help="folder to write (replaced atomically if it exists)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="a checkpoint folder (checkpoints/step-NNNNNN) or a checkpoints folder to take the latest "
        "of (default: the workspace's latest checkpoint)",
    )
    add_workspace_arg(p)
    p.set_defaults(func=run_export)

    p = subparsers.add_parser(
        "import",
        help="make a Hugging Face Llama folder the workspace's served model",
        description=(
            "Read a Hugging Face Llama folder (config.json, safetensors weights, tokenizer files with roost's "
            "special tokens), check that roost supports it, and write it as workspace/model/, the model that "
            "`roost serve`, search and ads use."
        ),
    )
    p.add_argument("--from", dest="source", required=True, type=Path, help="the Hugging Face model folder")
    add_workspace_arg(p)
    p.set_defaults(func=run_import)


def _checkpoint_folder(ws, given: Path | None) -> Path:
    from roost.train import checkpoint

    root = given if given is not None else ws.checkpoints
    if given is not None and (given / checkpoint.META).is_file():
        return given
    found = checkpoint.latest_checkpoint(root)
    if found is None:
        hint = "" if given is not None else "; run `roost train` first"
        raise UserError(f"no complete checkpoint in {root}{hint}")
    return found


def run_export(args: argparse.Namespace) -> int:
    from roost.export import save_hf
    from roost.model import describe
    from roost.train.checkpoint import read_model
    from roost.workspace import Workspace, file_hash

    ws = Workspace(args.workspace)
    ckpt = _checkpoint_folder(ws, args.checkpoint)
    model, meta = read_model(ckpt)
    tokenizer = ws.tokenizer if (ws.tokenizer / "tokenizer.json").is_file() else None
    inputs = {"checkpoint": file_hash(ckpt / "meta.json")}
    if tokenizer is not None:
        inputs["tokenizer"] = file_hash(tokenizer / "tokenizer.json")
    manifest = ws.manifest(
        "model",
        inputs,
        {"params": model.num_params(), "steps": meta.get("step")},
        source=f"roost export {ckpt}",
        model_config=model.config.to_dict(),
    )
    save_hf(model, args.out, tokenizer, manifest=manifest)
    print(f"export: {describe(model.config)}")
    print(f"export: {ckpt} -> {args.out}" + ("" if tokenizer else f" (no tokenizer: none in {ws.tokenizer})"))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from roost.export import config_from_hf, import_hf, read_hf_config
    from roost.model import describe
    from roost.workspace import Workspace, file_hash

    ws = Workspace(args.workspace)
    if not args.source.is_dir():
        raise UserError(f"--from {args.source}: no such folder")
    if args.source.resolve() == ws.model.resolve():
        raise UserError(f"--from {args.source} is the workspace's model folder already")
    config = config_from_hf(read_hf_config(args.source), args.source)
    manifest = ws.manifest(
        "model",
        {"source": file_hash(args.source)},
        {"params": config.num_params()},
        source=f"roost import {args.source}",
        model_config=config.to_dict(),
    )
    import_hf(args.source, ws.model, manifest=manifest)
    print(f"import: {describe(config)}")
    print(f"import: {args.source} -> {ws.model}")
    return 0
