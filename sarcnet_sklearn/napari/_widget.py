"""The dock widget: score the cells of the open field, show scores, heatmaps, export a CSV."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    Table,
)
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning

from .._columns import ERROR_COLUMN, PIXEL_SIZE_UM, REASON_COLUMN, SCORE_PRED_COLUMN
from .._doors import entered_through
from .._reasons import BY_CODE, MAP_CODES, MAP_SCORED, count_reasons, reason_codes
from ..deploy._card import synthetic_model_message
from ._sample import (
    MODEL_METADATA_KEY,
    SYNTHETIC_METADATA_KEY,
    demo_model_pending,
    wait_for_demo_model,
)
from ._scoring import (
    INTERVAL_COLUMNS,
    PluginError,
    Progress,
    as_features,
    cell_heatmap,
    load_sarcnet_model,
    pixel_size_of,
    score_in_chunks,
    score_limits,
    score_map,
)

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ["label", SCORE_PRED_COLUMN, *INTERVAL_COLUMNS, "area", "touches_border",
                 REASON_COLUMN, ERROR_COLUMN]
SCORE_COLORMAP = "viridis"
OUTLINE_PX = 1
"""Contour width the user's labels layer gets when scores are shown (filled labels at napari's
default opacity would hide the score colours)."""
HEATMAP_COLORMAP = "inferno"


class ScoreCellsWidget(Container):
    """Score every labelled cell of a field with a SarcNet model, in a worker thread.

    Choose the alpha-actinin-2 Image layer, the Labels layer of its cells and a
    model file, then press Score. The scores (with intervals when the model
    has them), the Protocol 1 features and each cell's error go into the
    Labels layer's ``features``; a layer shows the cells filled by score;
    selecting a label shows its Grad-CAM heatmap; Export CSV writes the table.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._image = ComboBox(label="image", choices=self._layers_of(napari.layers.Image),
                               tooltip="the field's alpha-actinin-2 channel")
        self._labels = ComboBox(label="cells", choices=self._layers_of(napari.layers.Labels),
                                tooltip="one label per cell")
        self._model_file = FileEdit(label="model", mode="r",
                                    filter="SarcNet models (*.zip);;All files (*)",
                                    tooltip="a safe-format model (.zip or folder)")
        self._trust_pickle = CheckBox(
            text="trust pickle (joblib) model files", value=False,
            tooltip="loading a joblib file can run any code it holds",
        )
        self._border_cells = CheckBox(
            text="score cells touching the border", value=False,
            tooltip="the AICS training cells never did; such cells may be cut off",
        )
        self._score = PushButton(text="Score")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._status = Label(label="status", value="")
        self._legend = Label(label="not scored", value="")
        self._legend.visible = False
        self._cam_on_select = CheckBox(text="Grad-CAM of the selected cell", value=True)
        self._table = Table(label="cells")
        self._csv = FileEdit(label="CSV", mode="w", filter="*.csv", value="sarcnet_scores.csv")
        self._export = PushButton(text="Export CSV", enabled=False)
        self.extend([
            self._image, self._labels, self._model_file, self._trust_pickle, self._border_cells,
            self._score,
            self._cancel, self._progress, self._status, self._legend, self._cam_on_select,
            self._table,
            self._csv, self._export,
        ])

        self._worker = None
        self._cam_worker = None
        self._model = None
        self._scored = None  # what the last scoring ran on: layers, arrays, table
        self._watched_labels: list = []

        self._score.changed.connect(self.score)
        self._cancel.changed.connect(self.cancel)
        self._export.changed.connect(lambda: self.export_csv(self._csv.value))
        self._image.changed.connect(self._suggest_model)
        events = self._viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        self.reset_choices()
        self._suggest_model()
        self.native.destroyed.connect(self._forget_workers)

    # -- inputs -----------------------------------------------------------------------------

    def _layers_of(self, kind):
        def choices(_widget=None):
            return [(layer.name, layer) for layer in self._viewer.layers
                    if isinstance(layer, kind)]
        return choices

    def _suggest_model(self, *_) -> None:
        """Fill in the model that goes with the image (the sample's demo model) if none is set."""
        layer = self._image.value
        suggested = layer.metadata.get(MODEL_METADATA_KEY) if layer is not None else None
        if suggested and str(self._model_file.value) in {"", "."}:
            self._model_file.value = suggested

    def _plane(self, layer) -> np.ndarray:
        """The 2-D plane of ``layer`` on screen (the current slice of a stack)."""
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        if getattr(layer, "rgb", False):
            raise PluginError(
                f"layer {layer.name!r} is an RGB image; open the alpha-actinin-2 channel alone"
            )
        if data.ndim > 2:
            point = layer.world_to_data(self._viewer.dims.point)
            index = tuple(
                int(np.clip(round(value), 0, size - 1))
                for value, size in zip(point[: data.ndim - 2], data.shape, strict=False)
            )
            data = data[index]
        return np.asarray(data)

    # -- scoring ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether scoring or a heatmap is running."""
        return self._worker is not None or self._cam_worker is not None

    def score(self) -> None:
        """Start scoring the chosen layers in a worker thread."""
        if self._worker is not None:
            return
        try:
            image, labels = self._image.value, self._labels.value
            if image is None:
                raise PluginError("open or choose an Image layer (the alpha-actinin-2 channel)")
            if labels is None:
                raise PluginError(
                    "there is no Labels layer: draw or load one label per cell (e.g. with "
                    "cellpose-napari) and choose it under 'cells'"
                )
            field, label_image = self._plane(image), self._plane(labels)
            pixel_size = pixel_size_of(image.scale)
        except PluginError as exc:
            self._report_error(str(exc))
            return
        if pixel_size is None:
            pixel_size = PIXEL_SIZE_UM
            show_warning(
                f"layer {image.name!r} has no scale: measuring the cells at {PIXEL_SIZE_UM} um "
                "per pixel (the AICS images'); set the layer's scale to the field's pixel size"
            )
        self._scored = {"image": image, "labels": labels, "field": field.copy(),
                        "label_image": label_image.copy(), "table": None}
        self._started = time.perf_counter()
        self._set_running(True, "loading the model...")
        worker = _score_worker(self._model_file.value, self._trust_pickle.value, field,
                               label_image, pixel_size, self._border_cells.value)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_scored)
        worker.aborted.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _forget_workers(self, *_) -> None:
        """The widget is gone (closed or the viewer quit): stop and silence its workers."""
        for worker in (self._worker, self._cam_worker):
            if worker is not None:
                for signal in (worker.yielded, worker.returned, worker.aborted, worker.finished):
                    try:
                        signal.disconnect()
                    except (TypeError, RuntimeError, AttributeError):  # nothing connected
                        pass
                worker.quit()
        self._worker = self._cam_worker = None
        events = self._viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.disconnect(self.reset_choices)

    def cancel(self) -> None:
        """Stop scoring after the cells in progress; nothing is written."""
        if self._worker is not None:
            self._status.value = "cancelling..."
            self._worker.quit()

    def _set_running(self, running: bool, message: str) -> None:
        self._score.enabled = not running
        self._cancel.enabled = running
        self._status.value = message
        if running:
            self._progress.value = 0

    def _on_progress(self, item) -> None:
        if isinstance(item, str):
            self._status.value = item
        elif isinstance(item, Progress):
            self._progress.max = item.total
            self._progress.value = item.done
            self._status.value = f"scored {item.done} of {item.total} cells"
        else:  # the model, loaded
            self._model = item

    def _on_scored(self, table) -> None:
        if isinstance(table, _Failure):
            self._report_error(table.message)
            return
        scored = self._scored
        labels, image = scored["labels"], scored["image"]
        table = table.copy()
        table[REASON_COLUMN] = reason_codes(table["error"])
        scored["table"] = table
        labels.features = as_features(table, image.name)
        self._show_score_layer(labels, scored["label_image"], table)
        self._show_reasons(labels, scored["label_image"], table)
        self._viewer.layers.selection.active = labels  # clicks on a cell reach the labels
        synthetic = None if image.metadata.get(SYNTHETIC_METADATA_KEY) else (
            synthetic_model_message(getattr(self._model, "model_card_", None), [image.name],
                                    "images"))
        if synthetic:
            show_warning(synthetic)
        self._table.value = table[[c for c in TABLE_COLUMNS if c in table.columns]]
        self._export.enabled = True
        self._watch(labels)
        failed = table["error"].notna() & (table["error"].astype(str) != "")
        seconds = time.perf_counter() - self._started
        self._status.value = (
            f"scored {int((~failed).sum())} of {len(table)} cells in {seconds:.1f} s"
            + (f"; {int(failed.sum())} with an error (see the table)" if failed.any() else "")
        )
        if failed.any():
            counts = count_reasons(table["error"])
            lines = [f"{n} {BY_CODE[code].title}" for code, n in counts.items()]
            examples = [f"cell {int(row.label)}: {row.error}"
                        for row in table[failed].itertuples()]
            show_warning(f"{int(failed.sum())} of {len(table)} cells could not be scored: "
                         + "; ".join(lines) + "\n" + "\n".join(examples[:3])
                         + ("\n..." if len(examples) > 3 else ""))
        else:
            show_info(f"SarcNet scored {len(table)} cells of {image.name!r}")

    def _show_score_layer(self, labels, label_image: np.ndarray, table: pd.DataFrame) -> None:
        name = f"{labels.name} scores"
        data = score_map(label_image, table)
        limits = score_limits(self._model)
        scale, translate = tuple(labels.scale[-2:]), tuple(labels.translate[-2:])
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = data
            layer.scale, layer.translate = scale, translate
        else:
            layer = self._viewer.add_image(
                data, name=name, colormap=SCORE_COLORMAP, contrast_limits=limits,
                scale=scale, translate=translate, opacity=0.6, blending="translucent",
            )
        layer.contrast_limits = limits
        layer.colorbar.visible = True
        self._place_above(layer, labels)
        if not labels.contour:  # the user's filled labels (opacity 0.7) would hide the scores
            labels.contour = OUTLINE_PX

    def _place_above(self, layer, below) -> None:
        """Move ``layer`` just above ``below`` in the layer list (drawn over it)."""
        layers = self._viewer.layers
        target = layers.index(below) + 1
        if layers.index(layer) < target - 1 or layers.index(layer) > target:
            layers.move(layers.index(layer), target)

    def _show_reasons(self, labels, label_image: np.ndarray, table: pd.DataFrame) -> None:
        """A labels layer of the cells not scored, each in its reason's colour, and a legend."""
        from napari.utils.colormaps import DirectLabelColormap

        from ..fields._maps import reason_image

        name = f"{labels.name} not scored"
        codes = reason_image(label_image, table)
        codes[codes == MAP_SCORED] = 0
        counts = count_reasons(table["error"])
        if not counts:
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
            self._legend.value, self._legend.visible = "", False
            return
        colours = {None: "transparent", 0: "transparent"}
        colours |= {MAP_CODES[code]: reason.colour for code, reason in BY_CODE.items()}
        features = pd.DataFrame({"index": [MAP_CODES[code] for code in BY_CODE],
                                 "not scored": [reason.title for reason in BY_CODE.values()]})
        scale, translate = tuple(labels.scale[-2:]), tuple(labels.translate[-2:])
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = codes
            layer.scale, layer.translate = scale, translate
        else:
            layer = self._viewer.add_labels(
                codes, name=name, scale=scale, translate=translate, opacity=0.7,
                colormap=DirectLabelColormap(color_dict=colours), features=features,
            )
        self._place_above(layer, self._viewer.layers[f"{labels.name} scores"])
        self._legend.value = "<br>".join(
            f'<span style="color:{BY_CODE[code].colour}">&#9632;</span> '
            f"{BY_CODE[code].title}: {n}" for code, n in counts.items())
        self._legend.visible = True

    def _report_error(self, message: str) -> None:
        self._status.value = f"error: {message}"
        self._table.value = pd.DataFrame({"error": [message]})
        show_error(message)

    def _on_cancelled(self) -> None:
        self._status.value = "cancelled; no scores were written"
        self._progress.value = 0

    def _on_finished(self) -> None:
        self._worker = None
        self._score.enabled = True
        self._cancel.enabled = False

    # -- Grad-CAM of the selected cell ------------------------------------------------------

    def _watch(self, labels) -> None:
        if any(layer is labels for layer in self._watched_labels):
            return
        self._watched_labels.append(labels)
        labels.events.selected_label.connect(self._on_selected_label)
        labels.mouse_drag_callbacks.append(self._on_click)

    def _on_selected_label(self, event) -> None:
        if self._cam_on_select.value and self._scored and event.source is self._scored["labels"]:
            self.show_heatmap(int(event.source.selected_label))

    def _on_click(self, layer, event) -> None:
        """In pan/zoom mode, a click on a cell selects it (and so shows its heatmap)."""
        if layer.mode != "pan_zoom":
            return
        value = layer.get_value(event.position, view_direction=event.view_direction,
                                dims_displayed=event.dims_displayed, world=True)
        if not value:
            return
        if int(value) == int(layer.selected_label):  # no selection event: show it anyway
            if self._cam_on_select.value:
                self.show_heatmap(int(value))
        else:
            layer.selected_label = int(value)

    def show_heatmap(self, label: int) -> None:
        """Add (or refresh) the Grad-CAM heatmap layer of a scored cell, aligned with the field."""
        scored = self._scored
        if self._cam_worker is not None or not scored or scored["table"] is None:
            return
        rows = scored["table"][scored["table"]["label"] == label]
        if rows.empty:
            if label != 0:
                show_info(f"cell {label} was not scored; press Score first")
            return
        error = rows.iloc[0]["error"]
        if isinstance(error, str) and error:  # nothing to explain: say why, no error toast
            self._status.value = f"cell {label} was not scored: {error}"
            show_info(f"cell {label} was not scored: {error}")
            return
        worker = _heatmap_worker(self._model, scored["field"], scored["label_image"],
                                 rows.iloc[0])
        worker.returned.connect(self._add_heatmap)
        worker.finished.connect(self._on_heatmap_done)
        self._cam_worker = worker
        worker.start()

    def _on_heatmap_done(self) -> None:
        self._cam_worker = None

    def _add_heatmap(self, cell) -> None:
        if isinstance(cell, _Failure):
            self._status.value = f"error: {cell.message}"
            show_error(cell.message)
            return
        labels = self._scored["labels"]
        scale = np.asarray(labels.scale[-2:], dtype=float)
        translate = np.asarray(labels.translate[-2:], dtype=float) + np.asarray(cell.offset) * scale
        name = f"Grad-CAM cell {cell.label}"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        self._viewer.add_image(
            cell.heatmap, name=name, colormap=HEATMAP_COLORMAP, contrast_limits=(0.0, 1.0),
            scale=tuple(scale), translate=tuple(translate), blending="additive", opacity=0.8,
        )
        self._viewer.layers.selection.active = labels
        explained = f" ({cell.layer} of the image branch)" if cell.layer else ""
        if not cell.heatmap.any():
            message = (f"Grad-CAM of cell {cell.label}{explained}: nothing in the image raises "
                       "its score (the heatmap is zero)")
            self._status.value = message
            show_info(message)
        else:
            self._status.value = f"Grad-CAM of cell {cell.label}{explained} shown"

    # -- export -----------------------------------------------------------------------------

    def export_csv(self, path) -> Path | None:
        """Write the last scores table to ``path`` (a .csv; never over the field's file)."""
        from ..outputs import write_csv_atomically

        scored = self._scored
        if not scored or scored["table"] is None:
            self._report_error("nothing to export yet: press Score first")
            return None
        path = Path(path).expanduser()
        if path.suffix.lower() != ".csv":
            self._report_error(f"{path}: give the table a file name ending in .csv")
            return None
        table = scored["labels"].features.drop(columns="index", errors="ignore")
        sources = [layer.source.path for layer in (scored["image"], scored["labels"])
                   if layer.source.path]
        try:
            written = write_csv_atomically(table, path, inputs=sources)
        except (ValueError, OSError) as exc:
            self._report_error(f"cannot write {path}: {exc}")
            return None
        self._status.value = f"table written to {written.resolve()}"
        show_info(f"SarcNet scores written to {written.resolve()}")
        return written


class _Failure:
    """What a worker returns instead of raising: napari would print the traceback only."""

    def __init__(self, exc: Exception) -> None:
        if isinstance(exc, PluginError):
            self.message = str(exc)
        else:
            logger.error("SarcNet plugin: unexpected error", exc_info=exc)
            self.message = f"{type(exc).__name__}: {exc}"


@thread_worker
def _score_worker(model_path, allow_pickle, field, labels, pixel_size, score_border_cells):
    try:
        with entered_through("napari"):  # messages name the widget's fields, not flags
            if demo_model_pending(model_path):
                yield "waiting for the demo model (Open Sample trains it once)..."
                wait_for_demo_model(model_path)
            model = load_sarcnet_model(model_path, allow_pickle=allow_pickle)
        yield model
        table = None
        with entered_through("napari"):
            for item in score_in_chunks(model, field, labels, pixel_size=pixel_size,
                                        score_border_cells=score_border_cells):
                if isinstance(item, Progress):
                    yield item
                else:
                    table = item
        return table
    except Exception as exc:  # reported in the widget and as a notification
        return _Failure(exc)


@thread_worker
def _heatmap_worker(model, field, labels, row):
    try:
        with entered_through("napari"):
            return cell_heatmap(model, field, labels, row)
    except Exception as exc:  # reported in the widget and as a notification
        return _Failure(exc)
