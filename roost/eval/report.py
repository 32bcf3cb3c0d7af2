"""``results.json`` and a readable ``report.html`` with PNG plots (matplotlib) from :func:`roost.eval.suite.run_all`."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from roost.workspace import Workspace, atomic_write_json, atomic_write_text

METHODS = (("tfidf", "TF-IDF + LR (baseline)"), ("probe", "model: linear probe"), ("finetune", "model: fine-tuned"))
COLORS = ("#9aa5b1", "#2f6fde", "#e8590c")

CSS = """
body { font-family: system-ui, sans-serif; color: #1f2933; max-width: 980px; margin: 24px auto; padding: 0 16px; }
h1 { margin-bottom: 0; } .muted { color: #66788a; font-size: 14px; }
h2 { margin-top: 32px; border-bottom: 1px solid #e1e6ec; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e1e6ec; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.best { font-weight: 700; }
img { max-width: 100%; border: 1px solid #e1e6ec; border-radius: 6px; }
.note { background: #fff8e6; border: 1px solid #f1d38a; padding: 6px 10px; border-radius: 6px; }
"""


def _save(fig, out: Path) -> Path:
    """Write a report figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tweeteval(tasks: dict, metric: str, out: Path) -> Path:
    """Grouped bars: one group per task, one bar per method."""
    plt = _plt()
    names = list(tasks)
    methods = [(k, label) for k, label in METHODS if any(k in row for row in tasks.values())]
    width = 0.8 / len(methods)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4))
    for i, ((key, label), color) in enumerate(zip(methods, COLORS)):
        ax.bar(
            x + (i - (len(methods) - 1) / 2) * width,
            [tasks[n].get(key, {}).get(metric, 0) for n in names],
            width,
            label=label,
            color=color,
        )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(metric.replace("_", "-"))
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"TweetEval validation {metric.replace('_', '-')}")
    return _save(fig, out)


def plot_search(search: dict, out: Path) -> Path:
    plt = _plt()
    rows = [(task, mode, m) for task, r in search.items() for mode, m in r["metrics"].items()]
    metrics = sorted({k for _, _, m in rows for k in m})
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        labels = [f"{t}\n{mode}" for t, mode, _ in rows]
        ax.bar(range(len(rows)), [m.get(metric, 0) for _, _, m in rows], color=COLORS[1])
        ax.set_xticks(range(len(rows)), labels, fontsize=8)
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, out)


def plot_calibration(cal: dict, out: Path) -> Path:
    """Predicted against observed click rate per decile of the prediction; calibrated points lie on the diagonal."""
    plt = _plt()
    pred = [d["predicted"] for d in cal["deciles"]]
    seen = [d["observed"] for d in cal["deciles"]]
    top = max(pred + seen + [1e-3]) * 1.1
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, top], [0, top], color="#999", lw=1, ls="--", label="calibrated")
    ax.fill_between([0, top], [0, top / 1.2], [0, top * 1.2], color="#ddd", alpha=0.5, label="within 20%")
    ax.plot(pred, seen, "o-", color=COLORS[0], label="model+pctr")
    ax.set_xlabel("predicted CTR (decile mean)")
    ax.set_ylabel("observed CTR")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend(fontsize=8)
    ax.set_title(f"pCTR calibration (largest error {cal['max_rel_error']:.0%})")
    return _save(fig, out)


def _table(header: list[str], rows: list[list], best_cols: set[int] = frozenset()) -> str:
    def cell(i: int, v, row) -> str:
        if isinstance(v, float):
            best = i in best_cols and v == max(x for j, x in enumerate(row) if j in best_cols and isinstance(x, float))
            return f"<td class='num{' best' if best else ''}'>{v:.3f}</td>"
        if isinstance(v, int):
            return f"<td class='num'>{v:,}</td>"
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, v, r) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _absent(part: dict | None) -> str | None:
    """The note for a part that was not run or was skipped, or None when it has results to show."""
    if part is None:
        return "<p class='muted'>not run</p>"
    return _skip_note(part) if "skipped" in part else None


def _skip_note(part: dict) -> str:
    return f"<p class='note'>Skipped: {html.escape(part['skipped'])}</p>"


def write_report(results: dict, ws: Workspace, out_dir: Path, run: str = "pretrain") -> Path:
    """Write ``results.json``, the plots and ``report.html`` into ``out_dir``; returns the HTML path."""
    from roost.train.metrics import plot_losses

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "results.json", results)
    parts = [
        f"<h1>roost evaluation</h1><p class='muted'>workspace {html.escape(str(ws.root))} · "
        f"{html.escape(results['created'])} · seconds per part: "
        + html.escape(", ".join(f"{k} {v}" for k, v in results["seconds"].items()))
        + "</p>"
    ]

    parts.append("<h2>Language model</h2>")
    lm = results.get("lm")
    metrics = ws.root / "runs" / run / "metrics.jsonl"
    if (note := _absent(lm)) is not None:
        parts.append(note)
    else:
        parts.append(
            _table(
                ["served model", "validation loss (nats/token)", "bits per byte", "tokens", "parameters"],
                [[lm["source"], lm["val_loss"], lm.get("val_bpb", float("nan")), lm["tokens"], lm["params"]]],
            )
        )
    if metrics.is_file():
        plot_losses(metrics, out_dir / "loss.png", title=f"training run {run}")
        parts.append("<img src='loss.png' alt='loss curve'>")

    parts.append("<h2>Chat: held-out questions</h2>")
    chat = results.get("chat")
    if (note := _absent(chat)) is not None:
        parts.append(note)
    else:
        parts.append(
            _table(
                [
                    "questions",
                    "on topic",
                    "a reply, not a new post",
                    "repeats another answer",
                    "a corpus post verbatim",
                ],
                [[chat["questions"], chat["on_topic"], chat["reply_share"], chat["repetition"], chat["echo_corpus"]]],
            )
        )
        parts.append(
            _table(
                ["question", "topic", "answer"], [[e["question"], e["topic"], e["answer"]] for e in chat["examples"]]
            )
        )

    parts.append("<h2>TweetEval classification</h2>")
    tw = results.get("tweeteval")
    if (note := _absent(tw)) is not None:
        parts.append(note)
    elif tw["tasks"]:
        tasks = tw["tasks"]
        methods = [(k, label) for k, label in METHODS if any(k in r for r in tasks.values())]
        cols = ["task", "train", "val"] + [f"{label} {m}" for m in ("acc", "F1") for _, label in methods]
        rows = [
            [name, r["n_train"], r["n_val"]] + [r[k][metric] for metric in ("accuracy", "macro_f1") for k, _ in methods]
            for name, r in tasks.items()
        ]
        f1_cols = set(range(3 + len(methods), 3 + 2 * len(methods)))
        parts.append(
            "<p class='muted'>Validation splits; F1 is macro-F1 over the task's labels. "
            f"Each method trains on the same examples: the first {tw['config']['max_train']:,} of the "
            "task's train split, or all of a smaller one.</p>"
        )
        parts.append(_table(cols, rows, f1_cols))
        plot_tweeteval(tasks, "macro_f1", out_dir / "tweeteval_f1.png")
        plot_tweeteval(tasks, "accuracy", out_dir / "tweeteval_accuracy.png")
        parts.append(
            "<img src='tweeteval_f1.png' alt='macro-F1 per task'><img src='tweeteval_accuracy.png' "
            "alt='accuracy per task'>"
        )
        for note in tw.get("notes", []):
            parts.append(f"<p class='muted'>{html.escape(note)}</p>")

    parts.append("<h2>Search</h2>")
    search = results.get("search")
    if (note := _absent(search)) is not None:
        parts.append(note)
    else:
        names = sorted({k for r in search.values() for m in r["metrics"].values() for k in m})
        rows = [
            [task, mode, r["queries"], *[m.get(k, float("nan")) for k in names]]
            for task, r in search.items()
            for mode, m in r["metrics"].items()
        ]
        parts.append(_table(["task", "mode", "queries", *names], rows))
        plot_search(search, out_dir / "search.png")
        parts.append("<img src='search.png' alt='search metrics'>")

    parts.append("<h2>Ads (offline simulation)</h2>")
    ads = results.get("ads")
    if (note := _absent(ads)) is not None:
        parts.append(note)
    else:
        cols = ["policy", "impressions", "clicks", "ctr", "revenue", "rpm", "pctr_auc", "budget_use"]
        parts.append(_table(cols, [[r[c] for c in cols] for r in ads["policies"]]))
        cal = next((r.get("calibration") for r in ads["policies"] if r["policy"] == "model+pctr"), None)
        if cal:
            plot_calibration(cal, out_dir / "calibration.png")
            parts.append("<img src='calibration.png' alt='predicted against observed CTR per decile'>")

    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>roost evaluation</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    return atomic_write_text(out_dir / "report.html", page)
