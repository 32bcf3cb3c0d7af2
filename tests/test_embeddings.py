import numpy as np
import pytest
import torch
from test_export import save_tiny_tokenizer

from roost.embeddings import TextEmbedder
from roost.export import save_hf
from roost.model import GPT, GPTConfig

TEXTS = ["the cat sat on a mat", "big red dog", "café naïve 日本 👍", "", "#roost @alice a blue cat on a mat " * 3]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    save_tiny_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def embedder(tok_dir):
    from roost.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    torch.manual_seed(0)
    return TextEmbedder(GPT(GPTConfig.tiny(vocab_size=tok.vocab_size)), tok, max_len=32, batch_size=2)


def test_vectors_have_the_right_shape_and_unit_length(embedder):
    vecs = embedder.embed(TEXTS)
    assert vecs.shape == (len(TEXTS), embedder.dim) and embedder.dim == 64 and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 64)


def test_same_text_same_vector_whatever_it_is_batched_with(embedder):
    alone = np.stack([embedder.embed([t])[0] for t in TEXTS])
    together = embedder.embed(TEXTS)
    reordered = embedder.embed(TEXTS[::-1] + ["some other long text " * 5])[: len(TEXTS)][::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(reordered, alone, atol=1e-5)


def test_different_texts_differ(embedder):
    vecs = embedder.embed(TEXTS)
    sims = vecs @ vecs.T
    assert (sims[~np.eye(len(TEXTS), dtype=bool)] < 0.9999).all()


def test_pooling_matches_a_manual_mean_over_the_text_tokens(embedder):
    tok = embedder.tokenizer
    ids = [tok.bos_id, *tok.encode(TEXTS[0])]
    with torch.no_grad():
        hidden = embedder.model.forward_hidden(torch.tensor([ids]))[0, 1:].mean(0)
    expected = (hidden / hidden.norm()).numpy()
    np.testing.assert_allclose(embedder.embed([TEXTS[0]])[0], expected, atol=1e-5)


def test_long_texts_are_cut_to_max_len(embedder):
    long = "the cat sat on a mat " * 50
    tok = embedder.tokenizer
    cut = tok.decode(tok.encode(long)[:31])  # max_len 32 = BOS + 31 tokens
    np.testing.assert_allclose(embedder.embed([long]), embedder.embed([cut]), atol=1e-5)


def test_bad_arguments_are_refused(embedder):
    with pytest.raises(TypeError, match="list of strings"):
        embedder.embed("just one string")
    with pytest.raises(ValueError, match="max_len=4096 must be between 2 and the model's max_seq_len=128"):
        TextEmbedder(embedder.model, embedder.tokenizer, max_len=4096)


def test_from_dir_loads_the_served_model(tmp_path, tok_dir, embedder):
    save_hf(embedder.model, tmp_path / "model", tok_dir)
    loaded = TextEmbedder.from_dir(tmp_path / "model", max_len=32)
    assert loaded.dim == 64
    np.testing.assert_allclose(loaded.embed(TEXTS), embedder.embed(TEXTS), atol=1e-5)
