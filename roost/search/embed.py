"""The embedding function search uses: the served model (plus its retrieval head) as a callable."""

from __future__ import annotations

from pathlib import Path

from roost.search.engine import EmbedFn


def load_embedder(model_dir: str | Path) -> EmbedFn:
    """``texts -> unit vectors`` from ``workspace/model`` (with ``embedding_head.safetensors`` if trained)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"no served model in {model_dir} (config.json missing); "
                                "run `roost train` and `roost export` first, or build with --no-vectors")
    from roost.embeddings import TextEmbedder

    return TextEmbedder.from_dir(model_dir).embed
