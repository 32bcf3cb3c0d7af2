"""The server's services: built once, typed, and the served model read from disk once and shared by all."""

from __future__ import annotations

import pytest
from test_engine_fixtures import model_workspace, tiny_model, tokenizer  # noqa: F401
from test_search_fixtures import make_posts, write_corpus

import roost.export
from roost.cli import main
from roost.server.app import create_app
from roost.server.state import ServeConfig
from roost.workspace import Workspace


@pytest.fixture(scope="module")
def full_ws(tmp_path_factory, tokenizer):  # noqa: F811
    """A model, a corpus and a semantic search index: every surface that can use the model has one to use."""
    root = model_workspace(tmp_path_factory.mktemp("services"), tokenizer, tiny_model(tokenizer))
    write_corpus(Workspace(root), make_posts(20))
    assert main(["index", "--workspace", str(root)]) == 0
    return root


def test_the_model_is_loaded_once_and_shared(full_ws, monkeypatch):
    loads = []
    real = roost.export.load_hf
    monkeypatch.setattr(roost.export, "load_hf", lambda *a, **k: loads.append(a) or real(*a, **k))
    app = create_app(ServeConfig(workspace=full_ws, search_rerank=5))  # the re-ranker wants the model too
    services = app.state.roost.services
    try:
        assert len(loads) == 1, f"workspace/model was read {len(loads)} times: {loads}"
        assert services.names() == ["ads", "openai", "search"]
        model = services.model
        assert services.openai.engine.model is model.model and services.openai.embedder is model.embedder
        search_model = services.search.index.model
        assert search_model.embed.__self__ is model.embedder  # semantic search embeds with the same weights
        assert search_model.rerank.model is model.model
        assert services.ads.embed.__self__ is model.embedder
        # the timeline reads the search service's doc store, whatever order the surfaces were listed in
        assert services.feed is not None and services.feed.docs is services.search.index.docs
    finally:
        services.close()


def test_surfaces_without_artifacts_are_none(tmp_path):
    app = create_app(ServeConfig(workspace=tmp_path / "empty"))
    services = app.state.roost.services
    try:
        assert services.model is None and services.openai is None and services.search is None
        assert services.feed is None
        assert app.state.roost.services.names() == ["ads"]  # an empty ads db still serves (no campaigns yet)
    finally:
        services.close()
