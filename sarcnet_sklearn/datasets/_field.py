"""Synthetic fields of view: several touching synthetic cardiomyocytes and their label image."""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_pixel_size_um
from ._cell_render import cell_extent_um, draw_cell, render_cell, smooth_field

CAMERA_OFFSET = 100
"""Dark level of the simulated 16-bit camera."""
_FULL_SCALE = 3000.0


def make_synthetic_field(
    shape: tuple[int, int] = (512, 512),
    n_cells: int = 6,
    random_state: int | None = None,
    *,
    return_levels: bool = False,
    pixel_size_um: float | None = None,
    return_pixel_size: bool = False,
):
    """A 16-bit field of view of several touching synthetic cells and its label image.

    The cells are drawn in micrometres and textured by the same renderer as
    :func:`make_synthetic_aics` (real hiPSC-CM areas and aspect ratios, an
    alpha-actinin-2 pattern following the experts' rubric for a random
    organization level in [1, 5], sarcomeres of 1.55-2.05 um). They are laid out
    on a jittered grid, large enough that neighbours touch, and none reaches the
    field's border. Each cell gets its own brightness; the field adds a camera
    offset, a dim uneven background and read noise, as a raw 16-bit microscope
    image. The same ``random_state`` with ``shape`` scaled by the ratio of two
    pixel sizes gives the same field at both pixel sizes.

    Parameters
    ----------
    shape : tuple of int, default=(512, 512)
        Height and width of the field, in pixels.
    n_cells : int, default=6
        Number of cells (labels 1..n_cells).
    random_state : int or None, default=None
        Seed.
    return_levels : bool, default=False
        Also return each cell's latent organization level (index ``k - 1`` for
        label ``k``).
    pixel_size_um : float, optional
        Micrometres per pixel. Default: the finest pixel size at which the cells
        fit in the field (real cells are 20-80 um long, so a small field holds a
        few cells only at a coarse pixel size).
    return_pixel_size : bool, default=False
        Also return the pixel size (last).

    Returns
    -------
    field : ndarray of uint16, shape ``shape``
    labels : ndarray of int32, shape ``shape``
        0 for background, ``k`` for cell ``k``.
    levels : ndarray of float, shape (n_cells,)
        Only with ``return_levels=True``.
    pixel_size_um : float
        Only with ``return_pixel_size=True``.

    Raises
    ------
    ValueError
        For ``n_cells < 1``, an implausible pixel size, or a field too small for
        the cells at ``pixel_size_um``.

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import make_synthetic_field
    >>> field, labels, size = make_synthetic_field((256, 256), n_cells=4, random_state=0,
    ...                                            return_pixel_size=True)
    >>> field.dtype, labels.dtype, sorted(set(labels.ravel().tolist())), round(size, 2)
    (dtype('uint16'), dtype('int32'), [0, 1, 2, 3, 4], 0.4)
    """
    height, width = (int(side) for side in shape)
    n_cells = int(n_cells)
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    columns = math.ceil(math.sqrt(n_cells * width / height))
    rows = math.ceil(n_cells / columns)
    pitch = min(height / rows, width / columns)
    rng = np.random.default_rng(random_state)
    levels = rng.uniform(1.0, 5.0, n_cells)
    cells = [draw_cell(rng, level) for level in levels]
    extent_um = max(max(cell_extent_um(cell)) for cell in cells)
    room_px = min(1.25 * pitch, min(height, width) - 4)  # neighbours may overlap a little
    finest = extent_um / room_px if room_px > 0 else math.inf
    if pixel_size_um is None:
        pixel_size_um = round(finest + 0.005, 2)  # a round number, as a microscope's
        if pixel_size_um > 5:
            raise ValueError(f"a field of shape {shape} is too small for {n_cells} cells")
    pixel_size_um = check_pixel_size_um(pixel_size_um, "pixel_size_um")
    if pixel_size_um < finest:
        raise ValueError(
            f"a field of shape {shape} is too small for {n_cells} cells at {pixel_size_um} "
            f"um/px (they are up to {extent_um:.0f} um across): give a larger shape, fewer "
            f"cells or at least {finest:.2f} um/px"
        )
    labels = np.zeros((height, width), np.int32)
    signal = np.zeros((height, width))
    slots = rng.permutation(rows * columns)[:n_cells]
    for index, slot in enumerate(slots):
        cell = render_cell(cells[index], pixel_size_um)
        mask, structure = cell.mask, cell.structure
        centre_row = (slot // columns + 0.5) * height / rows + rng.uniform(-0.1, 0.1) * pitch
        centre_col = (slot % columns + 0.5) * width / columns + rng.uniform(-0.1, 0.1) * pitch
        top = int(np.clip(round(centre_row - mask.shape[0] / 2), 1, height - 1 - mask.shape[0]))
        left = int(np.clip(round(centre_col - mask.shape[1] / 2), 1, width - 1 - mask.shape[1]))
        box = np.s_[top:top + mask.shape[0], left:left + mask.shape[1]]
        free = mask & (labels[box] == 0)
        labels[box][free] = index + 1
        signal[box][free] = structure[free] / 255.0 * rng.uniform(0.5, 1.0)
    background = 0.04 * np.exp(0.3 * smooth_field(rng, (height, width), pitch))
    field = CAMERA_OFFSET + _FULL_SCALE * (signal + background)
    field = rng.poisson(np.clip(field, 0, None)) + rng.normal(0.0, 8.0, field.shape)
    field = np.clip(np.round(field), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    out = (field, labels) + ((levels,) if return_levels else ())
    return out + ((pixel_size_um,) if return_pixel_size else ())
