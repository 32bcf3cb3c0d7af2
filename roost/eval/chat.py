"""Does the chat model answer? Held-out questions in the sample network's topics, judged three ways.

The questions are written from the generator's own topic banks through
templates the generator never uses (``EVAL_TEMPLATES``), so no question is in
the corpus. The served model answers each through the chat template, as the
API does. Two judges are trained on the corpus's posts with the sample's
ground truth (TF-IDF + logistic regression): one tells a post's topic, the
other a reply from a new post (with the @handles a reply starts with
stripped, as the SFT data strips them). Figures:

- ``on_topic``: the share of answers the topic judge puts in the question's topic;
- ``reply_share``: the share the reply judge calls a reply rather than a new post;
- ``repetition``: the share of answers that repeat another answer word for word;
- ``echo_corpus``: the share of answers that are a corpus post word for word.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from roost.errors import UserError
from roost.workspace import Workspace

# Question templates the sample generator never writes ({s}: a topic bank subject).
EVAL_TEMPLATES = (
    "What's your take on {s}?",
    "Can you tell me about {s}?",
    "How do you feel about {s} lately?",
    "Any advice on {s}?",
)
_LEADING = re.compile(r"^(?:\s*@\w+)+\s*")


@dataclass
class ChatEvalConfig:
    questions: int = 200
    max_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    examples: int = 8  # (question, answer) pairs kept in the results for a person to read


def held_out_questions(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (question, topic) pairs over the sample's topics, round-robin, from EVAL_TEMPLATES."""
    from roost.sample.topics import BANKS, TOPICS

    rng = random.Random(seed)
    return [
        (rng.choice(EVAL_TEMPLATES).format(s=rng.choice(BANKS[t].subjects)).capitalize(), t)
        for t in (TOPICS[i % len(TOPICS)] for i in range(n))
    ]


def train_judges(ws: Workspace, truth_dir: Path):
    """(topic judge, reply judge, corpus texts, the judges' accuracy on a fifth of the posts held out):
    pipelines fit on the other corpus posts the sample's truth labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from roost.corpus.schema import read_table

    truth = {r["id"]: r for r in map(json.loads, (truth_dir / "post_topics.jsonl").read_text().splitlines())}
    posts = read_table(ws.corpus, "posts", ["id", "text"]).to_pydict()
    rows = [
        (_LEADING.sub("", text), truth[i])
        for i, text in zip(posts["id"], posts["text"])
        if i in truth and truth[i]["kind"] in ("post", "reply") and truth[i]["lang"] == "en"
    ]
    if len(rows) < 50:
        raise UserError(
            f"only {len(rows)} English organic posts of the corpus are in {truth_dir}: "
            "the corpus is not the sample network's"
        )

    held = [k % 5 == 0 for k in range(len(rows))]
    judges, accuracy = [], {}
    for field in ("topic", "kind"):
        x, y = [t for t, _ in rows], [r[field] for _, r in rows]
        judge = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            LogisticRegression(max_iter=500, class_weight="balanced"),
        )
        judge.fit([a for a, h in zip(x, held) if not h], [b for b, h in zip(y, held) if not h])
        test = [(a, b) for a, b, h in zip(x, y, held) if h]
        accuracy[field] = float(sum(p == b for p, (_, b) in zip(judge.predict([a for a, _ in test]), test)) / len(test))
        judges.append(judge)
    return judges[0], judges[1], set(posts["text"]), accuracy


def answer(ws: Workspace, questions: list[str], cfg: ChatEvalConfig) -> list[str]:
    """The served model's answers, sampled through roost's engine with the chat template."""
    from roost.engine import Engine, EngineConfig, SamplingParams
    from roost.export import load_hf
    from roost.tokenizer import load_tokenizer

    tok = load_tokenizer(ws.model)
    engine = Engine(load_hf(ws.model), tok, EngineConfig(slots=8, queue=len(questions)))
    try:
        requests = [
            engine.submit(
                tok.encode_chat([{"role": "user", "content": q}], add_generation_prompt=True)[0],
                SamplingParams(
                    max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed + i
                ),
            )
            for i, q in enumerate(questions)
        ]
        return ["".join(e.text for e in r).strip() for r in requests]
    finally:
        engine.close()


def score(pairs: list[tuple[str, str]], answers: list[str], topic_judge, reply_judge, corpus: set[str]) -> dict:
    """The figures of the module docstring for ``answers`` to ``pairs`` of (question, topic)."""
    n = max(len(answers), 1)
    topics, kinds = topic_judge.predict(answers), reply_judge.predict(answers)
    seen: dict[str, int] = {}
    for a in answers:
        seen[a] = seen.get(a, 0) + 1
    return {
        "questions": len(answers),
        "on_topic": sum(p == t for p, (_, t) in zip(topics, pairs)) / n,
        "reply_share": sum(k == "reply" for k in kinds) / n,
        "repetition": sum(c for c in seen.values() if c > 1) / n,
        "echo_corpus": sum(a in corpus for a in answers) / n,
    }


def eval_chat(ws: Workspace, truth_dir: Path, cfg: ChatEvalConfig | None = None) -> dict:
    cfg = cfg or ChatEvalConfig()
    pairs = held_out_questions(cfg.questions, cfg.seed)
    topic_judge, reply_judge, corpus, accuracy = train_judges(ws, truth_dir)
    answers = answer(ws, [q for q, _ in pairs], cfg)
    out = score(pairs, answers, topic_judge, reply_judge, corpus)
    out["judge_accuracy"] = accuracy  # on held-out corpus posts: how far the two judges can be trusted
    out["examples"] = [
        {"question": q, "topic": t, "answer": a} for (q, t), a in list(zip(pairs, answers))[: cfg.examples]
    ]
    return out
