"""Steps 1-5 of the global-alignment method: crop, clip and quantize one cell.

The percentiles are read from histograms instead of partitioning the pixels;
they reproduce ``np.percentile`` (method "linear") bit for bit, so the levels
equal those of the published ``np.percentile`` / ``np.clip`` / uint16 cast /
``np.digitize`` recipe.
"""

from __future__ import annotations

import math

import numpy as np

N_LEVELS = 8
CLIP_PERCENTILES = (2.0, 98.0)
MAX_INTENSITY = 65535
"""The published method casts intensities to uint16."""


def check_cell(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate one cell's structure image and mask.

    Parameters
    ----------
    image : array-like of shape (height, width)
        Structure intensities (any real dtype; 0 to 65535 inside the cell).
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
        2 pixels, or the image inside the cell is not real, not finite,
        negative or above 65535 (the published method casts to uint16).

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
    if image.dtype not in (np.uint8, np.uint16):
        values = image[inside]
        if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(values)):
            raise ValueError("structure image has NaN or infinite values inside the cell")
        if values.min() < 0:
            raise ValueError(
                "structure image has negative values inside the cell; the published method "
                "measures unsigned 8- or 16-bit intensities"
            )
        if values.max() >= MAX_INTENSITY + 1:
            raise ValueError(
                f"structure image has values above {MAX_INTENSITY} inside the cell; the "
                "published method casts intensities to 16-bit integers"
            )
    return image, inside


def bounding_box(inside: np.ndarray) -> tuple[slice, slice]:
    """Slices of the smallest box holding every ``True`` pixel of ``inside`` (inclusive)."""
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def quantize_cell(image: np.ndarray, mask: np.ndarray, n_levels: int = N_LEVELS) -> np.ndarray:
    """Crop, clip and quantize one cell exactly as the published method (steps 1-5).

    The steps of ``get_cropped_cell`` and ``quantize_image`` in
    ``fish_morphology_code/processing/structure_organization/global_alignment/alignment.py``
    (AllenCellModeling/fish_morphology_code):

    1. A pixel is in the cell when it is in the mask *and* its intensity is
       positive: in-mask pixels of intensity 0 count as outside.
    2. The clip limits are the 2nd and 98th percentiles of the in-cell intensities.
    3. The crop spans those pixels' bounding box *without* its last row and
       last column (the published code slices ``min:max``).
    4. In-cell intensities are clipped to the limits and cast to uint16, which
       truncates them (and so the limits) toward zero; pixels that become 0
       are outside.
    5. Levels ``1..n_levels`` by the ``0, 100/n_levels, ...`` percentiles of the
       in-cell values of the crop (a value equal to a threshold takes the upper
       level); level 0 outside.

    Integer images take a histogram route whose percentiles equal
    ``np.percentile``'s to the last bit.

    Parameters
    ----------
    image : array-like of shape (height, width)
        Structure intensities, 0 to 65535 inside the cell.
    mask : array-like of shape (height, width)
        Cell mask; nonzero pixels belong to the cell.
    n_levels : int, default=8
        Number of in-cell levels.

    Returns
    -------
    levels : ndarray of uint8, shape of the crop
        0 outside the cell, ``1..n_levels`` inside.

    Raises
    ------
    ValueError
        For invalid inputs (see :func:`check_cell`), when no in-cell pixel is
        left in the crop, or when the clipped in-cell intensities are constant
        (there is no texture to measure; the published code would return
        meaningless numbers).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(1, 26).reshape(5, 5)
    >>> mask = np.zeros((5, 5), int); mask[1:4, :] = 1
    >>> quantize_cell(image, mask)  # rows 1-2 and columns 0-3: the box minus its last row/column
    array([[1, 2, 3, 4],
           [5, 6, 7, 8]], dtype=uint8)
    """
    image, inside = check_cell(image, mask)
    return _quantize_checked(image, inside, n_levels)


def _quantize_checked(
    image: np.ndarray, inside: np.ndarray, n_levels: int = N_LEVELS
) -> np.ndarray:
    """:func:`quantize_cell` of an image and boolean mask that :func:`check_cell` accepted."""
    masked = image * inside
    if np.issubdtype(image.dtype, np.integer) and image.dtype not in (np.uint8, np.uint16):
        masked = masked.astype(np.uint16)  # check_cell ensured 0..65535 inside the cell
    cell = masked > 0
    rows = np.flatnonzero(cell.any(axis=1))
    if rows.size == 0:
        raise ValueError("no pixel of the cell has a positive intensity; there is no texture")
    cols = np.flatnonzero(cell.any(axis=0))
    box = (slice(rows[0], rows[-1]), slice(cols[0], cols[-1]))
    if np.issubdtype(masked.dtype, np.integer):
        counts = np.bincount(masked[cell])
        low, high = _integer_percentiles(counts, np.asarray(CLIP_PERCENTILES))
        # The crop leaves out the last row and column of the cell's bounding box.
        counts -= np.bincount(masked[rows[-1], cols[0] : cols[-1] + 1], minlength=counts.size)
        counts -= np.bincount(masked[rows[0] : rows[-1], cols[-1]], minlength=counts.size)
        crop = masked[box]
        # Integers clipped to float limits and truncated = clipped to the truncated limits.
        low, high = math.floor(low), math.floor(high)
    else:
        low, high = np.percentile(masked[cell], CLIP_PERCENTILES)
        crop = np.clip(masked[box], low, high).astype(np.uint16)
        crop *= cell[box]
        counts = np.bincount(crop.ravel(), minlength=1)  # a one-row cell leaves an empty crop
        low, high = 0, counts.size - 1
    counts[0] = 0
    clipped = np.zeros(high + 1, dtype=np.int64)
    clipped[low:] = counts[low : high + 1]
    clipped[low] += counts[:low].sum()
    clipped[high] += counts[high + 1 :].sum()
    clipped[0] = 0
    if not clipped.any():
        if cell[box].any():
            raise ValueError(
                "structure intensities inside the cell are all below 1, and the published "
                "method truncates them to integers: give the camera's integer intensities, "
                "not intensities scaled to 0-1"
            )
        raise ValueError(
            "no in-cell pixel is left once the bounding box loses its last row and column "
            "(as in the published method): the cell is too thin"
        )
    if np.count_nonzero(clipped) == 1:
        raise ValueError(
            "structure intensities inside the cell are constant (after clipping to their "
            "2nd-98th percentiles); there is no texture to measure"
        )
    thresholds = _integer_percentiles(clipped, np.linspace(0, 100, n_levels + 1)[:-1])
    # level = number of thresholds <= the clipped value; on the unclipped integers that is
    # the number of integer cut points <= the value, a threshold at or below the lower
    # clip limit counting for every in-cell pixel.
    cuts = np.where(thresholds <= low, 1, np.ceil(thresholds)).astype(crop.dtype)
    levels = np.zeros(crop.shape, dtype=np.uint8)
    for cut in cuts.tolist():
        levels += crop >= cut
    return levels


def _integer_percentiles(counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.percentile`` (method "linear") of the non-negative integers counted in ``counts``."""
    cumulative = np.cumsum(counts)

    def order_statistic(k: np.ndarray) -> np.ndarray:
        return np.searchsorted(cumulative, k, side="right").astype(np.float64)

    return _percentiles(order_statistic, int(cumulative[-1]), q)


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
