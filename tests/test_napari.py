"""The napari plugin against a real viewer (Qt under xvfb): sample, scoring, layers, errors.

Run with ``xvfb-run -a python -m pytest tests/test_napari.py`` after installing the
``napari`` extra; without napari only the import-isolation test runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib.util import find_spec

import joblib
import numpy as np
import pandas as pd
import pytest

from sarcnet_sklearn.napari._sample import SAMPLE_PIXEL_SIZE_UM

HAS_NAPARI = find_spec("napari") is not None and find_spec("magicgui") is not None
needs_napari = pytest.mark.skipif(not HAS_NAPARI, reason="needs the napari extra")

PLUGIN = "sarcnet-sklearn"
WIDGET = "Score cells"
HAND_WIDGET = "Score cells by hand"
SAMPLE = "synthetic_field"
WAIT_MS = 120_000


def test_core_never_imports_napari_or_qt():
    code = (
        "import sys, sarcnet_sklearn, sarcnet_sklearn.fields, sarcnet_sklearn.deploy, "
        "sarcnet_sklearn.explain, sarcnet_sklearn.commands\n"
        "sarcnet_sklearn.SarcNetRegressor\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'vispy'})\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """A fresh cache folder for the demo model (trained once for the session), unless set."""
    from sarcnet_sklearn.napari._sample import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    folder = before or tmp_path_factory.mktemp("sarcnet-cache")
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if before is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture
def viewer_with_sample(make_napari_viewer, demo_cache):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, SAMPLE)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def _score(qtbot, widget) -> None:
    widget.score()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def _notifications(severity: str) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records
            if str(n.severity).lower().endswith(severity)]


@needs_napari
def test_manifest_is_discovered_and_valid():
    from npe2 import PluginManager
    from npe2.manifest.utils import import_python_name

    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest(PLUGIN)
    assert [w.display_name for w in manifest.contributions.widgets] == [WIDGET, HAND_WIDGET]
    assert [s.key for s in manifest.contributions.sample_data] == [SAMPLE]
    for command in manifest.contributions.commands:
        assert callable(import_python_name(command.python_name))


@needs_napari
def test_open_sample_returns_at_once_and_trains_the_demo_model_in_the_background(
    make_napari_viewer, demo_cache, qtbot
):
    """The first test to open the sample (the session's demo model is not trained yet)."""
    import time
    from pathlib import Path

    from napari.utils import progress

    from sarcnet_sklearn.napari._sample import demo_model_file, demo_model_pending

    cached = demo_model_file().exists()  # only when SARCNET_SKLEARN_CACHE was set already
    viewer = make_napari_viewer()
    started = time.perf_counter()
    viewer.open_sample(PLUGIN, SAMPLE)
    opened = time.perf_counter() - started
    model = Path(viewer.layers["alpha-actinin-2"].metadata["sarcnet_model"])
    if not cached:
        assert demo_model_pending(model) and not model.exists()
        assert any(bar.desc.startswith("SarcNet demo model") for bar in progress._all_instances)
    assert opened < 5.0, opened  # was 27.6 s: the viewer is not blocked by the training
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    _score(qtbot, widget)  # waits for the model, then scores
    assert model.is_file() and not demo_model_pending(model)
    assert viewer.layers["cells"].features["score_pred"].between(1, 5).all()


@needs_napari
def test_sample_scores_every_cell_into_features_layers_heatmap_and_csv(
    viewer_with_sample, qtbot, tmp_path
):
    from sarcnet_sklearn.deploy import load_model
    from sarcnet_sklearn.fields import score_fields

    viewer, widget = viewer_with_sample
    image, labels = viewer.layers["alpha-actinin-2"], viewer.layers["cells"]
    assert widget._image.value is image and widget._labels.value is labels
    assert str(widget._model_file.value) == image.metadata["sarcnet_model"]  # demo model filled in
    _score(qtbot, widget)

    ids = sorted(int(k) for k in np.unique(labels.data) if k)
    features = labels.features
    assert features["label"].tolist() == ids
    assert features["index"].tolist() == ids  # napari maps label -> row through "index"
    assert features["error"].isna().all(), features["error"].tolist()
    assert features["score_pred"].between(1, 5).all()
    assert {"cell_area", "peak_distance", "area", "touches_border"} <= set(features.columns)
    assert (features["field"] == image.name).all()
    # the chunked worker gives what one score_fields call on the same field gives
    direct = score_fields(load_model(widget._model_file.value), image.data, labels.data,
                          pixel_size=float(image.scale[-1]))
    np.testing.assert_allclose(features["score_raw"], direct["score_raw"], rtol=1e-5)
    np.testing.assert_allclose(features["cell_area"], direct["cell_area"])
    assert float(image.scale[-1]) == SAMPLE_PIXEL_SIZE_UM
    assert features["pixel_size"].eq(SAMPLE_PIXEL_SIZE_UM).all()  # from the layer's scale
    first = features.iloc[0]
    inside = np.argwhere(labels.data == first.label)[0] * SAMPLE_PIXEL_SIZE_UM
    status = labels.get_status(inside, world=True)["value"]
    assert f"score_pred: {first.score_pred:.4g}"[:14] in status

    scores = viewer.layers["cells scores"]
    assert scores.colorbar.visible and tuple(scores.contrast_limits) == (1.0, 5.0)
    np.testing.assert_allclose(scores.scale, labels.scale)
    for row in features.itertuples():
        assert np.allclose(scores.data[labels.data == row.label], row.score_pred)
    assert np.isnan(scores.data[labels.data == 0]).all()
    assert "scored 6 of 6 cells" in widget._status.value
    assert widget._table.to_dataframe()["label"].tolist() == ids

    label = ids[1]
    labels.selected_label = label
    qtbot.waitUntil(lambda: f"Grad-CAM cell {label}" in viewer.layers, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    heatmap = viewer.layers[f"Grad-CAM cell {label}"]
    row = features.set_index("label").loc[label]
    assert heatmap.data.shape == (row.bbox_max_row - row.bbox_min_row,
                                  row.bbox_max_col - row.bbox_min_col)
    np.testing.assert_allclose(heatmap.scale, labels.scale)
    corner = np.array([row.bbox_min_row, row.bbox_min_col])
    np.testing.assert_allclose(heatmap.translate, corner * SAMPLE_PIXEL_SIZE_UM)
    assert 0.0 <= heatmap.data.min() and heatmap.data.max() <= 1.0

    written = widget.export_csv(tmp_path / "scores.csv")
    table = pd.read_csv(written)
    assert table["label"].tolist() == ids and "index" not in table.columns
    np.testing.assert_allclose(table["score_pred"], features["score_pred"])
    assert widget.export_csv(tmp_path / "scores.txt") is None
    assert not (tmp_path / "scores.txt").exists()
    assert "ending in .csv" in _notifications("error")[-1]


@needs_napari
def test_one_pixel_label_gets_its_error_and_the_others_are_scored(viewer_with_sample, qtbot):
    viewer, widget = viewer_with_sample
    labels = viewer.layers["cells"]
    background = np.argwhere(labels.data == 0)
    row, col = background[len(background) // 2]
    data = labels.data.copy()
    data[row, col] = 99
    labels.data = data
    _score(qtbot, widget)
    features = labels.features.set_index("label")
    assert "single pixel" in features.loc[99, "error"]
    assert np.isnan(features.loc[99, "score_pred"])
    others = features.drop(index=99)
    assert others["error"].isna().all() and others["score_pred"].between(1, 5).all()
    assert any("99" in message and "single pixel" in message
               for message in _notifications("warning"))
    assert "1 with an error" in widget._status.value
    assert "single pixel" in widget._table.to_dataframe().set_index("label").loc[99, "error"]


@needs_napari
def test_errors_are_notifications_and_in_the_widget(make_napari_viewer, qtbot, tmp_path):
    from sklearn.linear_model import LinearRegression

    from sarcnet_sklearn.datasets import make_synthetic_field

    viewer = make_napari_viewer()
    field, labels = make_synthetic_field((128, 128), n_cells=2, random_state=0)
    viewer.add_image(field, name="field")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)

    widget.score()  # no Labels layer
    assert not widget.busy
    assert "no Labels layer" in widget._status.value
    assert "no Labels layer" in _notifications("error")[-1]
    assert "no Labels layer" in widget._table.to_dataframe()["error"].iloc[0]

    viewer.add_labels(labels, name="cells")
    not_a_model = tmp_path / "notes.zip"
    with zipfile.ZipFile(not_a_model, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    pickled = tmp_path / "linear.joblib"
    joblib.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), pickled)
    cases = [
        (not_a_model, False, "not a usable SarcNet model"),
        (pickled, False, "trust pickle"),
        (pickled, True, "not a usable SarcNet model"),
        (tmp_path / "missing.zip", False, "no such model file"),
    ]
    for path, trust, expected in cases:
        widget._model_file.value = path
        widget._trust_pickle.value = trust
        _score(qtbot, widget)
        assert expected in widget._status.value, (path, widget._status.value)
        assert expected in _notifications("error")[-1]
        assert str(path) in _notifications("error")[-1]
    assert "score_pred" not in viewer.layers["cells"].features.columns
    assert "cells scores" not in viewer.layers


@needs_napari
def test_cancel_stops_scoring_and_writes_nothing(viewer_with_sample, qtbot):
    viewer, widget = viewer_with_sample
    widget.score()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert "cancelled" in widget._status.value
    assert "score_pred" not in viewer.layers["cells"].features.columns
    assert "cells scores" not in viewer.layers
    assert widget._score.enabled and not widget._cancel.enabled


@needs_napari
def test_closing_the_widget_while_scoring_leaves_no_error(viewer_with_sample, qtbot):
    from qtpy.QtCore import QThreadPool

    viewer, widget = viewer_with_sample
    widget.score()
    assert widget.busy
    viewer.window.remove_dock_widget("all")
    QThreadPool.globalInstance().waitForDone(WAIT_MS)
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    qtbot.wait(100)  # pytest-qt fails the test on any exception raised in a Qt slot


@needs_napari
def test_a_users_own_labels_show_scores_above_and_reasons_by_colour(
    make_napari_viewer, demo_cache, qtbot
):
    """A user's field and labels at napari's defaults (labels opacity 0.7), a pixel size
    in the image layer's scale, a border cell and a one-pixel label (#26)."""
    from napari.utils.notifications import notification_manager

    from sarcnet_sklearn._reasons import BY_CODE, MAP_CODES
    from sarcnet_sklearn.datasets import make_synthetic_field
    from sarcnet_sklearn.napari._sample import start_demo_model

    viewer = make_napari_viewer()
    field, labels = make_synthetic_field((384, 384), n_cells=6, random_state=0,
                                         pixel_size_um=SAMPLE_PIXEL_SIZE_UM)
    labels = labels.copy()
    labels[0:12, 0:12][labels[0:12, 0:12] == 0] = 40  # a cell on the border
    row, col = np.argwhere(labels == 0)[5000]
    labels[row, col] = 41  # a one-pixel label
    scale = (SAMPLE_PIXEL_SIZE_UM,) * 2
    viewer.add_image(field, name="my field", scale=scale)
    layer = viewer.add_labels(labels, name="my cells", scale=scale)
    assert layer.opacity == pytest.approx(0.7) and layer.contour == 0  # napari's defaults
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._model_file.value = start_demo_model()
    _score(qtbot, widget)

    features = layer.features.set_index("label")
    assert features["pixel_size"].eq(SAMPLE_PIXEL_SIZE_UM).all()  # from the layer's scale
    assert features.loc[40, "reason"] == "border" and features.loc[41, "reason"] == "tiny"
    assert "score cells touching the border" in features.loc[40, "error"]  # the box's name
    assert "--" not in features.loc[40, "error"]
    scores = viewer.layers["my cells scores"]
    assert viewer.layers.index(scores) > viewer.layers.index(layer)  # drawn above
    assert layer.contour >= 1  # the user's labels as outlines: they no longer hide scores
    reasons = viewer.layers["my cells not scored"]
    assert viewer.layers.index(reasons) > viewer.layers.index(scores)
    assert viewer.layers.selection.active is layer  # a click on a cell reaches the labels
    assert set(np.unique(reasons.data)) == {0, MAP_CODES["border"], MAP_CODES["tiny"]}
    assert (reasons.data[labels == 40] == MAP_CODES["border"]).all()
    for code in ("border", "tiny"):
        colour = reasons.colormap.map(np.array([MAP_CODES[code]]))[0][:3]
        expected = [int(BY_CODE[code].colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        np.testing.assert_allclose(colour, expected, atol=1e-3)
    assert "touches the field's border: 1" in widget._legend.value

    assert any("trained on synthetic cells" in message  # the demo model on "own" data
               for message in _notifications("warning"))
    errors_before = len(_notifications("error"))
    layer.selected_label = 40  # what a click on the cell does (pan/zoom mode)
    qtbot.wait(50)
    assert len(_notifications("error")) == errors_before
    assert "cell 40 was not scored" in widget._status.value
    assert "touches the field's border" in str(notification_manager.records[-1].message)



@needs_napari
def test_a_layer_of_scale_one_is_measured_at_the_models_pixel_size_with_one_notice(
    make_napari_viewer, demo_cache, qtbot
):
    """An image opened without its pixel size (napari's scale 1): the cells are measured as
    if at the model's pixel size, marked as assumed, and one notice says so and how to set
    the layer's scale (#24)."""
    from napari.utils.notifications import notification_manager

    from sarcnet_sklearn.datasets import make_synthetic_field
    from sarcnet_sklearn.napari._sample import start_demo_model

    viewer = make_napari_viewer()
    field, labels = make_synthetic_field((256, 256), n_cells=3, random_state=1,
                                         pixel_size_um=0.6)
    viewer.add_image(field, name="no scale")
    layer = viewer.add_labels(labels, name="its cells")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._model_file.value = start_demo_model()
    before = len(notification_manager.records)
    _score(qtbot, widget)

    features = layer.features
    assert len(features) == 3
    assert features["pixel_size_assumed"].all() and features["pixel_size"].eq(0.12).all()
    notices = [str(record.message) for record in notification_manager.records[before:]
               if "no pixel size" in str(record.message)]
    assert len(notices) == 1, notices
    assert "as if at 0.12 um per pixel" in notices[0] and "3 cells" in notices[0]
    assert "viewer.layers['no scale'].scale" in notices[0]
