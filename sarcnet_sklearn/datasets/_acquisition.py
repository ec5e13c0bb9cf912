"""Where synthetic cells were imaged: fields of view, wells and plates, and what they share.

Cells of one field of view share their well, plate, day and imaging, and their expert
scores are alike: on the real labels (original cohort) a median of 10 cells share a
field and the one-way intraclass correlation ICC(1) of the experts' mean score by field is
0.25. The synthetic writer (:func:`~sarcnet_sklearn.datasets.make_synthetic_aics`) places
its cells in fields with :func:`draw_fields`, draws their latent levels with a field effect
(:func:`field_levels`) and images each cell under its field's acquisition
(:func:`apply_acquisition`: brightness, background and focus).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import beta, norm

CELLS_PER_FIELD = 10
"""Median number of cells per field of view (real labels: 10)."""

FIELD_LEVEL_CORRELATION = 0.2
"""Correlation of two cells' latent levels within a field, beyond their day (Gaussian
copula): with the day and the experts' noise, the mean score's ICC(1) by field is about 0.25
(``tests/test_synthetic.py`` measures it)."""

PLATES = {18: "5500000013", 32: "5500000014"}
"""The real plates: day 18 and day 32."""
DATES = {18: "20190807", 32: "20190816"}
WELLS = ("B2", "B3", "C4", "C5", "D6", "D7", "E8", "E9")
"""Eight wells per plate (real: 16 wells on 2 plates)."""

BRIGHTNESS_SD = 0.5
"""Spread (log scale) of a field's photon count: brighter fields have less shot noise."""
BACKGROUND_RANGE = (0.0, 0.4)
"""A field's out-of-focus haze over the cell (brightest at its middle), as a fraction of the
cell's signal range: it lowers the contrast of the striations after the stretch."""
DEFOCUS_RANGE_PX = (0.0, 1.2)
"""Extra Gaussian blur of a field (focus), in pixels at a 128-px image (scaled with size)."""


def draw_fields(
    rng: np.random.Generator, cells_per_cohort: Mapping[str, int]
) -> list[dict]:
    """Place each cohort's cells in fields of view of about :data:`CELLS_PER_FIELD` cells.

    Each field has one day (18 or 32, at random), hence one plate, a well of that
    plate, and a file path in the AICS form
    ``/allen/aics/.../<plate>_63X_<date>_S<scene>_P<position>_<well>.czi``, unique
    over all cohorts; its cells are numbered 1, 2, ... A field holds
    ``1 + Poisson(CELLS_PER_FIELD - 1)`` cells (the last one of a cohort fewer).

    Returns
    -------
    cells : list of dict
        Per cell: ``cohort``, ``fov_path``, ``object``, ``day`` and ``field_index``
        (0, 1, ... over all fields).

    Examples
    --------
    >>> import numpy as np
    >>> cells = draw_fields(np.random.default_rng(0), {"fish_1": 30, "fish_2": 20})
    >>> len(cells), cells[0]["object"], cells[0]["fov_path"].endswith(".czi")
    (50, 1, True)
    """
    cells: list[dict] = []
    n_fields = 0
    for cohort, n in cells_per_cohort.items():
        while n > 0:
            k = min(n, 1 + int(rng.poisson(CELLS_PER_FIELD - 1)))
            day = int(rng.choice([18, 32]))
            scene, position = 1 + n_fields // 4, 1 + n_fields % 4
            well = WELLS[int(rng.integers(len(WELLS)))]
            fov_path = (
                f"/allen/aics/microscopy/synthetic/{cohort}/{PLATES[day]}_63X_{DATES[day]}"
                f"_S{scene}_P{position}_{well}.czi"
            )
            cells += [
                {"cohort": cohort, "fov_path": fov_path, "object": obj, "day": day,
                 "field_index": n_fields}
                for obj in range(1, k + 1)
            ]
            n_fields += 1
            n -= k
    return cells


def field_levels(
    rng: np.random.Generator,
    days: np.ndarray,
    field_index: np.ndarray,
    beta_mean: Mapping[int, float],
    concentration: float,
    correlation: float = FIELD_LEVEL_CORRELATION,
) -> np.ndarray:
    """Latent levels in [1, 5], alike within a field, each day's distribution unchanged.

    A cell's level is ``1 + 4 * Beta(m * c, (1 - m) * c)`` (``m`` its day's mean,
    ``c`` the concentration), drawn through a Gaussian copula: the Beta's
    quantile of ``Phi(sqrt(r) * f + sqrt(1 - r) * e)``, with ``f`` shared by the
    field and ``e`` the cell's own, both standard normal. Any ``r`` leaves each
    day's distribution of levels (hence the experts' score frequencies) as it was.

    Examples
    --------
    >>> import numpy as np
    >>> levels = field_levels(np.random.default_rng(0), np.array([18, 18, 32]),
    ...                       np.array([0, 0, 1]), {18: 0.42, 32: 0.58}, 6.0)
    >>> bool(((levels >= 1) & (levels <= 5)).all())
    True
    """
    days = np.asarray(days)
    field_index = np.asarray(field_index)
    shared = rng.standard_normal(int(field_index.max()) + 1 if len(field_index) else 0)
    own = rng.standard_normal(len(days))
    uniform = norm.cdf(np.sqrt(correlation) * shared[field_index]
                       + np.sqrt(1.0 - correlation) * own)
    mean = np.array([beta_mean[int(day)] for day in days], dtype=float)
    return 1.0 + 4.0 * beta.ppf(uniform, mean * concentration, (1.0 - mean) * concentration)


def draw_acquisition(rng: np.random.Generator, n_fields: int) -> list[dict[str, float]]:
    """Each field's imaging: ``brightness`` (photon factor), ``background``, ``defocus_px``.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(draw_acquisition(np.random.default_rng(0), 2)[0])
    ['background', 'brightness', 'defocus_px']
    """
    return [
        {
            "brightness": float(np.exp(rng.normal(0.0, BRIGHTNESS_SD))),
            "background": float(rng.uniform(*BACKGROUND_RANGE)),
            "defocus_px": float(rng.uniform(*DEFOCUS_RANGE_PX)),
        }
        for _ in range(n_fields)
    ]


def apply_acquisition(
    rng: np.random.Generator,
    structure: np.ndarray,
    mask: np.ndarray,
    acquisition: Mapping[str, float],
    image_size: int,
    photons: float = 150.0,
) -> np.ndarray:
    """A rendered structure page (uint8, 0 outside the cell) as its field's microscope saw it.

    Blurred by the field's defocus (scaled to ``image_size``), raised by its
    background haze (a blurred copy of the mask), given shot noise at
    ``photons * brightness`` photons at full signal, then contrast-stretched
    inside the cell again as the AICS recipe does (0.5-99.8 percentiles to
    0-255, 0 outside).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((32, 32), bool); mask[4:28, 8:24] = True
    >>> page = np.where(mask, 200, 0).astype(np.uint8)
    >>> seen = apply_acquisition(np.random.default_rng(0), page, mask,
    ...                          {"brightness": 1.0, "background": 0.2, "defocus_px": 1.0}, 32)
    >>> seen.dtype, int(seen[~mask].max())
    (dtype('uint8'), 0)
    """
    image = structure.astype(np.float64) / 255.0
    sigma = acquisition["defocus_px"] * image_size / 128.0
    if sigma > 0:
        image = ndi.gaussian_filter(image, sigma)
    haze = ndi.gaussian_filter(mask.astype(np.float64), max(1.0, image_size / 8.0))
    image = image + acquisition["background"] * haze / max(float(haze.max()), 1e-12)
    scale = photons * acquisition["brightness"]
    image = rng.poisson(image * scale) / scale
    inside = image[mask]
    if inside.size == 0:
        return structure
    lo, hi = np.percentile(inside, [0.5, 99.8])
    scaled = np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0
    return np.where(mask, np.round(scaled), 0).astype(np.uint8)
