"""When a model or a comparison is not sound: the checks ``train``, ``report`` and the API warn by.

A model can rank cells passably and still be useless as a score: predictions that all lie
in a narrow band, a validation R^2 below 0 (worse than predicting the mean), or intervals
spanning most of the scale. :func:`soundness_problems` names each such problem in a sentence;
:func:`warn_if_unsound` raises an :class:`UnsoundModelWarning` for each.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._columns import SCORE_RANGE

MIN_SPREAD_FRACTION = 0.3
"""Predictions whose standard deviation is below this fraction of the true scores' warn."""
MAX_INTERVAL_FRACTION = 0.5
"""A calibrated 90 % interval wider than this fraction of the score range warns."""


class UnsoundModelWarning(UserWarning):
    """A model whose scores should not be trusted as they are (see :func:`soundness_problems`)."""


def soundness_problems(
    y_true=None,
    y_pred=None,
    *,
    interval_width: float | None = None,
    score_range: tuple[float, float] | None = SCORE_RANGE,
    cells: str = "validation cells",
) -> list[str]:
    """Why a model's scores on some cells should not be trusted; empty when nothing is wrong.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_cells,), optional
        True and predicted scores of cells the model was not trained on.
    interval_width : float, optional
        Full width of the model's calibrated 90 % interval (twice its half-width).
    score_range : tuple (low, high) or None, default=(1.0, 5.0)
    cells : str, default="validation cells"
        What the cells are, for the sentences.

    Returns
    -------
    problems : list of str
        One sentence per problem: R^2 below 0; predictions spread less than
        :data:`MIN_SPREAD_FRACTION` of the true scores' standard deviation; an
        interval wider than :data:`MAX_INTERVAL_FRACTION` of the score range.

    Examples
    --------
    >>> from sarcnet_sklearn.soundness import soundness_problems
    >>> for problem in soundness_problems([1, 2, 3, 4, 5], [1.9, 2.0, 2.0, 2.1, 2.0]):
    ...     print(problem)
    R² on the validation cells is -0.44 (below 0: worse than predicting their mean score)
    the predictions' spread (sd 0.06) is 4% of the true scores' (sd 1.41): the model barely tells cells apart
    """  # noqa: E501
    from sklearn.metrics import r2_score

    problems = []
    if y_true is not None and y_pred is not None:
        y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
        y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
        if len(y_true) >= 2 and np.ptp(y_true) > 0:
            r2 = float(r2_score(y_true, y_pred))
            if r2 < 0:
                problems.append(f"R² on the {cells} is {r2:.2f} (below 0: worse than "
                                "predicting their mean score)")
            spread, truth = float(np.std(y_pred)), float(np.std(y_true))
            if spread < MIN_SPREAD_FRACTION * truth:
                problems.append(
                    f"the predictions' spread (sd {spread:.2f}) is {spread / truth:.0%} of the "
                    f"true scores' (sd {truth:.2f}): the model barely tells cells apart")
    if interval_width is not None and score_range is not None:
        scale = score_range[1] - score_range[0]
        if interval_width > MAX_INTERVAL_FRACTION * scale:
            problems.append(
                f"the calibrated 90 % interval is {interval_width:.2f} wide, more than "
                f"{MAX_INTERVAL_FRACTION:.0%} of the score range ({scale:g}): a single score "
                "says little")
    return problems


def warn_if_unsound(problems: list[str], what: str = "this model", stacklevel: int = 2) -> None:
    """An :class:`UnsoundModelWarning` per problem of :func:`soundness_problems`."""
    for problem in problems:
        warnings.warn(f"{what}: {problem}", UnsoundModelWarning, stacklevel=stacklevel + 1)


def assess_predictions(model, cells, predicted, expert=None, *,
                       interval_width: float | None = None) -> dict:
    """What a report can honestly say of ``model``'s ``predicted`` scores on ``cells``.

    Cells the model was fitted or calibrated on (:mod:`sarcnet_sklearn._fingerprint`)
    are counted and left out of the metrics when others remain (else the metrics are
    of all cells, and say that they include them); the metrics come with bootstrap
    95 % intervals (resampling whole fields when every cell's ``field`` is known,
    else cells), the model's Spearman against each expert and the experts'
    against each other (where ``cells`` has their columns), and the problems of
    :func:`soundness_problems`.

    Parameters
    ----------
    model : fitted SarcNet pipeline or regressor
    cells : DataFrame
    predicted : array-like of shape (n_cells,)
        The model's scores of ``cells``.
    expert : array-like of shape (n_cells,), optional
        Their true scores; None: no metrics.
    interval_width : float, optional
        Full width of the model's calibrated 90 % interval.

    Returns
    -------
    assessment : dict
        ``n_cells``, ``n_seen``, ``metrics_cells`` (a sentence: which cells the
        metrics are of), ``metrics``, ``metrics_ci95``, ``metrics_ci95_resampling``
        (what the bootstrap resampled, in words), ``experts`` (None without
        metrics) and ``problems``.

    Examples
    --------
    >>> from sarcnet_sklearn.soundness import assess_predictions
    >>> some = cells.iloc[50:]  # model: calibrated on these cells
    >>> result = assess_predictions(model, some, model.predict(some), some["score"])
    >>> result["n_seen"] == result["n_cells"], "INCLUDE" in result["metrics_cells"]
    (True, True)
    >>> sorted(result["metrics"]) == sorted(result["metrics_ci95"])
    True
    """
    from ._fingerprint import seen_mask
    from .metrics import (
        bootstrap_intervals,
        expert_agreement,
        field_groups,
        regression_report,
        resampling_note,
    )

    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    seen = seen_mask(model, cells)
    n_seen, n = int(seen.sum()), len(cells)
    result = {"n_cells": n, "n_seen": n_seen, "metrics_cells": None, "metrics": None,
              "metrics_ci95": None, "metrics_ci95_resampling": None, "experts": None,
              "problems": []}
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    score_range = getattr(final, "score_range", SCORE_RANGE)
    if expert is not None:
        keep = ~seen if n_seen < n else np.ones(n, dtype=bool)
        if n_seen == 0:
            result["metrics_cells"] = f"all {n} cells (none was used to fit or calibrate the model)"
        elif n_seen < n:
            result["metrics_cells"] = (f"the {int(keep.sum())} cells the model had not seen "
                                       f"({n_seen} of the {n} were used to fit or calibrate it)")
        else:
            result["metrics_cells"] = (f"all {n} cells, which INCLUDE the model's own training or "
                                       "calibration cells: these metrics overstate its accuracy")
        truth = np.asarray(expert, dtype=np.float64).reshape(-1)[keep]
        result["metrics"] = regression_report(truth, predicted[keep])
        subset = cells.iloc[np.flatnonzero(keep)]
        groups = field_groups(subset)
        result["metrics_ci95"] = bootstrap_intervals(truth, predicted[keep], groups=groups)
        result["metrics_ci95_resampling"] = resampling_note(groups)
        result["experts"] = expert_agreement(subset, predicted[keep])
        result["problems"] = soundness_problems(
            truth, predicted[keep], interval_width=interval_width, score_range=score_range,
            cells="cells reported on")
    else:
        result["problems"] = soundness_problems(interval_width=interval_width,
                                                score_range=score_range)
    return result
