"""Pictures of a scored field: every cell filled by its score, or its Grad-CAM evidence."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from skimage.segmentation import find_boundaries

from .._columns import SCORE_RANGE
from .._reasons import BY_CODE, count_reasons, reason_codes, rgba
from ..outputs import write_atomically
from ._cut import check_labels, compact_ids, compact_labels

SCORE_CMAP = "viridis"
"""Colour map of the score overlays (perceptually uniform, readable by colour-blind people)."""
UNSCORED_ALPHA = 0.7
"""Opacity of the fill of a cell that could not be scored (its colour: its reason's)."""


def _figure(shape: tuple[int, int], width_in: float = 10.0) -> tuple[Figure, object]:
    height, width = shape
    figure = Figure(figsize=(width_in + 1.6, width_in * height / width + 0.8))
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.01, 0.02, 0.82 * width_in / (width_in + 1.6) + 0.1, 0.92))
    axes.set_axis_off()
    return figure, axes


MAX_NUMBERED_CELLS = 300
"""Cells a picture writes the label number of; beyond, numbers would hide the cells (and
drawing 50,000 of them took minutes), so the title says to look them up in cells.csv."""


def _label_cells(axes, cells: pd.DataFrame, with_scores: bool = False) -> str:
    """Each cell's label number (and score) at its centroid; what the title should say."""
    if len(cells) > MAX_NUMBERED_CELLS:
        return (f"{len(cells)} cells: label numbers left out (more than "
                f"{MAX_NUMBERED_CELLS}); see cells.csv")
    for row in cells.itertuples():
        text = str(row.label)
        if with_scores and np.isfinite(row.score_pred):
            text += f"\n{row.score_pred:.1f}"
        axes.text(row.centroid_col, row.centroid_row, text, color="white", fontsize=8,
                  ha="center", va="center", fontweight="bold", linespacing=0.9,
                  bbox={"boxstyle": "round,pad=0.2", "fc": "black", "alpha": 0.6, "lw": 0})
    return "label number, predicted score" if with_scores else ""


def _save(figure: Figure, path: str | PathLike, description: str | None = None) -> Path:
    metadata = {"Description": description} if description else None
    return write_atomically(path, lambda temporary: figure.savefig(
        temporary, format="png", dpi=150, metadata=metadata))


def plot_field_scores(
    image: np.ndarray,
    labels: np.ndarray,
    cells: pd.DataFrame,
    path: str | PathLike,
    *,
    title: str | None = None,
    score_range: tuple[float, float] = SCORE_RANGE,
) -> Path:
    """Save a PNG of a field with every cell filled by its predicted score.

    Parameters
    ----------
    image : ndarray of shape (height, width)
        The field, shown in grey (e.g. :func:`stretch_field` of it).
    labels : ndarray of shape (height, width)
        Its label image.
    cells : DataFrame
        This field's rows of :func:`score_fields`: ``label``, ``centroid_row``,
        ``centroid_col``, ``score_pred``, ``error``.
    path : str or path-like
        PNG file to write.
    title : str, optional
    score_range : (float, float), default=(1.0, 5.0)
        The model's score range: the ends of the colour scale.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> plot_field_scores(stretched, labels, scores, "field_scores.png")  # doctest: +SKIP
    """
    values, compact = compact_labels(check_labels(labels, np.shape(labels), "the label image"))
    norm = Normalize(*score_range)
    mappable = ScalarMappable(norm=norm, cmap=SCORE_CMAP)
    lookup = np.zeros((len(values) + 1, 4))
    ids = compact_ids(values, cells["label"])
    scores = cells["score_pred"].to_numpy(dtype=float)
    finite = np.isfinite(scores)
    reasons = reason_codes(cells["error"] if "error" in cells else [None] * len(cells))
    for index, code in zip(ids[~finite], reasons[~finite], strict=True):
        lookup[index] = rgba(code or "other", UNSCORED_ALPHA)
    if finite.any():
        lookup[ids[finite]] = mappable.to_rgba(scores[finite])
        lookup[ids[finite], 3] = 0.5
    fill = lookup[compact]
    fill[find_boundaries(compact, mode="inner")] = (1.0, 1.0, 1.0, 0.9)
    figure, axes = _figure(labels.shape)
    axes.imshow(image, cmap="gray", interpolation="nearest")
    axes.imshow(fill, interpolation="nearest")
    numbers = _label_cells(axes, cells, with_scores=True)
    scored = int(np.isfinite(cells["score_pred"]).sum())
    axes.set_title(
        (title + "\n" if title else "") + f"{scored} of {len(cells)} cells scored ({numbers})",
        fontsize=10,
    )
    colour_bar = figure.colorbar(mappable, ax=axes, fraction=0.04, pad=0.02)
    colour_bar.set_label(f"predicted sarcomere organization score "
                         f"({score_range[0]:g}-{score_range[1]:g})")
    description = f"{scored} of {len(cells)} cells scored"
    if scored < len(cells):
        counts = count_reasons(cells["error"][~finite]) if "error" in cells else {}
        if len(cells) - scored > sum(counts.values()):
            counts["other"] = counts.get("other", 0) + len(cells) - scored - sum(counts.values())
        axes.legend(handles=[Patch(color=rgba(code, UNSCORED_ALPHA),
                                   label=f"not scored: {BY_CODE[code].title} ({n})")
                             for code, n in counts.items()],
                    loc="lower left", fontsize=8, framealpha=0.8,
                    title="cells not scored (reason in 'error')", title_fontsize=8)
        description += "; not scored: " + ", ".join(
            f"{BY_CODE[code].title} ({n})" for code, n in counts.items())
    return _save(figure, path, description)


def plot_field_heatmap(
    image: np.ndarray,
    labels: np.ndarray,
    cells: pd.DataFrame,
    heatmaps: Sequence[np.ndarray],
    path: str | PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Save a PNG of a field with each cell's Grad-CAM heatmap pasted inside the cell.

    ``heatmaps[i]`` belongs to ``cells.iloc[i]`` and has the shape of its
    bounding box (as :func:`~sarcnet_sklearn.explain.grad_cam` returns for the
    cell's crop); it is shown only inside the cell's mask.
    """
    from ..explain import overlay_heatmap

    values, labels = compact_labels(check_labels(labels, np.shape(labels), "the label image"))
    ids = compact_ids(values, cells["label"])
    canvas = np.zeros(labels.shape, dtype=np.float32)
    for row, index, heatmap in zip(cells.itertuples(), ids, heatmaps, strict=True):
        box = np.s_[row.bbox_min_row:row.bbox_max_row, row.bbox_min_col:row.bbox_max_col]
        inside = labels[box] == index
        canvas[box][inside] = np.asarray(heatmap)[inside]
    blended = overlay_heatmap(image, canvas, image_weight=0.55)
    outside = ~np.isin(labels, ids)
    grey = np.repeat(np.asarray(image)[..., None], 3, axis=2)
    blended[outside] = grey[outside]
    figure, axes = _figure(labels.shape)
    axes.imshow(blended, interpolation="nearest")
    numbers = _label_cells(axes, cells)
    axes.set_title((title + "\n" if title else "") + "Grad-CAM: where the image branch finds "
                   "evidence for a higher score" + (f" ({numbers})" if numbers else ""),
                   fontsize=10)
    mappable = ScalarMappable(norm=Normalize(0, 1), cmap="jet")
    colour_bar = figure.colorbar(mappable, ax=axes, fraction=0.04, pad=0.02)
    colour_bar.set_label("Grad-CAM (per cell, scaled to its maximum)")
    return _save(figure, path)
