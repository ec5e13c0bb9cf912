"""The scaled cell of the first synthetic generator, kept for quick tests and the CPU demo.

Its cells are drawn in pixels, not micrometres: each fills an image of about ``image_size``
pixels and its z-discs lie ``16 px * min(1, image_size / 128)`` apart (at least 4 px), so that
the striation survives resizing to the 32-64 px images a CPU can train on in seconds. At real
geometry (:mod:`._cell_render`: cells of hundreds of um^2, 1.6-2.0 um sarcomeres) a 64 px image
holds a cell at about 0.6-0.8 um/px, where sarcomeres are near the sampling limit, and an
image-only network trained for a few CPU epochs on a few hundred cells does not learn the rubric
(measured: held-out Spearman -0.07 to 0.04 after 4 epochs, 0.33 after 10; this geometry: above
0.5 after 4). ``make_synthetic_aics(image_size=...)`` renders these cells;
``pixel_size_um=`` (and the default) renders cells of real geometry.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import ellipse, polygon
from skimage.measure import regionprops

from ._cell_render import autocontrast, fish_spots, stack_other_pages

# Composition (fraction of cell area per class of CLASSES) at integer levels 1..5,
# interpolated linearly in between.
_COMPOSITION = np.array(
    [
        [0.15, 0.37, 0.00, 0.43, 0.05, 0.00],
        [0.10, 0.22, 0.05, 0.33, 0.25, 0.05],
        [0.06, 0.12, 0.27, 0.13, 0.20, 0.22],
        [0.04, 0.06, 0.10, 0.04, 0.10, 0.66],
        [0.02, 0.03, 0.03, 0.02, 0.05, 0.85],
    ]
)
_CLASS_BRIGHTNESS = np.array([0.04, 0.4, 0.75, 1.0, 1.0, 1.0])

_CLASS_BRIGHTNESS = np.array([0.04, 0.4, 0.75, 1.0, 1.0, 1.0])
_HAZE = 0.45
NATIVE_ZDISC_SPACING_PX = 16.0
"""Z-disc spacing at the native 0.12 um pixel size (about 1.9 um)."""
_SPACING_REFERENCE_SIZE = 128


def legacy_spacing(image_size: int) -> float:
    """Z-disc spacing (px) of a scaled cell in an image of about ``image_size`` pixels."""
    return max(4.0, NATIVE_ZDISC_SPACING_PX * min(1.0, image_size / _SPACING_REFERENCE_SIZE))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian random field of unit standard deviation and correlation length ``sigma``."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def _cell_mask(rng: np.random.Generator, level: float, image_size: int) -> np.ndarray:
    """An irregular elongated cell filling most of an image of about ``image_size`` pixels."""
    aspect = rng.uniform(1.5, 3.3) + 0.15 * (level - 3.0)
    aspect = float(np.clip(aspect, 1.5, 4.0))
    theta = rng.uniform(0.0, np.pi)
    t = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    radius = np.ones_like(t)
    for k in (2, 3, 4, 5):
        radius += rng.normal(0.0, 0.12 / k) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    x = aspect * np.cos(t) * radius
    y = np.sin(t) * radius
    xr = x * np.cos(theta) - y * np.sin(theta)
    yr = x * np.sin(theta) + y * np.cos(theta)
    ext_y, ext_x = np.ptp(yr), np.ptp(xr)
    size = image_size * rng.uniform(0.85, 1.15) * (1.0 + 0.04 * (level - 3.0))
    ratio = np.sqrt(ext_y / ext_x)
    lo, hi = 0.75 * image_size, 1.25 * image_size
    height = int(round(np.clip(size * ratio, lo, hi)))
    width = int(round(np.clip(size / ratio, lo, hi)))
    scale = min((height - 4) / ext_y, (width - 4) / ext_x) * rng.uniform(0.85, 0.97)
    rows = (yr - yr.mean()) * scale + height / 2
    cols = (xr - xr.mean()) * scale + width / 2
    mask = np.zeros((height, width), bool)
    rr, cc = polygon(rows, cols, mask.shape)
    mask[rr, cc] = True
    mask = ndi.gaussian_filter(mask.astype(float), max(1.0, image_size / 64)) > 0.5
    return ndi.binary_fill_holes(mask)


def _sarcomere_coordinates(
    rng: np.random.Generator,
    mask: np.ndarray,
    level: float,
    spacing: float,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Axial and lateral coordinates (in periods) of a patchy myofibril lattice.

    Returns the axial coordinate ``p``, the lateral coordinate ``q``, the cell's
    long-axis angle and the patch index of each pixel.
    """
    height, width = mask.shape
    props = regionprops(mask.astype(np.uint8))[0]
    long_axis = props.orientation  # angle of the major axis from the row axis
    align = float(np.clip(level - 4.0, 0.0, 1.0))
    rows, cols = np.mgrid[0:height, 0:width].astype(float)
    inside = np.argwhere(mask)
    n_patches = int(rng.integers(4, 8))
    centres = inside[rng.choice(len(inside), n_patches, replace=False)].astype(float)
    dist = np.stack([np.hypot(rows - r, cols - c) for r, c in centres])
    blend = 0.25 * spacing
    weights = np.exp(-(dist - dist.min(axis=0)) / blend)
    weights /= weights.sum(axis=0)
    common_phase = rng.uniform()
    p = np.zeros(mask.shape)
    q = np.zeros(mask.shape)
    for k in range(n_patches):
        angle = long_axis + (1.0 - align) * rng.normal(0.0, np.deg2rad(30.0))
        phase = common_phase + (1.0 - align) * rng.uniform()
        along = rows * np.cos(angle) + cols * np.sin(angle)
        across = -rows * np.sin(angle) + cols * np.cos(angle)
        p += weights[k] * (along / spacing + phase)
        q += weights[k] * (across / (1.3 * spacing) + rng.uniform())
    return p, q, long_axis, np.argmax(weights, axis=0)


def _band(coordinate: np.ndarray, width: float) -> np.ndarray:
    """Periodic Gaussian bands of the given width (in periods) at integer coordinates."""
    offset = coordinate - np.round(coordinate)
    return np.exp(-0.5 * (offset / width) ** 2)


def _render_structure(
    rng: np.random.Generator,
    mask: np.ndarray,
    level: float,
    spacing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-actinin-2 page (uint8) and the rendered fraction of cell area per class."""
    shape = mask.shape
    spacing = spacing * rng.uniform(0.93, 1.07)
    p, q, _, _ = _sarcomere_coordinates(rng, mask, level, spacing)

    base = np.array([np.interp(level, np.arange(1, 6), _COMPOSITION[:, c]) for c in range(6)])
    composition = rng.dirichlet(base * 60.0 + 0.05)
    region_field = _smooth_field(rng, shape, 1.2 * spacing)
    inside_values = np.sort(region_field[mask])
    ranks = (np.cumsum(composition)[:-1] * len(inside_values)).astype(int)
    cuts = inside_values[np.clip(ranks, 0, len(inside_values) - 1)]
    classes = np.searchsorted(cuts, region_field)
    rendered = np.bincount(classes[mask], minlength=6) / mask.sum()

    lattice_gaps = _smooth_field(rng, shape, 0.6 * spacing) > -0.4
    fibril_breaks = np.clip(0.75 + 0.5 * _smooth_field(rng, shape, spacing), 0.15, 1.0)
    zdiscs = _band(p, 0.12) * (0.15 + 0.85 * _band(q, 0.22)) * fibril_breaks
    fibers = _band(q / 0.6, 0.12) * np.clip(0.7 + 0.3 * _smooth_field(rng, shape, spacing), 0, 1)
    organized = _band(p, 0.12) * _band(q / 0.8, 0.15) * lattice_gaps
    density = (0.10 + 0.06 * (level - 1.0)) / spacing**2
    points = (rng.random(shape) < density) * rng.gamma(3.0, 1.0 / 3.0, shape)
    sigma_dot = max(0.7, 0.12 * spacing)
    disorganized = ndi.gaussian_filter(points, sigma_dot) * (2 * np.pi * sigma_dot**2)
    diffuse = np.clip(0.6 + 0.3 * _smooth_field(rng, shape, 1.5 * spacing), 0.0, None)
    background = np.ones(shape)
    patterns = (background, diffuse, fibers, disorganized, organized, zdiscs)

    image = np.zeros(shape)
    for c, pattern in enumerate(patterns):
        weight = ndi.gaussian_filter((classes == c).astype(float), 0.4 * spacing)
        image += weight * _CLASS_BRIGHTNESS[c] * pattern
    image += 0.05 + _HAZE * (5.0 - level) / 4.0 * ndi.gaussian_filter(mask.astype(float), spacing)
    image *= np.exp(0.25 * _smooth_field(rng, shape, 3.0 * spacing))
    image = ndi.gaussian_filter(image, max(0.6, 0.07 * spacing))
    photons = rng.uniform(80.0, 300.0)
    image = rng.poisson(image * photons) / photons + rng.normal(0.0, 0.015, shape)
    return autocontrast(image, mask), rendered



def _other_pages(
    rng: np.random.Generator, mask: np.ndarray, structure: np.ndarray
) -> list[np.ndarray]:
    """Bright field, FISH 561/638, nuclear dye and the 488/561/638 segmentations."""
    shape = mask.shape
    size = np.sqrt(mask.sum())
    bright = (
        0.6
        + 0.08 * _smooth_field(rng, shape, size / 4)
        - 0.1 * ndi.gaussian_filter(mask.astype(float), 2.0)
        + 0.04 * rng.standard_normal(shape)
    )
    fish_561 = fish_spots(rng, mask, 20.0, 1.0)
    fish_638 = fish_spots(rng, mask, 10.0, 1.0)
    nuclei = np.zeros(shape)
    inside = np.argwhere(ndi.binary_erosion(mask, iterations=max(1, int(size / 8))))
    if len(inside) == 0:
        inside = np.argwhere(mask)
    for _ in range(1 + int(rng.random() < 0.1)):
        r, c = inside[rng.integers(len(inside))]
        rr, cc = ellipse(
            r,
            c,
            size * rng.uniform(0.1, 0.16),
            size * rng.uniform(0.1, 0.16),
            shape,
            rotation=rng.uniform(0, np.pi),
        )
        nuclei[rr, cc] = 1.0
    nuclei = ndi.gaussian_filter(nuclei * mask, 1.5) + rng.normal(0.0, 0.02, shape)
    return stack_other_pages(mask, structure, bright, fish_561, fish_638, nuclei)




def render_scaled_cell(rng: np.random.Generator, level: float, no_signal: bool,
                       image_size: int, seen=None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                            list]:
    """Mask, structure page, rendered class fractions and the other pages of a scaled cell;
    ``seen(structure, mask)``, when given, is how the field's microscope saw the structure."""
    mask = _cell_mask(rng, level, image_size)
    if no_signal:
        noise = rng.poisson(4.0, mask.shape) + rng.normal(0.0, 1.5, mask.shape)
        structure = np.where(mask, np.clip(noise, 0, 15), 0).round().astype(np.uint8)
        rendered = np.array([0.9, 0.1, 0.0, 0.0, 0.0, 0.0])
    else:
        structure, rendered = _render_structure(rng, mask, level, legacy_spacing(image_size))
        if seen is not None:
            structure = seen(structure, mask)
    return mask, structure, rendered, _other_pages(rng, mask, structure)
