"""The paper's figures: cells with their scores (Fig. 2A), Grad-CAM (Fig. 2B), days (Fig. 3),
and the agreement with the experts (predicted against expert score, residuals).

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg
canvas (no pyplot, no global backend change) and saved as PNG files.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy import ndimage

from .._columns import SCORE_RANGE, STRUCTURE_PAGE
from ..images import read_plane, to_uint8
from ..metrics import spearman_score
from ..outputs import write_atomically

HEATMAP_CMAP = "jet"
"""The colour map of the overlays (OpenCV's JET, as drawn by pytorch-grad-cam)."""
DPI = 110
FLAT_RANGE = 0.05
"""A heatmap whose values over the cell span less than this (of its [0, 1]) shows nothing."""

ScoreRange = tuple[float, float]


def _axis_limits(score_range: ScoreRange) -> tuple[float, float]:
    """A score axis: the model's score range and 5 % of it on either side."""
    low, high = (float(value) for value in score_range)
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def read_display_image(path: str | PathLike, structure_page: int = STRUCTURE_PAGE) -> np.ndarray:
    """The cell's image plane at its own resolution, as uint8 (what the model reads, unresized)."""
    return to_uint8(read_plane(path, structure_page))


def cell_mask(image: np.ndarray) -> np.ndarray:
    """The cell's pixels in a masked crop: the non-zero ones, holes inside filled.

    The AICS crops (and :func:`~sarcnet_sklearn.fields.cut_cells`) set
    everything outside the cell to 0; an unmasked image is all cell.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((5, 5), np.uint8); image[1:4, 1:4] = 9; image[2, 2] = 0
    >>> int(cell_mask(image).sum())
    9
    """
    return ndimage.binary_fill_holes(np.asarray(image) > 0)


def missing_signal(heatmap: np.ndarray, mask: np.ndarray | None = None) -> str | None:
    """Why a heatmap shows nothing ("all zero", "constant over the cell"), or None if it shows.

    An all-zero Grad-CAM map means nothing in the image moves the score in the
    explained direction (often a barely trained model); a nearly constant one
    (values over ``mask`` spanning less than :data:`FLAT_RANGE`) singles out
    no part of the cell. Either would be drawn as one uniform colour.

    Examples
    --------
    >>> import numpy as np
    >>> missing_signal(np.zeros((4, 4))), missing_signal(np.eye(4))
    ('all zero', None)
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if not np.any(heatmap > 0):
        return "all zero"
    values = heatmap[mask] if mask is not None and np.any(mask) else heatmap
    if values.max() - values.min() < FLAT_RANGE:
        return "constant over the cell"
    return None


def overlay_heatmap(
    image: np.ndarray,
    heatmap: np.ndarray,
    image_weight: float = 0.5,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """RGB uint8 blend of a grey image and a [0, 1] heatmap, coloured inside the cell only.

    pytorch-grad-cam's colouring (JET); outside ``mask`` (default:
    :func:`cell_mask` of the image) the grey image is kept.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    image = np.asarray(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if image.shape != heatmap.shape:
        raise ValueError(f"image shape {image.shape} differs from heatmap shape {heatmap.shape}")
    mask = cell_mask(image) if mask is None else np.asarray(mask, dtype=bool)
    grey = np.repeat((to_uint8(image).astype(np.float32) / 255.0)[..., None], 3, axis=2)
    blend = show_cam_on_image(grey, np.clip(heatmap, 0.0, 1.0), use_rgb=True,
                              image_weight=image_weight)
    blend[~mask] = np.round(grey[~mask] * 255).astype(np.uint8)
    return blend


def _draw_heatmap(ax, image: np.ndarray, heatmap: np.ndarray, fontsize: int = 8) -> None:
    """The overlay, or the grey cell labelled "no signal" when the map shows nothing."""
    if image.shape != np.shape(heatmap):
        raise ValueError(f"image shape {image.shape} differs from heatmap shape "
                         f"{np.shape(heatmap)}")
    mask = cell_mask(image)
    reason = missing_signal(heatmap, mask)
    if reason is None:
        ax.imshow(overlay_heatmap(image, heatmap, mask=mask))
        return
    ax.imshow(to_uint8(np.asarray(image)), cmap="gray", vmin=0, vmax=255)
    ax.text(0.5, 0.5, f"no signal\n(map {reason})", transform=ax.transAxes, ha="center",
            va="center", fontsize=fontsize, color="white",
            bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})


def select_across_scores(scores, n_cells: int) -> np.ndarray:
    """Indices of ``n_cells`` cells whose scores spread evenly over the range of ``scores``.

    For each of ``n_cells`` evenly spaced targets from the lowest to the highest
    score, the not yet chosen cell closest to it is picked (ties: the first).
    The indices are returned in order of increasing score.

    Examples
    --------
    >>> select_across_scores([3.0, 1.0, 5.0, 3.0, 2.0, 4.5], 3).tolist()
    [1, 0, 2]
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}")
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) <= n_cells:
        return finite[np.argsort(scores[finite], kind="stable")]
    chosen: list[int] = []
    available = np.ones(len(scores), dtype=bool)
    available[np.setdiff1d(np.arange(len(scores)), finite)] = False
    for target in np.linspace(scores[finite].min(), scores[finite].max(), n_cells):
        distance = np.where(available, np.abs(scores - target), np.inf)
        best = int(np.argmin(distance))
        chosen.append(best)
        available[best] = False
    chosen_array = np.asarray(chosen)
    return chosen_array[np.argsort(scores[chosen_array], kind="stable")]


def _score_title(expert: float | None, predicted: float | None) -> str:
    parts = []
    if expert is not None and np.isfinite(expert):
        parts.append(f"expert {expert:.1f}")
    if predicted is not None and np.isfinite(predicted):
        parts.append(f"predicted {predicted:.2f}")
    elif predicted is not None:
        parts.append("not scored")
    return "\n".join(parts)


def _save(fig: Figure, path: str | PathLike) -> Path:
    """Write the figure as a PNG atomically (a stopped run leaves no half-written file)."""
    FigureCanvasAgg(fig)
    return write_atomically(path, lambda temporary: fig.savefig(temporary, dpi=DPI,
                                                                format="png"))


def plot_cell_heatmap(
    image: np.ndarray,
    heatmap: np.ndarray,
    path: str | PathLike,
    *,
    expert: float | None = None,
    predicted: float | None = None,
    label: str | None = None,
) -> Path:
    """Save one cell beside its Grad-CAM overlay, with the expert and predicted score in the title.

    Parameters
    ----------
    image : ndarray of shape (h, w)
        The cell's image plane (e.g. :func:`read_display_image`).
    heatmap : ndarray of shape (h, w)
        Its heatmap from :func:`~sarcnet_sklearn.explain.grad_cam`, in [0, 1].
    path : str or path-like
        PNG file to write (folders are created).
    expert, predicted : float, optional
        Scores shown in the title.
    label : str, optional
        First line of the title (e.g. the file name).

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import numpy as np
    >>> image, heat = np.zeros((40, 30), np.uint8), np.linspace(0, 1, 1200).reshape(40, 30)
    >>> plot_cell_heatmap(image, heat, "cell.png", expert=3.5, predicted=3.2).is_file()
    True
    """
    image = np.asarray(image)
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(to_uint8(image), cmap="gray", vmin=0, vmax=255)
    left.set_title("cell", fontsize=9)
    _draw_heatmap(right, image, heatmap, fontsize=10)
    right.set_title("Grad-CAM", fontsize=9)
    for ax in (left, right):
        ax.set_axis_off()
    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=HEATMAP_CMAP), ax=right, shrink=0.8,
                 label="relevance")
    title = "  |  ".join(_score_title(expert, predicted).split("\n"))
    fig.suptitle("\n".join(part for part in (label, title) if part), fontsize=10)
    return _save(fig, path)


def plot_prediction_grid(
    images: Sequence[np.ndarray],
    predicted,
    path: str | PathLike,
    *,
    expert=None,
    heatmaps: Sequence[np.ndarray] | None = None,
    n_columns: int = 6,
    title: str | None = None,
) -> Path:
    """Save a grid of cells ordered by score, each titled with its expert and predicted score.

    The paper's Fig. 2A (plain cells) or, with ``heatmaps``, Fig. 2B (Grad-CAM
    overlays). Pick the cells first, e.g. with :func:`select_across_scores` on
    the expert scores, so that the grid spans the score range.

    Parameters
    ----------
    images : sequence of 2-D arrays
        Cell image planes (sizes may differ).
    predicted : array-like of shape (n_cells,)
    path : str or path-like
        PNG file to write.
    expert : array-like of shape (n_cells,), optional
        Expert scores; the grid is ordered by them (else by the prediction).
    heatmaps : sequence of 2-D arrays, optional
        Grad-CAM heatmaps of the same shapes as ``images``, drawn over them.
    n_columns : int, default=6
    title : str, optional
        Figure title; default says what is shown.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> from sarcnet_sklearn.explain import read_display_image, select_across_scores
    >>> # model: a fitted SarcNet pipeline, e.g. load_model("sarcnet.zip")
    >>> shown = cells.iloc[select_across_scores(cells["score"], 6)]
    >>> images = [read_display_image(path) for path in shown["image_path"]]
    >>> plot_prediction_grid(images, model.predict(shown), "fig2a.png", expert=shown["score"])
    PosixPath('fig2a.png')
    """
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    n_cells = len(images)
    if n_cells == 0:
        raise ValueError("no cells to plot")
    if len(predicted) != n_cells:
        raise ValueError(f"{n_cells} images but {len(predicted)} predictions")
    expert_values = None
    if expert is not None:
        expert_values = np.asarray(expert, dtype=np.float64).reshape(-1)
        if len(expert_values) != n_cells:
            raise ValueError(f"{n_cells} images but {len(expert_values)} expert scores")
    if heatmaps is not None and len(heatmaps) != n_cells:
        raise ValueError(f"{n_cells} images but {len(heatmaps)} heatmaps")
    order = np.argsort(expert_values if expert_values is not None else predicted, kind="stable")
    n_columns = max(1, min(n_columns, n_cells))
    n_rows = -(-n_cells // n_columns)
    fig = Figure(figsize=(1.9 * n_columns, 2.25 * n_rows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_columns, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, i in zip(axes, order, strict=False):
        if heatmaps is None:
            ax.imshow(to_uint8(np.asarray(images[i])), cmap="gray", vmin=0, vmax=255)
        else:
            _draw_heatmap(ax, np.asarray(images[i]), heatmaps[i])
        expert_i = None if expert_values is None else expert_values[i]
        ax.set_title(_score_title(expert_i, predicted[i]), fontsize=8)
    if title is None:
        shown = "Grad-CAM of the image branch" if heatmaps is not None else "Example cells"
        order_by = "expert" if expert_values is not None else "predicted"
        title = f"{shown}, ordered by {order_by} score"
    fig.suptitle(title, fontsize=10)
    if heatmaps is not None:
        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=HEATMAP_CMAP), ax=axes.tolist(),
                     shrink=0.6, label="Grad-CAM relevance")
    return _save(fig, path)


def plot_day_histograms(
    predicted,
    day,
    path: str | PathLike,
    *,
    expert=None,
    score_range: ScoreRange = SCORE_RANGE,
) -> Path:
    """Save histograms of the predicted scores per day of differentiation, means marked.

    The paper's Fig. 3 (day 18 against day 32). With ``expert``, a second
    panel shows the expert scores the same way. Each day's histogram is
    normalised to its number of cells.

    Parameters
    ----------
    predicted : array-like of shape (n_cells,)
    day : array-like of shape (n_cells,)
        The group of each cell (18 or 32 in the AICS data); any values work.
    path : str or path-like
        PNG file to write.
    expert : array-like of shape (n_cells,), optional
    score_range : (float, float), default=(1.0, 5.0)
        The model's score range, which the score axis covers.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import numpy as np
    >>> plot_day_histograms(np.r_[2.5, 3.0, 3.6], np.r_[18, 32, 32], "fig3.png")
    PosixPath('fig3.png')
    """
    panels = {"predicted score": np.asarray(predicted, dtype=np.float64).reshape(-1)}
    if expert is not None:
        panels["expert score (mean of the experts)"] = np.asarray(
            expert, dtype=np.float64
        ).reshape(-1)
    day = np.asarray(day).reshape(-1)
    for name, values in panels.items():
        if len(values) != len(day):
            raise ValueError(f"{len(day)} days but {len(values)} values of the {name}")
    if len(day) == 0:
        raise ValueError("no cells to plot")
    groups = sorted(np.unique(day).tolist())
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    fig = Figure(figsize=(5.2 * len(panels), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
    for ax, (name, values) in zip(axes, panels.items(), strict=True):
        bins = _score_bins(values[np.isfinite(values)], score_range)
        for k, group in enumerate(groups):
            selected = values[(day == group) & np.isfinite(values)]
            if len(selected) == 0:
                continue
            color = colors[k % len(colors)]
            weights = np.full(len(selected), 1.0 / len(selected))
            mean = selected.mean()
            ax.hist(selected, bins=bins, weights=weights, color=color, alpha=0.45,
                    edgecolor=color, label=f"day {group} (n={len(selected)}, mean {mean:.2f})")
            ax.axvline(mean, color=color, linestyle="--", linewidth=1.8)
        ax.set_xlabel(name)
        ax.set_xticks(_score_ticks(score_range))
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes:
        ax.set_ylabel("fraction of the day's cells")
    fig.suptitle("Sarcomere organization by day of differentiation (dashed: means)", fontsize=10)
    return _save(fig, path)


def _score_ticks(score_range: ScoreRange) -> np.ndarray:
    """Whole-number ticks over the score range (at most about 10)."""
    low, high = np.ceil(score_range[0]), np.floor(score_range[1])
    step = max(1.0, np.ceil((high - low) / 10))
    return np.arange(low, high + step / 2, step)


def _score_bins(values: np.ndarray, score_range: ScoreRange = SCORE_RANGE) -> np.ndarray:
    """Bin edges covering the score range and the values: 0.5 wide, centred on the experts'
    half-point grid, when every value lies on it; else 0.25 wide (on the 1-5 range; scaled
    with a wider one)."""
    scale = max(1.0, (score_range[1] - score_range[0]) / 4)
    width = 0.5 * scale
    if len(values) and not np.allclose(values / width, np.round(values / width)):
        width /= 2
    values = np.concatenate([values, np.asarray(score_range, dtype=np.float64)])
    low = np.floor(values.min() / width) * width - width / 2
    high = np.ceil(values.max() / width) * width + width / 2
    return np.arange(low, high + width / 2, width)


def plot_intervals(
    predicted,
    low,
    high,
    path: str | PathLike,
    *,
    expert=None,
    confidence: float = 0.9,
    score_range: ScoreRange = SCORE_RANGE,
) -> Path:
    """Save each cell's prediction interval, cells ordered by predicted score.

    A vertical bar per cell from ``low`` to ``high`` around its predicted
    score (dot); with ``expert``, the expert score as a cross, red when it
    falls outside the interval.

    Parameters
    ----------
    predicted, low, high : array-like of shape (n_cells,)
    path : str or path-like
        PNG file to write.
    expert : array-like of shape (n_cells,), optional
    confidence : float, default=0.9
        Shown in the title.
    score_range : (float, float), default=(1.0, 5.0)
        The model's score range, which the score axis covers.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import numpy as np
    >>> low, high = np.r_[1.5, 2.5], np.r_[2.5, 3.5]
    >>> plot_intervals(np.r_[2.0, 3.0], low, high, "iv.png").is_file()
    True
    """
    values = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (predicted, low, high)]
    if len({len(v) for v in values}) != 1 or len(values[0]) == 0:
        raise ValueError("predicted, low and high must be non-empty and of the same length")
    order = np.argsort(values[0], kind="stable")
    predicted, low, high = (v[order] for v in values)
    x = np.arange(len(predicted))
    fig = Figure(figsize=(min(12.0, 6.5 + 0.02 * len(x)), 3.8), layout="constrained")
    ax = fig.subplots()
    width = max(0.5, min(4.0, 300 / len(x)))
    ax.vlines(x, low, high, color="tab:blue", alpha=0.35, linewidth=width)
    ax.plot(x, predicted, ".", color="tab:blue", markersize=3, label="predicted")
    title = f"{confidence:.0%} prediction intervals, cells ordered by predicted score"
    if expert is not None:
        expert = np.asarray(expert, dtype=np.float64).reshape(-1)[order]
        inside = (low <= expert) & (expert <= high)
        ax.plot(x[inside], expert[inside], "x", color="black", markersize=3, label="expert")
        ax.plot(x[~inside], expert[~inside], "x", color="tab:red", markersize=4,
                label="expert, outside")
        title += f"\n{inside.mean():.0%} of the expert scores inside their interval"
    ax.set_xlabel("cell")
    ax.set_ylabel("score")
    ax.set_ylim(*_axis_limits(score_range))
    ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _paired_scores(predicted, expert) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    expert = np.asarray(expert, dtype=np.float64).reshape(-1)
    if len(predicted) != len(expert) or len(predicted) == 0:
        raise ValueError(f"{len(predicted)} predictions but {len(expert)} expert scores "
                         "(need the same number, at least one)")
    return predicted, expert


def plot_predicted_vs_expert(
    predicted,
    expert,
    path: str | PathLike,
    *,
    low=None,
    high=None,
    confidence: float = 0.9,
    score_range: ScoreRange = SCORE_RANGE,
) -> Path:
    """Save a scatter of predicted against expert score, the identity line and Spearman's rho.

    Parameters
    ----------
    predicted, expert : array-like of shape (n_cells,)
    path : str or path-like
        PNG file to write.
    low, high : array-like of shape (n_cells,), optional
        Prediction intervals, drawn as vertical bars through the points.
    confidence : float, default=0.9
        The intervals' confidence, for the legend.
    score_range : (float, float), default=(1.0, 5.0)
        The model's score range, which both axes cover.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import numpy as np
    >>> path = plot_predicted_vs_expert(np.r_[2.1, 3.2, 3.9], np.r_[2.0, 3.5, 4.0],
    ...                                 "agreement.png")
    >>> path.name, path.is_file()
    ('agreement.png', True)
    """
    predicted, expert = _paired_scores(predicted, expert)
    rho = spearman_score(expert, predicted)
    fig = Figure(figsize=(4.6, 4.4), layout="constrained")
    ax = fig.subplots()
    if low is not None and high is not None:
        low = np.asarray(low, dtype=np.float64).reshape(-1)
        high = np.asarray(high, dtype=np.float64).reshape(-1)
        ax.vlines(expert, low, high, color="tab:blue", alpha=0.15, linewidth=1,
                  label=f"{confidence:.0%} prediction interval")
    alpha = max(0.15, min(0.8, 40 / len(predicted)))
    ax.plot(expert, predicted, "o", color="tab:blue", alpha=alpha, markersize=4,
            markeredgewidth=0, label=f"cells (n={len(predicted)})")
    ax.plot(score_range, score_range, color="black", linewidth=1, linestyle="--",
            label="identity (predicted = expert)")
    ax.set_xlim(*_axis_limits(score_range))
    ax.set_ylim(*_axis_limits(score_range))
    ax.set_aspect("equal")
    ax.set_xlabel("expert score")
    ax.set_ylabel("predicted score")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"Predicted vs expert score: Spearman \u03c1 = {rho:.3f}", fontsize=10)
    return _save(fig, path)


def plot_residuals(predicted, expert, path: str | PathLike, *,
                   score_range: ScoreRange = SCORE_RANGE) -> Path:
    """Save box plots of the residuals (predicted minus expert score) per expert score.

    The expert scores are grouped to the nearest half point (the experts'
    grid); each box shows its group's quartiles with the cells over it, so that a
    model that pulls scores toward the middle shows as positive residuals at 1-2
    and negative ones at 4-5.

    Parameters
    ----------
    predicted, expert : array-like of shape (n_cells,)
    path : str or path-like
        PNG file to write.
    score_range : (float, float), default=(1.0, 5.0)
        The model's score range, which the expert-score axis covers.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import numpy as np
    >>> path = plot_residuals(np.r_[2.1, 3.2, 3.9], np.r_[2.0, 3.5, 4.0], "res.png")
    >>> path.name, path.is_file()
    ('res.png', True)
    """
    predicted, expert = _paired_scores(predicted, expert)
    residual = predicted - expert
    group = np.round(expert * 2) / 2
    levels = np.unique(group)
    fig = Figure(figsize=(5.4, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color="black", linewidth=1, linestyle="--")
    ax.boxplot([residual[group == level] for level in levels], positions=levels, widths=0.3,
               showfliers=False, manage_ticks=False)
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(residual))
    ax.plot(group + jitter, residual, "o", color="tab:blue",
            alpha=max(0.15, min(0.8, 40 / len(residual))), markersize=3, markeredgewidth=0)
    ax.set_xticks(levels, [f"{level:g}\nn={int(np.sum(group == level))}" for level in levels],
                  fontsize=8)
    ax.set_xlim(min(score_range[0] - 0.4, levels[0] - 0.4),
                max(score_range[1] + 0.4, levels[-1] + 0.4))
    ax.set_xlabel("expert score (nearest half point) and number of cells")
    ax.set_ylabel("predicted \u2212 expert score")
    ax.set_title(f"Residuals by expert score (mean absolute {np.abs(residual).mean():.2f})",
                 fontsize=10)
    return _save(fig, path)
