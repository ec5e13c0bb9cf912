"""A monotone map from a network's raw output to calibrated scores, fitted on validation cells.

The epoch a SarcNet keeps is the one with the best validation Spearman, which ignores the
level and the spread of its scores: on the demo's synthetic cells, the kept epoch predicted
0.26 too high on average. After training, :func:`fit_score_map` fits a strictly increasing
map from the network's predictions on its validation cells to their true scores (affine, or
isotonic when there are :data:`ISOTONIC_MIN_CELLS` cells or more), so that the ranking and
hence the Spearman correlation do not change while the bias goes. The map is plain data (a
dict of numbers), stored in both model-file formats.
"""

from __future__ import annotations

import math

import numpy as np

ISOTONIC_MIN_CELLS = 500
"""Validation cells needed for an isotonic map; fewer get an affine one."""
TIE_SLOPE = 1e-6
"""Slope added to an isotonic map so that it is strictly increasing (no new ties, the same
ranking: Spearman unchanged)."""
MAX_KNOTS = 10_000


def fit_score_map(predicted, observed) -> dict | None:
    """The monotone map from ``predicted`` to ``observed`` scores; None when it cannot be fitted.

    Affine (least squares, ``slope > 0``) below :data:`ISOTONIC_MIN_CELLS` cells,
    isotonic above. A model whose predictions do not increase with the truth
    (least-squares slope <= 0) or are constant gets only a shift of its mean
    (slope 1).

    Parameters
    ----------
    predicted, observed : array-like of shape (n_cells,)
        The network's raw predictions on its validation cells and their true scores.

    Returns
    -------
    score_map : dict or None
        ``{"kind": "affine", "slope", "intercept", "n_cells"}`` or
        ``{"kind": "isotonic", "x", "y", "n_cells"}``; None for fewer than 2
        finite pairs.

    Examples
    --------
    >>> from sarcnet_sklearn._score_map import apply_score_map, fit_score_map
    >>> score_map = fit_score_map([3.0, 3.5, 4.0, 4.5], [2.0, 2.5, 3.0, 3.5])
    >>> score_map["kind"], apply_score_map(score_map, [3.25]).round(3).tolist()
    ('affine', [2.25])
    """
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    observed = np.asarray(observed, dtype=np.float64).reshape(-1)
    finite = np.isfinite(predicted) & np.isfinite(observed)
    predicted, observed = predicted[finite], observed[finite]
    n = len(predicted)
    if n < 2:
        return None
    if n >= ISOTONIC_MIN_CELLS and np.ptp(predicted) > 0:
        from sklearn.isotonic import IsotonicRegression

        isotonic = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(
            predicted, observed)
        x, y = isotonic.X_thresholds_, isotonic.y_thresholds_
        if len(x) > MAX_KNOTS:
            keep = np.unique(np.linspace(0, len(x) - 1, MAX_KNOTS).round().astype(int))
            x, y = x[keep], y[keep]
        return {"kind": "isotonic", "x": [float(v) for v in x], "y": [float(v) for v in y],
                "n_cells": int(n)}
    slope = 1.0
    if np.ptp(predicted) > 0:
        fitted = float(np.polyfit(predicted, observed, 1)[0])
        slope = fitted if fitted > 0 else 1.0
    intercept = float(observed.mean() - slope * predicted.mean())
    return {"kind": "affine", "slope": slope, "intercept": intercept, "n_cells": int(n)}


def apply_score_map(score_map: dict | None, predicted) -> np.ndarray:
    """``predicted`` through ``score_map`` (unchanged for None); strictly increasing.

    Examples
    --------
    >>> from sarcnet_sklearn._score_map import apply_score_map
    >>> apply_score_map({"kind": "affine", "slope": 2.0, "intercept": -1.0}, [1.0, 2.0]).tolist()
    [1.0, 3.0]
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    if score_map is None:
        return predicted
    if score_map["kind"] == "affine":
        return score_map["intercept"] + score_map["slope"] * predicted
    x = np.asarray(score_map["x"], dtype=np.float64)
    y = np.asarray(score_map["y"], dtype=np.float64)
    return np.interp(predicted, x, y) + TIE_SLOPE * (predicted - x[0])


def check_score_map(score_map) -> None:
    """Raise ValueError unless ``score_map`` is one :func:`fit_score_map` could have made.

    Examples
    --------
    >>> from sarcnet_sklearn._score_map import check_score_map
    >>> check_score_map({"kind": "affine", "slope": -1.0, "intercept": 0.0, "n_cells": 9})
    Traceback (most recent call last):
    ...
    ValueError: setting 'score_map': the affine map's slope must be a positive number
    """
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
            value)

    what = "setting 'score_map'"
    if not isinstance(score_map, dict) or score_map.get("kind") not in ("affine", "isotonic"):
        raise ValueError(f"{what} must be an affine or isotonic map")
    n = score_map.get("n_cells")
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 2):
        raise ValueError(f"{what}: 'n_cells' must be a whole number >= 2")
    if score_map["kind"] == "affine":
        if set(score_map) != {"kind", "slope", "intercept", "n_cells"}:
            raise ValueError(f"{what}: an affine map holds kind, slope, intercept, n_cells")
        if not (number(score_map["slope"]) and score_map["slope"] > 0):
            raise ValueError(f"{what}: the affine map's slope must be a positive number")
        if not number(score_map["intercept"]):
            raise ValueError(f"{what}: the affine map's intercept must be a number")
        return
    if set(score_map) != {"kind", "x", "y", "n_cells"}:
        raise ValueError(f"{what}: an isotonic map holds kind, x, y, n_cells")
    x, y = score_map["x"], score_map["y"]
    if not (isinstance(x, list) and isinstance(y, list) and 1 <= len(x) == len(y) <= MAX_KNOTS
            and all(number(v) for v in x + y)):
        raise ValueError(f"{what}: x and y must be lists of 1 to {MAX_KNOTS} numbers, "
                         "as many of each")
    if any(b < a for a, b in zip(x, x[1:], strict=False)) or any(
            b < a for a, b in zip(y, y[1:], strict=False)):
        raise ValueError(f"{what}: x and y must not decrease")
