"""Optuna tuning: studies, pruning, resuming from a file, parallel workers, the CLI."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from functools import partial

import joblib
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sklearn.base import clone
from skorch.callbacks import Callback

from sarcnet_sklearn import PROTOCOL_2, load_model, make_sarcnet_pipeline
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.tuning import default_search_space, tune
from sarcnet_sklearn.tuning._objective import Objective, SurplusTrial

optuna.logging.set_verbosity(optuna.logging.WARNING)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def split(cells):
    """80 cells: 60 to train on, 20 to validate on."""
    small = cells.iloc[:80]
    train, valid = small.iloc[:60], small.iloc[60:]
    return train, train["score"].to_numpy(), valid, valid["score"].to_numpy()


@pytest.fixture
def mlp_pipeline():
    """A feature-only SarcNet (no image branch): trials in a fraction of a second."""
    return make_sarcnet_pipeline(
        use_images=False, max_epochs=3, batch_size=16, verbose=0, random_state=0
    )


def lr_space(trial):
    return {"model__lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}


def wide_lr_space(trial):
    return {"model__lr": trial.suggest_float("lr", 1e-4, 1e3, log=True)}


def test_study_finds_a_finite_best_trial_and_refits_it(split, tiny_params, tmp_path):
    X, y, X_valid, y_valid = split
    pipeline = make_sarcnet_pipeline(**{**tiny_params, "max_epochs": 1})
    result = tune(
        X, y, validation_data=(X_valid, y_valid), pipeline=pipeline,
        search_space=partial(default_search_space, image_sizes=[32]),
        n_trials=2, random_state=0,
    )
    trials = result.study.get_trials(states=FINISHED)
    assert len(result.study.trials) == len(trials) == 2
    assert math.isfinite(result.best_score) and -1 <= result.best_score <= 1
    best = result.study.best_trial
    assert best.user_attrs["fold_scores"] == [best.value]
    assert result.best_params["model__lr"] == best.params["lr"]
    assert result.best_params["model__image_size"] == 32
    assert set(result.best_params) >= {
        "select__protocol", "model__lr", "model__optimizer__weight_decay",
        "model__batch_size", "model__patience", "model__head_activation",
        "model__module__feature_widths",
    }

    refitted = result.best_pipeline
    assert refitted.named_steps["model"].lr == best.params["lr"]
    assert refitted.named_steps["select"].protocol == best.params["protocol"]
    width = best.params["feature_width"]
    branch = [layer.out_features for layer in refitted[-1].module_.feature_branch
              if hasattr(layer, "out_features")]
    assert branch == [width, 2 * width, 4 * width]
    # Same seed, same cells: the refit repeats the best trial's training exactly.
    assert max(refitted[-1].history[:, "valid_spearman"]) == pytest.approx(best.value, abs=1e-6)

    path = tmp_path / "best.joblib"
    joblib.dump(refitted, path)
    loaded = joblib.load(path)
    np.testing.assert_allclose(loaded.predict(X_valid), refitted.predict(X_valid), rtol=1e-6)


def test_pruner_stops_a_diverging_trial_after_its_first_epoch(split, mlp_pipeline):
    X, y, X_valid, y_valid = split
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="prune", direction="maximize")
    for lr in [3e-3, 3e-3, 3e-3, 100.0]:  # the last one diverges (NaN predictions)
        study.enqueue_trial({"lr": lr})
    result = tune(
        X, y, validation_data=(X_valid, y_valid), pipeline=mlp_pipeline,
        search_space=wide_lr_space, n_trials=4, storage=storage, study_name="prune", refit=False,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    states = [trial.state for trial in result.study.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    good, bad = result.study.trials[0], result.study.trials[3]
    assert sorted(good.intermediate_values) == [0, 1, 2]  # one report per epoch
    assert list(bad.intermediate_values) == [0]  # stopped after epoch 1 of 3
    assert result.best_params == {"model__lr": 3e-3}


class CtrlCDuringFit(Callback):
    """Sends Ctrl-C to this process during the ``at_fit``-th fit (clones share the count)."""

    fits = 0

    def __init__(self, at_fit: int) -> None:
        self.at_fit = at_fit

    def on_train_begin(self, net, **kwargs):
        type(self).fits += 1

    def on_epoch_end(self, net, **kwargs):
        if type(self).fits == self.at_fit:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def ctrl_c_delivered():
    """Ctrl-C raises KeyboardInterrupt, even in a suite started with SIGINT ignored."""
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, original)


def test_study_in_sqlite_resumes_after_ctrl_c(split, mlp_pipeline, tmp_path, ctrl_c_delivered):
    X, y, X_valid, y_valid = split
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    run = partial(
        tune, X, y, validation_data=(X_valid, y_valid), search_space=lr_space, n_trials=4,
        storage=storage, study_name="resume", refit=False,
    )
    CtrlCDuringFit.fits = 0
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="'resume' interrupted"):
        run(pipeline=clone(mlp_pipeline).set_params(model__callbacks=[CtrlCDuringFit(3)]),
            random_state=0)
    before = optuna.load_study(study_name="resume", storage=storage).trials
    # The trial that was training is marked failed, not recorded half-trained.
    assert [trial.state for trial in before] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL]
    assert signal.getsignal(signal.SIGINT) is handler_before

    result = run(pipeline=mlp_pipeline, random_state=1)
    after = result.study.trials
    assert [trial.state for trial in after] == (
        [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    )
    for old, new in zip(before[:2], after[:2], strict=True):
        assert (new.number, new.params, new.value, new.datetime_start) == (
            old.number, old.params, old.value, old.datetime_start
        )

    again = run(pipeline=mlp_pipeline, random_state=2)  # complete: nothing more runs
    assert len(again.study.trials) == 5


def test_cross_validation_objective_and_refit(split, mlp_pipeline):
    X, y, _, _ = split
    result = tune(X, y, cv=2, pipeline=mlp_pipeline, search_space=lr_space, n_trials=1)
    trial = result.study.best_trial
    assert len(trial.user_attrs["fold_scores"]) == 2
    assert trial.value == pytest.approx(np.mean(trial.user_attrs["fold_scores"]))
    model = result.best_pipeline.named_steps["model"]
    # Refitted on all cells, without validation, for the folds' median best epoch.
    assert model.train_split is None
    assert model.max_epochs == max(1, round(float(np.median(trial.user_attrs["best_epochs"]))))
    assert len(model.history) == model.max_epochs
    assert "valid_spearman" not in model.history[-1]


def test_grouped_folds_keep_each_field_on_one_side(split, mlp_pipeline):
    from sarcnet_sklearn.datasets import cell_groups
    from sarcnet_sklearn.tuning._tune import _folds

    X, y, X_valid, y_valid = split
    groups = cell_groups(X, "field")
    folds = _folds(X, y, None, 3, groups)
    assert len(folds) == 3 and sum(len(fold.X_valid) for fold in folds) == len(X)
    for fold in folds:
        assert set(fold.X_train["field"]).isdisjoint(fold.X_valid["field"])
    assert any(not set(a).isdisjoint(b) for a, b in (  # a cell split mixes fields
        (fold.X_train["field"], fold.X_valid["field"]) for fold in _folds(X, y, None, 3)))
    result = tune(X, y, cv=2, groups=groups, pipeline=mlp_pipeline, search_space=lr_space,
                  n_trials=1, refit=False)
    assert len(result.study.best_trial.user_attrs["fold_scores"]) == 2
    with pytest.raises(ValueError, match="validation_data is already split"):
        tune(X, y, groups=groups, validation_data=(X_valid, y_valid), n_trials=1)
    with pytest.raises(ValueError, match="groups has 59 values"):
        tune(X, y, cv=2, groups=groups[:-1], n_trials=1)


def test_scikit_learn_cross_validation_by_field(cells, mlp_pipeline):
    from sklearn.model_selection import GroupKFold, cross_validate

    from sarcnet_sklearn.datasets import cell_groups
    from sarcnet_sklearn.metrics import spearman_scorer

    small = cells.iloc[:90]
    groups = cell_groups(small, "field")
    splitter = GroupKFold(3)
    for train, test in splitter.split(small, groups=groups):
        assert set(groups[train]).isdisjoint(groups[test])
    result = cross_validate(mlp_pipeline, small, small["score"], groups=groups, cv=splitter,
                            scoring=spearman_scorer, error_score="raise")
    assert len(result["test_score"]) == 3 and np.isfinite(result["test_score"]).all()


def test_a_trial_beyond_the_budget_is_not_run(mlp_pipeline):
    study = optuna.create_study(direction="maximize")
    for value in (0.1, 0.2):  # another worker took the last trial meanwhile
        study.add_trial(optuna.trial.create_trial(value=value))
    objective = Objective(mlp_pipeline, lr_space, folds=[], n_trials=2)
    study.optimize(objective, n_trials=5, catch=(SurplusTrial,))
    late = study.trials[-1]
    assert len(study.trials) == 3  # the surplus trial stopped the worker
    assert late.state == TrialState.FAIL
    assert late.user_attrs == {"surplus": True} and late.params == {}


def test_tune_checks_its_arguments(split, mlp_pipeline):
    X, y, X_valid, y_valid = split
    with pytest.raises(ValueError, match="n_trials, timeout or both"):
        tune(X, y, cv=2, pipeline=mlp_pipeline)
    with pytest.raises(ValueError, match="validation_data or cv, not both"):
        tune(X, y, cv=2, validation_data=(X_valid, y_valid), n_trials=1)
    with pytest.raises(ValueError, match="X has 60 rows but y has 59"):
        tune(X, y[:-1], cv=2, n_trials=1)


def test_two_cli_workers_share_one_sqlite_study(cells, tmp_path, capsys):
    table = tmp_path / "cells.csv"
    cells.iloc[:48][["image_path", *PROTOCOL_2, "score"]].to_csv(table, index=False)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(storage=storage, study_name="shared", direction="maximize")
    command = [
        sys.executable, "-m", "sarcnet_sklearn", "tune", str(table), "--storage", storage,
        "--study-name", "shared", "--n-trials", "4", "--validation-fraction", "0.25",
        "--image-sizes", "32", "--max-epochs", "1", "--device", "cpu", "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([*command, "--seed", str(seed)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    trials = optuna.load_study(study_name="shared", storage=storage).trials
    finished = [trial for trial in trials if trial.state in FINISHED]
    assert sorted(trial.number for trial in finished) == [0, 1, 2, 3]
    # A trial created in a race for the last slot is recorded as failed and not run.
    assert all(trial.user_attrs.get("surplus") for trial in trials if trial not in finished)
    for stdout, _ in outputs:
        assert "best trial: #" in stdout

    out = tmp_path / "best.joblib"  # a third worker, here: the study is full, so it refits
    assert main([*command[3:], "--out", str(out)]) == 0
    assert f"saved to {out.resolve()}" in capsys.readouterr().out
    assert len(optuna.load_study(study_name="shared", storage=storage).trials) == len(trials)
    model = load_model(out)  # the model file 'train' writes, through the one loader
    predictions = model.predict(cells.iloc[80:90])  # cells it never saw
    assert predictions.shape == (10,) and np.isfinite(predictions).all()


def test_cli_needs_a_score_column(cells, tmp_path, capsys):
    table = tmp_path / "unscored.csv"
    cells.iloc[:10][["image_path", *PROTOCOL_2]].to_csv(table, index=False)
    assert main(["tune", str(table), "--n-trials", "1"]) == 2
    assert "no 'score' column to tune on" in capsys.readouterr().err
