"""Per-cell checks before training or scoring: each bad row gets a message, the rest go on.

:func:`check_cells` validates one table of cells against what a model needs
(its feature columns, image page and size), measuring the Protocol 1 features
from the images when the table lacks them, and hands back each image decoded
for the model, so that nothing downstream reads the files again. It reuses
the package's readers (:func:`~sarcnet_sklearn.images.read_plane`,
:func:`~sarcnet_sklearn.features.measure_image_file`), so a row passes here
exactly when the model can read it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._chunks import CHUNK_CELLS, chunk_slices
from .._columns import CELL_MASK_PAGE, PIXEL_SIZE_UM, PROTOCOL_1, PROTOCOL_2, SARCOMERE_COLUMNS
from .._console import progress_bar
from .._pixel_size import PixelSizeRule
from .._validation import as_frame, object_copy
from ..features import PROTOCOL1_ERROR_COLUMN, measure_image_file, measure_sarcomeres
from ..images import ImageReadError, as_image_source, model_plane, open_image, source_name
from ..pipeline import ModelInputs

__all__ = ["CheckedCells", "ModelInputs", "check_cells", "identifying_columns", "with_images"]


class CheckedCells(NamedTuple):
    """What :func:`check_cells` found: the table, each row's error, the decoded images."""

    table: pd.DataFrame
    """A copy of the cells (index 0..n-1) with any measured feature columns."""
    errors: pd.Series
    """Per row: why it cannot be used, or None when it can."""
    images: np.ndarray | None
    """``(n, image_size, image_size)`` uint8: each usable row's image as the model reads it
    (zeros elsewhere); None for a model that reads no images."""
    pixel_sizes: np.ndarray | None = None
    """Each row's pixel size (um), by the rule of :mod:`sarcnet_sklearn._pixel_size`."""
    pixel_size_assumed: np.ndarray | None = None
    """Per row: True where no pixel size was known and the model's was assumed."""


def check_cells(
    cells: pd.DataFrame,
    inputs: ModelInputs,
    *,
    mask_page: int | None = None,
    progress: bool = False,
    sarcomere: bool = False,
    pixel_size: float | None = None,
    model_pixel_size: float = PIXEL_SIZE_UM,
) -> CheckedCells:
    """Check every cell a model would read; measure Protocol 1 features when absent.

    Each image is read once: its plane is decoded for the model (returned in
    ``images``) and, when features are measured, measured from the same plane
    (the mask page is read beside it). The native planes are held only
    :data:`~sarcnet_sklearn._chunks.CHUNK_CELLS` cells at a time.

    Parameters
    ----------
    cells : DataFrame
        One row per cell: an image-path column and (unless they can be
        measured) the feature columns.
    inputs : ModelInputs
        What the model reads.
    mask_page : int, optional
        Page with the cell mask when features are measured (default 9).
    progress : bool, default=False
        Show progress bars.
    sarcomere : bool, default=False
        Also measure the sarcomere measures (``sarcomere_length_um``,
        ``orientation_order``, ``sarcomeric_fraction``) of every readable cell
        into the table's columns of those names (NaN where a cell has no mask
        or cannot be measured; the row is not failed for it).
    pixel_size : float, optional
        The pixel size the user gave (um), for every row. Without it, each row's
        comes from the table's ``pixel_size`` column, else from its image file's
        metadata (read in the one open that decodes it), else the model's is
        assumed, with one warning (see :class:`~sarcnet_sklearn._pixel_size.PixelSizeRule`).
    model_pixel_size : float, default=0.12
        The model's pixel size: Protocol 1's texture is measured on each cell
        resampled to it, so its distances are the same micrometres at any pixel
        size. (The network's image needs no resampling: every door resizes the
        whole cell to ``image_size`` pixels, as the paper does, whatever its pixel
        size; resampling first changed that image by under 1 % for 0.06 against
        0.12 um/px, and would have made explain, which decodes the native plane
        for its heatmap, differ from predict.)

    Returns
    -------
    checked : CheckedCells
        ``(table, errors, images, pixel_sizes, pixel_size_assumed)``;
        :func:`with_images` makes the table the model reads from them.

    Raises
    ------
    ValueError
        For whole-input problems: no rows, no image column, or feature columns
        that are missing and cannot be measured.

    Examples
    --------
    >>> import numpy as np, tifffile
    >>> tifffile.imwrite("flat.tiff", np.ones((8, 8), np.uint8))  # one page, no structure page
    >>> given = cells.head(3).copy()  # cells: scored cells with Protocol 1 features
    >>> given.loc[2, "image_path"] = "flat.tiff"
    >>> table, errors, images, *_ = check_cells(given, ModelInputs(PROTOCOL_1))
    >>> errors.tolist()
    [None, None, 'flat.tiff: has a single plane, plane 1 was requested']
    """
    cells = as_frame(cells, "cells")
    rule = PixelSizeRule(cells, pixel_size=pixel_size, assumed=model_pixel_size)
    table = cells.reset_index(drop=True).copy()
    if len(table) == 0:
        raise ValueError("no cells: the input table is empty")
    errors = pd.Series([None] * len(table), dtype=object)
    column = inputs.image_column
    if column is not None:
        if column not in table.columns:
            raise ValueError(
                f"the input has no image column {column!r} (columns: {list(table.columns)})"
            )
        paths = table[column]
        blank = paths.isna() | (paths.astype(str).str.strip() == "")
        errors[blank.to_numpy()] = f"no image path in column {column!r}"
    missing = [name for name in inputs.features if name not in table.columns]
    if missing and not inputs.measurable:
        raise ValueError(
            f"the model needs feature column(s) {missing}, which the input lacks; only the "
            f"Protocol 1 features {PROTOCOL_1} can be measured from the images"
        )
    measure = any(name in PROTOCOL_1 for name in missing)
    sarcomere = ((sarcomere or any(name in SARCOMERE_COLUMNS for name in missing))
                 and not set(SARCOMERE_COLUMNS) <= set(table.columns))
    for name in (PROTOCOL_1 if measure else []) + (SARCOMERE_COLUMNS if sarcomere else []):
        if name not in table.columns:
            table[name] = np.nan
    if not missing:  # features first: a row with a bad feature is not read at all
        _check_features(table, errors, inputs.features)
    images = None
    if column is not None:
        images = _decode_images(table, errors, inputs,
                                CELL_MASK_PAGE if mask_page is None else mask_page,
                                measure=measure, sarcomere=sarcomere, progress=progress,
                                rule=rule, model_pixel_size=model_pixel_size)
    if missing:
        _check_features(table, errors, inputs.features)
    rule.finish(failed=errors.notna().to_numpy())
    return CheckedCells(table, errors, images, rule.sizes, rule.assumed)


def with_images(table: pd.DataFrame, errors: pd.Series, images: np.ndarray | None,
                column: str | None) -> pd.DataFrame:
    """``table`` with each usable row's decoded image (from :func:`check_cells`) in ``column``.

    The model reads these in-memory planes as they are (they already have its
    size and dtype), so no file is read again.
    """
    if images is None or column is None:
        return table
    sources = object_copy(table[column])
    for row in np.flatnonzero(errors.isna().to_numpy()):
        sources[row] = images[row]
    out = table.copy()
    out[column] = sources
    return out


def _decode_images(table: pd.DataFrame, errors: pd.Series, inputs: ModelInputs,
                   mask_page: int, *, measure: bool, sarcomere: bool = False,
                   progress: bool, rule: PixelSizeRule,
                   model_pixel_size: float = PIXEL_SIZE_UM) -> np.ndarray:
    """Read each usable row's file once: its pixel size, its plane decoded for the model,
    its measures if asked."""
    size = inputs.image_size
    images = np.zeros((len(table), size, size), dtype=np.uint8)
    rows = np.flatnonzero(errors.isna().to_numpy())
    sources = table[inputs.image_column]

    def decode(row: int) -> tuple[str | None, dict | None]:
        source = as_image_source(sources.iloc[row])
        try:
            with open_image(source) as read:  # one open: pixel size, structure, mask page
                try:
                    pixel_size = rule.resolve(row, read.pixel_size_um(), source_name(source))
                except ValueError as exc:  # implausible metadata: this row only
                    return str(exc), None
                plane = read(inputs.structure_page)
                images[row] = model_plane(plane, size, source)
                if images[row].min() == images[row].max():
                    return (f"{source_name(source)}: page {inputs.structure_page} is blank "
                            f"(every pixel is {int(images[row].min())}); there is no "
                            "structure to score"), None
                if measure:
                    return None, _measure(plane, source, read, mask_page, sarcomere, pixel_size,
                                          model_pixel_size)
                if sarcomere:
                    return None, _sarcomeres(plane, source, read, mask_page, pixel_size)
                return None, None
        except ImageReadError as exc:
            return str(exc), None

    measured_values = np.full((len(table), len(PROTOCOL_1)), np.nan)
    sarcomere_values = np.full((len(table), len(SARCOMERE_COLUMNS)), np.nan)
    n_jobs = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_jobs) as pool, progress_bar(
        total=len(rows), desc="reading images", unit="cell", show=progress
    ) as bar:
        for part in chunk_slices(len(rows), CHUNK_CELLS):  # native planes of a chunk at most
            for row, (message, measured) in zip(rows[part], pool.map(decode, rows[part]),
                                                strict=True):
                bar.update()
                if message is None and measured is not None:
                    if sarcomere:
                        sarcomere_values[row] = [measured.get(name, np.nan)
                                                 for name in SARCOMERE_COLUMNS]
                    message = measured.pop("error") if measure else None
                    if message is not None:
                        message = f"cannot measure Protocol 1 features: {message}"
                    elif measure:
                        measured_values[row] = [measured[name] for name in PROTOCOL_1]
                errors[row] = message
    if measure:
        for column, name in enumerate(PROTOCOL_1):
            table.loc[rows, name] = measured_values[rows, column]
    if sarcomere:
        for column, name in enumerate(SARCOMERE_COLUMNS):
            table.loc[rows, name] = sarcomere_values[rows, column]
    return images


def _sarcomeres(plane: np.ndarray, source, read, mask_page: int,
                pixel_size: float = PIXEL_SIZE_UM) -> dict:
    """The sarcomere measures of a cell from its structure plane and its mask page, read
    from the same open file (``read``); NaN without a mask."""
    try:
        if isinstance(source, np.ndarray) and source.ndim == 2:
            raise ImageReadError("no mask page")
        return measure_sarcomeres(plane, read(mask_page), pixel_size)
    except (ImageReadError, ValueError):
        return dict.fromkeys(SARCOMERE_COLUMNS, np.nan)


def _measure(plane: np.ndarray, source, read, mask_page: int, sarcomere: bool = False,
             pixel_size: float = PIXEL_SIZE_UM,
             texture_pixel_size: float = PIXEL_SIZE_UM) -> dict:
    """The Protocol 1 features of a cell from its structure plane, already read, and its
    mask page, read from the same open file (``read``)."""
    sizes = {"pixel_size": pixel_size, "texture_pixel_size": texture_pixel_size}
    if isinstance(source, np.ndarray) and source.ndim == 2:  # no mask page: its own error
        return measure_image_file(source, sarcomere=sarcomere, **sizes)
    try:
        mask = read(mask_page)
    except ImageReadError as exc:
        return {name: np.nan for name in PROTOCOL_1} | {"error": str(exc)}
    result = measure_image_file(plane, mask, structure_page=0, mask_page=0,
                                sarcomere=sarcomere, **sizes)
    if result["error"] is not None:
        result["error"] = result["error"].replace(source_name(plane), source_name(source), 1)
    return result


def _check_features(table: pd.DataFrame, errors: pd.Series, features: list[str]) -> None:
    for name in features:
        values = pd.to_numeric(table[name], errors="coerce").astype(np.float64)
        bad = ~np.isfinite(values.to_numpy()) & errors.isna().to_numpy()
        for row in np.flatnonzero(bad):
            errors[row] = f"feature {name!r} is not a finite number: {table[name].iloc[row]!r}"
        table[name] = values


def identifying_columns(table: pd.DataFrame, inputs: ModelInputs, exclude=()) -> list[str]:
    """The columns of ``table`` that are not features (image path, IDs, scores...)."""
    features = set(PROTOCOL_2) | set(inputs.features) | {PROTOCOL1_ERROR_COLUMN}
    return [c for c in table.columns if c not in features and c not in set(exclude)]
