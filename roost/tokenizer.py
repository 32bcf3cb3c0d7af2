"""The tokenizer: byte-level BPE trained on the corpus, its special tokens and the chat format.

``roost tokenizer`` trains it (:func:`train_tokenizer_stage`) and writes
``workspace/tokenizer/tokenizer.json`` in Hugging Face ``tokenizers`` format, so
the same file serves the training loader, the engine and an exported HF model.
``roost tokenizer --from-model`` takes an imported model's tokenizer instead
(:func:`adopt_model_tokenizer_stage`), for continued pretraining in its vocabulary.

Special tokens: text is split on special tokens *before* BPE, so a ``<|...|>``
string in text always encodes to its single special id. That is intended: ingest
never writes ``<|`` sequences except the placeholders in
``roost.corpus.schema.PLACEHOLDERS``, which must become single tokens, and
``decode(encode(x)) == x`` holds for every string, special-looking or not.
A server that takes chat messages from clients decides itself whether to reject
role tokens in their content.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xxhash

from roost.corpus import schema
from roost.errors import UserError
from roost.workspace import Workspace, atomic_dir, atomic_write_json, file_hash

TOKENIZER_FILE = "tokenizer.json"

BOS, EOS, PAD, END = "<|bos|>", "<|eos|>", "<|pad|>", "<|end|>"
ROLES = ("system", "user", "assistant")
PLACEHOLDER_TOKENS: list[str] = list(schema.PLACEHOLDERS.values())
SPECIAL_TOKENS: list[str] = [BOS, EOS, PAD, *(f"<|{r}|>" for r in ROLES), END, *PLACEHOLDER_TOKENS]
NUM_BYTE_TOKENS = 256
MIN_VOCAB_SIZE = NUM_BYTE_TOKENS + len(SPECIAL_TOKENS) + 1  # at least one merge

# Characters that make up emoji: pictographs, flag letters, skin tones, ZWJ,
# variation selector 16, keycap, tag letters (subdivision flags).
_EMOJI = r"\p{Extended_Pictographic}\x{1F1E6}-\x{1F1FF}\x{1F3FB}-\x{1F3FF}\x{200D}\x{FE0F}\x{20E3}\x{E0020}-\x{E007F}"
# GPT-4 style split, with two social-media rules first: a #hashtag or @mention is
# one pre-token (so a frequent one can become one token), and a run of emoji
# (with their ZWJ joins and modifiers) is one pre-token kept apart from punctuation.
SPLIT_PATTERN = (
    r" ?[#@][\p{L}\p{M}\p{N}_]+"
    rf"| ?[{_EMOJI}]+"
    r"|'(?i:[sdmt]|ll|ve|re)"
    rf"|[^\r\n\p{{L}}\p{{N}}{_EMOJI}]?+[\p{{L}}\p{{M}}]+"
    r"|\p{N}{1,3}"
    rf"| ?[^\s\p{{L}}\p{{N}}{_EMOJI}]++[\r\n]*"
    r"|\s*[\r\n]|\s+(?!\S)|\s+"
)

# The chat format: <|bos|> then <|role|>content<|end|> per message; a generation
# prompt is <|assistant|>. render_chat below is the same thing in Python.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('message role must be system, user or assistant, not ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192
    val_fraction: float = 0.01  # posts held out (by id hash) for compression and validation loss
    min_frequency: int = 2  # a pair must occur this often to become a merge


class ValSplit:
    """Which posts are held out for validation: a stable hash of the post id.

    A post is in validation when ``xxh64(id) < threshold``, with the threshold set
    by ``fraction``; if that picks no post (a tiny corpus), the post with the
    smallest hash is held out, so validation is never empty. The same corpus and
    fraction give the same split on every run and machine.
    """

    def __init__(self, threshold: int):
        self.threshold = threshold

    @staticmethod
    def hashes(ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((xxhash.xxh64_intdigest(i.encode()) for i in ids), dtype=np.uint64, count=len(ids))

    def is_val(self, ids: Sequence[str]) -> np.ndarray:
        return self.hashes(ids) < np.uint64(self.threshold)

    @classmethod
    def from_corpus(cls, corpus_dir: Path, fraction: float) -> tuple[ValSplit, int, int]:
        """The split for this corpus, with the number of posts and of validation posts."""
        if not 0.0 <= fraction < 1.0:
            raise UserError(f"val fraction must be in [0, 1), got {fraction}")
        threshold = min(int(fraction * 2**64), 2**64 - 1)
        n_posts, n_val, smallest = 0, 0, 2**64
        for batch in schema.iter_batches(corpus_dir, "posts", columns=["id"]):
            h = cls.hashes(batch.column("id").to_pylist())
            if len(h):
                n_posts += len(h)
                n_val += int((h < np.uint64(threshold)).sum())
                smallest = min(smallest, int(h.min()))
        if n_posts < 2:
            raise UserError(
                f"corpus {corpus_dir} has {n_posts} post(s); the tokenizer needs at least 2 "
                "(one to train on, one held out); run `roost ingest` on more data"
            )
        if n_val == 0:
            threshold, n_val = smallest + 1, 1
        if n_val == n_posts:
            raise UserError(f"val fraction {fraction} holds out all {n_posts} posts; lower it")
        return cls(threshold), n_posts, n_val


def iter_split_texts(corpus_dir: Path, split: ValSplit, want_val: bool) -> Iterator[str]:
    """Post texts of one side of the split, streamed from the corpus."""
    for batch in schema.iter_batches(corpus_dir, "posts", columns=["id", "text"]):
        val = split.is_val(batch.column("id").to_pylist())
        for text, v in zip(batch.column("text").to_pylist(), val):
            if bool(v) == want_val:
                yield text or ""


def roost_pre_tokenizer():
    """SPLIT_PATTERN, then bytes to ByteLevel's printable alphabet (no second regex)."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def check_vocab_size(vocab_size: int) -> None:
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(
            f"vocab size {vocab_size} is too small: byte-level BPE needs {NUM_BYTE_TOKENS} byte tokens "
            f"+ {len(SPECIAL_TOKENS)} special tokens + merges; use at least {MIN_VOCAB_SIZE}"
        )


def train_bpe(texts: Iterable[str], cfg: TokenizerConfig, length: int | None = None, pre_tokenizer=None):
    """Train byte-level BPE on ``texts``; returns a ``tokenizers.Tokenizer``.

    ``pre_tokenizer`` replaces :func:`roost_pre_tokenizer` (benchmarks compare others).

    Special tokens get ids 0..len(SPECIAL_TOKENS)-1 in SPECIAL_TOKENS order, then
    the 256 bytes, then merges. The post-processor adds ``<|bos|>`` when a caller
    asks for special tokens (HF's default), matching how training documents start.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    check_vocab_size(cfg.vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer or roost_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tok.train_from_iterator(texts, trainer, length=length)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1", special_tokens=[(BOS, bos_id)]
    )
    return tok


class RoostTokenizer:
    """A thin wrapper over ``tokenizers.Tokenizer`` with roost's special ids and chat format.

    ``encode`` never adds BOS: callers that start a document prepend ``bos_id``.
    """

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer
        ids = {t: hf_tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise UserError(f"tokenizer lacks special tokens {missing}; retrain with `roost tokenizer --force`")
        self.special_ids: dict[str, int] = ids
        self.bos_id, self.eos_id, self.pad_id, self.end_id = ids[BOS], ids[EOS], ids[PAD], ids[END]
        self.role_ids = {r: ids[f"<|{r}|>"] for r in ROLES}
        # Ingest's stand-ins for scrubbed spans: context the model reads, never text it may write.
        # Training ignores them as targets and the engine never samples them.
        self.placeholder_ids: list[int] = [ids[t] for t in PLACEHOLDER_TOKENS]

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        # through encode_batch, which lets go of the GIL (encode holds it: a long text froze the server's event
        # loop even from a worker thread); ~2 us more per call
        return self.hf.encode_batch([text], add_special_tokens=False)[0].ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Encode many texts at once, in parallel on all cores (Rust threads)."""
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """Token ids of ``render_chat(messages, ...)`` and a 0/1 mask of the tokens SFT trains on.

        The mask is 1 on each assistant message's content and its ``<|end|>``:
        what the model must learn to write, and to stop; placeholder tokens in
        that content stay 0, since the model must never write one. Segments are encoded
        separately; that equals encoding the rendered string because text is
        split at special tokens before BPE.
        """
        ids, mask = [self.bos_id], [0]
        for msg in _check_messages(messages):
            train = int(msg["role"] == "assistant")
            content = self.encode(msg["content"])
            ids += [self.role_ids[msg["role"]], *content, self.end_id]
            mask += [0, *(int(train and t not in self.placeholder_ids) for t in content), train]
        if add_generation_prompt:
            ids.append(self.role_ids["assistant"])
            mask.append(0)
        return ids, mask


def _check_messages(messages: list[dict]) -> list[dict]:
    if not isinstance(messages, list):
        raise ValueError(f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {type(msg).__name__}")
        if msg.get("role") not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {msg.get('role')!r}")
        if not isinstance(msg.get("content"), str):
            raise ValueError(f"messages[{i}].content must be a string, got {type(msg.get('content')).__name__}")
    return messages


def render_chat(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The chat as text, exactly as CHAT_TEMPLATE renders it."""
    body = "".join(f"<|{m['role']}|>{m['content']}{END}" for m in _check_messages(messages))
    return BOS + body + ("<|assistant|>" if add_generation_prompt else "")


def load_tokenizer(tok_dir: str | Path) -> RoostTokenizer:
    """Load ``tokenizer.json`` from a tokenizer folder (or an HF model folder)."""
    from tokenizers import Tokenizer

    path = Path(tok_dir) / TOKENIZER_FILE
    if not path.exists():
        raise FileNotFoundError(f"no tokenizer at {path}; run `roost tokenizer` first")
    return RoostTokenizer(Tokenizer.from_file(str(path)))


def placeholder_ids(tok_dir: str | Path) -> list[int]:
    """The placeholder token ids of the tokenizer in ``tok_dir``; none when the folder has no tokenizer
    (a workspace made without the tokenizer stage trains on every target)."""
    if not (Path(tok_dir) / TOKENIZER_FILE).exists():
        return []
    return load_tokenizer(tok_dir).placeholder_ids


def bytes_per_token(tok: RoostTokenizer, texts: Iterable[str], batch_size: int = 1024) -> tuple[int, int]:
    """(UTF-8 bytes, tokens) over ``texts``: compression is bytes / tokens."""
    n_bytes = n_tokens = 0
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            n_bytes += sum(len(t.encode()) for t in batch)
            n_tokens += sum(map(len, tok.encode_batch(batch)))
            batch = []
    if batch:
        n_bytes += sum(len(t.encode()) for t in batch)
        n_tokens += sum(map(len, tok.encode_batch(batch)))
    return n_bytes, n_tokens


def train_tokenizer_stage(ws: Workspace, cfg: TokenizerConfig, force: bool = False) -> dict:
    """Train on the corpus's training posts, measure compression on the held-out ones, write the stage.

    Skipped (returns the existing manifest) when the tokenizer was already made
    from this corpus with this config, unless ``force``.
    """
    from tqdm import tqdm

    inputs = {"corpus": ws.stage_hash("corpus")}
    old = ws.read_manifest("tokenizer")
    if not force and old and old.get("inputs") == inputs and old.get("config") == asdict(cfg):
        return old
    check_vocab_size(cfg.vocab_size)  # fail before reading the corpus
    split, n_posts, n_val = ValSplit.from_corpus(ws.corpus, cfg.val_fraction)
    texts = tqdm(
        iter_split_texts(ws.corpus, split, want_val=False),
        total=n_posts - n_val,
        desc="tokenizer: training",
        unit="post",
    )
    hf = train_bpe(texts, cfg, length=n_posts - n_val)
    return _write_tokenizer_stage(ws, hf, split, n_posts, n_val, inputs, asdict(cfg))


def adopt_model_tokenizer_stage(
    ws: Workspace, val_fraction: float = TokenizerConfig.val_fraction, force: bool = False
) -> dict:
    """Make the tokenizer stage the tokenizer of ``workspace/model/`` (an imported model), trained on nothing.

    Continued pretraining of an open model must read tokens in that model's own
    vocabulary: its embeddings mean nothing under another. So instead of BPE on
    the corpus, the model's ``tokenizer.json`` is copied as it is; the split and
    the compression figures are made as for a trained one, and the token shards
    then follow from it as usual. Skipped when already made from this corpus and
    this model's tokenizer, unless ``force``.
    """
    source = ws.model / TOKENIZER_FILE
    if not source.is_file():
        raise FileNotFoundError(f"no tokenizer at {source}; `roost import --from DIR` a Hugging Face model first")
    inputs = {"corpus": ws.stage_hash("corpus"), "model_tokenizer": file_hash(source)}
    config = {"from_model": True, "val_fraction": val_fraction}
    old = ws.read_manifest("tokenizer")
    if not force and old and old.get("inputs") == inputs and old.get("config") == config:
        return old
    tok = load_tokenizer(ws.model)  # refuses a tokenizer without roost's special tokens
    split, n_posts, n_val = ValSplit.from_corpus(ws.corpus, val_fraction)
    return _write_tokenizer_stage(ws, tok.hf, split, n_posts, n_val, inputs, config, copy_of=source)


def _write_tokenizer_stage(
    ws: Workspace,
    hf,
    split: ValSplit,
    n_posts: int,
    n_val: int,
    inputs: dict,
    config: dict,
    copy_of: Path | None = None,
) -> dict:
    """``workspace/tokenizer/``: ``hf`` (or the file it was read from, byte for byte) and its compression on the
    held-out posts in the manifest."""
    tok = RoostTokenizer(hf)
    n_bytes, n_tokens = bytes_per_token(tok, iter_split_texts(ws.corpus, split, want_val=True))
    with atomic_dir(ws.tokenizer) as tmp:
        if copy_of is not None:  # byte for byte: the hash `roost train --init model` compares stays the model's
            shutil.copyfile(copy_of, tmp / TOKENIZER_FILE)
        else:
            hf.save(str(tmp / TOKENIZER_FILE))
        return ws.write_manifest(
            "tokenizer",
            inputs,
            counts={"train_posts": n_posts - n_val, "val_posts": n_val, "val_bytes": n_bytes, "val_tokens": n_tokens},
            folder=tmp,
            config=config,
            vocab_size=tok.vocab_size,
            bytes_per_token=n_bytes / max(n_tokens, 1),
            val_threshold=split.threshold,
            special_tokens=tok.special_ids,
        )


def hf_tokenizer_files(tok_dir: str | Path, out_dir: str | Path, model_max_length: int | None = None) -> list[Path]:
    """Write the files an HF model folder needs so ``AutoTokenizer.from_pretrained(out_dir)`` works offline.

    tokenizer.json (copied), tokenizer_config.json (special tokens, chat template,
    model_max_length when given) and special_tokens_map.json. Returns the paths.
    """
    src = Path(tok_dir) / TOKENIZER_FILE
    if not src.exists():
        raise FileNotFoundError(f"no tokenizer at {src}; run `roost tokenizer` first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, out / TOKENIZER_FILE)
    special_map = {
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in (BOS, EOS, PAD)],
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
    }
    if model_max_length is not None:
        config["model_max_length"] = int(model_max_length)
    atomic_write_json(out / "tokenizer_config.json", config)
    atomic_write_json(out / "special_tokens_map.json", special_map)
    return [out / TOKENIZER_FILE, out / "tokenizer_config.json", out / "special_tokens_map.json"]
