"""Per-cell checks before training or scoring: each bad row gets a message, the rest go on.

:func:`check_cells` validates one table of cells against what a model needs
(its feature columns, image page and size), measuring the Protocol 1 features
from the images when the table lacks them. It reuses the package's readers
(:func:`~sarcnet_sklearn.images.load_cell_image`,
:class:`~sarcnet_sklearn.features.Protocol1Extractor`), so a row passes here
exactly when the model can read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from .._columns import CELL_MASK_PAGE, IMAGE_COLUMN, PROTOCOL_1, PROTOCOL_2, STRUCTURE_PAGE
from .._validation import as_frame
from ..features import PROTOCOL1_ERROR_COLUMN, Protocol1Extractor
from ..images import ImageReadError, as_image_source, load_cell_image, source_name


@dataclass(frozen=True)
class ModelInputs:
    """What a SarcNet model reads from each row of a cell table.

    Parameters
    ----------
    features : list of str
        Feature columns, in the model's order.
    image_column : str or None
        Column of image paths; None for a model that reads no images.
    structure_page : int
        Page (or channel) of each image file the model reads.
    image_size : int
        Side of the square the image is resized to.
    """

    features: list[str]
    image_column: str | None = IMAGE_COLUMN
    structure_page: int = STRUCTURE_PAGE
    image_size: int = 224

    @classmethod
    def of(cls, model) -> ModelInputs:
        """The inputs of a fitted SarcNet pipeline (or bare :class:`SarcNetRegressor`).

        Examples
        --------
        >>> ModelInputs.of(model).features[:2]  # doctest: +SKIP
        ['cell_area', 'cell_aspect_ratio']
        """
        net = model[-1] if isinstance(model, Pipeline) else model
        if not hasattr(net, "feature_names_") or not hasattr(net, "structure_page"):
            raise ValueError(
                "expected a fitted SarcNet pipeline or SarcNetRegressor, "
                f"got {type(model).__name__}"
            )
        features = list(net.feature_names_)
        if isinstance(model, Pipeline) and hasattr(model[0], "features_"):
            features = list(model[0].features_)
        return cls(
            features=features,
            image_column=net.image_column if net.use_images else None,
            structure_page=int(net.structure_page),
            image_size=int(net.image_size),
        )

    @property
    def measurable(self) -> bool:
        """Whether every feature can be measured from the images (a Protocol 1 model)."""
        return self.image_column is not None and set(self.features) <= set(PROTOCOL_1)


def check_cells(
    cells: pd.DataFrame,
    inputs: ModelInputs,
    *,
    mask_page: int | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.Series]:
    """Check every cell a model would read; measure Protocol 1 features when absent.

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

    Returns
    -------
    table : DataFrame
        A copy of ``cells`` (index 0..n-1) with any measured feature columns.
    errors : Series of str or None
        Per row: why it cannot be used, or None when it can.

    Raises
    ------
    ValueError
        For whole-input problems: no rows, no image column, or feature columns
        that are missing and cannot be measured.

    Examples
    --------
    >>> table, errors = check_cells(cells, ModelInputs(PROTOCOL_1))  # doctest: +SKIP
    >>> errors.dropna()  # doctest: +SKIP
    3    /data/cell_3.tiff: has 1 pages, page 1 was requested
    """
    table = as_frame(cells, "cells").reset_index(drop=True).copy()
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
    if missing:
        if not inputs.measurable:
            raise ValueError(
                f"the model needs feature column(s) {missing}, which the input lacks; only the "
                f"Protocol 1 features {PROTOCOL_1} can be measured from the images"
            )
        _measure_protocol1(table, errors, inputs, mask_page, progress)
    _check_features(table, errors, inputs.features)
    if column is not None:
        _check_images(table, errors, inputs, progress)
    return table, errors


def _measure_protocol1(
    table: pd.DataFrame, errors: pd.Series, inputs: ModelInputs, mask_page, progress: bool
) -> None:
    rows = errors.isna().to_numpy()
    for name in PROTOCOL_1:
        if name not in table.columns:
            table[name] = np.nan
    if not rows.any():
        return
    extractor = Protocol1Extractor(
        image_column=inputs.image_column,
        structure_page=inputs.structure_page,
        mask_page=CELL_MASK_PAGE if mask_page is None else mask_page,
        errors="coerce",
        progress=progress,
    )
    measured = extractor.fit_transform(table.loc[rows, [inputs.image_column]])
    for name in PROTOCOL_1:
        table.loc[rows, name] = measured[name].to_numpy()
    failed = measured[PROTOCOL1_ERROR_COLUMN]
    failed = failed.dropna()
    errors[failed.index] = ("cannot measure Protocol 1 features: " + failed).to_numpy()


def _check_features(table: pd.DataFrame, errors: pd.Series, features: list[str]) -> None:
    for name in features:
        values = pd.to_numeric(table[name], errors="coerce").astype(np.float64)
        bad = ~np.isfinite(values.to_numpy()) & errors.isna().to_numpy()
        for row in np.flatnonzero(bad):
            errors[row] = f"feature {name!r} is not a finite number: {table[name].iloc[row]!r}"
        table[name] = values


def _check_images(
    table: pd.DataFrame, errors: pd.Series, inputs: ModelInputs, progress: bool
) -> None:
    rows = np.flatnonzero(errors.isna().to_numpy())
    for row in tqdm(rows, desc="checking images", disable=not progress):
        path = as_image_source(table[inputs.image_column].iloc[row])
        try:
            plane = load_cell_image(path, inputs.structure_page, inputs.image_size)
        except ImageReadError as exc:
            errors[row] = str(exc)
            continue
        if plane.min() == plane.max():
            errors[row] = (
                f"{source_name(path)}: page {inputs.structure_page} is blank (every pixel is "
                f"{int(plane.min())}); there is no structure to score"
            )


def identifying_columns(table: pd.DataFrame, inputs: ModelInputs, exclude=()) -> list[str]:
    """The columns of ``table`` that are not features (image path, IDs, scores...)."""
    features = set(PROTOCOL_2) | set(inputs.features) | {PROTOCOL1_ERROR_COLUMN}
    return [c for c in table.columns if c not in features and c not in set(exclude)]
