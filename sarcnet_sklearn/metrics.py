"""Metrics of the paper: Spearman correlation (the headline), MAE, MSE and R^2."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import make_scorer, mean_absolute_error, mean_squared_error, r2_score

from ._columns import EXPERT_COLUMNS, FIELD_COLUMN


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
    y_true,
    y_pred,
    *,
    groups=None,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    random_state: int | None = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the four metrics, resampling cells or whole groups.

    Two models' metrics on the same cells can be told apart only where their
    intervals say so; on a few hundred cells, Spearman's is about +-0.03 wide.
    Cells of one field of view share their plate, day and imaging, and their
    scores are alike (a quarter of the variance lies between fields in the real
    AICS labels): given ``groups`` (each cell's field), the bootstrap draws whole
    fields with replacement, and its intervals are honest about that, where
    resampling cells would make them too narrow. This is the package's one
    bootstrap of metrics (the report, ``train`` and the cross-validated agreement
    of :mod:`sarcnet_sklearn.agreement` use it).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_cells,)
    groups : array-like of shape (n_cells,), optional
        The group (field, well) of each cell: resample whole groups. Default:
        resample cells. A missing group is an error naming the cell.
    confidence : float, default=0.95
    n_resamples : int, default=1000
    random_state : int or None, default=0

    Returns
    -------
    intervals : dict
        The keys of :func:`regression_report`, each ``(low, high)`` (NaN for
        fewer than 3 cells or fewer than 3 groups).

    Examples
    --------
    >>> import numpy as np
    >>> from sarcnet_sklearn.metrics import bootstrap_intervals
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.uniform(1, 5, 300)
    >>> low, high = bootstrap_intervals(truth, truth + rng.normal(0, 0.5, 300))["spearman"]
    >>> bool(0.85 < low < high < 0.95)
    True
    >>> fields = np.repeat(np.arange(30), 10)
    >>> low, high = bootstrap_intervals(truth, truth + rng.normal(0, 0.5, 300),
    ...                                 groups=fields)["mae"]
    >>> bool(0.3 < low < high < 0.5)
    True
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    n = len(y_true)
    if len(y_pred) != n:
        raise ValueError(f"y_true has {n} values, y_pred {len(y_pred)}")
    members = _resampling_units(groups, n)
    if n < 3 or len(members) < 3:
        return {key: (float("nan"), float("nan")) for key in METRIC_NAMES}
    rng = np.random.default_rng(random_state)
    n_units = n if groups is None else len(members)
    unit_of_cell = np.arange(n) if groups is None else _unit_of_cell(members, n)
    values = {key: [] for key in METRIC_NAMES}
    chunk = max(1, min(n_resamples, 4_000_000 // max(n, n_units)))
    for first in range(0, n_resamples, chunk):
        drawn = rng.integers(0, n_units, size=(min(chunk, n_resamples - first), n_units))
        counts = np.zeros(drawn.shape, dtype=np.float64)  # how often each unit was drawn
        np.add.at(counts, (np.arange(len(drawn))[:, None], drawn), 1.0)
        for key, value in _weighted_metrics(y_true, y_pred, counts[:, unit_of_cell]).items():
            values[key].append(value)
    tail = 100 * (1 - confidence) / 2
    intervals = {}
    for key in METRIC_NAMES:
        finite = np.concatenate(values[key])
        finite = finite[np.isfinite(finite)]
        intervals[key] = (tuple(float(v) for v in np.percentile(finite, [tail, 100 - tail]))
                          if len(finite) else (float("nan"), float("nan")))
    return intervals


def _unit_of_cell(members: list, n: int) -> np.ndarray:
    unit = np.empty(n, dtype=np.intp)
    for code, cells in enumerate(members):
        unit[cells] = code
    return unit


def _weighted_metrics(y_true, y_pred, weights) -> dict[str, np.ndarray]:
    """The four metrics of each bootstrap resample, given as how often each cell was drawn.

    ``weights`` has one row per resample; a cell drawn k times counts k times, so
    each value equals :func:`regression_report` of the resample written out
    (Spearman: Pearson's correlation of average ranks, ties included).
    """
    total = weights.sum(axis=1)

    def mean(values):
        return (weights * values).sum(axis=1) / total

    errors = y_pred - y_true
    mse = mean(errors**2)
    variance = mean(y_true**2) - mean(y_true) ** 2
    ranks_true, ranks_pred = _weighted_ranks(y_true, weights), _weighted_ranks(y_pred, weights)
    centred_true = ranks_true - mean(ranks_true)[:, None]
    centred_pred = ranks_pred - mean(ranks_pred)[:, None]
    spread = np.sqrt(mean(centred_true**2) * mean(centred_pred**2))
    with np.errstate(invalid="ignore", divide="ignore"):
        spearman = np.where(spread > 1e-12, mean(centred_true * centred_pred) / spread, np.nan)
        r2 = np.where(variance > 1e-300, 1.0 - mse / variance, np.nan)
    return {"spearman": spearman, "mae": mean(np.abs(errors)), "mse": mse, "r2": r2}


def _weighted_ranks(values, weights) -> np.ndarray:
    """Average ranks of each cell within each resample (``weights``: its copies there)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    block = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
    copies = np.add.reduceat(weights[:, order], starts, axis=1)  # per run of tied values
    block_rank = np.cumsum(copies, axis=1) - copies + (copies + 1) / 2
    ranks = np.empty_like(weights)
    ranks[:, order] = block_rank[:, block]
    return ranks


def _resampling_units(groups, n: int) -> list:
    """The cells of each group (``range(n)`` for cells), checked: one label per cell."""
    if groups is None:
        return range(n)
    labels = pd.Series(np.asarray(groups, dtype=object).reshape(-1))
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} values for {n} cells")
    missing = labels.isna().to_numpy()
    if missing.any():
        raise ValueError(f"{int(missing.sum())} cell(s) without a group, e.g. cell "
                         f"{int(np.flatnonzero(missing)[0])}: give every cell its field, or "
                         "no groups to resample cells")
    codes = pd.factorize(labels.astype(str))[0]
    return [np.flatnonzero(codes == code) for code in range(codes.max() + 1 if n else 0)]


def field_groups(cells: pd.DataFrame) -> np.ndarray | None:
    """The field of each cell for :func:`bootstrap_intervals`, or None when not all are known.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.metrics import field_groups
    >>> field_groups(pd.DataFrame({"field": ["a", "a", "b"]})).tolist()
    ['a', 'a', 'b']
    >>> field_groups(pd.DataFrame({"field": ["a", None]})) is None
    True
    """
    if FIELD_COLUMN not in cells.columns or cells[FIELD_COLUMN].isna().any() or not len(cells):
        return None
    return cells[FIELD_COLUMN].astype(str).to_numpy()


def resampling_note(groups) -> str:
    """What a bootstrap of :func:`bootstrap_intervals` resampled, in words.

    Examples
    --------
    >>> from sarcnet_sklearn.metrics import resampling_note
    >>> resampling_note(None)
    'resampling cells'
    >>> resampling_note(["a", "a", "b"])
    'resampling whole fields (2 fields)'
    """
    if groups is None:
        return "resampling cells"
    return f"resampling whole fields ({pd.Series(np.asarray(groups)).nunique()} fields)"


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
