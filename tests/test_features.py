"""Protocol 1 features: equal to the published AICS function on realistic cells, step by step."""

from __future__ import annotations

import lmfit
import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import regionprops
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sarcnet_sklearn._columns import PROTOCOL_1
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets._legacy_cell import _cell_mask, _render_structure
from sarcnet_sklearn.features import (
    ANGLES,
    DISTANCES,
    PROTOCOL1_ERROR_COLUMN,
    Protocol1Extractor,
    cell_morphology,
    cooccurrence_matrices,
    extract_protocol1,
    fit_exp_decay,
    glcm_correlation,
    glcm_correlation_from_matrices,
    glcm_offsets,
    quantize_cell,
)
from sarcnet_sklearn.features._glcm import _pair_sums
from sarcnet_sklearn.features._quantize import _percentiles
from sarcnet_sklearn.tables import load_cells

from .aics_alignment_reference import _cropped_cell, _decay, _quantized, analyze_orientation

FEATURES = PROTOCOL_1 + ["peak_angle"]


def make_cell(h=90, w=120, kind="stripes", seed=0, dtype=np.uint8, period=7.0, theta=0.6):
    """A simple synthetic cell: striped, punctate or noisy structure inside a tilted ellipse."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(float)
    u = ((xx - w / 2) * np.cos(0.3) + (yy - h / 2) * np.sin(0.3)) / (0.45 * w)
    v = (-(xx - w / 2) * np.sin(0.3) + (yy - h / 2) * np.cos(0.3)) / (0.4 * h)
    mask = u**2 + v**2 <= 1
    if kind == "stripes":
        s = xx * np.cos(theta) + yy * np.sin(theta)
        image = 100 + 70 * np.cos(2 * np.pi * s / period) + rng.normal(0, 20, (h, w))
    elif kind == "puncta":
        image = rng.normal(60, 15, (h, w))
        for y, x in rng.uniform([0, 0], [h, w], (h * w // 40, 2)):
            image += 120 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 3.0)
    else:
        image = rng.normal(100, 30, (h, w))
    image[~mask] = rng.uniform(0, 20, (~mask).sum())
    image = np.clip(image, 0, None)
    if np.issubdtype(dtype, np.integer):
        image = np.clip(np.round(image), 0, np.iinfo(dtype).max)
    return image.astype(dtype), mask.astype(np.uint8)


def aics_cell(seed, size=150, level=3.0, spacing=None):
    """A realistic AICS-like cell: irregular mask, myofibril texture, uint8, stretched in-cell."""
    rng = np.random.default_rng(seed)
    mask = _cell_mask(rng, level, size)
    structure, _ = _render_structure(rng, mask, level, spacing or size / 12)
    return structure, mask


def rel_diff(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


# --- the whole, against the published function ----------------------------------------------


def _camera_uint16(seed):
    """16-bit camera counts: offset, dark pixels and noise outside the cell too."""
    structure, mask = aics_cell(seed, 140, 2.0)
    rng = np.random.default_rng(seed)
    counts = 200 + 23.7 * structure + rng.normal(0, 40, structure.shape)
    return np.clip(counts, 0, 65535).astype(np.uint16), mask.astype(np.uint16), 1


def _zeros_inside(seed):
    structure, mask = aics_cell(seed, 130, 4.0)
    dark = np.random.default_rng(seed).random(mask.shape) < 0.15
    return np.where(dark, 0, structure).astype(np.uint8), mask, 1


def _touching_border(seed):
    structure, mask = aics_cell(seed, 170, 3.0)
    rows, cols = np.nonzero(mask)
    top, right = rows.min() + 25, cols.max() - 30  # cut through the cell: it touches two edges
    return structure[top:, :right], mask[top:, :right], 1


def _thin(seed):
    structure, _ = aics_cell(seed, 160, 5.0)
    yy, xx = np.mgrid[: structure.shape[0], : structure.shape[1]]
    band = np.abs((yy - structure.shape[0] / 2) - 0.6 * (xx - structure.shape[1] / 2)) < 3
    image = np.where(band, np.maximum(structure, 1), 0).astype(np.uint8)
    return image, band.astype(np.uint8), 1


def _ragged(seed):
    rng = np.random.default_rng(seed)
    structure, _ = aics_cell(seed, 150, 1.0)
    noise = ndi.gaussian_filter(rng.standard_normal(structure.shape), 3)
    mask = noise > 0.05 * noise.std()  # several ragged pieces with holes
    return structure, mask.astype(np.uint8), 1


def _labels(seed, label):
    """A label image with three cells; the one measured is ``label``."""
    image = np.zeros((190, 330), np.uint8)
    labels = np.zeros((190, 330), np.int32)
    for k, (top, left) in enumerate([(5, 5), (30, 110), (10, 220)], start=1):
        structure, mask = aics_cell(seed + k, 100, float(k + 1))
        h, w = min(mask.shape[0], 190 - top), min(mask.shape[1], 110)
        region = (slice(top, top + h), slice(left, left + w))
        cell = mask[:h, :w] & (labels[region] == 0)
        image[region][cell] = structure[:h, :w][cell]
        labels[region][cell] = k
    return image, labels, label


def _fractional_float(seed):
    structure, mask = aics_cell(seed, 120, 3.0)
    rng = np.random.default_rng(seed)
    return structure * 9.37 + rng.uniform(0, 1, structure.shape), mask, 1


def _int32(seed):
    structure, mask = aics_cell(seed, 120, 4.0)
    return structure.astype(np.int32) * 3 + 5 * mask, mask.astype(np.int64), 1


def _large(seed):
    structure, mask = aics_cell(seed, 380, 4.0, spacing=15)
    return structure, mask, 1


CELLS = {
    "aics_uint8_level1": lambda: (*aics_cell(0, 150, 1.0), 1),
    "aics_uint8_level3": lambda: (*aics_cell(1, 180, 3.0), 1),
    "aics_uint8_level5": lambda: (*aics_cell(2, 200, 5.0), 1),
    "aics_uint8_fine": lambda: (*aics_cell(3, 130, 4.5, spacing=7), 1),
    "uint16_camera": lambda: _camera_uint16(4),
    "zeros_inside_mask": lambda: _zeros_inside(5),
    "touching_border": lambda: _touching_border(6),
    "thin_band": lambda: _thin(7),
    "ragged_pieces": lambda: _ragged(8),
    "label_2_of_3": lambda: _labels(9, 2),
    "label_3_of_3": lambda: _labels(9, 3),
    "float_fractional": lambda: _fractional_float(10),
    "int32": lambda: _int32(11),
    "large_cell": lambda: _large(12),
}


@pytest.mark.parametrize("name", list(CELLS))
def test_extract_protocol1_equals_the_published_function(name):
    image, labels, label = CELLS[name]()
    published = analyze_orientation(image, labels, label)
    ours = extract_protocol1(image, labels, pixel_size=1.0, label=label)
    assert rel_diff(ours["max_coefficient_variation"],
                    published["Maximum_Coefficient_Variation"]) < 1e-6
    assert rel_diff(ours["peak_height"], published["Peak_Height"]) < 1e-6
    assert ours["peak_distance"] == published["Peak_Distance"]
    assert ours["peak_angle"] == pytest.approx(published["Peak_Angle"], abs=1e-9)
    # Set 1: CellProfiler's MeasureObjectSizeShape, i.e. scikit-image's regionprops.
    props = regionprops((np.asarray(labels) == label).astype(np.uint8))[0]
    assert ours["cell_area"] == props.area
    assert ours["cell_aspect_ratio"] == pytest.approx(
        props.axis_minor_length / props.axis_major_length, rel=1e-10)


def test_cells_exercise_the_published_details():
    """The cases above really hold what they are named for."""
    image, mask, _ = _zeros_inside(5)
    assert np.count_nonzero((mask > 0) & (image == 0)) > 0.1 * np.count_nonzero(mask)
    image, mask, _ = _touching_border(6)
    assert mask[0].any() and mask[:, -1].any()
    image, labels, _ = _labels(9, 2)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    image, mask, _ = _fractional_float(10)
    assert not np.array_equal(image, np.floor(image))


def test_label_picks_one_cell_of_a_label_image():
    image, labels, _ = _labels(9, 2)
    alone = extract_protocol1(np.where(labels == 2, image, 0), labels == 2, pixel_size=1.0)
    assert extract_protocol1(image, labels, pixel_size=1.0, label=2) == alone
    with pytest.raises(ValueError, match="label 7 is not in the cell mask"):
        extract_protocol1(image, labels, label=7)


# --- steps 1-5: crop, clip, quantize ---------------------------------------------------------


def test_quantize_small_example_by_hand():
    image = np.arange(1, 26).reshape(5, 5)
    mask = np.zeros((5, 5), int)
    mask[1:4, :] = 1
    # in-cell 6..20; the crop drops the box's last row and column: values 6-9 and 11-14;
    # clip limits 6.28 -> 6 and 19.72 -> 19; thresholds 6, 6.875, 7.75, ..., 13.125
    expected = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_array_equal(quantize_cell(image, mask), expected)


def test_quantize_zero_pixels_are_outside_and_the_box_loses_its_last_row_and_column():
    image = np.random.default_rng(0).integers(1, 255, (20, 30)).astype(np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[3:12, 5:17] = True
    image[11, :] = 0  # the mask's last row is dark: the cell ends at row 10
    image[4, 6] = 0
    levels = quantize_cell(image, mask)
    assert levels.shape == (10 - 3, 16 - 5)
    assert levels[4 - 3, 6 - 5] == 0
    assert np.count_nonzero(levels == 0) == 1


def test_quantize_truncates_the_clip_limits():
    # 100 in-cell values 1..100: limits 2.98 and 98.02, truncated to 2 and 98; the crop
    # keeps 1 and 2 (both become 2) and loses 91..100 with the last column.
    image = np.arange(1, 101, dtype=np.uint8).reshape(10, 10).T.copy()
    mask = np.ones((10, 10), bool)
    levels = quantize_cell(image, mask)
    crop = _cropped_cell(image.copy())
    assert np.count_nonzero(crop == 2) == 2 and crop.min() == 2
    np.testing.assert_array_equal(levels, _quantized(crop))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_quantize_equals_the_published_steps(dtype, seed):
    rng = np.random.default_rng(seed)
    # few distinct values: many ties at the percentile thresholds; zeros inside the mask
    high = [6, 40, 255, 5000][seed]
    image = rng.integers(0, high, (37, 53))
    if np.issubdtype(dtype, np.floating):
        image = image + rng.uniform(0, 1, image.shape) * (seed % 2)
    image = image.astype(dtype) if dtype != np.uint8 else np.clip(image, 0, 255).astype(dtype)
    mask = rng.random((37, 53)) < 0.7
    published = _quantized(_cropped_cell(image * mask))
    np.testing.assert_array_equal(quantize_cell(image, mask), published)


@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 51, 101, 400, 1001])
def test_histogram_percentiles_are_bitwise_numpy(n):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 30, n)
    ordered = np.sort(values)
    q = np.array([0, 2, 12.5, 25, 37.5, 50, 62.5, 75, 87.5, 98, 100])
    ours = _percentiles(lambda k: ordered[k].astype(float), n, q)
    np.testing.assert_array_equal(ours, np.percentile(values, q))


# --- steps 6-7: co-occurrence and correlation ------------------------------------------------


def test_offsets_and_matrices_equal_graycomatrix_for_all_distances_and_angles():
    levels = np.random.default_rng(1).integers(0, 9, (45, 41)).astype(np.uint8)
    ours = cooccurrence_matrices(levels, glcm_offsets(DISTANCES, ANGLES), 9)
    theirs = graycomatrix(levels, DISTANCES, ANGLES, levels=9)
    np.testing.assert_array_equal(ours, np.transpose(theirs, (3, 2, 0, 1)))


def test_offsets_round_half_away_from_zero():
    # cos(pi/3) * 1 is 0.5000000000000001 and cos(2 pi/3) * 1 is -0.4999999999999998
    offsets = glcm_offsets([1, 3], [np.pi / 3, 2 * np.pi / 3])
    assert offsets[:, :, 1].tolist() == [[1, 2], [0, -1]]


def test_correlation_at_one_offset_is_pearson_of_in_cell_pairs():
    image, mask = make_cell(50, 70, seed=3)
    levels = quantize_cell(image, mask)
    a, d = 4, 5
    dr, dc = glcm_offsets([d], [ANGLES[a]])[0, 0]
    assert (dr, dc) == (round(np.sin(ANGLES[a]) * d), round(np.cos(ANGLES[a]) * d))
    h, w = levels.shape
    src = levels[max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
    dst = levels[max(0, dr) : h - max(0, -dr), max(0, dc) : w - max(0, -dc)]
    both = (src > 0) & (dst > 0)
    pearson = np.corrcoef(src[both], dst[both])[0, 1]
    ours = glcm_correlation(levels)[a, d]
    skimage = graycoprops(graycomatrix(levels, [d], [ANGLES[a]], levels=9)[1:, 1:], "correlation")
    assert ours == pytest.approx(pearson, rel=1e-12)
    assert ours == pytest.approx(skimage[0, 0], rel=1e-12)


def test_correlation_table_equals_graycoprops_including_degenerate_matrices():
    levels = np.zeros((20, 26), np.uint8)
    levels[2:18, 3:24] = np.random.default_rng(2).integers(1, 9, (16, 21))
    levels[9:14, 5:20] = 4  # a flat patch
    corr = glcm_correlation(levels)
    theirs = graycoprops(graycomatrix(levels, DISTANCES, ANGLES, levels=9)[1:, 1:], "correlation").T
    np.testing.assert_allclose(corr, theirs, rtol=1e-12, atol=1e-14)
    assert np.all(corr[:, 26:] == 1.0)  # beyond the cell: no pair at all
    assert np.all(corr[:, 0] == 1.0)


def test_correlation_table_of_a_real_sized_cell_equals_graycoprops():
    image, mask = aics_cell(21, 420, 4.0, spacing=16)
    levels = quantize_cell(image, mask)
    np.testing.assert_array_equal(levels, _quantized(_cropped_cell(image * mask)))
    theirs = graycoprops(graycomatrix(levels, DISTANCES, ANGLES, levels=9)[1:, 1:], "correlation").T
    np.testing.assert_allclose(glcm_correlation(levels), theirs, rtol=1e-12, atol=1e-14)


def test_correlation_does_not_depend_on_the_previous_cell():
    # The transforms reuse scratch arrays from call to call: a large cell, then smaller ones
    # (of a row width whose bytes are a multiple of 512, padded), must leave nothing behind.
    rng = np.random.default_rng(4)
    shapes = [(90, 120), (40, 32), (61, 29)]
    cells = [rng.integers(0, 9, shape).astype(np.uint8) for shape in shapes]
    cells[1][:, :5] = 0  # the cell does not reach the box's edge
    fresh = [glcm_correlation_from_matrices(
        cooccurrence_matrices(levels, glcm_offsets(DISTANCES, ANGLES), 9)[..., 1:, 1:]
    ) for levels in cells]
    for levels, expected in zip(cells + cells[::-1], fresh + fresh[::-1], strict=True):
        np.testing.assert_allclose(glcm_correlation(levels), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("top", [3, 8, 20])
def test_correlation_with_few_or_many_levels_equals_graycoprops(top):
    levels = np.random.default_rng(top).integers(0, top + 1, (33, 47)).astype(np.int64)
    theirs = graycoprops(
        graycomatrix(levels, DISTANCES, ANGLES, levels=top + 1)[1:, 1:], "correlation"
    ).T
    np.testing.assert_allclose(glcm_correlation(levels), theirs, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="non-negative"):
        glcm_correlation(levels - 1)


@pytest.mark.parametrize("shape", [(30, 40), (260, 310), (700, 700)])
def test_packed_pair_sums_equal_separate_ones(shape):
    levels = np.random.default_rng(0).integers(0, 9, shape).astype(np.uint8)
    offsets = glcm_offsets(DISTANCES, ANGLES).reshape(-1, 2)
    offsets = offsets[(np.abs(offsets) < min(shape)).all(axis=1)]
    packed = _pair_sums(levels, offsets[:, 0], offsets[:, 1], pack=True)
    separate = _pair_sums(levels, offsets[:, 0], offsets[:, 1], pack=False)
    np.testing.assert_array_equal(packed, separate)
    by_hand = np.count_nonzero((levels[:, :-3] > 0) & (levels[:, 3:] > 0))
    assert separate[0][(offsets == [0, 3]).all(axis=1)][0] == by_hand


def test_correlation_from_matrices_equals_graycoprops():
    rng = np.random.default_rng(5)
    P = rng.integers(0, 6, (8, 8, 3, 4)).astype(np.uint32)
    P[:, :, 0, 0] = 0  # empty
    P[:, :, 1, 1] = 0
    P[2, 5, 1, 1] = 7  # constant row and column level
    theirs = graycoprops(P, "correlation")
    ours = glcm_correlation_from_matrices(np.transpose(P, (2, 3, 0, 1)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)
    assert ours[0, 0] == 1.0 and ours[1, 1] == 1.0


# --- step 9: the decay fit -------------------------------------------------------------------


def _lmfit_a(curve):
    fit = lmfit.Model(_decay).fit(curve, x=DISTANCES, a=0.005, weights=np.exp(-0.5 * DISTANCES))
    return fit.params["a"].value


def test_fit_equals_lmfit_where_it_stops_short_of_the_optimum():
    rng = np.random.default_rng(0)
    d = DISTANCES
    curves = [
        np.exp(-0.02 * d**2),
        np.exp(-0.3 * d**2) + 0.3 * (1 + np.cos(2 * np.pi * d / 7)) / 2 * (d > 0),
        np.abs(np.exp(-0.05 * d**2) + rng.normal(0, 0.05, d.size)),
        np.r_[1.0, np.abs(rng.normal(0, 0.05, d.size - 1))],
        np.ones(d.size) * 0.999,
        np.r_[1.0, 0.2 + 0.1 * np.cos(2 * np.pi * d[1:] / 9)],
        np.r_[1.0, np.full(d.size - 1, 0.4)],
    ]
    for seed in range(3):
        image, mask = aics_cell(30 + seed, 110, 2.0 + seed)
        curves.extend(np.abs(glcm_correlation(quantize_cell(image, mask))))
    a = fit_exp_decay(np.array(curves))
    optimum_gap = 0.0
    for curve, ours in zip(curves, a, strict=True):
        published = _lmfit_a(curve)
        assert ours == pytest.approx(published, rel=1e-6, abs=1e-12)
        exact = np.exp(-ours * d**2)
        np.testing.assert_allclose(exact, np.exp(-published * d**2), atol=1e-9)
        w = np.exp(-0.5 * d)
        gradient = np.sum(w**2 * d**2 * exact * (curve - exact))
        optimum_gap = max(optimum_gap, abs(gradient))
    assert optimum_gap > 1e-9  # lmfit's tolerances do stop short: an exact solver would differ


def test_fit_recovers_an_exact_decay():
    assert float(fit_exp_decay(np.exp(-0.137 * DISTANCES**2))) == pytest.approx(0.137, rel=1e-7)


# --- Set 1 and bad inputs --------------------------------------------------------------------


def test_morphology_equals_regionprops():
    rng = np.random.default_rng(0)
    masks = [aics_cell(40 + k, 90, 3.0)[1] for k in range(3)]
    for _ in range(3):
        mask = np.zeros((80, 90), np.uint8)
        for y, x, r in rng.uniform([10, 10, 3], [70, 80, 15], (4, 3)):
            yy, xx = np.ogrid[:80, :90]
            mask[(yy - y) ** 2 + ((xx - x) / 1.7) ** 2 <= r**2] = 1
        masks.append(mask)
    for mask in masks:
        props = regionprops(mask.astype(np.uint8))[0]
        ours = cell_morphology(mask)
        assert ours["area"] == props.area
        assert ours["axis_major_length"] == pytest.approx(props.axis_major_length, rel=1e-10)
        assert ours["axis_minor_length"] == pytest.approx(props.axis_minor_length, rel=1e-10)


def test_area_counts_dark_mask_pixels_that_texture_leaves_out():
    image, mask, _ = _zeros_inside(5)
    assert extract_protocol1(image, mask, pixel_size=1.0)["cell_area"] == np.count_nonzero(mask)


def test_pixel_size_scales_area_and_peak_distance_only():
    image, mask = make_cell(seed=2)
    in_pixels = extract_protocol1(image, mask, pixel_size=1.0)
    in_um = extract_protocol1(image, mask, pixel_size=0.12)
    assert in_pixels["cell_area"] == np.count_nonzero(mask)
    assert in_um["cell_area"] == pytest.approx(in_pixels["cell_area"] * 0.0144)
    assert in_um["peak_distance"] == pytest.approx(in_pixels["peak_distance"] * 0.12)
    assert float(in_pixels["peak_distance"]).is_integer()
    for name in ["cell_aspect_ratio", "max_coefficient_variation", "peak_height", "peak_angle"]:
        assert in_um[name] == in_pixels[name]


@pytest.mark.parametrize(
    "image, mask, match",
    [
        (np.ones((5, 5)), np.zeros((5, 5)), "empty"),
        (np.arange(25.0).reshape(5, 5), np.eye(5) * (np.arange(5) == 2), "single pixel"),
        (np.full((5, 5), 7), np.ones((5, 5)), "constant"),
        (np.ones((5, 5)), np.ones((5, 6)), "differ in shape"),
        (np.ones((2, 5, 5)), np.ones((2, 5, 5)), "2-D"),
        (np.where(np.eye(5) > 0, np.nan, 1.0), np.ones((5, 5)), "NaN"),
        (np.arange(25).reshape(5, 5) - 3, np.ones((5, 5)), "negative"),
        (np.arange(25.0).reshape(5, 5) * 4000, np.ones((5, 5)), "above 65535"),
        (np.arange(25.0).reshape(5, 5) / 30, np.ones((5, 5)), "below 1"),
        (np.zeros((5, 5)), np.ones((5, 5)), "no pixel of the cell has a positive"),
        (np.arange(1, 26).reshape(5, 5), np.add.outer(np.arange(5) == 2, np.zeros(5)), "too thin"),
        (np.ones((1, 2), np.float32), np.ones((1, 2)), "too thin"),  # a float cell one row high
    ],
)
def test_bad_inputs_raise_clear_value_errors(image, mask, match):
    with pytest.raises(ValueError, match=match):
        extract_protocol1(image, mask)


def test_bad_pixel_size_raises():
    image, mask = make_cell(seed=0)
    with pytest.raises(ValueError, match="pixel_size"):
        extract_protocol1(image, mask, pixel_size=0)


# --- the transformer -------------------------------------------------------------------------


def write_aics_tiff(path, image, mask):
    pages = np.zeros((10,) + image.shape, np.uint8)
    pages[1], pages[9] = image, mask * 255
    tifffile.imwrite(path, pages)
    return str(path)


@pytest.fixture
def cell_table(tmp_path):
    paths, expected = [], []
    for seed, kind in enumerate(["stripes", "puncta", "stripes"]):
        image, mask = make_cell(70, 90, kind, seed)
        paths.append(write_aics_tiff(tmp_path / f"cell_{seed}.tiff", image, mask))
        expected.append(extract_protocol1(image, mask))
    table = pd.DataFrame(
        {"image_path": paths, "score": [1.0, 2.5, 4.0], "cell_area": [-1.0, -1.0, -1.0]},
        index=[10, 20, 30],
    )
    return table, expected


def test_extractor_fills_protocol1_columns_on_a_copy(cell_table):
    table, expected = cell_table
    original = table.copy()
    out = Protocol1Extractor().fit_transform(table)
    pd.testing.assert_frame_equal(table, original)
    assert list(out.columns) == ["image_path", "score"] + PROTOCOL_1
    assert list(out.index) == [10, 20, 30]
    for row, values in zip(out.itertuples(), expected, strict=True):
        for name in PROTOCOL_1:
            assert getattr(row, name) == pytest.approx(values[name], rel=1e-12)
    assert list(Protocol1Extractor().fit(table).get_feature_names_out()) == list(out.columns)


def test_extractor_parallel_equals_serial(cell_table):
    table, _ = cell_table
    serial = Protocol1Extractor(n_jobs=1).fit_transform(table)
    parallel = Protocol1Extractor(n_jobs=2).fit_transform(table)
    pd.testing.assert_frame_equal(serial, parallel)


def test_extractor_reads_a_separate_mask_file(tmp_path):
    image, mask = make_cell(60, 80, seed=4)
    tifffile.imwrite(tmp_path / "structure.tif", image)
    Image.fromarray(mask * 255).save(tmp_path / "mask.png")
    table = pd.DataFrame({"img": [str(tmp_path / "structure.tif")],
                          "mask": [str(tmp_path / "mask.png")]})
    out = Protocol1Extractor(image_column="img", mask_column="mask", structure_page=0)
    result = out.fit_transform(table)
    assert result.loc[0, "peak_height"] == extract_protocol1(image, mask)["peak_height"]


def test_extractor_errors_raise_names_row_and_file_or_coerce(cell_table, tmp_path):
    table, _ = cell_table
    flat = np.ones((20, 20), np.uint8)
    blank = write_aics_tiff(tmp_path / "blank.tiff", flat, np.zeros((20, 20), np.uint8))
    bad = pd.concat([table, pd.DataFrame({"image_path": [blank], "score": [3.0],
                                          "cell_area": [0.0]}, index=[40])])
    with pytest.raises(ValueError, match=r"row 40.*blank\.tiff.*empty"):
        Protocol1Extractor().fit_transform(bad)
    out = Protocol1Extractor(errors="coerce").fit_transform(bad)
    assert out[PROTOCOL1_ERROR_COLUMN].isna().sum() == 3
    assert "empty" in out.loc[40, PROTOCOL1_ERROR_COLUMN]
    assert out.loc[40, PROTOCOL_1].isna().all()
    assert out.loc[10, PROTOCOL_1].notna().all()
    with pytest.raises(ValueError, match="errors must be one of"):
        Protocol1Extractor(errors="ignore").fit(table)


def test_extractor_in_a_pipeline_with_pandas_output(cell_table):
    table, _ = cell_table
    pipeline = Pipeline([
        ("features", Protocol1Extractor()),
        ("scale", ColumnTransformer([("p1", StandardScaler(), PROTOCOL_1)])),
        ("model", LinearRegression()),
    ])
    pipeline.fit(table, table["score"])
    assert pipeline.predict(table).shape == (3,)
    cloned = clone(pipeline)
    assert cloned.get_params()["features__pixel_size"] == 0.12
    extractor = Protocol1Extractor().set_output(transform="pandas")
    out = extractor.fit_transform(table, table["score"])
    assert isinstance(out, pd.DataFrame) and list(out.columns)[-1] == "peak_distance"


def test_extractor_rejects_missing_column_and_non_frames():
    with pytest.raises(ValueError, match="no column 'image_path'"):
        Protocol1Extractor().fit(pd.DataFrame({"path": ["a.tif"]}))
    with pytest.raises(ValueError, match="DataFrame"):
        Protocol1Extractor().fit(np.array([["a.tif"]]))


# --- the command line ------------------------------------------------------------------------




def test_cli_writes_one_row_per_cell_with_per_row_errors(tmp_path, capsys):
    folder = tmp_path / "cells"
    folder.mkdir()
    image, mask = make_cell(60, 80, seed=1)
    good = write_aics_tiff(folder / "a_good.tiff", image, mask)
    write_aics_tiff(folder / "b_empty.tif", image, np.zeros_like(mask))
    write_aics_tiff(folder / "c_flat.tif", np.full_like(image, 9), mask)
    (folder / "d_corrupt.tif").write_bytes(b"not a tiff")
    (folder / "notes.txt").write_text("ignored")
    output = tmp_path / "out" / "features.csv"
    assert main(["features", str(folder), "-o", str(output), "--quiet"]) == 0
    assert str(output) in capsys.readouterr().out
    table = pd.read_csv(output)
    assert list(table.columns) == ["image_path"] + FEATURES + ["error"]
    assert [p.rsplit("/", 1)[-1] for p in table["image_path"]] == [
        "a_good.tiff", "b_empty.tif", "c_flat.tif", "d_corrupt.tif"]
    assert table.loc[0, "error"] != table.loc[0, "error"]  # NaN: no error
    assert table.loc[0, "peak_height"] == pytest.approx(
        extract_protocol1(image, mask)["peak_height"], rel=1e-12)
    assert "empty" in table.loc[1, "error"]
    assert "constant" in table.loc[2, "error"]
    assert "d_corrupt.tif" in table.loc[3, "error"]
    assert table.loc[1:, FEATURES].isna().all().all()
    assert [p.name for p in output.parent.iterdir()] == ["features.csv"]
    assert good in set(load_cells(output)["image_path"])  # paths relative to the CSV


def test_cli_pixel_size_and_pages(tmp_path):
    image, mask = make_cell(60, 80, seed=2)
    pages = np.stack([mask * 255, image])
    tifffile.imwrite(tmp_path / "cell.tif", pages)
    output = tmp_path / "f.csv"
    argv = ["features", str(tmp_path / "cell.tif"), "-o", str(output), "--structure-page", "1",
            "--mask-page", "0", "--pixel-size", "1", "--n-jobs", "1", "--quiet"]
    assert main(argv) == 0
    row = pd.read_csv(output).iloc[0]
    assert row["cell_area"] == np.count_nonzero(mask)


def test_cli_refuses_to_overwrite_an_input(tmp_path, capsys):
    image, mask = make_cell(40, 50, seed=0)
    path = write_aics_tiff(tmp_path / "cell.tif", image, mask)
    before = (tmp_path / "cell.tif").read_bytes()
    assert main(["features", path, "-o", path, "--quiet"]) == 2
    assert (tmp_path / "cell.tif").read_bytes() == before
    assert main(["features", str(tmp_path / "missing"), "-o", str(tmp_path / "x.csv")]) == 2
