from __future__ import annotations

import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from sarcnet_sklearn import (
    PROTOCOL_1,
    PROTOCOL_2,
    ProtocolSelector,
    SarcNetRegressor,
    make_linear_baseline,
    make_sarcnet_pipeline,
    regression_report,
    spearman_score,
    spearman_scorer,
)


@pytest.fixture
def small(cells):
    return cells.iloc[:96].copy(), cells["score"].to_numpy()[:96]


def test_pipeline_steps_and_output_of_the_transformers(cells, tiny_params):
    pipe = make_sarcnet_pipeline(protocol=1, **tiny_params)
    assert [name for name, _ in pipe.steps] == ["select", "scale", "model"]
    assert isinstance(pipe.named_steps["select"], ProtocolSelector)
    assert isinstance(pipe.named_steps["model"], SarcNetRegressor)
    assert pipe.named_steps["model"].image_size == 32
    scaled = pipe[:-1].fit_transform(cells, cells["score"])
    assert sorted(scaled.columns) == sorted(["image_path", *PROTOCOL_1])
    np.testing.assert_allclose(scaled[PROTOCOL_1].mean(), 0, atol=1e-9)
    np.testing.assert_allclose(scaled[PROTOCOL_1].std(ddof=0), 1, atol=1e-9)
    assert scaled["image_path"].tolist() == cells["image_path"].tolist()
    assert "cell_area" in cells and "score" in cells  # the input is untouched


def test_selector_checks_columns_and_values(cells):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['frac_area_fibers'\]"):
        ProtocolSelector(2).fit(cells.drop(columns="frac_area_fibers"))
    bad = cells.copy()
    bad.loc[5, "cell_area"] = np.inf
    with pytest.raises(ValueError, match=r"'cell_area' is inf in row 5"):
        ProtocolSelector(1).fit(cells).transform(bad)
    with pytest.raises(ValueError, match="protocol must be 1, 2"):
        ProtocolSelector(3).fit(cells)
    custom = ProtocolSelector(["cell_area", "peak_height"]).fit(cells)
    assert list(custom.get_feature_names_out()) == ["image_path", "cell_area", "peak_height"]


def test_fit_predict_score(small, tiny_params):
    X, y = small
    pipe = make_sarcnet_pipeline(protocol=2, **tiny_params)
    assert pipe.fit(X, y) is pipe
    prediction = pipe.predict(X)
    assert prediction.shape == (len(X),) and np.isfinite(prediction).all()
    assert pipe.score(X, y) == pytest.approx(regression_report(y, prediction)["r2"], abs=1e-6)
    assert pipe.named_steps["model"].feature_names_ == PROTOCOL_2


def test_pipeline_with_validation_data_scales_with_the_training_cells_only(cells, tiny_params):
    train, valid = cells.iloc[:80], cells.iloc[80:130]
    pipe = make_sarcnet_pipeline(protocol=1, **tiny_params)
    pipe.fit(train, train["score"], validation_data=(valid, valid["score"]))
    scaler = pipe.named_steps["scale"].named_transformers_["features"]
    np.testing.assert_allclose(scaler.mean_, train[PROTOCOL_1].mean())
    history = pipe.named_steps["model"].history
    assert len(history[:, "valid_spearman"]) == tiny_params["max_epochs"]
    assert sum(b.get("valid_batch_size", 0) for b in history[-1, "batches"]) == 50


def test_linear_baseline_matches_a_plain_linear_regression(cells):
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    baseline = make_linear_baseline(protocol=2).fit(cells, cells["score"])
    features = StandardScaler().fit_transform(cells[PROTOCOL_2])
    reference = LinearRegression().fit(features, cells["score"]).predict(features)
    np.testing.assert_allclose(baseline.predict(cells), reference, rtol=1e-7)
    assert baseline.predict(cells[PROTOCOL_2]).shape == (len(cells),)  # no image column needed


def test_grid_search_over_protocol_and_lr(small, tiny_params):
    X, y = small[0].iloc[:48], small[1][:48]
    params = {**tiny_params, "max_epochs": 1}
    search = GridSearchCV(
        make_sarcnet_pipeline(**params),
        {"select__protocol": [1, 2], "model__lr": [5e-4, 1e-3]},
        scoring=spearman_scorer,
        cv=2,
        error_score="raise",
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["select__protocol"] in (1, 2)
    expected = 5 if search.best_params_["select__protocol"] == 1 else 11
    assert len(search.best_estimator_.named_steps["model"].feature_names_) == expected
    assert search.predict(X.iloc[:3]).shape == (3,)


def test_cross_val_score_and_baseline_grid_search(cells, small, tiny_params):
    X, y = small
    scores = cross_val_score(
        make_sarcnet_pipeline(**{**tiny_params, "max_epochs": 1}), X, y,
        cv=KFold(2), scoring=spearman_scorer, error_score="raise",
    )
    assert scores.shape == (2,) and np.isfinite(scores).all()
    linear = GridSearchCV(make_linear_baseline(), {"select__protocol": [1, 2]},
                          scoring=spearman_scorer, cv=3).fit(cells, cells["score"])
    assert linear.best_params_ == {"select__protocol": 2}


def test_spearman_scorer_and_report():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    report = regression_report(y, [1.5, 1.0, 3.0, 4.0, 6.0])
    assert report["spearman"] == pytest.approx(0.9)
    assert report["mae"] == pytest.approx(0.5) and report["mse"] == pytest.approx(0.45)
    assert report["r2"] == pytest.approx(1 - 2.25 / 10)
    assert np.isnan(spearman_score(y, np.ones(5)))

    from sklearn.linear_model import LinearRegression

    negated = LinearRegression().fit(y.reshape(-1, 1), -y)  # predicts -X exactly
    assert spearman_scorer(negated, y.reshape(-1, 1), y) == pytest.approx(-1.0)


def test_joblib_round_trip_in_a_fresh_process(small, tiny_params, tmp_path):
    X, y = small[0].iloc[:32], small[1][:32]
    pipe = make_sarcnet_pipeline(protocol=1, **tiny_params).fit(X, y)
    expected = pipe.predict(X)
    model_path, data_path = tmp_path / "model.joblib", tmp_path / "cells.pkl"
    joblib.dump(pipe, model_path)
    X.to_pickle(data_path)
    np.testing.assert_array_equal(joblib.load(model_path).predict(X), expected)
    script = (
        "import joblib, numpy as np, pandas as pd, sys;"
        f"p = joblib.load({str(model_path)!r});"
        f"np.save(sys.argv[1], p.predict(pd.read_pickle({str(data_path)!r})))"
    )
    out = tmp_path / "prediction.npy"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, timeout=300)
    np.testing.assert_array_equal(np.load(out), expected)
    assert clone(pipe).get_params()["model__image_size"] == 32


def test_from_image_paths_alone_to_scores_with_measured_features(cells, tiny_params):
    from sklearn.pipeline import Pipeline

    from sarcnet_sklearn.features import Protocol1Extractor

    paths = cells[["image_path"]].iloc[:60]
    measured = Protocol1Extractor().fit_transform(paths)
    # The synthetic tables were measured with the same extractor (in pixels), as the real ones.
    np.testing.assert_allclose(measured[PROTOCOL_1], cells[PROTOCOL_1].iloc[:60], rtol=1e-9)
    pipe = Pipeline([("features", Protocol1Extractor()),
                     *make_sarcnet_pipeline(protocol=1, **tiny_params).steps])
    pipe.fit(paths, cells["score"].iloc[:60])
    assert pipe.named_steps["model"].feature_names_ == PROTOCOL_1
    assert pipe.predict(paths.iloc[:3]).shape == (3,)
