"""``roost ads load|migrate|train-ctr|train-safety|simulate``: campaigns, schema, click model, brand safety, offline A/B."""

from __future__ import annotations

import argparse
import json
from contextlib import closing, contextmanager
from pathlib import Path

from roost.cli import UserError, add_workspace_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ads",
        help="ad serving: load campaigns, train models, simulate",
        description="Ad serving: load campaigns, train the click and brand-safety models, "
        "and simulate serving policies.",
    )
    sub = parser.add_subparsers(dest="ads_command", metavar="ADS_COMMAND", required=True)

    p = sub.add_parser("load", help="import campaigns from a JSON file into workspace/ads.db (or --ads-db)")
    p.add_argument("file", type=Path, help='JSON: {"campaigns": [...]} (the sample network\'s ads.json) or a list')
    add_workspace_arg(p)
    add_ads_db_arg(p)
    p.set_defaults(func=cmd_load)

    p = sub.add_parser(
        "migrate",
        help="bring the ads database's schema up to this roost's version",
        description="Apply the versioned schema migrations (roost/ads/migrations.py) the database "
        "lacks, each in its own transaction, under a lock (safe to run from several "
        "places at once). A PostgreSQL database is migrated only by this command; "
        "replicas refuse to serve one whose schema is behind.",
    )
    add_workspace_arg(p)
    add_ads_db_arg(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("train-ctr", help="train the click model from logged impressions and clicks")
    p.add_argument("--test-fraction", type=float, default=0.2, help="latest fraction of the log held out (default 0.2)")
    add_workspace_arg(p)
    add_ads_db_arg(p)
    p.set_defaults(func=cmd_train_ctr)

    p = sub.add_parser(
        "train-safety",
        help="train brand-safety probes on the model's embeddings",
        description="Without --train: one probe, 'moderation', learned from the corpus's own "
        "moderation signals (posts removed, withheld or marked sensitive against the "
        "rest; 20%% held out to report). With --train: one logistic-regression probe per "
        "labelled set (TweetEval format: one text per line, one integer label per line). "
        "Example: --train hate tweeteval/hate/train_text.txt tweeteval/hate/train_labels.txt",
    )
    p.add_argument(
        "--train",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "TEXTS", "LABELS"),
        help="a probe's name and its training files (repeat for more probes); default: the corpus's moderation signals",
    )
    p.add_argument(
        "--val",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "TEXTS", "LABELS"),
        help="held-out files for a probe named in --train, to report AUC and macro-F1",
    )
    p.add_argument("--unsafe-labels", default="1", help="comma-separated labels that mean unsafe (default: 1)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many training examples per probe")
    p.add_argument(
        "--embedder",
        choices=("auto", "model", "hashing"),
        default="auto",
        help="embedding: the workspace model (auto when present) or a hashed bag of words",
    )
    p.add_argument(
        "--threads",
        default="fixed",
        help="CPU threads while embedding: fixed (torch's count) or auto (fewer while other work keeps the cores "
        "busy, as `roost train --threads auto`)",
    )
    add_workspace_arg(p)
    p.set_defaults(func=cmd_train_safety)

    p = sub.add_parser(
        "simulate",
        help="serve the sample network's users and compare policies",
        description="Run the sample network's users through ad requests with their ground-truth "
        "click model; report revenue, CTR, pCTR AUC and budget use for random, "
        "keyword-only and model-matched + pCTR serving.",
    )
    p.add_argument("--sample", type=Path, required=True, help="the folder `roost sample` wrote (ads.json, truth/)")
    p.add_argument("--requests", type=int, default=2000, help="ad requests per policy (default 2000)")
    p.add_argument("--slots", type=int, default=2, help="ads per request (default 2)")
    p.add_argument(
        "--days", type=int, default=1, help="simulated days the requests are spread over (caps are per day; default 1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--embedder",
        choices=("auto", "model", "hashing"),
        default="auto",
        help="embedding: the workspace model (auto when present) or a hashed bag of words",
    )
    add_workspace_arg(p)
    p.set_defaults(func=cmd_simulate)


def add_ads_db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ads-db",
        default=None,
        metavar="URL_OR_PATH",
        help="the ads database: a postgresql://user@host:port/db URL (shared by replicas) or a SQLite "
        "file (default: WORKSPACE/ads.db)",
    )


def _workspace(args):
    from roost.workspace import Workspace

    return Workspace(args.workspace)


def read_json(path: Path):
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None


def cmd_load(args: argparse.Namespace) -> int:
    from roost.ads.campaign import parse_campaigns

    specs = parse_campaigns(read_json(args.file), str(args.file))
    with closing(_store(args)) as store:
        ids = store.add_campaigns(specs)
    print(f"loaded {len(ids)} campaigns ({sum(len(s.creatives) for s in specs)} creatives) into {store.path}")
    return 0


def _ads_target(args) -> str | Path:
    """What --ads-db names, else the workspace's ads.db; a URL of another scheme is refused."""
    from roost.ads.db import is_postgres_url, redact

    target = args.ads_db
    if target is not None and "://" in target and not is_postgres_url(target):
        raise UserError(f"--ads-db must be a postgresql:// URL or a file path, got {redact(target)!r}")
    return target or _workspace(args).ads_db


@contextmanager
def _db_errors(target):
    """A database that cannot be reached, or whose schema is behind, is a UserError naming it (no traceback)."""
    from roost.ads.db import redact

    try:
        yield
    except ImportError as e:
        raise UserError(f"--ads-db: the PostgreSQL driver is missing ({e}); pip install 'psycopg[binary]'") from None
    except Exception as e:
        if type(e).__module__.startswith("psycopg") or isinstance(e, ValueError):
            raise UserError(f"ads database {redact(str(target))}: {e}") from None
        raise


def _store(args):
    from roost.ads.setup import open_store

    target = _ads_target(args)
    with _db_errors(target):
        return open_store(_workspace(args), ads_db=str(target))


def cmd_migrate(args: argparse.Namespace) -> int:
    from roost.ads.db import open_backend
    from roost.ads.migrations import current_version, head, migrate_schema

    target = _ads_target(args)
    with _db_errors(target), closing(open_backend(str(target))) as backend:
        before = current_version(backend)
        applied = migrate_schema(backend)
    for m in applied:
        print(f"applied migration {m.version}: {m.name}")
    print(
        f"ads database {backend.describe()}: schema version {before} -> {head()}"
        if applied
        else f"ads database {backend.describe()}: schema already at version {before} (current)"
    )
    return 0


def cmd_train_ctr(args: argparse.Namespace) -> int:
    from roost.ads.pctr import events_to_arrays, expected_clicks, train
    from roost.ads.setup import ctr_path, record_artifact

    ws = _workspace(args)
    if args.ads_db is None and not ws.ads_db.exists():
        raise UserError(f"{ws.ads_db} does not exist: load campaigns and serve ads first")
    with closing(_store(args)) as store:
        events = store.events()
        model = train(*events_to_arrays(events), test_fraction=args.test_fraction)
        model.save(ctr_path(ws))
        record_artifact(ws, ctr_path(ws).name, "roost ads train-ctr")
        # the campaigns' propensities compare their clicks with what the model the server will load expects
        restated = expected_clicks(model, events)
        store.restate_expected_clicks(restated)
    test = model.metrics["test"]
    print(
        f"click model: {test['n']} test impressions ({test['clicks']} clicks, later {args.test_fraction:.0%} "
        f"of the log): AUC {test['auc']:.3f}  log loss {test['log_loss']:.4f}  RCE {test['rce']:.1f}%"
    )
    print(f"saved {ctr_path(ws)} (the server loads it on start)")
    print(f"restated the expected clicks of {len({cid for cid, _ in restated})} campaigns under this model")
    return 0


def _parse_labels(text: str) -> set[int]:
    try:
        return {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise UserError(f"--unsafe-labels must be comma-separated integers, got {text!r}") from None


def cmd_train_safety(args: argparse.Namespace) -> int:
    from roost.ads.brand_safety import SafetyProbes, train_from_signals
    from roost.ads.embedder import resolve_embedder
    from roost.ads.retrieval import embed_in_batches
    from roost.ads.setup import record_artifact, safety_path
    from roost.labelled import read_labelled
    from roost.threads import check_mode

    check_mode(args.threads)
    ws = _workspace(args)
    unsafe = _parse_labels(args.unsafe_labels)
    names = [name for name, _, _ in args.train]
    for name, _, _ in args.val:
        if name not in names:
            raise UserError(f"--val {name}: no --train probe of that name (have {names})")
    embed, space = resolve_embedder(ws, args.embedder)
    probes = SafetyProbes(space=space).bind(embed)
    if not args.train:
        if not ws.read_manifest("corpus"):
            raise UserError(f"no corpus in {ws.root}: run `roost ingest` first, or give labelled files with --train")
        try:
            probes = train_from_signals(ws.corpus, embed, space, limit=args.limit, threads=args.threads)
        except ValueError as e:
            raise UserError(str(e)) from None
        m = probes.metrics.get("moderation")
        if m:
            print(
                f"moderation: {m['flagged']} flagged posts of {m['examples']}; {m['n']} held out: AUC {m['auc']:.3f}"
                f"  macro-F1 {m['macro_f1']:.3f} (against the platform's signals)"
            )
    for name, texts_file, labels_file in args.train:
        texts, labels = read_labelled(texts_file, labels_file)
        texts, labels = texts[: args.limit], labels[: args.limit]
        probes.add(
            name, texts, embed_in_batches(embed, texts, desc=f"embedding {name}", threads=args.threads), labels, unsafe
        )
    for name, texts_file, labels_file in args.val:
        texts, labels = read_labelled(texts_file, labels_file)
        m = probes.evaluate(
            name,
            texts,
            embed_in_batches(embed, texts, desc=f"embedding {name} val", threads=args.threads),
            labels,
            unsafe,
        )
        print(f"{name}: {m['n']} held-out examples: AUC {m['auc']:.3f}  macro-F1 {m['macro_f1']:.3f}")
    probes.save(safety_path(ws))
    record_artifact(
        ws,
        safety_path(ws).name,
        "roost ads train-safety",
        space=space,
        inputs={} if args.train else {"corpus": ws.stage_hash("corpus")},
    )
    print(f"saved {len(probes.names)} probes ({', '.join(probes.names)}) to {safety_path(ws)}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from roost.ads.campaign import parse_campaigns
    from roost.ads.context import UserHistory
    from roost.ads.embedder import resolve_embedder
    from roost.ads.simulator import SimConfig, simulate

    ws = _workspace(args)
    ws.require("corpus")
    if args.requests < 10 or args.slots < 1 or args.days < 1:
        raise UserError("--requests must be at least 10, --slots and --days at least 1")
    specs = parse_campaigns(read_json(args.sample / "ads.json"), str(args.sample / "ads.json"))
    from roost.sample.truth import ClickModel

    truth = ClickModel.load(args.sample)
    embed, space = resolve_embedder(ws, args.embedder)
    safety, unsafe_posts = _simulation_safety(ws, args.sample, embed, space)
    rows = simulate(
        specs,
        UserHistory.from_corpus(ws.corpus),
        truth,
        embed,
        space,
        SimConfig(requests=args.requests, slots=args.slots, seed=args.seed, days=args.days),
        safety=safety,
        unsafe_posts=unsafe_posts,
    )
    print(format_table(rows))
    base = next(r for r in rows if r["policy"] == "keyword")
    best = next(r for r in rows if r["policy"] == "model+pctr")
    if base["rpm"]:
        print(f"revenue per 1000 impressions, model+pctr / keyword: {best['rpm'] / base['rpm']:.2f}x")
    if best["calibration"]:
        print(format_calibration(best["calibration"]))
    return 0


def _simulation_safety(ws, sample: Path, embed, space: str):
    """The workspace's brand-safety probes when trained in ``space`` (else None, with a note), and the ids of
    the sample's ground-truth unsafe posts, next to which strict advertisers' impressions are counted."""
    from roost.ads.brand_safety import SafetyProbes
    from roost.ads.setup import safety_path

    path, probes = safety_path(ws), None
    if path.exists():
        probes = SafetyProbes.load(path)
        if probes.space != space:
            print(f"note: {path} was trained in space {probes.space!r}, not {space!r}: simulating without it")
            probes = None
        else:
            probes.bind(embed)
    else:
        print(f"note: no brand-safety probes ({path}): simulating without them (`roost ads train-safety`)")
    truth = sample / "truth" / "post_topics.jsonl"
    rows = map(json.loads, truth.read_text().splitlines()) if truth.exists() else ()
    return probes, frozenset(row["id"] for row in rows if row.get("unsafe"))


def format_calibration(cal: dict) -> str:
    """model+pctr's predicted against observed CTR per decile of the prediction."""
    lines = ["pCTR calibration (model+pctr): decile | impressions | clicks | predicted | observed | error"]
    lines += [
        f"{i + 1:>2} | {d['n']:>5} | {d['clicks']:>4} | {d['predicted']:.4f} | {d['observed']:.4f} | "
        + (f"{(d['predicted'] - d['observed']) / d['observed']:+.0%}" if d["clicks"] else "-")
        for i, d in enumerate(cal["deciles"])
    ]
    lines.append(f"largest relative error over deciles with clicks: {cal['max_rel_error']:.1%} (target: within 20%)")
    lines.append(
        f"over the deciles with ~100+ clicks (relative standard error <= 10%): {cal['max_rel_error_measured']:.1%}; "
        f"{cal['unmeasured']} decile(s) with too few clicks to judge 20% (more --requests)"
    )
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    cols = [
        "policy",
        "requests",
        "impressions",
        "clicks",
        "ctr",
        "revenue",
        "rpm",
        "pctr_auc",
        "budget_use",
        "unsafe_requests",
        "strict_next_to_unsafe",
    ]
    fmt = {"ctr": "{:.4f}", "revenue": "{:.2f}", "rpm": "{:.3f}", "pctr_auc": "{:.3f}", "budget_use": "{:.1%}"}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.get(c, "{}").format(r[c]) for c in cols) + " |")
    return "\n".join(lines)
