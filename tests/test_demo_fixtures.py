"""Shared by the demo, UI and eval tests: the demo pipeline at a size that builds in seconds."""

from __future__ import annotations

from pathlib import Path

from roost.demo import Demo, DemoConfig


def tiny_config(workspace: Path, **overrides) -> DemoConfig:
    """A 400-post network, a 1-layer model trained for 10 steps and fine-tuned for 5, in-process ingest."""
    kwargs = {
        "workspace": workspace,
        "users": 30,
        "posts": 400,
        "campaigns": 20,
        "vocab_size": 400,
        "val_fraction": 0.1,
        "depth": 1,
        "seq_len": 64,
        "device_batch": 4,
        "train_minutes": None,
        "train_steps": 10,
        "sft_minutes": None,
        "sft_steps": 5,
        "eval_every": 5,
        "eval_tokens": 1024,
        "retriever_steps": 20,
        "retriever_pairs": 500,
        "ingest_workers": 1,
    }
    kwargs.update(overrides)
    return DemoConfig(**kwargs)


def build_tiny(workspace: Path, **overrides) -> Demo:
    demo = Demo(tiny_config(workspace, **overrides), say=lambda _: None)
    demo.build()
    return demo
