"""A report on a fitted model: the paper's three figures and its metrics, on one HTML page."""

from __future__ import annotations

import html
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import DAY_COLUMN, TARGET_COLUMN
from .._validation import as_frame
from ..metrics import regression_report
from ..outputs import write_csv_atomically
from ._cam import final_regressor, grad_cam
from ._figures import (
    plot_day_histograms,
    plot_intervals,
    plot_prediction_grid,
    read_display_image,
    select_across_scores,
)

REPORT_FILES = {
    "examples": "fig2a_examples.png",
    "gradcam": "fig2b_gradcam.png",
    "days": "fig3_days.png",
    "intervals": "intervals.png",
    "predictions": "predictions.csv",
    "html": "index.html",
}
"""File names of a report, by key of :func:`write_report`'s result."""


def write_report(
    model,
    cells,
    out: str | PathLike,
    *,
    max_cells: int = 12,
    layer=None,
    direction: str = "raise",
    batch_size: int = 16,
    title: str = "SarcNet report",
) -> dict[str, Path]:
    """Predict the cells, draw the paper's figures and write them on an HTML page.

    Writes into ``out``: ``fig2a_examples.png`` (cells picked across the score
    range, titled with expert and predicted score), ``fig2b_gradcam.png`` (the
    same cells with their Grad-CAM heatmaps), ``fig3_days.png`` (histograms of
    the predicted, and expert, scores per day; only with a ``day`` column),
    ``intervals.png`` (each cell's 90 % prediction interval; only for a
    calibrated model, see :func:`~sarcnet_sklearn.intervals.calibrate`),
    ``predictions.csv`` (with ``score_low`` and ``score_high`` for a
    calibrated model) and ``index.html``, which shows the figures with the
    metrics (:func:`~sarcnet_sklearn.regression_report`, when ``cells`` has a
    ``score`` column), the intervals' width and coverage, and the mean scores
    per day.

    Parameters
    ----------
    model : SarcNetRegressor or Pipeline
        Fitted; see :func:`~sarcnet_sklearn.explain.grad_cam`.
    cells : DataFrame
        Cells with the columns the model needs; optional ``score`` and ``day``.
    out : str or path-like
        Folder to write into (created if missing; the report's files are replaced).
    max_cells : int, default=12
        Cells shown in the example grids (picked across the expert score range,
        or the predicted one without scores).
    layer : str, nn.Module or None, default=None
        Grad-CAM layer, see :func:`~sarcnet_sklearn.explain.grad_cam`.
    direction : {"raise", "lower"}, default="raise"
        Map the evidence for a higher or a lower score, see
        :func:`~sarcnet_sklearn.explain.grad_cam`.
    batch_size : int, default=16
        Cells per Grad-CAM pass.
    title : str, default="SarcNet report"

    Returns
    -------
    paths : dict of pathlib.Path
        Keys ``"html"``, ``"examples"``, ``"gradcam"``, ``"predictions"`` and,
        with a day column, ``"days"``; ``"intervals"`` for a calibrated model.

    Examples
    --------
    >>> from sarcnet_sklearn.explain import write_report
    >>> paths = write_report(pipeline, test_cells, "report")  # doctest: +SKIP
    >>> paths["html"]  # doctest: +SKIP
    PosixPath('report/index.html')
    """
    cells = as_frame(cells, "cells")
    if len(cells) == 0:
        raise ValueError("cells has no rows")
    net = final_regressor(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in REPORT_FILES.items()}

    predicted = np.asarray(model.predict(cells), dtype=np.float64).reshape(-1)
    expert = _numeric_column(cells, TARGET_COLUMN)
    day = cells[DAY_COLUMN].to_numpy() if DAY_COLUMN in cells.columns else None

    chosen = select_across_scores(expert if expert is not None else predicted, max_cells)
    shown = cells.iloc[chosen]
    heatmaps = grad_cam(model, shown, layer=layer, direction=direction, batch_size=batch_size)
    images = [read_display_image(path, net.structure_page) for path in shown[net.image_column]]
    shown_expert = None if expert is None else expert[chosen]
    plot_prediction_grid(images, predicted[chosen], paths["examples"], expert=shown_expert)
    plot_prediction_grid(images, predicted[chosen], paths["gradcam"], expert=shown_expert,
                         heatmaps=heatmaps)
    if day is not None:
        plot_day_histograms(predicted, day, paths["days"], expert=expert)
    else:
        del paths["days"]
        (out / REPORT_FILES["days"]).unlink(missing_ok=True)

    intervals = _intervals(model, predicted, expert, paths)
    table = pd.DataFrame({net.image_column: cells[net.image_column].astype(str).to_numpy(),
                          "predicted_score": predicted})
    if intervals is not None:
        table["score_low"], table["score_high"] = intervals["low"], intervals["high"]
    if expert is not None:
        table[TARGET_COLUMN] = expert
    if day is not None:
        table[DAY_COLUMN] = day
    table["in_figures"] = np.isin(np.arange(len(cells)), chosen)
    write_csv_atomically(table, paths["predictions"], inputs=table[net.image_column])

    metrics = None if expert is None else regression_report(expert, predicted)
    page = _html_page(title, len(cells), metrics, _day_table(predicted, expert, day), paths,
                      intervals)
    paths["html"].write_text(page, encoding="utf-8")
    return paths


INTERVAL_CONFIDENCE = 0.9


def _intervals(model, predicted, expert, paths) -> dict | None:
    """90 % intervals of a calibrated model (drawn into ``paths["intervals"]``), else None."""
    from ..intervals import conformity_scores, interval_bounds, interval_half_width

    scores = conformity_scores(model)
    if scores is None or len(scores) < 9:  # fewer cannot give 90 % intervals
        del paths["intervals"]
        return None
    low, high = interval_bounds(model, predicted, INTERVAL_CONFIDENCE)
    plot_intervals(predicted, low, high, paths["intervals"], expert=expert,
                   confidence=INTERVAL_CONFIDENCE)
    summary = {"low": low, "high": high, "n_calibration": len(scores),
               "half_width": interval_half_width(model, INTERVAL_CONFIDENCE)}
    if expert is not None:
        summary["coverage"] = float(np.mean((low <= expert) & (expert <= high)))
    return summary


def _numeric_column(cells: pd.DataFrame, column: str) -> np.ndarray | None:
    """The column as floats when present and fully numeric and finite, else None."""
    if column not in cells.columns:
        return None
    values = pd.to_numeric(cells[column], errors="coerce").to_numpy(dtype=np.float64)
    return values if np.isfinite(values).all() else None


def _day_table(predicted, expert, day) -> pd.DataFrame | None:
    if day is None:
        return None
    frame = pd.DataFrame({"day": day, "predicted": predicted})
    if expert is not None:
        frame["expert"] = expert
    table = frame.groupby("day").agg(
        cells=("predicted", "size"),
        **({"mean_expert": ("expert", "mean")} if expert is not None else {}),
        mean_predicted=("predicted", "mean"),
    )
    return table.reset_index()


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(
            f"<td>{value:.3f}</td>" if isinstance(value, float) else
            f"<td>{html.escape(str(value))}</td>"
            for value in record
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
p.note { color: #555; }
"""


def _html_page(title, n_cells, metrics, day_table, paths, intervals=None) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{n_cells} cells.</p>"]
    if metrics is not None:
        frame = pd.DataFrame([{"Spearman": metrics["spearman"], "MAE": metrics["mae"],
                               "MSE": metrics["mse"], "R²": metrics["r2"]}])
        parts += ["<h2>Metrics (expert score vs predicted)</h2>", _html_table(frame)]
    else:
        parts.append('<p class="note">No <code>score</code> column: no metrics.</p>')
    if intervals is not None:
        text = (f"Each predicted score &plusmn; {intervals['half_width']:.2f} (clipped to 1-5) "
                f"holds the cell's true score with probability at least "
                f"{INTERVAL_CONFIDENCE:.0%}: split conformal prediction calibrated on "
                f"{intervals['n_calibration']} held-out cells (columns score_low and score_high "
                "of the predictions).")
        if "coverage" in intervals:
            text += (f" Here {intervals['coverage']:.1%} of the expert scores lie inside "
                     "their interval.")
        name = html.escape(paths["intervals"].name)
        parts += [f"<h2>{INTERVAL_CONFIDENCE:.0%} prediction intervals</h2>", f"<p>{text}</p>",
                  f'<img src="{name}" alt="{name}">']
    else:
        parts.append('<p class="note">The model is not calibrated: no prediction intervals '
                     "(see sarcnet_sklearn.intervals.calibrate).</p>")
    if day_table is not None:
        parts += ["<h2>Mean scores per day</h2>", _html_table(day_table)]
    figures = [
        ("examples", "Example cells across the score range (Fig. 2A)"),
        ("gradcam", "Grad-CAM heatmaps of the image branch over the same cells (Fig. 2B)"),
        ("days", "Predicted scores per day of differentiation (Fig. 3)"),
    ]
    for key, caption in figures:
        if key in paths:
            name = html.escape(paths[key].name)
            parts += [f"<h2>{html.escape(caption)}</h2>", f'<img src="{name}" alt="{name}">']
    if "days" not in paths:
        parts.append('<p class="note">No <code>day</code> column: no per-day histogram.</p>')
    csv = html.escape(paths["predictions"].name)
    parts.append(f'<p>All predictions: <a href="{csv}">{csv}</a></p>')
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
