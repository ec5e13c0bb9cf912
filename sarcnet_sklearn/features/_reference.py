"""A straightforward, step-by-step implementation of Protocol 1 (the slow reference).

It follows section 5 of the facts page literally, with one
``skimage.feature.graycomatrix`` call per distance and angle and one
``scipy.optimize.least_squares`` fit per angle. The tests and the benchmark
compare the fast implementation in this package against it; nothing else
should use it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import regionprops

N_LEVELS = 8
DISTANCES = np.linspace(0, 32, 33)
ANGLES = np.linspace(0, np.pi, 16)
DECAY = 0.5
A0 = 0.005


def reference_quantize(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero outside the cell, crop to its bounding box, clip, quantize to levels 1..8."""
    inside = np.asarray(mask) != 0
    rows, cols = np.nonzero(inside)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    crop = np.asarray(image, dtype=np.float64)[box]
    cell = inside[box]
    low, high = np.percentile(crop[cell], [2, 98])
    clipped = np.clip(crop[cell], low, high)
    thresholds = np.percentile(clipped, np.linspace(0, 100, N_LEVELS + 1))[:-1]
    bins = [-np.inf] + thresholds.tolist() + [np.inf]
    levels = np.zeros(crop.shape, dtype=np.uint8)
    levels[cell] = np.digitize(clipped, bins) - 1
    return levels


def reference_correlation(levels: np.ndarray) -> np.ndarray:
    """|GLCM correlation| without level 0, shape (angles, distances), one GLCM at a time."""
    corr = np.empty((len(ANGLES), len(DISTANCES)))
    for i, angle in enumerate(ANGLES):
        for j, distance in enumerate(DISTANCES):
            glcm = graycomatrix(levels, [distance], [angle], levels=N_LEVELS + 1)
            corr[i, j] = graycoprops(glcm[1:, 1:], "correlation")[0, 0]
    return np.abs(corr)


def reference_fit(curve: np.ndarray, distances: np.ndarray = DISTANCES) -> float:
    """Weighted least-squares fit of ``exp(-a d^2)`` to one curve; returns ``a``."""
    weights = np.exp(-DECAY * distances)

    def residuals(params: np.ndarray) -> np.ndarray:
        return weights * (curve - np.exp(-params[0] * distances**2))

    result = least_squares(residuals, [A0], method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return float(result.x[0])


def reference_protocol1(image: np.ndarray, mask: np.ndarray, pixel_size: float = 0.12) -> dict:
    """Protocol 1 of one cell, computed the slow, literal way."""
    props = regionprops((np.asarray(mask) != 0).astype(np.uint8))[0]
    levels = reference_quantize(image, mask)
    corr = reference_correlation(levels)
    cv = corr.std(axis=0) / (0.1 + 0.9 * corr.mean(axis=0))
    residual = np.empty_like(corr)
    for i, curve in enumerate(corr):
        residual[i] = curve - np.exp(-reference_fit(curve) * DISTANCES**2)
    return {
        "cell_area": props.area * pixel_size**2,
        "cell_aspect_ratio": props.axis_minor_length / props.axis_major_length,
        "max_coefficient_variation": float(cv.max()),
        "peak_height": float(residual.max()),
        "peak_distance": float(DISTANCES[residual.max(axis=0).argmax()]) * pixel_size,
        "peak_angle": float(180 * ANGLES[residual.max(axis=1).argmax()] / np.pi),
    }
