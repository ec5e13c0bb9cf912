"""The model asks: which unscored cells to score by hand next.

Two orders: the cells that make the hand-scored set most like the whole table as
the model sees cells (``"representative"``), or the cells the model is least sure
about (``"uncertain"``); a share of random cells keeps either from chasing only
odd cells (outliers, bad segmentations).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._columns import ERROR_COLUMN, SCORE_PRED_COLUMN, TARGET_COLUMN
from .._doors import option
from .._recipe import (
    SUGGEST_DENSITY,
    SUGGEST_GROUPS,
    SUGGEST_ORDER,
    SUGGEST_ORDERS,
    SUGGEST_RANDOM_SHARE,
)

RANK_COLUMN = "suggest_rank"
"""1 = score this cell first."""
UNCERTAINTY_COLUMN = "uncertainty"
"""How unsure the model is about the cell (see :func:`cell_uncertainty`)."""
CHOSEN_BY_COLUMN = "suggested_by"
"""``"model"`` (the order's pick) or ``"random"``."""
UNCERTAINTY_KINDS = ("d4", "interval")
HERDING_CELLS = 3000
"""The representative order herds at most this many unscored cells (a random sample of the
table's; the rest follow in random order, a random sample standing for the table too) against
at most this many of the scored cells (a random sample, each weighing for the cells it stands
for)."""


def cell_uncertainty(model, cells: pd.DataFrame, *, by: str = "d4",
                     confidence: float = 0.9) -> pd.DataFrame:
    """How unsure a model is about each cell.

    Parameters
    ----------
    model : fitted SarcNet pipeline
    cells : DataFrame
        Cells as ``predict`` reads them.
    by : {"d4", "interval"}, default="d4"
        ``"d4"``: the standard deviation of the model's scores of the cell's
        image under its 8 flips and quarter turns (a model that has learnt a
        cell's kind scores it the same however it lies). ``"interval"``: the
        width of the cell's prediction interval at ``confidence`` (a calibrated
        model, see :func:`~sarcnet_sklearn.intervals.calibrate`; split-conformal
        intervals have one half-width, so they differ only where the range's
        ends clip them: cells predicted mid-scale come first).
    confidence : float, default=0.9
        For ``by="interval"``.

    Returns
    -------
    DataFrame
        One row per cell, index as ``cells``: ``score_pred`` (the mean of the
        8 transforms for ``"d4"``), ``uncertainty`` and ``error`` (why a cell
        could not be scored; its uncertainty is then NaN).

    Examples
    --------
    >>> # model: a fitted SarcNet pipeline; cells: a table of cells
    >>> cell_uncertainty(model, cells.head(3)).columns.tolist()  # doctest: +SKIP
    ['score_pred', 'uncertainty', 'error']
    """
    return _measure(model, cells, by=by, confidence=confidence)[0]


def _measure(model, cells: pd.DataFrame, *, by: str, confidence: float = 0.9):
    """:func:`cell_uncertainty`'s table, and the model's input features of each cell (as
    measured or read for it; NaN where it could not be scored)."""
    import torch

    from .._batches import N_D4, d4_transform
    from .._pixel_size import pixel_size_of_model
    from ..intervals import predict_interval
    from ..pipeline import ModelInputs, SarcNetPipeline
    from ._checks import check_cells, with_images

    if by not in UNCERTAINTY_KINDS:
        raise ValueError(f"by must be one of {UNCERTAINTY_KINDS}, got {by!r}")
    pipeline = SarcNetPipeline.of(model)
    inputs = ModelInputs.of(pipeline)
    table, errors, images, *_ = check_cells(cells, inputs,
                                            model_pixel_size=pixel_size_of_model(model))
    usable = errors.isna().to_numpy()
    out = pd.DataFrame({SCORE_PRED_COLUMN: np.nan, UNCERTAINTY_COLUMN: np.nan,
                        ERROR_COLUMN: errors.to_numpy()}, index=cells.index)
    features = np.full((len(cells), len(inputs.features)), np.nan)
    if not usable.any():
        return out, features
    features[usable] = table.loc[usable, list(inputs.features)].to_numpy(dtype=float)
    ready = with_images(table, errors, images, inputs.image_column)[usable]
    if by == "interval":
        predicted, low, high = predict_interval(pipeline, ready, confidence,
                                                score_range=pipeline.score_range)
        spread = high - low
    else:
        if images is None:
            raise ValueError("by='d4' needs a model that reads images; use by='interval'")
        # a model scoring canonical poses gives all 8 one score: its spread over the poses
        # as they lie says how much its score depends on the pose
        single = pipeline.for_prediction(test_time_augment=False, canonical_orientation=False)
        planes = torch.from_numpy(np.ascontiguousarray(images[usable]))
        scores = []
        for t in range(N_D4):
            turned = ready.copy()
            turned[inputs.image_column] = list(d4_transform(planes, t).numpy())
            scores.append(np.asarray(single.predict(turned), dtype=float).reshape(-1))
        scores = np.stack(scores)
        predicted, spread = scores.mean(axis=0), scores.std(axis=0)
        if pipeline.score_range is not None:
            predicted = np.clip(predicted, *pipeline.score_range)
    out.loc[out.index[usable], SCORE_PRED_COLUMN] = predicted
    out.loc[out.index[usable], UNCERTAINTY_COLUMN] = spread
    return out, features


def suggest_cells(
    model,
    cells: pd.DataFrame,
    *,
    order: str = SUGGEST_ORDER,
    random_share: float = SUGGEST_RANDOM_SHARE,
    by: str = "d4",
    groups: int = SUGGEST_GROUPS,
    density: float = SUGGEST_DENSITY,
    target: str = TARGET_COLUMN,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Order the unscored cells for scoring by hand: the model's picks mixed with random ones.

    Parameters
    ----------
    model : fitted SarcNet pipeline
    cells : DataFrame
        Cells as ``predict`` reads them; rows with a ``target`` score are
        already scored: left out of the order, and with
        ``order="representative"`` the order complements them.
    order : {"representative", "uncertain"}, default=SUGGEST_ORDER
        ``"representative"``: each next cell the one that makes the scored
        cells and those before it in the order most like the table as a whole
        in the model's features and predicted score (kernel herding, Chen,
        Welling and Smola 2010): kinds of cell the scored ones miss come first,
        common kinds get more places than rare ones. ``"uncertain"``: the
        cells the model is least sure about first (see ``by``, ``groups`` and
        ``density``).
    random_share : float in [0, 1], default=SUGGEST_RANDOM_SHARE
        The share of the order drawn at random from the cells not yet placed
        (every ``1/random_share``-th place); 1: a random order.
    by : {"d4", "interval"}, default="d4"
        See :func:`cell_uncertainty`: the ``uncertainty`` column, and the
        ``"uncertain"`` order.
    groups : int, default=SUGGEST_GROUPS
        ``"uncertain"`` order: spread the model's picks over this many groups
        of alike cells (scikit-learn's :class:`~sklearn.cluster.KMeans` of the
        cells' model features and predicted score, each standardized), taking
        the most uncertain cell of each group in turn (the groups in the order
        of their most uncertain cell). 1: by uncertainty alone.
    density : float, default=SUGGEST_DENSITY
        ``"uncertain"`` order: weigh each cell's uncertainty by how typical it
        is, raised to this power (its density among the table's cells, one
        over the mean distance to its 10 nearest neighbours in the
        standardized model features and predicted score, as a share of the
        densest cell's), so that odd cells come later. 0: uncertainty alone.
    target : str, default="score"
    random_state : int or None, default=0

    Returns
    -------
    DataFrame
        The unscored rows of ``cells`` (index kept) in the order to score them,
        with ``suggest_rank`` (1 first), ``suggested_by``, ``uncertainty``,
        ``score_pred`` and ``error``; cells that cannot be scored come last.

    Examples
    --------
    >>> # model: a fitted SarcNet pipeline; cells: crops/cells.csv with an empty score column
    >>> order = suggest_cells(model, cells, random_share=0.25)  # doctest: +SKIP
    >>> order["suggested_by"].head(4).tolist()  # doctest: +SKIP
    ['model', 'model', 'model', 'random']
    """
    if order not in SUGGEST_ORDERS:
        raise ValueError(f"{option('order')} must be one of {SUGGEST_ORDERS}, got {order!r}")
    if not 0 <= random_share <= 1:
        raise ValueError(f"{option('random_share')} must be in [0, 1], got {random_share!r}")
    if not np.isfinite(density) or density < 0:
        raise ValueError(f"{option('density')} must be 0 or more, got {density!r}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{option('groups')} must be a whole number >= 1, got {groups!r}")
    representative = order == "representative"
    if representative and (groups != 1 or density != 0):
        raise ValueError(f"{option('groups')} and {option('density')} weigh the model's "
                         f"uncertainty: they go with {option('order')} 'uncertain'")
    unscored = np.ones(len(cells), dtype=bool)
    if target in cells.columns:
        unscored = pd.to_numeric(cells[target], errors="coerce").isna().to_numpy()
    if not unscored.any():
        raise ValueError(f"every cell already has a {target!r}: nothing to suggest")
    todo = cells[unscored]
    measured, features = _measure(model, cells if representative else todo, by=by)
    descriptors = np.column_stack([features, measured[SCORE_PRED_COLUMN].to_numpy(float)])
    if representative:
        scored = descriptors[~unscored]
        scored = scored[np.isfinite(scored).all(axis=1)]
        measured, descriptors = measured[unscored], descriptors[unscored]
    rng = np.random.default_rng(random_state)
    usable = np.flatnonzero(measured[ERROR_COLUMN].isna().to_numpy())
    if representative:
        by_model = list(usable[_herding(descriptors[usable], scored, rng)])
    else:
        priority = measured[UNCERTAINTY_COLUMN].to_numpy()[usable]
        if density > 0 and len(usable) > 1:
            priority = priority * _typicality(descriptors[usable]) ** density
        by_model = list(usable[np.argsort(-priority, kind="stable")])
        by_model = _across_groups(by_model, descriptors, groups, random_state)
    shuffled = list(rng.permutation(usable))
    every = np.inf if random_share == 0 else 1 / random_share
    placed, chosen_by, taken = [], [], set()
    while len(placed) < len(usable):
        random_turn = np.floor((len(placed) + 1) / every) > np.floor(len(placed) / every)
        source = shuffled if random_turn else by_model
        while source[0] in taken:
            source.pop(0)
        row = source.pop(0)
        taken.add(row)
        placed.append(row)
        chosen_by.append("random" if random_turn else "model")
    failed = np.flatnonzero(measured[ERROR_COLUMN].notna().to_numpy())
    ranked = np.concatenate([np.asarray(placed, dtype=int), failed])
    out = todo.iloc[ranked].drop(columns=[RANK_COLUMN, CHOSEN_BY_COLUMN], errors="ignore")
    for column in (UNCERTAINTY_COLUMN, SCORE_PRED_COLUMN, ERROR_COLUMN):
        out[column] = measured[column].to_numpy()[ranked]
    out.insert(0, CHOSEN_BY_COLUMN, chosen_by + [None] * len(failed))
    out.insert(0, RANK_COLUMN, np.arange(1, len(out) + 1))
    return out


def _standardized(values: np.ndarray) -> np.ndarray:
    """Each column to mean 0 and standard deviation 1 (NaN: 0, the mean)."""
    from sklearn.preprocessing import StandardScaler

    return np.nan_to_num(StandardScaler().fit_transform(values))


def _typicality(descriptors: np.ndarray, neighbours: int = 10) -> np.ndarray:
    """Each row's density among the rows: one over its mean distance to its nearest
    ``neighbours``, as a share of the densest row's (1 = the most typical)."""
    from sklearn.neighbors import NearestNeighbors

    values = _standardized(descriptors)
    count = min(neighbours + 1, len(values))
    distances, _ = NearestNeighbors(n_neighbors=count).fit(values).kneighbors(values)
    density = 1.0 / (distances[:, 1:].mean(axis=1) + 1e-9)
    return density / density.max()


def _across_groups(ranked: list, descriptors: np.ndarray, groups: int, random_state) -> list:
    """``ranked`` (rows, most uncertain first) taken in turn from ``groups`` k-means groups of
    the rows' standardized ``descriptors``, the groups in the order of their first row."""
    if groups == 1 or len(ranked) < 2:
        return ranked
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=min(groups, len(ranked)), n_init=3,
                    random_state=random_state).fit_predict(_standardized(descriptors[ranked]))
    queues: dict = {}
    for row, label in zip(ranked, labels, strict=True):
        queues.setdefault(label, []).append(row)  # groups in the order of their first row
    out, turn = [], list(queues.values())
    while len(out) < len(ranked):
        for queue in turn:
            if queue:
                out.append(queue.pop(0))
    return out


def _herding(candidates: np.ndarray, scored: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kernel herding (Chen, Welling and Smola 2010): the rows of ``candidates`` in the order
    that keeps the kernel mean of ``scored`` plus those placed closest to that of all rows
    (a Gaussian kernel of median bandwidth on the standardized columns): every prefix stands
    for the whole."""
    from sklearn.metrics.pairwise import euclidean_distances

    herded = np.arange(len(candidates))
    rest = np.empty(0, dtype=int)
    if len(candidates) > HERDING_CELLS:
        shuffled = rng.permutation(len(candidates))
        herded, rest = shuffled[:HERDING_CELLS], shuffled[HERDING_CELLS:]
    if len(herded) < 2:
        return np.concatenate([herded, rest])
    kept = scored
    if len(scored) > HERDING_CELLS:
        kept = scored[rng.choice(len(scored), HERDING_CELLS, replace=False)]
    n, m = len(herded), len(kept)
    values = _standardized(np.vstack([candidates[herded], kept])).astype(np.float32)
    sample = values if len(values) <= 2000 else values[rng.choice(len(values), 2000,
                                                                  replace=False)]
    spread = euclidean_distances(sample, squared=True)
    bandwidth = np.median(spread[spread > 0]) if (spread > 0).any() else 1.0
    kernel = np.exp(-euclidean_distances(values[:n], values, squared=True) / bandwidth)
    scored_weight = len(scored) / m if m else 0.0
    weights = np.concatenate([np.full(n, len(candidates) / n), np.full(m, scored_weight)])
    target = kernel @ weights / weights.sum()
    running = kernel[:, n:].sum(axis=1) * scored_weight
    count = len(scored)
    placed, left = [], np.ones(n, dtype=bool)
    while len(placed) < n:
        pick = int(np.argmax(np.where(left, target - running / (count + 1), -np.inf)))
        placed.append(pick)
        left[pick] = False
        running += kernel[:, pick]
        count += 1
    return np.concatenate([herded[placed], rest])
