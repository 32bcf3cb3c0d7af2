"""Calibrated click prediction: a model that over-predicts what serving shows is mapped back to observed rates,
per decile, and the map survives a save and a load."""

import numpy as np

from roost.ads.pctr import CTRModel, calibration


def served(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of shown ads, and clicks drawn well below the default model's prediction (the winner's curse):
    its logit less 1.2, about a third of it at low rates."""
    rng = np.random.default_rng(seed)
    raw = np.stack(
        [
            rng.uniform(0.2, 0.9, n),
            rng.uniform(0, 1, n),
            rng.integers(0, 2, n),
            rng.uniform(0.01, 0.1, n),
            rng.integers(0, 20, n),
        ],
        axis=1,
    ).astype(float)
    p = CTRModel().predict(raw)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(np.log(p / (1 - p)) - 1.2)))).astype(int)
    return raw, y


def test_calibration_maps_predictions_back_to_observed_rates_per_decile(tmp_path):
    model = CTRModel()
    raw, y = served(40_000, 0)
    before = calibration(y, model.predict(raw))
    assert before["max_rel_error"] > 1.0  # two to three times too high
    fixed = model.calibrated(raw, y)
    test_raw, test_y = served(40_000, 1)  # judged on impressions it was not fitted on
    after = calibration(test_y, fixed.predict(test_raw))
    assert after["max_rel_error"] < 0.2, after
    assert len(after["deciles"]) == 10 and sum(d["n"] for d in after["deciles"]) == 40_000
    p_old, p_new = model.predict(test_raw), fixed.predict(test_raw)
    assert np.array_equal(np.argsort(p_old, kind="stable"), np.argsort(p_new, kind="stable"))  # same ranking
    fixed.save(tmp_path / "ctr.json")
    assert np.allclose(CTRModel.load(tmp_path / "ctr.json").predict(test_raw), p_new)
