"""Hostile-but-realistic fields of view, label images and output folders (issue #25).

Each case builds the real file a lab (or an attacker) would hand over and runs
the real code on it: label images of every integer kind, decompression bombs,
pixel sizes in other units, resumed runs whose inputs changed, output folders
holding the user's own files.
"""

from __future__ import annotations

import contextlib
import io

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


# -- (1) label images as labs make them -------------------------------------------------------


HUGE_IDS = {
    "int32 2**31-1": (np.int32, [2**31 - 1, 5, 2**31 - 2, 9]),
    "int64 2**40": (np.int64, [2**40, 2**40 + 1, 3, 2**62]),
    "uint64 2**63+": (np.uint64, [2**63, 2**64 - 1, 2**63 + 7, 1]),
}


@pytest.mark.parametrize("kind", list(HUGE_IDS))
def test_label_ids_of_any_size_score_every_cell_with_memory_independent_of_the_ids(
        field, model, kind, tmp_path):
    image, labels = field
    dtype, ids = HUGE_IDS[kind]
    lookup = np.array([0, *ids], dtype=dtype)
    huge = lookup[labels]
    scores = score_fields(model, image, huge, pixel_size=0.12)
    plain = score_fields(model, image, labels, pixel_size=0.12)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float16, bool, np.uint8, np.int8])
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
