"""Calibrated scores: a monotone map fitted on the validation cells, stored in model files."""

from __future__ import annotations

import numpy as np
import pytest

from sarcnet_sklearn import make_sarcnet_pipeline, regression_report
from sarcnet_sklearn._score_map import apply_score_map, check_score_map, fit_score_map
from sarcnet_sklearn.deploy import load_model, save_model


def test_score_map_removes_a_bias_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 5, 2000)
    raw = 0.5 * truth + 2.2 + rng.normal(0, 0.3, 2000)  # too high, too narrow
    for n in (100, 1000):  # affine, then isotonic
        score_map = fit_score_map(raw[:n], truth[:n])
        assert score_map["kind"] == ("affine" if n < 500 else "isotonic")
        check_score_map(score_map)
        test = apply_score_map(score_map, raw[1000:])
        before = regression_report(truth[1000:], raw[1000:])
        after = regression_report(truth[1000:], test)
        assert after["spearman"] == pytest.approx(before["spearman"], abs=1e-12)
        assert after["mae"] < 0.7 * before["mae"] and after["r2"] > before["r2"]
        assert abs(np.mean(test - truth[1000:])) < 0.1
    # a useless model gets a shift only, never a reversed ranking
    shift = fit_score_map([3.0, 2.0, 1.0], [1.0, 2.0, 3.0])
    assert shift["slope"] == 1.0 and apply_score_map(shift, [1.0, 2.0]).tolist() == [1.0, 2.0]
    assert fit_score_map([1.0], [2.0]) is None
    with pytest.raises(ValueError, match="must not decrease"):
        check_score_map({"kind": "isotonic", "x": [1.0, 0.5], "y": [1.0, 2.0], "n_cells": 5})


def test_a_fitted_model_predicts_calibrated_scores_and_files_keep_the_map(cells, tiny_params,
                                                                           tmp_path):
    train, valid = cells.iloc[:120], cells.iloc[120:180]
    model = make_sarcnet_pipeline(1, **tiny_params).fit(
        train, train["score"], validation_data=(valid, valid["score"]))
    net = model.regressor
    assert net.score_map_["kind"] == "affine" and net.score_map_["n_cells"] == len(valid)
    calibrated = model.predict(valid)
    net.set_params(calibrate_scores=False)  # one argument away from the paper's raw output
    raw = model.predict(valid)
    net.set_params(calibrate_scores=True)
    assert not np.allclose(raw, calibrated)
    assert regression_report(valid["score"], calibrated)["spearman"] == pytest.approx(
        regression_report(valid["score"], raw)["spearman"])
    # the map is the least-squares line on the validation cells: no bias left on them
    assert np.mean(calibrated - valid["score"]) == pytest.approx(0.0, abs=1e-3)
    for name, file_format in (("model.joblib", "joblib"), ("model.zip", "safe")):
        path = save_model(model, tmp_path / name, format=file_format)
        loaded = load_model(path)
        assert loaded.regressor.score_map_ == net.score_map_
        np.testing.assert_allclose(loaded.predict(valid.head(5)), calibrated[:5], rtol=1e-5)
