"""Protocol 1 features: each step against an independent computation, then the whole."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from scipy.optimize import curve_fit, least_squares
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import regionprops
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sarcnet_sklearn._columns import PROTOCOL_1
from sarcnet_sklearn.features import (
    ANGLES,
    DISTANCES,
    ERROR_COLUMN,
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
from sarcnet_sklearn.features import _cli as features_cli
from sarcnet_sklearn.features._quantize import _percentiles
from sarcnet_sklearn.features._reference import (
    reference_correlation,
    reference_protocol1,
    reference_quantize,
)
from sarcnet_sklearn.io import load_cells

FEATURES = PROTOCOL_1 + ["peak_angle"]


def make_cell(h=90, w=120, kind="stripes", seed=0, dtype=np.uint8, period=7.0, theta=0.6):
    """A synthetic cell: striped, punctate or noisy structure inside a tilted ellipse."""
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
    if np.issubdtype(dtype, np.integer):
        image = np.clip(np.round(image), 0, np.iinfo(dtype).max)
    return image.astype(dtype), mask.astype(np.uint8)


def rel_diff(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


# --- step 3: quantization ------------------------------------------------------------------


def test_quantize_small_example_by_hand():
    image = np.arange(16).reshape(4, 4)
    mask = np.zeros((4, 4), int)
    mask[1:3, :] = 1
    # in-cell values 4..11; clip to 4.14..10.86; thresholds 4.14, 4.8925, 5.75, 6.625, ...
    expected = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_array_equal(quantize_cell(image, mask), expected)


def test_quantize_crops_to_inclusive_bounding_box_and_zeroes_outside():
    image = np.random.default_rng(0).integers(0, 255, (20, 30)).astype(np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[3:9, 5:17] = True
    mask[3, 5] = False
    levels = quantize_cell(image, mask)
    assert levels.shape == (6, 12)
    assert levels[0, 0] == 0
    assert set(np.unique(levels[mask[3:9, 5:17]])) == set(range(1, 9))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_quantize_equals_literal_percentile_recipe(dtype, seed):
    rng = np.random.default_rng(seed)
    # few distinct values: many ties at the percentile thresholds
    high = [6, 40, 255][seed % 3]
    image = rng.integers(0, high, (37, 53)).astype(dtype)
    mask = rng.random((37, 53)) < 0.7
    np.testing.assert_array_equal(quantize_cell(image, mask), reference_quantize(image, mask))


@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 51, 101, 400, 1001])
def test_histogram_percentiles_are_bitwise_numpy(n):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 30, n)
    ordered = np.sort(values)
    q = np.array([0, 2, 12.5, 25, 37.5, 50, 62.5, 75, 87.5, 98, 100])
    ours = _percentiles(lambda k: ordered[k].astype(float), n, q)
    np.testing.assert_array_equal(ours, np.percentile(values, q))


# --- steps 4-5: co-occurrence and correlation ------------------------------------------------


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


# --- step 7: the decay fit -------------------------------------------------------------------


def _scipy_fits(curve):
    w = np.exp(-0.5 * DISTANCES)
    ls = least_squares(
        lambda p: w * (curve - np.exp(-p[0] * DISTANCES**2)),
        [0.005], method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15,
    ).x[0]
    cf = curve_fit(
        lambda d, a: np.exp(-a * d**2), DISTANCES, curve, p0=[0.005], sigma=1 / w,
        xtol=1e-15, ftol=1e-15, gtol=1e-15,
    )[0][0]
    return ls, cf


def test_fit_agrees_with_scipy_weighted_least_squares():
    rng = np.random.default_rng(0)
    d = DISTANCES
    curves = [
        np.exp(-0.02 * d**2),
        np.exp(-0.3 * d**2) + 0.3 * (1 + np.cos(2 * np.pi * d / 7)) / 2 * (d > 0),
        np.abs(np.exp(-0.05 * d**2) + rng.normal(0, 0.05, d.size)),
        np.r_[1.0, np.abs(rng.normal(0, 0.05, d.size - 1))],
        np.ones(d.size) * 0.999,
    ]
    curves[3][0] = 1.0
    a = fit_exp_decay(np.array(curves))
    for curve, ours in zip(curves, a, strict=True):
        ls, cf = _scipy_fits(curve)
        assert ours == pytest.approx(ls, rel=1e-6, abs=1e-12)
        assert ours == pytest.approx(cf, rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(np.exp(-ours * d**2), np.exp(-ls * d**2), atol=1e-9)


def test_fit_recovers_an_exact_decay():
    assert float(fit_exp_decay(np.exp(-0.137 * DISTANCES**2))) == pytest.approx(0.137, rel=1e-12)


# --- the whole -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, seed, dtype, period, theta",
    [
        ("stripes", 0, np.uint8, 7.0, 0.6),
        ("stripes", 1, np.uint16, 11.0, 2.2),
        ("stripes", 2, np.float64, 5.0, 0.0),
        ("puncta", 3, np.uint8, 7.0, 0.6),
        ("noise", 4, np.float32, 7.0, 0.6),
    ],
)
def test_extract_protocol1_equals_step_by_step_reference(kind, seed, dtype, period, theta):
    image, mask = make_cell(110, 150, kind, seed, dtype, period, theta)
    ours = extract_protocol1(image, mask)
    reference = reference_protocol1(image, mask)
    for name in PROTOCOL_1:
        assert rel_diff(ours[name], reference[name]) < 1e-6, name
    assert ours["peak_angle"] % 180 == pytest.approx(reference["peak_angle"] % 180)
    assert set(ours) == set(FEATURES)


def test_correlation_table_of_a_real_sized_cell_equals_graycoprops():
    image, mask = make_cell(300, 420, "stripes", 7, np.uint8, 9.0, 1.1)
    levels = quantize_cell(image, mask)
    np.testing.assert_array_equal(levels, reference_quantize(image, mask))
    np.testing.assert_allclose(
        np.abs(glcm_correlation(levels)), reference_correlation(levels), rtol=1e-12, atol=1e-14
    )


def test_morphology_equals_regionprops():
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = np.zeros((80, 90), np.uint8)
        for y, x, r in rng.uniform([10, 10, 3], [70, 80, 15], (4, 3)):
            yy, xx = np.ogrid[:80, :90]
            mask[(yy - y) ** 2 + ((xx - x) / 1.7) ** 2 <= r**2] = 1
        props = regionprops(mask)[0]
        ours = cell_morphology(mask)
        assert ours["area"] == props.area
        assert ours["axis_major_length"] == pytest.approx(props.axis_major_length, rel=1e-10)
        assert ours["axis_minor_length"] == pytest.approx(props.axis_minor_length, rel=1e-10)


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
    assert out[ERROR_COLUMN].isna().sum() == 3
    assert "empty" in out.loc[40, ERROR_COLUMN]
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


def run_cli(argv):
    try:
        from sarcnet_sklearn.cli import main
    except ImportError:  # the package's other subcommands may be missing in a partial checkout
        parser = argparse.ArgumentParser()
        features_cli.add_subcommand(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        try:
            return args.func(args)
        except (FileNotFoundError, ValueError):
            return 2
    return main(argv)


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
    assert run_cli(["features", str(folder), "-o", str(output), "--quiet"]) == 0
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
    assert run_cli(argv) == 0
    row = pd.read_csv(output).iloc[0]
    assert row["cell_area"] == np.count_nonzero(mask)


def test_cli_refuses_to_overwrite_an_input(tmp_path, capsys):
    image, mask = make_cell(40, 50, seed=0)
    path = write_aics_tiff(tmp_path / "cell.tif", image, mask)
    before = (tmp_path / "cell.tif").read_bytes()
    assert run_cli(["features", path, "-o", path, "--quiet"]) == 2
    assert (tmp_path / "cell.tif").read_bytes() == before
    assert run_cli(["features", str(tmp_path / "missing"), "-o", str(tmp_path / "x.csv")]) == 2
