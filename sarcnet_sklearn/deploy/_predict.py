"""Scoring a table of cells so that one bad cell never stops, or spoils, the others."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from .._chunks import chunk_slices, prefetched
from .._columns import ERROR_COLUMN, PIXEL_SIZE_COLUMN, SARCOMERE_COLUMNS
from .._console import progress_bar
from .._pixel_size import PIXEL_SIZE_ASSUMED_COLUMN, cell_pixel_sizes, pixel_size_of_model
from ..intervals import interval_bounds, interval_half_width
from ..pipeline import SarcNetPipeline
from ._checks import CheckedCells, check_cells, identifying_columns, with_images

SCORE_COLUMN = "score_pred"
"""The predicted score, clipped to the model's score range (the experts' 1-5 scale)."""

RAW_COLUMN = "score_raw"
"""The model's output before clipping."""

RANGE_COLUMN = "out_of_range"
"""The features of a row that lie far outside the training data (empty where none do)."""

SCORE_RANGE = (1.0, 5.0)
"""The experts' scale."""

LOW_COLUMN, HIGH_COLUMN = "score_low", "score_high"
"""Bounds of the conformal prediction interval (with ``interval=``), clipped to the score range."""

RANGE_MARGIN = 1.0
"""A feature is out of range beyond this fraction of its training range past its min or max
(one whole range: a unit mistake or a sign error, not an unusually large cell)."""

OUTPUT_COLUMNS = [SCORE_COLUMN, LOW_COLUMN, HIGH_COLUMN, RAW_COLUMN, ERROR_COLUMN,
                  RANGE_COLUMN]


def predict_cells(
    model,
    cells: pd.DataFrame,
    *,
    mask_page: int | None = None,
    batch_size: int = 200,
    progress: bool = False,
    interval: float | None = None,
    client=None,
    chunk_size: int = 1000,
    test_time_augment: bool | None = None,
    pixel_size: float | None = None,
) -> pd.DataFrame:
    """Score every cell of a table; a cell that cannot be scored gets its reason instead.

    Each row is checked first (image path present, image file readable with
    the page the model reads and not blank, features finite); the Protocol 1
    features are measured from the images when the table lacks them and the
    model is a Protocol 1 model. The fitted model then predicts the rows that
    passed, in batches. Rows that fail get NaN scores and the reason in the
    ``error`` column. A row with a feature far outside the training data
    (more than the width of the feature's training range beyond its min or
    max, e.g. an area in pixels instead of um^2, or a large negative area)
    would be an extrapolation: its
    ``score_pred`` is NaN, ``out_of_range`` names the features, ``error``
    says why, and ``score_raw`` keeps the model's output.

    Parameters
    ----------
    model : fitted SarcNet pipeline or SarcNetRegressor
        E.g. from :func:`load_model`.
    cells : DataFrame
        One row per cell: the image-path column, the model's feature columns
        (unless measurable) and any identifying columns (IDs, ...).
    mask_page : int, optional
        Page holding the cell mask when features are measured (default 9).
    batch_size : int, default=200
        Rows handed to the model at once, and the network's batch for them
        (``model`` itself is not changed, see
        :meth:`~sarcnet_sklearn.SarcNetPipeline.for_prediction`).
    progress : bool, default=False
        Show progress bars.
    interval : float, optional
        Confidence of a prediction interval per cell (e.g. 0.9), from the
        model's conformal calibration (:mod:`sarcnet_sklearn.intervals`).
    client : distributed.Client, optional
        Score on the workers of this Dask cluster, ``chunk_size`` cells per
        task; ``model`` (a fitted model, or a model file the workers can read)
        reaches each worker once. The result is the same as here.
    chunk_size : int, default=1000
        Cells checked, decoded and scored at once (per cluster task with
        ``client``): memory depends on it, not on the number of cells. Each
        image is read once.
    test_time_augment : bool, optional
        Score each cell as the mean over its image's 8 flips and quarter
        turns (True) or with one forward pass (False, 8x faster); default:
        as the model says. ``model`` itself is not changed (see
        :meth:`~sarcnet_sklearn.SarcNetPipeline.with_test_time_augment`).
    pixel_size : float, optional
        Micrometres per pixel of every cell, overriding a ``pixel_size`` column
        and the files' metadata; where none gives one, the model's pixel size is
        assumed with one warning (see :mod:`sarcnet_sklearn._pixel_size`).
        Features and sarcomere measures are measured at each cell's own pixel
        size, their texture at the model's.

    Returns
    -------
    predictions : DataFrame
        Same index and row order as ``cells``: its non-feature columns (image
        path, IDs, ...), ``pixel_size`` and ``pixel_size_assumed`` (True where
        the model's was assumed), the sarcomere measures ``sarcomere_length_um``,
        ``orientation_order`` and ``sarcomeric_fraction`` (measured when the
        table lacks them; NaN for a cell without a mask), then
        ``score_pred`` (clipped to the model's ``score_range``, 1-5 by
        default), with ``interval`` ``score_low`` and ``score_high``, then
        ``score_raw``, ``error`` (None where the row was scored) and
        ``out_of_range`` (None where no feature is).

    Raises
    ------
    ValueError
        When the table as a whole cannot be scored: no rows, no image column,
        or missing feature columns that cannot be measured; or an
        ``interval`` from a model that is not calibrated.

    Examples
    --------
    >>> from sarcnet_sklearn.deploy import predict_cells
    >>> # model: a fitted SarcNet pipeline, e.g. load_model("sarcnet.zip")
    >>> scores = predict_cells(model, cells.head(3))
    >>> int(scores["score_pred"].notna().sum()), bool(scores["error"].isna().all())
    (3, True)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if interval is not None:
        interval_half_width(model, interval)  # not calibrated, or too few cells: say so now
    if client is not None:
        from ..scale import map_chunks

        chunks = [cells.iloc[part] for part in chunk_slices(len(cells), chunk_size)]
        work = partial(predict_cells, mask_page=mask_page, batch_size=batch_size,
                       interval=interval, test_time_augment=test_time_augment,
                       pixel_size=pixel_size)
        scored = dict(map_chunks(work, chunks, model=model, client=client))
        return pd.concat([scored[index] for index in range(len(chunks))])
    pipeline = SarcNetPipeline.of(model).for_prediction(test_time_augment=test_time_augment,
                                                        batch_size=batch_size)
    model_size = pixel_size_of_model(model)
    sizes, assumed = cell_pixel_sizes(cells, pipeline.inputs.image_column, pixel_size=pixel_size,
                                      assumed=model_size)
    parts = chunk_slices(len(cells), chunk_size) or [slice(0, 0)]
    with progress_bar(total=len(cells), desc="scoring", unit="cell", show=progress) as bar:
        scored = []
        check = partial(_check_chunk, cells, pipeline.inputs, mask_page=mask_page,
                        progress=progress and len(parts) == 1, sarcomere=True,
                        pixel_sizes=sizes, texture_pixel_size=model_size)
        # The next chunk is read and checked while the model scores this one.
        for part, checked in zip(parts, prefetched(check, parts), strict=True):
            scored.append(_predict_chunk(pipeline, cells.iloc[part], checked, batch_size,
                                         interval, sizes[part], assumed[part]))
            bar.update(part.stop - part.start)
    return pd.concat(scored) if len(scored) > 1 else scored[0]


def _check_chunk(cells: pd.DataFrame, inputs, part: slice, *, pixel_sizes, **options
                 ) -> CheckedCells:
    return check_cells(cells.iloc[part], inputs, pixel_sizes=pixel_sizes[part], **options)


def _predict_chunk(pipeline: SarcNetPipeline, cells: pd.DataFrame, checked: CheckedCells,
                   batch_size: int, interval: float | None, sizes=None, assumed=None
                   ) -> pd.DataFrame:
    """:func:`predict_cells` on a table small enough to hold its decoded images."""
    inputs = pipeline.inputs
    table, errors, images = checked
    columns = ([inputs.image_column] if inputs.image_column else []) + inputs.features
    X = with_images(table[columns], errors, images, inputs.image_column)
    raw = np.full(len(table), np.nan)
    good = np.flatnonzero(errors.isna().to_numpy())
    for part in chunk_slices(len(good), batch_size):
        _score(pipeline, X, good[part], raw, errors)
    broken = ~np.isfinite(raw) & errors.isna().to_numpy()
    errors[broken] = "the model returned a non-finite score"
    outside = _out_of_range(pipeline, X, errors)
    score_range = pipeline.score_range or (-np.inf, np.inf)
    out = table[identifying_columns(table, inputs, exclude=OUTPUT_COLUMNS)].copy()
    for name in SARCOMERE_COLUMNS:  # measured for every cell, model features or not
        if name in table.columns and name not in out.columns:
            out[name] = table[name]
    if sizes is not None:
        out[PIXEL_SIZE_COLUMN] = sizes
        out[PIXEL_SIZE_ASSUMED_COLUMN] = assumed
    out[SCORE_COLUMN] = np.where(outside.isna(), np.clip(raw, *score_range), np.nan)
    if interval is not None:
        _, low, high = interval_bounds(pipeline, raw, interval, score_range)
        out[LOW_COLUMN] = np.where(outside.isna(), low, np.nan)
        out[HIGH_COLUMN] = np.where(outside.isna(), high, np.nan)
    out[RAW_COLUMN] = raw
    out[ERROR_COLUMN] = pd.Series(
        [message if isinstance(message, str) else None for message in errors],
        index=out.index,
        dtype=object,
    )
    out[RANGE_COLUMN] = pd.Series(outside.to_numpy(), index=out.index, dtype=object)
    out.index = cells.index
    return out


def _out_of_range(pipeline: SarcNetPipeline, X: pd.DataFrame, errors: pd.Series) -> pd.Series:
    """Name, per scored row, the features far outside the training data (see RANGE_MARGIN)."""
    flags = pd.Series([None] * len(X), dtype=object)
    net = pipeline.regressor
    low, high = getattr(net, "feature_min_", None), getattr(net, "feature_max_", None)
    rows = np.flatnonzero(errors.isna().to_numpy())
    if low is None or high is None or not len(low) or not len(rows):
        return flags
    values = pipeline.regressor_input(X.iloc[rows])  # in the units the network was trained on
    names = list(net.feature_names_)
    values = values[names].to_numpy(dtype=np.float64)
    margin = RANGE_MARGIN * (high - low)
    outside = (values < low - margin) | (values > high + margin)
    for i in np.flatnonzero(outside.any(axis=1)):
        row = rows[i]
        flagged = [names[j] for j in np.flatnonzero(outside[i])]
        flags[row] = ", ".join(flagged)
        shown = ", ".join(f"{name}={X[name].iloc[row]:g}" for name in flagged)
        errors[row] = (
            f"not scored: {shown} far outside the training data, so the score would be an "
            f"extrapolation (see {RAW_COLUMN!r})"
        )
    return flags


def _score(model, X: pd.DataFrame, rows: np.ndarray, raw: np.ndarray, errors: pd.Series) -> None:
    """Predict ``rows``; if that fails, predict them one by one to find the culprit."""
    try:
        raw[rows] = np.asarray(model.predict(X.iloc[rows]), dtype=np.float64).reshape(-1)
    except ValueError as exc:
        if len(rows) == 1:
            errors[rows[0]] = f"cannot score: {exc}"
            return
        for row in rows:
            _score(model, X, np.array([row]), raw, errors)
