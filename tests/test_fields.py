"""Fields of view to per-cell scores: reading, the AICS crop recipe, scoring, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
from bioio.writers import OmeTiffWriter
from bioio_base.types import PhysicalPixelSizes
from PIL import Image
from skimage.measure import regionprops

from sarcnet_sklearn import PROTOCOL_1, make_sarcnet_pipeline
from sarcnet_sklearn._columns import SARCOMERE_COLUMNS
from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.deploy import load_model, save_model
from sarcnet_sklearn.explain import grad_cam
from sarcnet_sklearn.features import Protocol1Extractor
from sarcnet_sklearn.fields import (
    POSITION_COLUMNS,
    FieldImage,
    cut_cells,
    read_field,
    read_labels,
    score_fields,
    stretch_field,
)
from sarcnet_sklearn.fields._score import cut_fields, measure_cells

from .aics_crop_reference import reference_cell_crop, reference_field_stretch


@pytest.fixture(scope="module")
def field_and_labels():
    return make_synthetic_field((192, 224), n_cells=4, random_state=3)


@pytest.fixture(scope="module")
def fields_model_path(tmp_path_factory):
    """A Protocol 1 model trained in memory on the crops of two synthetic fields."""
    # cells of real, varied sizes: enough fields that the test fields' cells lie in range
    pairs = [make_synthetic_field((192, 192), 4, random_state=seed, return_levels=True)
             for seed in (10, 11, 12, 13)]
    table = measure_cells(cut_fields([p[0] for p in pairs], [p[1] for p in pairs],
                                     pixel_size=0.12))
    X = table[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    y = np.concatenate([p[2] for p in pairs])
    model = make_sarcnet_pipeline(protocol=1, image_size=32, max_epochs=2, batch_size=4,
                                  device="cpu", train_split=None, verbose=0, random_state=0,
                                  test_time_augment=False)
    model.fit(X, y)
    return save_model(model, tmp_path_factory.mktemp("model") / "fields.joblib")


@pytest.fixture(scope="module")
def fields_model(fields_model_path):
    return load_model(fields_model_path)


# -- the AICS recipe -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32"])
def test_crops_equal_the_published_aics_recipe_exactly(field_and_labels, dtype):
    field, labels = field_and_labels
    if dtype == "uint8":
        field = (field // 16).astype(np.uint8)
    elif dtype == "float32":
        field = field.astype(np.float32) * 0.37
    stretched = reference_field_stretch(field)
    np.testing.assert_array_equal(stretch_field(field), stretched)
    cells = cut_cells(field, labels)
    assert [cell.label for cell in cells] == [1, 2, 3, 4]
    for cell in cells:
        expected = reference_cell_crop(stretched, labels, cell.label)
        assert cell.image.dtype == np.uint8 and cell.image.shape == expected.shape
        np.testing.assert_array_equal(cell.image, expected)
        assert cell.image.max() == 255 and not cell.image[~cell.mask].any()


def test_a_naive_crop_differs_from_the_recipe(field_and_labels):
    """The recipe matters: a crop stretched on its own (no field stretch) is not the same."""
    field, labels = field_and_labels
    cell = cut_cells(field, labels)[0]
    rows, cols = slice(cell.bbox[0], cell.bbox[2]), slice(cell.bbox[1], cell.bbox[3])
    own = field[rows, cols].astype(float) * cell.mask
    naive = np.round(255 * own / own.max()).astype(np.uint8)
    assert np.abs(naive.astype(int) - cell.image).max() > 5


def test_positions_match_regionprops_and_bbox_is_inclusive(field_and_labels):
    field, labels = field_and_labels
    cells = cut_cells(FieldImage(field, 0.12), labels)
    for cell, props in zip(cells, regionprops(labels), strict=True):
        assert cell.bbox == props.bbox and cell.area == props.area
        np.testing.assert_allclose(cell.centroid, props.centroid)
        assert cell.mask.shape == (cell.bbox[2] - cell.bbox[0], cell.bbox[3] - cell.bbox[1])
        assert cell.mask[0].any() and cell.mask[-1].any()  # first and last rows both kept
        assert cell.mask[:, 0].any() and cell.mask[:, -1].any()
        assert not cell.touches_border and cell.error is None


def test_border_cells_one_pixel_labels_and_empty_cells_get_their_own_errors(field_and_labels):
    field, labels = field_and_labels
    field, labels = field.copy(), labels.copy()
    labels[0:10, 0:12] = 7  # a cell at the corner
    labels[100, 100] = 8 if labels[100, 100] == 0 else labels[100, 100]
    labels[150:160, 5:15] = 9
    field[150:160, 5:15] = 0  # no signal
    labels[2, 200] = 10
    cells = {cell.label: cell for cell in cut_cells(field, labels)}
    assert cells[7].touches_border and cells[7].error is None
    assert "single pixel" in cells[10].error
    assert "no signal" in cells[9].error
    assert all(cells[k].error is None for k in (1, 2, 3, 4))


# -- bad input -------------------------------------------------------------------------------


def test_bad_fields_and_label_images_are_clear_errors(field_and_labels, tmp_path):
    field, labels = field_and_labels
    with pytest.raises(ValueError, match=r"shape \(10, 10\) but the field has shape"):
        cut_cells(field, labels[:10, :10])
    with pytest.raises(ValueError, match="integer labels"):
        cut_cells(field, labels + 0.5)
    with pytest.raises(ValueError, match="no cells"):
        cut_cells(field, np.zeros_like(labels))
    with pytest.raises(ValueError, match="negative"):
        cut_cells(field, -labels)
    nan_field = field.astype(np.float32)
    nan_field[5, 5] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        cut_cells(nan_field, labels)
    with pytest.raises(ValueError, match="all zero"):
        cut_cells(np.zeros_like(field), labels)
    with pytest.raises(ValueError, match="does not look like a label image.*swapped"):
        cut_cells(labels, field)  # swapped
    # integral floats (a label image saved as float) are fine
    assert len(cut_cells(field, labels.astype(np.float32))) == 4
    # files are named in the message
    tifffile.imwrite(tmp_path / "field.tif", field)
    tifffile.imwrite(tmp_path / "small_labels.tif", labels[:50])
    with pytest.raises(ValueError, match="field.tif.*small_labels.tif.*shape"):
        cut_fields(tmp_path / "field.tif", tmp_path / "small_labels.tif", pixel_size=0.12)
    tifffile.imwrite(tmp_path / "zero.tif", np.zeros_like(field))
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    with pytest.raises(ValueError, match="zero.tif.*all zero"):
        cut_fields(tmp_path / "zero.tif", tmp_path / "labels.tif", pixel_size=0.12)
    with pytest.raises(ValueError, match="same file was given as the field and its labels"):
        cut_fields(tmp_path / "field.tif", tmp_path / "field.tif", pixel_size=0.12)


def test_labels_must_be_given_for_every_field(field_and_labels):
    field, labels = field_and_labels
    with pytest.raises(ValueError, match="2 field.*1 label image"):
        cut_fields([field, field], [labels], pixel_size=0.12)
    with pytest.raises(ValueError, match=r"<array 1>: no label image"):
        cut_fields([field, field], [labels, None], pixel_size=0.12)


def test_unknown_pixel_size_warns_and_uses_the_aics_one(field_and_labels):
    field, labels = field_and_labels
    with pytest.warns(UserWarning, match="no pixel size"):
        table = cut_fields(field, labels)
    assert (table["pixel_size"] == 0.12).all() and table["pixel_size_assumed"].all()


# -- reading files -------------------------------------------------------------------------


def test_read_field_picks_scene_channel_and_z_and_lists_what_the_file_holds(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (2, 3, 40, 50), dtype=np.uint16)
    path = tmp_path / "stack.ome.tiff"
    OmeTiffWriter.save(stack, path, dim_order="CZYX", channel_names=["DAPI", "ACTN2"],
                       physical_pixel_sizes=PhysicalPixelSizes(0.5, 0.108, 0.108))
    with pytest.raises(ValueError, match=r"2 channels \(0: 'DAPI', 1: 'ACTN2'\)"):
        read_field(path, z=0)
    with pytest.raises(ValueError, match=r"has no channel 'GFP'.*'DAPI'.*'ACTN2'"):
        read_field(path, channel="GFP", z=0)
    with pytest.raises(ValueError, match=r"3 Z planes.*'max'"):
        read_field(path, channel="ACTN2")
    field = read_field(path, channel="ACTN2", z="max")
    np.testing.assert_array_equal(field.data, stack[1].max(axis=0))
    assert field.pixel_size == pytest.approx(0.108) and field.channel == "ACTN2"
    np.testing.assert_array_equal(read_field(path, channel=0, z=2).data, stack[0, 2])
    np.testing.assert_array_equal(read_field(path, channel="1", z="1").data, stack[1, 1])
    assert read_field(path, channel=1, z=0, pixel_size=0.2).pixel_size == 0.2
    with pytest.raises(ValueError, match="no Z plane 3"):
        read_field(path, channel=1, z=3)

    scenes = tmp_path / "scenes.ome.tiff"
    OmeTiffWriter.save([stack[0, 0], stack[1, 1]], scenes, dim_order=["YX", "YX"])
    with pytest.raises(ValueError, match=r"2 scenes \(0: 'Image:0', 1: 'Image:1'\)"):
        read_field(scenes)
    np.testing.assert_array_equal(read_field(scenes, scene=1).data, stack[1, 1])
    assert read_field(scenes, scene="Image:0").pixel_size is None


def test_read_plain_tiff_imagej_tiff_and_png(tmp_path, field_and_labels):
    field, labels = field_and_labels
    tifffile.imwrite(tmp_path / "plain.tif", field)
    plain = read_field(tmp_path / "plain.tif")
    np.testing.assert_array_equal(plain.data, field)
    assert plain.pixel_size is None  # tifffile's default resolution carries no unit
    tifffile.imwrite(tmp_path / "ij.tif", field, imagej=True, resolution=(1 / 0.13, 1 / 0.13),
                     metadata={"unit": "um"})
    assert read_field(tmp_path / "ij.tif").pixel_size == pytest.approx(0.13, rel=1e-4)
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "labels.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "labels.png"), labels)
    rgb = np.stack([field // 16, field // 32, field // 64], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"3 colour channels \(0: 'R', 1: 'G', 2: 'B'\)"):
        read_field(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_field(tmp_path / "rgb.png", channel="G").data, rgb[..., 1])
    with pytest.raises(FileNotFoundError, match="no such field file"):
        read_field(tmp_path / "missing.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="junk.tif"):
        read_field(tmp_path / "junk.tif")
    tifffile.imwrite(tmp_path / "two_channel_labels.ome.tif", np.stack([labels, labels]),
                     metadata={"axes": "CYX"})
    with pytest.raises(ValueError, match="label image must be one 2-D plane"):
        read_labels(tmp_path / "two_channel_labels.ome.tif")


# -- scoring ---------------------------------------------------------------------------------


def test_score_fields_gives_one_row_per_cell_with_features_and_scores(
    fields_model, field_and_labels
):
    field, labels = field_and_labels
    labels = labels.copy()
    labels[0:8, 0:8] = 5  # touches the border
    labels[120, 3] = 6 if labels[120, 3] == 0 else labels[120, 3]  # may be a single pixel
    labels[60, 100] = 0  # a hole does no harm
    scores = score_fields(fields_model, [field, field], [labels, labels], pixel_size=0.12)
    n_labels = len(np.unique(labels)) - 1
    assert len(scores) == 2 * n_labels
    assert list(scores.columns) == POSITION_COLUMNS + PROTOCOL_1 + SARCOMERE_COLUMNS + [
        "score_pred", "score_raw", "error", "out_of_range"]
    assert scores["field"].tolist() == ["<array 0>"] * n_labels + ["<array 1>"] * n_labels
    good = scores[scores["error"].isna()]
    assert set(good["label"]) == {1, 2, 3, 4}
    assert good["score_pred"].between(1, 5).all() and np.isfinite(good[PROTOCOL_1]).all().all()
    border = scores[scores["label"] == 5].iloc[0]
    assert border["touches_border"] and "border" in border["error"]
    assert np.isnan(border["score_pred"]) and np.isfinite(border["cell_area"])
    both = score_fields(fields_model, field, labels, pixel_size=0.12, score_border_cells=True)
    # scored when asked (score_raw; score_pred stays empty if predict_cells flags the tiny
    # square as far outside the training data)
    assert np.isfinite(both.loc[both["label"] == 5, "score_raw"]).all()
    # features are measured at the field's pixel size, their texture at the model's (0.12):
    # read as 0.24 um/px, the cells are twice as large and their texture is resampled
    coarse = score_fields(fields_model, field, labels, pixel_size=0.24)
    np.testing.assert_allclose(coarse["cell_area"][:4], 4 * scores["cell_area"][:4])
    assert (coarse["pixel_size"] == 0.24).all() and not coarse["pixel_size_assumed"].any()
    assert not np.allclose(coarse["peak_height"][:4], scores["peak_height"][:4])


def test_fields_without_a_pixel_size_are_measured_at_the_models_with_one_warning(
    fields_model, field_and_labels
):
    field, labels = field_and_labels
    known = FieldImage(field, 0.24, None, None, None, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = score_fields(fields_model, [field, known, field], [labels] * 3)
    about = [str(w.message) for w in caught if "pixel size" in str(w.message)]
    assert len(about) == 1, about  # once for the call, naming the column and the count
    assert about[0].startswith("2 of 3 field(s) had no pixel size") and "<array 0>" in about[0]
    assert "'pixel_size_assumed'" in about[0] and "as if at 0.12 um/px, the model's" in about[0]
    assumed = scores["pixel_size_assumed"].to_numpy(bool)
    assert assumed.tolist() == [True] * 4 + [False] * 4 + [True] * 4
    assert scores.loc[~assumed, "pixel_size"].eq(0.24).all()
    given = score_fields(fields_model, field, labels, pixel_size=0.12)
    np.testing.assert_allclose(scores["score_raw"][:4], given["score_raw"])


def test_score_fields_reads_files_and_rejects_protocol_2_models(
    fields_model, field_and_labels, tmp_path, cells, tiny_params
):
    field, labels = field_and_labels
    path = tmp_path / "field.ome.tiff"
    OmeTiffWriter.save(np.stack([np.zeros_like(field) + 7, field]), path, dim_order="CYX",
                       channel_names=["DAPI", "ACTN2"],
                       physical_pixel_sizes=PhysicalPixelSizes(None, 0.12, 0.12))
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    from_file = score_fields(fields_model, path, tmp_path / "labels.tif", channel="ACTN2")
    in_memory = score_fields(fields_model, field, labels, pixel_size=0.12)
    assert from_file["field"].eq(str(path)).all()
    pd.testing.assert_frame_equal(from_file.drop(columns="field"),
                                  in_memory.drop(columns="field"))
    protocol_2 = make_sarcnet_pipeline(protocol=2, device="cpu", **tiny_params)
    protocol_2.fit(cells.head(20), cells["score"].head(20))
    with pytest.raises(ValueError, match="cannot be measured from a field"):
        score_fields(protocol_2, field, labels, pixel_size=0.12)


def test_in_memory_images_score_like_the_same_images_on_disk(
    fields_model, field_and_labels, tmp_path
):
    field, labels = field_and_labels
    table = measure_cells(cut_fields(field, labels, pixel_size=0.12))
    paths = []
    for row in table.itertuples():
        pages = np.zeros((10, *row.crop.shape), np.uint8)
        pages[1], pages[9] = row.crop, row.mask * 255
        paths.append(str(tmp_path / f"cell{row.label}.tiff"))
        tifffile.imwrite(paths[-1], pages)
    arrays = table[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    files = arrays.assign(image_path=paths)
    np.testing.assert_allclose(fields_model.predict(arrays), fields_model.predict(files),
                               rtol=1e-5)
    for array_map, file_map in zip(grad_cam(fields_model, arrays), grad_cam(fields_model, files),
                                   strict=True):
        assert array_map.shape == file_map.shape
        np.testing.assert_allclose(array_map, file_map, atol=1e-5)
    extractor = Protocol1Extractor(image_column="crop", mask_column="mask", structure_page=0,
                                   mask_page=0)
    from_arrays = extractor.fit_transform(table[["crop", "mask"]])
    from_files = Protocol1Extractor().fit_transform(pd.DataFrame({"image_path": paths}))
    np.testing.assert_allclose(from_arrays[PROTOCOL_1], from_files[PROTOCOL_1])
    stacks = pd.DataFrame({"image_path": [tifffile.imread(p) for p in paths]})
    np.testing.assert_allclose(Protocol1Extractor().fit_transform(stacks)[PROTOCOL_1],
                               from_files[PROTOCOL_1])
    lone = Protocol1Extractor(image_column="crop", errors="coerce").fit_transform(
        table[["crop"]])
    assert lone["protocol1_error"].str.contains("no mask page").all()


def test_synthetic_field_is_reproducible_and_its_cells_stay_inside():
    field, labels, levels = make_synthetic_field((160, 200), 5, random_state=1,
                                                 return_levels=True)
    again, labels_again = make_synthetic_field((160, 200), 5, random_state=1)
    np.testing.assert_array_equal(field, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert field.dtype == np.uint16 and labels.dtype == np.int32 and field.shape == (160, 200)
    assert sorted(np.unique(labels)) == list(range(6)) and levels.shape == (5,)
    assert not labels[[0, -1]].any() and not labels[:, [0, -1]].any()
    assert min(np.bincount(labels.ravel())[1:]) > 200
    with pytest.raises(ValueError, match="too small"):
        make_synthetic_field((40, 40), 30)


# -- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def field_files(tmp_path_factory):
    """Two OME-TIFF fields (DAPI + ACTN2 channels, 0.12 um/px) and their label images."""
    folder = tmp_path_factory.mktemp("fields")
    paths = []
    for seed, shape in ((20, (200, 240)), (21, (180, 180))):
        field, labels = make_synthetic_field(shape, 3, random_state=seed)
        path = folder / f"well_{seed}.ome.tiff"
        OmeTiffWriter.save(np.stack([field // 2, field]), path, dim_order="CYX",
                           channel_names=["DAPI", "ACTN2"],
                           physical_pixel_sizes=PhysicalPixelSizes(None, 0.12, 0.12))
        tifffile.imwrite(folder / f"well_{seed}_labels.tif", labels)
        paths.append((path, folder / f"well_{seed}_labels.tif"))
    return paths


def test_fields_command_writes_the_table_overlays_and_crops_that_train_and_predict_read(
    fields_model_path, field_files, tmp_path, monkeypatch, capsys
):
    from sarcnet_sklearn.commands import main

    (a, a_labels), (b, b_labels) = field_files
    monkeypatch.chdir(tmp_path)  # outputs relative to another working directory
    code = main(["fields", str(fields_model_path), str(a), str(b), "--labels", str(a_labels),
                 str(b_labels), "--channel", "ACTN2", "--out", "run", "--save-crops",
                 "--explain", "--quiet", "--device", "cpu"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    table = pd.read_csv(tmp_path / "run" / "cells.csv")
    assert len(table) == 6 and table["error"].isna().all()
    assert table["field"].tolist() == [str(a)] * 3 + [str(b)] * 3
    assert {"label", "score_pred", "error", "cell_area", "crop_path"} <= set(table.columns)
    for stem in ("well_20", "well_21"):
        for kind in ("scores", "gradcam"):
            png = tmp_path / "run" / "overlays" / f"{stem}_{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str((tmp_path / "run" / "cells.csv").resolve()) in printed.out

    crops_csv = tmp_path / "run" / "crops" / "cells.csv"
    crops = pd.read_csv(crops_csv)
    assert len(crops) == 6 and crops["score"].isna().all()
    pages = tifffile.imread(tmp_path / "run" / "crops" / crops["image_path"][0])
    assert pages.shape[0] == 10 and set(np.unique(pages[9])) == {0, 255}
    np.testing.assert_array_equal(pages[1] > 0, (pages[1] > 0) & (pages[9] == 255))
    crops["score"] = np.linspace(1, 5, len(crops))  # a lab's annotation
    crops.to_csv(crops_csv, index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(crops_csv), "--out", "lab.joblib", "--epochs", "1",
                 "--image-size", "32", "--validation-fraction", "0", "--device", "cpu",
                 "--quiet"]) == 0
    said = capsys.readouterr().out  # the crops carry the field's 0.12 um/px: nothing resampled
    assert "measured at 0.12 um/px, the pixel size the model file records\n" in said
    assert main(["predict", "lab.joblib", str(crops_csv), "--out", "scores.csv",
                 "--quiet"]) == 0
    predicted = pd.read_csv("scores.csv")
    assert len(predicted) == 6 and predicted["error"].isna().all()
    assert predicted["score_pred"].between(1, 5).all()


def test_fields_command_reports_bad_fields_and_goes_on(
    fields_model_path, field_files, tmp_path, capsys
):
    from sarcnet_sklearn.commands import main

    (a, a_labels), (b, _) = field_files
    assert main(["fields", str(fields_model_path), str(a), str(b), "--labels", str(a_labels),
                 "--out", str(tmp_path / "x")]) == 2
    assert "2 field(s)" in capsys.readouterr().err
    # the first field's label image is not the second field's shape: that field fails
    code = main(["fields", str(fields_model_path), str(a), str(b), "--labels", str(a_labels),
                 str(a_labels), "--channel", "1", "--out", str(tmp_path / "y"), "--quiet",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "well_21.ome.tiff" in err and "shape" in err
    table = pd.read_csv(tmp_path / "y" / "cells.csv")
    assert table["label"].notna().sum() == 3 and table["score_pred"].notna().sum() == 3
    assert table.loc[table["label"].isna(), "error"].str.contains("shape").all()
    assert main(["fields", str(fields_model_path), str(a), "--labels", str(a_labels),
                 "--out", str(tmp_path / "z"), "--quiet"]) == 4  # not one cell scored
    assert "2 channels (0: 'DAPI', 1: 'ACTN2')" in capsys.readouterr().err


def test_huge_label_values_keep_their_numbers(field_and_labels):
    field, labels = field_and_labels
    ids = np.array([0, 2**40 + 3, 7, 2**40, 2**62], dtype=np.int64)
    cells = cut_cells(field, ids[labels])
    assert [cell.label for cell in cells] == [7, 2**40, 2**40 + 3, 2**62]
    plain = {cell.label: cell for cell in cut_cells(field, labels)}
    np.testing.assert_array_equal(cells[0].image, plain[2].image)
    np.testing.assert_array_equal(cells[3].mask, plain[4].mask)
