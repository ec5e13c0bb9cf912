"""One Optuna trial: fit the pipeline with the trial's parameters, score it on validation cells."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from optuna_integration import SkorchPruningCallback
from sklearn.base import clone
from sklearn.pipeline import Pipeline

MONITOR = "valid_spearman"
"""History entry that SarcNetRegressor records each epoch on its validation cells."""

BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
"""Trials that use up a study's ``n_trials``; failed ones are replaced, enqueued ones wait."""

SearchSpace = Callable[[optuna.Trial], dict]


@dataclass(frozen=True)
class Fold:
    """Training and validation cells of one fit."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_valid: pd.DataFrame
    y_valid: np.ndarray


class SurplusTrial(Exception):
    """A trial created after the study's budget was taken by other workers; it is not run."""


class TrialInterrupted(Exception):
    """Ctrl-C during a trial's training (an Exception, so that skorch does not swallow it)."""


@contextmanager
def interrupt_as_exception() -> Iterator[None]:
    """Turn Ctrl-C into :class:`TrialInterrupted` while a trial trains.

    skorch ends training quietly on KeyboardInterrupt, which would record a
    half-trained trial as complete; this way the trial is marked failed, the
    worker stops, and a resumed study replaces the trial.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise TrialInterrupted("interrupted (Ctrl-C) during training")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def count_budget_trials(study: optuna.Study, below: int | None = None) -> int:
    """Trials of ``study`` that count toward ``n_trials`` (numbered below ``below`` if given)."""
    trials = study.get_trials(deepcopy=False, states=BUDGET_STATES)
    return sum(below is None or trial.number < below for trial in trials)


def best_validation_epoch(pipeline: Pipeline) -> tuple[float, int | None]:
    """Best ``valid_spearman`` of the final step's history and its (1-based) epoch."""
    history = pipeline[-1].history
    if not len(history) or MONITOR not in history[-1]:
        raise ValueError(
            f"the pipeline's final step recorded no {MONITOR!r} in its history; tuning needs "
            "a SarcNetRegressor (or an estimator that records it) fitted with validation_data"
        )
    scores = np.asarray(history[:, MONITOR], dtype=np.float64)
    if np.isnan(scores).all():
        return float("nan"), None
    best = int(np.nanargmax(scores))
    return float(scores[best]), int(history[best, "epoch"])


def with_pruning(pipeline: Pipeline, trial: optuna.Trial) -> Pipeline:
    """Add Optuna's skorch pruning callback, watching ``valid_spearman``, to the final step."""
    name, model = pipeline.steps[-1]
    callbacks = list(model.callbacks or [])
    callbacks.append(("optuna_pruning", SkorchPruningCallback(trial, MONITOR)))
    return pipeline.set_params(**{f"{name}__callbacks": callbacks})


@dataclass
class Objective:
    """The value of a trial: validation Spearman, averaged over the folds.

    Each epoch of the first fold reports ``valid_spearman`` to the trial, so
    that the pruner can stop a trial that is doing worse than earlier ones at
    the same epoch. Per trial, the user attributes ``fold_scores`` and
    ``best_epochs`` record each fold's best validation Spearman and its epoch.
    """

    pipeline: Pipeline
    search_space: SearchSpace
    folds: Sequence[Fold]
    n_trials: int | None

    def __call__(self, trial: optuna.Trial) -> float:
        self._check_budget(trial)
        params = self.search_space(trial)
        scores, epochs = [], []
        for k, fold in enumerate(self.folds):
            model = clone(self.pipeline).set_params(**params)
            if k == 0:
                with_pruning(model, trial)
            with interrupt_as_exception():
                model.fit(
                    fold.X_train, fold.y_train, validation_data=(fold.X_valid, fold.y_valid)
                )
            score, epoch = best_validation_epoch(model)
            scores.append(score)
            epochs.append(epoch)
            del model
        trial.set_user_attr("fold_scores", scores)
        trial.set_user_attr("best_epochs", epochs)
        return float(np.mean(scores))

    def _check_budget(self, trial: optuna.Trial) -> None:
        # Workers race between "the study has room" and "create a trial"; trial numbers are
        # given out atomically by the storage, so the trials beyond the budget are known here.
        if self.n_trials is None:
            return
        if count_budget_trials(trial.study, below=trial.number) >= self.n_trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(
                f"trial {trial.number} not run: study {trial.study.study_name!r} already has "
                f"its {self.n_trials} trials (another worker took the last one)"
            )
