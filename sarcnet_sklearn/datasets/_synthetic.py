"""A synthetic stand-in for the AICS hiPSC-cardiomyocyte dataset, written in its Quilt layout."""

from __future__ import annotations

import functools
import hashlib
import json
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from joblib import Parallel, delayed
from scipy import ndimage as ndi
from skimage.draw import ellipse, polygon
from skimage.measure import regionprops

from .._console import progress_bar
from ..features import extract_protocol1
from . import _acquisition
from ._aics import COHORTS, FEATURES_DIR, FIELDS_DIR, IMAGE_DIR, SET3_TABLE_COLUMNS

__all__ = ["make_synthetic_aics"]

MARKER_FILE = ".sarcnet_synthetic.json"
"""File that marks a folder as written by :func:`make_synthetic_aics` (safe to overwrite)."""

CLASSES = SET3_TABLE_COLUMNS
"""Set 3 columns, in the order of the rendered pattern classes."""

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

# Confusion of the simulated Set 3 patch classifier: row = rendered class, column = reported class.
_CONFUSION = np.array(
    [
        [0.80, 0.20, 0.00, 0.00, 0.00, 0.00],
        [0.20, 0.60, 0.05, 0.15, 0.00, 0.00],
        [0.00, 0.10, 0.55, 0.05, 0.10, 0.20],
        [0.00, 0.20, 0.00, 0.55, 0.25, 0.00],
        [0.00, 0.05, 0.05, 0.25, 0.40, 0.25],
        [0.00, 0.05, 0.15, 0.05, 0.25, 0.50],
    ]
)

EXPERT_FREQUENCIES = {
    "mh_structure_org_score": np.array([294, 710, 3875, 798, 94]),
    "kg_structure_org_score": np.array([116, 1012, 2983, 1527, 133]),
}
"""Counts of the real experts' scores 1..5 (``expert_scores.csv``), matched by the simulation."""

_LEVEL_BETA_MEAN = {18: 0.42, 32: 0.58}
_LEVEL_BETA_CONCENTRATION = 6.0
_EXPERT_NOISE_SD = 0.38
_NO_SIGNAL_RATE = 0.02

NATIVE_ZDISC_SPACING_PX = 16.0
"""Z-disc spacing at the native 0.12 um pixel size (about 1.9 um)."""
_SPACING_REFERENCE_SIZE = 128
_HAZE = 0.45


def make_synthetic_aics(
    root: str | PathLike,
    n_cells: int = 300,
    image_size: int = 128,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Write a synthetic AICS-like dataset in the exact layout of the real Quilt package.

    Each cell gets a latent, continuous organization level ``z`` in [1, 5]. Its
    alpha-actinin-2 image is rendered from ``z`` following the experts' rubric; two
    simulated experts score it from ``z`` with their own noise; and the 11
    Protocol-2 features are measured on the rendered image, so that images, features
    and scores relate to each other roughly as in the real data.

    Parameters
    ----------
    root : str or path-like
        Folder to write into; created if missing. It must be empty or hold a
        dataset written earlier by this function (which is then replaced).
    n_cells : int, default=300
        Number of cells, no-signal cells included; about 60 % go to cohort
        ``fish_1`` and 40 % to ``fish_2``.
    image_size : int, default=128
        Typical side of a single-cell image, in pixels; each image's height and
        width vary within about +-25 % of it.
    random_state : int or None, default=0
        Seed; the same seed gives the same files whatever ``n_jobs``.
    n_jobs : int or None, default=None
        Cells rendered in parallel with joblib; ``None`` means 1, ``-1`` all cores.
    progress : bool or None, default=None
        Show a tqdm progress bar; ``None`` shows one when ``n_cells > 500``.

    Returns
    -------
    root : pathlib.Path
        The folder written.

    Raises
    ------
    ValueError
        When ``root`` is a file, or a non-empty folder that this function did not
        write; nothing is overwritten then. Also for ``n_cells < 1`` or
        ``image_size < 16``.

    Notes
    -----
    Layout, for N in 1, 2 (cohort ``fish_N``)::

        2d_autocontrasted_single_cell_features_fish_N/features/<hash>_cp_features.csv
        2d_autocontrasted_fields_and_single_cells_fish_N/metadata.csv
        2d_autocontrasted_fields_and_single_cells_fish_N/rescaled_2D_single_cell_tiff_path/*.tiff

    plus a marker file ``.sarcnet_synthetic.json`` at the top holding the
    arguments. ``<hash>`` is a SHA-1 of the seed and arguments.

    **Fields of view and per-cell latent level.** Cells are imaged in fields of
    view of ``1 + Poisson(9)`` cells (median 10, as in the real labels), each with
    one day (``cell_age``, 18 or 32 with probability 1/2), plate and well
    (:mod:`._acquisition`). ``z = 1 + 4 * Beta(m * 6, (1 - m) * 6)`` with mean
    ``m`` 0.42 at day 18 and 0.58 at day 32, drawn through a Gaussian copula
    with correlation 0.2 within a field, so that cells of one field are alike
    (ICC(1) of the mean score by field about 0.25, as on the real labels) while
    each day's distribution of ``z`` is unchanged. About 2 % of cells (at least one per cohort of 10 cells
    or more) are no-signal cells.

    **Cell mask** (page 9, 255 inside; page 8 is its complement). A random
    polygon: an ellipse of aspect ratio 1.5-4 (a little more elongated at high
    ``z``), with random low-order harmonic perturbations of its radius and a
    random orientation, filled with :func:`skimage.draw.polygon`, smoothed with a
    Gaussian and thresholded. The image is about the cell's bounding box plus a
    margin: its size ``s = image_size * U(0.85, 1.15) * (1 + 0.04 (z - 3))``,
    its height and width follow the cell's extent but stay within
    ``[0.75, 1.25] * image_size``.

    **Structure page** (page 1). The cell is cut into contiguous regions of six
    pattern classes (background, diffuse, fibers, disorganized puncta,
    organized puncta, z-discs) by ranking a smooth random field; the fraction of
    the area given to each class is interpolated in ``z`` from a table (level 1:
    mostly sparse disorganized puncta and diffuse signal; 2: denser puncta, a
    part of them organized on a sarcomere lattice; 3: fibers, organized puncta
    and some z-discs; 4-5: mostly z-discs) and jittered per cell (Dirichlet).
    Region borders are blended over about half a z-disc spacing. Sarcomeric
    patterns follow a local myofibril direction and phase, defined on a few
    Voronoi patches blended smoothly: with alignment ``a = clip(z - 4, 0, 1)``,
    each patch direction deviates from the cell's long axis by
    ``(1 - a) * N(0, 30 deg)`` and its phase by ``(1 - a) * U(0, 1)`` periods, so
    level 4 has z-discs in patches with their own directions and phases and
    level 5 has z-discs in register across the whole cell. Z-discs are narrow
    Gaussian bands perpendicular to the local direction, broken laterally into
    short segments (myofibrils); their spacing is ``16 px * min(1, image_size /
    128)`` (at least 4 px) with a +-7 % per-cell jitter, i.e. the native 1.9 um
    at 0.12 um/px for images of 128 px or more, and ``image_size / 8`` for
    smaller ones, so that the pattern survives resizing to 48-64 px. Fibers are
    continuous lines along the local direction; organized puncta are dots on
    the sarcomere lattice with gaps; disorganized puncta are randomly placed
    Gaussian dots whose density grows with ``z``; diffuse signal is a smooth
    field. A diffuse cytoplasmic haze of ``0.45 (5 - z) / 4`` (unincorporated
    alpha-actinin, strongest in immature cells) is added over the cell. The
    image is then multiplied by a smooth illumination field, blurred (Gaussian
    point spread function), given Poisson shot noise (80-300 photons at full
    brightness) and Gaussian read noise, set to 0 outside the mask, and
    auto-contrasted to uint8 inside the cell (0.5-99.8 percentiles). Then the
    field's acquisition is applied: a defocus blur (0-1.2 px at 128 px), a haze
    over the cell (0-40 % of the signal range), shot noise at the field's
    brightness (log-normal, sd 0.5) and the same auto-contrast again
    (:func:`._acquisition.apply_acquisition`). No-signal cells hold weak noise
    only (values about 0-15).

    **Other pages.** 0: bright field (smooth background plus texture, the cell
    slightly darker); 2 and 3: FISH 561 / 638, Gaussian spots at random
    positions in the cell; 4: nuclear dye, one or two blurred ellipses; 5-7:
    segmentations (0/255) of pages 1-3 by thresholding. All pages are uint8 and
    written in one zlib-compressed 10-page TIFF.

    **Scores.** Each expert sees ``z + N(0, 0.38)`` and cuts it at fixed cut
    points chosen so that its marginal frequencies of 1..5 match the real
    expert's (``mh``: 294, 710, 3875, 798, 94; ``kg``: 116, 1012, 2983, 1527,
    133); this gives a Spearman correlation of about 0.65 between the experts
    (real: 0.655) and mean scores of about 2.8 at day 18 and 3.25 at day 32
    (real: 2.82, 3.30). No-signal cells score 0 for both experts.

    **Features table columns.**

    - ``napariCell_ObjectNumber``: 1, 2, ... within a field of view, ``fov_path``:
      ``/allen/aics/.../<plate>_63X_<date>_S<k>_P<j>_<well>.czi`` with plate
      5500000013 at day 18 and 5500000014 at day 32, one of 8 wells per plate.
    - ``napariCell_AreaShape_Area``, ``napariCell_AreaShape_MinorAxisLength``,
      ``napariCell_AreaShape_MajorAxisLength``: :func:`skimage.measure.regionprops`
      ``area``, ``axis_minor_length``, ``axis_major_length`` of the mask (pixels).
    - ``Maximum_Coefficient_Variation``, ``Peak_Height``, ``Peak_Distance``:
      :func:`sarcnet_sklearn.features.extract_protocol1` on the written structure
      page and mask, with ``pixel_size=1.0`` (pixels).
    - ``Frac_Area_*`` (Set 3): the rendered fraction of the cell's area in each
      class, passed through a confusion matrix of a simulated patch classifier
      (which confuses neighbouring classes and cannot see global alignment),
      multiplied by log-normal noise (sd 0.55) and renormalized to sum to 1.
    - ``cell_age``: 18 or 32. ``mh_structure_org_score``,
      ``kg_structure_org_score``: the simulated experts (0 for no signal).
    - ``no_structure`` (``fish_2`` only): 0 for no-signal cells, NaN otherwise.
    - ``synthetic_level``: the latent ``z`` (NaN for no-signal cells); extra,
      ignored by the loader.

    **Metadata table columns** (rows in a different, shuffled order):
    ``napariCell_ObjectNumber``, ``original_fov_location`` (= ``fov_path``),
    ``rescaled_2D_single_cell_tiff_path`` (relative,
    ``rescaled_2D_single_cell_tiff_path/<hash>_<fov>_cell<k>.tiff``), ``Age``
    (= ``cell_age``) and ``Dataset`` (the cohort name).

    Examples
    --------
    >>> import tempfile
    >>> from sarcnet_sklearn.datasets import make_synthetic_aics
    >>> root = make_synthetic_aics(tempfile.mkdtemp(), n_cells=20, image_size=48)
    >>> sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:2]
    ['2d_autocontrasted_fields_and_single_cells_fish_1', '2d_autocontrasted_fields_and_single_cells_fish_2']
    """  # noqa: E501
    n_cells = int(n_cells)
    image_size = int(image_size)
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size}")
    root = Path(root)
    _prepare_root(root)

    seed_seq = np.random.SeedSequence(random_state)
    rng = np.random.default_rng(seed_seq)
    cells = _draw_cells(rng, n_cells)
    tag = hashlib.sha1(json.dumps([seed_seq.entropy, n_cells, image_size]).encode()).hexdigest()
    for row in cells:
        row["file_name"] = f"{tag[:24]}_{Path(row['fov_path']).stem}_cell{row['object']}.tiff"
    for cohort in COHORTS:
        (root / FEATURES_DIR.format(cohort=cohort)).mkdir(parents=True, exist_ok=True)
        (root / FIELDS_DIR.format(cohort=cohort) / IMAGE_DIR).mkdir(parents=True, exist_ok=True)

    spacing = max(4.0, NATIVE_ZDISC_SPACING_PX * min(1.0, image_size / _SPACING_REFERENCE_SIZE))
    cell_seeds = seed_seq.spawn(n_cells)
    base = root.absolute()  # worker processes may have another working folder
    jobs = (
        delayed(_make_cell)(
            cell_seeds[i],
            cells[i]["level"],
            cells[i]["no_signal"],
            image_size,
            spacing,
            base / FIELDS_DIR.format(cohort=cells[i]["cohort"]) / IMAGE_DIR / cells[i]["file_name"],
            cells[i]["acquisition"],
        )
        for i in range(n_cells)
    )
    if progress is None:
        progress = n_cells > 500
    results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    measured = list(progress_bar(results, total=n_cells, show=progress, desc="synthetic cells"))

    for cohort_index, cohort in enumerate(COHORTS):
        idx = [i for i, c in enumerate(cells) if c["cohort"] == cohort]
        features = pd.DataFrame(
            {
                "napariCell_ObjectNumber": [cells[i]["object"] for i in idx],
                "fov_path": [cells[i]["fov_path"] for i in idx],
                **{name: [measured[i][name] for i in idx] for name in measured[0]},
                "cell_age": [cells[i]["day"] for i in idx],
                "mh_structure_org_score": [cells[i]["mh_structure_org_score"] for i in idx],
                "kg_structure_org_score": [cells[i]["kg_structure_org_score"] for i in idx],
            }
        )
        if cohort_index == 1:
            features["no_structure"] = [0.0 if cells[i]["no_signal"] else np.nan for i in idx]
        features["synthetic_level"] = [
            np.nan if cells[i]["no_signal"] else cells[i]["level"] for i in idx
        ]
        features.to_csv(
            root / FEATURES_DIR.format(cohort=cohort) / f"{tag[:32]}_cp_features.csv",
            index=False,
        )
        order = rng.permutation(len(idx))
        metadata = pd.DataFrame(
            {
                "napariCell_ObjectNumber": [cells[idx[j]]["object"] for j in order],
                "original_fov_location": [cells[idx[j]]["fov_path"] for j in order],
                "rescaled_2D_single_cell_tiff_path": [
                    f"{IMAGE_DIR}/{cells[idx[j]]['file_name']}" for j in order
                ],
                "Age": [cells[idx[j]]["day"] for j in order],
                "Dataset": cohort,
            }
        )
        metadata.to_csv(root / FIELDS_DIR.format(cohort=cohort) / "metadata.csv", index=False)

    (root / MARKER_FILE).write_text(
        json.dumps(
            {
                "generator": "sarcnet_sklearn.datasets.make_synthetic_aics",
                "n_cells": n_cells,
                "image_size": image_size,
                "random_state": random_state,
            }
        )
    )
    return root


def _prepare_root(root: Path) -> None:
    """Create ``root``, or empty it of a previous synthetic dataset; refuse anything else."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if not any(root.iterdir()):
        return
    if not (root / MARKER_FILE).is_file():
        raise ValueError(
            f"{root} is not empty and was not written by make_synthetic_aics; "
            "refusing to write into it (choose an empty or new folder)"
        )
    for cohort in COHORTS:
        patterns = [
            (root / FEATURES_DIR.format(cohort=cohort), "*_cp_features.csv"),
            (root / FIELDS_DIR.format(cohort=cohort), "metadata.csv"),
            (root / FIELDS_DIR.format(cohort=cohort) / IMAGE_DIR, "*.tiff"),
        ]
        for folder, pattern in patterns:
            if folder.is_dir():
                for path in folder.glob(pattern):
                    path.unlink()


@functools.cache
def _expert_cut_points() -> dict[str, np.ndarray]:
    """Cut points on ``z + noise`` giving each expert the real marginal frequencies."""
    rng = np.random.default_rng(20240607)
    n = 400_000
    levels = _sample_levels(rng, rng.choice([18, 32], size=n))
    cuts = {}
    for name, freq in EXPERT_FREQUENCIES.items():
        seen = levels + rng.normal(0.0, _EXPERT_NOISE_SD, n)
        cuts[name] = np.quantile(seen, np.cumsum(freq)[:-1] / freq.sum())
    return cuts


def _sample_levels(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    mean = np.where(days == 18, _LEVEL_BETA_MEAN[18], _LEVEL_BETA_MEAN[32])
    c = _LEVEL_BETA_CONCENTRATION
    return 1.0 + 4.0 * rng.beta(mean * c, (1.0 - mean) * c)


def _draw_cells(rng: np.random.Generator, n_cells: int) -> list[dict]:
    """Cohort, field of view, object number, day, level and expert scores of every cell."""
    n_fish_1 = int(round(0.6 * n_cells)) if n_cells > 1 else 1
    cells = _acquisition.draw_fields(
        rng, dict(zip(COHORTS, (n_fish_1, n_cells - n_fish_1), strict=True))
    )
    days = np.array([c["day"] for c in cells])
    fields = np.array([c["field_index"] for c in cells])
    levels = _acquisition.field_levels(
        rng, days, fields, _LEVEL_BETA_MEAN, _LEVEL_BETA_CONCENTRATION
    )
    imaging = _acquisition.draw_acquisition(rng, int(fields.max()) + 1)
    no_signal = np.zeros(n_cells, bool)
    cohorts = np.array([c["cohort"] for c in cells])
    for cohort in COHORTS:
        members = np.flatnonzero(cohorts == cohort)
        count = rng.binomial(len(members), _NO_SIGNAL_RATE)
        if len(members) >= 10:
            count = max(count, 1)
        no_signal[rng.choice(members, count, replace=False)] = True
    scores = {
        name: 1 + np.searchsorted(cuts, levels + rng.normal(0.0, _EXPERT_NOISE_SD, n_cells))
        for name, cuts in _expert_cut_points().items()
    }
    for i, cell in enumerate(cells):
        cell["acquisition"] = imaging[fields[i]]
        cell["level"] = float(levels[i])
        cell["no_signal"] = bool(no_signal[i])
        for name, values in scores.items():
            cell[name] = 0 if no_signal[i] else int(values[i])
    return cells


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
    return _autocontrast(image, mask), rendered


def _autocontrast(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Stretch the in-cell 0.5-99.8 percentiles to 0-255; 0 outside the cell."""
    lo, hi = np.percentile(image[mask], [0.5, 99.8])
    scaled = np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0
    return np.where(mask, np.round(scaled), 0).astype(np.uint8)


def _spots(rng: np.random.Generator, mask: np.ndarray, mean_count: float, sigma: float):
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
    fish_561 = _spots(rng, mask, 20.0, 1.0)
    fish_638 = _spots(rng, mask, 10.0, 1.0)
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


def _classifier_fractions(rng: np.random.Generator, rendered: np.ndarray) -> np.ndarray:
    """Set 3 as an imperfect patch classifier would report it."""
    reported = rendered @ _CONFUSION
    reported = reported * np.exp(rng.normal(0.0, 0.55, reported.shape)) + 1e-4
    return reported / reported.sum()


def _make_cell(
    seed: np.random.SeedSequence,
    level: float,
    no_signal: bool,
    image_size: int,
    spacing: float,
    path: Path,
    acquisition: dict[str, float] | None = None,
) -> dict[str, float]:
    """Render one cell, write its TIFF to ``path`` and return its measured features.

    ``acquisition``: its field's imaging (:func:`._acquisition.apply_acquisition`).
    """
    rng = np.random.default_rng(seed)
    mask = _cell_mask(rng, level, image_size)
    if no_signal:
        noise = rng.poisson(4.0, mask.shape) + rng.normal(0.0, 1.5, mask.shape)
        structure = np.where(mask, np.clip(noise, 0, 15), 0).round().astype(np.uint8)
        rendered = np.array([0.9, 0.1, 0.0, 0.0, 0.0, 0.0])
    else:
        structure, rendered = _render_structure(rng, mask, level, spacing)
        if acquisition is not None:
            structure = _acquisition.apply_acquisition(rng, structure, mask, acquisition,
                                                       image_size)
    bright, fish_561, fish_638, nuclei, seg_488, seg_561, seg_638 = _other_pages(
        rng, mask, structure
    )
    mask_page = mask.astype(np.uint8) * 255
    pages = [
        bright,
        structure,
        fish_561,
        fish_638,
        nuclei,
        seg_488,
        seg_561,
        seg_638,
        255 - mask_page,
        mask_page,
    ]
    tifffile.imwrite(path, np.stack(pages), compression="zlib", photometric="minisblack")

    props = regionprops(mask.astype(np.uint8))[0]
    protocol1 = extract_protocol1(structure, mask, pixel_size=1.0)
    fractions = _classifier_fractions(rng, rendered)
    return {
        "napariCell_AreaShape_Area": float(props.area),
        "napariCell_AreaShape_MinorAxisLength": float(props.axis_minor_length),
        "napariCell_AreaShape_MajorAxisLength": float(props.axis_major_length),
        **{name: float(value) for name, value in zip(CLASSES, fractions, strict=True)},
        "Maximum_Coefficient_Variation": float(protocol1["max_coefficient_variation"]),
        "Peak_Height": float(protocol1["peak_height"]),
        "Peak_Distance": float(protocol1["peak_distance"]),
    }
