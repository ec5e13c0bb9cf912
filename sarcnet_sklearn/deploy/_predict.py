"""Scoring a table of cells so that one bad cell never stops, or spoils, the others."""

from __future__ import annotations

from functools import partial

import pandas as pd

from .._chunks import chunk_slices, prefetched
from .._columns import (
    OUT_OF_RANGE_COLUMN,
    PIXEL_SIZE_COLUMN,
    SARCOMERE_COLUMNS,
    SCORE_HIGH_COLUMN,
    SCORE_LOW_COLUMN,
    SCORE_PRED_COLUMN,
    SCORE_RAW_COLUMN,
)
from .._console import progress_bar
from .._pixel_size import PIXEL_SIZE_ASSUMED_COLUMN, PixelSizeRule, pixel_size_of_model
from ..intervals import interval_half_width
from ..pipeline import SarcNetPipeline
from ..score_table import SCORE_TABLE_COLUMNS, score_table
from ._checks import CheckedCells, check_cells, identifying_columns, with_images

SCORE_COLUMN = SCORE_PRED_COLUMN
"""The predicted score, clipped to the model's score range (the experts' 1-5 scale)."""

RAW_COLUMN, RANGE_COLUMN = SCORE_RAW_COLUMN, OUT_OF_RANGE_COLUMN
LOW_COLUMN, HIGH_COLUMN = SCORE_LOW_COLUMN, SCORE_HIGH_COLUMN
OUTPUT_COLUMNS = SCORE_TABLE_COLUMNS


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
        from ..scale import map_table
        from ._model_file import load_model

        work = partial(predict_cells, mask_page=mask_page, batch_size=batch_size,
                       interval=interval, test_time_augment=test_time_augment,
                       pixel_size=pixel_size)
        return map_table(work, cells, chunk_size, model=model, load=load_model, client=client)
    pipeline = SarcNetPipeline.of(model).for_prediction(test_time_augment=test_time_augment,
                                                        batch_size=batch_size)
    model_size = pixel_size_of_model(model)
    PixelSizeRule(cells, pixel_size=pixel_size)  # a bad pixel size fails before any work
    parts = chunk_slices(len(cells), chunk_size) or [slice(0, 0)]
    with progress_bar(total=len(cells), desc="scoring", unit="cell", show=progress) as bar:
        scored = []
        check = partial(_check_chunk, cells, pipeline.inputs, mask_page=mask_page,
                        progress=progress and len(parts) == 1, sarcomere=True,
                        pixel_size=pixel_size, model_pixel_size=model_size)
        # The next chunk is read and checked while the model scores this one.
        for part, checked in zip(parts, prefetched(check, parts), strict=True):
            scored.append(_predict_chunk(pipeline, cells.iloc[part], checked, batch_size,
                                         interval))
            bar.update(part.stop - part.start)
    return pd.concat(scored) if len(scored) > 1 else scored[0]


def _check_chunk(cells: pd.DataFrame, inputs, part: slice, **options) -> CheckedCells:
    return check_cells(cells.iloc[part], inputs, **options)


def _predict_chunk(pipeline: SarcNetPipeline, cells: pd.DataFrame, checked: CheckedCells,
                   batch_size: int, interval: float | None) -> pd.DataFrame:
    """:func:`predict_cells` on a table small enough to hold its decoded images."""
    inputs = pipeline.inputs
    table, errors, images = checked.table, checked.errors, checked.images
    columns = ([inputs.image_column] if inputs.image_column else []) + inputs.features
    X = with_images(table[columns], errors, images, inputs.image_column)
    scores = score_table(pipeline, X, errors=errors, interval=interval, batch_size=batch_size)
    out = table[identifying_columns(table, inputs, exclude=OUTPUT_COLUMNS)].copy()
    for name in SARCOMERE_COLUMNS:  # measured for every cell, model features or not
        if name in table.columns and name not in out.columns:
            out[name] = table[name]
    out[PIXEL_SIZE_COLUMN] = checked.pixel_sizes
    out[PIXEL_SIZE_ASSUMED_COLUMN] = checked.pixel_size_assumed
    for column in scores.columns:
        out[column] = scores[column].set_axis(out.index)  # keeps the object dtype (None)
    out.index = cells.index
    return out
