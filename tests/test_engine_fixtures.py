"""Shared by the engine and server tests: a tiny tokenizer and tiny random models (no downloads)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import uvicorn
from fastapi import FastAPI

from roost.export import save_hf
from roost.model import GPT, GPTConfig
from roost.server.app import ServeConfig, create_app
from roost.tokenizer import MIN_VOCAB_SIZE, RoostTokenizer, TokenizerConfig, train_bpe
from roost.workspace import Workspace

WORDS = "the cat dog sat ran on a mat log hat red blue big small café naïve über crème 日本 東京 👍 🎉".split()
UNSEEN_EMOJI = "🦜"  # not in the training text, so it stays several byte tokens


def sentences(n: int = 300) -> list[str]:
    g = torch.Generator().manual_seed(0)
    return [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (8,), generator=g).tolist()) + "." for _ in range(n)]


@pytest.fixture(scope="session")
def tokenizer() -> RoostTokenizer:
    return RoostTokenizer(train_bpe(sentences(), TokenizerConfig(vocab_size=MIN_VOCAB_SIZE + 40)))


def tiny_model(tokenizer: RoostTokenizer, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.tiny(vocab_size=tokenizer.vocab_size, **overrides)).eval()


def puppet_model(tokenizer: RoostTokenizer, chain: dict[int, int], **overrides) -> GPT:
    """A model whose greedy next token is ``chain[current token]``.

    Attention and MLP outputs are zeroed, so the last hidden state is the
    normalized embedding of the current token, and each lm_head row points at
    the embeddings of the tokens that lead to it.
    """
    model = tiny_model(tokenizer, **overrides)
    with torch.no_grad():
        for block in model.layers:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for a, b in chain.items():
            e = model.embed_tokens.weight[a]
            model.lm_head.weight[b] += 10 * e / e.norm()
    return model


def emoji_chain(tokenizer: RoostTokenizer, after: int) -> tuple[list[int], dict[int, int]]:
    """Byte tokens of UNSEEN_EMOJI, and a chain that writes it over and over once ``after`` is seen."""
    ids = tokenizer.encode(UNSEEN_EMOJI)
    assert len(ids) >= 2, "the test emoji must span several tokens"
    chain = {after: ids[0], **{a: b for a, b in zip(ids, ids[1:])}, ids[-1]: ids[0]}
    return ids, chain


def model_workspace(root: Path, tokenizer: RoostTokenizer, model: GPT) -> Path:
    """A workspace whose model/ folder holds ``model`` and ``tokenizer`` in HF format, as `roost serve` reads it."""
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.hf.save(str(tok_dir / "tokenizer.json"))
    ws = Workspace(root / "workspace")
    save_hf(model, ws.model, tok_dir)
    return ws.root


@contextlib.contextmanager
def live_server(workspace: Path, **config) -> Iterator[tuple[str, FastAPI]]:
    """A real uvicorn server for ``workspace`` on a free loopback port, in a thread; yields (base URL, app)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(ServeConfig(workspace=workspace, port=sock.getsockname()[1], **config))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
