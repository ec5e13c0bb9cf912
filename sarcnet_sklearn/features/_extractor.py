"""The scikit-learn transformer that measures Protocol 1 from a table of image files."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._columns import (
    CELL_MASK_PAGE,
    IMAGE_COLUMN,
    PIXEL_SIZE_UM,
    PROTOCOL_1,
    SARCOMERE_COLUMNS,
    STRUCTURE_PAGE,
)
from .._console import progress_bar
from .._doors import option
from .._validation import check_pixel_size_um
from ..images import ImageReadError, ImageSource, read_plane, source_name
from ._protocol1 import extract_protocol1
from ._sarcomere import measure_sarcomeres

PROTOCOL1_ERROR_COLUMN = "protocol1_error"
"""Column :class:`Protocol1Extractor` adds with each row's error message (``errors="coerce"``)."""

_ERRORS = ("raise", "coerce")


def measure_image_file(
    image_path: ImageSource,
    mask_path: ImageSource | None = None,
    *,
    structure_page: int = STRUCTURE_PAGE,
    mask_page: int | None = None,
    pixel_size: float = PIXEL_SIZE_UM,
    sarcomere: bool = False,
    texture_pixel_size: float | None = PIXEL_SIZE_UM,
) -> dict[str, float | str | None]:
    """Read one cell's structure and mask planes and measure its Protocol 1 features.

    Never raises for a bad cell: the reason goes to ``"error"`` and the values are NaN.

    Parameters
    ----------
    image_path : str, path-like or ndarray
        File holding the structure plane (and the mask, unless ``mask_path``),
        or the image in memory (see :func:`~sarcnet_sklearn.images.read_plane`).
    mask_path : str, path-like or ndarray, optional
        Separate file (or array) holding the cell mask; needed for a 2-D array.
    structure_page : int, default=1
        Page (or channel) of ``image_path`` with the structure.
    mask_page : int, optional
        Page (or channel) with the mask; default 9 in ``image_path``, 0 in ``mask_path``.
    pixel_size : float, default=0.12
        Micrometres per pixel.
    sarcomere : bool, default=False
        Also measure the :data:`~sarcnet_sklearn._columns.SARCOMERE_COLUMNS`
        (:func:`~sarcnet_sklearn.features.measure_sarcomeres`).
    texture_pixel_size : float or None, default=0.12
        Measure the texture (Set 2) on the cell resampled to this pixel size, so
        that it is in the same micrometres at any pixel size (see
        :func:`extract_protocol1`); None: at the image's own pixels.

    Returns
    -------
    result : dict
        The :data:`PROTOCOL_1` features, ``peak_angle`` (then the sarcomere measures
        with ``sarcomere=True``) and ``error`` (None on success).

    Examples
    --------
    >>> result = measure_image_file("missing.tiff")
    >>> result["error"]
    'image file not found: missing.tiff'
    """
    if mask_page is None:
        mask_page = CELL_MASK_PAGE if mask_path is None else 0
    try:
        if mask_path is None and isinstance(image_path, np.ndarray) and image_path.ndim == 2:
            raise ImageReadError(
                f"{source_name(image_path)}: a 2-D in-memory image has no mask page; give "
                "the cell mask separately (mask_column)"
            )
        image = read_plane(image_path, structure_page)
        mask = read_plane(image_path if mask_path is None else mask_path, mask_page)
        features: dict[str, float | str | None] = dict(
            extract_protocol1(image, mask, pixel_size=pixel_size,
                              texture_pixel_size=texture_pixel_size)
        )
        if sarcomere:
            features.update(measure_sarcomeres(image, mask, pixel_size=pixel_size))
        features["error"] = None
    except ImageReadError as exc:
        features = _failed(str(exc), sarcomere)
    except ValueError as exc:
        features = _failed(f"{source_name(image_path)}: {exc}", sarcomere)
    return features


def _failed(message: str, sarcomere: bool = False) -> dict[str, float | str | None]:
    names = PROTOCOL_1 + ["peak_angle"] + (SARCOMERE_COLUMNS if sarcomere else [])
    result: dict[str, float | str | None] = dict.fromkeys(names, math.nan)
    result["error"] = message
    return result


def measure_many(
    image_paths: list,
    mask_paths: list | None = None,
    *,
    structure_page: int = STRUCTURE_PAGE,
    mask_page: int | None = None,
    pixel_size: float = PIXEL_SIZE_UM,
    n_jobs: int | None = None,
    progress: bool = False,
    sarcomere: bool = False,
    texture_pixel_size: float | None = PIXEL_SIZE_UM,
) -> Iterator[dict[str, float | str | None]]:
    """Measure many cells in parallel, yielding :func:`measure_image_file` results in order.

    Each worker reads its own images, so memory does not grow with the number of cells.

    Examples
    --------
    >>> [r["error"] for r in measure_many(["a.tiff"])]
    ['image file not found: a.tiff']
    """
    if mask_paths is None:
        mask_paths = [None] * len(image_paths)
    results = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(measure_image_file)(
            image_path,
            mask_path,
            structure_page=structure_page,
            mask_page=mask_page,
            pixel_size=pixel_size,
            sarcomere=sarcomere,
            texture_pixel_size=texture_pixel_size,
        )
        for image_path, mask_path in zip(image_paths, mask_paths, strict=True)
    )
    yield from progress_bar(
        results, total=len(image_paths), desc="measuring Protocol 1", show=progress
    )


class Protocol1Extractor(TransformerMixin, BaseEstimator):
    """Measure the Protocol 1 features of the cells listed in a DataFrame.

    Each row names an image file; its structure page and cell mask are read
    (inside the worker, one cell at a time) and the five :data:`PROTOCOL_1`
    columns are measured with :func:`extract_protocol1`. The output is a copy
    of the input with those columns added or overwritten; the input is never
    modified and nothing is learned in ``fit``.

    Parameters
    ----------
    image_column : str, default="image_path"
        Column with the image file of each cell, or the image itself as an
        array (a 2-D plane, which then needs ``mask_column``, or a stack of pages).
    mask_column : str, optional
        Column with a separate cell-mask file (or 2-D array); by default the
        mask is a page of the image file.
    structure_page : int, default=1
        Page (or channel) holding the structure (alpha-actinin-2).
    mask_page : int, optional
        Page (or channel) holding the cell mask: default 9 of the image file,
        or 0 of the file in ``mask_column``.
    pixel_size : float, default=0.12
        Micrometres per pixel (areas in um^2, distances in um).
    n_jobs : int, optional
        Cells measured in parallel (joblib; -1 for all cores).
    progress : bool, default=False
        Show a progress bar.
    texture_pixel_size : float or None, default=0.12
        Texture (Set 2) measured on each cell resampled to this pixel size (the
        model's), so that the features agree across pixel sizes; None: at the
        image's own pixels, as the published code.
    sarcomere : bool, default=False
        Also add the sarcomere measures ``sarcomere_length_um``,
        ``orientation_order`` and ``sarcomeric_fraction``
        (:func:`~sarcnet_sklearn.features.measure_sarcomeres`).
    errors : {"raise", "coerce"}, default="raise"
        ``"raise"``: a cell that cannot be measured raises a ValueError naming
        its row and file. ``"coerce"``: its features are NaN and the message
        goes to an extra column ``protocol1_error`` (None where all went well).

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> # cells: a table with an image_path column, e.g. load_cells("cells/")
    >>> features = Protocol1Extractor(n_jobs=2).fit_transform(cells[["image_path"]].head(2))
    >>> features.columns.tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['image_path', 'cell_area', 'cell_aspect_ratio', 'max_coefficient_variation',
     'peak_height', 'peak_distance']
    """

    def __init__(
        self,
        image_column: str = IMAGE_COLUMN,
        mask_column: str | None = None,
        structure_page: int = STRUCTURE_PAGE,
        mask_page: int | None = None,
        pixel_size: float = PIXEL_SIZE_UM,
        n_jobs: int | None = None,
        progress: bool = False,
        errors: str = "raise",
        sarcomere: bool = False,
        texture_pixel_size: float | None = PIXEL_SIZE_UM,
    ):
        self.image_column = image_column
        self.mask_column = mask_column
        self.structure_page = structure_page
        self.mask_page = mask_page
        self.pixel_size = pixel_size
        self.n_jobs = n_jobs
        self.progress = progress
        self.errors = errors
        self.sarcomere = sarcomere
        self.texture_pixel_size = texture_pixel_size

    def fit(self, X: pd.DataFrame, y=None) -> Protocol1Extractor:
        """Check the parameters and the columns of ``X``; nothing is learned.

        Parameters
        ----------
        X : DataFrame
            Must hold ``image_column`` (and ``mask_column`` if set).
        y : ignored

        Returns
        -------
        self : Protocol1Extractor

        Examples
        --------
        >>> import pandas as pd
        >>> Protocol1Extractor().fit(pd.DataFrame({"image_path": ["a.tiff"]})).n_features_in_
        1
        """
        self._check_params()
        self._check_columns(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Measure every row's cell; return a copy of ``X`` with the Protocol 1 columns.

        Parameters
        ----------
        X : DataFrame
            The columns seen in ``fit``.

        Returns
        -------
        features : DataFrame
            ``X``'s columns, then the :data:`PROTOCOL_1` columns it lacked
            (then ``protocol1_error`` with ``errors="coerce"``).

        Raises
        ------
        ValueError
            With ``errors="raise"``, for the first row whose cell cannot be
            measured, naming the row and the file.

        Examples
        --------
        >>> import pandas as pd
        >>> cells = pd.DataFrame({"image_path": ["missing.tiff"]})
        >>> out = Protocol1Extractor(errors="coerce").fit_transform(cells)
        >>> out["protocol1_error"].tolist()
        ['image file not found: missing.tiff']
        """
        check_is_fitted(self, "feature_names_in_")
        self._check_params()
        self._check_columns(X)
        if list(X.columns) != list(self.feature_names_in_):
            raise ValueError(
                "X has different columns from those seen in fit: "
                f"{list(X.columns)} vs {list(self.feature_names_in_)}"
            )
        image_paths = X[self.image_column].tolist()
        mask_paths = None if self.mask_column is None else X[self.mask_column].tolist()
        measured_names = self._measured_names()
        values = np.full((len(X), len(measured_names)), np.nan)
        messages: list[str | None] = []
        results = measure_many(
            image_paths,
            mask_paths,
            structure_page=self.structure_page,
            mask_page=self.mask_page,
            pixel_size=self.pixel_size,
            n_jobs=self.n_jobs,
            progress=self.progress,
            sarcomere=self.sarcomere,
            texture_pixel_size=self.texture_pixel_size,
        )
        for row, (label, result) in enumerate(zip(X.index, results, strict=True)):
            if result["error"] is not None and self.errors == "raise":
                raise ValueError(f"row {label!r}: cannot measure Protocol 1: {result['error']}")
            values[row] = [result[name] for name in measured_names]
            messages.append(result["error"])
        out = X.copy()
        for column, name in enumerate(measured_names):
            out[name] = values[:, column]
        if self.errors == "coerce":
            out[PROTOCOL1_ERROR_COLUMN] = pd.Series(messages, index=X.index, dtype=object)
        return out[list(self.get_feature_names_out())]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str, optional
            Must match the columns seen in ``fit`` when given.

        Returns
        -------
        feature_names_out : ndarray of str

        Examples
        --------
        >>> import pandas as pd
        >>> extractor = Protocol1Extractor().fit(pd.DataFrame({"image_path": ["a.tiff"]}))
        >>> extractor.get_feature_names_out().tolist()[:2]
        ['image_path', 'cell_area']
        """
        check_is_fitted(self, "feature_names_in_")
        names = list(self.feature_names_in_)
        if input_features is not None and list(input_features) != names:
            raise ValueError(
                f"input_features {list(input_features)} do not match the columns seen in fit"
            )
        names += [name for name in self._measured_names() if name not in names]
        if self.errors == "coerce" and PROTOCOL1_ERROR_COLUMN not in names:
            names.append(PROTOCOL1_ERROR_COLUMN)
        return np.asarray(names, dtype=object)

    def _measured_names(self) -> list[str]:
        return PROTOCOL_1 + (SARCOMERE_COLUMNS if self.sarcomere else [])

    def _check_params(self) -> None:
        if self.errors not in _ERRORS:
            raise ValueError(f"errors must be one of {_ERRORS}, got {self.errors!r}")
        if isinstance(self.pixel_size, bool) or not isinstance(self.pixel_size, (int, float)):
            raise ValueError(f"pixel_size must be a positive number, got {self.pixel_size!r}")
        check_pixel_size_um(self.pixel_size, option("pixel_size"))

    def _check_columns(self, X) -> None:
        if not isinstance(X, pd.DataFrame):
            raise ValueError(
                "Protocol1Extractor expects a pandas DataFrame with an image-path column, "
                f"got {type(X).__name__}"
            )
        for column in (self.image_column, self.mask_column):
            if column is not None and column not in X.columns:
                raise ValueError(f"X has no column {column!r} (columns: {list(X.columns)})")
