"""Steps 1-3 of the global-alignment method: crop, clip and quantize one cell.

For integer images the percentiles are read from a histogram instead of
partitioning the pixels; they reproduce ``np.percentile`` (method "linear")
bit for bit, so the levels equal those of the literal
``np.percentile`` / ``np.clip`` / ``np.digitize`` recipe.
"""

from __future__ import annotations

import numpy as np

N_LEVELS = 8
CLIP_PERCENTILES = (2.0, 98.0)
_MAX_LUT_RANGE = 1 << 20


def check_cell(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate one cell's structure image and mask.

    Parameters
    ----------
    image : array-like of shape (height, width)
        Structure intensities (any real dtype, finite).
    mask : array-like of shape (height, width)
        Cell mask; nonzero pixels belong to the cell.

    Returns
    -------
    image : ndarray of shape (height, width)
    inside : ndarray of bool, shape (height, width)

    Raises
    ------
    ValueError
        When the arrays are not 2-D, differ in shape, the mask has fewer than
        2 pixels, or the image is not real or not finite inside the cell.

    Examples
    --------
    >>> import numpy as np
    >>> image, inside = check_cell(np.ones((3, 3)), np.eye(3))
    >>> int(inside.sum())
    3
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 2:
        raise ValueError(f"structure image must be 2-D, got shape {image.shape}")
    if mask.ndim != 2:
        raise ValueError(f"cell mask must be 2-D, got shape {mask.shape}")
    if image.shape != mask.shape:
        raise ValueError(
            f"structure image and cell mask differ in shape: {image.shape} vs {mask.shape}"
        )
    if image.dtype == bool:
        image = image.astype(np.uint8)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"structure image must be real-valued, got dtype {image.dtype}")
    inside = mask != 0
    n_pixels = int(np.count_nonzero(inside))
    if n_pixels == 0:
        raise ValueError("cell mask is empty")
    if n_pixels == 1:
        raise ValueError("cell mask has a single pixel; its shape and texture are undefined")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image[inside])):
        raise ValueError("structure image has NaN or infinite values inside the cell")
    return image, inside


def bounding_box(inside: np.ndarray) -> tuple[slice, slice]:
    """Slices of the smallest box holding every ``True`` pixel of ``inside`` (inclusive)."""
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def quantize_cell(image: np.ndarray, mask: np.ndarray, n_levels: int = N_LEVELS) -> np.ndarray:
    """Crop a cell to its mask's bounding box, clip and quantize it (steps 1-3).

    Outside the mask the result is level 0; in-cell intensities are clipped to
    their 2nd and 98th percentiles and get levels ``1..n_levels`` by the
    ``0, 100/n_levels, ...`` percentiles of the clipped in-cell intensities
    (a pixel equal to a threshold takes the upper level).

    Parameters
    ----------
    image : array-like of shape (height, width)
        Structure intensities.
    mask : array-like of shape (height, width)
        Cell mask; nonzero pixels belong to the cell.
    n_levels : int, default=8
        Number of in-cell levels.

    Returns
    -------
    levels : ndarray of uint8, shape of the mask's bounding box
        0 outside the cell, ``1..n_levels`` inside.

    Raises
    ------
    ValueError
        For invalid inputs (see :func:`check_cell`) or when the clipped
        in-cell intensities are constant (there is no texture to measure).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(16).reshape(4, 4)
    >>> mask = np.zeros((4, 4), int); mask[1:3, :] = 1
    >>> quantize_cell(image, mask)
    array([[1, 2, 3, 4],
           [5, 6, 7, 8]], dtype=uint8)
    """
    image, inside = check_cell(image, mask)
    box = bounding_box(inside)
    crop, cell = image[box], inside[box]
    values = crop[cell]
    n = values.size
    quantiles = np.linspace(0, 100, n_levels + 1)[:-1]
    if np.issubdtype(values.dtype, np.integer):
        low_value = int(values.min())
        value_range = int(values.max()) - low_value
    if np.issubdtype(values.dtype, np.integer) and value_range < _MAX_LUT_RANGE:
        counts = np.bincount((values - low_value).astype(np.intp), minlength=value_range + 1)
        cumulative = np.cumsum(counts)

        def order_statistic(k: np.ndarray) -> np.ndarray:
            return (low_value + np.searchsorted(cumulative, k, side="right")).astype(np.float64)

        low, high = _percentiles(order_statistic, n, np.asarray(CLIP_PERCENTILES))
        thresholds = _percentiles(
            lambda k: np.clip(order_statistic(k), low, high), n, quantiles
        )
        lut_values = np.clip(np.arange(low_value, low_value + value_range + 1.0), low, high)
        lut = np.searchsorted(thresholds, lut_values, side="right").astype(np.uint8)
        levels = np.zeros(crop.shape, dtype=np.uint8)
        levels[cell] = lut[(values - low_value).astype(np.intp)]
        constant = low == high
    else:
        values = values.astype(np.float64)
        low, high = np.percentile(values, CLIP_PERCENTILES)
        clipped = np.clip(values, low, high)
        thresholds = np.percentile(clipped, quantiles)
        levels = np.zeros(crop.shape, dtype=np.uint8)
        levels[cell] = np.searchsorted(thresholds, clipped, side="right")
        constant = clipped.min() == clipped.max()
    if constant:
        raise ValueError(
            "structure intensities inside the cell are constant (after clipping to their "
            "2nd-98th percentiles); there is no texture to measure"
        )
    return levels


def _percentiles(order_statistic, n: int, q: np.ndarray) -> np.ndarray:
    """``np.percentile(values, q)`` (method "linear") from the values' order statistics.

    ``order_statistic(k)`` returns the ``k``-th smallest values (0-based) for an
    integer array ``k``. The arithmetic mirrors NumPy's so that the result is
    identical to the last bit.
    """
    fractions = np.true_divide(q, 100)
    virtual = (n - 1) * fractions
    previous = np.floor(virtual)
    gamma = np.asarray(virtual - previous)
    previous_index = np.clip(previous.astype(np.intp), 0, n - 1)
    next_index = np.clip(previous_index + 1, 0, n - 1)
    at_end = virtual >= n - 1
    previous_index[at_end] = n - 1
    next_index[at_end] = n - 1
    below = virtual < 0
    previous_index[below] = 0
    next_index[below] = 0
    a = order_statistic(previous_index)
    b = order_statistic(next_index)
    diff = b - a
    result = a + diff * gamma
    upper = gamma >= 0.5
    result[upper] = (b - diff * (1 - gamma))[upper]
    return result
