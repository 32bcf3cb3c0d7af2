"""Click-through prediction: a logistic regression over a handful of logged features.

Features are logged with every impression at decision time (so training sees
exactly what serving saw, with no leakage from later clicks):

- ``similarity``: the model's cosine similarity between context and creative
- ``interest_share``: how much of the context (a user's recent posts, each scored alone) is on the
  campaign's topics (:mod:`roost.ads.topics`; a text naming one of its keywords counts fully): an
  estimate of the user's interest in it. It replaced a 0/1 ``keyword_match``; files trained on that
  are refused on load with a request to retrain
- ``position``: the slot, 0 first
- ``hist_ctr``: the campaign's smoothed historical CTR at decision time
- ``user_activity``: the user's number of posts in the corpus

Serving applies the weights with numpy (no scikit-learn on the hot path);
``train`` fits them with scikit-learn on an earlier part of the log and reports
AUC, log loss and RCE (relative cross-entropy against the training base rate)
on the later part.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from roost.errors import UserError
from roost.workspace import atomic_write_json

FEATURES = ("similarity", "interest_share", "position", "hist_ctr", "user_activity")
# the sign each feature's weight may have (0: either): being on the user's topics, a campaign's past clicks
# never lower the chance of a click, a lower slot never raises it
SIGNS = (0, 1, -1, 1, 0)


def smoothed_ctr(impressions: int, clicks: int, prior: float = 0.02, strength: float = 100.0) -> float:
    """Beta-prior CTR: new campaigns start at the prior, history takes over as impressions grow."""
    return (clicks + prior * strength) / (impressions + strength)


def campaign_propensity(clicks: np.ndarray, expected: np.ndarray, prior_clicks: float) -> np.ndarray:
    """Each campaign's clicks over the clicks the model expected of its impressions, shrunk towards 1.

    Why: campaigns differ in how clickable they are whoever sees them (the sample network's campaigns by 2
    logits), and the features cannot say so: ``hist_ctr`` counts who was shown the ad as much as the ad, and
    from an exploration log (20 impressions a campaign) it is noise and gets no weight. The ratio of observed
    to expected clicks (COEC) of the served impressions is the campaign's own share; ``prior_clicks`` pseudo
    clicks on both sides keep a campaign with little history near 1. The simulator's revenue rose 4-6% with it
    (BENCHMARKS.md, Ads).
    """
    return (np.asarray(clicks, np.float64) + prior_clicks) / (np.asarray(expected, np.float64) + prior_clicks)


def with_propensity(p: np.ndarray, counts: np.ndarray, prior_clicks: float | None) -> np.ndarray:
    """``p`` times each campaign's :func:`campaign_propensity` (``counts``: its served impressions, clicks and
    expected clicks, one row per entry of ``p``), kept inside (0, 1); ``p`` itself when ``prior_clicks`` is None."""
    if prior_clicks is None:
        return p
    return np.clip(p * campaign_propensity(counts[:, 1], counts[:, 2], prior_clicks), 1e-6, 0.99)


def transform(raw: np.ndarray) -> np.ndarray:
    """Raw logged features (n, 5) -> model inputs: logits for rates, log for counts."""
    sim, kw, pos, ctr, act = raw.T
    ctr = np.clip(ctr, 1e-4, 1 - 1e-4)
    return np.stack([sim, kw, np.log1p(pos), np.log(ctr / (1 - ctr)), np.log1p(act)], axis=1)


@dataclass
class CTRModel:
    """Weights over :func:`transform`'s inputs. The defaults are a prior for a fresh workspace.

    The prior leans on the interest share (``interest_share``) as much as on similarity: users click what
    they post about, and a small or lexical embedder's cosine is a weaker sign of that than the share.
    """

    weights: list[float] = field(default_factory=lambda: [2.0, 2.0, -0.4, 1.0, 0.0])
    bias: float = 0.0
    base_rate: float = 0.02
    metrics: dict = field(default_factory=dict)
    # isotonic map [[raw...], [calibrated...]] from the logistic output to the click rate seen when serving
    calibration: list[list[float]] = field(default_factory=list)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        p = self.predict_raw(raw)
        return np.interp(p, *self.calibration) if self.calibration else p

    def predict_raw(self, raw: np.ndarray) -> np.ndarray:
        z = transform(np.atleast_2d(raw)) @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def calibrated(self, raw: np.ndarray, y: np.ndarray, min_clicks_isotonic: int = 1000) -> CTRModel:
        """A copy whose predictions match the click rates of served impressions (``raw`` features, ``y`` clicks).

        Why: the model learns from one log (e.g. random serving), but the auction
        shows the ads it rates highest, so among what is shown its high predictions
        run above the truth (the winner's curse), and served ads lie where the
        exploration log had few impressions. A monotone map fitted on what serving
        actually showed brings them back to observed rates without ever reversing
        their order: isotonic with ``min_clicks_isotonic`` clicks and more, since
        the served ads' curve bends (the top deciles 40-50% above their rate, the
        lowest 25% below); Platt's two-number logistic map with fewer, which a few
        hundred clicks can pin down where a free-form curve follows their noise. In
        the simulator (BENCHMARKS.md, Ads): at 10,000 requests isotonic was 11% off
        at its worst decile, Platt 13%; at 2,000 requests (270 clicks to fit)
        isotonic 61%, Platt 24%.
        """
        p = self.predict_raw(raw)
        if int(y.sum()) >= min_clicks_isotonic:
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip").fit(p, y)
            xs, ys = iso.X_thresholds_, iso.y_thresholds_  # np.interp between them is what iso.predict does
        else:
            from sklearn.linear_model import LogisticRegression

            logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
            fit = LogisticRegression(C=1e4).fit(logit.reshape(-1, 1), y)
            grid = np.linspace(-9.0, 9.0, 361)  # logits; np.interp over p keeps predict one vectorized call
            xs = 1.0 / (1.0 + np.exp(-grid))
            ys = 1.0 / (1.0 + np.exp(-(fit.coef_[0, 0] * grid + fit.intercept_[0])))
        return CTRModel(self.weights, self.bias, self.base_rate, self.metrics, [xs.tolist(), ys.tolist()])

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {"features": list(FEATURES), **asdict(self)})

    @classmethod
    def load(cls, path: str | Path) -> CTRModel:
        data = json.loads(Path(path).read_text())
        if data.get("features") != list(FEATURES):
            raise UserError(
                f"{path}: trained on features {data.get('features')}, this roost uses {list(FEATURES)}; "
                "run `roost ads train-ctr` again"
            )
        data.pop("features")
        return cls(**data)


def evaluate(y: np.ndarray, p: np.ndarray, base_rate: float) -> dict:
    """AUC, log loss, and RCE: % of the base-rate predictor's log loss that the model removes."""
    from sklearn.metrics import log_loss, roc_auc_score

    p = np.clip(p, 1e-6, 1 - 1e-6)
    ll = float(log_loss(y, p, labels=[0, 1]))
    ll_base = float(log_loss(y, np.full_like(p, np.clip(base_rate, 1e-6, 1 - 1e-6)), labels=[0, 1]))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return {
        "auc": auc,
        "log_loss": ll,
        "base_log_loss": ll_base,
        "rce": 100.0 * (ll_base - ll) / ll_base,
        "n": len(y),
        "clicks": int(y.sum()),
    }


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10, max_rel_se: float = 0.1) -> dict:
    """Predicted against observed click rate per decile of the prediction (equal-count bins).

    Each decile has its impressions ``n``, ``clicks`` and ``rel_se``, the observed rate's relative standard
    error (binomial; None without clicks): sampling alone moves the observed rate by that much.
    ``max_rel_error`` is the largest ``|predicted - observed| / observed`` over the deciles with at least one
    click; ``max_rel_error_measured``
    the same over the deciles with ``rel_se <= max_rel_se`` (about 100 clicks and more), where a 20% error
    stands out of the noise; ``unmeasured`` counts the others: they need more impressions to judge.
    """
    order = np.argsort(p, kind="stable")
    rows = []
    for part in np.array_split(order, bins):
        if len(part):
            obs, clicks = float(y[part].mean()), int(y[part].sum())
            rows.append(
                {
                    "n": len(part),
                    "clicks": clicks,
                    "predicted": float(p[part].mean()),
                    "observed": obs,
                    "rel_se": float(np.sqrt((1 - obs) / clicks)) if clicks else None,
                }
            )
    errs = [(abs(r["predicted"] - r["observed"]) / r["observed"], r["rel_se"]) for r in rows if r["observed"] > 0]
    measured = [e for e, se in errs if se <= max_rel_se]
    return {
        "deciles": rows,
        "max_rel_error": max(e for e, _ in errs) if errs else float("nan"),
        "max_rel_error_measured": max(measured) if measured else float("nan"),
        "unmeasured": len(rows) - len(measured),
    }


def events_to_arrays(events) -> tuple[np.ndarray, np.ndarray]:
    """Store rows (oldest first) -> raw feature matrix and click labels."""
    raw = np.array([[json.loads(e["features"])[f] for f in FEATURES] for e in events], dtype=np.float64)
    y = np.array([int(e["clicked"]) for e in events], dtype=np.int64)
    return raw.reshape(-1, len(FEATURES)), y


def expected_clicks(model: CTRModel, events) -> dict[tuple[str, str], float]:
    """(campaign id, UTC day) -> the clicks ``model`` expects of the impressions logged then (store rows).

    Why restate them: a campaign's propensity compares its clicks with what the click model expected
    (:func:`campaign_propensity`), and a new model (retrained, recalibrated) expects other numbers of the same
    impressions; sums from the old one would carry its bias into the new one's pCTR. In the simulator the
    exploration log's model runs 40-50% high on served ads, so after recalibration every propensity stayed low
    and the calibrated pCTR ran under the observed rate (BENCHMARKS.md, Ads).
    """
    raw, _ = events_to_arrays(events)
    out: dict[tuple[str, str], float] = {}
    for e, p in zip(events, model.predict(raw).tolist() if len(raw) else []):
        key = (e["campaign_id"], e["day"])
        out[key] = out.get(key, 0.0) + p
    return out


def train(raw: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, c: float = 1.0) -> CTRModel:
    """Fit on the earliest (1 - test_fraction) of the log, evaluate on the rest (a time split).

    Weights must have the sign the feature can only have (:data:`SIGNS`): a fit that gives one the other sign
    is fitted again without it. Why: an exploration log spreads each campaign's few impressions thin, so its
    ``hist_ctr`` is mostly noise and can come out with a negative weight (-1.05 on a 4,000-impression random
    log); serving then ranks the campaigns users click most as the least likely to be clicked, and
    over-predicts the others (the top deciles of served ads ran 40-80% above their observed rate).
    """
    from sklearn.linear_model import LogisticRegression

    n = len(y)
    split = int(n * (1 - test_fraction))
    y_train, y_test = y[:split], y[split:]
    if split < 10 or len(y_test) < 10:
        raise UserError(f"need at least 50 logged impressions to train and test a click model, have {n}")
    if not 0 < y_train.sum() < len(y_train):
        raise UserError(
            f"the training part of the log has {int(y_train.sum())} clicks in {len(y_train)} "
            "impressions: need both clicks and non-clicks"
        )
    # standardize so the L2 penalty treats every feature alike (similarity spans ~0.3, activity ~5),
    # then fold the scaling back into the weights so serving needs no scaler
    x = transform(raw[:split])
    mean, std = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    used = np.ones(len(FEATURES), dtype=bool)
    while True:
        fit = LogisticRegression(C=c, max_iter=1000).fit(((x - mean) / std)[:, used], y_train)
        weights = np.zeros(len(FEATURES))
        weights[used] = fit.coef_[0] / std[used]
        wrong = used & (weights * np.array(SIGNS) < 0)
        if not wrong.any():
            break
        used &= ~wrong
    base = float(y_train.mean())
    model = CTRModel(
        weights=[float(w) for w in weights], bias=float(fit.intercept_[0] - weights @ mean), base_rate=base
    )
    model.metrics = {
        "train": evaluate(y_train, model.predict(raw[:split]), base),
        "test": evaluate(y_test, model.predict(raw[split:]), base),
    }
    return model
