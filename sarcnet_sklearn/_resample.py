"""Bringing a cell's image and mask to another pixel size (anti-aliased when shrinking)."""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

RELATIVE_TOLERANCE = 0.01
"""Pixel sizes closer than this (relative) are taken as equal: the cell is left as it is."""


def same_pixel_size(a: float, b: float) -> bool:
    """Whether two pixel sizes are equal within :data:`RELATIVE_TOLERANCE`.

    >>> same_pixel_size(0.12, 0.1205), same_pixel_size(0.12, 0.24)
    (True, False)
    """
    return abs(float(a) - float(b)) <= RELATIVE_TOLERANCE * max(float(a), float(b))


def resample_cell(
    image: np.ndarray,
    mask: np.ndarray | None,
    pixel_size_um: float,
    target_um: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``image`` (and ``mask``) resampled from ``pixel_size_um`` to ``target_um`` per pixel.

    The image is interpolated linearly, after a Gaussian anti-aliasing filter when it
    shrinks (scikit-image's :func:`~skimage.transform.resize`), and keeps its dtype and
    range; the mask (nonzero = cell) is resampled by nearest neighbour and stays boolean.
    A cell already at the target size (within 1 %) is returned as it is.

    Parameters
    ----------
    image : ndarray of shape (height, width)
    mask : ndarray of shape (height, width) or None
    pixel_size_um, target_um : float
        Micrometres per pixel now and wanted.

    Returns
    -------
    image, mask : ndarray
        Of shape ``round(height * pixel_size_um / target_um)`` by the same for the width
        (at least 1).

    Examples
    --------
    >>> image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> small, mask = resample_cell(image, image > 3, 0.12, 0.24)
    >>> small.shape, small.dtype, mask.dtype
    ((2, 2), dtype('uint8'), dtype('bool'))
    """
    image = np.asarray(image)
    if same_pixel_size(pixel_size_um, target_um):
        return image, None if mask is None else np.asarray(mask) != 0
    scale = float(pixel_size_um) / float(target_um)
    shape = tuple(max(1, int(round(side * scale))) for side in image.shape)
    resized = resize(image.astype(np.float32), shape, order=1, mode="edge",
                     anti_aliasing=scale < 1, preserve_range=True)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        resized = np.clip(np.rint(resized), info.min, info.max)
    resized = resized.astype(image.dtype)
    if mask is None:
        return resized, None
    small_mask = resize(np.asarray(mask) != 0, shape, order=0, anti_aliasing=False) > 0
    return resized, small_mask
