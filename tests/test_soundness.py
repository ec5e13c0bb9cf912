"""A model that says when it is not sound: warnings, the cells it has seen, honest metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarcnet_sklearn import bootstrap_intervals, expert_agreement, regression_report
from sarcnet_sklearn._fingerprint import count_seen, remember_cells, seen_note
from sarcnet_sklearn.explain._report import _assessment_html
from sarcnet_sklearn.soundness import UnsoundModelWarning, soundness_problems, warn_if_unsound


def test_each_problem_is_named_and_a_sound_model_has_none():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 5, 300)
    good = truth + rng.normal(0, 0.4, 300)
    assert soundness_problems(truth, good, interval_width=1.3) == []
    # the model: predictions between 1.65 and 2.05, R² -3.1, intervals over most of 1-5
    narrow = 1.85 + 0.2 * (truth - 3) / 2
    problems = soundness_problems(truth, narrow, interval_width=3.2)
    assert len(problems) == 3
    assert problems[0].startswith("R² on the validation cells is -")
    assert "barely tells cells apart" in problems[1] and "3.20 wide" in problems[2]
    with pytest.warns(UnsoundModelWarning, match="the trained model: R²"):
        warn_if_unsound(problems[:1], "the trained model")


def test_bootstrap_intervals_hold_the_metric_and_narrow_with_more_cells():
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 1600):
        truth = rng.uniform(1, 5, n)
        pred = truth + rng.normal(0, 0.6, n)
        report, intervals = regression_report(truth, pred), bootstrap_intervals(truth, pred)
        for key, (low, high) in intervals.items():
            assert low <= report[key] <= high, key
        widths.append(intervals["mae"][1] - intervals["mae"][0])
    assert widths[1] < 0.5 * widths[0]  # about 1 / sqrt(16)


def test_grouped_intervals_resample_fields_and_are_wider_when_fields_differ():
    rng = np.random.default_rng(1)
    fields = np.repeat(np.arange(20), 15)
    truth = rng.normal(3, 0.5, 20)[fields] + rng.normal(0, 0.3, 300)
    # a strong field effect in the errors: each field's cells are predicted too high or too low
    pred = truth + rng.normal(0, 0.5, 20)[fields] + rng.normal(0, 0.2, 300)
    cells = bootstrap_intervals(truth, pred)
    grouped = bootstrap_intervals(truth, pred, groups=fields)
    report = regression_report(truth, pred)
    for key in ("spearman", "mae", "r2"):
        assert grouped[key][0] <= report[key] <= grouped[key][1], key
        assert np.diff(grouped[key])[0] > 1.5 * np.diff(cells[key])[0], key
    # one cell per field is the cells' bootstrap; without a field effect the two agree
    singletons = bootstrap_intervals(truth, pred, groups=[f"f{i}" for i in range(300)])
    assert singletons == cells
    plain = truth + rng.normal(0, 0.5, 300)
    ratio = (np.diff(bootstrap_intervals(truth, plain, groups=fields)["mae"])
             / np.diff(bootstrap_intervals(truth, plain)["mae"]))[0]
    assert 0.6 < ratio < 1.6
    with pytest.raises(ValueError, match="1 cell.s. without a group, e.g. cell 4"):
        bootstrap_intervals(truth[:6], pred[:6], groups=["a", "a", "b", "b", None, "c"])


def test_agreement_with_each_expert_on_the_real_labels():
    from .conftest import DATA

    labels = pd.read_csv(DATA / "expert_scores.csv")
    labels = labels[(labels.expert_mh > 0) & (labels.expert_kg > 0) & (labels.cohort == "original")]
    labels = labels.rename(columns={"expert_mh": "expert_1", "expert_kg": "expert_2"})
    agreement = expert_agreement(labels, labels["expert_1"])
    assert agreement["expert_1 vs expert_2"] == pytest.approx(0.655, abs=0.001)
    assert agreement["expert_1"] == pytest.approx(1.0)


def test_a_model_remembers_the_cells_it_saw_by_their_file_names(cells):
    from sarcnet_sklearn import make_sarcnet_pipeline

    model = make_sarcnet_pipeline(use_images=False, max_epochs=1, verbose=0, random_state=0)
    train, valid = cells.iloc[:40], cells.iloc[40:50]
    model.fit(train, train["score"], validation_data=(valid, valid["score"]))
    assert count_seen(model, cells.iloc[30:70]) == 20
    moved = cells.iloc[:5].assign(image_path=["/moved/" + p.rsplit("/", 1)[-1]
                                              for p in cells.image_path.iloc[:5]])
    assert count_seen(model, moved) == 5
    assert seen_note(model, cells.iloc[60:70]) is None
    assert seen_note(model, cells.iloc[45:55]).startswith("5 of the 10 cells given")
    remember_cells(model, cells.iloc[60:62])  # as calibrate does
    assert count_seen(model, cells.iloc[60:70]) == 2
    model.fit(train, train["score"])  # a refit forgets the old cells
    assert count_seen(model, cells.iloc[40:50]) == 0


def test_the_reports_intervals_resample_fields_when_the_cells_fields_are_known(cells):
    from sarcnet_sklearn import make_sarcnet_pipeline
    from sarcnet_sklearn.soundness import assess_predictions

    model = make_sarcnet_pipeline(use_images=False, max_epochs=1, verbose=0, random_state=0)
    model.fit(cells.iloc[:40], cells["score"].iloc[:40])
    unseen = cells.iloc[40:].copy()
    predicted = model.predict(unseen)
    assert unseen["field"].notna().all() and unseen["field"].nunique() < len(unseen)
    by_field = assess_predictions(model, unseen, predicted, unseen["score"])
    n_fields = unseen["field"].nunique()
    assert by_field["metrics_ci95_resampling"] == f"resampling whole fields ({n_fields} fields)"
    by_cell = assess_predictions(model, unseen.drop(columns="field"), predicted, unseen["score"])
    assert by_cell["metrics_ci95_resampling"] == "resampling cells"
    assert by_field["metrics"] == by_cell["metrics"]
    assert by_field["metrics_ci95"] != by_cell["metrics_ci95"]
    page = "".join(_assessment_html(by_field))
    assert f"bootstrap 95 % intervals, resampling whole fields ({n_fields} fields)" in page


def test_the_report_shows_the_warnings_and_says_what_its_metrics_include():
    assessment = {"problems": ["R² on the cells reported on is -3.10"], "n_seen": 313,
                  "n_cells": 392, "metrics_cells": "the 79 cells the model had not seen",
                  "experts": {"expert_1": 0.7, "expert_2": 0.6, "expert_1 vs expert_2": 0.655}}
    page = "".join(_assessment_html(assessment))
    assert 'class="warning"' in page and "-3.10" in page
    assert "313 of the 392 cells" in page and "the 79 cells the model had not seen" in page
    assert "<td>model vs expert_1</td><td>0.700</td>" in page
    assert "<td>expert_1 vs expert_2</td><td>0.655</td>" in page
