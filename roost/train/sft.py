"""Chat fine-tuning (SFT): the pretrained model trained on conversations mined from reply threads.

``roost.train.sft.sft(workspace, SFTConfig(...))`` mines conversations from the
corpus (``conversations``), renders each in the chat format of the tokenizer's
role tokens (``RoostTokenizer.encode_chat``) and packs them into rows of
``seq_len + 1`` tokens whose targets are ``-100`` everywhere except on assistant
content and its ``<|end|>``: the loss teaches the model to answer and to stop,
never to write the user's side. The run itself is pretraining's machinery
(optimizers, schedule, checkpoints, evaluation, metrics, process groups) on
that data, starting from the pretrained weights with fresh optimizer state and
learning rates scaled by ``lr_frac``.

Checkpoints go to ``checkpoints/sft/`` so the pretraining checkpoints stay
(``roost train --fresh`` deletes the whole ``checkpoints/`` folder, SFT's too);
``--resume`` continues the newest exactly. At the end the fine-tuned model
replaces ``workspace/model/`` (Hugging Face format, with the tokenizer files
whose ``chat_template`` renders exactly as roost does).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from roost.errors import UserError
from roost.export import save_hf
from roost.model import GPT, GPTConfig
from roost.tokenizer import RoostTokenizer
from roost.train import checkpoint, dist
from roost.train.conversations import Conversation
from roost.train.data import IGNORE_INDEX, PackedLoader
from roost.train.loop import Checkpoints, TrainResult
from roost.train.run import Plan, check_fits, checkpoint_to_resume, launch, run
from roost.train.sft_config import SFT_SOURCE, SFTConfig
from roost.workspace import StageMissing, Workspace

# ---- data: conversations -> packed rows with masked targets


@dataclass
class PackedChats:
    """Conversations packed into ``rows`` rows of ``row_len`` tokens, flat, for :class:`ChatLoader`.

    ``labels[i]`` is ``ids[i]`` where the model must predict it (assistant
    content and its ``<|end|>``) and ``IGNORE_INDEX`` elsewhere, padding included.
    """

    ids: np.ndarray
    labels: np.ndarray
    row_len: int
    conversations: int  # packed
    cropped: int  # longer than a row: cut to one row
    dropped: int  # with no assistant token left after cropping

    @property
    def rows(self) -> int:
        return len(self.ids) // self.row_len

    @property
    def trained_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def pack_conversations(
    tok: RoostTokenizer,
    conversations: list[Conversation],
    seq_len: int,
    progress: bool = False,
    desc: str = "sft: packing",
) -> PackedChats:
    """Best-fit-decreasing packing of whole conversations into rows of ``seq_len + 1`` tokens.

    Each row feeds one training sequence (inputs ``row[:-1]``, targets
    ``row[1:]``), so no conversation is split across sequences; a row's
    conversations follow each other, each starting at its ``<|bos|>``, as
    pretraining packs posts. The rest of a row is ``<|pad|>`` with ignored targets.
    """
    from tqdm import tqdm

    row_len = seq_len + 1
    pieces, cropped, dropped = [], 0, 0
    for conv in tqdm(conversations, desc=desc, unit="conv", disable=not progress):
        ids, mask = tok.encode_chat(conv.messages)
        if len(ids) > row_len:
            ids, mask = ids[:row_len], mask[:row_len]
            cropped += 1
        if not any(mask[1:]):  # nothing to learn within the row (a very long user turn)
            dropped += 1
            continue
        ids = np.asarray(ids, dtype=np.int32)
        pieces.append((ids, np.where(np.asarray(mask, dtype=bool), ids, IGNORE_INDEX).astype(np.int32)))
    rows = _best_fit([len(ids) for ids, _ in pieces], row_len)
    out_ids = np.full(len(rows) * row_len, tok.pad_id, dtype=np.int32)
    out_labels = np.full(len(rows) * row_len, IGNORE_INDEX, dtype=np.int32)
    for r, members in enumerate(rows):
        at = r * row_len
        for k in members:
            ids, labels = pieces[k]
            out_ids[at : at + len(ids)], out_labels[at : at + len(ids)] = ids, labels
            at += len(ids)
    return PackedChats(out_ids, out_labels, row_len, len(pieces), cropped, dropped)


def _best_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins of ``capacity``: longest first, each into the fullest bin it fits."""
    import bisect

    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin), sorted
    for k in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        at = bisect.bisect_left(free, (lengths[k], -1))
        if at == len(free):
            bins.append([k])
            b, left = len(bins) - 1, capacity - lengths[k]
        else:
            left, b = free.pop(at)
            bins[b].append(k)
            left -= lengths[k]
        if left > 0:
            bisect.insort(free, (left, b))
    return bins


class ChatLoader:
    """Batches ``(x, y)`` of packed chats: pretraining's :class:`PackedLoader` twice, in lockstep.

    One ``PackedLoader`` reads the token ids, the other the labels; with the
    same rows (each row one "document" of ``seq_len + 1`` tokens), seed and
    rank they visit the same sequences in the same order, so ``x`` comes from
    the first and ``y`` from the second. Shuffling, rank sharding and the
    resumable ``(epoch, position)`` state are PackedLoader's.
    """

    def __init__(self, packed: PackedChats, batch_size: int, **kwargs):
        starts = [np.arange(packed.rows, dtype=np.int64) * packed.row_len]
        seq_len = packed.row_len - 1
        self.inputs = PackedLoader([packed.ids], starts, seq_len, batch_size, **kwargs)
        self.labels = PackedLoader([packed.labels], starts, seq_len, batch_size, **kwargs)
        self.device, self.world_size = self.inputs.device, self.inputs.world_size
        self.batches_per_epoch = self.inputs.batches_per_epoch

    @property
    def num_sequences(self) -> int:
        return self.inputs.num_sequences

    def state_dict(self) -> dict:
        return self.inputs.state_dict()

    def load_state_dict(self, d: dict) -> None:
        self.inputs.load_state_dict(d)
        self.labels.load_state_dict(d)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.inputs.next_batch()
        _, y = self.labels.next_batch()
        return x, y


# ---- the pretrained model


@dataclass
class Pretrained:
    model: GPT
    source: str  # where it was read from
    weights_hash: str
    step: int | None  # the pretraining step, when read from a checkpoint


def load_pretrained(ws: Workspace) -> Pretrained:
    """The newest pretraining checkpoint, else ``workspace/model/`` unless SFT made it; else a clear error."""
    from roost.export import load_hf

    ckpt = checkpoint.latest_checkpoint(ws.checkpoints)
    if ckpt is not None:
        model, meta = checkpoint.read_model(ckpt)
        return Pretrained(model, str(ckpt), weights_hash(model), meta.get("step"))
    if (ws.model / "config.json").is_file():
        made_by = (ws.read_manifest("model") or {}).get("source")
        if made_by == SFT_SOURCE:
            raise StageMissing(
                f"{ws.model} is already fine-tuned by `roost sft` and {ws.checkpoints} holds no pretraining "
                f"checkpoint to start again from; run `roost train --workspace {ws.root}` first, or continue the "
                "fine-tuning with `roost sft --resume`"
            )
        model = load_hf(ws.model)
        return Pretrained(model, str(ws.model), weights_hash(model), None)
    raise StageMissing(
        f"workspace {ws.root}: no pretrained model to fine-tune (no checkpoint in {ws.checkpoints}, no model in "
        f"{ws.model}); run `roost train --workspace {ws.root}` first (or `roost import` a Hugging Face model)"
    )


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 of the weights (names and bytes): the pretrained input's identity, wherever it was read from."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + b"\0")
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _answer_scorer(ws: Workspace, model: GPT | None, expected_hash: str, tok: RoostTokenizer, progress: bool):
    """Answer gains (roost.train.answer_gain) under the pretrained model; on ``--resume`` (``model`` None) the
    one the checkpoint started from, read again and checked, so the resumed run mines the same conversations."""
    from functools import partial

    from roost.train.answer_gain import answer_gains

    if model is None:
        try:
            pretrained = load_pretrained(ws)
        except StageMissing as e:
            raise UserError(
                f"--resume with --min-answer-gain scores the replies again with the pretrained model, and it is "
                f"gone: {e}"
            ) from None
        if pretrained.weights_hash != expected_hash:
            raise UserError(
                f"--resume with --min-answer-gain: the pretrained model in {pretrained.source} is not the one this "
                "fine-tuning started from, so its answer gains would mine other conversations; start over with --fresh"
            )
        model = pretrained.model
    return partial(answer_gains, model, tok, progress=progress)


def steps_per_epoch(loader: ChatLoader, grad_accum: int) -> int:
    return max(1, loader.batches_per_epoch // (grad_accum * loader.world_size))


def total_steps_for(cfg: SFTConfig, loader: ChatLoader, grad_accum: int, step_tokens: int) -> int | None:
    """Steps the run takes: --steps, --tokens, --epochs (default one epoch); None for a --minutes budget."""
    t = cfg.train
    if t.minutes:
        return None
    if t.steps:
        return t.steps
    if t.tokens:
        return math.ceil(t.tokens / step_tokens)
    return max(1, round((cfg.epochs or 1.0) * steps_per_epoch(loader, grad_accum)))


# ---- the run


def sft(ws: Workspace, cfg: SFTConfig, *, resume: bool = False, fresh: bool = False) -> TrainResult:
    """Fine-tune (or, with ``resume``, continue fine-tuning) the pretrained model; returns where things went.

    As ``roost train`` does, a job torchrun restarts (``--max-restarts``) resumes by itself.
    """
    return launch(
        sft_checkpoints(ws),
        cfg.train.device,
        resume=resume,
        fresh=fresh,
        stage=lambda info, resume, fresh: run(ws, plan(ws, cfg, info, resume=resume, fresh=fresh), info),
    )


def sft_checkpoints(ws: Workspace) -> Path:
    return ws.checkpoints / "sft"


def resume_point(ws: Workspace, *, resume: bool = True, fresh: bool = False) -> Path | None:
    """The newest SFT checkpoint, which ``--resume`` continues (None for a new run)."""
    return checkpoint_to_resume(
        sft_checkpoints(ws),
        resume=resume,
        fresh=fresh,
        kind="SFT ",
        what="that fine-tuning",
        start_over="start over from the pretrained model",
    )


def saved_sft_config(ws: Workspace) -> SFTConfig:
    return SFTConfig.from_meta(checkpoint.read_meta(resume_point(ws)))


def plan(ws: Workspace, cfg: SFTConfig, info: dist.DistInfo, *, resume: bool, fresh: bool) -> Plan:
    """Check everything that can be wrong before the long work; then the conversations, packed, and the model."""
    from roost.tokenizer import load_tokenizer
    from roost.train.conversations import mine_conversations

    inputs = {"corpus": ws.stage_hash("corpus"), "tokenizer": ws.stage_hash("tokenizer")}
    ckpt = resume_point(ws, resume=resume, fresh=fresh)
    if ckpt is not None:
        meta = checkpoint.read_meta(ckpt)
        changed = [k for k in inputs if meta["inputs"].get(k) != inputs[k]]
        if changed:
            raise UserError(f"--resume: the {' and '.join(changed)} changed since {ckpt}; start over with --fresh")
        pretrained_info = meta["pretrained"]
        model = GPT(GPTConfig.from_dict(meta["model_config"]))
        pretrained_model = None  # read again only if mining scores replies with it
    else:
        pretrained = load_pretrained(ws)
        model = pretrained_model = pretrained.model
        pretrained_info = {
            "source": pretrained.source,
            "weights_hash": pretrained.weights_hash,
            "step": pretrained.step,
        }
    inputs["pretrained"] = pretrained_info["weights_hash"]
    model_cfg = model.config
    if cfg.train.seq_len > model_cfg.max_seq_len:
        raise UserError(
            f"--seq-len {cfg.train.seq_len} is above the pretrained model's context "
            f"{model_cfg.max_seq_len}; lower --seq-len"
        )
    train_cfg = replace(
        cfg.train, depth=model_cfg.n_layer, max_seq_len=model_cfg.max_seq_len, tie_embeddings=model_cfg.tie_embeddings
    )
    cfg = replace(cfg, train=train_cfg)
    tok = load_tokenizer(ws.tokenizer)
    if tok.vocab_size > model_cfg.vocab_size:
        raise UserError(
            f"the tokenizer in {ws.tokenizer} has {tok.vocab_size} tokens, more than the pretrained "
            f"model's vocab_size {model_cfg.vocab_size}: they were not made together; rerun `roost train`"
        )
    grad_accum = train_cfg.grad_accum(info.world_size)
    check_fits(model_cfg, train_cfg, info)

    # ---- data
    scorer = None
    if cfg.mining.min_answer_gain is not None:
        scorer = _answer_scorer(ws, pretrained_model, pretrained_info["weights_hash"], tok, progress=info.is_main)
    mined = mine_conversations(ws.corpus, cfg.mining, progress=info.is_main, scorer=scorer)
    if not mined.train:
        raise UserError(
            f"no training conversations in the {mined.threads} reply thread(s) of {ws.corpus} "
            "(each needs a reply and a post to reply to); ingest more threads with `roost ingest`"
            + (
                ""
                if cfg.mining.min_answer_gain is None
                else f", or lower --min-answer-gain {cfg.mining.min_answer_gain}"
            )
        )
    shard_args = {"rank": info.rank, "world_size": info.world_size, "device": info.device}
    packed = pack_conversations(tok, mined.train, train_cfg.seq_len, progress=info.is_main)
    packed_val = pack_conversations(tok, mined.val, train_cfg.seq_len, progress=info.is_main, desc="sft: packing val")
    loader = ChatLoader(packed, train_cfg.device_batch, seed=train_cfg.seed, accum=grad_accum, **shard_args)
    if packed_val.rows < info.world_size:
        raise UserError(
            f"{packed_val.rows} validation row(s) from {len(mined.val)} conversation(s) of "
            f"{mined.threads} threads cannot feed {info.world_size} rank(s); raise --val-fraction "
            f"(now {cfg.mining.val_fraction}) or ingest more threads"
        )
    val_loader = ChatLoader(
        packed_val, train_cfg.device_batch, shuffle=False, name="val", shrink_batch=True, **shard_args
    )
    counts = {
        **mined.counts,
        "train_rows": packed.rows,
        "train_trained_tokens": packed.trained_tokens,
        "val_rows": packed_val.rows,
        "cropped": packed.cropped + packed_val.cropped,
        "dropped": packed.dropped + packed_val.dropped,
    }
    if info.is_main:
        print(
            f"sft: {counts['train_conversations']:,} train / {counts['val_conversations']:,} val conversations "
            f"from {counts['threads']:,} threads, packed into {packed.rows:,} rows of {packed.row_len} tokens "
            f"({counts['cropped']} cropped, {counts['dropped']} dropped); from {pretrained_info['source']}"
        )

    def export(whole: GPT, result: TrainResult) -> Path:
        manifest = ws.manifest(
            "model",
            inputs,
            {**counts, "params": whole.num_params(), "steps": result.step},
            source=SFT_SOURCE,
            model_config=model_cfg.to_dict(),
            pretrained=pretrained_info,
            sft=cfg.sft_dict(),
        )
        return save_hf(whole, ws.model, ws.tokenizer, manifest=manifest)

    # the optimizers start fresh, every peak rate times lr_frac
    return Plan(
        cfg=train_cfg,
        model_cfg=model_cfg,
        model=lambda: model,
        loader=loader,
        val_loader=val_loader,
        total_steps=total_steps_for(cfg, loader, grad_accum, train_cfg.step_tokens(info.world_size)),
        checkpoints=Checkpoints(
            sft_checkpoints(ws), {"sft": cfg.sft_dict(), "inputs": inputs, "pretrained": pretrained_info}, inputs
        ),
        export=export,
        resume_from=ckpt,
        fresh=fresh,
        lr_scale=cfg.lr_frac,
        title="fine-tuning",
    )
