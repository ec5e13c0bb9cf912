"""What the plugin computes, without Qt: scores per label, the score map, one cell's Grad-CAM.

The widget runs these in a worker thread; each is a plain function of numpy
arrays and a loaded model, on top of the package's fields API
(:func:`~sarcnet_sklearn.fields.score_fields`, :func:`~sarcnet_sklearn.fields.cut_cells`)
and :func:`~sarcnet_sklearn.explain.grad_cam`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import SCORE_HIGH_COLUMN, SCORE_LOW_COLUMN, SCORE_PRED_COLUMN, SCORE_RANGE

INTERVAL_COLUMNS = (SCORE_LOW_COLUMN, SCORE_HIGH_COLUMN)
"""Columns of a model with prediction intervals (conformal); shown when present."""

SAFE_SUFFIXES = (".zip",)


class PluginError(ValueError):
    """A problem with the user's input that the widget reports as it is (no traceback)."""


@dataclass
class Progress:
    """How far scoring has got: ``done`` of ``total`` cells."""

    done: int
    total: int


def load_sarcnet_model(path: str | PathLike, *, allow_pickle: bool = False):
    """Load a SarcNet model file for the widget, refusing what is not one.

    Parameters
    ----------
    path : str or path-like
        A safe-format model (folder or ``.zip``); a joblib file only with
        ``allow_pickle=True``, since unpickling a file can run any code.
    allow_pickle : bool, default=False

    Returns
    -------
    model : fitted SarcNet pipeline
        Read with :func:`sarcnet_sklearn.deploy.load_model`.

    Raises
    ------
    PluginError
        Naming the file: missing, a joblib file without ``allow_pickle``,
        unreadable, or not a SarcNet model.
    """
    from ..deploy import ModelInputs, load_model

    if path is None or str(path).strip() in {"", "."}:
        raise PluginError("choose a model file first (a safe-format .zip or folder)")
    path = Path(path).expanduser()
    if not path.exists():
        raise PluginError(f"no such model file: {path}")
    safe = path.is_dir() or path.suffix.lower() in SAFE_SUFFIXES
    if not safe and not allow_pickle:
        raise PluginError(
            f"{path} is not a safe-format model (.zip or folder). Loading a joblib/pickle "
            "file can run any code it holds: tick 'trust pickle files' only for models you "
            "made yourself or fully trust"
        )
    try:
        model = load_model(path)
        ModelInputs.of(model)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise PluginError(f"{path} is not a usable SarcNet model: {exc}") from exc
    return model


def pixel_size_of(scale) -> float | None:
    """The field's pixel size (um/px) from a layer's scale; None when it is napari's default 1.

    Examples
    --------
    >>> pixel_size_of((0.12, 0.12)), pixel_size_of((1.0, 1.0))
    (0.12, None)
    """
    rows, cols = (float(value) for value in tuple(scale)[-2:])
    if rows == cols == 1.0:
        return None
    if not np.isclose(rows, cols, rtol=1e-3):
        raise PluginError(
            f"the image layer's pixels are not square (scale {rows:g} x {cols:g}); the cell "
            "features need one pixel size"
        )
    from .._validation import check_pixel_size_um

    try:
        return check_pixel_size_um(rows, "the image layer's scale")
    except ValueError as exc:
        raise PluginError(f"{exc} (set the layer's scale to micrometres per pixel)") from None


def check_label_layer(labels: np.ndarray) -> np.ndarray:
    """A labels layer's data as a label image (any integer or boolean type), or a PluginError.

    See :func:`~sarcnet_sklearn.fields.check_labels`: negative labels, fractions
    and other types get one message naming the labels layer.
    """
    from ..fields._cut import check_labels

    labels = np.asarray(labels)
    try:
        return check_labels(labels, labels.shape, "the labels layer")
    except ValueError as exc:
        raise PluginError(str(exc)) from exc


def score_limits(model) -> tuple[float, float]:
    """The colour scale of the score layer: the model's own score range (the experts' 1-5
    when the model has none, or none is loaded yet).

    Examples
    --------
    >>> score_limits(None)
    (1.0, 5.0)
    """
    from ..pipeline import SarcNetPipeline

    if model is None:
        return SCORE_RANGE
    return SarcNetPipeline.of(model).score_range or SCORE_RANGE


def label_ids(labels: np.ndarray) -> np.ndarray:
    """The cell labels present (ascending, background 0 left out)."""
    ids = np.unique(labels)
    return ids[ids != 0]


def score_in_chunks(
    model,
    field: np.ndarray,
    labels: np.ndarray,
    *,
    pixel_size: float | None = None,
    score_border_cells: bool = False,
    chunk_size: int = 4,
) -> Iterator[Progress | pd.DataFrame]:
    """Score every labelled cell of a field, a few cells at a time.

    Yields a :class:`Progress` after each chunk of ``chunk_size`` labels (so
    that a worker can report progress and be cancelled between chunks), then
    the table of all cells: one row per label, as
    :func:`~sarcnet_sklearn.fields.score_fields` returns it, sorted by label.
    The field is read, stretched and cut once (every cell exactly as in a
    single call); the chunks are measured and scored in turn.

    Raises
    ------
    PluginError
        When the field or label image cannot be scored at all (shapes differ,
        no cells, not one 2-D plane...).
    """
    from ..fields._score import check_field_model, cut_field, score_cut_cells

    field = np.asarray(field)
    labels = np.asarray(labels)
    if field.shape != labels.shape:
        raise PluginError(
            f"the image ({field.shape}) and the labels ({labels.shape}) differ in shape; choose "
            "the labels drawn on this image"
        )
    labels = check_label_layer(labels)
    if len(label_ids(labels)) == 0:
        raise PluginError("the labels layer has no cells (every pixel is 0)")
    try:
        check_field_model(model)
        cells = cut_field(field, labels, pixel_size=pixel_size,
                          score_border_cells=score_border_cells).cells
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    tables = []
    for start in range(0, len(cells), chunk_size):
        try:
            tables.append(score_cut_cells(model, cells.iloc[start:start + chunk_size]))
        except ValueError as exc:
            raise PluginError(str(exc)) from exc
        yield Progress(min(start + chunk_size, len(cells)), len(cells))
    yield pd.concat(tables, ignore_index=True).sort_values("label", ignore_index=True)


def as_features(table: pd.DataFrame, image_name: str) -> pd.DataFrame:
    """The scores table as a Labels layer's ``features``: an ``index`` column holding the label.

    napari finds a label's row through the ``index`` column, and shows that
    row in the status bar when the mouse is over the cell.
    """
    features = table.copy()
    if "field" in features.columns:
        features["field"] = image_name
    features.insert(0, "index", features["label"].to_numpy())
    return features


def score_map(labels: np.ndarray, table: pd.DataFrame,
              column: str = SCORE_PRED_COLUMN) -> np.ndarray:
    """An image of the field with each cell filled by its score and NaN elsewhere.

    Examples
    --------
    >>> labels = np.array([[0, 1], [2, 2]])
    >>> table = pd.DataFrame({"label": [1, 2], "score_pred": [1.5, 4.0]})
    >>> score_map(labels, table).tolist()
    [[nan, 1.5], [4.0, 4.0]]
    """
    from ..fields._cut import compact_labels

    values, compact = compact_labels(check_label_layer(labels))
    lookup = np.full(len(values) + 1, np.nan, dtype=np.float32)
    scored = table.dropna(subset=[column])
    ids = np.array([int(label) for label in scored["label"]], dtype=object)
    positions = np.searchsorted(values, scored["label"].to_numpy(values.dtype))
    present = positions < len(values)
    present[present] = values[positions[present]].astype(object) == ids[present]
    lookup[positions[present] + 1] = scored[column].to_numpy(np.float32)[present]
    return lookup[compact]


@dataclass
class CellHeatmap:
    """One cell's Grad-CAM heatmap, where it lies in the field (pixels), the layer explained."""

    label: int
    heatmap: np.ndarray
    offset: tuple[int, int]
    layer: str | None = None


def cell_heatmap(model, field: np.ndarray, labels: np.ndarray, row: pd.Series) -> CellHeatmap:
    """Grad-CAM heatmap of one scored cell, aligned with its crop in the field.

    The cell is cut again by the AICS recipe
    (:func:`~sarcnet_sklearn.fields.cut_cells`), and the image branch explained
    with the cell's own features (from ``row``, a row of the scores table).

    Raises
    ------
    PluginError
        When the cell was not scored (its ``error``) or the model has no
        image branch.
    """
    from ..explain import grad_cam, grad_cam_layer
    from ..fields import cut_cells
    from ..pipeline import SarcNetPipeline

    label = int(row["label"])
    error = row.get("error")
    if isinstance(error, str) and error:
        raise PluginError(f"cell {label} was not scored: {error}")
    pipeline = SarcNetPipeline.of(model)
    inputs = pipeline.inputs
    if inputs.image_column is None:
        raise PluginError("this model reads no images, so it has no Grad-CAM heatmap")
    labels = check_label_layer(labels)
    (crop,) = cut_cells(np.asarray(field), np.where(labels == label, labels, 0))
    cell = {inputs.image_column: [crop.image]}
    cell |= {name: [row[name]] for name in inputs.features if name in row.index}
    layer = grad_cam_layer(model)
    (heatmap,) = grad_cam(model, pd.DataFrame(cell), layer=layer)
    return CellHeatmap(label, np.asarray(heatmap, dtype=np.float32), crop.bbox[:2], layer)
