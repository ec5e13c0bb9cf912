"""Synthetic fields of view: several touching synthetic cardiomyocytes and their label image."""

from __future__ import annotations

import math

import numpy as np

from ._synthetic import NATIVE_ZDISC_SPACING_PX, _cell_mask, _render_structure, _smooth_field

CAMERA_OFFSET = 100
"""Dark level of the simulated 16-bit camera."""
_FULL_SCALE = 3000.0


def make_synthetic_field(
    shape: tuple[int, int] = (512, 512),
    n_cells: int = 6,
    random_state: int | None = None,
    *,
    return_levels: bool = False,
):
    """A 16-bit field of view of several touching synthetic cells and its label image.

    The cells are drawn and textured by the same generator as
    :func:`make_synthetic_aics` (an irregular elongated mask; an alpha-actinin-2
    pattern following the experts' rubric for a random organization level in
    [1, 5]; native z-disc spacing of 16 px, i.e. 1.9 um at 0.12 um/px). They are
    laid out on a jittered grid, large enough that neighbours touch, and none
    reaches the field's border. Each cell gets its own brightness; the field
    adds a camera offset, a dim uneven background and read noise, as a raw
    16-bit microscope image.

    Parameters
    ----------
    shape : tuple of int, default=(512, 512)
        Height and width of the field.
    n_cells : int, default=6
        Number of cells (labels 1..n_cells).
    random_state : int or None, default=None
        Seed.
    return_levels : bool, default=False
        Also return each cell's latent organization level (index ``k - 1`` for
        label ``k``).

    Returns
    -------
    field : ndarray of uint16, shape ``shape``
    labels : ndarray of int32, shape ``shape``
        0 for background, ``k`` for cell ``k``.
    levels : ndarray of float, shape (n_cells,)
        Only with ``return_levels=True``.

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import make_synthetic_field
    >>> field, labels = make_synthetic_field((256, 256), n_cells=4, random_state=0)
    >>> field.dtype, labels.dtype, sorted(set(labels.ravel().tolist()))
    (dtype('uint16'), dtype('int32'), [0, 1, 2, 3, 4])
    """
    height, width = (int(side) for side in shape)
    n_cells = int(n_cells)
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    columns = math.ceil(math.sqrt(n_cells * width / height))
    rows = math.ceil(n_cells / columns)
    pitch = min(height / rows, width / columns)
    # _cell_mask's image is up to 1.25 * cell_size on a side; it must fit inside the field.
    cell_size = int(min(pitch, (min(height, width) - 4) / 1.25))
    if cell_size < 24:
        raise ValueError(
            f"a field of shape {shape} is too small for {n_cells} cells (each needs about 24 px)"
        )
    rng = np.random.default_rng(random_state)
    spacing = max(4.0, NATIVE_ZDISC_SPACING_PX * min(1.0, cell_size / 128))
    levels = rng.uniform(1.0, 5.0, n_cells)
    labels = np.zeros((height, width), np.int32)
    signal = np.zeros((height, width))
    slots = rng.permutation(rows * columns)[:n_cells]
    for index, slot in enumerate(slots):
        mask = _cell_mask(rng, levels[index], cell_size)
        structure, _ = _render_structure(rng, mask, levels[index], spacing)
        centre_row = (slot // columns + 0.5) * height / rows + rng.uniform(-0.1, 0.1) * pitch
        centre_col = (slot % columns + 0.5) * width / columns + rng.uniform(-0.1, 0.1) * pitch
        top = int(np.clip(round(centre_row - mask.shape[0] / 2), 1, height - 1 - mask.shape[0]))
        left = int(np.clip(round(centre_col - mask.shape[1] / 2), 1, width - 1 - mask.shape[1]))
        box = np.s_[top:top + mask.shape[0], left:left + mask.shape[1]]
        free = mask & (labels[box] == 0)
        labels[box][free] = index + 1
        signal[box][free] = structure[free] / 255.0 * rng.uniform(0.5, 1.0)
    background = 0.04 * np.exp(0.3 * _smooth_field(rng, (height, width), pitch))
    field = CAMERA_OFFSET + _FULL_SCALE * (signal + background)
    field = rng.poisson(np.clip(field, 0, None)) + rng.normal(0.0, 8.0, field.shape)
    field = np.clip(np.round(field), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    if return_levels:
        return field, labels, levels
    return field, labels
