"""One score policy: every door gives a cell the same score, or the same reason for none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from sarcnet_sklearn import PROTOCOL_1, make_sarcnet_pipeline
from sarcnet_sklearn._columns import ERROR_COLUMN, SCORE_PRED_COLUMN
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.commands._exit import SOME_UNSCORED
from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.deploy import predict_cells, save_model
from sarcnet_sklearn.fields._score import cut_fields, measure_cells
from sarcnet_sklearn.napari._scoring import score_in_chunks
from sarcnet_sklearn.score_table import predict_scores, score_table


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny Protocol 1 model trained on the crops of three small fields (0.12 um/px), and a
    field of two ordinary cells beside one drawn three times larger (9x the area: far outside
    the training data)."""
    folder = tmp_path_factory.mktemp("policy")
    pairs = [make_synthetic_field((96, 96), 2, random_state=seed, return_levels=True)
             for seed in (10, 11, 12)]
    table = measure_cells(cut_fields([p[0] for p in pairs], [p[1] for p in pairs],
                                     pixel_size=0.12))
    X = table[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    model = make_sarcnet_pipeline(protocol=1, image_size=32, max_epochs=1, batch_size=6,
                                  device="cpu", train_split=None, verbose=0, random_state=0,
                                  test_time_augment=False)
    model.fit(X, np.concatenate([p[2] for p in pairs]))
    small, small_labels = make_synthetic_field((144, 96), 2, random_state=4)
    big, big_labels = make_synthetic_field((48, 48), 1, random_state=5)
    big, big_labels = (np.kron(a, np.ones((3, 3), a.dtype)) for a in (big, big_labels))
    field = np.concatenate([small, big], axis=1)
    labels = np.concatenate([small_labels, np.where(big_labels > 0, 3, 0)], axis=1)
    tifffile.imwrite(folder / "field.tif", field)
    tifffile.imwrite(folder / "field_labels.tif", labels)
    return {"folder": folder, "model": model, "field": field, "labels": labels,
            "model_path": save_model(model, folder / "model.joblib")}


def _by_label(table: pd.DataFrame, labels) -> pd.DataFrame:
    index = pd.Index(np.asarray(labels, dtype=int), name="label")
    return table.set_axis(index)[[SCORE_PRED_COLUMN, ERROR_COLUMN]].sort_index()


def test_every_door_gives_the_same_score_and_error(lab, tmp_path, capsys):
    folder, model_path = lab["folder"], str(lab["model_path"])
    assert main(["fields", model_path, str(folder / "field.tif"), "--labels",
                 str(folder / "field_labels.tif"), "--pixel-size", "0.12", "--save-crops",
                 "--out", str(tmp_path / "fields"), "--quiet", "--device", "cpu"]) == SOME_UNSCORED
    fields = pd.read_csv(tmp_path / "fields" / "cells.csv")
    expected = _by_label(fields, fields["label"])
    assert expected[SCORE_PRED_COLUMN].notna().tolist() == [True, True, False]
    assert expected.loc[3, ERROR_COLUMN].startswith("not scored: cell_area=")
    assert "far outside the training data" in expected.loc[3, ERROR_COLUMN]
    assert fields.loc[fields["label"] == 3, "out_of_range"].str.contains("cell_area").all()

    crops = tmp_path / "fields" / "crops" / "cells.csv"
    assert main(["predict", model_path, str(crops), "--out", str(tmp_path / "p.csv"),
                 "--quiet"]) == SOME_UNSCORED
    assert main(["explain", model_path, str(crops), "--out", str(tmp_path / "x"),
                 "--max-cells", "3"]) == 0
    assert main(["report", model_path, str(crops), "--out", str(tmp_path / "r"),
                 "--max-cells", "3"]) == 0
    capsys.readouterr()
    label_of = pd.read_csv(crops)["label"].to_numpy()
    doors = {"predict": pd.read_csv(tmp_path / "p.csv"),
             "explain": pd.read_csv(tmp_path / "x" / "predictions.csv"),
             "report": pd.read_csv(tmp_path / "r" / "predictions.csv")}
    *_, napari = score_in_chunks(lab["model"], lab["field"], lab["labels"], pixel_size=0.12)
    got = {name: _by_label(table, label_of) for name, table in doors.items()}
    got["napari"] = _by_label(napari, napari["label"])
    crops_table = pd.read_csv(crops)
    got["python"] = _by_label(score_table(lab["model"], crops_table.assign(
        image_path=[str(tmp_path / "fields" / "crops" / p) for p in crops_table["image_path"]])),
        label_of)
    for name, table in got.items():
        pd.testing.assert_series_equal(table[ERROR_COLUMN].fillna(""),
                                       expected[ERROR_COLUMN].fillna(""), obj=name,
                                       check_dtype=False)
        np.testing.assert_allclose(table[SCORE_PRED_COLUMN], expected[SCORE_PRED_COLUMN],
                                   rtol=1e-5, err_msg=name)
    page = (tmp_path / "r" / "index.html").read_text()
    assert "1 of the 3 cells were not scored" in page


def test_predict_scores_and_predict_cells_follow_the_policy(lab):
    field, labels = lab["field"], lab["labels"]
    table = measure_cells(cut_fields(field, labels, pixel_size=0.12))
    X = table[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    scores = predict_scores(lab["model"], X)
    assert np.isfinite(scores[:2]).all() and np.isnan(scores[2])
    np.testing.assert_allclose(scores, predict_cells(lab["model"], X)[SCORE_PRED_COLUMN])
    low, high = lab["model"].score_range
    assert ((scores[:2] >= low) & (scores[:2] <= high)).all()


def test_fields_never_replaces_a_finished_run_unasked(lab, tmp_path, capsys):
    folder, out = lab["folder"], tmp_path / "run"
    command = ["fields", str(lab["model_path"]), str(folder / "field.tif"), "--labels",
               str(folder / "field_labels.tif"), "--out", str(out), "--quiet", "--device", "cpu"]
    assert main([*command, "--pixel-size", "0.12", "--save-crops"]) == SOME_UNSCORED
    finished = (out / "cells.csv").read_bytes()
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    with pytest.raises(SystemExit) as refused:
        main([*command, "--pixel-size", "-1", "--overwrite"])
    assert refused.value.code == 2
    assert "is not a plausible pixel size" in capsys.readouterr().err
    assert main([*command, "--pixel-size", "0.12"]) == 2
    assert "already holds a finished run (cells.csv); give --overwrite" in capsys.readouterr().err
    assert (out / "cells.csv").read_bytes() == finished
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files
    assert main([*command, "--pixel-size", "0.24", "--overwrite"]) == SOME_UNSCORED
    assert pd.read_csv(out / "cells.csv")["pixel_size"].eq(0.24).all()
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "cells.csv", "field_labels.ome.tif", "field_reasons.ome.tif", "field_scores.ome.tif",
        "field_scores.png", "run.json"]  # the replaced run's crops are gone
