"""Scoring by hand: the sheet (saved after every cell, resumable) and the napari widget on a real
viewer (Qt under xvfb), closed in the middle of a run and resumed."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pandas as pd
import pytest
import tifffile

from sarcnet_sklearn.fields._crops import write_cell_tiff
from sarcnet_sklearn.hand_scores import ScoreSheet, merge_scorers

HAS_NAPARI = find_spec("napari") is not None and find_spec("magicgui") is not None
needs_napari = pytest.mark.skipif(not HAS_NAPARI, reason="needs the napari extra")
PLUGIN, WIDGET = "sarcnet-sklearn", "Score cells by hand"


@pytest.fixture
def crops(cells, tmp_path):
    """A crops table as fields --save-crops writes it: 5 AICS-style TIFFs, an empty score."""
    folder = tmp_path / "crops"
    folder.mkdir()
    names = []
    for i, path in enumerate(cells["image_path"].head(5)):
        pages = tifffile.imread(path)
        names.append(write_cell_tiff(folder / f"f_cell{i + 1}.tiff", pages[1],
                                     pages[9] > 0).name)
    table = pd.DataFrame({"image_path": names, "field": "f", "label": range(1, 6),
                          "score": np.nan})
    table.to_csv(folder / "cells.csv", index=False)
    return folder / "cells.csv"


def test_sheet_saves_every_score_and_resumes_at_the_first_unscored_cell(crops):
    sheet = ScoreSheet.from_file(crops, half_steps=True)
    sheet.set_score(3)
    sheet.skip()
    sheet.set_score(4.5)
    saved = pd.read_csv(crops)["score"]
    assert saved.isna().tolist() == [False, True, False, True, True] and saved[2] == 4.5
    with pytest.raises(ValueError, match="score 2.25 is not allowed: 1-5 in steps of 0.5"):
        sheet.set_score(2.25)
    assert sheet.back() == 2 and np.isnan(pd.read_csv(crops)["score"].iloc[2])  # undone on disk
    again = ScoreSheet.from_file(crops)
    assert again.current == 1 and again.scored == 1  # the skipped cell comes back first


def test_merge_refuses_cells_only_one_scorer_saw():
    a = pd.DataFrame({"image_path": ["a.tif", "b.tif"], "score": [1, 2]})
    b = pd.DataFrame({"image_path": ["a.tif", "c.tif"], "score": [1, 2]})
    with pytest.raises(ValueError, match=r"2 cell\(s\) are in only one scorer's table"):
        merge_scorers(a, b)


@needs_napari
def test_widget_scores_crops_by_key_is_closed_midway_and_resumes(make_napari_viewer, crops,
                                                                  tmp_path):
    from app_model.types import KeyBinding

    def press(viewer, key):
        viewer.keymap[KeyBinding.from_str(key)](viewer)

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._table_file.value = crops
    widget._half_steps.value = True
    widget.start()
    first = tifffile.imread(crops.parent / "f_cell1.tiff")[1]
    assert np.array_equal(viewer.layers["cell to score"].data, first)  # the cell, zoomed to it
    press(viewer, "2")
    press(viewer, "Shift-3")  # 3.5
    press(viewer, "s")
    press(viewer, "4")
    press(viewer, "b")  # undoes the 4 of cell 4
    assert pd.read_csv(crops)["score"].tolist()[:2] == [2.0, 3.5]
    assert pd.read_csv(crops)["score"].iloc[2:].isna().all()
    shown = tifffile.imread(crops.parent / "f_cell4.tiff")[1]
    assert np.array_equal(viewer.layers["cell to score"].data, shown)
    viewer.close()  # closed in the middle: nothing is lost

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._table_file.value = crops
    widget.start()
    assert widget.sheet.current == 2 and "2 of 5 scored" in widget._status.value
    for key in ("1", "5", "3"):
        press(viewer, key)
    assert widget.sheet.done and pd.read_csv(crops)["score"].tolist() == [2, 3.5, 1, 5, 3]
    # a second scorer's file: merged, with the agreement shown
    other = pd.read_csv(crops).assign(score=[2, 4, 1, 4, 3])
    other.to_csv(tmp_path / "other.csv", index=False)
    widget._other.value = tmp_path / "other.csv"
    widget._merged_file.value = tmp_path / "merged.csv"
    widget.merge()
    merged = pd.read_csv(tmp_path / "merged.csv")
    assert merged["score"].tolist() == [2, 3.75, 1, 4.5, 3]
    assert "5 cells: Spearman" in widget._agreement.value and widget.agreement["exact"] == 0.6


@needs_napari
def test_closing_the_widget_gives_the_keys_back(make_napari_viewer):
    from app_model.types import KeyBinding

    def mine(viewer):
        return None

    viewer = make_napari_viewer()
    viewer.bind_key("b", mine)
    dock, _ = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert viewer.keymap[KeyBinding.from_str("b")] is not mine  # the widget's Back
    assert KeyBinding.from_str("3") in viewer.keymap
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    assert viewer.keymap[KeyBinding.from_str("b")] is mine
    assert KeyBinding.from_str("3") not in viewer.keymap


@needs_napari
def test_widget_scores_the_labels_of_the_open_field_into_its_features(make_napari_viewer,
                                                                       tmp_path):
    labels = np.zeros((64, 64), np.uint8)
    labels[5:20, 5:25], labels[30:60, 30:50] = 3, 7
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels, name="well_B4 cells")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._labels.value = layer
    widget._scores_file.value = tmp_path / "hand.csv"
    widget.start()
    assert layer.selected_label == 3 and layer.show_selected_label
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    assert np.allclose(camera.center[-2:], (12, 14.5))  # centred on label 3
    widget.score(4)
    assert layer.selected_label == 7
    assert layer.features.set_index("index").loc[3, "score"] == 4
    assert pd.read_csv(tmp_path / "hand.csv")[["label", "score"]].fillna(0).values.tolist() == \
        [[3, 4], [7, 0]]
    widget.start()  # resumed from the file
    assert widget.sheet.current == 1 and layer.selected_label == 7


@needs_napari
def test_a_model_orders_a_crops_table_around_the_cells_scored_so_far(make_napari_viewer, cells,
                                                                     crops, tmp_path):
    from sarcnet_sklearn import PROTOCOL_1, make_sarcnet_pipeline
    from sarcnet_sklearn.deploy import save_model, suggest_cells
    from sarcnet_sklearn.tables import load_cells

    model = make_sarcnet_pipeline(1, image_size=16, max_epochs=1, batch_size=16, verbose=0,
                                  random_state=0, test_time_augment=False)
    model.fit(cells.iloc[:16][["image_path", *PROTOCOL_1]], cells["score"].iloc[:16])
    model_file = save_model(model, tmp_path / "model.zip", format="safe")
    pd.read_csv(crops).assign(score=[2.0, np.nan, 4.0, np.nan, np.nan]).to_csv(crops,
                                                                              index=False)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._table_file.value = crops
    widget._model_file.value = model_file
    widget.start()
    expected = suggest_cells(model, load_cells(crops).reset_index(drop=True))
    assert widget.order.index.tolist() == expected.index.tolist()
    assert sorted(widget.order.index) == [1, 3, 4]  # the scored cells 0 and 2 are left out
    first = tifffile.imread(crops.parent / f"f_cell{widget.order.index[0] + 1}.tiff")[1]
    assert np.array_equal(viewer.layers["cell to score"].data, first)
    widget.score(3)
    assert pd.read_csv(crops)["score"].iloc[widget.order.index[0]] == 3


@needs_napari
def test_a_model_orders_the_labels_of_the_open_field(make_napari_viewer, cells, tmp_path):
    from sarcnet_sklearn import PROTOCOL_1, make_sarcnet_pipeline
    from sarcnet_sklearn.datasets import make_synthetic_field
    from sarcnet_sklearn.deploy import save_model

    model = make_sarcnet_pipeline(1, image_size=16, max_epochs=1, batch_size=16, verbose=0,
                                  random_state=0, test_time_augment=False)
    model.fit(cells.iloc[:16][["image_path", *PROTOCOL_1]], cells["score"].iloc[:16])
    model_file = save_model(model, tmp_path / "model.zip", format="safe")
    field, labels = make_synthetic_field((160, 160), n_cells=5, random_state=0)
    viewer = make_napari_viewer()
    image = viewer.add_image(np.asarray(field.data if hasattr(field, "data") else field),
                             name="field", scale=(0.12, 0.12))
    layer = viewer.add_labels(labels, name="field cells", scale=(0.12, 0.12))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget._labels.value = layer
    widget._scores_file.value = tmp_path / "hand.csv"
    widget._model_file.value = model_file
    with pytest.raises(ValueError, match="needs its image"):  # no image chosen yet
        widget.start()
    widget._image.value = image
    widget.start()
    order = widget.order
    ids = sorted(int(label) for label in np.unique(labels) if label)
    assert sorted(order["label"].astype(int)) == ids  # every cell once
    picked = order[order["suggested_by"] == "model"]
    assert len(picked) >= 3 and (picked["uncertainty"] > 0).all()
    first = int(order["label"].iloc[0])
    assert layer.selected_label == first  # the model's first cell is shown first
    widget.score(3)
    assert layer.selected_label == int(order["label"].iloc[1])
    assert pd.read_csv(tmp_path / "hand.csv").set_index("label").loc[first, "score"] == 3
