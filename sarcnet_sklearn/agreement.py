"""Agreement between scores: a model and a lab's scorer, or two scorers.

:func:`scorer_agreement` gives Spearman and the weighted kappa of two scorers'
1-5 scores; :func:`cross_validated_agreement` scores every cell with a model
trained on the other folds (grouped by field when known) and gives Spearman with
a bootstrap interval (:func:`~sarcnet_sklearn.metrics.bootstrap_intervals`,
resampling whole fields when the folds are grouped by field).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ._columns import FIELD_COLUMN
from .metrics import bootstrap_intervals, spearman_score


def scorer_agreement(first, second, *, score_step: float = 1.0) -> dict:
    """How well two scorers agree on the cells both scored.

    Parameters
    ----------
    first, second : array-like of shape (n_cells,)
        The two scorers' scores (NaN: not scored; such cells are left out).
    score_step : float, default=1.0
        The steps the scores were given in (0.5 with half steps): the weighted
        kappa treats the scores as ordered categories of this width.

    Returns
    -------
    dict
        ``n_cells`` (scored by both), ``spearman``, ``kappa_quadratic`` and
        ``kappa_linear`` (``sklearn.metrics.cohen_kappa_score`` with weights),
        ``exact`` (fraction of identical scores) and ``mean_difference``
        (second minus first).

    Examples
    --------
    >>> result = scorer_agreement([1, 2, 3, 4, 5, 3], [1, 2, 4, 4, 5, 3])
    >>> result["n_cells"], round(result["spearman"], 2), round(result["exact"], 2)
    (6, 0.96, 0.83)
    """
    from sklearn.metrics import cohen_kappa_score

    first = np.asarray(first, dtype=float).reshape(-1)
    second = np.asarray(second, dtype=float).reshape(-1)
    both = np.isfinite(first) & np.isfinite(second)
    a, b = first[both], second[both]
    result = {"n_cells": int(both.sum()), "spearman": spearman_score(a, b)}
    if both.sum() < 2:
        return result | {"kappa_quadratic": np.nan, "kappa_linear": np.nan,
                         "exact": np.nan, "mean_difference": np.nan}
    steps_a, steps_b = np.rint(a / score_step).astype(int), np.rint(b / score_step).astype(int)
    labels = np.union1d(steps_a, steps_b)
    kappas = {}
    for weights in ("quadratic", "linear"):
        kappas[f"kappa_{weights}"] = (float(cohen_kappa_score(steps_a, steps_b, labels=labels,
                                                              weights=weights))
                                      if len(labels) > 1 else np.nan)
    return result | kappas | {"exact": float(np.mean(steps_a == steps_b)),
                              "mean_difference": float(np.mean(b - a))}


def cross_validated_agreement(
    build: Callable[[], object],
    cells: pd.DataFrame,
    target: str,
    *,
    n_splits: int = 5,
    random_state: int | None = 0,
    confidence: float = 0.95,
) -> dict:
    """Score every cell with a model trained on the other folds; Spearman with an interval.

    Folds are grouped by field (``GroupKFold``) when ``cells`` has a
    ``field`` column with at least ``n_splits`` fields, so that no field has
    cells on both sides; the bootstrap then resamples fields too.

    Parameters
    ----------
    build : callable
        Returns a fresh unfitted model (``fit(X, y)``, ``predict(X)``).
    cells : DataFrame
        The training cells, with ``target``.
    target : str
    n_splits : int, default=5
    random_state : int or None, default=0
    confidence : float, default=0.95

    Returns
    -------
    dict
        ``spearman``, its bootstrap interval ``ci_low`` and ``ci_high``
        (:func:`~sarcnet_sklearn.metrics.bootstrap_intervals`, resampling whole
        fields when grouped), ``n_cells``, ``n_groups`` (fields, None without),
        ``n_folds`` and ``grouped_by`` (``"field"`` or None).

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> cells = pd.DataFrame({"x": rng.normal(size=60)})
    >>> cells["score"] = 3 + cells["x"] + rng.normal(0, 0.3, 60)
    >>> cells["field"] = np.repeat(np.arange(12), 5)
    >>> result = cross_validated_agreement(LinearRegression, cells[["x", "field", "score"]],
    ...                                    "score", n_splits=3)
    >>> result["grouped_by"], result["n_folds"], result["spearman"] > 0.8
    ('field', 3, True)
    """
    from sklearn.model_selection import GroupKFold, KFold

    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_splits!r}")
    if len(cells) < n_splits:
        raise ValueError(f"{len(cells)} cells cannot be split into {n_splits} folds")
    groups = None
    if FIELD_COLUMN in cells.columns and cells[FIELD_COLUMN].nunique() >= n_splits:
        groups = cells[FIELD_COLUMN].astype(str).to_numpy()
        splitter = GroupKFold(n_splits=n_splits)
    else:
        splitter = KFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    X = cells.drop(columns=[target])
    y = cells[target].to_numpy(dtype=float)
    predicted = np.full(len(cells), np.nan)
    for train, test in splitter.split(X, y, groups):
        model = build().fit(X.iloc[train], y[train])
        predicted[test] = np.asarray(model.predict(X.iloc[test]), dtype=float).reshape(-1)
    low, high = bootstrap_intervals(y, predicted, groups=groups, confidence=confidence,
                                    random_state=random_state)["spearman"]
    return {"spearman": spearman_score(y, predicted), "ci_low": low, "ci_high": high,
            "n_cells": len(y), "n_groups": None if groups is None else len(np.unique(groups)),
            "n_folds": n_splits, "grouped_by": None if groups is None else FIELD_COLUMN}
