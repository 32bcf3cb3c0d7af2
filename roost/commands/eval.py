"""``roost eval [TARGET]``: quality reports.

Targets: ``search`` (search quality), ``lm`` (validation loss, bits per byte),
``tweeteval`` (classification: baseline, probe, fine-tune) and ``ads`` (policy
simulation). With no target every part runs and ``report.html`` is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roost.cli import add_workspace_arg
from roost.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate the model, search and ads; write report.html",
        description="Evaluate the pipeline. With no TARGET, run every part (lm, chat, tweeteval, search, "
        "ads) and write results.json and report.html into --report.",
    )
    add_report_args(p)
    p.set_defaults(func=run_eval_report)
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    for name, text in (
        ("lm", "validation loss and bits per byte of the served model"),
        ("chat", "held-out questions in the sample's topics: on-topic, reply and repetition shares"),
        ("tweeteval", "TweetEval classification: TF-IDF baseline, embedding probe, fine-tune"),
        ("ads", "offline simulation of ad serving policies on the sample network"),
    ):
        t = targets.add_parser(
            name, help=text, description=text.capitalize() + "; writes results.json and report.html into --report."
        )
        add_report_args(t)
        t.set_defaults(func=run_eval_report, parts=(name,))

    s = targets.add_parser(
        "search",
        help="NDCG@10, Recall@100 and MRR of lexical, semantic and hybrid search",
        description="Search quality on three tasks. topics: the workspace index against the sample network's "
        "ground-truth topics (--truth SAMPLE_DIR/truth). hashtags: tweets (--tweets FILE or folder of "
        "*_text.txt) with held-out hashtags removed from the text, queried by the hashtags' words; "
        "indexed in a scratch folder with the workspace model. unseen: posts the pipeline never saw "
        "(--unseen FILE, one post a line) added live to a scratch index through the index API, queried "
        "by their hashtags' words (the hashtags removed from them), with an ablation table that turns "
        "each of the model's techniques off in turn.",
    )
    add_workspace_arg(s)
    s.add_argument(
        "--task",
        choices=["topics", "hashtags", "unseen"],
        action="append",
        help="task(s) to run (repeatable; default: those whose data is given)",
    )
    s.add_argument("--truth", type=Path, help="the sample network's truth/ folder (topics task)")
    s.add_argument(
        "--tweets", type=Path, help="tweets: a text file, one per line, or a folder of *_text.txt (hashtags task)"
    )
    s.add_argument(
        "--unseen",
        type=Path,
        help="posts the model never saw: a text file, one post a line, or a folder of them (unseen task)",
    )
    s.add_argument(
        "--max-queries",
        type=int,
        default=300,
        help="hashtags and unseen tasks: at most this many queries (default 300)",
    )
    s.add_argument("--no-vectors", action="store_true", help="lexical mode only (no model needed)")
    s.add_argument("--out", type=Path, help="results JSON (default: WORKSPACE/runs/eval-search/results.json)")
    s.set_defaults(func=run_eval_search)
    for target in targets.choices.values():
        keep_given_before(p, target)


def keep_given_before(parent: argparse.ArgumentParser, target: argparse.ArgumentParser) -> None:
    """An option given before TARGET (``roost eval -w WS chat``) keeps its value: argparse copies a subparser's
    defaults over what the parent parsed, so options both parsers have default to nothing on the TARGET's."""
    given_before = {a.dest for a in parent._actions if a.option_strings}
    for action in target._actions:
        if action.option_strings and action.dest in given_before and action.dest != "help":
            action.default = argparse.SUPPRESS


def run_eval_search(args: argparse.Namespace) -> int:
    from roost.search.eval import WorkspaceEval, evaluate_workspace, format_table
    from roost.search.unseen import format_ablation
    from roost.workspace import Workspace, atomic_write_json

    ws = Workspace(args.workspace)
    results = evaluate_workspace(
        ws,
        WorkspaceEval(args.task, args.truth, args.tweets, args.unseen, args.max_queries, vectors=not args.no_vectors),
    )
    for task, r in results.items():
        print(format_ablation(r) if task == "unseen" else format_table(task, r["metrics"], r["queries"]))
    out = args.out or ws.run_dir("eval-search") / "results.json"
    atomic_write_json(
        out, {"workspace": str(ws.root), "model": None if args.no_vectors else str(ws.model), "results": results}
    )
    print(f"results -> {out}")
    return 0


def add_report_args(p: argparse.ArgumentParser) -> None:
    from roost.eval import PARTS

    add_workspace_arg(p)
    p.set_defaults(parts=PARTS)
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="folder for results.json, report.html and plots (default: WORKSPACE/runs/eval)",
    )
    p.add_argument(
        "--tweeteval",
        type=Path,
        default=None,
        help="TweetEval folder: TASK/{train,val}_{text,labels}.txt and mapping.txt "
        "(default: ../shared/data/tweeteval when present, else that part is skipped)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        metavar="TASK",
        help="TweetEval tasks to run (default: every task with a train split), e.g. hate irony stance",
    )
    p.add_argument(
        "--max-train",
        type=int,
        default=None,
        help="training examples per task (default: roost.eval.classify.ClassifyConfig's, 5000)",
    )
    p.add_argument(
        "--finetune-steps",
        type=int,
        default=None,
        help="fine-tuning steps per task; 0 skips (default: roost.eval.classify.ClassifyConfig's, 200)",
    )
    p.add_argument(
        "--sample",
        type=Path,
        default=None,
        help="the sample network folder, for the search topics and the ads simulation (default: WORKSPACE/sample)",
    )
    p.add_argument("--ads-requests", type=int, default=1000, help="simulated ad requests per policy (default 1000)")


def run_eval_report(args: argparse.Namespace) -> int:
    from roost.eval.classify import ClassifyConfig
    from roost.eval.report import write_report
    from roost.eval.suite import EvalConfig, run_all
    from roost.workspace import Workspace

    ws = Workspace(args.workspace)
    if args.ads_requests < 10:
        raise UserError(f"--ads-requests must be at least 10, got {args.ads_requests}")
    cfg = EvalConfig(
        parts=tuple(args.parts),
        tweeteval=args.tweeteval,
        tasks=args.tasks,
        sample=args.sample,
        ads_requests=args.ads_requests,
        classify=ClassifyConfig(
            **{
                k: v
                for k, v in (("max_train", args.max_train), ("finetune_steps", args.finetune_steps))
                if v is not None
            }
        ),
    )
    out = args.report or ws.root / "runs" / "eval"
    results = run_all(ws, cfg, out)
    report = write_report(results, ws, out)
    print(f"results -> {out / 'results.json'}\nreport -> {report}")
    return 0
