"""How much a post raises its reply's likelihood under the pretrained model: a mining signal for ``roost sft``.

A reply answers its parent when it could not have been written without it. The
pretrained model (the one SFT starts from) measures that: the **answer gain**
of a (parent, reply) pair is the mean per-token log-probability of the reply
after the parent minus that of the reply on its own, in nats per token
(pointwise mutual information, per token). A reply that would be as likely after
any post ("Same here.", a link, a switch of language) gains about nothing; one
that takes up the parent's subject gains more, because the parent made its words
likelier. ``roost sft --min-answer-gain X`` cuts each conversation at the first
assistant turn below X (roost.train.conversations).

The reply follows its parent in one document (``<|bos|>parent\nreply``), and
"on its own" is the same frame with no parent (``<|bos|>\nreply``), so the
newline's own cost cancels. Why one document: pretraining packs posts in corpus
order, each after its own ``<|bos|>``, so across a ``<|bos|>`` the model has
learnt to expect an unrelated post. Measured on the sample network with the
demo's depth-2 model (BENCHMARKS.md, "Chat"): with a ``<|bos|>`` between them the
gains sat near 0 (middle half -0.02 to 0.02) and the pairs above 0.05 held 63%
answer acts against 35% below; in one document those above 0 held 79% against 28%.
The scale is the model's: most gains are negative (the sample's median first
answer -0.16 nats/token), so 0 is a strict cut, not a middle one.
The chat format's role tokens are no use here: the pretrained model never saw them.

Scoring is the model's own forward pass (``GPT.forward`` with per-token losses),
batched by length, with every reply scored once on its own however many parents it has.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from roost.loss import IGNORE_INDEX
from roost.model import GPT
from roost.tokenizer import RoostTokenizer

CONTEXT_SEP = "\n"  # between parent and reply, as mining joins a self-reply thread's posts into one turn
MAX_REPLY_TOKENS = 64  # a reply's first tokens say whether it takes up its parent; the rest costs compute
BATCH_TOKENS = 16_384  # padded tokens a forward pass takes at once


def answer_gains(
    model: GPT,
    tok: RoostTokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = False,
) -> np.ndarray:
    """Answer gain (nats per token) of each ``(parent, reply)`` pair: mean log p(reply | parent) - mean log p(reply)."""
    if not pairs:
        return np.zeros(0)
    replies = sorted({reply for _, reply in pairs})
    reply_index = {r: i for i, r in enumerate(replies)}
    parent_texts = sorted({parent for parent, _ in pairs})
    parent_ids = dict(zip(parent_texts, tok.encode_batch([p + CONTEXT_SEP for p in parent_texts])))
    bos, empty = [tok.bos_id], [tok.bos_id, *tok.encode(CONTEXT_SEP)]  # a reply with no parent: the same frame
    room = model.config.max_seq_len + 1  # a sequence of n tokens predicts n - 1 of them
    reply_ids = [ids[: min(MAX_REPLY_TOKENS, room - len(empty))] for ids in tok.encode_batch(replies)]
    sequences = []
    for parent, reply in pairs:
        target = reply_ids[reply_index[reply]]
        context = parent_ids[parent]
        keep = room - 1 - len(target)  # the parent's last tokens that fit before the reply (at least the frame's)
        sequences.append((bos + context[max(len(context) - keep, 0) :], target))
    sequences += [(empty, ids) for ids in reply_ids]
    logprobs = mean_logprobs(model, tok.pad_id, sequences, batch_tokens=batch_tokens, progress=progress)
    alone = logprobs[len(pairs) :]
    return logprobs[: len(pairs)] - alone[[reply_index[reply] for _, reply in pairs]]


@torch.no_grad()
def mean_logprobs(
    model: GPT,
    pad_id: int,
    sequences: Sequence[tuple[list[int], list[int]]],
    *,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = False,
) -> np.ndarray:
    """Mean log-probability of each ``(context, target)``'s target tokens after its context.

    Sequences are sorted by length and batched up to ``batch_tokens`` padded
    tokens, right-padded (causal attention never looks at the padding).
    """
    from tqdm import tqdm

    order = sorted(range(len(sequences)), key=lambda k: len(sequences[k][0]) + len(sequences[k][1]))
    batches, batch = [], []
    for k in order:
        longest = len(sequences[k][0]) + len(sequences[k][1])  # sorted: this one is the batch's longest
        if batch and (len(batch) + 1) * longest > batch_tokens:
            batches.append(batch)
            batch = []
        batch.append(k)
    if batch:
        batches.append(batch)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(len(sequences))
    for batch in tqdm(batches, desc="sft: scoring answers", unit="batch", disable=not progress):
        width = max(len(sequences[k][0]) + len(sequences[k][1]) for k in batch) - 1
        x = torch.full((len(batch), width), pad_id, dtype=torch.long)
        y = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        for row, k in enumerate(batch):
            context, target = sequences[k]
            ids = torch.tensor(context + target)
            x[row, : len(ids) - 1] = ids[:-1]
            y[row, len(context) - 1 : len(ids) - 1] = ids[len(context) :]
        _, losses = model(x.to(device), y.to(device), loss_reduction="none")
        counts = (y != IGNORE_INDEX).sum(1).clamp(min=1).to(losses.device)
        out[batch] = (-losses.float().sum(1) / counts).double().cpu().numpy()
    model.train(was_training)
    return out
