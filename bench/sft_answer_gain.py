"""Which first answers does ``roost sft --min-answer-gain`` keep? Kept against dropped, by the sample's ground truth.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/sft_answer_gain.py -w WS --min-shared-words 1 --thresholds 0 0.1

WS: a workspace on the sample network with a pretrained model (``roost demo``, or sample -> ingest -> tokenizer
-> train). Mines the conversations as ``roost sft --min-shared-words M`` does, then again with the answer-gain cut
at the first threshold (timed: that is what the cut adds to SFT's start), and for each threshold prints the
conversations' first answers kept and dropped: how many, the share the eval's topic judge (roost.eval.chat) puts
in the question's topic (all, and English answers only: the judge is trained on English posts), and the shares
the sample's truth calls an answer act, in English, and in another language than the question.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from roost.corpus.schema import read_table
from roost.eval.chat import train_judges
from roost.tokenizer import load_tokenizer
from roost.train.answer_gain import answer_gains
from roost.train.conversations import MiningConfig, mine_conversations
from roost.train.sft import load_pretrained
from roost.workspace import Workspace


def first_answers(ws: Workspace, conversations) -> list[tuple[str, str, str, str]]:
    """(question, answer, root id, first answer's post id) of each conversation: its first user and assistant turns."""
    table = read_table(ws.corpus, "posts", ["id", "author_id"]).to_pydict()
    author = dict(zip(table["id"], table["author_id"]))
    out = []
    for c in conversations:
        user, reply = [m["content"] for m in c.messages if m["role"] != "system"][:2]
        first = next(p for p in c.post_ids if author[p] != author[c.post_ids[0]])
        out.append((user, reply, c.post_ids[0], first))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-w", "--workspace", required=True)
    ap.add_argument("--min-shared-words", type=int, default=1)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.0])
    args = ap.parse_args()
    ws = Workspace(args.workspace)
    truth_dir = ws.root / "sample" / "truth"
    truth = {r["id"]: r for r in map(json.loads, (truth_dir / "post_topics.jsonl").read_text().splitlines())}
    tok = load_tokenizer(ws.tokenizer)
    pretrained = load_pretrained(ws)
    cfg = MiningConfig(min_shared_words=args.min_shared_words, val_fraction=0.0)

    t0 = time.perf_counter()
    mined = mine_conversations(ws.corpus, cfg)
    mine_s = time.perf_counter() - t0
    gains: dict[tuple[str, str], float] = {}

    def scorer(pairs):
        out = answer_gains(pretrained.model, tok, pairs, progress=True)
        gains.update(zip(pairs, out))
        return out

    t0 = time.perf_counter()
    cut = mine_conversations(ws.corpus, replace(cfg, min_answer_gain=args.thresholds[0]), scorer=scorer)
    cut_s = time.perf_counter() - t0
    print(
        f"mining --min-shared-words {args.min_shared_words}: {len(mined.train):,} conversations in {mine_s:.1f} s; "
        f"with --min-answer-gain {args.thresholds[0]}: {len(cut.train):,} in {cut_s:.1f} s "
        f"({len(gains):,} distinct (turn, reply) pairs scored by {pretrained.source})"
    )

    firsts = first_answers(ws, mined.train)
    g = np.array([gains[(q, a)] for q, a, _, _ in firsts])
    print(
        "first answers' gain (nats/token), quantiles 5/25/50/75/95%:",
        np.round(np.quantile(g, [0.05, 0.25, 0.5, 0.75, 0.95]), 3),
    )
    topic_judge = train_judges(ws, truth_dir)[0]
    on_topic = topic_judge.predict([a for _, a, _, _ in firsts]) == np.array(
        [truth[r]["topic"] for _, _, r, _ in firsts]
    )
    is_answer = np.array([truth.get(p, {}).get("act") == "answer" for _, _, _, p in firsts])
    english = np.array([truth.get(p, {}).get("lang") == "en" for _, _, _, p in firsts])
    switch = np.array([truth.get(p, {}).get("lang") != truth[r]["lang"] for _, _, r, p in firsts])
    print(
        "\n| min answer gain | first answers | count | topic judge on the question's topic | the same, English "
        "answers only | answer act | English | another language than the question |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    rows = [(f"{t:g}", name, sel) for t in args.thresholds for name, sel in (("kept", g >= t), ("dropped", ~(g >= t)))]
    for t, name, sel in [*rows, ("(all)", "all", np.ones(len(g), dtype=bool))]:
        shares = [
            f"{100 * x[s].mean():.1f}%" if s.any() else "-" for x, s in ((on_topic, sel), (on_topic, sel & english))
        ]
        shares += [f"{100 * x[sel].mean():.1f}%" if sel.any() else "-" for x in (is_answer, english, switch)]
        print(f"| {t} | {name} | {int(sel.sum()):,} | {' | '.join(shares)} |")


if __name__ == "__main__":
    main()
