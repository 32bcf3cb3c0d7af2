"""The tokenizer stage: BPE training, exact round trips, special tokens, chat format, HF loading."""

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.cli import main
from roost.corpus import schema
from roost.tokenizer import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    TokenizerConfig,
    hf_tokenizer_files,
    load_tokenizer,
    render_chat,
    train_tokenizer_stage,
)
from roost.workspace import StageMissing, Workspace

WORDS = "the a to and of is in it you that was for on are with this my just so love today good new time".split()
TAGS = ["#machinelearning", "@roostbot", "#blessed"]
EMOJI = ["😂", "😂😂", "❤️", "👍🏽", "👨‍👩‍👧", "🇫🇷"]
EXTRAS = ["東京タワー", "café", "مرحبا", "<|url|>", "<|mention|>", "naïve", "12345"]


def make_posts(n: int, seed: int = 0) -> list[str]:
    """Deterministic tweet-like posts: common words, frequent hashtags/mentions, emoji, other scripts."""
    rng = random.Random(seed)
    posts = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(4, 12))
        words.insert(rng.randrange(len(words) + 1), rng.choice(TAGS))
        if rng.random() < 0.5:
            words.append(rng.choice(EMOJI))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(EXTRAS))
        posts.append(" ".join(words))
    return posts


def write_corpus(ws: Workspace, texts: list[str], ids: list[str] | None = None, shards: int = 2) -> list[str]:
    """A corpus artifact as ingest writes it: posts Parquet shards with schema.POSTS, and a manifest."""
    ids = ids or [f"post-{i}" for i in range(len(texts))]
    cols = {name: [None] * len(texts) for name in schema.POSTS.names}
    cols.update(id=ids, text=texts)
    table = pa.table(cols, schema=schema.POSTS)
    ws.corpus.mkdir(parents=True, exist_ok=True)
    step = -(-len(texts) // shards)
    for k in range(shards):
        pq.write_table(table.slice(k * step, step), ws.corpus / f"posts-{k:05d}.parquet")
    ws.write_manifest("corpus", counts={"posts": len(texts)})
    return ids


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("tok") / "workspace")
    write_corpus(ws, make_posts(600))
    manifest = train_tokenizer_stage(ws, TokenizerConfig(vocab_size=400, val_fraction=0.05))
    return ws, manifest, load_tokenizer(ws.tokenizer)


NASTY = [
    "",
    "plain ascii",
    "emoji 😂😂😂 skin 👍🏽👋🏿 zwj family 👨‍👩‍👧‍👦 rainbow 🏳️‍🌈 flags 🇯🇵🇫🇷 keycap 1️⃣ subdivision 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "日本語のテキスト 中文字符 한국어",
    "العربية من اليمين إلى اليسار",
    "accents: café naïve Ångström",
    "NFD: cafe\u0301 n\u0303 a\u030a\u0301",
    "combining pile: Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334",
    "lines\nand\r\nmore\n\n\ttabs\t\t and  spaces   ",
    "  leading and trailing spaces  ",
    "#machinelearning @roostbot #NoSpace@there",
    "specials <|bos|><|end|><|url|> and fakes <|bogus|> <| |> <|",
    "nul \x00 and bell \x07 and bidi \u202e mark",
    "\ufeffbom and zero\u200bwidth",
]


@pytest.mark.parametrize("text", NASTY)
def test_round_trip_nasty_strings(trained, text):
    tok = trained[2]
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_round_trip_any_text(trained, text):
    tok = trained[2]
    assert tok.decode(tok.encode(text)) == text


def test_special_tokens_are_single_ids(trained):
    _, manifest, tok = trained
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 2)
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.encode(t) == [i], t
    assert set(schema.PLACEHOLDERS.values()) <= set(manifest["special_tokens"])
    ids = tok.encode("see <|url|> by <|mention|>")
    assert ids.count(tok.special_ids["<|url|>"]) == 1 and ids.count(tok.special_ids["<|mention|>"]) == 1
    # Look-alikes that are not special tokens are plain text.
    assert not set(tok.encode("<|bogus|> <| bos |> <|BOS|>")) & set(range(len(SPECIAL_TOKENS)))
    assert tok.decode(tok.encode("hi <|url|> there"), skip_special_tokens=True) == "hi  there"


def test_frequent_hashtags_and_mentions_are_one_token(trained):
    tok = trained[2]
    assert len(tok.encode(" #machinelearning")) == 1
    assert len(tok.encode(" @roostbot")) == 1


def test_pre_tokenizer_keeps_tags_and_emoji_whole(trained):
    tok = trained[2]
    text = "I love #machine_learning2, @user_1!! 😂😂 👨‍👩‍👧 👍🏽 it's"
    pieces = [text[a:b] for _, (a, b) in tok.hf.pre_tokenizer.pre_tokenize_str(text)]
    assert "".join(pieces) == text
    for whole in (" #machine_learning2", " @user_1", " 😂😂", " 👨‍👩‍👧", " 👍🏽", "!!", "'s"):
        assert whole in pieces, (whole, pieces)


def test_manifest_and_compression(trained):
    ws, m, tok = trained
    assert m["inputs"] == {"corpus": ws.stage_hash("corpus")}
    assert m["vocab_size"] == tok.vocab_size == 400
    assert m["counts"]["train_posts"] + m["counts"]["val_posts"] == 600
    assert 0 < m["counts"]["val_posts"] < 100
    assert m["bytes_per_token"] == pytest.approx(m["counts"]["val_bytes"] / m["counts"]["val_tokens"])
    assert m["bytes_per_token"] > 2.0  # BPE must compress well beyond one byte per token
    # Up to date: a second run neither retrains nor rewrites.
    assert train_tokenizer_stage(ws, TokenizerConfig(vocab_size=400, val_fraction=0.05)) == m
    assert ws.read_manifest("tokenizer")["created"] == m["created"]


def test_hf_loaders_work_offline(trained, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    ws, _, tok = trained
    text = "so good #machinelearning 😂 東京 <|url|>"
    fast = PreTrainedTokenizerFast(tokenizer_file=str(ws.tokenizer / "tokenizer.json"))
    assert fast(text, add_special_tokens=False)["input_ids"] == tok.encode(text)
    assert fast(text)["input_ids"] == [tok.bos_id, *tok.encode(text)]  # HF default adds <|bos|>

    hf_tokenizer_files(ws.tokenizer, tmp_path / "model", model_max_length=256)
    auto = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert (auto.bos_token, auto.eos_token, auto.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    assert (auto.bos_token_id, auto.eos_token_id, auto.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
    assert auto.model_max_length == 256
    assert auto(text)["input_ids"] == [tok.bos_id, *tok.encode(text)]
    assert auto.decode(auto(text, add_special_tokens=False)["input_ids"]) == text
    messages = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi 😂"}]
    assert auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == render_chat(messages, True)
    ids = auto.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids  # transformers 5 returns a BatchEncoding
    assert ids == tok.encode_chat(messages, add_generation_prompt=True)[0]  # one <|bos|>, not two


MESSAGES = [
    {"role": "system", "content": "You are roost."},
    {"role": "user", "content": "what is #machinelearning?"},
    {"role": "assistant", "content": "learning from data 😂"},
    {"role": "user", "content": "thanks\nbye"},
    {"role": "assistant", "content": "bye!"},
]


@pytest.mark.parametrize("gen", [False, True])
def test_chat_template_matches_render_chat(trained, gen):
    from transformers import PreTrainedTokenizerFast

    ws, _, tok = trained
    fast = PreTrainedTokenizerFast(tokenizer_file=str(ws.tokenizer / "tokenizer.json"), bos_token="<|bos|>")
    rendered = render_chat(MESSAGES, add_generation_prompt=gen)
    assert (
        fast.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=gen, chat_template=CHAT_TEMPLATE)
        == rendered
    )
    assert rendered.startswith("<|bos|><|system|>You are roost.<|end|><|user|>")
    assert rendered.endswith("<|assistant|>" if gen else "bye!<|end|>")


def test_encode_chat_ids_and_assistant_mask(trained):
    tok = trained[2]
    ids, mask = tok.encode_chat(MESSAGES, add_generation_prompt=False)
    assert ids == tok.encode(render_chat(MESSAGES))
    assert len(mask) == len(ids) and set(mask) == {0, 1}
    trained_text = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained_text == "learning from data 😂<|end|>bye!<|end|>"
    ids, mask = tok.encode_chat(MESSAGES[:2], add_generation_prompt=True)
    assert ids[-1] == tok.role_ids["assistant"] and mask == [0] * len(ids)


def test_bad_chat_messages_say_where(trained):
    tok = trained[2]
    with pytest.raises(ValueError, match=r"messages\[1\]\.role"):
        tok.encode_chat([{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}])
    with pytest.raises(ValueError, match=r"messages\[0\]\.content"):
        render_chat([{"role": "user", "content": None}])


def test_missing_corpus_names_roost_ingest(ws, capsys):
    assert main(["tokenizer", "--workspace", str(ws.root)]) == 2
    assert "roost ingest" in capsys.readouterr().err
    with pytest.raises(StageMissing, match="roost ingest"):
        train_tokenizer_stage(ws, TokenizerConfig())


def test_empty_corpus_is_a_clear_error(ws, capsys):
    write_corpus(ws, [], shards=1)
    assert main(["tokenizer", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert "0 post(s)" in err and "roost ingest" in err


def test_vocab_size_too_small_is_a_clear_error(ws, capsys):
    write_corpus(ws, make_posts(20))
    assert main(["tokenizer", "--vocab-size", "100", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert "vocab size 100 is too small" in err and "at least" in err
    assert not ws.tokenizer.exists()


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["tokenizer", "--help"])
    assert e.value.code == 0 and "--vocab-size" in capsys.readouterr().out
