"""A synthetic stand-in for the AICS hiPSC-cardiomyocyte dataset, written in its Quilt layout."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from .._columns import PIXEL_SIZE_UM
from .._console import progress_bar
from .._pixel_size import write_tiff_with_pixel_size
from .._validation import check_pixel_size_um
from ..features import cell_morphology, extract_protocol1
from . import _acquisition
from ._aics import (
    COHORTS,
    FEATURES_DIR,
    FIELDS_DIR,
    IMAGE_DIR,
    SET3_TABLE_COLUMNS,
    TABLE_PIXEL_SIZE_COLUMN,
)
from ._cell_render import draw_cell, other_pages, render_cell
from ._legacy_cell import render_scaled_cell

__all__ = ["make_synthetic_aics"]

MARKER_FILE = ".sarcnet_synthetic.json"
"""File that marks a folder as written by :func:`make_synthetic_aics` (safe to overwrite)."""

CLASSES = SET3_TABLE_COLUMNS
"""Set 3 columns, in the order of the rendered pattern classes."""

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

TRUTH_COLUMNS = ["synthetic_level", "synthetic_sarcomere_length_um",
                 "synthetic_orientation_order", TABLE_PIXEL_SIZE_COLUMN]
"""Extra columns of the features table (ignored by the loader): the latent level, the
sarcomere length and orientation order drawn, and the pixel size rendered at."""


def make_synthetic_aics(
    root: str | PathLike,
    n_cells: int = 300,
    image_size: int | None = None,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    progress: bool | None = None,
    *,
    pixel_size_um: float | Sequence[float] | None = None,
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
    image_size : int, optional
        Render *scaled* cells instead (the first generator's, :mod:`._legacy_cell`):
        each fills an image of about this many pixels (height and width within
        +-25 %), its z-discs ``16 px * min(1, image_size / 128)`` apart, its pixels
        counted as 0.12 um. Not real geometry: for quick CPU tests and demos whose
        32-64 px networks must see the striation (at real geometry a 64 px image
        holds a cell at 0.6-0.8 um/px, near the sarcomeres' sampling limit). Give
        this or ``pixel_size_um``, not both.
    random_state : int or None, default=0
        Seed; the same seed gives the same files whatever ``n_jobs``.
    n_jobs : int or None, default=None
        Cells rendered in parallel with joblib; ``None`` means 1, ``-1`` all cores.
    progress : bool or None, default=None
        Show a tqdm progress bar; ``None`` shows one when ``n_cells > 500``.
    pixel_size_um : float or sequence of float, optional
        Micrometres per pixel of the images; default 0.12 (the AICS images') unless
        ``image_size`` is given. The cells are drawn in micrometres, so their
        geometry does not depend on it; only the sampling does (0.24-0.5 um/px
        renders quickly). Several values render the cells at each in turn (cell
        ``i`` at ``pixel_size_um[i % len(pixel_size_um)]``): training data for a
        model that scores fields of those pixel sizes alike (a model trained at one
        pixel size scores a coarser image's cells differently: the coarser image
        lacks the finer detail its texture features saw; see
        ``benchmarks/RESULTS.md``, "Physical units").

    Returns
    -------
    root : pathlib.Path
        The folder written.

    Raises
    ------
    ValueError
        When ``root`` is a file, or a non-empty folder that this function did not
        write; nothing is overwritten then. Also for ``n_cells < 1``,
        ``image_size < 16``, an implausible ``pixel_size_um`` or both given.

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

    **Cell geometry, in micrometres** (:mod:`._cell_render`). The area is
    log-normal around 900 um^2 (sd of the log 0.35, clipped to 350-2,500 um^2:
    real hiPSC-CMs at day 18-32 measure hundreds to thousands of um^2); the
    outline an ellipse of aspect ratio 1.5-4 (a little more elongated at high
    ``z``) with random low-order harmonic perturbations of its radius and a
    random orientation; the image is its bounding box plus 2 um on each side.
    The sarcomere length is drawn from ``N(1.8 - 0.06 (5 - z), 0.08)`` um,
    clipped to 1.55-2.05 um (hiPSC-CMs: 1.6-2.0 um, shorter when immature).
    Everything smooth (pattern regions, directions, random fields) is drawn on a
    0.24 um grid from the cell's own seed and interpolated to the pixels, so the
    same cell rendered at another pixel size shows the same pattern.

    **Structure page** (page 1). The cell is cut into contiguous regions of six
    pattern classes (background, diffuse, fibers, disorganized puncta,
    organized puncta, z-discs) by ranking a smooth random field (correlation
    length two sarcomeres); the fraction of the area given to each class is
    interpolated in ``z`` from a table (level 1: mostly sparse disorganized
    puncta and diffuse signal; 2: denser puncta, a part of them organized on a
    sarcomere lattice; 3: fibers, organized puncta and some z-discs; 4-5: mostly
    z-discs) and jittered per cell (Dirichlet). Region borders are blended over
    0.4 sarcomere. Sarcomeric patterns follow a local myofibril direction and
    phase, defined on 4-7 patches blended smoothly: each patch runs along the
    cell's shape near its centre (the major axis of the cell within 10 um),
    turned by ``(1 - a) * N(0, 30 deg)`` and shifted by ``(1 - a) * U(0, 1)``
    periods with alignment ``a = clip(z - 4, 0, 1)``, so level 4 has z-discs in
    patches with their own directions and phases and level 5 z-discs in register
    across the whole cell. Z-discs are narrow Gaussian bands perpendicular to
    the local direction, broken laterally into myofibrils; fibers are continuous
    lines along the direction and organized puncta dots on the sarcomere
    lattice with gaps, both irregularly spaced across it; disorganized puncta
    are Gaussian dots (Z-bodies, sigma 0.15-0.35 um, larger in immature cells) at
    random positions whose density grows with ``z``;
    diffuse signal is a smooth field. Bands narrower than a pixel are widened
    and dimmed as a camera pixel would average them (no aliasing at coarse pixel
    sizes). A diffuse cytoplasmic haze of ``0.8 (5 - z) / 4`` (unincorporated
    alpha-actinin, strongest in immature cells) is added over the cell. The
    image is then multiplied by a smooth illumination field, blurred by the
    point spread function (sigma 0.12 um), given Poisson shot noise (80-300
    photons per 0.12 um pixel at full brightness) and Gaussian read noise, set to
    0 outside the mask, and auto-contrasted to uint8 inside the cell (0.5-99.8
    percentiles). Then the field's acquisition is applied: a defocus blur (0-1.2
    px at 128 px, scaled to the cell's image), a haze over the cell (0-40 % of the
    signal range), shot noise at the field's brightness (log-normal, sd 0.5) and
    the same auto-contrast again (:func:`._acquisition.apply_acquisition`).
    No-signal cells hold weak noise only (values about 0-15).

    **Other pages.** 0: bright field (smooth background plus texture, the cell
    slightly darker); 2 and 3: FISH 561 / 638, Gaussian spots at random
    positions in the cell; 4: nuclear dye, one or two blurred ellipses about
    10 um across; 5-7: segmentations (0/255) of pages 1-3 by thresholding. All
    pages are uint8 and written in one zlib-compressed 10-page TIFF whose
    resolution tags give the pixel size (pixels per centimetre, a unit every TIFF
    reader knows).

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
      ``napariCell_AreaShape_MajorAxisLength``: area and axis lengths of the mask
      (:func:`sarcnet_sklearn.features.cell_morphology`) in pixels of 0.12 um,
      the AICS tables' unit, whatever the pixel size rendered at.
    - ``Maximum_Coefficient_Variation``, ``Peak_Height``, ``Peak_Distance``:
      :func:`sarcnet_sklearn.features.extract_protocol1` on the written structure
      page and mask, its texture measured at 0.12 um/px (the AICS images'), the
      distance in pixels of 0.12 um.
    - ``Frac_Area_*`` (Set 3): the rendered fraction of the cell's area in each
      class, passed through a confusion matrix of a simulated patch classifier
      (which confuses neighbouring classes and cannot see global alignment),
      multiplied by log-normal noise (sd 0.55) and renormalized to sum to 1.
    - ``cell_age``: 18 or 32. ``mh_structure_org_score``,
      ``kg_structure_org_score``: the simulated experts (0 for no signal).
    - ``no_structure`` (``fish_2`` only): 0 for no-signal cells, NaN otherwise.
    - ``synthetic_level``: the latent ``z`` (NaN for no-signal cells),
      ``synthetic_sarcomere_length_um`` and ``synthetic_orientation_order``: the
      period and the order parameter of the directions drawn (the ground truth of
      :func:`~sarcnet_sklearn.features.measure_sarcomeres`; NaN for no-signal
      cells): extra, ignored by the loader; ``synthetic_pixel_size_um``: the pixel
      size rendered at (0.12 for cells of ``image_size`` pixels), which
      :func:`load_aics` gives as the ``pixel_size`` column.

    **Metadata table columns** (rows in a different, shuffled order):
    ``napariCell_ObjectNumber``, ``original_fov_location`` (= ``fov_path``),
    ``rescaled_2D_single_cell_tiff_path`` (relative,
    ``rescaled_2D_single_cell_tiff_path/<hash>_<fov>_cell<k>.tiff``), ``Age``
    (= ``cell_age``) and ``Dataset`` (the cohort name).

    Examples
    --------
    >>> import tempfile
    >>> from sarcnet_sklearn.datasets import make_synthetic_aics
    >>> root = make_synthetic_aics(tempfile.mkdtemp(), n_cells=20, pixel_size_um=0.5)
    >>> sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:2]
    ['2d_autocontrasted_fields_and_single_cells_fish_1', '2d_autocontrasted_fields_and_single_cells_fish_2']
    """  # noqa: E501
    n_cells = int(n_cells)
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    pixel_size_um = _pixel_size(image_size, pixel_size_um)
    root = Path(root)
    _prepare_root(root)

    seed_seq = np.random.SeedSequence(random_state)
    rng = np.random.default_rng(seed_seq)
    cells = _draw_cells(rng, n_cells)
    tag = hashlib.sha1(json.dumps([seed_seq.entropy, n_cells, image_size if pixel_size_um is None
                                   else pixel_size_um]).encode()).hexdigest()
    sizes = pixel_size_um if isinstance(pixel_size_um, list) else [pixel_size_um]
    for row in cells:
        row["file_name"] = f"{tag[:24]}_{Path(row['fov_path']).stem}_cell{row['object']}.tiff"
    for cohort in COHORTS:
        (root / FEATURES_DIR.format(cohort=cohort)).mkdir(parents=True, exist_ok=True)
        (root / FIELDS_DIR.format(cohort=cohort) / IMAGE_DIR).mkdir(parents=True, exist_ok=True)

    cell_seeds = seed_seq.spawn(n_cells)
    base = root.absolute()  # worker processes may have another working folder
    jobs = (
        delayed(_make_cell)(
            cell_seeds[i],
            cells[i]["level"],
            cells[i]["no_signal"],
            sizes[i % len(sizes)],
            image_size,
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
                **{name: [measured[i][name] for i in idx] for name in measured[0]
                   if name not in TRUTH_COLUMNS},
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
        for name in TRUTH_COLUMNS[1:]:
            features[name] = [measured[i][name] for i in idx]
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
                "pixel_size_um": pixel_size_um,
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


def _pixel_size(image_size: int | None,
                pixel_size_um: float | Sequence[float] | None) -> float | list[float] | None:
    """The pixel size to render at (default 0.12; a list of several), or None for scaled
    cells (``image_size``)."""
    if image_size is not None and pixel_size_um is not None:
        raise ValueError("give image_size or pixel_size_um, not both")
    if image_size is not None:
        if int(image_size) < 16:
            raise ValueError(f"image_size must be at least 16, got {image_size}")
        return None
    if pixel_size_um is None:
        return PIXEL_SIZE_UM
    if np.ndim(pixel_size_um) == 0:
        return check_pixel_size_um(pixel_size_um, "pixel_size_um")
    sizes = [check_pixel_size_um(size, f"pixel_size_um[{i}]")
             for i, size in enumerate(pixel_size_um)]
    if not sizes:
        raise ValueError("pixel_size_um is an empty sequence; give one pixel size or more")
    return sizes[0] if len(sizes) == 1 else sizes


def _classifier_fractions(rng: np.random.Generator, rendered: np.ndarray) -> np.ndarray:
    """Set 3 as an imperfect patch classifier would report it."""
    reported = rendered @ _CONFUSION
    reported = reported * np.exp(rng.normal(0.0, 0.55, reported.shape)) + 1e-4
    return reported / reported.sum()


def _make_cell(
    seed: np.random.SeedSequence,
    level: float,
    no_signal: bool,
    pixel_size_um: float | None,
    image_size: int | None,
    path: Path,
    acquisition: dict[str, float] | None = None,
) -> dict[str, float]:
    """Draw and render one cell, write its TIFF to ``path`` and return its measured features
    (in the AICS tables' units: pixels of 0.12 um) and its ground truth.

    ``acquisition``: its field's imaging (:func:`._acquisition.apply_acquisition`).
    """
    rng = np.random.default_rng(seed)
    if pixel_size_um is None:  # the scaled cell of quick tests: pixels count as 0.12 um
        field_acquisition = None if no_signal else acquisition
        mask, structure, rendered, others = render_scaled_cell(
            rng, level, no_signal, image_size,
            seen=None if field_acquisition is None else (
                lambda page, mask: _acquisition.apply_acquisition(
                    rng, page, mask, field_acquisition, image_size)))
        truth = {"synthetic_sarcomere_length_um": np.nan, "synthetic_orientation_order": np.nan}
        pixel_size_um, texture = PIXEL_SIZE_UM, None
    else:
        cell = render_cell(draw_cell(rng, level), pixel_size_um, no_signal=no_signal)
        mask, structure, rendered = cell.mask, cell.structure, cell.rendered
        if acquisition is not None and not no_signal:
            side = int(np.sqrt(mask.shape[0] * mask.shape[1]))  # the image's scale, in pixels
            structure = _acquisition.apply_acquisition(rng, structure, mask, acquisition, side)
            cell = dataclasses.replace(cell, structure=structure)
        others = other_pages(rng, cell, pixel_size_um)
        truth = {"synthetic_sarcomere_length_um": cell.sarcomere_length_um,
                 "synthetic_orientation_order": cell.orientation_order}
        texture = PIXEL_SIZE_UM
    bright, fish_561, fish_638, nuclei, seg_488, seg_561, seg_638 = others
    mask_page = mask.astype(np.uint8) * 255
    pages = [bright, structure, fish_561, fish_638, nuclei, seg_488, seg_561, seg_638,
             255 - mask_page, mask_page]
    write_tiff_with_pixel_size(path, np.stack(pages), pixel_size_um)

    in_aics_pixels = pixel_size_um / PIXEL_SIZE_UM
    morphology = cell_morphology(mask)
    protocol1 = extract_protocol1(structure, mask, pixel_size=pixel_size_um,
                                  texture_pixel_size=texture)
    fractions = _classifier_fractions(rng, rendered)
    return {
        "napariCell_AreaShape_Area": morphology["area"] * in_aics_pixels**2,
        "napariCell_AreaShape_MinorAxisLength": morphology["axis_minor_length"] * in_aics_pixels,
        "napariCell_AreaShape_MajorAxisLength": morphology["axis_major_length"] * in_aics_pixels,
        **{name: float(value) for name, value in zip(CLASSES, fractions, strict=True)},
        "Maximum_Coefficient_Variation": float(protocol1["max_coefficient_variation"]),
        "Peak_Height": float(protocol1["peak_height"]),
        "Peak_Distance": float(protocol1["peak_distance"]) / PIXEL_SIZE_UM,
        **truth,
        TABLE_PIXEL_SIZE_COLUMN: pixel_size_um,
    }
