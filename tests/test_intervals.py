"""Conformal prediction intervals: MAPIE's quantile, coverage, model files."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from sarcnet_sklearn import calibrate, make_sarcnet_pipeline, predict_interval
from sarcnet_sklearn.deploy import load_model, save_model
from sarcnet_sklearn.intervals import conformity_scores, interval_bounds, interval_half_width


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


def test_prediction_lies_in_its_interval_even_outside_the_score_range():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = 3 + 2 * X[:, 0] + rng.normal(scale=0.3, size=300)  # many scores off the 1-5 scale
    model = calibrate(LinearRegression().fit(X[:100], y[:100]), X[100:200], y[100:200])
    raw = model.predict(X[200:])
    assert (raw > 5).any() and (raw < 1).any()
    point, low, high = predict_interval(model, X[200:], 0.9)
    np.testing.assert_array_equal(point, np.clip(raw, 1, 5))
    assert ((1 <= low) & (low <= point) & (point <= high) & (high <= 5)).all()

    w = interval_half_width(model, 0.9)
    crafted = np.array([0.2, 0.9, 3.0, 5.3, 6.0, 5.0 + 3 * w, np.nan])
    point, low, high = interval_bounds(model, crafted, 0.9)
    np.testing.assert_array_equal(point, [1.0, 1.0, 3.0, 5.0, 5.0, 5.0, np.nan])
    np.testing.assert_allclose(low, [1.0, 1.0, max(3 - w, 1), max(5 - w, 1), max(5 - w, 1),
                                     max(5 - w, 1), np.nan])
    np.testing.assert_allclose(high, [min(1 + w, 5), min(1 + w, 5), min(3 + w, 5), 5, 5, 5,
                                      np.nan])
    # Coverage of scores on the scale is never lowered: every score on 1-5 that the plain
    # conformal interval around the raw prediction holds, the clipped interval holds too.
    scores = np.linspace(1, 5, 81)
    plain_low, plain_high = crafted[:-1, None] - w, crafted[:-1, None] + w
    plain = (plain_low <= scores) & (scores <= plain_high)
    clipped = (low[:-1, None] <= scores) & (scores <= high[:-1, None])
    assert (clipped | ~plain).all()
    assert not plain[5].any() and clipped[5].any()  # far above 5: the plain one holds no score


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
