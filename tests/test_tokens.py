"""Token shards: BOS per document, a stable disjoint train/val split, counts, manifest, reader."""

import random

import numpy as np
import pytest
from test_tokenizer import make_posts, write_corpus

from roost.cli import main
from roost.tokenizer import TokenizerConfig, ValSplit, load_tokenizer, train_tokenizer_stage
from roost.tokens import TokensConfig, TokenShards, token_dtype, tokenize_corpus
from roost.workspace import StageMissing, Workspace

N_POSTS = 400


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A workspace where `roost tokenizer` ran end to end on a tiny corpus."""
    ws = Workspace(tmp_path_factory.mktemp("tokens") / "workspace")
    texts = make_posts(N_POSTS, seed=1)
    texts[7] = ""  # an empty post is still a document: just its BOS
    ids = write_corpus(ws, texts, shards=3)
    argv = ["tokenizer", "--vocab-size", "350", "--val-fraction", "0.1", "--workspace", str(ws.root)]
    assert main(argv) == 0
    return ws, dict(zip(ids, texts))


def documents(shards: TokenShards) -> list[np.ndarray]:
    docs = []
    for shard, starts in zip(shards.shards, shards.doc_starts):
        ends = [*starts[1:], len(shard)]
        docs += [np.asarray(shard[a:b]) for a, b in zip(starts, ends)]
    return docs


def test_every_document_starts_with_bos_and_holds_its_post(built):
    ws, posts = built
    tok = load_tokenizer(ws.tokenizer)
    split = ValSplit(ws.read_manifest("tokenizer")["val_threshold"])
    for name, want_val in (("train", False), ("val", True)):
        shards = TokenShards(ws.tokens, name)
        for shard, starts in zip(shards.shards, shards.doc_starts):
            assert starts.dtype == np.int64 and starts[0] == 0 and np.all(np.diff(starts) > 0)
            assert np.all(shard[starts] == tok.bos_id)
            assert np.count_nonzero(shard == tok.bos_id) == len(starts)  # no BOS anywhere else
        expected = [t for i, t in posts.items() if bool(split.is_val([i])[0]) == want_val]  # corpus order
        assert [tok.decode(d[1:].tolist()) for d in documents(shards)] == expected
        assert shards.num_tokens == sum(1 + len(tok.encode(t)) for t in expected)


def test_split_is_disjoint_covers_corpus_and_nonempty(built):
    ws, posts = built
    m = ws.read_manifest("tokens")
    c = m["counts"]
    assert c["train_docs"] + c["val_docs"] == N_POSTS
    assert 0 < c["val_docs"] < N_POSTS * 0.25  # about 10% held out
    assert c["val_docs"] == ws.read_manifest("tokenizer")["counts"]["val_posts"]
    train, val = TokenShards(ws.tokens, "train"), TokenShards(ws.tokens, "val")
    assert (train.num_tokens, val.num_tokens) == (c["train_tokens"], c["val_tokens"])
    assert (train.num_docs, val.num_docs) == (c["train_docs"], c["val_docs"])


def test_split_is_stable_across_runs_and_shard_layouts(tmp_path):
    ids = [f"id-{i}" for i in range(300)]
    texts = make_posts(300, seed=2)
    held_out = []
    for k, order in enumerate([list(range(300)), random.Random(3).sample(range(300), 300)]):
        ws = Workspace(tmp_path / f"w{k}")
        write_corpus(ws, [texts[i] for i in order], [ids[i] for i in order], shards=k + 1)
        split, n, n_val = ValSplit.from_corpus(ws.corpus, 0.1)
        held_out.append({i for i in ids if split.is_val([i])[0]})
        assert len(held_out[-1]) == n_val and n == 300
    assert held_out[0] == held_out[1] and 0 < len(held_out[0]) < 300


def test_tiny_corpus_still_holds_out_one_post(ws):
    write_corpus(ws, ["one post", "two post", "three"], shards=1)
    split, n, n_val = ValSplit.from_corpus(ws.corpus, 0.0)
    assert (n, n_val) == (3, 1)
    assert int(split.is_val(["post-0", "post-1", "post-2"]).sum()) == 1


def test_manifest_records_inputs_and_rerun_is_skipped_or_identical(built):
    ws, _ = built
    m = ws.read_manifest("tokens")
    assert m["inputs"] == {"corpus": ws.stage_hash("corpus"), "tokenizer": ws.stage_hash("tokenizer")}
    assert m["dtype"] == "uint16" and m["vocab_size"] == 350 and m["bos_id"] == 0
    assert m["shards"] == {"train": ["train-00000"], "val": ["val-00000"]}
    assert tokenize_corpus(ws) == m  # up to date: skipped
    before = (ws.tokens / "train-00000.bin").read_bytes()
    again = tokenize_corpus(ws, force=True)
    assert (ws.tokens / "train-00000.bin").read_bytes() == before
    assert again["counts"] == m["counts"]


def test_small_shards_roll_over_without_splitting_documents(tmp_path):
    ws = Workspace(tmp_path / "w")
    texts = make_posts(200, seed=4)
    write_corpus(ws, texts)
    train_tokenizer_stage(ws, TokenizerConfig(vocab_size=300, val_fraction=0.1))
    m = tokenize_corpus(ws, TokensConfig(shard_tokens=300, batch_size=16))
    train = TokenShards(ws.tokens, "train")
    assert len(train.shards) == len(m["shards"]["train"]) > 3
    assert all(len(s) <= 300 for s in train.shards)
    tok = load_tokenizer(ws.tokenizer)
    assert all(s[0] == tok.bos_id for s in train.shards)
    assert sum(map(len, documents(train))) == train.num_tokens == m["counts"]["train_tokens"]
    assert train.num_docs == m["counts"]["train_docs"]


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(8192) == np.uint16 and token_dtype(2**16) == np.uint16
    assert token_dtype(2**16 + 1) == np.uint32


def test_reader_errors_are_clear(built, tmp_path):
    ws, _ = built
    with pytest.raises(StageMissing, match="roost tokenizer"):
        TokenShards(tmp_path / "nothing", "train")
    with pytest.raises(ValueError, match="split must be one of"):
        TokenShards(ws.tokens, "test")
    copy = tmp_path / "tokens"
    copy.mkdir()
    for f in ws.tokens.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    with open(copy / "val-00000.bin", "r+b") as fh:
        fh.truncate(10)
    with pytest.raises(ValueError, match="damaged"):
        TokenShards(copy, "val")


def test_tokens_need_a_tokenizer(ws):
    write_corpus(ws, make_posts(10))
    with pytest.raises(StageMissing, match="roost tokenizer"):
        tokenize_corpus(ws)


def test_tokens_refuse_a_tokenizer_from_another_corpus(tmp_path):
    ws = Workspace(tmp_path / "w")
    write_corpus(ws, make_posts(50))
    train_tokenizer_stage(ws, TokenizerConfig(vocab_size=300))
    write_corpus(ws, make_posts(60, seed=9))  # the corpus changed after training
    with pytest.raises(ValueError, match="another corpus"):
        tokenize_corpus(ws)
