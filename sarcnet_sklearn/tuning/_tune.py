"""``tune``: an Optuna study over the SarcNet pipeline's hyperparameters."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from os import PathLike

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage
from optuna.study import MaxTrialsCallback, StudyDirection
from optuna.trial import FixedTrial, FrozenTrial, TrialState
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, KFold, check_cv
from sklearn.pipeline import Pipeline

from .._console import progress_bar
from .._validation import as_frame
from ._objective import (
    BUDGET_STATES,
    Fold,
    Objective,
    SearchSpace,
    SurplusTrial,
    TrialInterrupted,
)
from ._objective import count_budget_trials as _count_budget_trials
from ._search_space import default_search_space
from ._storage import resolve_storage

DEFAULT_CV = 5
CV_SEED = 0
"""Seed of the shuffled K folds of ``cv=K``: the same folds in every worker of a study."""


@dataclass
class TuningResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    study : optuna.Study
        The study, with every trial of every worker (``study.trials_dataframe()``).
    best_params : dict or None
        Pipeline parameters of the best trial (None while no trial has completed).
    best_pipeline : Pipeline or None
        The best pipeline refitted on all training data (``refit=True``), else None.
    """

    study: optuna.Study
    best_params: dict | None
    best_pipeline: Pipeline | None

    @property
    def best_score(self) -> float:
        """Validation Spearman of the best trial."""
        return self.study.best_value


def tune(
    X,
    y,
    *,
    pipeline: Pipeline | None = None,
    search_space: SearchSpace | None = None,
    validation_data: tuple | None = None,
    cv: int | object | None = None,
    groups=None,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | PathLike | BaseStorage | None = None,
    study_name: str | None = None,
    load_if_exists: bool = True,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    refit: bool = True,
    random_state: int | None = None,
    callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] = (),
    progress: bool = False,
) -> TuningResult:
    """Tune SarcNet's hyperparameters with Optuna, maximising validation Spearman.

    Each trial takes the pipeline's parameters from ``search_space(trial)``,
    fits a clone of ``pipeline`` and scores it by the Spearman correlation on
    validation cells (at the best epoch, which the regressor keeps): on
    ``validation_data``, or averaged over ``cv`` folds. Every epoch's
    ``valid_spearman`` is reported to Optuna through
    ``optuna_integration.SkorchPruningCallback`` (on the first fold with ``cv``),
    so the pruner stops unpromising trials early. Trials train on the device of
    the pipeline's regressor: the GPU when present, unless set otherwise.

    **Storage, resuming, parallel workers.** The study lives in ``storage``:
    in memory by default; in a database (``"sqlite:///tune.db"``,
    ``"postgresql://user:password@host/db"``, ``"mysql+pymysql://..."``) or a
    journal file (any other path, see :func:`resolve_storage`) for a study that
    must survive a crash or be shared. ``n_trials`` is the size of the whole
    study, whichever worker runs them: calling ``tune`` again with the same
    ``storage`` and ``study_name`` (``load_if_exists=True``) resumes an
    interrupted study where it stopped, keeping its trials, and several
    processes (one per GPU, on one machine or many) given the same storage and
    study name share the work and stop together once ``n_trials`` trials have
    completed or been pruned. Failed trials do not count and are replaced (at
    most ``n_trials`` failures, then the study stops); with a database, the
    trial of a worker that died is marked failed after three minutes without a
    heartbeat; Ctrl-C marks the running trial failed and raises
    KeyboardInterrupt. Give all workers the same search space and pruner, and
    different ``random_state`` (or none). On one machine with several GPUs, in
    a shell::

        optuna create-study --storage sqlite:///tune.db --study-name sarcnet \\
            --direction maximize
        for gpu in 0 1 2 3; do
            CUDA_VISIBLE_DEVICES=$gpu sarcnet-sklearn tune cells.csv \\
                --storage sqlite:///tune.db --study-name sarcnet --n-trials 100 &
        done; wait
        sarcnet-sklearn tune cells.csv --storage sqlite:///tune.db \\
            --study-name sarcnet --n-trials 100 --out best.joblib  # refit only

    Parameters
    ----------
    X : DataFrame
        Training cells: image-path column and feature columns.
    y : array-like of shape (n_cells,)
        Their scores.
    pipeline : Pipeline, optional
        The pipeline to tune, with the parameters that stay fixed
        (``max_epochs``, ``device``, ...); its final step must record
        ``valid_spearman``, as :class:`~sarcnet_sklearn.SarcNetRegressor` does.
        Default: ``make_sarcnet_pipeline(verbose=0)`` (the paper's settings).
    search_space : callable, optional
        ``search_space(trial) -> dict`` of pipeline parameters, using the
        ``trial.suggest_*`` methods. Default: :func:`default_search_space`.
    validation_data : tuple (X_valid, y_valid), optional
        Validation cells for the objective and for choosing the best epoch.
    cv : int or cross-validation splitter, optional
        Number of folds (shuffled K folds, the same in every worker) or a
        scikit-learn splitter, when there is no ``validation_data``; default 5
        folds. Not both.
    groups : array-like of shape (n_cells,), optional
        The group of each cell of ``X`` (its field of view, well or plate, e.g.
        ``cell_groups(cells, "field")``): no group is split between a fold's
        training and validation cells. With ``cv=K``, shuffled
        :class:`~sklearn.model_selection.GroupKFold`; with a splitter, passed to
        its ``split(X, y, groups)``. Not with ``validation_data`` (split by
        group yourself, e.g. with :func:`~sarcnet_sklearn.datasets.paper_split`).
    n_trials : int, optional
        Size of the study (trials completed or pruned, by all workers together).
    timeout : float, optional
        Stop this worker after this many seconds (the running trial finishes).
        At least one of ``n_trials`` and ``timeout`` is needed.
    storage : str, path or optuna storage, optional
        See :func:`resolve_storage`. Default: in memory.
    study_name : str, optional
        Needed to resume or share a study; default: a new study with a unique name.
    load_if_exists : bool, default=True
        Continue the study of that name when it exists (False: raise instead).
    sampler : optuna sampler, optional
        Default: ``TPESampler(seed=random_state, constant_liar=True)``.
    pruner : optuna pruner, optional
        Default: ``MedianPruner(n_startup_trials=5, n_warmup_steps=5)``: from the
        sixth trial on, prune after epoch 6 or later when the trial's best
        validation Spearman so far is below the median of earlier trials' at that epoch.
    refit : bool, default=True
        Fit the best trial's pipeline on all of ``X``: with ``validation_data``,
        the best epoch is chosen on it as in the trials; with ``cv``, for the
        median of the folds' best epochs, without validation.
    random_state : int, optional
        Seeds the default sampler (give each worker of a shared study its own, or none).
    callbacks : iterable of callables, optional
        Optuna study callbacks, ``callback(study, frozen_trial)`` after each trial.
    progress : bool, default=False
        Show a progress bar of the study's finished trials.

    Returns
    -------
    result : TuningResult
        ``study``, ``best_params``, ``best_pipeline`` (refitted) and ``best_score``.

    Raises
    ------
    ValueError
        When neither ``n_trials`` nor ``timeout`` is given, for ``validation_data``
        with ``cv``, or when an existing study of that name minimises.

    Examples
    --------
    >>> from sarcnet_sklearn import make_sarcnet_pipeline
    >>> from sarcnet_sklearn.tuning import default_search_space, tune
    >>> # cells: scored cells, e.g. load_aics(make_synthetic_aics("synthetic_aics"))
    >>> train, valid = cells.iloc[:45], cells.iloc[45:]
    >>> pipeline = make_sarcnet_pipeline(use_images=False, max_epochs=3, verbose=0)  # features only
    >>> result = tune(train, train["score"], validation_data=(valid, valid["score"]),
    ...               pipeline=pipeline, search_space=default_search_space, n_trials=2,
    ...               storage="sqlite:///tune.db", study_name="sarcnet", random_state=0)
    >>> len(result.study.trials), "model__lr" in result.best_params
    (2, True)
    >>> result.best_pipeline.predict(valid).shape == (len(valid),)
    True
    """
    if n_trials is None and timeout is None:
        raise ValueError("give n_trials, timeout or both (otherwise the study never ends)")
    if n_trials is not None and n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {n_trials}")
    X = as_frame(X)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} values")
    if pipeline is None:
        from ..pipeline import make_sarcnet_pipeline

        pipeline = make_sarcnet_pipeline(verbose=0)
    search_space = search_space or default_search_space
    folds = _folds(X, y, validation_data, cv, groups)

    study = optuna.create_study(
        storage=resolve_storage(storage),
        sampler=sampler or optuna.samplers.TPESampler(seed=random_state, constant_liar=True),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5),
        study_name=study_name,
        direction="maximize",
        load_if_exists=load_if_exists,
    )
    if study.directions != [StudyDirection.MAXIMIZE]:
        raise ValueError(
            f"study {study.study_name!r} exists and does not maximise a single value; "
            "use another study name"
        )
    callbacks = list(callbacks)
    if n_trials is not None:
        callbacks = [
            MaxTrialsCallback(n_trials, states=BUDGET_STATES),
            MaxTrialsCallback(n_trials, states=(TrialState.FAIL,)),
            *callbacks,
        ]
    bar = _ProgressBar(study, n_trials) if progress else None
    if bar:
        callbacks.append(bar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # trials of dead workers, before counting
    try:
        if n_trials is None or _count_budget_trials(study) < n_trials:
            study.optimize(
                Objective(pipeline, search_space, folds, n_trials),
                timeout=timeout,
                catch=(SurplusTrial,),
                callbacks=callbacks,
                gc_after_trial=True,
            )
    except TrialInterrupted as exc:
        raise KeyboardInterrupt(
            f"study {study.study_name!r} interrupted; its running trial is marked failed"
        ) from exc
    finally:
        if bar:
            bar.close()

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        if refit:
            warnings.warn(
                f"no trial of study {study.study_name!r} has completed yet; nothing to refit",
                stacklevel=2,
            )
        return TuningResult(study, None, None)
    best = study.best_trial
    best_params = search_space(FixedTrial(best.params, best.number))
    best_pipeline = _refit(pipeline, best_params, best, X, y, validation_data) if refit else None
    return TuningResult(study, best_params, best_pipeline)


def _folds(X, y: np.ndarray, validation_data, cv, groups=None) -> list[Fold]:
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != len(X):
            raise ValueError(f"X has {len(X)} rows but groups has {len(groups)} values")
    if validation_data is not None:
        if cv is not None:
            raise ValueError("give validation_data or cv, not both")
        if groups is not None:
            raise ValueError("groups split cv folds; validation_data is already split "
                             "(split it by group, e.g. paper_split(cells, by='field'))")
        X_valid, y_valid = validation_data
        X_valid, y_valid = as_frame(X_valid, "X_valid"), np.asarray(y_valid)
        if len(X_valid) != len(y_valid):
            raise ValueError(
                f"validation_data: X_valid has {len(X_valid)} rows but y_valid "
                f"has {len(y_valid)} values"
            )
        return [Fold(X, y, X_valid, y_valid)]
    cv = DEFAULT_CV if cv is None else cv
    if isinstance(cv, numbers.Integral):
        if cv < 2:
            raise ValueError(f"cv must be at least 2 folds, got {cv}")
        folds = GroupKFold if groups is not None else KFold
        splitter = folds(int(cv), shuffle=True, random_state=CV_SEED)
    else:
        splitter = check_cv(cv)
    return [
        Fold(X.iloc[train], y[train], X.iloc[valid], y[valid])
        for train, valid in splitter.split(X, y, groups)
    ]


def _refit(
    pipeline: Pipeline,
    params: dict,
    best: FrozenTrial,
    X,
    y: np.ndarray,
    validation_data: tuple | None,
) -> Pipeline:
    model = clone(pipeline).set_params(**params)
    if validation_data is not None:
        return model.fit(X, y, validation_data=validation_data)
    epochs = [epoch for epoch in best.user_attrs.get("best_epochs", []) if epoch is not None]
    name = model.steps[-1][0]
    refit_params: dict[str, object] = {f"{name}__train_split": None}
    if epochs:
        refit_params[f"{name}__max_epochs"] = max(1, int(round(float(np.median(epochs)))))
    return model.set_params(**refit_params).fit(X, y)


class _ProgressBar:
    """A study callback: a tqdm bar of the study's completed and pruned trials."""

    def __init__(self, study: optuna.Study, n_trials: int | None) -> None:
        self._bar = progress_bar(total=n_trials, initial=self._finished(study), unit="trial",
                         desc=f"study {study.study_name}")

    @staticmethod
    def _finished(study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._bar.update(self._finished(study) - self._bar.n)

    def close(self) -> None:
        self._bar.close()

