"""The published Set 2 (global alignment) measurement, transcribed for tests and benchmarks.

Source: ``analyze_orientation`` (with its helpers ``get_cropped_cell`` and
``quantize_image``) in
``fish_morphology_code/processing/structure_organization/global_alignment/alignment.py``
of the public repository AllenCellModeling/fish_morphology_code, commit
be2fc4a9703020f0815139c62fe04b667b8fd928 (2021-02-11). It is the function that
computed ``Maximum_Coefficient_Variation``, ``Peak_Height`` and ``Peak_Distance``
in the AICS tables.

The transcription keeps every operation of the published function, in its
order and with its libraries (NumPy percentiles, ``skimage.feature``'s
co-occurrence matrix and correlation property, lmfit's Levenberg-Marquardt
fit). Left out: printing and plotting. Two renames/changes forced by newer
libraries: ``greycomatrix``/``greycoprops`` are now spelled ``graycomatrix``/
``graycoprops``; and the top quantization bin ``1 + crop.max()`` is computed
on a Python int, because NumPy 2 would wrap ``1 + uint16(65535)`` to 0 where
NumPy 1 (which the published code ran on) gave 65536.

It is slow on purpose (one lmfit fit per angle, the full ``graycomatrix``);
the package's :func:`sarcnet_sklearn.features.extract_protocol1` must equal it.
"""

from __future__ import annotations

import lmfit
import numpy as np
from skimage.feature import graycomatrix, graycoprops


def _cropped_cell(cell: np.ndarray) -> np.ndarray:
    """``get_cropped_cell``: clip the nonzero pixels to their 2-98 % range and crop."""
    y, x = np.nonzero(cell)
    limits = np.percentile(cell[y, x], [2, 98])
    # Exclusive upper bounds: the bounding box's last row and column are left out.
    crop = cell[y.min() : y.max(), x.min() : x.max()]
    # Assigning into the image's own dtype truncates the limits for integer images.
    crop[crop > 0] = np.clip(crop[crop > 0], *limits)
    return crop.astype(np.uint16)


def _quantized(crop: np.ndarray, nlevels: int = 8) -> np.ndarray:
    """``quantize_image``: level 0 for zero pixels, 1..nlevels by percentiles of the rest."""
    percentiles = np.percentile(crop[crop > 0], np.linspace(0, 100, nlevels + 1))
    bins = [0] + percentiles[:-1].tolist() + [1 + int(crop.max())]
    return np.digitize(crop, bins) - 1


def _decay(x, a):
    return np.exp(-a * x**2)


def analyze_orientation(
    raw: np.ndarray,
    mask: np.ndarray,
    cell_label: int,
    nlevels: int = 8,
    dmax: int = 32,
    nangles: int = 16,
    decay_value: float = 0.5,
) -> dict[str, float]:
    """Set 2 of the cell ``mask == cell_label`` of ``raw``, as the published function.

    Returns ``Maximum_Coefficient_Variation``, ``Peak_Height``, ``Peak_Distance``
    (pixels) and ``Peak_Angle`` (degrees), as the published function does.
    """
    dists = np.linspace(0, dmax, dmax + 1)
    angles = np.linspace(0, np.pi, nangles)

    crop = _quantized(_cropped_cell(raw * (mask == cell_label)), nlevels=nlevels)

    glcm = graycomatrix(image=crop, distances=dists, angles=angles, levels=nlevels + 1)
    corr = np.abs(graycoprops(glcm[1:, 1:], prop="correlation").T)

    eps = 1e-1
    cvr_corr = corr.std(axis=0) / (eps + (1 - eps) * corr.mean(axis=0))

    corr_reg = np.zeros_like(corr)
    for i, curve in enumerate(corr):
        fitted = (
            lmfit.Model(_decay)
            .fit(curve, x=dists, a=0.005, weights=np.exp(-decay_value * dists))
            .best_fit
        )
        corr_reg[i] = curve - fitted

    return {
        "Maximum_Coefficient_Variation": cvr_corr.max(),
        "Peak_Height": corr_reg.max(),
        "Peak_Distance": dists[corr_reg.max(axis=0).argmax()],
        "Peak_Angle": 180 * angles[corr_reg.max(axis=1).argmax()] / np.pi,
    }
