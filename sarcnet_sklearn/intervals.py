"""Prediction intervals with a coverage guarantee: split conformal prediction.

A fitted model is *calibrated* on cells it was not trained on: the absolute
errors ``|score - prediction|`` of those cells (the conformity scores) are
stored on the model (``conformity_scores_`` of its final step, saved in both
model-file formats). For a new cell, the interval at confidence ``c`` is the
prediction plus or minus the ``ceil(c (n + 1))``-th smallest of the ``n``
stored errors. If the new cell and the calibration cells are exchangeable
(drawn alike), the interval contains its true score with probability at
least ``c`` (and at most ``c + 1 / (n + 1)``), whatever the model.

This is MAPIE's ``SplitConformalRegressor`` with the "absolute" conformity
score, done here by hand because MAPIE's checks call the estimator on a bare
numeric array, which a pipeline over image paths cannot take; the quantile
is MAPIE's (tested against it).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.pipeline import Pipeline

from ._columns import SCORE_RANGE
from ._validation import check_target

CONFORMITY_ATTRIBUTE = "conformity_scores_"
"""Attribute of the model's final step holding the calibration errors."""


def _final_step(model):
    return model[-1] if isinstance(model, Pipeline) else model


def calibrate(model, X, y):
    """Calibrate a fitted model's prediction intervals on held-out cells.

    Parameters
    ----------
    model : fitted SarcNet pipeline or SarcNetRegressor (or any fitted regressor)
    X : DataFrame
        Cells the model was not trained on (the more, the tighter the
        guarantee: at least 9 for 90 % intervals, a few hundred is better).
    y : array-like of shape (n_cells,)
        Their true scores.

    Returns
    -------
    model
        The same object, with ``conformity_scores_`` (float64 array of the
        absolute errors) set on its final step; a previous calibration is
        replaced. Refitting the model removes it.

    Raises
    ------
    ValueError
        When a score or a prediction is not finite.

    Examples
    --------
    >>> from sarcnet_sklearn.intervals import calibrate, predict_interval
    >>> # model: a fitted SarcNet pipeline, e.g. load_model("sarcnet.zip")
    >>> calibration_cells = cells.iloc[45:]  # cells the model was not trained on
    >>> model = calibrate(model, calibration_cells, calibration_cells["score"])
    >>> score, low, high = predict_interval(model, cells.head(3), confidence=0.9)
    >>> score.shape, bool((low <= high).all())
    ((3,), True)
    """
    prediction = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    check_target(y, len(prediction))  # names what is wrong with y
    target = np.asarray(y, dtype=np.float64).reshape(-1)
    if not np.isfinite(prediction).all():
        row = int(np.argmax(~np.isfinite(prediction)))
        raise ValueError(f"the model's prediction for calibration cell {row} is not finite")
    setattr(_final_step(model), CONFORMITY_ATTRIBUTE, np.abs(target - prediction))
    if hasattr(X, "columns"):
        from ._fingerprint import remember_cells

        remember_cells(model, X)  # a report on these cells says they are not new to it
    return model


def conformity_scores(model) -> np.ndarray | None:
    """The stored calibration errors of a model, or None when it is not calibrated."""
    scores = getattr(_final_step(model), CONFORMITY_ATTRIBUTE, None)
    return None if scores is None else np.asarray(scores, dtype=np.float64)


def interval_half_width(model, confidence: float = 0.9) -> float:
    """Half the width of the model's intervals at ``confidence`` (the conformal quantile).

    Raises
    ------
    ValueError
        When the model is not calibrated, ``confidence`` is not in (0, 1), or
        too few cells were used for that confidence.
    """
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence must be a number between 0 and 1, got {confidence!r}")
    scores = conformity_scores(model)
    if scores is None:
        raise ValueError(
            "this model is not calibrated, so it has no prediction intervals: calibrate it "
            "on held-out cells with sarcnet_sklearn.intervals.calibrate(model, X, y) and "
            "save it again (the train command calibrates on its validation cells)"
        )
    n = len(scores)
    rank = math.ceil(confidence * (n + 1))
    if rank > n:
        raise ValueError(
            f"the model was calibrated on {n} cells, too few for {confidence:.0%} intervals "
            f"(at least {math.ceil(confidence / (1 - confidence))} needed)"
        )
    return float(np.sort(scores)[rank - 1])


def interval_bounds(
    model,
    prediction: np.ndarray,
    confidence: float = 0.9,
    score_range: tuple[float, float] | None = SCORE_RANGE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intervals around predictions already made by ``model``, on the score range.

    The rule: the prediction is clipped to ``score_range``; the interval is
    the clipped prediction plus or minus the conformal half-width
    (:func:`interval_half_width`), clipped to ``score_range`` too. So
    ``low <= prediction <= high`` always holds, also for a raw prediction
    outside the range (5.3 gives 5.0 in [5.0 - w, 5.0]). Coverage of scores
    on the range is not lowered: clipping moves the prediction nearer to
    every score on the range, so a true score within ``w`` of the raw
    prediction is within ``w`` of the clipped one, and clipping the bounds
    only cuts off values no score takes.

    Parameters
    ----------
    model : calibrated model
    prediction : array-like of shape (n_cells,)
        ``model.predict`` of the cells (raw, as the model gives them).
    confidence : float, default=0.9
    score_range : (float, float) or None, default=(1.0, 5.0)
        None: no clipping (the plain conformal interval around ``prediction``).

    Returns
    -------
    prediction, low, high : ndarray of shape (n_cells,)
        The clipped prediction and the interval's bounds (NaN where the
        prediction is NaN).

    Examples
    --------
    >>> from sarcnet_sklearn.intervals import interval_bounds
    >>> # model: a calibrated SarcNet pipeline (see calibrate)
    >>> point, low, high = interval_bounds(model, [3.0, 5.3, -2.0], 0.9)
    >>> point.tolist(), bool(((low <= point) & (point <= high)).all()), float(high[1])
    ([3.0, 5.0, 1.0], True, 5.0)
    """
    half_width = interval_half_width(model, confidence)
    prediction = np.asarray(prediction, dtype=np.float64)
    if score_range is not None:
        prediction = np.clip(prediction, *score_range)
    low, high = prediction - half_width, prediction + half_width
    if score_range is not None:
        low, high = np.clip(low, *score_range), np.clip(high, *score_range)
    return prediction, low, high


def predict_interval(
    model,
    X,
    confidence: float = 0.9,
    score_range: tuple[float, float] | None = SCORE_RANGE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict scores with conformal prediction intervals.

    Parameters
    ----------
    model : calibrated model
        See :func:`calibrate`; models from ``sarcnet-sklearn train`` are.
    X : DataFrame
        Cells to score.
    confidence : float, default=0.9
        Probability that the interval holds the cell's true score.
    score_range : (float, float) or None, default=(1.0, 5.0)
        Clip the prediction and the bounds to this range (the experts'
        scale), as :func:`interval_bounds` does: ``low <= prediction <=
        high`` always, and the coverage of scores on the range is not
        lowered. None: no clipping.

    Returns
    -------
    prediction, low, high : ndarray of shape (n_cells,)
        The model's prediction clipped to ``score_range`` (as
        :func:`~sarcnet_sklearn.deploy.predict_cells` gives ``score_pred``)
        and the bounds.

    Examples
    --------
    >>> from sarcnet_sklearn.intervals import predict_interval
    >>> # model: a calibrated SarcNet pipeline (see calibrate)
    >>> score, low, high = predict_interval(model, cells.head(3), confidence=0.9)
    >>> score.shape, low.shape, high.shape
    ((3,), (3,), (3,))
    """
    prediction = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    return interval_bounds(model, prediction, confidence, score_range)
