"""Input checks shared by the selector, the regressor and the loaders.

Each check raises a ValueError that names the column, row or file at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.sparse import issparse


def as_frame(X, what: str = "X") -> pd.DataFrame:
    """Accept a DataFrame (unique column names) or a dict of equal-length 1-D arrays."""
    if issparse(X):  # before the dict case: a DOK matrix is a dict
        raise TypeError(f"{what}: sparse input is not supported; pass a DataFrame with an "
                        "image-path column and feature columns")
    if isinstance(X, pd.DataFrame):
        if not X.columns.is_unique:
            repeated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise ValueError(f"{what}: repeated column name(s) {repeated}; each column must "
                             "have a unique name")
        return X
    if isinstance(X, Mapping):
        try:
            return pd.DataFrame({key: np.asarray(value) for key, value in X.items()})
        except ValueError as exc:
            raise ValueError(f"{what}: a dict input must map column names to "
                             f"equal-length 1-D arrays ({exc})") from exc
    raise TypeError(
        f"{what} must be a pandas DataFrame (or a dict of column arrays) with an image-path "
        f"column and feature columns, got {type(X).__name__}"
    )


def check_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "X") -> None:
    """Raise if any of ``columns`` is missing from ``df``, naming all that are."""
    missing = [column for column in columns if column not in df.columns]
    if missing:
        raise ValueError(
            f"{what} is missing column(s) {missing}; it has {list(df.columns)}"
        )


def check_finite_features(df: pd.DataFrame, columns: Iterable[str], what: str = "X") -> np.ndarray:
    """Return ``df[columns]`` as float64; raise naming the first non-numeric or non-finite cell."""
    columns = list(columns)
    check_columns(df, columns, what)
    values = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        if pd.api.types.is_bool_dtype(df[column]) or (
                df[column].dtype == object
                and df[column].map(lambda v: isinstance(v, (bool, np.bool_))).any()):
            raise ValueError(f"{what}: feature column {column!r} holds True/False values, not "
                             "numbers; give the measured values")
        try:
            values[:, j] = pd.to_numeric(df[column], errors="raise")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what}: feature column {column!r} is not numeric ({exc})") from exc
    bad_rows, bad_cols = np.nonzero(~np.isfinite(values))
    if len(bad_rows):
        row, column = df.index[bad_rows[0]], columns[bad_cols[0]]
        raise ValueError(
            f"{what}: feature {column!r} is {values[bad_rows[0], bad_cols[0]]} in row {row!r} "
            f"({len(bad_rows)} non-finite value(s) in all); fill or drop these rows first"
        )
    return values


def check_target(y, n_samples: int) -> np.ndarray:
    """Return ``y`` as a float32 column vector; accepts 1-D or ``(n, 1)`` input."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one score per cell), got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"y has {len(y)} values but X has {n_samples} rows")
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numeric scores ({exc})") from exc
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(f"y has {len(bad)} non-finite value(s), first at position {bad[0]}")
    return y.astype(np.float32).reshape(-1, 1)


def object_copy(values: pd.Series) -> np.ndarray:
    """A new object array holding ``values``, safe to write into.

    pandas 3.1's ``to_numpy(dtype=object, copy=True)`` of an unpickled string
    column (a chunk on a Dask worker) returns a view of the column itself.
    """
    out = np.empty(len(values), dtype=object)
    out[:] = values.tolist()
    return out


PIXEL_SIZE_BOUNDS_UM = (0.01, 5.0)
"""Plausible pixel sizes of a light-microscope image of cardiomyocytes, in micrometres."""


def check_pixel_size_um(value, source: str) -> float:
    """Return ``value`` as a float pixel size in micrometres, or raise naming ``source``.

    ``source`` says where the value came from (``"--pixel-size"``, ``"pixel_size="``, a file's
    metadata, a napari layer's scale, a table column), so the message points at it.

    >>> check_pixel_size_um(0.12, "--pixel-size")
    0.12
    >>> check_pixel_size_um(0, "--pixel-size")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --pixel-size: 0 is not a plausible pixel size; give micrometres per pixel ...
    """
    low, high = PIXEL_SIZE_BOUNDS_UM
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and low <= number <= high):
        raise ValueError(f"{source}: {value!r} is not a plausible pixel size; give micrometres "
                         f"per pixel between {low:g} and {high:g}")
    return number
