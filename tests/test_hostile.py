"""Untrusted model files and hostile input: bad files built here, real commands run on them.

Each case checks that rows in equal rows out where rows are scored, that no
planted payload runs, and that nothing outside the test's folder changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from sklearn.exceptions import NotFittedError

from sarcnet_sklearn import SarcNetRegressor
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics
from sarcnet_sklearn.deploy import load_model, predict_cells, save_model
from sarcnet_sklearn.tables import SkippedEntriesWarning, collect_images

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--protocol", "1", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
         "--device", "cpu", "--quiet"]


def _snapshot(*folders: Path) -> dict[str, tuple]:
    """Size, modification time and hash of every file under ``folders`` (no .git)."""
    state = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if ".git" in path.parts or "__pycache__" in path.parts or not path.is_file():
                continue
            data = path.read_bytes()
            state[str(path)] = (len(data), path.stat().st_mtime_ns,
                                hashlib.sha256(data).hexdigest())
    return state


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse rejects an argument
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A small AICS root and a tiny Protocol 1 model trained on it from the shell."""
    folder = tmp_path_factory.mktemp("hostile")
    root = make_synthetic_aics(folder / "aics", n_cells=20, image_size=40, random_state=1)
    model = folder / "model.joblib"
    with pytest.warns(UserWarning, match="plain random validation split"):
        code, out, err = _run(["train", str(root), "--out", str(model), *TRAIN])
    assert code == 0, err
    cells = load_aics(root)
    return {"folder": folder, "root": root, "model": model, "cells": cells, "printed": out,
            "pipeline": load_model(model)}


@pytest.fixture
def untouched(lab, tmp_path):
    """Fails the test if any file outside ``tmp_path`` (the data, the model, the repo) changed."""
    before = _snapshot(lab["root"], REPO / "sarcnet_sklearn", REPO / "tests")
    model_bytes = lab["model"].read_bytes()
    yield
    assert _snapshot(lab["root"], REPO / "sarcnet_sklearn", REPO / "tests") == before
    assert lab["model"].read_bytes() == model_bytes


class Payload:
    """Unpickling this creates the marker file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _safe_zip(lab, tmp_path) -> Path:
    return save_model(lab["pipeline"], tmp_path / "safe.zip", format="safe")


# -- 1. one way in and out -----------------------------------------------------------------


def test_small_aics_root_falls_back_to_a_random_split(lab):
    info = load_model(lab["model"], return_metadata=True)[1]
    assert info["training"]["split"].startswith("random, validation 0.2")
    assert info["training"]["n_test"] == 0
    assert f"model saved to {lab['model'].resolve()} (joblib format)" in lab["printed"]


def test_every_command_opens_every_format_every_writer_writes(lab, tmp_path, untouched):
    cells = lab["cells"].iloc[:24].copy()
    table = tmp_path / "cells.csv"
    cells.to_csv(table, index=False)
    files = {"train .joblib": lab["model"],
             "save_model .zip": save_model(lab["pipeline"], tmp_path / "m.zip", format="safe"),
             "save_model folder": save_model(lab["pipeline"], tmp_path / "m_dir", format="safe")}
    code, out, err = _run(["tune", str(table), "--n-trials", "1", "--max-epochs", "1",
                           "--image-sizes", "32", "--protocols", "1", "--device", "cpu",
                           "--quiet", "--out", str(tmp_path / "tuned.zip")])
    assert code == 0, err
    assert "safe format" in out
    files["tune .zip"] = tmp_path / "tuned.zip"
    expected = lab["pipeline"].predict(cells.iloc[:4])
    for name, model in files.items():
        if name != "tune .zip":
            np.testing.assert_allclose(load_model(model).predict(cells.iloc[:4]), expected,
                                       rtol=1e-5, err_msg=name)
        predictions = tmp_path / f"{name}.csv"
        assert _run(["predict", str(model), str(table), "--out", str(predictions),
                     "--quiet"])[0] == 0, name
        assert len(pd.read_csv(predictions)) == len(cells)
        code, _, err = _run(["explain", str(model), str(table), "--out",
                             str(tmp_path / f"explain {name}"), "--max-cells", "2"])
        assert code == 0, (name, err)
    code, _, err = _run(["report", str(files["tune .zip"]), str(table), "--out",
                         str(tmp_path / "report"), "--max-cells", "2"])
    assert code == 0, err
    assert (tmp_path / "report" / "index.html").is_file()


def test_no_code_path_unpickles_a_zip_or_a_folder(lab, tmp_path, untouched):
    marker = tmp_path / "payload_ran"
    payload = pickle.dumps(Payload(marker))
    table = tmp_path / "cells.csv"
    lab["cells"].iloc[:3].to_csv(table, index=False)
    zipped = _safe_zip(lab, tmp_path).read_bytes()
    glued = {"glued.zip": payload + zipped, "glued.joblib": payload + zipped,
             "pickle.zip": payload}
    for name, data in glued.items():
        (tmp_path / name).write_bytes(data)
    folder = tmp_path / "old_format"  # a format-1 folder whose weights.pt is a pickle payload
    save_model(lab["pipeline"], folder, format="safe")
    settings = json.loads((folder / "model.json").read_text())
    settings["format_version"] = 1
    (folder / "model.json").write_text(json.dumps(settings))
    (folder / "weights.safetensors").unlink()
    (folder / "weights.pt").write_bytes(payload)
    for model in [*(tmp_path / name for name in glued), folder]:
        with pytest.raises(ValueError, match="zip|format 1 .*safetensors weights only"):
            load_model(model)
        for command in ("predict", "explain", "report"):
            code, _, err = _run([command, str(model), str(table), "--out",
                                 str(tmp_path / f"{command}_out")])
            assert code == 2 and err.count("\n") == 1, (command, model, err)
        assert not marker.exists(), model
    with pytest.raises(ValueError, match="not a safe-format model"):
        load_model(tmp_path / "glued.joblib", format="safe")
    assert not marker.exists()


# -- 2. bounded loading of the safe format --------------------------------------------------

BAD_MODEL_SCRIPT = r"""
import json, os, resource, sys
import numpy as np
from sarcnet_sklearn.deploy import load_model, predict_cells
from sarcnet_sklearn.tables import load_cells

size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (3 << 30), resource.RLIM_INFINITY))
cells = load_cells(sys.argv[1])
results = {}
for path in sys.argv[2:]:
    try:
        predictions = predict_cells(load_model(path), cells)
        results[path] = f"loaded, {len(predictions)} rows"
    except ValueError as exc:
        results[path] = f"ValueError: {exc}"
    except BaseException as exc:
        results[path] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""


def _edit_settings(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    settings = json.loads(files["model.json"])
    text = edit(settings)
    files["model.json"] = (text if isinstance(text, str) else json.dumps(settings)).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _lying_zip(source: Path, target: Path, member: str, declared: int) -> Path:
    """A copy of ``source`` whose central directory declares ``declared`` bytes for ``member``."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        offset = archive.start_dir
    while True:
        offset = data.index(b"PK\x01\x02", offset)
        (name_length,) = struct.unpack_from("<H", data, offset + 28)
        if data[offset + 46:offset + 46 + name_length].decode() == member:
            struct.pack_into("<I", data, offset + 24, declared)  # uncompressed size
            break
        offset += 4
    target.write_bytes(bytes(data))
    return target


def test_hostile_safe_models_fail_fast_with_one_clear_error(lab, tmp_path, untouched):
    safe = _safe_zip(lab, tmp_path)
    params = lambda key, value: lambda s: s["pipeline"]["regressor_params"].update({key: value})  # noqa: E731
    bad = {
        "huge_image.zip": (params("image_size", 30000), "'image_size' must be in"),
        "text_size.zip": (params("image_size", "32"), "'image_size' must be int"),
        "wide.zip": (params("module__feature_widths", [10**9]), "feature_widths"),
        "batch.zip": (lambda s: s["pipeline"]["regressor_params"].update(
            batch_size=4096, image_size=1024), "pixels per batch"),
        "workers.zip": (params("iterator_valid__num_workers", 10000), "unknown regressor"),
        "nested.zip": (lambda s: "[" * 200000 + "]" * 200000, "model.json is nested too deeply"),
        "not_json.zip": (lambda s: "{'format': ", "not valid JSON"),
        "metadata.zip": (lambda s: s.update(metadata=7), "metadata is not a JSON object"),
        "version.zip": (lambda s: s.update(format_version="2"), "not a model-file format"),
    }
    paths = {}
    for name, (edit, message) in bad.items():
        paths[str(_edit_settings(safe, tmp_path / name, edit))] = message
    paths[str(_lying_zip(safe, tmp_path / "declares_200MiB.zip", "weights.safetensors",
                         200 << 20))] = "declares 209715200 bytes"
    fifo_model = save_model(lab["pipeline"], tmp_path / "fifo_model", format="safe")
    (fifo_model / "weights.safetensors").unlink()
    os.mkfifo(fifo_model / "weights.safetensors")
    paths[str(fifo_model)] = "not a regular file"
    linked = save_model(lab["pipeline"], tmp_path / "linked_model", format="safe")
    (linked / "model.json").unlink()
    (linked / "model.json").symlink_to("/dev/zero")
    paths[str(linked)] = "link leading out of the model folder"
    os.mkfifo(tmp_path / "fifo.joblib")
    paths[str(tmp_path / "fifo.joblib")] = "not a regular file"
    table = tmp_path / "cells.csv"
    lab["cells"].iloc[:3].to_csv(table, index=False)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BAD_MODEL_SCRIPT, str(table), *paths],
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.splitlines()[-1])
    for path, message in paths.items():
        assert results[path].startswith("ValueError: "), (path, results[path])
        assert message in results[path], (path, results[path])
        assert "\n" not in results[path]
    assert time.perf_counter() - start < 200


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(feature_names=p["feature_names"][::-1]), "'feature_names'"),
    (lambda p: p.update(feature_names=p["feature_names"][:1] * 5), "repeats"),
    (lambda p: p["scaler"].update(mean=p["scaler"]["mean"][:-1]), "scaler.mean"),
    (lambda p: p["scaler"].update(columns=p["scaler"]["columns"][::-1]), "scaler columns"),
    (lambda p: p.update(input_columns=p["input_columns"][::-1]), "input_columns"),
    (lambda p: p.update(protocol=2, feature_names=p["feature_names"]), "feature_names"),
    (lambda p: p["feature_range"].update(min=[0.0]), "feature_range.min"),
    (lambda p: p["regressor_params"].update(module__feature_widths=[8, 8]),
     "do not fit the network|more than the .* this model can need"),
])
def test_settings_are_cross_checked_against_each_other_and_the_weights(
    lab, tmp_path, edit, message
):
    model = _edit_settings(_safe_zip(lab, tmp_path), tmp_path / "edited.zip",
                           lambda s: edit(s["pipeline"]))
    with pytest.raises(ValueError, match=message):
        load_model(model)


# -- 4. no silent wrong score ---------------------------------------------------------------


def test_scores_outside_the_scale_are_refused_unless_declared(lab):
    cells = lab["cells"].iloc[:12]
    features = ["cell_area", "cell_aspect_ratio"]
    percent = cells["score"] * 20  # a 0-100 scale
    net = SarcNetRegressor(use_images=False, max_epochs=1, batch_size=4, device="cpu",
                           verbose=0, train_split=None)
    with pytest.raises(ValueError, match=r"12 score\(s\) outside the score range \[1, 5\]"):
        net.fit(cells[features], percent)
    net.set_params(score_range=(0, 100)).fit(cells[features], percent)
    scored = predict_cells(net, cells[features])
    assert scored["score_pred"].equals(scored["score_raw"].clip(0, 100))
    code, _, err = _run(["train", str(lab["root"]), "--out", "never.joblib",
                         "--score-range", "2", "3", *TRAIN])
    assert code == 2 and "outside the score range [2, 3]" in err


def test_features_far_outside_the_training_data_are_flagged_not_scored(lab):
    cells = lab["cells"].iloc[:6].copy()
    cells.loc[cells.index[2], "cell_area"] = -1e6
    scored = predict_cells(lab["pipeline"], cells)
    assert len(scored) == len(cells) and list(scored.index) == list(cells.index)
    flagged = scored.iloc[2]
    assert flagged["out_of_range"] == "cell_area"
    assert np.isnan(flagged["score_pred"]) and np.isfinite(flagged["score_raw"])
    assert "cell_area=-1e+06 far outside the training data" in flagged["error"]
    others = scored.drop(index=cells.index[2])
    assert others["out_of_range"].isna().all() and others["score_pred"].between(1, 5).all()


def test_repeated_column_names_are_an_error_naming_them(lab, tmp_path):
    cells = lab["cells"].iloc[:3]
    table = tmp_path / "twice.csv"
    text = cells.to_csv(index=False).splitlines()
    text = [f"{line},{line.split(',')[0] if i else 'cell_area'}" for i, line in enumerate(text)]
    table.write_text("\n".join(text) + "\n")
    code, _, err = _run(["predict", str(lab["model"]), str(table), "--out",
                         str(tmp_path / "p.csv")])
    assert code == 2 and "repeated column name(s) ['cell_area']" in err
    frame = pd.concat([cells, cells[["cell_area"]]], axis=1)
    with pytest.raises(ValueError, match=r"repeated column name\(s\) \['cell_area'\]"):
        predict_cells(lab["pipeline"], frame)


def test_ambiguous_and_unreadable_images_are_row_errors(lab, tmp_path, untouched):
    cells = lab["cells"].iloc[:6][["image_path"]].copy().reset_index(drop=True)
    plane = np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "cz.ome.tif", np.stack([[plane] * 3] * 2), ome=True,
                     metadata={"axes": "CZYX"})
    with tifffile.TiffWriter(tmp_path / "scenes.ome.tif", ome=True) as writer:
        for _ in range(2):
            writer.write(np.stack([plane] * 10), metadata={"axes": "CYX"})
    (tmp_path / "a folder.tiff").mkdir()
    cells.loc[1, "image_path"] = str(tmp_path / "cz.ome.tif")
    cells.loc[2, "image_path"] = str(tmp_path / "scenes.ome.tif")
    cells.loc[3, "image_path"] = str(tmp_path / ("x" * 300 + ".tiff"))
    cells.loc[4, "image_path"] = str(tmp_path / "a folder.tiff")
    scored = predict_cells(lab["pipeline"], cells)
    assert len(scored) == 6
    errors = scored["error"].tolist()
    assert errors[0] is None and errors[5] is None
    assert "cz.ome.tif: its planes run along several axes (CZYX" in errors[1]
    assert "C=2, Z=3" in errors[1]
    assert "scenes.ome.tif: holds 2 scenes" in errors[2]
    assert "name too long" in errors[3]
    assert "a folder.tiff is not a regular file" in errors[4]
    assert scored["score_pred"].iloc[1:5].isna().all()


# -- 5. nothing overwritten -----------------------------------------------------------------


def test_outputs_that_are_inputs_or_unwritable_are_refused_before_any_work(
    lab, tmp_path, untouched
):
    table = tmp_path / "cells.csv"
    lab["cells"].iloc[:8].to_csv(table, index=False)
    image = lab["cells"]["image_path"].iloc[0]
    refused = [
        ["train", str(table), "--out", image, *TRAIN],
        ["train", str(table), "--out", str(table), *TRAIN],
        ["predict", str(lab["model"]), str(table), "--out", str(lab["model"])],
        ["predict", str(lab["model"]), str(table), "--out", image],
        ["features", image, "-o", image],
        ["tune", str(table), "--n-trials", "1", "--out", str(table)],
        ["train", str(table), "--out", "/proc/no/model.joblib", *TRAIN],
        ["train", str(table), "--out", str(table / "model.joblib"), *TRAIN],
        ["train", str(table), "--out", str(tmp_path / "model.zip"), "--format", "joblib",
         *TRAIN],
    ]
    for argv in refused:
        start = time.perf_counter()
        code, _, err = _run(argv)
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert any(word in err for word in ("refusing to overwrite", "cannot write",
                                            "always the safe format")), err
        assert time.perf_counter() - start < 10, argv  # refused before training
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cells.csv"]


def test_ctrl_c_during_train_exits_130_and_keeps_the_previous_model(lab, tmp_path, untouched):
    model = tmp_path / "model.joblib"
    model.write_bytes(lab["model"].read_bytes())
    before = model.read_bytes()
    command = [sys.executable, "-m", "sarcnet_sklearn", "train", str(lab["root"]), "--out",
               str(model), "--protocol", "1", "--image-size", "32", "--epochs", "500",
               "--batch-size", "8", "--device", "cpu"]
    log = tmp_path / "stderr.txt"
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in process.stdout:  # skorch prints one table row per epoch
        lines.append(line)
        if line.strip().startswith("2 "):
            process.send_signal(signal.SIGINT)
            break
    out = process.communicate(timeout=120)[0]
    err = log.read_text()
    assert process.returncode == 130, "".join(lines) + out + err
    assert "interrupted after epoch" in err and "previous model file is unchanged" in err
    assert "model saved" not in out
    assert "\x1b[" not in "".join(lines) + out  # a log: no colour codes, no progress bars
    assert b"\r" not in log.read_bytes()
    assert model.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.joblib", "stderr.txt"]


# -- 7. paths round-trip, folders report what they skip ----------------------------------------


def test_features_then_predict_finds_the_images_from_another_folder(
    lab, tmp_path, monkeypatch, untouched
):
    images = tmp_path / "images"
    images.mkdir()
    for path in lab["cells"]["image_path"].iloc[:3]:
        (images / Path(path).name).write_bytes(Path(path).read_bytes())
    monkeypatch.chdir(tmp_path)
    assert _run(["features", "images", "-o", "sub/features.csv", "--quiet"])[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = _run(["predict", str(lab["model"]), "../sub/features.csv", "--out",
                         "scores.csv", "--quiet"])
    assert code == 0, err
    scores = pd.read_csv(elsewhere / "scores.csv")
    assert len(scores) == 3 and scores["error"].isna().all(), scores["error"].tolist()
    assert [Path(p).parent for p in scores["image_path"]] == [images] * 3


def test_folders_report_every_skipped_entry_and_can_recurse(tmp_path):
    plane = np.zeros((8, 8), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", plane)
    (tmp_path / "sub").mkdir()
    tifffile.imwrite(tmp_path / "sub" / "b.tif", plane)
    (tmp_path / "notes.txt").write_text("x")
    os.mkfifo(tmp_path / "pipe.tif")
    (tmp_path / "gone.tif").symlink_to(tmp_path / "missing.tif")
    with pytest.warns(SkippedEntriesWarning) as caught:
        assert collect_images([tmp_path]) == [tmp_path / "a.tif"]
    message = str(caught[0].message)
    for reason in ("gone.tif (a dangling link)", "notes.txt (not a", "pipe.tif (not a regular",
                   "sub (a folder; use --recursive)"):
        assert reason in message
    with pytest.warns(SkippedEntriesWarning):
        found = collect_images([tmp_path], recursive=True)
    assert found == [tmp_path / "a.tif", tmp_path / "sub" / "b.tif"]


# -- 8, 9. errors, not tracebacks; the estimator contract ------------------------------------


@pytest.mark.parametrize("argv, named", [
    (["train", "DATA", "--out", "m.joblib", "--epochs", "0"], "--epochs"),
    (["train", "DATA", "--out", "m.joblib", "--batch-size", "0"], "--batch-size"),
    (["predict", "m.joblib", "DATA", "--out", "p.csv", "--batch-size", "-1"], "--batch-size"),
    (["tune", "DATA", "--max-epochs", "0"], "--max-epochs"),
])
def test_bad_numbers_name_the_argument(argv, named):
    code, _, err = _run(argv)
    assert code == 2 and f"argument {named}: must be at least 1" in err


def test_bad_tune_storage_is_one_line_naming_it(lab, tmp_path):
    table = tmp_path / "cells.csv"
    lab["cells"].iloc[:8].to_csv(table, index=False)
    code, _, err = _run(["tune", str(table), "--storage", "nosuchdb://x/y", "--n-trials", "1"])
    assert code == 2 and err.count("\n") == 1
    assert "cannot open the study storage 'nosuchdb://x/y'" in err


def test_predict_before_fit_raises_not_fitted(lab):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        SarcNetRegressor().predict(lab["cells"].iloc[:2])
