"""A transcription of how the AICS single-cell images were cut from fields of view, for tests.

Source: AllenCellModeling/fish_morphology_code (BSD-3-Clause),
``fish_morphology_code/processing/auto_contrast/stretch_utils.py``: the
"simple_quantile" contrast stretch (``_simple_quantile_constrast`` with the
fluorescence settings ``clip_quantiles=[0.0, 0.998]``, ``zero_below_median=False``)
and the crop of ``cell_worker``. Transcribed step by step, without the file
reading and writing around them, so that the package's crops can be compared
with the published recipe's output exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage import img_as_float64, img_as_ubyte
from skimage.exposure import rescale_intensity


def _ubyte(image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return img_as_ubyte(image)


def reference_field_stretch(field: np.ndarray) -> np.ndarray:
    """``_simple_quantile_constrast(field, clip_quantiles=[0.0, 0.998])``."""
    image = img_as_float64(field)
    q_low, q_high = np.quantile(image, [0.0, 0.998])
    clipped = np.clip(image, a_min=q_low, a_max=q_high)
    return _ubyte(rescale_intensity(clipped))


def reference_cell_crop(stretched: np.ndarray, labels: np.ndarray, label: int) -> np.ndarray:
    """The crop ``cell_worker`` writes for one cell of an already stretched channel."""
    y, x = np.where(labels == label)
    crop_slice = np.s_[min(y):max(y) + 1, min(x):max(x) + 1]
    mask = (labels[crop_slice] == label).astype(np.float64)
    return _ubyte(rescale_intensity(stretched[crop_slice] * mask))
