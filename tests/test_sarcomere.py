"""Sarcomere length and orientation order: against patterns of known period and directions."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from sarcnet_sklearn._columns import (
    ORIENTATION_ORDER_COLUMN,
    SARCOMERE_COLUMNS,
    SARCOMERE_LENGTH_COLUMN,
)
from sarcnet_sklearn.features import Protocol1Extractor, extract_protocol1, measure_sarcomeres

PIXEL_SIZES = [0.06, 0.12, 0.24]


def _striated_cell(pixel_size, length_um, angles, seed=0, size_um=(24.0, 36.0)):
    """An elliptical cell of Z-disc bands, its area split into vertical strips, one direction
    (radians from the row axis) per strip; the true order is |mean exp(2i angle)|."""
    rng = np.random.default_rng(seed)
    rows, cols = (int(round(side / pixel_size)) for side in size_um)
    yy, xx = np.mgrid[:rows, :cols] * pixel_size
    mask = ((yy - size_um[0] / 2) / (0.48 * size_um[0])) ** 2 + (
        (xx - size_um[1] / 2) / (0.48 * size_um[1])) ** 2 <= 1
    strip = np.minimum((xx / size_um[1] * len(angles)).astype(int), len(angles) - 1)
    angle = np.asarray(angles)[strip]
    along = yy * np.cos(angle) + xx * np.sin(angle)
    offset = (along / length_um) % 1.0 - 0.5
    bands = np.exp(-0.5 * (offset / 0.12) ** 2)
    image = 40 + 160 * bands + rng.normal(0, 10, mask.shape)
    image = np.where(mask, np.clip(image, 0, 255), 0).astype(np.uint8)
    weights = np.bincount(strip[mask], minlength=len(angles))
    truth = abs(np.sum(weights * np.exp(2j * np.asarray(angles)))) / weights.sum()
    return image, mask, truth


@pytest.mark.parametrize("pixel_size", PIXEL_SIZES)
@pytest.mark.parametrize("length_um", [1.6, 2.0])
def test_sarcomere_length_within_3_percent_at_any_pixel_size(pixel_size, length_um):
    image, mask, _ = _striated_cell(pixel_size, length_um, [0.3, 0.9])
    measured = measure_sarcomeres(image, mask, pixel_size=pixel_size)[SARCOMERE_LENGTH_COLUMN]
    assert measured == pytest.approx(length_um, rel=0.03)


@pytest.mark.parametrize("pixel_size", PIXEL_SIZES)
@pytest.mark.parametrize("angles", [[0.4], [0.0, 0.5], [0.0, 0.6, 1.2, 1.8, 2.4]])
def test_orientation_order_within_005_of_the_drawn_directions(pixel_size, angles):
    image, mask, truth = _striated_cell(pixel_size, 1.8, angles, seed=len(angles))
    measured = measure_sarcomeres(image, mask, pixel_size=pixel_size)[ORIENTATION_ORDER_COLUMN]
    assert measured == pytest.approx(truth, abs=0.05)


def test_noise_has_low_order_and_no_sarcomeric_pattern():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (200, 300)).astype(np.uint8)
    mask = np.ones_like(image, bool)
    measures = measure_sarcomeres(image, mask, pixel_size=0.12)
    # no sarcomeric peak above the isotropic background: no length, no order
    assert np.isnan(measures[SARCOMERE_LENGTH_COLUMN])
    assert np.isnan(measures[ORIENTATION_ORDER_COLUMN])
    assert measures["sarcomeric_fraction"] < 0.1


def test_a_faint_parallel_pattern_in_a_noisy_field_cell_is_measured():
    from sarcnet_sklearn.datasets import make_synthetic_field
    from sarcnet_sklearn.fields._score import cut_fields

    # cell 2 of this synthetic field: organized (order near 1) but dim against its noise,
    # so its band holds little power above the background; its alignment gives it away
    field, labels = make_synthetic_field((667, 667), 8, random_state=6, pixel_size_um=0.24)
    cells = cut_fields(field, labels, pixel_size=0.24, score_border_cells=True)
    cell = cells[cells["label"] == 2].iloc[0]
    measures = measure_sarcomeres(cell["crop"], cell["mask"], pixel_size=0.24)
    assert measures[SARCOMERE_LENGTH_COLUMN] == pytest.approx(1.66, rel=0.03)
    assert measures[ORIENTATION_ORDER_COLUMN] > 0.9


def test_bad_pixel_size_is_refused():
    image, mask, _ = _striated_cell(0.24, 1.8, [0.0])
    for bad in (0, -0.1, float("nan"), 50):
        with pytest.raises(ValueError, match="pixel size"):
            measure_sarcomeres(image, mask, pixel_size=bad)


def test_faster_than_protocol1_on_a_real_sized_cell():
    image, mask, _ = _striated_cell(0.12, 1.8, [0.2, 0.5], size_um=(30.0, 50.0))
    def best(function):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            function(image, mask, pixel_size=0.12)
            times.append(time.perf_counter() - start)
        return min(times)
    assert best(measure_sarcomeres) < 1.5 * best(extract_protocol1)


def test_extractor_adds_the_sarcomere_columns_on_request():
    image, mask, _ = _striated_cell(0.24, 1.8, [0.0])
    cells = pd.DataFrame({"image_path": [image], "mask": [mask.astype(np.uint8)]})
    plain = Protocol1Extractor(mask_column="mask", pixel_size=0.24).fit_transform(cells)
    assert not set(SARCOMERE_COLUMNS) & set(plain.columns)
    both = Protocol1Extractor(mask_column="mask", pixel_size=0.24,
                              sarcomere=True).fit_transform(cells)
    assert both[SARCOMERE_LENGTH_COLUMN].iloc[0] == pytest.approx(1.8, rel=0.03)
