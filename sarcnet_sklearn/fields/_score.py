"""Scoring every cell of fields of view: read, cut, measure, predict, one row per cell."""

from __future__ import annotations

import warnings
from functools import partial
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._columns import (
    ERROR_COLUMN,
    MEASURABLE_FEATURES,
    OUT_OF_RANGE_COLUMN,
    PIXEL_SIZE_UM,
    PROTOCOL_1,
    SARCOMERE_COLUMNS,
    SCORE_PRED_COLUMN,
    SCORE_RAW_COLUMN,
)
from .._console import progress_bar
from .._doors import option
from .._pixel_size import (
    PIXEL_SIZE_ASSUMED_COLUMN,
    assumed_rows,
    fields_without_pixel_size_message,
    pixel_size_of_model,
)
from .._validation import check_pixel_size_um
from ..features import PROTOCOL1_ERROR_COLUMN, Protocol1Extractor
from ._cut import CellCrop, check_field, check_labels, cut_cells, stretch_field
from ._read import FieldImage, read_field, read_labels

POSITION_COLUMNS = [
    "field",
    "label",
    "centroid_row",
    "centroid_col",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
    "area",
    "touches_border",
    "pixel_size",
    PIXEL_SIZE_ASSUMED_COLUMN,
]
"""Where each cell is: its field, label, centroid, bounding box (max exclusive), area (px),
and its pixel size (um; ``pixel_size_assumed``: True where the field's metadata had none)."""

BORDER_ERROR = ("the cell touches the field's border and may be cut off (the AICS training cells "
                "never did)")
"""How the ``error`` of a border cell starts; :func:`border_error` adds how to score it anyway."""


def border_error() -> str:
    """A border cell's ``error``, telling how to score it anyway in the words of the caller's door.

    Examples
    --------
    >>> border_error().endswith("score it anyway with score_border_cells=True")
    True
    """
    return f"{BORDER_ERROR}; score it anyway with {option('score_border_cells')}"

SCORE_COLUMNS = [SCORE_PRED_COLUMN, SCORE_RAW_COLUMN, ERROR_COLUMN, OUT_OF_RANGE_COLUMN]
"""The score table's columns in a fields table (see :mod:`sarcnet_sklearn.score_table`)."""

CROP_COLUMN = "crop"
MASK_COLUMN = "mask"

FieldSource = str | PathLike | np.ndarray | FieldImage


def as_list(items, what: str) -> list:
    """One field (or label image) or a sequence of them, as a list."""
    if isinstance(items, (str, PathLike, np.ndarray, FieldImage)):
        return [items]
    if items is None:
        return []
    try:
        return list(items)
    except TypeError as exc:
        raise ValueError(f"{what} must be a path, an array or a list of them") from exc


def pair_fields(fields, labels) -> list[tuple[FieldSource, object]]:
    """Fields and label images as pairs; a clear error when some field has no label image."""
    fields, labels = as_list(fields, "fields"), as_list(labels, "labels")
    if not fields:
        raise ValueError("no fields given")
    names = [_source_name(field, index) for index, field in enumerate(fields)]
    if len(labels) != len(fields):
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ValueError(
            f"{len(fields)} field(s) ({listed}) but {len(labels)} label image(s): give one "
            "label image per field, in the same order"
        )
    for name, label in zip(names, labels, strict=True):
        if label is None:
            raise ValueError(f"{name}: no label image given for this field")
    return list(zip(fields, labels, strict=True))


def _source_name(source, index: int) -> str:
    if isinstance(source, FieldImage):
        return source.name if source.path is not None else f"<array {index}>"
    if isinstance(source, np.ndarray):
        return f"<array {index}>"
    return str(source)


def load_field(
    source: FieldSource, labels, index: int, *, channel=None, scene=None, z=None, pixel_size=None
) -> tuple[str, FieldImage, np.ndarray]:
    """Read one field and its label image; the field's name, image and label array."""
    name = _source_name(source, index)
    if isinstance(source, (str, PathLike)) and isinstance(labels, (str, PathLike)):
        if Path(source).resolve() == Path(labels).resolve():
            raise ValueError(f"{name}: the same file was given as the field and its labels")
    if isinstance(source, FieldImage):
        field = source
        if pixel_size is not None:
            field = FieldImage(field.data, check_pixel_size_um(pixel_size, option("pixel_size")),
                               field.path, field.channel, field.scene, field.z)
        elif field.pixel_size is not None:
            check_pixel_size_um(field.pixel_size, f"{name}: its FieldImage.pixel_size")
    else:
        field = read_field(source, channel=channel, scene=scene, z=z, pixel_size=pixel_size)
    if field.path is None:
        field = FieldImage(field.data, field.pixel_size, None, field.channel, field.scene, field.z)
    label_image = read_labels(labels)
    if isinstance(labels, (str, PathLike)) and np.asarray(label_image).shape != field.data.shape:
        raise ValueError(
            f"{name}: its label image {labels} has shape {np.asarray(label_image).shape} but "
            f"the field has shape {field.data.shape}"
        )
    return name, field, label_image


def cell_rows(name: str, cells: list[CellCrop], pixel_size: float,
              assumed: bool = False) -> pd.DataFrame:
    """The position columns (and crop, mask, error) of a field's cells."""
    return pd.DataFrame(
        {
            "field": name,
            "label": label_column([cell.label for cell in cells]),
            "centroid_row": [cell.centroid[0] for cell in cells],
            "centroid_col": [cell.centroid[1] for cell in cells],
            "bbox_min_row": [cell.bbox[0] for cell in cells],
            "bbox_min_col": [cell.bbox[1] for cell in cells],
            "bbox_max_row": [cell.bbox[2] for cell in cells],
            "bbox_max_col": [cell.bbox[3] for cell in cells],
            "area": [cell.area for cell in cells],
            "touches_border": [cell.touches_border for cell in cells],
            "pixel_size": pixel_size,
            PIXEL_SIZE_ASSUMED_COLUMN: assumed,
            CROP_COLUMN: _objects([cell.image for cell in cells]),
            MASK_COLUMN: _objects([cell.mask for cell in cells]),
            "error": _objects([cell.error for cell in cells]),
        }
    )


def label_column(labels: list[int]) -> np.ndarray:
    """Label ids as an int64 array, or uint64 when some id is 2**63 or more (exact either way).

    Examples
    --------
    >>> label_column([1, 2**63]).dtype, label_column([1, 2]).dtype
    (dtype('uint64'), dtype('int64'))
    """
    big = bool(labels) and max(labels) > np.iinfo(np.int64).max
    return np.array(labels, dtype=np.uint64 if big else np.int64)


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


class CutField(NamedTuple):
    """One field, read and cut: what :func:`cut_field` gives."""

    field: FieldImage
    labels: np.ndarray
    cells: pd.DataFrame
    """One row per cell (see :func:`cut_fields`)."""
    stretched: np.ndarray
    """The field contrast-stretched once (:func:`stretch_field`): the crops and the overlays
    are cut and drawn from it."""


def cut_field(
    source: FieldSource,
    labels,
    index: int = 0,
    *,
    channel=None,
    scene=None,
    z=None,
    pixel_size: float | None = None,
    score_border_cells: bool = False,
) -> CutField:
    """Read and cut one field: its image, label array, one row per cell and the stretched
    field (stretched once).

    The rows are those of :func:`cut_fields`; ``index`` names an array field
    (``<array index>``).
    """
    name, field, label_image = load_field(
        source, labels, index, channel=channel, scene=scene, z=z, pixel_size=pixel_size,
    )
    try:
        check_field(field.data, name)
        stretched = stretch_field(field.data)
        cells = cut_cells(field, label_image, stretched=stretched)
        label_image = check_labels(label_image, field.data.shape, name)  # as cut_cells saw it
    except ValueError as exc:
        message = str(exc)
        if message.startswith("<array>"):
            message = name + message[len("<array>"):]
        elif not message.startswith(name):
            message = f"{name}: {message}"
        raise ValueError(message) from None
    table = cell_rows(name, cells, field.pixel_size or PIXEL_SIZE_UM,
                      assumed=field.pixel_size is None)
    if not score_border_cells:
        border = table["touches_border"].to_numpy() & table["error"].isna().to_numpy()
        table.loc[border, "error"] = border_error()
    return CutField(field, label_image, table, stretched)


def cut_fields(
    fields,
    labels,
    *,
    channel=None,
    scene=None,
    z=None,
    pixel_size: float | None = None,
    score_border_cells: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Read and cut every field: one row per cell with its crop, mask and any error.

    See :func:`score_fields` for the parameters; the table has the
    :data:`POSITION_COLUMNS` plus ``crop`` (uint8 array), ``mask`` (bool
    array) and ``error``.
    """
    pairs = pair_fields(fields, labels)
    tables = [
        cut_field(source, label_source, index, channel=channel, scene=scene, z=z,
                  pixel_size=pixel_size, score_border_cells=score_border_cells)[2]
        for index, (source, label_source) in enumerate(
            progress_bar(pairs, desc="cutting fields", unit="field", show=progress))
    ]
    table = pd.concat(tables, ignore_index=True)
    warn_assumed_fields(table)
    return table


def warn_assumed_fields(table: pd.DataFrame) -> None:
    """One warning for the run when some fields had no pixel size (their cells are marked)."""
    message = fields_without_pixel_size_message(table)
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=3)


def measure_cells(
    table: pd.DataFrame, *, n_jobs: int | None = None, progress: bool = False,
    texture_pixel_size: float = PIXEL_SIZE_UM,
) -> pd.DataFrame:
    """Protocol 1 features and sarcomere measures of every cut cell (NaN and an error where
    they cannot be measured).

    Cells with a crop error are not measured; cells only flagged for the
    border are (their features describe what is in the field).
    """
    out = table.copy()
    for name in PROTOCOL_1 + SARCOMERE_COLUMNS:
        out[name] = np.nan
    measurable = np.array([_has_crop(error) for error in table["error"]], dtype=bool)
    for pixel_size in pd.unique(table.loc[measurable, "pixel_size"]):
        rows = measurable & (table["pixel_size"] == pixel_size).to_numpy()
        extractor = Protocol1Extractor(
            image_column=CROP_COLUMN,
            mask_column=MASK_COLUMN,
            structure_page=0,
            mask_page=0,
            pixel_size=float(pixel_size),
            n_jobs=n_jobs,
            progress=progress,
            errors="coerce",
            sarcomere=True,
            texture_pixel_size=texture_pixel_size,
        )
        measured = extractor.fit_transform(table.loc[rows, [CROP_COLUMN, MASK_COLUMN]])
        for name in PROTOCOL_1 + SARCOMERE_COLUMNS:
            out.loc[rows, name] = measured[name].to_numpy()
        failed = measured[PROTOCOL1_ERROR_COLUMN].dropna()
        out.loc[failed.index, "error"] = ("cannot measure Protocol 1 features: " + failed).values
    return out


def _has_crop(error) -> bool:
    return not isinstance(error, str) or error.startswith(BORDER_ERROR)


def score_fields(
    model,
    fields,
    labels,
    *,
    channel: int | str | None = None,
    scene: int | str | None = None,
    z: int | str | None = None,
    pixel_size: float | None = None,
    score_border_cells: bool = False,
    keep_crops: bool = False,
    n_jobs: int | None = None,
    batch_size: int = 200,
    progress: bool = False,
    client=None,
    chunk_size: int = 1,
) -> pd.DataFrame:
    """Score every labelled cell of fields of view with a Protocol 1 SarcNet model.

    Each field is read (:func:`read_field`), its cells are cut exactly as the
    AICS training cells were (:func:`cut_cells`), their Protocol 1 features are
    measured on the crop at the field's pixel size, and the model scores them
    (:func:`~sarcnet_sklearn.deploy.predict_cells`), one field at a time, so
    memory holds one field's cells. Nothing is written to disk.

    Parameters
    ----------
    model : fitted SarcNet pipeline
        A Protocol 1 model (its features can be measured from the images),
        e.g. from :func:`~sarcnet_sklearn.deploy.load_model`.
    fields : path, array, FieldImage, or a list of them
        The alpha-actinin-2 channel of each field (files are read with
        ``channel``, ``scene`` and ``z``).
    labels : path, array, or a list of them
        One label image per field (0 = background, 1, 2, ... = cells).
    channel, scene, z : optional
        What to read from each field file, see :func:`read_field`.
    pixel_size : float, optional
        Micrometres per pixel, overriding the files' metadata. Where neither
        gives one, the cells are measured at the model's pixel size, marked in
        ``pixel_size_assumed``, with one warning for the call.
    score_border_cells : bool, default=False
        Also score cells that touch a field's border (the AICS pipeline left
        them out; by default they get an error instead of a score).
    keep_crops : bool, default=False
        Keep the ``crop`` (uint8) and ``mask`` (bool) arrays of each cell.
    n_jobs : int, optional
        Cells measured in parallel (joblib).
    batch_size : int, default=200
        Cells handed to the model at once.
    progress : bool, default=False
        Show progress bars.
    client : distributed.Client, optional
        Score the fields on the workers of this Dask cluster, ``chunk_size``
        fields per task; the model reaches each worker once. The result is the
        same as here: each field's cells are scored on their own either way.
    chunk_size : int, default=1
        Fields per cluster task.

    Returns
    -------
    cells : DataFrame
        One row per labelled cell, in field order then label order: ``field``
        (path, or ``<array i>``), ``label``, ``centroid_row``, ``centroid_col``,
        ``bbox_min_row``, ``bbox_min_col``, ``bbox_max_row``, ``bbox_max_col``
        (max exclusive), ``area`` (pixels), ``touches_border``,
        ``pixel_size``, the Protocol 1 features, the sarcomere measures
        (``sarcomere_length_um``, ``orientation_order``, ``sarcomeric_fraction``),
        ``score_pred`` (1-5),
        ``score_raw`` and ``error`` (None where the cell was scored; NaN scores
        otherwise).

    Raises
    ------
    ValueError
        For a model that needs features other than Protocol 1, and for a field
        that cannot be used at all (unreadable, ambiguous channel, label image
        of another shape, no cells, NaN values...), naming the field.

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import make_synthetic_field
    >>> field, labels = make_synthetic_field((256, 256), n_cells=4, random_state=0)
    >>> # model: a fitted Protocol 1 SarcNet pipeline, e.g. load_model("sarcnet_p1.zip")
    >>> scores = score_fields(model, field, labels, pixel_size=0.12)
    >>> scores[["label", "area", "score_pred", "error"]].shape
    (4, 4)
    """
    from ..scale import map_table

    check_field_model(model)
    pairs = pair_fields(fields, labels)
    jobs = pd.DataFrame({"source": _objects([pair[0] for pair in pairs]),
                         "labels": _objects([pair[1] for pair in pairs])})
    work = partial(_score_field_chunk, channel=channel, scene=scene, z=z,
                   pixel_size=pixel_size, score_border_cells=score_border_cells,
                   keep_crops=keep_crops, n_jobs=n_jobs, batch_size=batch_size)
    with progress_bar(total=len(jobs), desc="fields", unit="field",
                      show=progress and len(jobs) > 1) as bar:
        table = map_table(work, jobs, chunk_size, model=model, client=client,
                          on_chunk=bar.update, ignore_index=True)
    warn_assumed_fields(table)
    return table


def check_field_model(model) -> None:
    """Refuse a model whose features cannot be measured from a field of view."""
    from ..deploy import ModelInputs

    inputs = ModelInputs.of(model)
    if not set(inputs.features) <= set(MEASURABLE_FEATURES):
        extra = sorted(set(inputs.features) - set(MEASURABLE_FEATURES))
        raise ValueError(
            f"this model needs the feature(s) {extra}, which cannot be measured from a field "
            f"of view; score fields with a Protocol 1 model ({option('protocol_1')})"
        )


def _score_field_chunk(model, chunk: pd.DataFrame, *, keep_crops: bool, n_jobs, batch_size,
                       **options) -> pd.DataFrame:
    tables = []
    for index, source, labels in zip(chunk.index, chunk["source"], chunk["labels"],
                                     strict=True):
        table = cut_field(source, labels, index, **options)[2]
        tables.append(score_cut_cells(model, table, keep_crops=keep_crops, n_jobs=n_jobs,
                                      batch_size=batch_size))
    return pd.concat(tables, ignore_index=True)


def score_cut_cells(
    model,
    table: pd.DataFrame,
    *,
    keep_crops: bool = False,
    n_jobs: int | None = None,
    batch_size: int = 200,
    progress: bool = False,
) -> pd.DataFrame:
    """Measure and score the cut cells of :func:`cut_field`: the rows of :func:`score_fields`."""
    from ..deploy import ModelInputs, predict_cells

    inputs = ModelInputs.of(model)
    model_pixel_size = pixel_size_of_model(model)
    assumed = assumed_rows(table)
    if assumed.any():  # a cell of unknown pixel size is measured at the model's
        table = table.copy()
        table.loc[assumed, "pixel_size"] = model_pixel_size
    table = measure_cells(table, n_jobs=n_jobs, progress=progress,
                          texture_pixel_size=model_pixel_size)
    table[SCORE_PRED_COLUMN] = np.nan
    table[SCORE_RAW_COLUMN] = np.nan
    table[OUT_OF_RANGE_COLUMN] = None
    ready = table["error"].isna().to_numpy()
    if ready.any():
        cells = table.loc[ready, list(inputs.features)].copy()
        if inputs.image_column is not None:
            cells.insert(0, inputs.image_column, table.loc[ready, CROP_COLUMN])
        cells["pixel_size"] = table.loc[ready, "pixel_size"]  # known: no "assumed" warning
        predicted = predict_cells(model, cells, batch_size=batch_size, progress=progress)
        for column in SCORE_COLUMNS:
            table.loc[ready, column] = predicted[column].to_numpy()
    columns = POSITION_COLUMNS + PROTOCOL_1 + SARCOMERE_COLUMNS + SCORE_COLUMNS
    if keep_crops:
        columns += [CROP_COLUMN, MASK_COLUMN]
    out = table[columns].copy()
    for column in (ERROR_COLUMN, OUT_OF_RANGE_COLUMN):
        out[column] = _objects([value if isinstance(value, str) else None
                                for value in out[column]])
    return out


__all__ = ["score_fields", "cut_field", "cut_fields", "measure_cells", "score_cut_cells",
           "POSITION_COLUMNS"]


