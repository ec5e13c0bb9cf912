"""Sarcomere length and myofibril orientation order of one cell, in physical units.

The measures biologists check a score against (SarcAsM and SarcGraph report them), all from
the 2-D power spectrum of the masked, mean-subtracted cell (faded out at its border):

- the sarcomere length: the strongest ring of the spectrum (radial profile smoothed over
  three radii) within the band of plausible sarcomere lengths, refined to the centroid of
  the ring's power above the isotropic background (weighted by its square), in micrometres;
- the orientation order parameter (OOP) of the myofibrils: over the spectrum's sarcomeric
  band (frequencies within 15 % of the dominant one), with ``phi`` the direction of each
  frequency (the Z-disc normal, i.e. the myofibril direction) and ``P`` its power,
  ``OOP = |sum P exp(2 i phi)| / sum P``, the largest eigenvalue of the power-weighted 2-D
  nematic order tensor: 0 isotropic, 1 all parallel;
- the sarcomeric fraction: the share of the cell's pixels where most of the local signal
  energy lies in that band (the band-passed image against the whole detail).

Every length (the border fade, the search band, the local windows) is set in micrometres, so
the measures do not depend on the pixel size the cell was imaged at; finer images are first
averaged in blocks to about 0.24 um/px, which keeps the cost below that of Protocol 1.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
from scipy import ndimage as ndi

from .._columns import (
    ORIENTATION_ORDER_COLUMN,
    PIXEL_SIZE_UM,
    SARCOMERE_LENGTH_COLUMN,
    SARCOMERIC_FRACTION_COLUMN,
)
from .._validation import check_pixel_size_um
from ._quantize import bounding_box, check_cell

SARCOMERE_LENGTH_BAND_UM = (1.0, 3.5)
"""Periods searched for the sarcomere length, in micrometres (hiPSC-CMs: about 1.6-2.0)."""

EDGE_TAPER_UM = 1.0
"""Width over which the cell is faded out at its border before the power spectrum."""

ANNULUS_HALF_WIDTH = 0.15
"""The sarcomeric band of the spectrum: frequencies within 15 % of the dominant one (the
lateral spacing of myofibrils and their breaks lie outside it)."""

FLANKS = (0.7, 1.4)
"""Frequencies (relative to the dominant one) where the isotropic background is read."""

PROMINENCE = 0.25
"""Below this share of the band's power above the background (and without an aligned share
of :data:`ALIGNED_NOISE_FACTOR`), a cell has no sarcomeric pattern: its length and order are
NaN."""

ALIGNED_NOISE_FACTOR = 8.0
"""A band whose power is aligned (``|sum P exp(2 i phi)|``) by more than this many times the
share isotropic noise gives (``1 / sqrt(bins)``) holds a pattern, however faint."""

SARCOMERIC_SHARE = 0.5
"""A pixel is sarcomeric where more than this share of its local signal energy (above a
background smoothed over one period) lies in the sarcomeric band."""

ANALYSIS_PIXEL_SIZE_UM = 0.24
"""Finer images are averaged in blocks down to about this pixel size first (a 1 um period
still spans 4 pixels)."""

_PADDING = 4
"""The spectrum is taken on a square at least this many sarcomere lengths larger than the cell."""


def measure_sarcomeres(
    image: np.ndarray,
    mask: np.ndarray,
    pixel_size: float = PIXEL_SIZE_UM,
) -> dict[str, float]:
    """Sarcomere length (um), orientation order and sarcomeric fraction of one cell.

    Parameters
    ----------
    image : array-like of shape (height, width)
        Structure (alpha-actinin-2) intensities.
    mask : array-like of shape (height, width)
        Cell mask (nonzero pixels belong to the cell).
    pixel_size : float, default=0.12
        Micrometres per pixel (checked with
        :func:`~sarcnet_sklearn._validation.check_pixel_size_um`).

    Returns
    -------
    measures : dict of str to float
        ``sarcomere_length_um`` (NaN when the cell is too small to hold two periods of
        the longest searched length), ``orientation_order`` (0-1) and
        ``sarcomeric_fraction`` (0-1).

    Raises
    ------
    ValueError
        For an implausible pixel size and for the cells :func:`check_cell` refuses.

    Examples
    --------
    >>> yy, xx = np.mgrid[:200, :300]
    >>> stripes = 100 + 80 * np.cos(2 * np.pi * xx / 15.0)  # a 15 px period along x
    >>> mask = ((yy - 100) / 90) ** 2 + ((xx - 150) / 140) ** 2 <= 1
    >>> measures = measure_sarcomeres(stripes, mask, pixel_size=0.12)
    >>> round(measures["sarcomere_length_um"], 2), round(measures["orientation_order"], 1)
    (1.8, 1.0)
    """
    pixel_size = check_pixel_size_um(pixel_size, "pixel_size")
    image, inside = check_cell(image, mask)
    box = bounding_box(inside)
    image, inside = image[box].astype(np.float32), inside[box]
    image, inside, pixel_size = _coarsen(image, inside, pixel_size)
    values = np.where(inside, image - image[inside].mean(), np.float32(0))
    return _spectral_measures(values, inside, pixel_size)


def _coarsen(image: np.ndarray, inside: np.ndarray, pixel_size: float):
    """Block means down to about :data:`ANALYSIS_PIXEL_SIZE_UM` (an anti-aliasing box filter):
    the measures need no finer sampling, and cost a quarter per halving."""
    factor = int(ANALYSIS_PIXEL_SIZE_UM / pixel_size + 1e-6)
    if factor < 2 or min(image.shape) < 4 * factor:
        return image, inside, pixel_size
    rows, cols = (n // factor * factor for n in image.shape)
    shape = (rows // factor, factor, cols // factor, factor)
    covered = inside[:rows, :cols].reshape(shape).mean(axis=(1, 3), dtype=np.float32)
    summed = np.where(inside, image, 0)[:rows, :cols].reshape(shape).sum(axis=(1, 3))
    coarse_inside = covered >= 0.5
    coarse = np.where(coarse_inside, summed / np.maximum(covered * factor**2, 1), 0)
    if coarse_inside.sum() < 2:
        return image, inside, pixel_size
    return coarse.astype(np.float32), coarse_inside, pixel_size * factor


@functools.lru_cache(maxsize=8)
def _frequency_grid(side: int):
    """Of each bin of a ``side`` x ``side`` rfft2: its integer radius (flat), its weight
    (flat; the rfft's column 0 is not mirrored), its radius and ``exp(2 i phi)`` of its
    direction ``phi`` from the row axis."""
    ky = np.fft.fftfreq(side) * side
    kx = np.arange(side // 2 + 1, dtype=np.float64)
    radius = np.hypot(ky[:, None], kx[None, :])
    bins = np.rint(radius).astype(np.intp).ravel()
    weight = np.broadcast_to(np.where(kx == 0, 0.5, 1.0), radius.shape).ravel()
    phase = np.exp(2j * np.arctan2(kx[None, :], ky[:, None])).astype(np.complex64)
    return bins, weight.astype(np.float32), radius.astype(np.float32), phase


def _background_density(density: np.ndarray, peak_radius: float, rings):
    """The isotropic background's power per frequency at ``rings``: interpolated, as a power
    law, between the spectrum's floor at the :data:`FLANKS` of the peak."""
    radii, floors = [], []
    for factor in FLANKS:
        centre = int(round(peak_radius * factor))
        floors.append(min(density[max(1, min(centre + offset, len(density) - 1))]
                          for offset in (-1, 0, 1)))
        radii.append(peak_radius * factor)
    logs = np.log(np.maximum(floors, 1e-300))
    slope = (logs[1] - logs[0]) / math.log(radii[1] / radii[0])
    return np.exp(logs[0] + slope * np.log(np.asarray(rings, float) / radii[0]))


def _spectral_measures(values: np.ndarray, inside: np.ndarray,
                       pixel_size: float) -> dict[str, float]:
    """Period, orientation order and sarcomeric fraction from the cell's power spectrum."""
    shortest, longest = (length / pixel_size for length in SARCOMERE_LENGTH_BAND_UM)
    nothing = {SARCOMERE_LENGTH_COLUMN: math.nan, ORIENTATION_ORDER_COLUMN: math.nan,
               SARCOMERIC_FRACTION_COLUMN: 0.0}
    if max(values.shape) < 2 * longest:
        return nothing
    taper = ndi.gaussian_filter(inside.astype(np.float32), EDGE_TAPER_UM / pixel_size,
                                truncate=3.0) * inside
    windowed = (values - (values * taper).sum() / max(taper.sum(), 1e-12)) * taper
    side = scipy.fft.next_fast_len(int(max(values.shape) + _PADDING * longest), real=True)
    spectrum = scipy.fft.rfft2(windowed, s=(side, side), workers=1)
    power = spectrum.real**2 + spectrum.imag**2
    bins, weight, radius, phase = _frequency_grid(side)
    profile = np.bincount(bins, (power.ravel() * weight)).astype(np.float64)
    low, high = int(math.floor(side / longest)), int(math.ceil(side / shortest))
    high = min(high, len(profile) - 2)
    if high <= low + 1:
        return nothing
    # the ring of a cell a few periods wide spreads over neighbouring radii while the noise
    # of one radius does not: the strongest ring is sought on the profile smoothed (1-2-1)
    smoothed = np.convolve(profile, [0.25, 0.5, 0.25], mode="same")
    peak = low + int(np.argmax(smoothed[low:high + 1]))
    if peak in (low, high) or profile[peak] <= 0:
        return nothing
    # An isotropic background (puncta, noise) adds the same power in every direction: it
    # leaves sum(P exp(2 i phi)) alone and is taken out of sum(P), estimated from the
    # power per frequency just outside the band, where the spectrum has no sarcomeric peak.
    counts = np.bincount(bins, weight).astype(np.float64)
    density = profile / np.maximum(counts, 1e-12)
    # the period: the centroid of the band's power above that background (a broad or
    # speckled ring, as patches of slightly different periods give, is not one bin),
    # weighted by its square
    rings = np.arange(math.ceil(peak * (1 - ANNULUS_HALF_WIDTH)),
                      min(math.floor(peak * (1 + ANNULUS_HALF_WIDTH)), len(profile) - 1) + 1)
    excess = np.clip(profile[rings] - _background_density(density, peak, rings) * counts[rings],
                     0.0, None)
    weights_sq = excess**2
    peak_radius = (float(np.dot(rings, weights_sq) / weights_sq.sum()) if weights_sq.sum() > 0
                   else float(peak))

    annulus = np.abs(radius - peak_radius) <= ANNULUS_HALF_WIDTH * peak_radius
    weights = annulus * weight.reshape(power.shape)
    in_band = power * weights
    background = float(_background_density(density, peak_radius, peak_radius)) * float(
        weights.sum())
    total = float(in_band.sum())
    aligned = abs(complex(np.sum(in_band * phase)))
    # a pattern stands out by its power above the background, or (faint, parallel
    # myofibrils) by its direction: isotropic noise over n bins aligns about 1 / sqrt(n)
    # of its power, so an aligned share several times that is no noise
    noise_alignment = ALIGNED_NOISE_FACTOR / math.sqrt(max(float(annulus.sum()), 1.0))
    signal = max(total - background, aligned)
    if signal < PROMINENCE * total and aligned < noise_alignment * total:
        return nothing
    order = aligned / signal

    # local energy at the sarcomere period against all local energy above a slow background
    period = side / peak_radius
    band = scipy.fft.irfft2(spectrum * annulus, s=(side, side), workers=1)[:values.shape[0],
                                                                          :values.shape[1]]
    window = max(3, int(round(2 * period)) | 1)  # box windows of about two periods
    detail = windowed - ndi.uniform_filter(windowed, window)
    band_energy = ndi.uniform_filter(band * band, window)
    all_energy = ndi.uniform_filter(detail * detail, window)
    fraction = float(np.mean(band_energy[inside] > SARCOMERIC_SHARE * all_energy[inside]))
    return {SARCOMERE_LENGTH_COLUMN: float(period * pixel_size),
            ORIENTATION_ORDER_COLUMN: float(min(order, 1.0)),
            SARCOMERIC_FRACTION_COLUMN: fraction}


__all__ = ["measure_sarcomeres", "SARCOMERE_LENGTH_BAND_UM"]
