"""The score table: the one policy that turns a model's predictions into the scores users see.

Every door that shows a predicted score (``predict``, ``fields``, ``explain``,
``report``, ``reproduce``, the napari widget, :func:`predict_scores` and
:func:`~sarcnet_sklearn.deploy.predict_cells`) goes through :func:`score_table`,
so the same cell gets the same score, and the same error, everywhere:

- each batch of cells goes through the model's selector and scaler once; the
  network scores those scaled features, and the out-of-range rule reads the
  same scaled features (a feature more than :data:`RANGE_MARGIN` times its
  training range beyond its training min or max is an extrapolation: the cell
  gets no score, ``out_of_range`` names the features and ``error`` says why);
- the score is clipped to the model's own ``score_range``
  (:data:`~sarcnet_sklearn._columns.SCORE_RANGE` by default), and so are the
  bounds of its conformal interval
  (:func:`~sarcnet_sklearn.intervals.interval_bounds`);
- a batch the model refuses is retried cell by cell, so one bad cell gets its
  reason and the others their scores.

The columns are :data:`SCORE_TABLE_COLUMNS`, named in :mod:`sarcnet_sklearn._columns`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._chunks import chunk_slices
from ._columns import (
    ERROR_COLUMN,
    OUT_OF_RANGE_COLUMN,
    SCORE_HIGH_COLUMN,
    SCORE_LOW_COLUMN,
    SCORE_PRED_COLUMN,
    SCORE_RAW_COLUMN,
)
from ._validation import as_frame
from .intervals import interval_bounds, interval_half_width
from .pipeline import SarcNetPipeline

SCORE_TABLE_COLUMNS = [SCORE_PRED_COLUMN, SCORE_LOW_COLUMN, SCORE_HIGH_COLUMN, SCORE_RAW_COLUMN,
                       ERROR_COLUMN, OUT_OF_RANGE_COLUMN]
"""The columns of a score table, in order (the interval bounds only with ``interval=``)."""

RANGE_MARGIN = 1.0
"""A feature is out of range beyond this fraction of its training range past its min or max
(one whole range: a unit mistake or a sign error, not an unusually large cell)."""

NON_FINITE_ERROR = "the model returned a non-finite score"


def score_table(
    model,
    X,
    *,
    errors=None,
    interval: float | None = None,
    batch_size: int = 200,
) -> pd.DataFrame:
    """Score cells by the package's one score policy: one row per cell, score or reason.

    Parameters
    ----------
    model : fitted SarcNet pipeline or SarcNetRegressor
    X : DataFrame
        The cells as the model reads them: the image column (paths, or images
        already decoded) and the feature columns.
    errors : sequence of (str or None), optional
        Per row of ``X``, a reason it cannot be scored (found before, e.g. an
        unreadable image); those rows are not handed to the model and keep
        their reason.
    interval : float, optional
        Confidence of a conformal prediction interval per cell (e.g. 0.9).
    batch_size : int, default=200
        Rows handed to the model at once; a batch the model refuses with a
        ValueError is retried row by row.

    Returns
    -------
    table : DataFrame
        Same index as ``X``: ``score_pred`` (clipped to the model's
        ``score_range``; NaN where the cell was not scored), with ``interval``
        ``score_low`` and ``score_high``, then ``score_raw`` (the model's
        output, kept for out-of-range cells), ``error`` (None where scored)
        and ``out_of_range`` (the features far outside the training data, or
        None).

    Raises
    ------
    ValueError
        For an ``interval`` the model is not calibrated for, or ``batch_size < 1``.

    Examples
    --------
    >>> from sarcnet_sklearn.score_table import score_table
    >>> # model: a fitted SarcNet pipeline; cells: a table of cells
    >>> table = score_table(model, cells.head(3))
    >>> list(table.columns)
    ['score_pred', 'score_raw', 'error', 'out_of_range']
    >>> bool(table["score_pred"].between(1, 5).all()), bool(table["error"].isna().all())
    (True, True)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pipeline = SarcNetPipeline.of(model)
    if interval is not None:
        interval_half_width(pipeline, interval)  # not calibrated, or too few cells: say so now
    X = as_frame(X)
    n = len(X)
    reasons = [None] * n if errors is None else [
        value if isinstance(value, str) and value else None for value in errors]
    if len(reasons) != n:
        raise ValueError(f"errors has {len(reasons)} values for {n} cells")
    net = pipeline.fitted_regressor
    low, high = getattr(net, "feature_min_", None), getattr(net, "feature_max_", None)
    names = list(net.feature_names_) if low is not None and high is not None and len(low) else []
    raw = np.full(n, np.nan)
    scaled = np.full((n, len(names)), np.nan)
    good = np.array([i for i, reason in enumerate(reasons) if reason is None], dtype=int)
    for part in chunk_slices(len(good), batch_size):
        _predict_rows(pipeline, X, good[part], raw, scaled, names, reasons)
    for i in np.flatnonzero(~np.isfinite(raw)):
        if reasons[i] is None:
            reasons[i] = NON_FINITE_ERROR
    return apply_score_policy(pipeline, X, raw, scaled, names, reasons, interval)


def predict_scores(model, X) -> np.ndarray:
    """The scores of :func:`score_table` alone (``score_pred``): NaN where a cell is refused.

    Examples
    --------
    >>> from sarcnet_sklearn.score_table import predict_scores
    >>> scores = predict_scores(model, cells.head(3))
    >>> bool(((scores >= 1) & (scores <= 5)).all())
    True
    """
    return score_table(model, X)[SCORE_PRED_COLUMN].to_numpy(dtype=np.float64)


def apply_score_policy(pipeline: SarcNetPipeline, X: pd.DataFrame, raw: np.ndarray,
                       scaled: np.ndarray, names: list[str], reasons: list,
                       interval: float | None) -> pd.DataFrame:
    """The score table of predictions already made: refuse extrapolations, clip, intervals.

    ``scaled`` holds, per row of ``X``, the features ``names`` as the network
    received them; ``reasons`` (changed in place) the error of each row.
    """
    outside = _out_of_range(pipeline, X, scaled, names, reasons)
    refused = np.array([flag is not None for flag in outside], dtype=bool)
    score_range = pipeline.score_range or (-np.inf, np.inf)
    table = pd.DataFrame(index=X.index)
    table[SCORE_PRED_COLUMN] = np.where(refused, np.nan, np.clip(raw, *score_range))
    if interval is not None:
        _, low, high = interval_bounds(pipeline, raw, interval, score_range)
        table[SCORE_LOW_COLUMN] = np.where(refused, np.nan, low)
        table[SCORE_HIGH_COLUMN] = np.where(refused, np.nan, high)
    table[SCORE_RAW_COLUMN] = raw
    # object columns: None where a row has no error (pandas would infer strings, None -> NaN)
    table[ERROR_COLUMN] = pd.Series(_objects(reasons), index=X.index, dtype=object)
    table[OUT_OF_RANGE_COLUMN] = pd.Series(_objects(outside), index=X.index, dtype=object)
    return table


def _predict_rows(pipeline: SarcNetPipeline, X: pd.DataFrame, rows: np.ndarray, raw: np.ndarray,
                  scaled: np.ndarray, names: list[str], reasons: list) -> None:
    """Predict ``rows`` (selector and scaler once); if that fails, one by one to find the
    culprit."""
    try:
        Xt = pipeline.regressor_input(X.iloc[rows])  # in the units the network was trained on
        raw[rows] = np.asarray(pipeline.regressor.predict(Xt), dtype=np.float64).reshape(-1)
        if names:
            scaled[rows] = Xt[names].to_numpy(dtype=np.float64)
    except ValueError as exc:
        if len(rows) == 1:
            reasons[rows[0]] = f"cannot score: {exc}"
            return
        for row in rows:
            _predict_rows(pipeline, X, np.array([row]), raw, scaled, names, reasons)


def _out_of_range(pipeline: SarcNetPipeline, X: pd.DataFrame, scaled: np.ndarray,
                  names: list[str], reasons: list) -> list:
    """Name, per scored row, the features far outside the training data (see RANGE_MARGIN)."""
    flags = [None] * len(X)
    if not names:
        return flags
    net = pipeline.regressor
    low, high = net.feature_min_, net.feature_max_
    margin = RANGE_MARGIN * (high - low)
    with np.errstate(invalid="ignore"):
        outside = (scaled < low - margin) | (scaled > high + margin)
    for row in np.flatnonzero(outside.any(axis=1)):
        if reasons[row] is not None:
            continue
        flagged = [names[j] for j in np.flatnonzero(outside[row])]
        flags[row] = ", ".join(flagged)
        shown = ", ".join(f"{name}={X[name].iloc[row]:g}" for name in flagged)
        reasons[row] = (
            f"not scored: {shown} far outside the training data, so the score would be an "
            f"extrapolation (see {SCORE_RAW_COLUMN!r})"
        )
    return flags


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


__all__ = ["RANGE_MARGIN", "SCORE_TABLE_COLUMNS", "apply_score_policy", "predict_scores",
           "score_table"]
