"""Screens of many cells: chunked predict/grad_cam, resumable commands, a real Dask cluster."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import sarcnet_sklearn
from sarcnet_sklearn import _chunks, make_sarcnet_pipeline, regressor
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.deploy import predict_cells, save_model
from sarcnet_sklearn.explain import grad_cam
from sarcnet_sklearn.scale import map_chunks, partial_folder, run_in_chunks

from . import file_opens

REPO = Path(sarcnet_sklearn.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(cells):
    train = cells.iloc[:32]
    pipe = make_sarcnet_pipeline(protocol=2, image_size=32, max_epochs=1, batch_size=8,
                                 verbose=0, random_state=0, device="cpu", test_time_augment=False)
    return pipe.fit(train, train["score"])


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    return save_model(model, tmp_path_factory.mktemp("model") / "model.joblib")


@pytest.fixture(scope="module")
def cell_table(cells, tmp_path_factory):
    """40 cells as a CSV with features, plus one missing image (its row gets an error)."""
    table = cells.iloc[40:80].drop(columns=["score"]).reset_index(drop=True)
    table.loc[5, "image_path"] = "/no/such/cell.tiff"
    path = tmp_path_factory.mktemp("table") / "cells.csv"
    table.to_csv(path, index=False)
    return path


def test_predict_and_grad_cam_decode_a_chunk_at_a_time_with_unchanged_results(
    model, cells, monkeypatch
):
    X = cells.iloc[100:130]
    whole_scores = model.predict(X)
    whole_maps = grad_cam(model, X.iloc[:6], batch_size=2)
    decoded = []

    def spy(paths, *args, **kwargs):
        decoded.append(len(paths))
        return load(paths, *args, **kwargs)

    load = regressor.load_image_stack
    monkeypatch.setattr(regressor, "load_image_stack", spy)
    monkeypatch.setattr(_chunks, "CHUNK_CELLS", 4)
    np.testing.assert_allclose(model.predict(X), whole_scores, rtol=1e-6)
    assert decoded == [8, 8, 8, 6]  # whole batches of 8: the batches of a single pass
    decoded.clear()
    for chunked, whole in zip(grad_cam(model, X.iloc[:6], batch_size=2), whole_maps, strict=True):
        np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert decoded == [4, 2]


def _double(chunk: pd.DataFrame, stop_at: int | None = None) -> pd.DataFrame:
    if stop_at in chunk.index:
        raise KeyboardInterrupt
    return pd.DataFrame({"name": chunk["name"], "twice": chunk["value"] * 2}, index=chunk.index)


def test_run_in_chunks_resumes_refuses_other_settings_and_redoes_changed_cells(tmp_path):
    table = pd.DataFrame({"name": [f"cell{i}.tiff" for i in range(10)], "value": range(10)})
    out = tmp_path / "out.csv"
    run = partial(run_in_chunks, key_column="name", chunk_size=3)
    with pytest.raises(KeyboardInterrupt):
        run(table, partial(_double, stop_at=7), out, settings={"factor": 2})
    assert not out.exists()
    assert len(list(partial_folder(out).glob("part-*.csv"))) == 2  # rows 0-5 are saved
    with pytest.raises(ValueError, match=r"out.csv.partial holds an unfinished run.*factor"):
        run(table, _double, out, settings={"factor": 3})
    table.loc[4, "name"] = "another.tiff"  # rows 3-5 now name other cells: done again
    result = run(table, _double, out, settings={"factor": 2})
    assert result.n_resumed == 3
    assert not partial_folder(out).exists()
    expected = _double(table)
    pd.testing.assert_frame_equal(pd.read_csv(out), expected.reset_index(drop=True))
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        run(table, _double, tmp_path / "in.csv", settings={}, inputs=[tmp_path / "in.csv"])


def _refuse(chunk: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("the model needs feature column(s) ['x'], which the input lacks")


def test_a_run_that_fails_before_saving_a_chunk_leaves_nothing_to_resume(tmp_path):
    table = pd.DataFrame({"name": [f"cell{i}.tiff" for i in range(4)], "value": range(4)})
    out = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="which the input lacks"):
        run_in_chunks(table, _refuse, out, key_column="name", settings={"model": "a"},
                      chunk_size=2)
    assert not partial_folder(out).exists() and not out.exists()
    # another model (other settings) is not refused as "an unfinished run"
    result = run_in_chunks(table, _double, out, key_column="name", settings={"model": "b"},
                           chunk_size=2)
    assert result.n_resumed == 0 and len(pd.read_csv(out)) == 4


def _restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # whatever the test process inherited


def _interrupt_when(process, folder: Path, n_parts: int, sig: int) -> None:
    deadline = time.monotonic() + 120
    while len(list(folder.glob("part-*.csv"))) < n_parts:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(sig)


def test_features_command_resumes_after_sigkill_and_ctrl_c(synthetic_root, tmp_path):
    folder = next(synthetic_root.glob("*fish_1/rescaled_2D_single_cell_tiff_path"))
    images = [str(path) for path in sorted(folder.glob("*.tiff"))[:40]] * 3  # 120 cells
    reference = tmp_path / "reference.csv"
    assert main(["features", *images, "-o", str(reference), "--quiet"]) == 0
    command = [sys.executable, "-m", "sarcnet_sklearn", "features", *images, "-o", "out.csv",
               "--chunk-size", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parts = partial_folder(tmp_path / "out.csv")

    killed = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, preexec_fn=_restore_default_sigint)
    _interrupt_when(killed, parts, 1, signal.SIGKILL)
    killed.communicate()
    done = len(list(parts.glob("part-*.csv")))
    assert killed.returncode == -signal.SIGKILL and 1 <= done < 60
    assert not (tmp_path / "out.csv").exists()

    stopped = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=_restore_default_sigint)
    _interrupt_when(stopped, parts, done + 2, signal.SIGINT)
    printed, errors = stopped.communicate()
    assert stopped.returncode == 130, errors
    assert f"resuming: {2 * done} of 120 cells already done" in errors  # logged
    assert "run the same command again to go on from there" in errors
    assert not (tmp_path / "out.csv").exists()

    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "wrote Protocol 1 features of 120 cells to" in finished.stdout
    assert "out.csv" in finished.stdout
    assert (tmp_path / "out.csv").read_bytes() == reference.read_bytes()
    assert not parts.exists()


def test_predict_cells_leaves_an_unpickled_table_as_it_was(model, cells):
    # a chunk on a Dask worker arrives pickled; pandas 3.1 then shares its string buffer
    X = pickle.loads(pickle.dumps(cells.iloc[150:154]))
    scores = predict_cells(model, X)
    assert [type(path) for path in scores["image_path"]] == [str] * 4
    assert scores["image_path"].tolist() == cells["image_path"].iloc[150:154].tolist()
    assert [type(path) for path in X["image_path"]] == [str] * 4


@pytest.fixture(scope="module")
def cluster():
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        client.register_plugin(file_opens.CountOpens())  # counts model loads (tests only)
        yield client


def test_workers_word_their_messages_for_the_callers_door(cluster):
    from sarcnet_sklearn._doors import entered_through, option

    chunks = [pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]})]
    hint = lambda chunk: chunk.assign(hint=option("pixel_size"))  # noqa: E731
    with entered_through("cli"):
        there = dict(map_chunks(hint, chunks, client=cluster))
    assert [there[i]["hint"].iloc[0] for i in (0, 1)] == ["--pixel-size"] * 2
    python = dict(map_chunks(hint, chunks, client=cluster))
    assert python[0]["hint"].iloc[0] == "pixel_size="


def test_predict_cells_with_a_client_matches_the_local_run(model, cells, cluster):
    X = cells.iloc[150:180]
    here = predict_cells(model, X)
    there = predict_cells(model, X, client=cluster, chunk_size=8)
    pd.testing.assert_frame_equal(there, here)


def test_predict_on_a_cluster_takes_the_test_time_augment_option_to_the_workers(
    model_file, cells, cluster, tmp_path
):
    table = tmp_path / "cells.csv"
    cells.iloc[80:86].drop(columns=["score"]).to_csv(table, index=False)
    predict = ["predict", str(model_file), str(table), "--quiet", "--chunk-size", "2"]
    runs = {}
    for name, options in (("saved", []), ("local", ["--test-time-augment"]),
                          ("remote", ["--test-time-augment", "--scheduler",
                                      cluster.scheduler.address])):
        assert main([*predict, *options, "--out", str(tmp_path / f"{name}.csv")]) == 0
        runs[name] = pd.read_csv(tmp_path / f"{name}.csv")["score_raw"].to_numpy()
    np.testing.assert_array_equal(runs["remote"], runs["local"])
    assert np.abs(runs["local"] - runs["saved"]).max() > 1e-4  # the file says: one pass


def test_commands_on_a_cluster_match_the_local_run_even_when_a_worker_dies(
    model_file, cell_table, cluster, tmp_path
):
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    predict = ["predict", str(model_file), str(cell_table), "--quiet", "--chunk-size", "4"]
    assert main([*predict, "--out", str(local)]) == 3  # one cell not scored (#26: status 3)
    workers = cluster.run(os.getpid)
    path = str(Path(model_file).resolve())
    per_load = file_opens.opens_per_load(path)
    loads = cluster.run(file_opens.opens)  # other tests may have loaded it too
    before = {workers[address]: counts.get(path, 0) for address, counts in loads.items()}

    def kill_a_worker() -> None:  # once the first chunk is saved, however slow the machine
        while not list(partial_folder(remote).glob("part-*.csv")):
            if remote.exists():
                return
            time.sleep(0.01)
        os.kill(next(iter(workers.values())), signal.SIGKILL)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    address = cluster.scheduler.address
    assert main([*predict, "--out", str(remote), "--scheduler", address]) == 3
    killer.join()
    assert cluster.run(os.getpid) != workers  # one worker was replaced mid-run
    assert remote.read_bytes() == local.read_bytes()
    result = pd.read_csv(remote)
    assert len(result) == 40 and result["error"].notna().sum() == 1
    loads, pids = cluster.run(file_opens.opens), cluster.run(os.getpid)
    during = [counts.get(path, 0) - before.get(pids[address], 0)
              for address, counts in loads.items()]
    assert max(during) == per_load  # loaded once per worker process in this run

    features = ["features", *pd.read_csv(cell_table)["image_path"][6:18], "--quiet",
                "--chunk-size", "3"]
    assert main([*features, "-o", str(local)]) == 0
    assert main([*features, "-o", str(remote), "--scheduler", address]) == 0
    assert remote.read_bytes() == local.read_bytes()


# -- fields of view ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def field_model_file(cells, tmp_path_factory):
    """A tiny Protocol 1 model (what fields need), saved."""
    train = cells.iloc[:24]
    pipe = make_sarcnet_pipeline(protocol=1, image_size=32, max_epochs=1, batch_size=8,
                                 verbose=0, random_state=0, device="cpu")
    pipe.fit(train, train["score"])
    return save_model(pipe, tmp_path_factory.mktemp("model") / "fields.joblib")


@pytest.fixture(scope="module")
def field_files(tmp_path_factory):
    """Four small fields (two cells each) and their label images as TIFFs; the third's label
    image has another shape, so that field fails while the others are scored."""
    folder = tmp_path_factory.mktemp("fields")
    fields, labels = [], []
    for seed in range(4):
        field, label_image = make_synthetic_field((96, 128), 2, random_state=seed)
        fields.append(folder / f"well_{seed}.tif")
        labels.append(folder / f"well_{seed}_labels.tif")
        tifffile.imwrite(fields[-1], field)
        tifffile.imwrite(labels[-1], label_image[:, :100] if seed == 2 else label_image)
    return fields, labels


def _fields_command(model_file, fields, labels, out) -> list[str]:
    return ["fields", str(model_file), *map(str, fields), "--labels", *map(str, labels),
            "--out", str(out), "--pixel-size", "0.12", "--save-crops", "--quiet",
            "--device", "cpu"]


@pytest.fixture(scope="module")
def fields_run(field_model_file, field_files, tmp_path_factory):
    """The output folder of an uninterrupted local ``fields`` run."""
    out = tmp_path_factory.mktemp("whole")
    assert main(_fields_command(field_model_file, *field_files, out)) == 1
    return out


def test_fields_command_resumes_after_ctrl_c_without_redrawing_finished_fields(
    field_model_file, field_files, fields_run, tmp_path, capsys
):
    fields, labels = field_files
    whole = pd.read_csv(fields_run / "cells.csv")
    assert len(whole) == 3 * 2 + 1 and whole["label"].isna().sum() == 1
    assert "shape" in whole.loc[whole["label"].isna(), "error"].item()

    out = tmp_path / "run"
    parts = partial_folder(out / "cells.csv")

    ended = threading.Event()

    def press_ctrl_c() -> None:
        while not list(parts.glob("part-*.csv")):
            if ended.is_set():
                return
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever pytest had
    presser = threading.Thread(target=press_ctrl_c)
    try:
        presser.start()
        code = main(_fields_command(field_model_file, fields, labels, out))
    finally:
        ended.set()
        presser.join()
        signal.signal(signal.SIGINT, handler)
    assert code == 130
    printed = capsys.readouterr().err
    assert not (out / "cells.csv").exists()
    done = pd.concat(pd.read_csv(path) for path in parts.glob("part-*.csv"))
    saved = done["_input_row"].nunique()  # fields, each saved whole
    assert 1 <= saved < 4  # stopped between the first field and the last
    assert (f"interrupted: {saved} of 4 fields are saved in {parts}; run the same command "
            "again to go on from there") in printed
    drawn = {path.name: path.stat().st_mtime_ns for path in (out / "overlays").glob("*.png")}
    assert main(_fields_command(field_model_file, fields, labels, out)) == 1
    for table in ("cells.csv", "crops/cells.csv"):
        assert (out / table).read_bytes() == (fields_run / table).read_bytes()
    assert not parts.exists() and len(pd.read_csv(out / "crops/cells.csv")) == 6
    for stem in done["field"].map(lambda path: Path(path).name.split(".")[0]).unique():
        if stem != "well_2":  # a finished field is not drawn again
            name = f"{stem}_scores.png"
            assert (out / "overlays" / name).stat().st_mtime_ns == drawn[name]


def test_fields_on_a_cluster_match_the_local_run(
    field_model_file, field_files, fields_run, cluster, tmp_path, capsys
):
    from sarcnet_sklearn.deploy import load_model
    from sarcnet_sklearn.fields import score_fields

    fields, labels = field_files
    remote = tmp_path / "remote"
    command = _fields_command(field_model_file, fields, labels, remote)
    assert main([*command, "--scheduler", cluster.scheduler.address]) == 1
    assert "1 of 4 field(s) could not be used" in capsys.readouterr().err
    for table in ("cells.csv", "crops/cells.csv"):
        assert (remote / table).read_bytes() == (fields_run / table).read_bytes()
    assert sorted(p.name for p in (remote / "overlays").iterdir()) == [
        f"well_{i}_scores.png" for i in (0, 1, 3)]
    loads = cluster.run(file_opens.opens)
    path = str(Path(field_model_file).resolve())
    assert max(counts[path] for counts in loads.values()) == file_opens.opens_per_load(path)

    model = load_model(field_model_file)
    arrays = [tifffile.imread(path) for path in fields[:2]]
    label_arrays = [tifffile.imread(path) for path in labels[:2]]
    here = score_fields(model, arrays, label_arrays, pixel_size=0.12)
    there = score_fields(model, arrays, label_arrays, pixel_size=0.12, client=cluster)
    pd.testing.assert_frame_equal(there, here)
    assert here["field"].tolist() == ["<array 0>"] * 2 + ["<array 1>"] * 2
