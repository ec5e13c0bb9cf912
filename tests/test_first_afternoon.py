"""A lab's first afternoon (issue #26): failures that explain themselves, maps other tools
open, models that describe themselves, inputs as segmentation tools write them.

Every case runs the real command or function on real files the package writes.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from bioio import BioImage
from bioio.writers import OmeTiffWriter
from bioio_base.types import PhysicalPixelSizes

from sarcnet_sklearn import make_sarcnet_pipeline
from sarcnet_sklearn._columns import PROTOCOL_1, TARGET_COLUMN
from sarcnet_sklearn._reasons import MAP_CODES, MAP_SCORED
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.deploy import save_model
from sarcnet_sklearn.fields import score_fields
from sarcnet_sklearn.fields._score import cut_fields, measure_cells

PIXEL_SIZE = 0.12


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def field():
    """A 96 x 96 field of 4 cells, none touching the border."""
    return make_synthetic_field((96, 96), n_cells=4, random_state=5)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, field):
    """A Protocol 1 model (safe .zip) trained for one epoch on the crops of one field."""
    image, labels = field
    table = measure_cells(cut_fields(image, labels, pixel_size=PIXEL_SIZE))
    X = table[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    model = make_sarcnet_pipeline(protocol=1, image_size=16, max_epochs=1, batch_size=4,
                                  device="cpu", train_split=None, verbose=0, random_state=0,
                                  test_time_augment=False)
    model.fit(X, np.array([1.5, 2.5, 3.5, 4.5]))
    return save_model(model, tmp_path_factory.mktemp("model") / "p1.zip", format="safe")


@pytest.fixture(scope="module")
def troubled_field(tmp_path_factory, field):
    """An OME-TIFF field (0.12 um/px) whose label image holds the 4 good cells, two cells on
    the border, a one-pixel label and a cell without signal."""
    image, labels = field
    image, labels = image.copy(), labels.copy()
    background = labels == 0
    corner = np.zeros_like(background)
    corner[0:6, 0:6] = True
    labels[corner & background] = 11
    edge = np.zeros_like(background)
    edge[90:96, 40:46] = True
    labels[edge & background] = 12
    row, col = np.argwhere(background)[len(np.argwhere(background)) // 2]
    labels[row, col] = 13
    dark = np.zeros_like(background)
    dark[40:44, 0 + 2:6] = True
    dark &= background
    labels[dark] = 14
    image[dark] = 0
    folder = tmp_path_factory.mktemp("troubled")
    path = folder / "well_C3.ome.tiff"
    OmeTiffWriter.save(image, path, dim_order="YX",
                       physical_pixel_sizes=PhysicalPixelSizes(None, PIXEL_SIZE, PIXEL_SIZE))
    tifffile.imwrite(folder / "well_C3_labels.tif", labels)
    return path, folder / "well_C3_labels.tif", image, labels


# -- 1. failures that explain themselves ---------------------------------------------------


def test_fields_counts_unscored_cells_per_reason_and_exits_with_a_documented_status(
    model_file, troubled_field, tmp_path
):
    path, labels_path, image, labels = troubled_field
    out = tmp_path / "scored"
    code, printed, err = _run(["fields", str(model_file), str(path), "--labels",
                               str(labels_path), "--out", str(out), "--quiet"])
    assert code == 3, err  # some cells not scored
    assert "4 of 8 cells were not scored" in err
    assert "2 touches the field's border" in err
    assert "1 a single pixel, not a cell" in err and "1 no signal in the cell" in err
    table = pd.read_csv(out / "cells.csv")
    reasons = table.set_index("label")["reason"]
    assert reasons.loc[[11, 12]].eq("border").all()
    assert reasons.loc[13] == "tiny" and reasons.loc[14] == "no_signal"
    assert reasons.loc[[1, 2, 3, 4]].isna().all()
    record = json.loads((out / "run.json").read_text())  # beside the table
    assert record["command"].startswith("sarcnet-sklearn fields ")
    assert record["cells"]["unscored_by_reason"] == {"border": 2, "tiny": 1, "no_signal": 1}
    assert record["exit_status"] == 3 and record["pixel_size"]["values_um"] == [PIXEL_SIZE]
    assert len(record["model"]["sha256"]) == 64
    assert record["reason_map"][:2] == ["0: no cell", "1: scored"]
    # the border message tells a command-line user the flag, not the Python argument
    border = table.set_index("label").loc[11, "error"]
    assert "--score-border-cells" in border and "score_border_cells=" not in border

    code, printed, err = _run(["fields", str(model_file), str(path), "--labels",
                               str(labels_path), "--out", str(tmp_path / "j"), "--quiet",
                               "--json"])
    summary = json.loads(printed)  # standard output holds the JSON only
    assert summary["exit_status"] == code == 3
    assert summary["n_cells"] == 8 and summary["n_scored"] == 4
    assert summary["unscored_by_reason"] == {"border": 2, "tiny": 1, "no_signal": 1}
    assert "scored 4 of 8 cells" in err

    # a file without a pixel size: one warning for the run, naming the column that marks them
    tifffile.imwrite(tmp_path / "plain.tif", image)
    code, _, err = _run(["fields", str(model_file), str(tmp_path / "plain.tif"), "--labels",
                         str(labels_path), "--out", str(tmp_path / "p"), "--quiet"])
    assert code == 3 and err.count("no pixel size") == 1, err
    assert ("1 of 1 field(s) had no pixel size in their metadata (e.g. "
            f"{tmp_path / 'plain.tif'})") in err
    assert "'pixel_size_assumed'" in err and "--pixel-size" in err
    assert pd.read_csv(tmp_path / "p" / "cells.csv")["pixel_size_assumed"].all()

    # nothing to score: a label image of one cell reaching the border
    only_border = np.where(labels == 1, 1, 0)
    top, left = np.argwhere(only_border)[0]
    only_border[:top, left] = 1
    tifffile.imwrite(tmp_path / "border_labels.tif", only_border)
    code, _, err = _run(["fields", str(model_file), str(path), "--labels",
                         str(tmp_path / "border_labels.tif"), "--out", str(tmp_path / "n"),
                         "--quiet"])
    assert code == 4 and "not one cell could be scored" in err
    code, _, err = _run(["fields", str(model_file), str(path), "--labels",
                         str(tmp_path / "border_labels.tif"), "--out", str(tmp_path / "b"),
                         "--quiet", "--score-border-cells"])
    assert code == 0, err


def test_exit_statuses_are_in_the_help():
    from sarcnet_sklearn.commands import build_parser

    for command in ("fields", "predict"):
        text = build_parser(command)._subparsers._group_actions[0].choices[command].format_help()
        assert "exit status: 0 every cell scored; 3 some cells" in " ".join(text.split())


def test_messages_name_the_option_of_the_door_they_come_through(troubled_field):
    from sarcnet_sklearn._doors import entered_through
    from sarcnet_sklearn.fields import read_field

    path, *_ = troubled_field
    stack = path.with_name("stack.ome.tiff")
    OmeTiffWriter.save(np.ones((2, 8, 8), np.uint16), stack, dim_order="ZYX")
    with pytest.raises(ValueError, match=r"choose one with z=, or z='max'"):
        read_field(stack)
    with entered_through("cli"), pytest.raises(ValueError, match="with --z, or --z max"):
        read_field(stack)
    with entered_through("napari"), pytest.raises(ValueError, match="^the image layer's scale"):
        read_field(stack, pixel_size=0)


def test_overlay_fills_unscored_cells_with_their_reasons_colour(model_file, troubled_field,
                                                                tmp_path):
    from PIL import Image

    from sarcnet_sklearn._reasons import rgba
    from sarcnet_sklearn.deploy import load_model
    from sarcnet_sklearn.fields import stretch_field
    from sarcnet_sklearn.fields._overlay import UNSCORED_ALPHA, plot_field_scores

    _, _, image, labels = troubled_field
    scores = score_fields(load_model(model_file), image, labels, pixel_size=PIXEL_SIZE)
    written = plot_field_scores(stretch_field(image), labels, scores, tmp_path / "o.png")
    picture = np.asarray(Image.open(written).convert("RGB"), dtype=float).reshape(-1, 3)
    legend = Image.open(written).info["Description"]
    assert "touches the field's border (2)" in legend and "no signal in the cell (1)" in legend
    for code in ("border", "no_signal", "other"):
        # a pixel of the reason's colour laid at its opacity over some grey (the field, or
        # the legend's box): the three channels give the same grey
        colour = 255 * np.array(rgba(code)[:3])
        grey = (picture - UNSCORED_ALPHA * colour) / (1 - UNSCORED_ALPHA)
        same = (np.ptp(grey, axis=1) < 4) & (grey.min(axis=1) > -2) & (grey.max(axis=1) < 257)
        assert (same.sum() > 20) == (code != "other"), code


# -- 3. maps that napari and Fiji lay on the field ------------------------------------------


def test_fields_writes_score_and_reason_maps_of_the_fields_shape_and_pixel_size(
    model_file, troubled_field, tmp_path
):
    path, labels_path, image, labels = troubled_field
    out = tmp_path / "scored"
    assert _run(["fields", str(model_file), str(path), "--labels", str(labels_path),
                 "--out", str(out), "--quiet"])[0] == 3
    table = pd.read_csv(out / "cells.csv").set_index("label")
    maps = {kind: BioImage(out / "maps" / f"well_C3_{kind}.ome.tif")
            for kind in ("scores", "reasons", "labels")}
    for image_file in maps.values():
        assert image_file.physical_pixel_sizes.X == image_file.physical_pixel_sizes.Y == PIXEL_SIZE
        assert image_file.get_image_data("YX").shape == image.shape
    scores = maps["scores"].get_image_data("YX")
    reasons = maps["reasons"].get_image_data("YX")
    np.testing.assert_array_equal(maps["labels"].get_image_data("YX"), labels)
    assert np.isnan(scores[labels == 0]).all() and not reasons[labels == 0].any()
    for label, row in table.iterrows():
        inside = labels == label
        if np.isfinite(row.score_pred):
            np.testing.assert_allclose(scores[inside], row.score_pred, rtol=1e-6)
            assert (reasons[inside] == MAP_SCORED).all()
        else:
            assert np.isnan(scores[inside]).all()
            assert (reasons[inside] == MAP_CODES[row.reason]).all()


# -- 2. models that describe themselves ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by the ``train`` command on 60 synthetic cells (1 epoch, 16 px)."""
    from sarcnet_sklearn.datasets import make_synthetic_aics

    folder = tmp_path_factory.mktemp("trained")
    root = make_synthetic_aics(folder / "synthetic", n_cells=60, image_size=32, random_state=0)
    model = folder / "model.zip"
    code, _, err = _run(["train", str(root), "--protocol", "1", "--image-size", "16",
                         "--epochs", "1", "--batch-size", "16", "--validation-fraction", "0.3",
                         "--device", "cpu", "--out", str(model), "--quiet"])
    assert code == 0, err
    return root, model


def test_info_prints_the_card_stored_in_the_model_file(trained):
    import hashlib

    root, model = trained
    code, printed, err = _run(["info", str(model), "--json"])
    assert code == 0, err
    card = json.loads(printed)
    assert card["stored"] and card["format"] == "safe"
    assert card["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert card["backbone"] == "resnet18" and card["protocol"] == 1
    assert card["image_size_px"] == 16 and card["pixel_size_um"] == 0.12
    assert card["score_range"] == [1.0, 5.0]
    data = card["training_data"]
    used = data["n_cells"] + data["n_validation"]
    from sarcnet_sklearn.datasets import load_aics

    assert data["kind"] == "synthetic" and used + data["n_excluded"] == len(load_aics(root))
    assert len(data["fingerprint"]["sha256_16"]) == 16 and data["fingerprint"]["n_cells"] == used
    assert set(card["validation_metrics"]) >= {"spearman", "mae"}
    assert card["calibration"]["score_map"]["kind"] == "affine"
    assert card["calibration"]["intervals"]["n_cells"] == data["n_validation"]
    assert card["versions"]["sarcnet_sklearn"] and card["versions"]["torch"]
    assert "synthetic cells" in card["intended_use"]
    code, printed, _ = _run(["info", str(model)])
    assert code == 0 and printed.startswith("model card")
    assert "kind: synthetic" in printed and "backbone: resnet18" in printed


def test_predict_writes_run_json_and_warns_about_a_synthetic_model_on_other_cells(
    trained, tmp_path
):
    root, model = trained
    code, printed, err = _run(["predict", str(model), str(root), "--out",
                               str(tmp_path / "synthetic.csv"), "--quiet"])
    assert code in (0, 3), err
    assert "trained on synthetic cells" not in err  # synthetic cells: no warning
    # the same images, copied out of the synthetic dataset: a lab's "own" cells
    images = sorted(root.rglob("*.tiff"))[:6]
    own = tmp_path / "own"
    own.mkdir()
    for image in images:
        (own / image.name).write_bytes(image.read_bytes())
    code, printed, err = _run(["predict", str(model), str(own), "--out",
                               str(tmp_path / "scores.csv"), "--pixel-size", "0.12"])
    assert "trained on synthetic cells and is scoring 1 input that is not synthetic" in err
    record = json.loads((tmp_path / "scores.run.json").read_text())
    assert record["command"].startswith("sarcnet-sklearn predict ")
    assert record["model"]["sha256"] == json.loads(_run(["info", str(model), "--json"])[1])[
        "sha256"]
    assert record["model"]["trained_on"].endswith("synthetic cells")
    assert record["pixel_size"]["given_um"] == 0.12
    assert record["pixel_size"]["values_um"] == [0.12]
    assert record["cells"]["n_cells"] == 6 and record["exit_status"] == code
    assert {"sarcnet_sklearn", "torch", "scikit-learn", "numpy"} <= set(record["versions"])


def test_the_report_header_carries_the_cards_key_facts(trained):
    from sarcnet_sklearn.datasets import load_aics
    from sarcnet_sklearn.deploy import load_model
    from sarcnet_sklearn.explain._report import provenance

    root, model = trained
    header = provenance(load_model(model), load_aics(root).head(3), model_path=model)
    assert "synthetic cells" in header["Model card"] and "validation spearman" in header[
        "Model card"] and "intended use" in header["Model card"]


# -- 4. inputs as segmentation tools and microscopes leave them ----------------------------


def _cells_csv_scores(out) -> pd.Series:
    table = pd.read_csv(out / "cells.csv")
    return table.set_index("label")["score_raw"]


def test_npy_cellpose_seg_npy_and_stardist_label_images_are_read(model_file, troubled_field,
                                                                  tmp_path):
    path, labels_path, _, labels = troubled_field
    np.save(tmp_path / "labels.npy", labels.astype(np.int32))
    # cellpose's documented _seg.npy: numpy.save of a dict holding the masks, outlines,
    # flows and settings
    np.save(tmp_path / "well_C3_seg.npy", {
        "masks": labels.astype(np.uint16), "outlines": np.zeros_like(labels, np.uint16),
        "flows": [np.zeros((*labels.shape, 3), np.uint8), np.zeros((2, *labels.shape))],
        "chan_choose": [0, 0], "ismanual": np.zeros(int(labels.max()), bool),
        "filename": str(path), "diameter": 30.0, "est_diam": np.float64(29.5),
        "model_path": "cyto3", "normalize_params": {"lowhigh": None, "percentile": [1.0, 99.0]},
    }, allow_pickle=True)
    # StarDist's label TIFF (save_tiff_imagej_compatible: ImageJ hyperstack, axes YX)
    tifffile.imwrite(tmp_path / "stardist_labels.tif", labels.astype(np.uint16), imagej=True,
                     metadata={"axes": "YX"})
    expected = None
    for name in ("labels.npy", "well_C3_seg.npy", "stardist_labels.tif"):
        out = tmp_path / name.replace(".", "_")
        code, _, err = _run(["fields", str(model_file), str(path), "--labels",
                             str(tmp_path / name), "--out", str(out), "--quiet"])
        assert code == 3, (name, err)
        scores = _cells_csv_scores(out)
        if expected is None:
            expected = scores
        pd.testing.assert_series_equal(scores, expected)
    assert expected.index.tolist() == [1, 2, 3, 4, 11, 12, 13, 14]


def test_a_seg_npy_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    import pickle

    from sarcnet_sklearn.fields import read_labels

    class Payload:
        def __reduce__(self):
            return (exec, ("open(__import__('sys').argv[0] + '.pwned', 'w')",))

    marker = tmp_path / "pwned"
    header = {"descr": "|O", "fortran_order": False, "shape": ()}
    with open(tmp_path / "evil_seg.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        pickle.dump({"masks": Payload()}, handle, protocol=4)
    with pytest.raises(ValueError, match=r"builtins.exec.*refusing to unpickle"):
        read_labels(tmp_path / "evil_seg.npy")
    assert not marker.exists()
    np.save(tmp_path / "objects.npy", np.array([{"masks": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds Python objects"):
        read_labels(tmp_path / "objects.npy")  # a plain .npy is never unpickled


def test_ome_zarr_fields_are_read_through_bioios_plugin(model_file, troubled_field, tmp_path):
    pytest.importorskip("bioio_ome_zarr", reason="needs bioio-ome-zarr (the 'formats' extra)")
    from bioio_ome_zarr.writers import OMEZarrWriter

    path, labels_path, image, labels = troubled_field
    data = np.stack([image // 2, image])[:, None]  # C, Z, Y, X
    writer = OMEZarrWriter(
        tmp_path / "well_C3.ome.zarr", level_shapes=data.shape, dtype=data.dtype,
        axes_names=["c", "z", "y", "x"], axes_types=["channel", "space", "space", "space"],
        axes_units=[None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, PIXEL_SIZE, PIXEL_SIZE])
    writer.write_full_volume(data)
    code, _, err = _run(["fields", str(model_file), str(tmp_path / "well_C3.ome.zarr"),
                         "--labels", str(labels_path), "--channel", "1", "--out",
                         str(tmp_path / "zarr"), "--quiet"])
    assert code == 3, err
    code, _, err = _run(["fields", str(model_file), str(path), "--labels", str(labels_path),
                         "--out", str(tmp_path / "tiff"), "--quiet"])
    pd.testing.assert_series_equal(_cells_csv_scores(tmp_path / "zarr"),
                                   _cells_csv_scores(tmp_path / "tiff"))
    table = pd.read_csv(tmp_path / "zarr" / "cells.csv")
    assert table["pixel_size"].eq(PIXEL_SIZE).all()  # from the OME-Zarr metadata


def test_an_ome_zarr_field_without_the_plugin_names_the_extra(tmp_path):
    from importlib.util import find_spec

    if find_spec("bioio_ome_zarr") is not None:
        pytest.skip("bioio-ome-zarr is installed here")
    import zarr

    from sarcnet_sklearn.fields import read_field

    zarr.open_group(tmp_path / "f.ome.zarr", mode="w")
    with pytest.raises(ValueError, match=r"pip install 'sarcnet-sklearn\[formats\]'"):
        read_field(tmp_path / "f.ome.zarr")


def test_predict_scores_plain_single_cell_images_with_their_mask_files(
    model_file, field, tmp_path
):
    from PIL import Image

    from sarcnet_sklearn.deploy import load_model

    image, labels = field
    images, masks = tmp_path / "cells", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for label in (1, 2, 3, 4):  # each cell's image, as a plain 16-bit TIFF, and its mask
        tifffile.imwrite(images / f"cell{label}.tif", image, resolution=(1e4 / PIXEL_SIZE,) * 2,
                         resolutionunit="CENTIMETER")
        Image.fromarray((labels == label).astype(np.uint8) * 255).save(
            masks / f"cell{label}_cp_masks.png")
    tifffile.imwrite(images / "cell5.tif", image)  # no mask for this one
    code, _, err = _run(["predict", str(model_file), str(images), "--masks", str(masks),
                         "--out", str(tmp_path / "scores.csv"), "--quiet"])
    assert code == 3, err
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores["image_path"].str.endswith(".tif").all()
    assert scores["error"].iloc[4].endswith("no mask file for this image")
    np.testing.assert_allclose(scores["pixel_size"].iloc[:4], PIXEL_SIZE)  # the TIFF's tags
    # each cell scores exactly as the same cell cut from the whole field
    direct = score_fields(load_model(model_file), image, labels, pixel_size=PIXEL_SIZE)
    np.testing.assert_allclose(scores["score_raw"].iloc[:4], direct["score_raw"], rtol=1e-5)


# -- 5. library habits -----------------------------------------------------------------------


def test_the_log_shows_info_by_default_and_q_or_v_change_it(model_file, troubled_field,
                                                           tmp_path, caplog):
    import logging

    from sarcnet_sklearn.fields import score_field_files

    path, labels_path, *_ = troubled_field
    argv = ["fields", str(model_file), str(path), "--labels", str(labels_path), "--out"]
    _, _, err = _run([*argv, str(tmp_path / "a")])
    assert "8 labelled cells cut" in err  # INFO, shown by default off a terminal
    _, _, err = _run([*argv, str(tmp_path / "b"), "-q"])
    assert "labelled cells cut" not in err and "4 of 8 cells were not scored" in err
    # the library logs through `logging` and leaves its configuration to the user
    with caplog.at_level(logging.DEBUG, logger="sarcnet_sklearn"):
        score_field_files(model_file, [path], [labels_path], tmp_path / "c")
    assert [record.levelno for record in caplog.records
            if "8 labelled cells cut" in record.getMessage()] == [logging.DEBUG]


def test_an_output_table_named_json_is_refused_before_any_work(model_file, tmp_path):
    from PIL import Image

    folder = tmp_path / "cells"
    folder.mkdir()
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(folder / "c.png")
    for argv in (["predict", str(model_file), str(folder), "--out", str(tmp_path / "s.json")],
                 ["features", str(folder), "-o", str(tmp_path / "f.json")]):
        code, _, err = _run(argv)
        assert code == 2 and "the table is written as CSV; name it" in err, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cells"]


# -- 7. segmentation for those without a label image --------------------------------------


def test_fields_segment_saves_the_labels_it_scored_and_reuses_corrected_ones(model_file,
                                                                              tmp_path):
    image, truth = make_synthetic_field((192, 224), n_cells=4, random_state=3)
    path = tmp_path / "well_D5.ome.tiff"
    OmeTiffWriter.save(image, path, dim_order="YX",
                       physical_pixel_sizes=PhysicalPixelSizes(None, 0.66, 0.66))
    out = tmp_path / "out"
    code, _, err = _run(["fields", str(model_file), str(path), "--segment", "classical",
                         "--out", str(out)])
    assert code in (0, 3, 4), err  # (the tiny test model finds these cells out of its range)
    saved = out / "segmentation" / "well_D5_labels.ome.tif"
    labels = BioImage(saved)
    assert labels.physical_pixel_sizes.X == pytest.approx(0.66)
    found = labels.get_image_data("YX")
    assert found.shape == image.shape and 3 <= found.max() <= 6  # 4 cells in the field
    assert "classical segmentation found" in err
    table = pd.read_csv(out / "cells.csv")
    assert sorted(table["label"]) == sorted(np.unique(found[found > 0]).tolist())
    # corrected by hand (here: replaced by the truth), the labels are used as they are
    tifffile.imwrite(saved, truth.astype(np.uint16))
    code, _, err = _run(["fields", str(model_file), str(path), "--segment", "classical",
                         "--out", str(out)])
    assert "using the labels in" in err
    assert sorted(pd.read_csv(out / "cells.csv")["label"]) == [1, 2, 3, 4]
    code, _, err = _run(["fields", str(model_file), str(path), "--out", str(tmp_path / "x")])
    assert code == 2 and "give either --labels" in err


def test_segment_cellpose_without_cellpose_names_the_extra(model_file, troubled_field,
                                                           tmp_path):
    from importlib.util import find_spec

    if find_spec("cellpose") is not None:
        pytest.skip("cellpose is installed here")
    path, *_ = troubled_field
    code, _, err = _run(["fields", str(model_file), str(path), "--segment", "cellpose",
                         "--out", str(tmp_path / "c")])
    assert code == 2 and "pip install 'sarcnet-sklearn[cellpose]'" in err


def test_segment_cellpose_offline_says_which_weights_and_where(model_file, troubled_field,
                                                               tmp_path, monkeypatch):
    """Where cellpose is installed: with no weights in its model folder and no network (as
    here), the command fails before any output with the weights and the folder named."""
    pytest.importorskip("cellpose", reason="cellpose is not installed here (the extra)")
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "no_weights"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # no network, even where there is
    path, *_ = troubled_field
    code, _, err = _run(["fields", str(model_file), str(path), "--segment", "cellpose",
                         "--out", str(tmp_path / "c")])
    assert code == 2 and "could not load its" in err and "weights" in err
    assert "--segment classical" in err and not (tmp_path / "c").exists()


def test_validation_metrics_of_a_few_hand_scored_cells_are_not_in_sample(tmp_path):
    """The score map is fitted on the validation cells: their metrics must not reuse it.

    On 2 validation cells an affine map meets both scores exactly, so in-sample metrics
    read MAE 0, R² 1 (and the soundness checks stay silent) for a model that learnt nothing.
    """
    from sarcnet_sklearn.datasets import make_synthetic_aics
    from sarcnet_sklearn.deploy._train import train_model
    from sarcnet_sklearn.tables import load_cells

    root = make_synthetic_aics(tmp_path / "cells", n_cells=8, image_size=16, random_state=1)
    cells = load_cells(root)
    pipeline, metadata = train_model(cells, protocol=1, validation=0.25, image_size=16,
                                     max_epochs=1, batch_size=4, device="cpu", progress=False)
    assert metadata["training"]["n_validation"] == 2
    assert pipeline.regressor.score_map_ is not None  # fitted on the 2 validation cells
    metrics = metadata["metrics"]["validation"]
    assert metrics["mae"] > 0.01 and metrics["r2"] < 0.99
    # train_model's split; each validation cell's cross-fitted map would be fitted on the
    # other cell alone: none, so the metrics are those of the raw predictions
    from sklearn.model_selection import train_test_split

    valid = train_test_split(cells, test_size=0.25, random_state=0)[1]
    truth = valid[TARGET_COLUMN].to_numpy()
    net = pipeline.regressor
    in_sample = np.abs(pipeline.predict(valid) - truth).mean()
    net.score_map_, fitted = None, net.score_map_
    raw = pipeline.predict(valid)
    net.score_map_ = fitted
    assert metrics["mae"] == pytest.approx(np.abs(raw - truth).mean(), rel=1e-5)
    assert abs(metrics["mae"] - in_sample) > 0.01  # what the metrics said before
    assert metadata["soundness"]  # the untrained model is flagged
