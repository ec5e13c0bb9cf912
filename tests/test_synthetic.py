"""Tests of the synthetic AICS-like dataset generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi
from scipy.stats import spearmanr

from sarcnet_sklearn.datasets import _acquisition, _synthetic
from sarcnet_sklearn.datasets._cell_render import draw_cell, render_cell
from sarcnet_sklearn.datasets._synthetic import TRUTH_COLUMNS, make_synthetic_aics
from sarcnet_sklearn.features import measure_sarcomeres
from sarcnet_sklearn.screens import field_icc

FEATURE_COLUMNS = [
    "napariCell_ObjectNumber",
    "fov_path",
    "napariCell_AreaShape_Area",
    "napariCell_AreaShape_MinorAxisLength",
    "napariCell_AreaShape_MajorAxisLength",
    "Frac_Area_Background",
    "Frac_Area_DiffuseOthers",
    "Frac_Area_Fibers",
    "Frac_Area_Disorganized_Puncta",
    "Frac_Area_Organized_Puncta",
    "Frac_Area_Organized_ZDisks",
    "Maximum_Coefficient_Variation",
    "Peak_Height",
    "Peak_Distance",
    "cell_age",
    "mh_structure_org_score",
    "kg_structure_org_score",
]
FRACTIONS = [c for c in FEATURE_COLUMNS if c.startswith("Frac_Area_")]
METADATA_COLUMNS = [
    "napariCell_ObjectNumber",
    "original_fov_location",
    "rescaled_2D_single_cell_tiff_path",
    "Age",
    "Dataset",
]
SCORES = ["mh_structure_org_score", "kg_structure_org_score"]
REAL_FREQUENCIES = {
    "mh_structure_org_score": np.array([294, 710, 3875, 798, 94]),
    "kg_structure_org_score": np.array([116, 1012, 2983, 1527, 133]),
}
PIXEL_SIZE_UM = 0.5
"""Coarse, to keep the module fast: the cells keep their size in micrometres."""


def _read_cohort(root: Path, n: int) -> pd.DataFrame:
    """Features merged with metadata, plus the image file's absolute path."""
    tables = list(
        (root / f"2d_autocontrasted_single_cell_features_fish_{n}" / "features").glob("*")
    )
    assert len(tables) == 1
    features = pd.read_csv(tables[0])
    fields = root / f"2d_autocontrasted_fields_and_single_cells_fish_{n}"
    metadata = pd.read_csv(fields / "metadata.csv").rename(
        columns={"original_fov_location": "fov_path"}
    )
    merged = features.merge(metadata, on=["napariCell_ObjectNumber", "fov_path"], how="inner")
    assert len(merged) == len(features) == len(metadata)
    merged["image"] = [
        fields / "rescaled_2D_single_cell_tiff_path" / Path(p).name
        for p in merged["rescaled_2D_single_cell_tiff_path"]
    ]
    merged["cohort"] = f"fish_{n}"
    return merged


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_aics(
        tmp_path_factory.mktemp("synthetic") / "aics", n_cells=60, pixel_size_um=PIXEL_SIZE_UM
    )


@pytest.fixture(scope="module")
def cells(dataset) -> pd.DataFrame:
    return pd.concat([_read_cohort(dataset, 1), _read_cohort(dataset, 2)], ignore_index=True)


def test_layout_and_columns(dataset):
    assert sorted(p.name for p in dataset.iterdir() if not p.name.startswith(".")) == [
        "2d_autocontrasted_fields_and_single_cells_fish_1",
        "2d_autocontrasted_fields_and_single_cells_fish_2",
        "2d_autocontrasted_single_cell_features_fish_1",
        "2d_autocontrasted_single_cell_features_fish_2",
    ]
    n_rows = {}
    for n in (1, 2):
        (table,) = (dataset / f"2d_autocontrasted_single_cell_features_fish_{n}" / "features").glob(
            "*"
        )
        prefix, _, suffix = table.name.partition("_")
        assert suffix == "cp_features.csv"
        int(prefix, 16)
        features = pd.read_csv(table)
        extra = ["no_structure", *TRUTH_COLUMNS] if n == 2 else TRUTH_COLUMNS
        assert list(features.columns) == FEATURE_COLUMNS + extra
        fields = dataset / f"2d_autocontrasted_fields_and_single_cells_fish_{n}"
        metadata = pd.read_csv(fields / "metadata.csv")
        assert list(metadata.columns) == METADATA_COLUMNS
        assert set(metadata["Dataset"]) == {f"fish_{n}"}
        keys = ["napariCell_ObjectNumber", "fov_path"]
        meta_keys = metadata.rename(columns={"original_fov_location": "fov_path"})[keys]
        assert not meta_keys.duplicated().any()
        assert not meta_keys.reset_index(drop=True).equals(features[keys])
        images = sorted(p.name for p in (fields / "rescaled_2D_single_cell_tiff_path").iterdir())
        relative = metadata["rescaled_2D_single_cell_tiff_path"]
        assert all(not Path(p).is_absolute() and len(Path(p).parts) >= 2 for p in relative)
        assert sorted(Path(p).name for p in relative) == images
        assert all(name.endswith(".tiff") for name in images)
        n_rows[n] = len(features)
    assert n_rows[1] + n_rows[2] == 60
    assert 0.5 <= n_rows[1] / 60 <= 0.7


def test_feature_values(cells):
    assert cells["napariCell_ObjectNumber"].min() == 1
    for _, fov in cells.groupby("fov_path"):
        assert sorted(fov["napariCell_ObjectNumber"]) == list(range(1, len(fov) + 1))
        assert fov["cell_age"].nunique() == 1
    assert cells.groupby("fov_path").size().max() > 1
    assert all(p.startswith("/allen/aics/") and p.endswith(".czi") for p in cells["fov_path"])
    assert set(cells["cell_age"]) == {18, 32}
    assert (cells["Age"] == cells["cell_age"]).all()
    np.testing.assert_allclose(cells[FRACTIONS].sum(axis=1), 1.0, atol=1e-9)
    assert (cells[FRACTIONS] >= 0).all().all()
    assert (
        cells["napariCell_AreaShape_MinorAxisLength"]
        <= cells["napariCell_AreaShape_MajorAxisLength"]
    ).all()
    assert (
        cells[["Maximum_Coefficient_Variation", "Peak_Height", "Peak_Distance"]].notna().all().all()
    )
    for score in SCORES:
        assert set(cells[score]) <= {0, 1, 2, 3, 4, 5}
        assert cells[score].dtype.kind == "i"


def test_no_signal_cells(cells):
    no_signal = cells["synthetic_level"].isna()
    for cohort in ("fish_1", "fish_2"):
        assert no_signal[cells["cohort"] == cohort].sum() >= 1
    assert (cells.loc[no_signal, SCORES] == 0).all().all()
    assert (cells.loc[~no_signal, SCORES] > 0).all().all()
    fish_2 = cells[cells["cohort"] == "fish_2"]
    assert (fish_2.loc[fish_2["synthetic_level"].isna(), "no_structure"] == 0).all()
    assert fish_2.loc[fish_2["synthetic_level"].notna(), "no_structure"].isna().all()
    levels = cells["synthetic_level"].dropna()
    assert levels.between(1, 5).all()
    blank = tifffile.imread(cells.loc[no_signal, "image"].iloc[0], key=1)
    assert blank.max() < 40


def test_tiff_pages(cells):
    shapes = []
    for _, cell in cells.iterrows():
        with tifffile.TiffFile(cell["image"]) as tif:
            assert len(tif.pages) == 10
            assert tif.pages[0].compression in (
                tifffile.COMPRESSION.ADOBE_DEFLATE,
                tifffile.COMPRESSION.DEFLATE,
            )
            pages = tif.asarray()
            x_resolution = tif.pages[0].tags["XResolution"].value
        assert pages.dtype == np.uint8 and pages.ndim == 3
        shapes.append(pages.shape[1:])
        assert 1e4 * x_resolution[1] / x_resolution[0] == pytest.approx(PIXEL_SIZE_UM)
        mask = pages[9]
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(pages[8], 255 - mask)
        # the table's area is in pixels of 0.12 um, the AICS tables' unit
        assert (mask == 255).sum() * (PIXEL_SIZE_UM / 0.12) ** 2 == pytest.approx(
            cell["napariCell_AreaShape_Area"])
        assert pages[1][mask == 0].max() == 0
        if not np.isnan(cell["synthetic_level"]):
            assert pages[1][mask == 255].max() == 255
        for seg in pages[5:8]:
            assert set(np.unique(seg)) <= {0, 255}
    sides_um = np.array(shapes) * PIXEL_SIZE_UM
    assert sides_um.min() >= 10 and sides_um.max() <= 150  # real cells: 20-80 um long
    assert len({tuple(s) for s in shapes}) > 10
    assert (sides_um[:, 0] != sides_um[:, 1]).any()


def test_load_aics_gives_the_rendering_pixel_size_and_the_rule_takes_it(dataset, tmp_path):
    from sarcnet_sklearn._pixel_size import PixelSizeRule
    from sarcnet_sklearn.datasets import load_aics

    loaded = load_aics(dataset)
    assert loaded["pixel_size"].tolist() == [PIXEL_SIZE_UM] * len(loaded)
    rule = PixelSizeRule(loaded)
    assert rule.known.all() and not any(rule.needs_metadata(row) for row in range(len(loaded)))


def test_several_pixel_sizes_render_the_cells_at_each_in_turn(tmp_path):
    from sarcnet_sklearn._pixel_size import tiff_pixel_size
    from sarcnet_sklearn.datasets import load_aics

    root = make_synthetic_aics(tmp_path / "mixed", n_cells=4, pixel_size_um=[0.5, 1.0],
                               random_state=1)
    loaded = load_aics(root)
    sizes = dict(zip(loaded["image_path"], loaded["pixel_size"], strict=True))
    assert sorted(sizes.values()) == [0.5, 0.5, 1.0, 1.0]
    for path, size in sizes.items():  # each file says its own
        assert tiff_pixel_size(path) == pytest.approx(size)
        assert tifffile.imread(path).shape[-1] > 0
    with pytest.raises(ValueError, match=r"pixel_size_um\[1\]"):
        make_synthetic_aics(tmp_path / "bad", n_cells=2, pixel_size_um=[0.5, 0.0])
    with pytest.raises(ValueError, match="empty"):
        make_synthetic_aics(tmp_path / "none", n_cells=2, pixel_size_um=[])


def test_mask_shape_measures(cells):
    aspect = (
        cells["napariCell_AreaShape_MajorAxisLength"]
        / cells["napariCell_AreaShape_MinorAxisLength"]
    )
    assert aspect.min() > 1.2 and aspect.max() < 5
    assert aspect.std() > 0.2
    area_um2 = cells["napariCell_AreaShape_Area"] * 0.12**2
    assert area_um2.between(300, 2600).all()  # real hiPSC-CMs: hundreds to thousands of um^2
    assert 650 < area_um2.median() < 1200


def _striation_strength(path: Path) -> float:
    """In-cell high-frequency energy relative to the in-cell mean."""
    pages = tifffile.imread(path)
    image, mask = pages[1].astype(float), ndi.binary_erosion(pages[9] > 0, iterations=2)
    return float(
        np.abs(ndi.laplace(ndi.gaussian_filter(image, 1.0)))[mask].mean() / image[mask].mean()
    )


def test_structure_follows_level(cells):
    signal = cells.dropna(subset=["synthetic_level"])
    strength = [_striation_strength(p) for p in signal["image"]]
    assert spearmanr(strength, signal["synthetic_level"])[0] > 0.5


def test_features_follow_level(cells):
    signal = cells.dropna(subset=["synthetic_level"])
    level = signal["synthetic_level"]
    assert spearmanr(signal["Frac_Area_Organized_ZDisks"], level)[0] > 0.4
    assert spearmanr(signal["Frac_Area_Disorganized_Puncta"], level)[0] < -0.4
    mean_score = signal[SCORES].mean(axis=1)
    assert spearmanr(level, mean_score)[0] > 0.7


def test_deterministic(tmp_path):
    first = make_synthetic_aics(tmp_path / "a", n_cells=6, image_size=20, random_state=3)
    second = make_synthetic_aics(tmp_path / "b", n_cells=6, image_size=20, random_state=3, n_jobs=2)
    other = make_synthetic_aics(tmp_path / "c", n_cells=6, image_size=20, random_state=4)

    def contents(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != _synthetic.MARKER_FILE
        }

    assert contents(first) == contents(second)
    assert contents(first) != contents(other)


def test_expert_scores_like_real():
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(_synthetic._draw_cells(rng, 4000))
    signal = cells[~cells["no_signal"]]
    assert spearmanr(signal[SCORES[0]], signal[SCORES[1]])[0] == pytest.approx(0.655, abs=0.07)
    for score, real in REAL_FREQUENCIES.items():
        counts = np.bincount(signal[score], minlength=6)[1:]
        np.testing.assert_allclose(counts / counts.sum(), real / real.sum(), atol=0.03)
    mean_score = signal[SCORES].mean(axis=1)
    by_day = mean_score.groupby(signal["day"]).mean()
    assert by_day[32] - by_day[18] == pytest.approx(3.30 - 2.82, abs=0.15)
    assert signal["day"].value_counts(normalize=True).min() > 0.4
    assert 0.005 < cells["no_signal"].mean() < 0.04


def test_fields_are_alike_as_the_real_ones():
    """Real labels (original cohort): median 10 cells per field, ICC(1) of the mean score by
    field 0.246, 0.140 within a day (the day, one per field, is the rest)."""
    icc, within_day, sizes = [], [], []
    for seed in (0, 1, 2):
        cells = pd.DataFrame(_synthetic._draw_cells(np.random.default_rng(seed), 5000))
        signal = cells[~cells["no_signal"]]
        score = signal[SCORES].mean(axis=1)
        icc.append(field_icc(score, signal["fov_path"]))
        centred = score - score.groupby(signal["day"]).transform("mean")
        within_day.append(field_icc(centred, signal["fov_path"]))
        sizes.append(cells.groupby("fov_path").size().median())
        assert (cells.groupby("fov_path")["day"].nunique() == 1).all()
    assert np.mean(icc) == pytest.approx(0.25, abs=0.04)
    assert np.mean(within_day) == pytest.approx(0.14, abs=0.04)
    assert np.median(sizes) == 10


def test_acquisition_blurs_and_hazes_the_structure():
    """Fine striations (period 4 px) fade against coarse ones (16 px) out of focus, and a haze
    takes contrast from both (the stretch to 0-255 restores the range, not the contrast)."""
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), bool)
    mask[8:56, 16:48] = True
    rows = np.arange(64)[:, None] * np.ones((1, 64))
    pattern = 127 + 60 * np.cos(2 * np.pi * rows / 4) + 60 * np.cos(2 * np.pi * rows / 16)
    page = np.where(mask, pattern, 0).astype(np.uint8)

    def amplitude(image, period):
        profile = image[16:48, 20:44].astype(float).mean(axis=1)
        phase = np.exp(-2j * np.pi * np.arange(16, 48) / period)
        return 2 * abs((profile * phase).sum()) / len(profile)

    def seen(background, defocus_px):
        acquisition = {"brightness": 4.0, "background": background, "defocus_px": defocus_px}
        return _acquisition.apply_acquisition(rng, page, mask, acquisition, 64)

    sharp, blurred, hazy = seen(0.0, 0.0), seen(0.0, 1.2), seen(0.4, 0.0)
    fine = amplitude(sharp, 4) / amplitude(sharp, 16)
    assert amplitude(blurred, 4) / amplitude(blurred, 16) < 0.8 * fine
    assert amplitude(hazy, 16) < 0.9 * amplitude(sharp, 16)
    assert not blurred[~mask].any() and not hazy[~mask].any()


def test_day_32_scores_higher(cells):
    signal = cells.dropna(subset=["synthetic_level"])
    mean_score = signal[SCORES].mean(axis=1)
    by_day = mean_score.groupby(signal["cell_age"]).mean()
    assert by_day[32] > by_day[18]
    plate = signal["fov_path"].str.extract(r"/(\d{10})_63X")[0]
    assert set(plate[signal["cell_age"] == 18]) == {"5500000013"}
    assert set(plate[signal["cell_age"] == 32]) == {"5500000014"}


def test_refuses_foreign_folder(tmp_path):
    user_file = tmp_path / "notes.txt"
    user_file.write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        make_synthetic_aics(tmp_path, n_cells=3, image_size=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert user_file.read_text() == "keep me"
    with pytest.raises(ValueError):
        make_synthetic_aics(user_file, n_cells=3, image_size=32)


def test_rewrites_own_folder(tmp_path):
    root = make_synthetic_aics(tmp_path / "new" / "deeper", n_cells=4, image_size=32)
    make_synthetic_aics(root, n_cells=3, image_size=32, random_state=1)
    for n in (1, 2):
        tables = list(
            (root / f"2d_autocontrasted_single_cell_features_fish_{n}" / "features").glob("*")
        )
        assert len(tables) == 1
    images = list(root.rglob("*.tiff"))
    assert len(images) == 3


@pytest.mark.parametrize("kwargs", [{"n_cells": 0}, {"image_size": 8}, {"pixel_size_um": 0},
                                    {"pixel_size_um": float("nan")},
                                    {"image_size": 64, "pixel_size_um": 0.5}])
def test_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_synthetic_aics(tmp_path / "x", **kwargs)


def test_sarcomere_lengths_are_real(cells):
    signal = cells.dropna(subset=["synthetic_level"])
    length = signal["synthetic_sarcomere_length_um"]
    assert length.between(1.55, 2.05).all()  # hiPSC-CMs: about 1.6-2.0 um
    assert 1.65 < length.median() < 1.85 and length.std() > 0.05
    assert spearmanr(length, signal["synthetic_level"])[0] > 0.3  # immature: shorter
    # Peak_Distance is in pixels of 0.12 um; at 0.5 um/px the texture is blurred, so only
    # a loose check that it is the sarcomere's scale (a real striated cell: 14-16 px)
    assert 8 < signal["Peak_Distance"].median() < 32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cell_is_the_same_at_every_pixel_size_and_its_measures_match_the_truth(seed):
    rng = np.random.default_rng(seed)
    cell = draw_cell(rng, 4.0 + rng.random())  # organized: a sarcomere length to measure
    measured = {}
    for pixel_size in (0.06, 0.12, 0.24):
        rendered = render_cell(cell, pixel_size)
        assert rendered.mask.sum() * pixel_size**2 == pytest.approx(cell.area_um2, rel=0.02)
        measures = measure_sarcomeres(rendered.structure, rendered.mask, pixel_size)
        measured[pixel_size] = measures
        # the drawn period; blends of patches shift the local period a little (the 3 % of
        # test_sarcomere holds for patterns of one period)
        assert measures["sarcomere_length_um"] == pytest.approx(cell.sarcomere_length_um,
                                                                rel=0.05)
        assert measures["orientation_order"] == pytest.approx(rendered.orientation_order,
                                                              abs=0.1)
    for pixel_size in (0.06, 0.24):
        assert measured[pixel_size]["sarcomere_length_um"] == pytest.approx(
            measured[0.12]["sarcomere_length_um"], rel=0.01)
        assert measured[pixel_size]["orientation_order"] == pytest.approx(
            measured[0.12]["orientation_order"], abs=0.05)
