"""Training and scoring from the shell; model files, their metadata and their formats."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import tifffile
import torch

from sarcnet_sklearn import PROTOCOL_1, SarcNetPipeline, __version__, make_linear_baseline
from sarcnet_sklearn._columns import SARCOMERE_COLUMNS
from sarcnet_sklearn.commands import build_parser, main
from sarcnet_sklearn.deploy import (
    FORMAT_VERSION,
    ModelVersionWarning,
    load_model,
    predict_cells,
    save_model,
)

TRAIN = ["--image-size", "32", "--epochs", "2", "--batch-size", "16", "--device", "cpu",
         "--validation-fraction", "0.25", "--random-state", "3", "--quiet"]
ID_COLUMNS = ["image_path", "napariCell_ObjectNumber", "cohort", "score"]


@pytest.fixture(scope="module")
def shell_run(cells, tmp_path_factory):
    """Train twice from the shell on a CSV without features (a Protocol 1 model), predict."""
    folder = tmp_path_factory.mktemp("deploy")
    table = folder / "cells.csv"
    cells.iloc[:40][ID_COLUMNS].to_csv(table, index=False)
    runs, printed = [], io.StringIO()
    for name in ("first", "second"):
        model = folder / f"{name}.joblib"
        predictions = folder / f"{name}.csv"
        with contextlib.redirect_stdout(printed):
            assert main(["train", str(table), "--out", str(model), *TRAIN]) == 0
            assert main(["predict", str(model), str(table), "--out", str(predictions),
                         "--quiet"]) == 0
        runs.append((model, predictions))
    return table, runs, printed.getvalue()


@pytest.fixture(scope="module")
def loaded(shell_run):
    """The first model, loaded once (do not modify)."""
    return load_model(shell_run[1][0][0], return_metadata=True)


def test_train_and_predict_from_the_shell(shell_run, loaded, cells):
    table, [(model, predictions), _], _ = shell_run
    result = pd.read_csv(predictions)
    assert list(result.columns) == [*ID_COLUMNS, *SARCOMERE_COLUMNS, "pixel_size",
                                    "pixel_size_assumed", "score_pred", "score_raw", "error",
                                    "out_of_range"]
    # the synthetic files carry their pixel size in their TIFF tags
    assert np.allclose(result["pixel_size"], 0.12) and not result["pixel_size_assumed"].any()
    assert result[SARCOMERE_COLUMNS[0]].notna().any()  # measured (NaN: no sarcomeric peak)
    assert len(result) == 40
    assert result["image_path"].tolist() == cells["image_path"].iloc[:40].tolist()
    assert result["error"].isna().all()
    assert result["score_pred"].between(1, 5).all()
    np.testing.assert_allclose(result["score_pred"], result["score_raw"].clip(1, 5))
    pipeline, info = loaded
    assert info["protocol"] == 1 and info["feature_names"] == PROTOCOL_1
    assert info["training"]["features_measured"] is True
    assert info["training"]["n_cells"] == 30 and info["training"]["n_validation"] == 10


def test_same_random_state_gives_the_same_predictions(shell_run):
    _, [(_, first), (_, second)], _ = shell_run
    pd.testing.assert_frame_equal(pd.read_csv(first), pd.read_csv(second))


def test_train_and_predict_are_registered_and_print_where_outputs_went(shell_run):
    _, [(model, predictions), _], printed = shell_run
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"train", "predict"} <= set(commands)
    assert "trained SarcNet (Protocol 1, features measured from the images) on 30 cells" in printed
    assert f"model saved to {model.resolve()} (joblib format)" in printed
    assert f"wrote 40 predictions to {predictions.resolve()}" in printed


def test_predict_never_writes_over_an_input(shell_run, capsys):
    table, [(model, _), _], _ = shell_run
    before = table.read_bytes()
    assert main(["predict", str(model), str(table), "--out", str(table), "--quiet"]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert table.read_bytes() == before
    assert main(["predict", str(model), str(table), "--out", str(model), "--quiet"]) == 2


def test_model_file_carries_its_metadata(shell_run):
    _, [(model, _), _], _ = shell_run
    content = joblib.load(model)
    assert content["format"] == "sarcnet-sklearn-model"
    assert content["format_version"] == FORMAT_VERSION
    info = content["metadata"]
    assert info["versions"]["sarcnet_sklearn"] == __version__
    assert info["versions"]["torch"] == torch.__version__
    assert {"sklearn", "skorch", "created"} <= set(info["versions"]) | set(info)
    assert info["structure_page"] == 1 and info["image_size"] == 32
    training = info["training"]
    assert training["target"] == "score" and training["split"] == "random, validation 0.25"
    assert 1 <= training["score_min"] <= training["score_mean"] <= training["score_max"] <= 5
    assert set(info["metrics"]["validation"]) == {"spearman", "mae", "mse", "r2"}


@pytest.mark.parametrize("name", ["model.zip", "model_folder"])
def test_safe_format_rebuilds_an_identical_model_without_unpickling(loaded, cells, tmp_path, name):
    pipeline, info = loaded
    path = save_model(pipeline, tmp_path / name, metadata=info, format="safe")
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == ["model.json", "weights.safetensors"]
            settings = json.loads(archive.read("model.json"))
    else:
        settings = json.loads((path / "model.json").read_text())
        assert set(safetensors.torch.load_file(path / "weights.safetensors")) == set(
            pipeline[-1].module_.state_dict())
    assert settings["metadata"]["training"] == info["training"]
    rebuilt, rebuilt_info = load_model(path, return_metadata=True)
    assert rebuilt_info["training"] == info["training"]
    sample = cells.iloc[40:50]
    np.testing.assert_array_equal(rebuilt.predict(sample), pipeline.predict(sample))
    if path.suffix == ".zip":
        measured = predict_cells(rebuilt, sample[["image_path"]])
        np.testing.assert_array_equal(
            measured["score_raw"], predict_cells(pipeline, sample[["image_path"]])["score_raw"]
        )


def test_safe_format_refuses_other_pipelines(cells, tmp_path):
    baseline = make_linear_baseline(1).fit(cells, cells["score"])
    with pytest.raises(ValueError, match="make_sarcnet_pipeline"):
        save_model(baseline, tmp_path / "baseline.zip", format="safe")
    with pytest.raises(ValueError, match="format must be one of"):
        save_model(baseline, tmp_path / "baseline.bin", format="pickle")


def test_plain_joblib_pipeline_still_loads(loaded, cells, tmp_path):
    pipeline, _ = loaded
    plain = tmp_path / "plain.joblib"
    joblib.dump(pipeline, plain)  # as the demo writes it
    loaded, info = load_model(plain, return_metadata=True)
    assert info == {}
    sample = cells.iloc[:8]
    np.testing.assert_array_equal(loaded.predict(sample), pipeline.predict(sample))


def test_model_files_that_call_the_structure_page_image_channel_still_load(loaded, cells,
                                                                           tmp_path):
    """Earlier versions stored the structure page as ``image_channel``: both formats load."""
    pipeline, info = loaded
    sample = cells.iloc[:4]
    expected = pipeline.predict(sample)
    folder = save_model(pipeline, tmp_path / "old_safe", metadata=info, format="safe")
    content = json.loads((folder / "model.json").read_text())
    params = content["pipeline"]["regressor_params"]
    params["image_channel"] = params.pop("structure_page")
    content["metadata"]["image_channel"] = content["metadata"].pop("structure_page")
    (folder / "model.json").write_text(json.dumps(content))
    rebuilt, rebuilt_info = load_model(folder, return_metadata=True)
    assert rebuilt[-1].structure_page == 1 and rebuilt_info["structure_page"] == 1
    assert "image_channel" not in rebuilt_info
    np.testing.assert_array_equal(rebuilt.predict(sample), expected)

    old = copy.deepcopy(pipeline)
    old[-1].__dict__["image_channel"] = old[-1].__dict__.pop("structure_page")
    joblib.dump(old, tmp_path / "old.joblib")
    unpickled = load_model(tmp_path / "old.joblib")
    assert unpickled[-1].get_params()["structure_page"] == 1
    np.testing.assert_array_equal(unpickled.predict(sample), expected)


def test_model_files_from_before_canonical_poses_load_as_they_scored(loaded, cells, tmp_path):
    """Files from before ``canonical_orientation`` lack it: both formats load it as False."""
    pipeline, info = loaded
    sample = cells.iloc[:4]
    expected = pipeline.predict(sample)
    folder = save_model(pipeline, tmp_path / "old_safe", metadata=info, format="safe")
    content = json.loads((folder / "model.json").read_text())
    del content["pipeline"]["regressor_params"]["canonical_orientation"]
    (folder / "model.json").write_text(json.dumps(content))
    rebuilt = load_model(folder)
    assert rebuilt[-1].canonical_orientation is False
    np.testing.assert_array_equal(rebuilt.predict(sample), expected)

    old = copy.deepcopy(pipeline)
    del old[-1].__dict__["canonical_orientation"]
    joblib.dump(old, tmp_path / "old.joblib")
    unpickled = load_model(tmp_path / "old.joblib")
    assert unpickled[-1].get_params()["canonical_orientation"] is False
    np.testing.assert_array_equal(unpickled.predict(sample), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks loading on a CPU-only machine")
def test_model_saved_for_cuda_loads_and_predicts_on_a_cpu_only_machine(shell_run, cells,
                                                                      tmp_path):
    _, [(model, _), _], _ = shell_run
    pipeline = load_model(model)
    expected = pipeline.predict(cells.iloc[:8])
    pipeline[-1].set_params(device="cuda")  # as a model trained on a GPU is pickled
    save_model(pipeline, tmp_path / "gpu.joblib")
    loaded = load_model(tmp_path / "gpu.joblib")
    assert loaded[-1].device == "cpu"
    assert next(loaded[-1].module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict(cells.iloc[:8]), expected)
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(tmp_path / "gpu.joblib", device="cuda")


@pytest.fixture
def small_model_file(cells, tmp_path):
    """A quick stand-in model file (the checks below do not depend on the network)."""
    return save_model(make_linear_baseline(1).fit(cells, cells["score"]), tmp_path / "m.joblib")


def test_model_from_a_newer_version_warns_or_errors_clearly(small_model_file, tmp_path):
    content = joblib.load(small_model_file)
    content["metadata"]["versions"]["sarcnet_sklearn"] = "99.0"
    joblib.dump(content, tmp_path / "newer.joblib")
    with pytest.warns(ModelVersionWarning, match=r"saved with sarcnet-sklearn 99\.0; this is"):
        load_model(tmp_path / "newer.joblib")
    content["format_version"] = FORMAT_VERSION + 1
    joblib.dump(content, tmp_path / "newer_format.joblib")
    newer = rf"99\.0 in model-file format {FORMAT_VERSION + 1}.*upgrade"
    with pytest.raises(ValueError, match=newer):
        load_model(tmp_path / "newer_format.joblib")


def test_truncated_or_foreign_model_files_give_a_clear_error(
    shell_run, loaded, small_model_file, tmp_path, capsys
):
    table = shell_run[0]
    data = small_model_file.read_bytes()
    truncated = tmp_path / "truncated.joblib"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read model file .*truncated or corrupt"):
        load_model(truncated)
    assert main(["predict", str(truncated), str(table), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarcnet-sklearn predict: error: cannot read model file")
    assert "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()
    joblib.dump({"weights": [1, 2]}, tmp_path / "other.joblib")
    with pytest.raises(ValueError, match="holds a dict, not a sarcnet-sklearn model"):
        load_model(tmp_path / "other.joblib")
    safe = save_model(loaded[0], tmp_path / "safe.zip", format="safe")
    safe.write_bytes(safe.read_bytes()[:-200])
    with pytest.raises(ValueError, match="cannot read model"):
        load_model(safe)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "missing.joblib")


def test_trained_model_is_calibrated_and_predict_adds_its_intervals(shell_run, loaded, tmp_path,
                                                                     capsys):
    from sarcnet_sklearn.intervals import CONFORMITY_ATTRIBUTE, interval_half_width

    table, [(model_path, _), _], printed = shell_run
    model, metadata = loaded
    assert metadata["calibration"]["n_cells"] == 10  # the validation quarter of 40 cells
    assert "90 % prediction intervals: score +-" in printed
    out = tmp_path / "with_intervals.csv"
    assert main(["predict", str(model_path), str(table), "--out", str(out), "--interval", "0.9",
                 "--quiet"]) == 0
    result = pd.read_csv(out)
    assert list(result.columns) == [*ID_COLUMNS, *SARCOMERE_COLUMNS, "pixel_size",
                                    "pixel_size_assumed", "score_pred", "score_low",
                                    "score_high", "score_raw", "error", "out_of_range"]
    half = interval_half_width(model, 0.9)
    np.testing.assert_allclose(result["score_pred"], result["score_raw"].clip(1, 5))
    np.testing.assert_allclose(result["score_low"], np.clip(result["score_pred"] - half, 1, 5))
    np.testing.assert_allclose(result["score_high"], np.clip(result["score_pred"] + half, 1, 5))
    assert (result["score_low"] <= result["score_pred"]).all()
    assert (result["score_pred"] <= result["score_high"]).all()

    uncalibrated = joblib.load(model_path)
    delattr(uncalibrated["pipeline"][-1], CONFORMITY_ATTRIBUTE)
    joblib.dump(uncalibrated, tmp_path / "plain.joblib")
    capsys.readouterr()
    code = main(["predict", str(tmp_path / "plain.joblib"), str(table), "--out",
                 str(tmp_path / "x.csv"), "--interval", "0.9", "--quiet"])
    assert code != 0 and "not calibrated" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("name", ["model.joblib", "model.zip"])
def test_predict_switches_test_time_averaging_of_a_model_file_on_or_off(
        shell_run, loaded, cells, tmp_path, name):
    """A model file that averages over the 8 flips and quarter turns scores a cell and its
    turned copy alike; predict --no-test-time-augment makes one pass, which does not."""
    pipeline, info = loaded
    assert SarcNetPipeline.of(pipeline).regressor.test_time_augment  # as train saves it
    model = shell_run[1][0][0] if name.endswith(".joblib") else save_model(
        pipeline, tmp_path / name, metadata=info, format="safe")
    some = cells.iloc[40:43][["image_path", *PROTOCOL_1]].reset_index(drop=True)
    files = {"upright": [], "turned": []}
    for i, path in enumerate(some["image_path"]):
        stack = tifffile.imread(path)  # every page, cut to the model's 32 px square so that
        top, left = (np.array(stack.shape[-2:]) - 32) // 2  # no resizing rounds differently
        square = stack[:, top:top + 32, left:left + 32]
        for kind, pages in (("upright", square), ("turned", np.rot90(square, axes=(1, 2)))):
            files[kind].append(str(tmp_path / f"{kind}_{i}.tiff"))
            tifffile.imwrite(files[kind][-1], np.ascontiguousarray(pages))
    some["image_path"] = files["upright"]
    table = pd.concat([some, some.assign(image_path=files["turned"])])  # same features
    table.to_csv(tmp_path / "cells.csv", index=False)
    scores = {}
    for option in ([], ["--no-test-time-augment"], ["--test-time-augment"]):
        out = tmp_path / f"scores{len(scores)}.csv"
        assert main(["predict", str(model), str(tmp_path / "cells.csv"), "--out", str(out),
                     "--quiet", *option]) == 0
        raw = pd.read_csv(out)["score_raw"].to_numpy()
        scores[tuple(option)] = raw[:3], raw[3:]
    averaged, upright = scores[()]
    np.testing.assert_allclose(averaged, upright, atol=1e-5)
    np.testing.assert_array_equal(scores[("--test-time-augment",)][0], averaged)
    one_pass, one_pass_turned = scores[("--no-test-time-augment",)]
    assert np.abs(one_pass - one_pass_turned).max() > 1e-3
    assert np.abs(one_pass - averaged).max() > 1e-3
    fast = SarcNetPipeline.of(pipeline).with_test_time_augment(False)
    np.testing.assert_allclose(one_pass, fast.predict(some), rtol=1e-5)
    assert SarcNetPipeline.of(pipeline).regressor.test_time_augment  # the model is unchanged
