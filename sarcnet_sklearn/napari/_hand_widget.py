"""The dock widget for scoring cells by hand: keys 1-5, skip, back; saved after every cell."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import tifffile
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject

from .._columns import CELL_MASK_PAGE, FIELD_COLUMN, SCORE_RANGE, STRUCTURE_PAGE, TARGET_COLUMN
from ..hand_scores import LABEL_COLUMN, ScoreSheet, field_sheet_table, merge_scorers
from ._scoring import load_sarcnet_model, pixel_size_of

CELL_LAYER = "cell to score"
OUTLINE_LAYER = "cell outline"
KEY_SCORES = range(int(SCORE_RANGE[0]), int(SCORE_RANGE[1]) + 1)
"""The scores of the digit keys: the experts' scale."""
SKIP_KEY, BACK_KEY = "s", "b"
"""Keys besides 1-5 (Shift-1 ... Shift-4: the half steps 1.5 ... 4.5, when allowed)."""
ZOOM_MARGIN = 1.6
"""How much wider than the current cell's bounding box the view is."""


class HandScoringWidget(Container):
    """Walk through the cells of a crops table or of the open field and score them by hand.

    Choose a crops table (``fields --save-crops`` writes ``crops/cells.csv``)
    or a Labels layer and a scores file, optionally a model, and press Start.
    The current cell is shown zoomed (a crop: in its own layer with its
    outline; a field: its label alone, the view centred on it). Keys 1-5 (and
    Shift-1 ... Shift-4 for 1.5 ... 4.5 with half steps) or the buttons set its
    score, S skips it, B goes back and undoes. Every score is written to the
    table at once (atomically) and into the Labels layer's ``features``;
    starting again on the same file resumes at the first unscored cell. With
    a model, the cells come in the order of
    :func:`~sarcnet_sklearn.deploy.suggest_cells` (its default order, a fifth
    at random); for a field, the model cuts and measures its
    cells from the chosen image layer (at the layer's scale, as the scoring
    widget does). Merge joins this table with another scorer's
    and shows their agreement.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._table_file = FileEdit(label="crops table", mode="r", filter="*.csv",
                                    tooltip="crops/cells.csv from fields --save-crops")
        self._labels = ComboBox(label="or cells", choices=self._labels_layers, nullable=True,
                                tooltip="a Labels layer of the open field")
        self._scores_file = FileEdit(label="scores file", mode="w", filter="*.csv",
                                     value="hand_scores.csv",
                                     tooltip="where a field's scores are saved")
        self._model_file = FileEdit(label="model (optional)", mode="r",
                                    tooltip="a model to choose the cells' order (as suggest does)")
        self._image = ComboBox(label="field image", choices=self._image_layers, nullable=True,
                               tooltip="the field's alpha-actinin-2 image, for a model to "
                                       "order its cells")
        self._half_steps = CheckBox(text="allow half steps (Shift-1 = 1.5)", value=False)
        self._start = PushButton(text="Start / resume")
        self._status = Label(label="cell", value="")
        self._buttons = [PushButton(text=str(score)) for score in KEY_SCORES]
        self._skip = PushButton(text="Skip (S)")
        self._back = PushButton(text="Back (B)")
        self._other = FileEdit(label="other scorer", mode="r", filter="*.csv")
        self._merged_file = FileEdit(label="merged", mode="w", filter="*.csv",
                                     value="merged_scores.csv")
        self._merge = PushButton(text="Merge and compare")
        self._agreement = Label(label="agreement", value="")
        row = Container(widgets=self._buttons, layout="horizontal", labels=False)
        moves = Container(widgets=[self._skip, self._back], layout="horizontal", labels=False)
        self.extend([self._table_file, self._labels, self._scores_file, self._model_file,
                     self._image, self._half_steps, self._start, self._status, row, moves,
                     self._other, self._merged_file, self._merge, self._agreement])
        self.sheet: ScoreSheet | None = None
        self.order = None  # with a model: suggest_cells's order of the cells
        self._layer = None  # the Labels layer of a field being scored
        self._start.changed.connect(self._safely(self.start))
        for score, button in enumerate(self._buttons, 1):
            button.changed.connect(self._safely(lambda *_, s=score: self.score(s)))
        self._skip.changed.connect(self._safely(self.skip))
        self._back.changed.connect(self._safely(self.back))
        self._merge.changed.connect(self._safely(self.merge))
        events = self._viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(self.reset_choices)
        self._bind_keys()

    def _labels_layers(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, napari.layers.Labels) and layer.name != OUTLINE_LAYER]

    def _image_layers(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, napari.layers.Image) and layer.name != CELL_LAYER]

    def _safely(self, action):
        def run(*_):
            try:
                action()
            except (OSError, ValueError) as exc:
                self._status.value = f"error: {exc}"
                show_error(str(exc))
        return run

    def _key_actions(self) -> dict:
        actions = {str(score): lambda s=score: self.score(s) for score in KEY_SCORES}
        actions |= {f"Shift-{score}": lambda s=score: self.score(s + 0.5)
                    for score in KEY_SCORES[:-1]}
        return actions | {SKIP_KEY: self.skip, BACK_KEY: self.back}

    def _bind_keys(self) -> None:
        """Take the keys, keeping what they did before, and give them back when the widget
        leaves the window (napari takes a closed dock widget out of it)."""
        self._replaced = {key: self._viewer.bind_key(key, self._safely(action), overwrite=True)
                          for key, action in self._key_actions().items()}
        self._on_undock = _WhenUnparented(self._unbind_keys)
        self.native.installEventFilter(self._on_undock)

    def _unbind_keys(self) -> None:
        for key, before in self._replaced.items():
            self._viewer.bind_key(key, before, overwrite=True)
        self._replaced = {}

    # -- actions ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the sheet (resuming a saved one) and show the first cell to score."""
        table_file = str(self._table_file.value)
        options = {"half_steps": bool(self._half_steps.value)}
        if table_file not in {"", "."}:
            self._layer = None
            sheet = ScoreSheet.from_file(table_file, **options)
        else:
            layer = self._labels.value
            if layer is None:
                raise ValueError("choose a crops table or a Labels layer to score")
            scores = Path(str(self._scores_file.value))
            table = field_sheet_table(np.asarray(layer.data), layer.name)
            if scores.is_file():  # resume: the scores saved for these labels
                saved = ScoreSheet.from_file(scores).table
                saved = saved[saved[FIELD_COLUMN].astype(str) == layer.name]
                table = table.drop(columns=TARGET_COLUMN).merge(
                    saved[[LABEL_COLUMN, TARGET_COLUMN]], on=LABEL_COLUMN, how="left")
            self._layer = layer
            sheet = ScoreSheet(table, scores, **options)
        model_file = str(self._model_file.value)
        if model_file not in {"", "."}:
            sheet = self._ordered(sheet, model_file, options)
        self.sheet = sheet
        self._update_features()
        self.show_current()

    def _ordered(self, sheet: ScoreSheet, model_file: str, options: dict) -> ScoreSheet:
        from ..deploy import suggest_cells
        from ..tables import load_cells

        model = load_sarcnet_model(model_file)
        if self._layer is None:
            cells = load_cells(sheet.path)
            order = suggest_cells(model, cells.reset_index(drop=True))
            self.order = order
            return ScoreSheet(sheet.table, sheet.path, order=order.index.tolist(), **options)
        order = self._field_order(model, sheet.table)
        self.order = order
        position = {int(label): i for i, label in enumerate(sheet.table[LABEL_COLUMN])}
        return ScoreSheet(sheet.table, sheet.path, **options,
                          order=[position[int(label)] for label in order[LABEL_COLUMN]])

    def _field_order(self, model, table):
        """suggest_cells on the field's cells, cut from the image layer and measured."""
        import pandas as pd

        from .._columns import PIXEL_SIZE_UM
        from ..deploy import ModelInputs, suggest_cells
        from ..fields import score_fields
        from ..fields._score import CROP_COLUMN

        image = self._image.value
        if image is None:
            raise ValueError("ordering a field's cells by a model needs its image: choose the "
                             "field image layer")
        data = np.asarray(image.data[0] if getattr(image, "multiscale", False) else image.data)
        pixel_size = pixel_size_of(image.scale) or PIXEL_SIZE_UM
        cut = score_fields(model, data, np.asarray(self._layer.data), pixel_size=pixel_size,
                           score_border_cells=True, keep_crops=True)
        inputs = ModelInputs.of(model)
        cells = cut[[LABEL_COLUMN, *inputs.features, "pixel_size"]].copy()
        if inputs.image_column is not None:
            cells.insert(0, inputs.image_column, cut[CROP_COLUMN])
        ready = cut["error"].isna().to_numpy()
        cells[TARGET_COLUMN] = table.set_index(LABEL_COLUMN)[TARGET_COLUMN].reindex(
            cells[LABEL_COLUMN]).to_numpy()  # scored cells are left out of the order
        order = suggest_cells(model, cells[ready].reset_index(drop=True))
        failed = cut.loc[~ready, [LABEL_COLUMN, "error"]]  # cannot be cut: last
        return pd.concat([order, failed[cells.loc[~ready, TARGET_COLUMN].isna().to_numpy()]],
                         ignore_index=True)

    def score(self, value: float) -> None:
        """Give the current cell ``value`` (saved at once) and show the next."""
        self._require().set_score(value)
        self._update_features()
        self.show_current()

    def skip(self) -> None:
        """Leave the current cell unscored and show the next."""
        self._require().skip()
        self.show_current()

    def back(self) -> None:
        """Undo the last score or skip and show that cell again."""
        self._require().back()
        self._update_features()
        self.show_current()

    def merge(self) -> None:
        """Merge this sheet's table with the other scorer's; write it and show the agreement."""
        from ..outputs import write_csv_atomically

        sheet = self._require()
        other = str(self._other.value)
        if other in {"", "."}:
            raise ValueError("choose the other scorer's table")
        merged, agreement = merge_scorers(sheet.table, other)
        out = write_csv_atomically(merged, str(self._merged_file.value),
                                   inputs=[other, *([sheet.path] if sheet.path else [])])
        self.agreement = agreement
        self._agreement.value = (
            f"{agreement['n_cells']} cells: Spearman {agreement['spearman']:.2f}, "
            f"weighted kappa {agreement['kappa_quadratic']:.2f}, "
            f"same score {agreement['exact']:.0%}")
        show_info(f"merged scores written to {Path(out).resolve()}")

    def _require(self) -> ScoreSheet:
        if self.sheet is None:
            raise ValueError("press Start first")
        return self.sheet

    # -- display ----------------------------------------------------------------------------

    def _update_features(self) -> None:
        if self._layer is None:
            return
        table = self.sheet.table
        features = table[[LABEL_COLUMN, TARGET_COLUMN]].copy()
        features.insert(0, "index", features[LABEL_COLUMN].astype(int))
        self._layer.features = features

    def show_current(self) -> None:
        """Show the current cell (or say that all are done)."""
        sheet = self._require()
        total = len(sheet.table)
        if sheet.done:
            self._status.value = f"done: {sheet.scored} of {total} cells scored"
            if self._layer is not None:
                self._layer.show_selected_label = False
            return
        row = sheet.current
        place = f"{sheet.scored} of {total} scored; "
        if self._layer is not None:
            label = int(sheet.table[LABEL_COLUMN].iloc[row])
            self._status.value = place + f"label {label}: score 1-5, S skip, B back"
            self._show_label(label)
        else:
            path = sheet.image_path(row)
            self._status.value = place + f"{path.name}: score 1-5, S skip, B back"
            self._show_crop(path)

    def _show_label(self, label: int) -> None:
        layer = self._layer
        layer.selected_label = label
        layer.show_selected_label = True
        rows, cols = np.nonzero(np.asarray(layer.data) == label)
        center = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
        extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
        self._viewer.reset_view()  # the whole field fills the canvas: zoom in from there
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9 moved the camera there
        camera = scene.camera if scene is not None else self._viewer.camera
        whole = max(np.asarray(layer.data).shape[-2:])
        camera.zoom = camera.zoom * whole / (extent * ZOOM_MARGIN)
        camera.center = tuple(np.asarray(layer.data_to_world(center)))

    def _show_crop(self, path: Path) -> None:
        pages = tifffile.imread(path)
        image = pages[STRUCTURE_PAGE] if pages.ndim == 3 else pages
        mask = (pages[CELL_MASK_PAGE] > 0) if pages.ndim == 3 else image > 0
        layers = self._viewer.layers
        if CELL_LAYER in layers:
            layers[CELL_LAYER].data = image
        else:
            self._viewer.add_image(image, name=CELL_LAYER, colormap="gray")
        if OUTLINE_LAYER in layers:
            layers[OUTLINE_LAYER].data = mask.astype(np.uint8)
        else:
            self._viewer.add_labels(mask.astype(np.uint8), name=OUTLINE_LAYER, opacity=0.8)
        layers[OUTLINE_LAYER].contour = 1
        self._viewer.reset_view()


class _WhenUnparented(QObject):
    """Calls ``callback`` once when the widget it filters loses its parent."""

    def __init__(self, callback) -> None:
        super().__init__()
        self._callback = callback

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if (event.type() == QEvent.Type.ParentChange and watched.parent() is None
                and self._callback is not None):
            callback, self._callback = self._callback, None
            callback()
        return False
