"""Physical units end to end: where a cell's pixel size comes from, crops that carry it, and
Protocol 1 features that agree across pixel sizes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from sarcnet_sklearn import PROTOCOL_1
from sarcnet_sklearn._pixel_size import (
    PIXEL_SIZE_ASSUMED_COLUMN,
    cell_pixel_sizes,
    model_pixel_size,
    tiff_pixel_size,
)
from sarcnet_sklearn._resample import resample_cell
from sarcnet_sklearn.datasets._cell_render import draw_cell, render_cell
from sarcnet_sklearn.deploy import ModelInputs, check_cells
from sarcnet_sklearn.features import extract_protocol1
from sarcnet_sklearn.fields._crops import write_cell_tiff


@pytest.fixture(scope="module")
def one_cell_two_sizes(tmp_path_factory):
    """One organized synthetic cell rendered at 0.06 and 0.12 um/px, as crop files that carry
    their pixel size."""
    folder = tmp_path_factory.mktemp("units")
    cell = draw_cell(np.random.default_rng(4), 4.5)
    paths = {}
    for size in (0.06, 0.12):
        rendered = render_cell(cell, size)
        paths[size] = write_cell_tiff(folder / f"cell_{size}.tiff", rendered.structure,
                                      rendered.mask, pixel_size_um=size)
    return paths


def test_crops_carry_their_pixel_size(one_cell_two_sizes):
    for size, path in one_cell_two_sizes.items():
        assert tiff_pixel_size(path) == pytest.approx(size)
        assert tifffile.imread(path).shape[0] == 10


def test_pixel_size_precedence_given_then_column_then_metadata_then_assumed(one_cell_two_sizes):
    files = [str(one_cell_two_sizes[0.06]), str(one_cell_two_sizes[0.12]), "nowhere.tiff"]
    cells = pd.DataFrame({"image_path": files, "pixel_size": [0.3, np.nan, np.nan]})
    with pytest.warns(UserWarning, match="as if at 0.24 um/px") as caught:
        sizes, assumed = cell_pixel_sizes(cells, "image_path", assumed=0.24)
    assert len(caught) == 1
    assert sizes.tolist() == pytest.approx([0.3, 0.12, 0.24])  # column, metadata, assumed
    assert assumed.tolist() == [False, False, True]
    with pytest.warns(UserWarning, match="say otherwise in their metadata"):
        sizes, assumed = cell_pixel_sizes(cells, "image_path", pixel_size=0.2,
                                          source="--pixel-size")
    assert sizes.tolist() == [0.2] * 3 and not assumed.any()


@pytest.mark.parametrize("bad", [0, -0.12, float("nan"), 50.0])
def test_implausible_pixel_sizes_are_refused_naming_their_source(bad):
    cells = pd.DataFrame({"image_path": ["a.tiff"], "pixel_size": [bad]})
    with pytest.raises(ValueError, match="--pixel-size"):
        cell_pixel_sizes(cells, "image_path", pixel_size=bad, source="--pixel-size")
    if np.isfinite(bad):
        with pytest.raises(ValueError, match="column 'pixel_size', row 0"):
            cell_pixel_sizes(cells, "image_path")


def test_model_pixel_size_from_the_model_file_metadata():
    assert model_pixel_size({"training": {"pixel_size_um": 0.24}}) == 0.24
    assert model_pixel_size({"training": {}}) == 0.12
    with pytest.raises(ValueError, match="training pixel size"):
        model_pixel_size({"training": {"pixel_size_um": -1}})


def test_resample_keeps_dtype_and_shrinks_with_anti_aliasing():
    stripes = np.tile(np.array([0, 255], np.uint8), (64, 32))  # 2 px period: Nyquist
    small, mask = resample_cell(stripes, stripes > 0, 0.06, 0.12)
    assert small.shape == (32, 32) and small.dtype == np.uint8 and mask.dtype == bool
    assert small.std() < 0.1 * stripes.std()  # averaged away, not aliased into stripes


def test_protocol1_features_agree_across_pixel_sizes(one_cell_two_sizes):
    fine, coarse = (tifffile.imread(one_cell_two_sizes[size]) for size in (0.06, 0.12))
    at = {0.06: extract_protocol1(fine[1], fine[9], pixel_size=0.06, texture_pixel_size=0.12),
          0.12: extract_protocol1(coarse[1], coarse[9], pixel_size=0.12,
                                  texture_pixel_size=0.12)}
    for name in PROTOCOL_1:
        assert at[0.06][name] == pytest.approx(at[0.12][name], rel=0.1), name
    native = extract_protocol1(fine[1], fine[9], pixel_size=0.06)  # GLCM at its own pixels
    assert native["peak_distance"] != pytest.approx(at[0.12]["peak_distance"], rel=0.1)


def test_check_cells_measures_each_cell_at_its_own_pixel_size(one_cell_two_sizes):
    cells = pd.DataFrame({"image_path": [str(path) for path in one_cell_two_sizes.values()]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both sizes come from the files: no warning
        table, errors, _, sizes, assumed = check_cells(
            cells, ModelInputs(PROTOCOL_1, image_size=16), sarcomere=True)
    assert errors.isna().all() and not assumed.any()
    assert sizes.tolist() == pytest.approx([0.06, 0.12])
    fine, coarse = table.iloc[0], table.iloc[1]
    assert fine["cell_area"] == pytest.approx(coarse["cell_area"], rel=0.02)
    assert fine["sarcomere_length_um"] == pytest.approx(coarse["sarcomere_length_um"], rel=0.02)
    assert PIXEL_SIZE_ASSUMED_COLUMN not in table  # the flag is predict's output column


def test_implausible_metadata_fails_its_row_only(one_cell_two_sizes, tmp_path):
    structure = tifffile.imread(one_cell_two_sizes[0.12])
    bad = tmp_path / "bad_metadata.tiff"
    per_cm = 1e4 / 40.0  # 40 um per pixel: no microscope of cells
    tifffile.imwrite(bad, structure, resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    cells = pd.DataFrame({"image_path": [str(one_cell_two_sizes[0.12]), str(bad)]})
    _, errors, _, sizes, _ = check_cells(cells, ModelInputs(PROTOCOL_1, image_size=16))
    assert errors.iloc[0] is None and sizes[0] == pytest.approx(0.12)
    assert "bad_metadata.tiff's metadata" in errors.iloc[1]
