"""Conformal prediction intervals: MAPIE's quantile, coverage, model files."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from sarcnet_sklearn import calibrate, make_sarcnet_pipeline, predict_interval
from sarcnet_sklearn.deploy import load_model, save_model
from sarcnet_sklearn.intervals import conformity_scores, interval_half_width


def test_intervals_equal_mapies_split_conformal_intervals():
    from mapie.regression import SplitConformalRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.standard_t(3, size=400)
    model = LinearRegression().fit(X[:200], y[:200])
    X_cal, y_cal, X_test = X[200:287], y[200:287], X[300:]
    calibrate(model, X_cal, y_cal)
    for confidence in (0.5, 0.8, 0.9, 0.95):
        mapie = SplitConformalRegressor(model, confidence_level=confidence, prefit=True)
        mapie.conformalize(X_cal, y_cal)
        expected_point, expected = mapie.predict_interval(X_test)
        point, low, high = predict_interval(model, X_test, confidence, score_range=None)
        np.testing.assert_allclose(point, expected_point)
        np.testing.assert_allclose(low, expected[:, 0, 0])
        np.testing.assert_allclose(high, expected[:, 1, 0])


@pytest.fixture(scope="module")
def feature_model(cells):
    """A cheap SarcNet (feature branch only): the guarantee does not depend on the model."""
    train = cells.iloc[:80]
    model = make_sarcnet_pipeline(protocol=2, use_images=False, max_epochs=5, batch_size=16,
                                  lr=1e-3, iterator_valid__batch_size=200, verbose=0,
                                  random_state=0, device="cpu")
    return model.fit(train, train["score"])


def test_ninety_percent_intervals_cover_ninety_percent_of_new_cells(cells, feature_model):
    """Over many random calibration/test splits of 160 held-out cells, the 90 % intervals
    hold 90 % of the test cells' scores: at least 0.9 and at most 0.9 + 1 / 81 in
    expectation (a single split of this size scatters by about +-0.05)."""
    held_out = cells.iloc[80:].reset_index(drop=True)
    rng = np.random.default_rng(0)
    coverages, widths = [], []
    for _ in range(30):
        order = rng.permutation(len(held_out))
        calibration, test = held_out.iloc[order[:80]], held_out.iloc[order[80:]]
        calibrate(feature_model, calibration, calibration["score"])
        _, low, high = predict_interval(feature_model, test, confidence=0.9)
        score = test["score"].to_numpy()
        coverages.append(np.mean((low <= score) & (score <= high)))
        widths.append(np.mean(high - low))
    mean_coverage = np.mean(coverages)
    assert 0.86 <= mean_coverage <= 0.94
    assert 0.88 <= mean_coverage <= 0.93  # tighter: the guarantee, less averaging noise
    # 50 % intervals are narrower and cover about half.
    _, low, high = predict_interval(feature_model, held_out, confidence=0.5)
    assert np.mean(high - low) < np.mean(widths)


def test_calibration_travels_in_both_model_files_and_refitting_drops_it(
        cells, feature_model, tmp_path):
    calibration = cells.iloc[80:160]
    calibrate(feature_model, calibration, calibration["score"])
    stored = conformity_scores(feature_model)
    assert stored.shape == (80,) and (stored >= 0).all()
    some = cells.iloc[160:170]
    expected = predict_interval(feature_model, some, 0.9)
    for name, file_format in (("m.joblib", "joblib"), ("m.zip", "safe")):
        loaded = load_model(save_model(feature_model, tmp_path / name, format=file_format))
        np.testing.assert_array_equal(conformity_scores(loaded), stored)
        for got, want in zip(predict_interval(loaded, some, 0.9), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)

    refit = make_sarcnet_pipeline(protocol=2, use_images=False, max_epochs=1, verbose=0,
                                  device="cpu")
    refit.fit(cells.iloc[:40], cells["score"].iloc[:40])
    calibrate(refit, calibration, calibration["score"])
    refit.fit(cells.iloc[:40], cells["score"].iloc[:40])
    assert conformity_scores(refit) is None
    with pytest.raises(ValueError, match="not calibrated.*calibrate"):
        predict_interval(refit, some)
    calibrate(refit, calibration.iloc[:5], calibration["score"].iloc[:5])
    with pytest.raises(ValueError, match="calibrated on 5 cells, too few for 90% intervals"):
        interval_half_width(refit, 0.9)
    with pytest.raises(ValueError, match="confidence must be"):
        interval_half_width(refit, 90)
