"""Metrics of the paper: Spearman correlation (the headline), MAE, MSE and R^2."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import make_scorer, mean_absolute_error, mean_squared_error, r2_score

from ._columns import EXPERT_COLUMNS


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


def bootstrap_intervals(
    y_true, y_pred, *, confidence: float = 0.95, n_resamples: int = 1000, random_state: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the four metrics, resampling cells with replacement.

    Two models' metrics on the same cells can be told apart only where their
    intervals say so; on a few hundred cells, Spearman's is about +-0.03 wide.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_cells,)
    confidence : float, default=0.95
    n_resamples : int, default=1000
    random_state : int, default=0

    Returns
    -------
    intervals : dict
        The keys of :func:`regression_report`, each ``(low, high)`` (NaN for
        fewer than 3 cells).

    Examples
    --------
    >>> import numpy as np
    >>> from sarcnet_sklearn.metrics import bootstrap_intervals
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.uniform(1, 5, 300)
    >>> low, high = bootstrap_intervals(truth, truth + rng.normal(0, 0.5, 300))["spearman"]
    >>> bool(0.85 < low < high < 0.95)
    True
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    n = len(y_true)
    if n < 3:
        return {key: (float("nan"), float("nan")) for key in METRIC_NAMES}
    rng = np.random.default_rng(random_state)
    samples = rng.integers(0, n, size=(n_resamples, n))
    true, pred = y_true[samples], y_pred[samples]
    errors = pred - true
    centred = true - true.mean(axis=1, keepdims=True)
    mse = (errors**2).mean(axis=1)
    values = {
        "spearman": np.array([spearman_score(a, b) for a, b in zip(true, pred, strict=True)]),
        "mae": np.abs(errors).mean(axis=1),
        "mse": mse,
        "r2": 1.0 - mse / np.maximum((centred**2).mean(axis=1), 1e-300),
    }
    tail = 100 * (1 - confidence) / 2
    return {key: tuple(float(v) for v in np.nanpercentile(values[key], [tail, 100 - tail]))
            for key in METRIC_NAMES}


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


def metrics_with_intervals(
    reports: Mapping[str, Mapping[str, float]],
    intervals: Mapping[str, Mapping[str, tuple[float, float]]],
    *,
    index: str = "model",
) -> pd.DataFrame:
    """:func:`metrics_table` as text, each value followed by its 95 % interval.

    Examples
    --------
    >>> from sarcnet_sklearn.metrics import metrics_with_intervals
    >>> report = {"spearman": 0.8, "mae": 0.3, "mse": 0.15, "r2": 0.6}
    >>> ci = {key: (value - 0.05, value + 0.05) for key, value in report.items()}
    >>> metrics_with_intervals({"SarcNet": report}, {"SarcNet": ci}).loc["SarcNet", "MAE"]
    '0.300 [0.250, 0.350]'
    """
    rows = []
    for name, report in reports.items():
        bounds = intervals.get(name, {})
        rows.append([
            f"{report[key]:.3f}" + (f" [{bounds[key][0]:.3f}, {bounds[key][1]:.3f}]"
                                    if key in bounds and np.isfinite(bounds[key]).all() else "")
            for key in METRIC_NAMES
        ])
    return pd.DataFrame(rows, index=pd.Index(list(reports), name=index),
                        columns=list(METRIC_NAMES.values()))


def expert_agreement(cells: pd.DataFrame, prediction) -> dict[str, float]:
    """Spearman of the predictions against each expert, and of the experts with each other.

    The experts' agreement with each other (0.655 on the real labels) is the human
    ceiling a model's agreement with one expert can be read against.

    Parameters
    ----------
    cells : DataFrame
        With the :data:`~sarcnet_sklearn._columns.EXPERT_COLUMNS` present
        (absent ones are left out).
    prediction : array-like of shape (n_cells,)

    Returns
    -------
    agreement : dict
        ``"<expert>"``: Spearman of the model against that expert, and
        ``"<expert> vs <expert>"`` for each pair of experts.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.metrics import expert_agreement
    >>> cells = pd.DataFrame({"expert_1": [1, 2, 3, 4], "expert_2": [1, 3, 2, 4]})
    >>> {k: round(v, 2) for k, v in expert_agreement(cells, [1.0, 2.0, 3.0, 4.0]).items()}
    {'expert_1': 1.0, 'expert_2': 0.8, 'expert_1 vs expert_2': 0.8}
    """
    experts = [name for name in EXPERT_COLUMNS if name in cells.columns]
    agreement = {name: spearman_score(cells[name], prediction) for name in experts}
    for i, first in enumerate(experts):
        for second in experts[i + 1:]:
            agreement[f"{first} vs {second}"] = spearman_score(cells[first], cells[second])
    return agreement
