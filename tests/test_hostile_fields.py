"""Hostile-but-realistic fields of view, label images and output folders (issue #25).

Each case builds the real file a lab (or an attacker) would hand over and runs
the real code on it: label images of every integer kind, decompression bombs,
pixel sizes in other units, resumed runs whose inputs changed, output folders
holding the user's own files.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from sarcnet_sklearn import make_sarcnet_pipeline
from sarcnet_sklearn._columns import PROTOCOL_1
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.deploy import save_model
from sarcnet_sklearn.fields import cut_cells, score_fields
from sarcnet_sklearn.fields._overlay import plot_field_heatmap, plot_field_scores
from sarcnet_sklearn.fields._score import cut_fields, measure_cells


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
    table = measure_cells(cut_fields(image, labels, pixel_size=0.12))
    X = table[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    model = make_sarcnet_pipeline(protocol=1, image_size=16, max_epochs=1, batch_size=4,
                                  device="cpu", train_split=None, verbose=0, random_state=0,
                                  test_time_augment=False)
    model.fit(X, np.array([1.5, 2.5, 3.5, 4.5]))
    return save_model(model, tmp_path_factory.mktemp("model") / "p1.zip", format="safe")


@pytest.fixture(scope="module")
def model(model_file):
    from sarcnet_sklearn.deploy import load_model

    return load_model(model_file)


@pytest.fixture(scope="module")
def plain_scores(model, field):
    """The field's scores with labels 1..4."""
    image, labels = field
    return score_fields(model, image, labels, pixel_size=0.12)


# -- (1) label images as labs make them -------------------------------------------------------


HUGE_IDS = {
    "int32 2**31-1": (np.int32, [2**31 - 1, 5, 2**31 - 2, 9]),
    "int64 2**40": (np.int64, [2**40, 2**40 + 1, 3, 2**62]),
    "uint64 2**63+": (np.uint64, [2**63, 2**64 - 1, 2**63 + 7, 1]),
}


@pytest.mark.parametrize("kind", list(HUGE_IDS))
def test_label_ids_of_any_size_score_every_cell_with_memory_independent_of_the_ids(
        field, model, plain_scores, kind, tmp_path):
    image, labels = field
    dtype, ids = HUGE_IDS[kind]
    lookup = np.array([0, *ids], dtype=dtype)
    huge = lookup[labels]
    scores = score_fields(model, image, huge, pixel_size=0.12)
    plain = plain_scores
    assert len(scores) == 4  # rows out = labels in
    assert sorted(int(v) for v in scores["label"]) == sorted(ids)
    by_id = dict(zip((int(v) for v in scores["label"]), scores["score_pred"], strict=True))
    for k, label in enumerate(ids, start=1):
        assert by_id[label] == pytest.approx(plain["score_pred"].iloc[k - 1], abs=1e-6)
    # the overlays index compact ids: no lookup array of 2**63 entries
    plot_field_scores(image, huge, scores, tmp_path / "scores.png")
    scored = scores[np.isfinite(scores["score_pred"])]
    plot_field_heatmap(image, huge, scored, [np.ones((r.bbox_max_row - r.bbox_min_row,
                                                      r.bbox_max_col - r.bbox_min_col))
                                             for r in scored.itertuples()],
                       tmp_path / "cam.png")
    assert (tmp_path / "scores.png").stat().st_size > 1000


def test_fields_command_keeps_uint64_ids_exact_in_cells_csv(field, model_file, tmp_path):
    image, labels = field
    ids = np.array([0, 2**64 - 1, 2**63, 3, 2**63 + 1], dtype=np.uint64)
    tifffile.imwrite(tmp_path / "f.tif", image)
    tifffile.imwrite(tmp_path / "f_labels.tif", ids[labels])
    code, out, err = _run(["fields", str(model_file), str(tmp_path / "f.tif"), "--labels",
                           str(tmp_path / "f_labels.tif"), "--out", str(tmp_path / "out"),
                           "--pixel-size", "0.12", "--quiet", "--device", "cpu"])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "out" / "cells.csv", dtype=str)
    assert sorted(int(v) for v in table["label"]) == sorted(int(v) for v in ids[1:])
    assert table["score_pred"].notna().all()
    assert (tmp_path / "out" / "overlays" / "f_scores.png").is_file()


@pytest.mark.parametrize("dtype", [np.float16, bool, np.int8])
def test_float_bool_and_small_integer_label_images_are_scored(field, model, dtype, tmp_path):
    image, labels = field
    given = (labels == 2) if dtype is bool else labels.astype(dtype)
    scores = score_fields(model, image, given, pixel_size=0.12)
    assert len(scores) == (1 if dtype is bool else 4)
    plot_field_scores(image, given, scores, tmp_path / "o.png")


def test_negative_and_fractional_labels_get_one_clear_message(field):
    image, labels = field
    signed = labels.astype(np.int16)
    signed[signed == 3] = -3
    with pytest.raises(ValueError, match=r"negative labels \(min -3; \d+ pixel"):
        cut_cells(image, signed)
    with pytest.raises(ValueError, match="integer labels"):
        cut_cells(image, labels + 0.5)


def test_napari_score_map_and_scoring_take_huge_bool_and_float_labels(field, model):
    from sarcnet_sklearn.napari._scoring import PluginError, score_in_chunks, score_map

    image, labels = field
    huge = np.array([0, 2**63, 2**64 - 1, 5, 2**40], dtype=np.uint64)[labels]
    *_, table = score_in_chunks(model, image, huge, pixel_size=0.12)
    assert len(table) == 4
    shown = score_map(huge, table)
    assert shown.shape == labels.shape and shown.dtype == np.float32
    assert np.isnan(shown[labels == 0]).all()
    for label, score in zip(table["label"], table["score_pred"], strict=True):
        np.testing.assert_allclose(shown[huge == label], score)
    mask = labels == 1
    *_, table = score_in_chunks(model, image, mask, pixel_size=0.12)
    assert len(table) == 1 and np.isfinite(score_map(mask, table)[mask]).all()
    *_, table = score_in_chunks(model, image, labels.astype(np.float32), pixel_size=0.12)
    assert len(table) == 4
    with pytest.raises(PluginError, match="negative labels"):
        list(score_in_chunks(model, image, -labels.astype(np.int32), pixel_size=0.12))


# -- (2) nothing of the user's deleted or replaced --------------------------------------------


def _double(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.assign(twice=chunk["value"] * 2)


def _table(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"name": [f"cell{i}.tiff" for i in range(n)], "value": range(n)})


def test_an_out_partial_folder_the_package_did_not_make_is_refused_and_kept(tmp_path):
    from sarcnet_sklearn.scale import partial_folder, run_in_chunks

    out = tmp_path / "scores.csv"
    mine = partial_folder(out)
    mine.mkdir()
    (mine / "thesis.docx").write_bytes(b"years of work")
    (mine / "raw.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="was not made by sarcnet-sklearn"):
        run_in_chunks(_table(), _double, out, key_column="name", settings={}, chunk_size=2)
    assert (mine / "thesis.docx").read_bytes() == b"years of work" and (mine / "raw.csv").exists()
    assert not out.exists()
    # a symlink named OUT.partial to another folder of the user's
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    out2 = tmp_path / "two.csv"
    partial_folder(out2).symlink_to(other, target_is_directory=True)
    with pytest.raises(ValueError, match="symbolic link"):
        run_in_chunks(_table(), _double, out2, key_column="name", settings={}, chunk_size=2)
    assert (other / "keep.txt").read_text() == "keep" and sorted(os.listdir(other)) == ["keep.txt"]


def test_a_file_put_into_a_runs_partial_folder_survives_the_run(tmp_path):
    from sarcnet_sklearn.scale import partial_folder, run_in_chunks

    out = tmp_path / "scores.csv"
    seen = []

    def work(chunk):
        if not seen:  # the user drops a file into the folder while the run goes on
            (partial_folder(out) / "notes.txt").write_text("mine")
        seen.append(len(chunk))
        return _double(chunk)

    result = run_in_chunks(_table(), work, out, key_column="name", settings={}, chunk_size=2)
    assert len(result.table) == 4
    assert (partial_folder(out) / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(partial_folder(out))) == ["notes.txt"]


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    from sarcnet_sklearn.scale import run_in_chunks

    out = tmp_path / "scores.csv"
    refused = []

    def work(chunk):
        if not refused:
            with pytest.raises(ValueError, match="another run is writing") as info:
                run_in_chunks(_table(), _double, out, key_column="name", settings={},
                              chunk_size=2)
            refused.append(str(info.value))
        return _double(chunk)

    result = run_in_chunks(_table(), work, out, key_column="name", settings={}, chunk_size=2)
    assert refused and len(result.table) == 4 and len(pd.read_csv(out)) == 4


@pytest.mark.parametrize("command", ["train", "tune"])
def test_train_and_tune_out_refuse_to_replace_an_unrelated_file(tmp_path, command):
    victim = tmp_path / "victim.csv"
    victim.write_text("plate,well\nP1,B4\n")
    data = tmp_path / "cells.csv"
    data.write_text("image_path,score\na.tiff,3\n")
    extra = ["--study-name", "s", "--n-trials", "1"] if command == "tune" else []
    code, _, err = _run([command, str(data), "--out", str(victim), *extra])
    assert code != 0 and "refusing to replace" in err and "--overwrite" in err
    assert victim.read_text() == "plate,well\nP1,B4\n"


def test_is_model_file_knows_the_packages_own_files(model_file, tmp_path):
    from sarcnet_sklearn.deploy._model_file import check_model_output, is_model_file

    assert is_model_file(model_file)
    check_model_output(model_file)  # a model is replaced without --overwrite
    fake = tmp_path / "fake.zip"
    import zipfile

    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("notes.txt", "x")
    assert not is_model_file(fake)
    check_model_output(fake, overwrite=True)
    with pytest.raises(ValueError, match="folder"):
        check_model_output(tmp_path, overwrite=True)


def test_train_image_size_5_is_refused_before_training(tmp_path):
    from sarcnet_sklearn.datasets import make_synthetic_aics

    root = make_synthetic_aics(tmp_path / "aics", n_cells=8, image_size=24, random_state=0)
    code, out, err = _run(["train", str(root), "--out", str(tmp_path / "m.zip"), "--protocol",
                           "2", "--image-size", "5", "--epochs", "100", "--quiet"])
    assert code != 0 and "'image_size' must be in [16, 1024], got 5" in err
    assert not (tmp_path / "m.zip").exists() and "epoch" not in out


# -- (3) files that lie about their size --------------------------------------------------------


def _deflate_bomb(path, side: int = 20000) -> None:
    """A TIFF of a few hundred KB that declares side x side pixels (deflate tiles of 0)."""
    tile = np.zeros((1024, 1024), np.uint8)
    n_tiles = (-(-side // 1024)) ** 2
    tifffile.imwrite(path, (tile for _ in range(n_tiles)), shape=(side, side), dtype=np.uint8,
                     tile=(1024, 1024), compression="zlib", compressionargs={"level": 1})


def test_a_deflate_bomb_is_refused_from_its_declared_shape_and_the_other_fields_go_on(
        field, model_file, tmp_path):
    import time

    from sarcnet_sklearn.fields import read_field

    bomb = tmp_path / "bomb.tif"
    _deflate_bomb(bomb)
    assert bomb.stat().st_size < 2_000_000
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"20000 x 20000 = 400,000,000 pixels.*"
                                         "SARCNET_MAX_FIELD_PIXELS"):
        read_field(bomb)
    assert time.perf_counter() - started < 5  # nothing decoded
    image, labels = field
    tifffile.imwrite(tmp_path / "good.tif", image)
    tifffile.imwrite(tmp_path / "good_labels.tif", labels)
    code, _, err = _run(["fields", str(model_file), str(bomb), str(tmp_path / "good.tif"),
                         "--labels", str(tmp_path / "good_labels.tif"),
                         str(tmp_path / "good_labels.tif"), "--out", str(tmp_path / "out"),
                         "--pixel-size", "0.12", "--quiet", "--device", "cpu"])
    assert code == 1 and "bomb.tif" in err and "pixels to decode" in err
    table = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert table["score_pred"].notna().sum() == 4  # the good field's cells
    assert table.loc[table["label"].isna(), "error"].str.contains("pixels to decode").all()


def test_the_pixel_bound_is_overridable(field, tmp_path, monkeypatch):
    from sarcnet_sklearn.fields import read_field

    image, _ = field
    tifffile.imwrite(tmp_path / "f.tif", image)
    monkeypatch.setenv("SARCNET_MAX_FIELD_PIXELS", str(image.size - 1))
    with pytest.raises(ValueError, match="96 x 96 = 9,216 pixels"):
        read_field(tmp_path / "f.tif")
    monkeypatch.setenv("SARCNET_MAX_FIELD_PIXELS", str(image.size))
    assert read_field(tmp_path / "f.tif").data.shape == (96, 96)


# -- (4) pixel sizes and units ------------------------------------------------------------------


def _ome(path, size, unit=None, data=None) -> Path:
    metadata = {"axes": "YX", "PhysicalSizeX": size, "PhysicalSizeY": size}
    if unit is not None:
        metadata |= {"PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit}
    tifffile.imwrite(path, np.ones((8, 8), np.uint16) if data is None else data,
                     metadata=metadata)
    return path


@pytest.mark.parametrize(("size", "unit"), [(0.00012, "mm"), (120.0, "nm"), (0.12, "\u00b5m"),
                                            (0.12, None)])
def test_ome_pixel_size_units_are_converted(tmp_path, size, unit):
    from sarcnet_sklearn.fields import read_field

    field = read_field(_ome(tmp_path / "f.ome.tiff", size, unit))
    assert field.pixel_size == pytest.approx(0.12)


def test_a_given_pixel_size_that_the_metadata_contradicts_says_which_was_used(tmp_path):
    import warnings

    from sarcnet_sklearn.fields import read_field

    path = _ome(tmp_path / "f.ome.tiff", 0.24, "\u00b5m")
    with pytest.warns(UserWarning, match=r"f.ome.tiff: pixel_size= 0.12 um/px used; its "
                                         r"metadata says 0.24 um/px"):
        assert read_field(path, pixel_size=0.12).pixel_size == 0.12
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # agreeing: nothing to say
        assert read_field(path, pixel_size=0.24).pixel_size == 0.24


@pytest.mark.parametrize("where", ["ome", "imagej", "resolution"])
def test_implausible_pixel_sizes_are_refused_naming_value_and_source(tmp_path, where):
    from sarcnet_sklearn.fields import read_field

    path = tmp_path / "f.tif"
    data = np.ones((8, 8), np.uint16)
    if where == "ome":
        path = _ome(tmp_path / "f.ome.tiff", 1e-9, "\u00b5m")
        named = r"metadata \(1e-09 \u00b5m x 1e-09 \u00b5m\)"
    elif where == "imagej":
        tifffile.imwrite(path, data, imagej=True, resolution=(1e9, 1e9),
                         metadata={"unit": "um"})
        named = "ImageJ metadata"
    else:
        tifffile.imwrite(path, data, resolution=(1e9, 1e9), resolutionunit="CENTIMETER")
        named = "TIFF resolution tags"
    with pytest.raises(ValueError, match=f"f.*{named}.*not a plausible pixel size"):
        read_field(path)
    assert read_field(path, pixel_size=0.2).pixel_size == 0.2  # the override wins


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_an_override_wins_over_invalid_ome_pixel_sizes(tmp_path, bad):
    from sarcnet_sklearn._doors import entered_through
    from sarcnet_sklearn.fields import read_field

    path = _ome(tmp_path / "f.ome.tiff", bad)
    with pytest.raises(ValueError, match=r"OME metadata is invalid.*\(pixel_size=\)"):
        read_field(path)
    with entered_through("cli"), pytest.raises(ValueError, match=r"invalid.*\(--pixel-size\)"):
        read_field(path)  # what the command line says (#26)
    field = read_field(path, pixel_size=0.12)
    assert field.pixel_size == 0.12 and field.data.shape == (8, 8)


def test_pixel_size_overrides_are_checked_everywhere(field):
    from sarcnet_sklearn.features import Protocol1Extractor
    from sarcnet_sklearn.napari._scoring import PluginError, pixel_size_of

    image, labels = field
    with pytest.raises(ValueError, match="pixel_size=: 1e-09 is not a plausible"):
        cut_fields(image, labels, pixel_size=1e-9)
    with pytest.raises(ValueError, match="pixel_size=: nan"):
        Protocol1Extractor(pixel_size=float("nan")).fit_transform(
            pd.DataFrame({"image_path": [np.ones((4, 4))]}))
    with pytest.raises(PluginError, match="layer's scale: 1e-09"):
        pixel_size_of((1e-9, 1e-9))


@pytest.mark.parametrize(("command", "argv", "named"), [
    ("fields", ["--pixel-size", "nan"], "--pixel-size"),
    ("fields", ["--n-jobs", "0"], "--n-jobs"),
    ("fields", ["--pixel-size", "1e-9"], "--pixel-size"),
    ("features", ["--pixel-size", "nan"], "--pixel-size"),
    ("features", ["--n-jobs", "0"], "--n-jobs"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, command, argv, named):
    inputs = (["model.zip", "f.tif", "--labels", "l.tif", "--out", str(tmp_path / "o")]
              if command == "fields" else ["cells", "-o", str(tmp_path / "o.csv")])
    code, _, err = _run([command, *inputs, *argv])
    assert code == 2 and named in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


# -- (5) resumes that notice changed inputs -----------------------------------------------------


class _Stop(Exception):
    pass


def _stopped_run(cells, out, key, work, stop_at: int = 1):
    """Run until chunk ``stop_at`` (of 1 row each) raises: an unfinished run on disk."""
    from sarcnet_sklearn.scale import run_in_chunks

    calls = []

    def stopping(chunk):
        calls.append(chunk.index[0])
        if len(calls) > stop_at:
            raise _Stop
        return work(chunk)

    with pytest.raises(_Stop):
        run_in_chunks(cells, stopping, out, key_column=key, settings={}, chunk_size=1)


def _measure(chunk):
    return chunk.assign(size=[os.path.getsize(p.split(os.pathsep)[-1]) for p in chunk["file"]],
                        twice=chunk["value"] * 2)


def test_a_resumed_run_redoes_rows_whose_values_or_files_changed(tmp_path):
    from sarcnet_sklearn.scale import run_in_chunks

    files = [tmp_path / f"cell{i}.tif" for i in range(2)]
    labels = [tmp_path / f"cell{i}_labels.tif" for i in range(2)]
    for path in files + labels:
        path.write_bytes(b"x" * 10)
    cells = pd.DataFrame({"file": [f"{f}{os.pathsep}{lab}" for f, lab in zip(files, labels,
                                                                              strict=True)],
                          "value": [1, 2]})
    out = tmp_path / "out.csv"
    # an edited value (a feature in predict's input CSV) is recomputed
    _stopped_run(cells, out, "file", _measure)
    edited = cells.assign(value=[100, 2])
    result = run_in_chunks(edited, _measure, out, key_column="file", settings={}, chunk_size=1)
    assert result.n_resumed == 0 and result.table["twice"].tolist() == ["200", "4"]
    # a re-segmented label image (same path, new content) is recomputed
    _stopped_run(cells, out, "file", _measure)
    labels[0].write_bytes(b"y" * 25)
    result = run_in_chunks(cells, _measure, out, key_column="file", settings={}, chunk_size=1)
    assert result.n_resumed == 0 and result.table["size"].tolist() == ["25", "10"]
    # nothing changed: the saved row is kept
    _stopped_run(cells, out, "file", _measure)
    result = run_in_chunks(cells, _measure, out, key_column="file", settings={}, chunk_size=1)
    assert result.n_resumed == 1 and len(result.table) == 2


def test_fields_with_the_same_file_name_get_their_own_outputs(field, model_file, tmp_path):
    image, labels = field
    paths = [tmp_path / "a" / "f.tif", tmp_path / "b" / "f.tif", tmp_path / "f_2.tif"]
    for index, path in enumerate(paths):
        path.parent.mkdir(exist_ok=True)
        tifffile.imwrite(path, image // (index + 1) + 1)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    code, _, err = _run(["fields", str(model_file), *map(str, paths), "--labels",
                         *[str(tmp_path / "labels.tif")] * 3, "--out", str(tmp_path / "out"),
                         "--pixel-size", "0.12", "--save-crops", "--quiet", "--device", "cpu",
                         "--score-border-cells"])
    assert code == 0, err
    overlays = sorted(os.listdir(tmp_path / "out" / "overlays"))
    assert overlays == ["f_2_scores.png", "f_3_scores.png", "f_scores.png"]
    crops = pd.read_csv(tmp_path / "out" / "crops" / "cells.csv")
    assert len(crops) == 12 and crops["image_path"].is_unique


# -- (6) also -----------------------------------------------------------------------------------


def _zip_members(path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write_zip(path, members: list[tuple[str, bytes]]):
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def _with_weights_header(data: bytes, edit) -> bytes:
    import json
    import struct

    (n_header,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n_header])
    edit({k: v for k, v in header.items() if k != "__metadata__"})
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + n_header:]


def _overlap(header):
    first, second = list(header)[:2]
    header[second]["data_offsets"] = header[first]["data_offsets"]


def _out_of_range(header):
    name = list(header)[0]
    header[name]["data_offsets"] = [0, 10**12]


def _false_dtype(header):
    name = next(k for k, v in header.items() if v["dtype"] == "F32")
    header[name]["dtype"] = "F64"


@pytest.mark.parametrize("edit", [_overlap, _out_of_range, _false_dtype])
def test_corrupt_safetensors_are_a_bad_model_file_message(model_file, field, tmp_path, edit):
    members = _zip_members(model_file)
    members["weights.safetensors"] = _with_weights_header(members["weights.safetensors"], edit)
    bad = _write_zip(tmp_path / "bad.zip", list(members.items()))
    cells = tmp_path / "cells.csv"
    cells.write_text("image_path\na.tiff\n")
    for argv in (["predict", str(bad), str(cells), "--out", str(tmp_path / "p.csv")],
                 ["explain", str(bad), str(cells), "--out", str(tmp_path / "e")]):
        code, _, err = _run(argv)
        assert code == 2 and f"cannot read model {bad}" in err and "Traceback" not in err


def test_a_zip_with_two_model_json_is_refused(model_file, tmp_path):
    from sarcnet_sklearn.deploy import load_model

    members = _zip_members(model_file)
    bad = _write_zip(tmp_path / "twice.zip", [*members.items(),
                                              ("model.json", members["model.json"])])
    with pytest.raises(ValueError, match=r"holds \['model.json'\] more than once"):
        load_model(bad)


def test_terminal_escapes_in_a_models_version_are_not_printed_raw(model_file, tmp_path):
    import json

    from sarcnet_sklearn.deploy import load_model

    members = _zip_members(model_file)
    settings = json.loads(members["model.json"])
    settings["metadata"]["versions"]["sarcnet_sklearn"] = "\x1b[2J\x1b]0;pwned\x07"
    members["model.json"] = json.dumps(settings).encode()
    path = _write_zip(tmp_path / "escape.zip", list(members.items()))
    with pytest.warns(UserWarning, match="saved with sarcnet-sklearn") as caught:
        load_model(path)
    message = str(caught[0].message)
    assert "\x1b" not in message and "\x07" not in message and "\\x1b" in message


def test_a_boolean_feature_column_is_refused_by_name(model):
    from sarcnet_sklearn._validation import check_finite_features

    table = pd.DataFrame({"cell_area": [True, True], "aspect_ratio": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'cell_area' holds True/False"):
        check_finite_features(table, ["cell_area", "aspect_ratio"])
    mixed = pd.DataFrame({"cell_area": np.array([1.0, True], dtype=object)})
    with pytest.raises(ValueError, match="'cell_area' holds True/False"):
        check_finite_features(mixed, ["cell_area"])


def test_names_that_spreadsheets_run_as_formulas_are_neutralised_and_read_back(
        field, model_file, tmp_path):
    from sarcnet_sklearn.tables import load_cells

    image, labels = field
    name = tmp_path / "=HYPERLINK(1).tif"
    tifffile.imwrite(name, image)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    code, _, err = _run(["fields", str(model_file), str(name), "--labels",
                         str(tmp_path / "labels.tif"), "--out", str(tmp_path / "out"),
                         "--pixel-size", "0.12", "--save-crops", "--quiet", "--device", "cpu"])
    assert code == 0, err
    crops = (tmp_path / "out" / "crops" / "cells.csv").read_text()
    assert "\n=" not in crops and ",=" not in crops and "\n'=HYPERLINK(1)_cell1.tiff," in crops
    assert ",-" not in crops.replace(",-0.", "").replace(",-1", "")  # numbers stay numbers
    table = load_cells(tmp_path / "out" / "crops" / "cells.csv")
    assert all(Path(path).is_file() for path in table["image_path"])


def test_all_equal_training_scores_warn(tmp_path):
    from sarcnet_sklearn.datasets import make_synthetic_aics
    from sarcnet_sklearn.deploy import train_model
    from sarcnet_sklearn.tables import load_cells

    root = make_synthetic_aics(tmp_path / "aics", n_cells=8, image_size=24, random_state=0)
    cells = load_cells(root).assign(score=3.0)
    with pytest.warns(UserWarning, match="all 8 training scores are 3"):
        train_model(cells, protocol=2, validation=0, image_size=16, max_epochs=1,
                    batch_size=8, device="cpu")


def test_a_file_too_large_error_names_the_file(tmp_path):
    import subprocess
    import sys

    target = str(tmp_path / "big.csv")
    script = (
        "import resource, pandas as pd\n"
        "from sarcnet_sklearn.outputs import write_csv_atomically\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        f"write_csv_atomically(pd.DataFrame({{'a': range(100000)}}), {target!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode != 0
    assert f"cannot write {tmp_path / 'big.csv'}: File too large" in done.stderr
    assert os.listdir(tmp_path) == []  # no half-written file or temporary left


def test_a_scheduler_address_that_speaks_http_is_named_not_hung(tmp_path):
    import http.server
    import threading
    import time

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    chatty = __import__("socket").create_server(("127.0.0.1", 0))

    def greet():
        connection, _ = chatty.accept()
        connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        time.sleep(1)
        connection.close()

    threading.Thread(target=greet, daemon=True).start()
    try:
        from sarcnet_sklearn.scale._engine import check_speaks_dask

        started = time.perf_counter()
        with pytest.raises(OSError, match="said nothing within 0.5 s.*does not speak Dask"):
            check_speaks_dask(f"tcp://127.0.0.1:{server.server_address[1]}", timeout=0.5)
        assert time.perf_counter() - started < 5
        with pytest.raises(OSError, match=r"answered 'SSH-2.0-.*does not speak Dask"):
            check_speaks_dask(f"127.0.0.1:{chatty.getsockname()[1]}", timeout=2)
    finally:
        server.shutdown()
        chatty.close()


def test_many_tiny_cells_are_logged_off_a_terminal(model_file, tmp_path, monkeypatch):
    monkeypatch.delenv("SARCNET_PROGRESS", raising=False)
    n = 10  # 100 labels of 3 x 3 px
    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, (4 * n + 4, 4 * n + 4)).astype(np.uint16)
    labels = np.zeros(image.shape, np.int32)
    for k in range(n * n):
        i, j = divmod(k, n)
        labels[2 + 4 * i:5 + 4 * i, 2 + 4 * j:5 + 4 * j] = k + 1
    tifffile.imwrite(tmp_path / "tiny.tif", image)
    tifffile.imwrite(tmp_path / "tiny_labels.tif", labels)
    code, _, err = _run(["fields", str(model_file), str(tmp_path / "tiny.tif"), "--labels",
                         str(tmp_path / "tiny_labels.tif"), "--out", str(tmp_path / "out"),
                         "--pixel-size", "0.12", "--device", "cpu"])
    assert code == 4, err  # none of the 3 x 3 px cells can be scored (#26: exit status 4)
    assert "tiny.tif: 100 labelled cells cut; measuring and scoring them" in err
    assert "cells/s)" in err and "\r" not in err
    assert len(pd.read_csv(tmp_path / "out" / "cells.csv")) == 100


def test_a_picture_of_thousands_of_cells_leaves_out_their_numbers(tmp_path):
    import time

    from sarcnet_sklearn.fields._overlay import MAX_NUMBERED_CELLS

    n = 60  # 3,600 cells of 3 x 3 px
    labels = np.zeros((4 * n + 4, 4 * n + 4), np.int32)
    rows = []
    for k in range(n * n):
        i, j = divmod(k, n)
        labels[2 + 4 * i:5 + 4 * i, 2 + 4 * j:5 + 4 * j] = k + 1
        rows.append({"label": k + 1, "centroid_row": 3 + 4 * i, "centroid_col": 3 + 4 * j,
                     "score_pred": 1 + k % 5, "error": None})
    started = time.process_time()
    plot_field_scores(np.zeros(labels.shape, np.uint8), labels, pd.DataFrame(rows),
                      tmp_path / "many.png")
    assert time.process_time() - started < 5 and n * n > MAX_NUMBERED_CELLS
