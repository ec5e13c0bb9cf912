"""Protocol 1 of one cell: morphology (Set 1) and GLCM global alignment (Set 2).

Set 2 follows ``analyze_orientation`` in
``fish_morphology_code/processing/structure_organization/global_alignment/alignment.py``
(public repository AllenCellModeling/fish_morphology_code), the function that
computed the AICS tables' ``Maximum_Coefficient_Variation``, ``Peak_Height`` and
``Peak_Distance``; the tests compare against a transcription of it.
"""

from __future__ import annotations

import numpy as np

from .._columns import PIXEL_SIZE_UM
from .._resample import resample_cell, same_pixel_size
from ._fit import decay_residuals
from ._glcm import ANGLES, DISTANCES, glcm_correlation
from ._quantize import _quantize_checked, bounding_box, check_cell

CV_REGULARIZER = 0.1
"""The coefficient of variation divides by ``0.1 + 0.9 * mean`` over angles."""


def cell_morphology(mask: np.ndarray) -> dict[str, float]:
    """Area and axis lengths (pixels) of a cell mask: Set 1 of the AICS tables.

    The definitions of CellProfiler's MeasureObjectSizeShape (the AICS tables'
    ``napariCell_AreaShape_Area``, ``..._MajorAxisLength`` and
    ``..._MinorAxisLength``), which CellProfiler computes with scikit-image's
    ``regionprops``: the area is the number of mask pixels (every pixel of the
    mask, whatever its intensity), and the axis lengths are those of the
    ellipse with the same normalized second central moments as the mask,
    ``4 sqrt(eigenvalue)`` of its inertia tensor (``axis_major_length`` and
    ``axis_minor_length`` of ``regionprops``). All nonzero pixels count as one
    region.

    Parameters
    ----------
    mask : array-like of shape (height, width)
        Nonzero pixels belong to the cell.

    Returns
    -------
    morphology : dict
        ``area``, ``axis_major_length`` and ``axis_minor_length``.

    Examples
    --------
    >>> mask = np.zeros((5, 9), int); mask[1:4, 1:8] = 1
    >>> {k: round(v, 4) for k, v in cell_morphology(mask).items()}
    {'area': 21.0, 'axis_major_length': 8.0, 'axis_minor_length': 3.266}
    """
    inside = np.asarray(mask) != 0
    crop = inside[bounding_box(inside)]
    # float32 sums of 0/1 and of column indices are exact integers (< 2^24) for a box of
    # up to 4096 x 4096 pixels (and faster); the moments are then taken in float64.
    exact = np.float32 if max(crop.shape) <= 4096 else np.float64
    crop = crop.astype(exact)
    rows = np.arange(crop.shape[0], dtype=np.float64)
    cols = np.arange(crop.shape[1], dtype=np.float64)
    row_counts = (crop @ np.ones(crop.shape[1], exact)).astype(np.float64)
    col_counts = (np.ones(crop.shape[0], exact) @ crop).astype(np.float64)
    col_sums = (crop @ cols.astype(exact)).astype(np.float64)  # per row: sum of c
    area = row_counts.sum()
    mean_r, mean_c = rows @ row_counts / area, cols @ col_counts / area
    rr, cc = rows - mean_r, cols - mean_c
    mu20 = (rr * rr) @ row_counts / area
    mu02 = (cc * cc) @ col_counts / area
    mu11 = (rr @ col_sums - mean_c * (rr @ row_counts)) / area
    half_sum, root = (mu20 + mu02) / 2, np.sqrt(((mu20 - mu02) / 2) ** 2 + mu11 * mu11)
    major, minor = max(half_sum + root, 0.0), max(half_sum - root, 0.0)
    return {
        "area": float(area),
        "axis_major_length": float(4 * np.sqrt(major)),
        "axis_minor_length": float(4 * np.sqrt(minor)),
    }


def alignment_from_correlation(
    correlation: np.ndarray,
    distances: np.ndarray = DISTANCES,
    angles: np.ndarray = ANGLES,
) -> dict[str, float]:
    """Steps 8-10: coefficient of variation and decay-fit peak of a correlation table.

    The coefficient of variation over angles (population standard deviation
    divided by ``0.1 + 0.9 * mean``) per distance, its maximum, and the
    largest residual of the per-angle ``exp(-a d^2)`` fits (:func:`fit_exp_decay`)
    with the distance and angle where it lies.

    Parameters
    ----------
    correlation : array-like of shape (n_angles, n_distances)
        GLCM correlation (its absolute value is taken).
    distances : array-like of shape (n_distances,), default=DISTANCES
    angles : array-like of shape (n_angles,), default=ANGLES
        In radians.

    Returns
    -------
    features : dict
        ``max_coefficient_variation``, ``peak_height``, ``peak_distance``
        (pixels) and ``peak_angle`` (degrees).

    Examples
    --------
    >>> d = np.arange(5.0)
    >>> table = np.exp(-np.array([[0.1], [0.5]]) * d**2)
    >>> features = alignment_from_correlation(table, d, np.array([0.0, np.pi / 2]))
    >>> round(features["max_coefficient_variation"], 4)
    0.6867
    """
    corr = np.abs(np.asarray(correlation, dtype=np.float64))
    distances = np.asarray(distances, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    cv = corr.std(axis=0) / (CV_REGULARIZER + (1 - CV_REGULARIZER) * corr.mean(axis=0))
    residual = decay_residuals(corr, distances)
    return {
        "max_coefficient_variation": float(cv.max()),
        "peak_height": float(residual.max()),
        "peak_distance": float(distances[residual.max(axis=0).argmax()]),
        "peak_angle": float(180 * angles[residual.max(axis=1).argmax()] / np.pi),
    }


def extract_protocol1(
    image: np.ndarray,
    mask: np.ndarray,
    pixel_size: float = PIXEL_SIZE_UM,
    *,
    label: int | None = None,
    texture_pixel_size: float | None = None,
) -> dict[str, float]:
    """Measure the Protocol 1 features of one cell.

    Set 1 (morphology) is CellProfiler's MeasureObjectSizeShape on the cell
    mask (see :func:`cell_morphology`). Set 2 (GLCM global alignment) gives the
    numbers of the published ``analyze_orientation`` (repository
    AllenCellModeling/fish_morphology_code, file
    ``fish_morphology_code/processing/structure_organization/global_alignment/alignment.py``),
    which computed the AICS tables, detail for detail:

    1. in-mask pixels of intensity 0 count as outside the cell;
    2. the in-cell intensities are clipped to their 2nd and 98th percentiles
       and truncated to integers (the published code casts to uint16);
    3. the crop is the bounding box of the in-cell pixels without its last row
       and column (see :func:`quantize_cell`);
    4. 8 levels by the 0, 12.5, ..., 87.5 percentiles of the crop's in-cell values;
    5. GLCM correlation, level 0 (outside) excluded, for distances 0..32 and 16
       angles ``linspace(0, pi, 16)`` (:func:`glcm_correlation`), absolute value;
    6. maximum over distances of the coefficient of variation over angles;
    7. per angle, lmfit's Levenberg-Marquardt fit of ``exp(-a d^2)`` with
       weights ``exp(-0.5 d)`` from ``a = 0.005`` (:func:`fit_exp_decay`); the
       peak is the largest residual, at its distance and angle.

    Parameters
    ----------
    image : array-like of shape (height, width)
        Structure (alpha-actinin-2) intensities.
    mask : array-like of shape (height, width)
        Cell mask (nonzero pixels belong to the cell) or label image.
    pixel_size : float, default=0.12
        Micrometres per pixel. Use 1.0 for values in pixel units.
    label : int, optional
        With a label image: the cell is the pixels equal to ``label``.
    texture_pixel_size : float, optional
        Measure Set 2 on the cell resampled to this many micrometres per pixel
        (anti-aliased when shrinking, see :func:`~sarcnet_sklearn._resample.resample_cell`),
        so that its 0-32 pixel distances are the same micrometres whatever the
        image's pixel size (0.12: 0-3.84 um, as in the AICS tables). None: at the
        image's own pixels, as the published code does.

    Returns
    -------
    features : dict of str to float
        ``cell_area`` (um^2), ``cell_aspect_ratio`` (minor / major axis),
        ``max_coefficient_variation``, ``peak_height``, ``peak_distance``
        (um) and ``peak_angle`` (degrees).

    Raises
    ------
    ValueError
        When the arrays are not 2-D or differ in shape, the mask has fewer
        than 2 pixels, ``label`` is not in the mask, or the in-cell
        intensities are not finite, negative, above 65535 or constant, or
        leave no pixel in the crop.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:120, :160]
    >>> mask = ((yy - 60) / 50) ** 2 + ((xx - 80) / 70) ** 2 <= 1
    >>> stripes = 100 + 80 * np.cos(2 * np.pi * xx / 8) + rng.normal(0, 20, mask.shape)
    >>> image = np.clip(stripes, 0, 255).astype(np.uint8)
    >>> features = extract_protocol1(image, mask, pixel_size=1.0)
    >>> sorted(features)  # doctest: +NORMALIZE_WHITESPACE
    ['cell_area', 'cell_aspect_ratio', 'max_coefficient_variation', 'peak_angle',
     'peak_distance', 'peak_height']
    >>> features["cell_area"] == int(mask.sum())
    True
    """
    pixel_size = float(pixel_size)
    if not np.isfinite(pixel_size) or pixel_size <= 0:
        raise ValueError(f"pixel_size must be a positive number, got {pixel_size!r}")
    if label is not None:
        mask = np.asarray(mask) == label
        if not mask.any():
            raise ValueError(f"label {label!r} is not in the cell mask")
    image, inside = check_cell(image, mask)
    box = bounding_box(inside)
    image, inside = image[box], inside[box]
    morphology = cell_morphology(inside)
    if morphology["axis_major_length"] == 0:
        raise ValueError("cell mask has no extent; its aspect ratio is undefined")
    texture, texture_inside, texture_scale = image, inside, 1.0
    if texture_pixel_size is not None and not same_pixel_size(pixel_size, texture_pixel_size):
        texture, texture_inside = resample_cell(image, inside, pixel_size, texture_pixel_size)
        texture_scale = float(texture_pixel_size) / pixel_size
        texture, texture_inside = check_cell(texture, texture_inside)
    alignment = alignment_from_correlation(
        glcm_correlation(_quantize_checked(texture, texture_inside)))
    return {
        "cell_area": morphology["area"] * pixel_size**2,
        "cell_aspect_ratio": morphology["axis_minor_length"] / morphology["axis_major_length"],
        "max_coefficient_variation": alignment["max_coefficient_variation"],
        "peak_height": alignment["peak_height"],
        "peak_distance": alignment["peak_distance"] * texture_scale * pixel_size,
        "peak_angle": alignment["peak_angle"],
    }
