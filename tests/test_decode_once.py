"""Each image file is read once per call, and a fitted model describes itself as plain data."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sarcnet_sklearn import SarcNetPipeline, images
from sarcnet_sklearn.deploy import predict_cells, train_model
from sarcnet_sklearn.deploy._pipeline_settings import pipeline_from_settings, pipeline_settings
from sarcnet_sklearn.explain import grad_cam, write_report

from . import file_opens

STRUCTURE = 1


class Opens:
    """The files opened since the last :meth:`clear` (counted through an audit hook: the
    reads stay real)."""

    def __init__(self) -> None:
        file_opens.install()
        self.clear()

    def clear(self) -> None:
        self.start = Counter(file_opens.OPENS)

    def __getitem__(self, path) -> int:
        path = str(Path(path).resolve())
        return file_opens.OPENS[path] - self.start[path]


@pytest.fixture
def reads() -> Opens:
    """Counts the opens of each file during the test."""
    return Opens()


def _read_once(counts: Opens, paths) -> None:
    """Each file opened once (every page the model needs read from that one open)."""
    assert {path: counts[path] for path in paths} == dict.fromkeys(paths, 1)


@pytest.fixture(scope="module")
def few(cells):
    return cells.iloc[:16].reset_index(drop=True)


@pytest.fixture(scope="module")
def measured_model(few):
    """A Protocol 1 model trained on a table without features (they are measured)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = train_model(few[["image_path", "score"]], protocol=1, image_size=32,
                               max_epochs=1, batch_size=8, validation=0.25, device="cpu")
    return model


def test_train_model_reads_each_image_once(few, reads):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_model(few[["image_path", "score"]], protocol=1, image_size=32, max_epochs=1,
                    batch_size=8, validation=0.25, device="cpu")
    paths = few["image_path"].tolist()
    _read_once(reads, paths)


def test_predict_cells_reads_each_image_once_per_chunk(measured_model, few, reads):
    """The model measures the features: the structure and the mask page of each
    single-cell TIFF come from one open of the file."""
    table = few[["image_path"]]
    whole = predict_cells(measured_model, table)
    _read_once(reads, table["image_path"].tolist())
    reads.clear()
    chunked = predict_cells(measured_model, table, chunk_size=5)
    _read_once(reads, table["image_path"].tolist())
    np.testing.assert_allclose(chunked["score_raw"], whole["score_raw"], rtol=1e-5)
    assert whole["error"].isna().all() and list(chunked.index) == list(table.index)


def test_grad_cam_and_write_report_read_each_image_once(measured_model, few, reads, tmp_path):
    cells = few.iloc[:6]
    heatmaps = grad_cam(measured_model, cells)
    _read_once(reads, cells["image_path"].tolist())
    assert heatmaps[0].shape == images.read_plane(cells["image_path"].iloc[0], STRUCTURE).shape
    reads.clear()
    paths = write_report(measured_model, cells, tmp_path / "report", max_cells=3)
    _read_once(reads, cells["image_path"].tolist())
    assert paths["html"].is_file()


def test_a_fitted_pipeline_round_trips_through_its_settings(measured_model, few):
    settings = pipeline_settings(measured_model)
    assert settings["protocol"] == 1 and settings["feature_names"] == measured_model.inputs.features
    copy = pipeline_from_settings(settings, device="cpu")
    copy.regressor.module_.load_state_dict(measured_model.regressor.module_.state_dict())
    np.testing.assert_allclose(copy.predict(few), measured_model.predict(few), rtol=1e-6)
    bare = SarcNetPipeline.of(measured_model.regressor)
    assert bare.regressor is measured_model.regressor and bare.inputs.image_size == 32
    with pytest.raises(TypeError, match="SarcNetRegressor"):
        SarcNetPipeline.of(measured_model[:-1])
