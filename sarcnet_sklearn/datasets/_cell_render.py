"""One synthetic hiPSC-cardiomyocyte, drawn in micrometres and rendered at a chosen pixel size.

The geometry is physical: the cell's area and aspect ratio, its sarcomere length and every
correlation length of its texture are set in micrometres, so that the same cell rendered at
0.06, 0.12 or 0.24 um/px shows the same structures, only sampled more or less finely.
:func:`draw_cell` draws what a cell is (a :class:`CellDraw`); :func:`render_cell` renders its
mask, its alpha-actinin-2 plane and the other pages of an AICS single-cell TIFF, and returns
the ground truth the sarcomere measures are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage as ndi
from skimage.draw import ellipse

CELL_AREA_MEDIAN_UM2 = 900.0
"""Median cell area: real hiPSC-CMs at day 18-32 measure hundreds to thousands of um^2
(a real AICS-like single cell: 1,893 um^2; the cells of a real AICS-like field: 500-1,400)."""
CELL_AREA_SPREAD = 0.35
"""Standard deviation of the log of the cell area."""
CELL_AREA_BOUNDS_UM2 = (350.0, 2500.0)
ASPECT_BOUNDS = (1.5, 4.0)
"""Major / minor axis of the drawn ellipse (before its outline is perturbed)."""

SARCOMERE_LENGTH_UM = 1.8
"""Mean sarcomere length of a mature cell (hiPSC-CMs: about 1.6-2.0 um; shorter when immature)."""
SARCOMERE_LENGTH_SD_UM = 0.08
SARCOMERE_LENGTH_BOUNDS_UM = (1.55, 2.05)
_IMMATURE_SHORTENING_UM = 0.06
"""Sarcomeres are this much shorter per organization level below 5."""

PSF_SIGMA_UM = 0.12
"""Standard deviation of the microscope's point spread function (a 63x oil objective)."""
REFERENCE_PIXEL_UM = 0.12
"""The pixel size at which the noise levels are set."""
MARGIN_UM = 2.0
"""Background around the cell in its image."""

CLASSES = (
    "Frac_Area_Background",
    "Frac_Area_DiffuseOthers",
    "Frac_Area_Fibers",
    "Frac_Area_Disorganized_Puncta",
    "Frac_Area_Organized_Puncta",
    "Frac_Area_Organized_ZDisks",
)
"""The Set 3 pattern classes, in the order of the rows of the tables below."""
SARCOMERIC_CLASSES = (4, 5)
"""Classes with the sarcomere period along the myofibril direction (organized puncta,
z-discs): the ground truth of the sarcomere length and the orientation order."""

# Composition (fraction of cell area per class) at integer levels 1..5, interpolated linearly.
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
_HAZE = 0.8
_DIRECTION_SD_DEG = 30.0
"""Spread of myofibril directions around the cell's shape in disorganized cells."""


@dataclass(frozen=True)
class CellDraw:
    """What a synthetic cell is, in micrometres, independent of the pixel size.

    Attributes
    ----------
    level : float
        Latent organization level in [1, 5].
    area_um2 : float
        Target area of the cell.
    aspect : float
        Major / minor axis of its ellipse.
    angle : float
        Direction of its long axis, radians from the row axis.
    harmonics : ndarray of shape (4, 2)
        Amplitude and phase of the 2nd-5th harmonics perturbing its outline.
    sarcomere_length_um : float
        Z-disc to Z-disc distance.
    seed : int
        Seed of the texture (the same at every pixel size).
    """

    level: float
    area_um2: float
    aspect: float
    angle: float
    harmonics: np.ndarray
    sarcomere_length_um: float
    seed: int


def draw_cell(rng: np.random.Generator, level: float) -> CellDraw:
    """Draw a cell of organization ``level``: its size, shape and sarcomere length."""
    area = float(np.clip(CELL_AREA_MEDIAN_UM2 * np.exp(rng.normal(0.0, CELL_AREA_SPREAD)),
                         *CELL_AREA_BOUNDS_UM2))
    aspect = float(np.clip(rng.uniform(1.5, 3.3) + 0.15 * (level - 3.0), *ASPECT_BOUNDS))
    harmonics = np.column_stack([rng.normal(0.0, 0.12 / np.arange(2, 6)),
                                 rng.uniform(0, 2 * np.pi, 4)])
    mean_length = SARCOMERE_LENGTH_UM - _IMMATURE_SHORTENING_UM * (5.0 - level)
    length = float(np.clip(rng.normal(mean_length, SARCOMERE_LENGTH_SD_UM),
                           *SARCOMERE_LENGTH_BOUNDS_UM))
    return CellDraw(float(level), area, aspect, float(rng.uniform(0.0, np.pi)), harmonics,
                    length, int(rng.integers(2**31)))


def _radius_at(cell: CellDraw, t: np.ndarray) -> np.ndarray:
    """The outline's radius (in units of the minor semi-axis) at ellipse angle ``t``."""
    radius = np.ones_like(t)
    for k, (amplitude, phase) in zip(range(2, 6), cell.harmonics, strict=True):
        radius += amplitude * np.cos(k * t + phase)
    return radius


def _frame(cell: CellDraw) -> tuple[float, np.ndarray]:
    """The scale (um per unit of the minor semi-axis) and the outline's top-left corner (um)
    in the cell's image, its bounding box starting at the margin."""
    t = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    radius = _radius_at(cell, t)
    x, y = cell.aspect * np.cos(t) * radius, np.sin(t) * radius
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # shoelace
    scale = float(np.sqrt(cell.area_um2 / area))
    rows = (x * np.cos(cell.angle) - y * np.sin(cell.angle)) * scale
    cols = (x * np.sin(cell.angle) + y * np.cos(cell.angle)) * scale
    return scale, np.array([rows.min(), cols.min()]), np.array([np.ptp(rows), np.ptp(cols)])


def cell_extent_um(cell: CellDraw) -> tuple[float, float]:
    """Height and width of the cell's image, in micrometres (outline plus margins)."""
    _, _, size = _frame(cell)
    return float(size[0] + 2 * MARGIN_UM), float(size[1] + 2 * MARGIN_UM)


def inside_cell(cell: CellDraw, rows_um: np.ndarray, cols_um: np.ndarray) -> np.ndarray:
    """Whether points of the cell's image (in micrometres) lie inside its outline."""
    scale, corner, _ = _frame(cell)
    r = (rows_um - MARGIN_UM + corner[0]) / scale
    c = (cols_um - MARGIN_UM + corner[1]) / scale
    x = r * np.cos(cell.angle) + c * np.sin(cell.angle)  # back to the ellipse frame
    y = -r * np.sin(cell.angle) + c * np.cos(cell.angle)
    t = np.arctan2(y, x / cell.aspect)
    return np.hypot(x / cell.aspect, y) <= _radius_at(cell, t)


def cell_mask(cell: CellDraw, pixel_size_um: float) -> np.ndarray:
    """The cell's mask at ``pixel_size_um``: the pixels whose centre lies inside its outline."""
    shape = tuple(int(np.ceil(side / pixel_size_um)) for side in cell_extent_um(cell))
    rows, cols = ((np.arange(n) + 0.5) * pixel_size_um for n in shape)
    return inside_cell(cell, rows[:, None], cols[None, :])


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian random field of unit standard deviation and correlation length ``sigma`` (px)."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


GRID_UM = 0.24
"""Everything smooth about a cell (its pattern regions, myofibril directions, random fields)
is drawn on a grid of this spacing, in micrometres, and interpolated to the pixels: the same
cell at any pixel size shows the same texture."""


def _interpolation(n_pixels: int, pixel_size_um: float, n_nodes: int):
    """Where pixel centres fall between grid nodes ``j * GRID_UM``: the node below each
    and the fraction of the way to the next."""
    position = np.minimum((np.arange(n_pixels) + 0.5) * pixel_size_um / GRID_UM, n_nodes - 1)
    below = np.minimum(np.floor(position).astype(int), n_nodes - 2)
    return below, (position - below)


def _linear(values: np.ndarray, below: np.ndarray, frac: np.ndarray, axis: int) -> np.ndarray:
    low = np.take(values, below, axis=axis)
    high = np.take(values, below + 1, axis=axis)
    frac = frac[:, None] if axis == 0 else frac[None, :]
    return low + frac * (high - low)


class _Grid:
    """A cell's physical grid: random fields drawn from one seed, interpolated to pixels."""

    def __init__(self, rng: np.random.Generator, cell: CellDraw, shape: tuple[int, int],
                 pixel_size_um: float):
        self.rng = rng
        self.pixel_size_um = pixel_size_um
        self.extent_um = cell_extent_um(cell)
        self.shape = tuple(scipy.fft.next_fast_len(int(np.ceil(side / GRID_UM)) + 2, real=True)
                           for side in self.extent_um)
        self.rows_um, self.cols_um = (np.arange(n) * GRID_UM for n in self.shape)
        self.mask = inside_cell(cell, self.rows_um[:, None], self.cols_um[None, :])
        self._to_rows = _interpolation(shape[0], pixel_size_um, self.shape[0])
        self._to_cols = _interpolation(shape[1], pixel_size_um, self.shape[1])

    def to_pixels(self, values: np.ndarray) -> np.ndarray:
        """Grid values linearly interpolated to the pixel centres."""
        return _linear(_linear(values, *self._to_rows, axis=0), *self._to_cols, axis=1)

    def smooth(self, sigma_um: float) -> np.ndarray:
        """A Gaussian random field of unit standard deviation, correlation length ``sigma_um``,
        on the grid."""
        # a periodic Gaussian filter of white noise, in the Fourier domain (any sigma, one cost)
        noise = scipy.fft.rfft2(self.rng.standard_normal(self.shape))
        field = scipy.fft.irfft2(ndi.fourier_gaussian(noise, sigma_um / GRID_UM,
                                                      n=self.shape[1]), s=self.shape)
        return (field - field.mean()) / (field.std() + 1e-12)

    def points(self, density_per_um2: float) -> tuple[np.ndarray, np.ndarray]:
        """A Poisson process over the image: positions (px) and gamma-distributed weights."""
        count = self.rng.poisson(density_per_um2 * self.extent_um[0] * self.extent_um[1])
        positions = self.rng.random((count, 2)) * np.array(self.extent_um) / self.pixel_size_um
        return positions, self.rng.gamma(3.0, 1.0 / 3.0, count)


def _band(coordinate: np.ndarray, width: float) -> np.ndarray:
    """Periodic Gaussian bands of ``width`` (in periods) at integer coordinates."""
    offset = coordinate - np.round(coordinate)
    return np.exp(-0.5 * (offset / width) ** 2)


def _sampled_band(coordinate: np.ndarray, width: float, period_px: float) -> np.ndarray:
    """:func:`_band` as a pixel of the camera sees it: each band widened by the pixel's own
    extent (about 0.5 px) and dimmed so that its integral stays the same, so that a pattern
    near the sampling limit fades instead of aliasing into a coarser false pattern."""
    sampled = float(np.hypot(width, 0.5 / period_px))
    return _band(coordinate, sampled) * (width / sampled)


def _myofibrils(grid: _Grid, cell: CellDraw):
    """On the grid: axial ``p`` and lateral ``q`` coordinates (in periods) of a patchy
    myofibril lattice.

    A few patches, centred at points of the cell, each run along the cell's shape near their
    centre (the major axis of the cell within 10 um), turned by ``(1 - a) N(0, 30 deg)`` and
    shifted by ``(1 - a) U(0, 1)`` periods with ``a = clip(level - 4, 0, 1)``, blended smoothly.
    """
    rng, length = grid.rng, cell.sarcomere_length_um
    align = float(np.clip(cell.level - 4.0, 0.0, 1.0))
    rows, cols = np.meshgrid(grid.rows_um, grid.cols_um, indexing="ij")
    n_patches = int(rng.integers(4, 8))
    inside = np.argwhere(grid.mask) * GRID_UM
    centres = inside[rng.choice(len(inside), n_patches, replace=False)]
    dist = np.stack([np.hypot(rows - r, cols - c) for r, c in centres])
    weights = np.exp(-(dist - dist.min(axis=0)) / (0.25 * length))
    weights /= weights.sum(axis=0)
    common_phase = rng.uniform()
    p = np.zeros(grid.shape)
    q = np.zeros(grid.shape)
    angles = np.empty(n_patches)
    for k, centre in enumerate(centres):
        near = inside[np.hypot(*(inside - centre).T) <= 10.0]
        cov = np.cov(near.T) if len(near) > 2 else np.eye(2)
        follow = 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
        angles[k] = follow + (1.0 - align) * rng.normal(0.0, np.deg2rad(_DIRECTION_SD_DEG))
        phase = common_phase + (1.0 - align) * rng.uniform()
        along = rows * np.cos(angles[k]) + cols * np.sin(angles[k])
        across = -rows * np.sin(angles[k]) + cols * np.cos(angles[k])
        p += weights[k] * (along / length + phase)
        q += weights[k] * (across / (1.3 * length) + rng.uniform())
    return p, q


@dataclass(frozen=True)
class RenderedCell:
    """A rendered cell: its pages and its ground truth.

    Attributes
    ----------
    mask : ndarray of bool
    structure : ndarray of uint8
        The alpha-actinin-2 plane, auto-contrasted inside the cell, 0 outside.
    rendered : ndarray of shape (6,)
        Fraction of the cell's area drawn in each class of :data:`CLASSES`.
    sarcomere_length_um : float
        The period drawn.
    orientation_order : float
        Order parameter of the directions drawn, ``|sum w exp(2 i theta)| / sum w`` over the
        cell, ``theta`` the direction of the lattice's local wavevector and ``w`` the squared
        amplitude of the sarcomeric classes' pattern (its local power, as a spectrum weighs
        it) where the local period is within 15 % of the sarcomere length (NaN without any).
    grid : _Grid
        The cell's physical grid (for the other pages).
    """

    mask: np.ndarray
    structure: np.ndarray
    rendered: np.ndarray
    sarcomere_length_um: float
    orientation_order: float
    grid: _Grid


def render_cell(cell: CellDraw, pixel_size_um: float, *, no_signal: bool = False) -> RenderedCell:
    """Render ``cell`` at ``pixel_size_um``: mask, alpha-actinin-2 plane and ground truth.

    Everything but the pixel noise is drawn in micrometres from ``cell.seed`` (see
    :data:`GRID_UM`), so the same cell at another pixel size shows the same pattern.
    """
    rng = np.random.default_rng(cell.seed)
    mask = cell_mask(cell, pixel_size_um)
    shape = mask.shape
    grid = _Grid(rng, cell, shape, pixel_size_um)
    if no_signal:
        noise = rng.poisson(4.0, shape) + rng.normal(0.0, 1.5, shape)
        structure = np.where(mask, np.clip(noise, 0, 15), 0).round().astype(np.uint8)
        return RenderedCell(mask, structure, np.array([0.9, 0.1, 0, 0, 0, 0]), np.nan, np.nan,
                            grid)
    level, length = cell.level, cell.sarcomere_length_um
    spacing = length / pixel_size_um
    p_grid, q_grid = _myofibrils(grid, cell)
    p, q = grid.to_pixels(p_grid), grid.to_pixels(q_grid)

    # pattern classes: contiguous regions, by ranking a smooth field inside the cell
    base = np.array([np.interp(level, np.arange(1, 6), _COMPOSITION[:, c]) for c in range(6)])
    composition = rng.dirichlet(base * 60.0 + 0.05)
    region_field = grid.smooth(2.0 * length)
    inside_values = np.sort(region_field[grid.mask])
    ranks = (np.cumsum(composition)[:-1] * len(inside_values)).astype(int)
    classes = np.searchsorted(inside_values[np.clip(ranks, 0, len(inside_values) - 1)],
                              region_field)
    rendered = np.bincount(classes[grid.mask], minlength=6) / grid.mask.sum()
    blend = 0.4 * length / GRID_UM
    class_weights = [ndi.gaussian_filter((classes == c).astype(float), blend) for c in range(6)]

    lattice_gaps = grid.to_pixels((grid.smooth(0.6 * length) > -0.4).astype(float))
    fibril_breaks = np.clip(0.75 + 0.5 * grid.to_pixels(grid.smooth(length)), 0.15, 1.0)
    zdiscs = (_sampled_band(p, 0.12, spacing)
              * (0.15 + 0.85 * _sampled_band(q, 0.22, 1.3 * spacing)) * fibril_breaks)
    # fibers (continuous lines) and organized puncta, irregularly spaced across the direction
    wobble = 0.6 * grid.to_pixels(grid.smooth(2.0 * length))
    fibers = (_sampled_band((q + wobble) / 0.6, 0.12, 0.78 * spacing)
              * np.clip(0.7 + 0.3 * grid.to_pixels(grid.smooth(length)), 0, 1))
    organized = (_sampled_band(p, 0.12, spacing)
                 * _sampled_band((q - wobble) / 0.6, 0.15, 0.78 * spacing) * lattice_gaps)
    positions, amplitudes = grid.points((0.10 + 0.06 * (level - 1.0)) / length**2)
    points = np.zeros(shape)
    r, c = (np.minimum(positions[:, k].astype(int), shape[k] - 1) for k in (0, 1))
    np.add.at(points, (r, c), amplitudes)
    # Z-bodies: punctate aggregates, larger in immature cells (0.15-0.35 um)
    sigma_dot = max(0.7, (0.15 + 0.2 * (5.0 - level) / 4.0) / pixel_size_um)
    disorganized = ndi.gaussian_filter(points, sigma_dot) * (2 * np.pi * sigma_dot**2)
    diffuse = np.clip(0.6 + 0.3 * grid.to_pixels(grid.smooth(1.5 * length)), 0.0, None)
    patterns = (1.0, diffuse, fibers, disorganized, organized, zdiscs)

    image = np.zeros(shape)
    for c, pattern in enumerate(patterns):
        image += grid.to_pixels(class_weights[c]) * _CLASS_BRIGHTNESS[c] * pattern
    haze = ndi.gaussian_filter(grid.mask.astype(float), length / GRID_UM)
    image += 0.05 + _HAZE * (5.0 - level) / 4.0 * grid.to_pixels(haze)
    illumination = np.exp(0.25 * grid.smooth(3.0 * length))
    image *= grid.to_pixels(illumination)
    image = ndi.gaussian_filter(image, max(0.5, PSF_SIGMA_UM / pixel_size_um))
    # shot noise of a fixed number of photons per um^2 (80-300 per pixel of 0.12 um at full
    # brightness): finer pixels are noisier each, and as noisy as coarser ones once averaged
    photons = rng.uniform(80.0, 300.0) * (pixel_size_um / REFERENCE_PIXEL_UM) ** 2
    read_noise = 0.015 * REFERENCE_PIXEL_UM / pixel_size_um
    image = rng.poisson(image * photons) / photons + rng.normal(0.0, read_noise, shape)

    # The truth: the local wavevector of the drawn lattice (the gradient of p), where its period
    # is within 15 % of the sarcomere length (blends of patches with other periods are not
    # sarcomeric), weighted by the power of the sarcomeric classes' pattern.
    grad_r, grad_c = np.gradient(p_grid, GRID_UM)
    near_period = np.abs(np.hypot(grad_r, grad_c) * length - 1.0) <= 0.15
    sarcomeric = sum(class_weights[c] * _CLASS_BRIGHTNESS[c] for c in SARCOMERIC_CLASSES)
    weight = ((sarcomeric * illumination) ** 2 * near_period)[grid.mask]
    direction = np.arctan2(grad_c, grad_r)[grid.mask]
    order = (abs(np.sum(weight * np.exp(2j * direction))) / weight.sum()
             if weight.sum() > 0 else np.nan)
    return RenderedCell(mask, autocontrast(image, mask), rendered, length, float(order), grid)


def autocontrast(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Stretch the in-cell 0.5-99.8 percentiles to 0-255; 0 outside the cell."""
    lo, hi = np.percentile(image[mask], [0.5, 99.8])
    scaled = np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0
    return np.where(mask, np.round(scaled), 0).astype(np.uint8)


def fish_spots(rng: np.random.Generator, mask: np.ndarray, mean_count: float, sigma: float):
    inside = np.argwhere(mask)
    count = min(len(inside), int(rng.poisson(mean_count)))
    points = np.zeros(mask.shape)
    chosen = inside[rng.choice(len(inside), count, replace=False)]
    points[chosen[:, 0], chosen[:, 1]] = rng.uniform(0.5, 1.0, count)
    image = ndi.gaussian_filter(points, sigma) * (2 * np.pi * sigma**2)
    image += 0.08 * mask + rng.normal(0.0, 0.02, mask.shape)
    return image


def _to_uint8(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.9])
    return (np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255).round().astype(np.uint8)


def other_pages(rng: np.random.Generator, cell: RenderedCell,
                pixel_size_um: float) -> list[np.ndarray]:
    """Bright field, FISH 561/638, nuclear dye and the 488/561/638 segmentations."""
    mask, structure, grid = cell.mask, cell.structure, cell.grid
    shape = mask.shape
    spot = max(0.7, 0.12 / pixel_size_um)
    bright = (
        0.6
        + 0.08 * grid.to_pixels(grid.smooth(10.0))
        - 0.1 * ndi.gaussian_filter(mask.astype(float), 2.0)
        + 0.04 * rng.standard_normal(shape)
    )
    fish_561 = fish_spots(rng, mask, 20.0, spot)
    fish_638 = fish_spots(rng, mask, 10.0, spot)
    nuclei = np.zeros(shape)
    nucleus_px = 5.0 / pixel_size_um  # a nucleus is about 10 um across
    inside = np.argwhere(ndi.distance_transform_edt(mask) > nucleus_px)
    if len(inside) == 0:
        inside = np.argwhere(mask)
    for _ in range(1 + int(rng.random() < 0.1)):
        r, c = inside[rng.integers(len(inside))]
        rr, cc = ellipse(r, c, nucleus_px * rng.uniform(0.8, 1.2),
                         nucleus_px * rng.uniform(0.8, 1.2), shape,
                         rotation=rng.uniform(0, np.pi))
        nuclei[rr, cc] = 1.0
    nuclei = ndi.gaussian_filter(nuclei * mask, 1.5) + rng.normal(0.0, 0.02, shape)
    return stack_other_pages(mask, structure, bright, fish_561, fish_638, nuclei)


def stack_other_pages(mask: np.ndarray, structure: np.ndarray, bright: np.ndarray,
                      fish_561: np.ndarray, fish_638: np.ndarray,
                      nuclei: np.ndarray) -> list[np.ndarray]:
    """The AICS file's pages besides the structure and the cell mask, as uint8: bright field,
    FISH 561/638, nuclear dye and the 488/561/638 segmentations."""
    fish_561, fish_638 = _to_uint8(fish_561), _to_uint8(fish_638)
    seg = [
        ((structure > np.percentile(structure[mask], 60)) & mask),
        (fish_561 > 128) & mask,
        (fish_638 > 128) & mask,
    ]
    return [
        _to_uint8(bright),
        fish_561,
        fish_638,
        _to_uint8(nuclei),
        *[s.astype(np.uint8) * 255 for s in seg],
    ]
