"""Metrics of the paper: Spearman correlation (the headline), MAE, MSE and R^2."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import make_scorer, mean_absolute_error, mean_squared_error, r2_score


def spearman_score(y_true, y_pred) -> float:
    """Spearman rank correlation between true and predicted scores.

    NaN when either side is constant (the correlation is undefined then).

    Examples
    --------
    >>> from sarcnet_sklearn.metrics import spearman_score
    >>> round(spearman_score([1, 2, 3, 4], [1.1, 1.9, 3.5, 3.2]), 3)
    0.8
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} values, y_pred {len(y_pred)}")
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(spearmanr(y_true, y_pred).statistic)


spearman_scorer = make_scorer(spearman_score, greater_is_better=True)
"""scikit-learn scorer for :func:`spearman_score` (``scoring=spearman_scorer``)."""


def regression_report(y_true, y_pred) -> dict[str, float]:
    """The paper's four metrics: Spearman, MAE, MSE and R^2.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_cells,)

    Returns
    -------
    report : dict
        Keys ``"spearman"``, ``"mae"``, ``"mse"``, ``"r2"``.

    Examples
    --------
    >>> from sarcnet_sklearn import regression_report
    >>> regression_report([1, 2, 3, 4], [1, 2, 3, 5])["mae"]
    0.25
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    return {
        "spearman": spearman_score(y_true, y_pred),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mse": float(mean_squared_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


METRIC_NAMES = {"spearman": "Spearman", "mae": "MAE", "mse": "MSE", "r2": "R²"}
"""The keys of :func:`regression_report` and their names in tables, in the paper's order."""


def metrics_table(
    reports: Mapping[str, Mapping[str, float]], *, index: str = "model"
) -> pd.DataFrame:
    """The paper's four metrics as a table, one row per model: the one formatter of metrics.

    Parameters
    ----------
    reports : mapping of str to dict
        Row name (a model) to its :func:`regression_report`.
    index : str, default="model"
        What the rows are (the index's name), e.g. ``"cells"`` for splits.

    Returns
    -------
    table : DataFrame
        Indexed by ``index``, columns Spearman, MAE, MSE, R²; write it with
        ``table.to_markdown(floatfmt=".3f")`` or as HTML.

    Examples
    --------
    >>> from sarcnet_sklearn.metrics import metrics_table, regression_report
    >>> table = metrics_table({"SarcNet": regression_report([1, 2, 3, 4], [1, 2, 3, 5])})
    >>> print(table.to_markdown(floatfmt=".3f"))
    | model   |   Spearman |   MAE |   MSE |    R² |
    |:--------|-----------:|------:|------:|------:|
    | SarcNet |      1.000 | 0.250 | 0.250 | 0.800 |
    """
    table = pd.DataFrame(
        [[report[key] for key in METRIC_NAMES] for report in reports.values()],
        index=pd.Index(list(reports), name=index),
        columns=list(METRIC_NAMES.values()),
        dtype=float,
    )
    return table
