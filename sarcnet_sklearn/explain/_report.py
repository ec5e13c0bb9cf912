"""A report on a fitted model: one self-contained HTML page of its figures, metrics and origin.

The page embeds its figures (PNG data URIs), so it opens offline, travels as
one file and prints on A4 paper; the PNG files and the predictions CSV are
written beside it too.
"""

from __future__ import annotations

import html
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import (
    DAY_COLUMN,
    ERROR_COLUMN,
    OUT_OF_RANGE_COLUMN,
    SARCOMERE_COLUMNS,
    SCORE_HIGH_COLUMN,
    SCORE_LOW_COLUMN,
    SCORE_PRED_COLUMN,
    SCORE_RANGE,
    TARGET_COLUMN,
)
from .._doors import option
from .._pages import embedded_figure as _figure
from .._pages import html_document, provenance_list, sha256_of
from .._pages import html_table as _html_table
from .._pixel_size import pixel_size_of_model
from .._validation import as_frame, object_copy
from ..images import read_planes
from ..metrics import metrics_table, metrics_with_intervals
from ..outputs import write_atomically, write_csv_atomically
from ..pipeline import SarcNetPipeline
from ..score_table import score_table
from ..soundness import assess_predictions, warn_if_unsound
from ._cam import grad_cam, grad_cam_layer, map_sides
from ._figures import (
    cell_mask,
    missing_signal,
    plot_day_histograms,
    plot_intervals,
    plot_predicted_vs_expert,
    plot_prediction_grid,
    plot_residuals,
    read_display_image,
    select_across_scores,
)

REPORT_FILES = {
    "agreement": "predicted_vs_expert.png",
    "residuals": "residuals.png",
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
    model_path: str | PathLike | None = None,
    data_source: str | None = None,
    command: str | None = None,
) -> dict[str, Path]:
    """Predict the cells, draw the paper's figures and put them on one self-contained HTML page.

    ``index.html`` opens with where its numbers come from (:func:`provenance`:
    model file and its SHA-256, data and number of cells, versions, device,
    date, command), then the metrics (:func:`~sarcnet_sklearn.regression_report`,
    when ``cells`` has a ``score`` column), and embeds every figure as a data
    URI, so the one file is the whole report, offline and in print. The
    figures are also written into ``out`` as PNG files:
    ``predicted_vs_expert.png`` and ``residuals.png`` (with a ``score``
    column: each cell's predicted against its expert score with the identity
    line and Spearman's rho, and the residuals per expert score),
    ``fig2a_examples.png`` (cells picked across the score range, titled with
    expert and predicted score), ``fig2b_gradcam.png`` (the same cells with
    their Grad-CAM heatmaps, masked to the cell; a map that shows nothing is
    labelled "no signal"), ``fig3_days.png`` (histograms of the predicted, and
    expert, scores per day; only with a ``day`` column), ``intervals.png``
    (each cell's 90 % prediction interval; only for a calibrated model, see
    :func:`~sarcnet_sklearn.intervals.calibrate`, whose intervals are then
    drawn in the predicted-versus-expert plot too); and ``predictions.csv``
    (with ``score_low`` and ``score_high`` for a calibrated model). The
    predicted scores are clipped to the model's score range, as
    :func:`~sarcnet_sklearn.deploy.predict_cells` clips ``score_pred``, and
    lie inside their intervals (:func:`~sarcnet_sklearn.intervals.interval_bounds`).

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
        Grad-CAM layer, see :func:`~sarcnet_sklearn.explain.grad_cam`; None:
        chosen by the model's image size.
    direction : {"raise", "lower"}, default="raise"
        Map the evidence for a higher or a lower score, see
        :func:`~sarcnet_sklearn.explain.grad_cam`.
    batch_size : int, default=16
        Cells per Grad-CAM pass.
    title : str, default="SarcNet report"
    model_path : str or path-like, optional
        The file (or safe-format folder) ``model`` was read from, named with its
        SHA-256 in the header; None: a model in memory.
    data_source : str, optional
        Where ``cells`` came from (dataset folder, CSV); None: the folder
        holding their images.
    command : str, optional
        The command line that made the report; None: the Python process's.

    Returns
    -------
    paths : dict of pathlib.Path
        Keys ``"html"``, ``"examples"``, ``"gradcam"``, ``"predictions"``; with
        a ``score`` column ``"agreement"`` and ``"residuals"``; with a ``day``
        column ``"days"``; ``"intervals"`` for a calibrated model.

    Examples
    --------
    >>> from sarcnet_sklearn import SarcNetPipeline
    >>> from sarcnet_sklearn.explain import write_report
    >>> # model: a fitted, calibrated SarcNet pipeline; cells: scored cells it was not trained on
    >>> fast = SarcNetPipeline.of(model).with_test_time_augment(False)  # 8x faster
    >>> paths = write_report(fast, cells.iloc[45:], "report", max_cells=3)
    >>> paths["html"].as_posix(), paths["html"].is_file(), paths["intervals"].is_file()
    ('report/index.html', True, True)
    """
    cells = as_frame(cells, "cells")
    if len(cells) == 0:
        raise ValueError("cells has no rows")
    pipeline = SarcNetPipeline.of(model)
    net = pipeline.fitted_regressor
    score_range = pipeline.score_range
    layer_name = grad_cam_layer(model, layer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in REPORT_FILES.items()}

    expert = _numeric_column(cells, TARGET_COLUMN)
    day = cells[DAY_COLUMN].to_numpy() if DAY_COLUMN in cells.columns else None

    # Each image is read once: the cells shown are read as planes, which the prediction,
    # Grad-CAM and the figures share (without expert scores, the cells to show depend on
    # the predictions, so those few are read a second time).
    # Scores, intervals and errors by the one score policy, as predict writes them.
    column = net.image_column
    interval = INTERVAL_CONFIDENCE if _calibrated(model) else None
    if expert is not None:
        chosen = select_across_scores(expert, max_cells)
        shown = _with_planes(cells.iloc[chosen], column, net.structure_page)
        scores = score_table(pipeline, _replace_rows(cells, chosen, shown[column]),
                             interval=interval)
    else:
        scores = score_table(pipeline, cells, interval=interval)
        chosen = select_across_scores(scores[SCORE_PRED_COLUMN], max_cells)
        shown = _with_planes(cells.iloc[chosen], column, net.structure_page)
    predicted = scores[SCORE_PRED_COLUMN].to_numpy(dtype=np.float64)
    scored = np.isfinite(predicted)
    if not scored.any():
        raise ValueError(f"none of the {len(cells)} cells could be scored, e.g. "
                         f"{scores[ERROR_COLUMN].dropna().iloc[0]}")
    heatmaps = grad_cam(model, shown, layer=layer, direction=direction, batch_size=batch_size)
    images = [read_display_image(plane, net.structure_page) for plane in shown[column]]
    shown_expert = None if expert is None else expert[chosen]
    plot_prediction_grid(images, predicted[chosen], paths["examples"], expert=shown_expert)
    plot_prediction_grid(images, predicted[chosen], paths["gradcam"], expert=shown_expert,
                         heatmaps=heatmaps)
    cam = {"layer": layer_name, "direction": direction, "n_shown": len(chosen),
           "n_blank": sum(missing_signal(heatmap, cell_mask(image)) is not None
                          for heatmap, image in zip(heatmaps, images, strict=True)),
           "side": map_sides(net.backbone, net.image_size).get(layer_name)}

    axis = score_range or SCORE_RANGE
    intervals = _intervals(model, scores, expert, scored, paths, axis)
    drawn = {"days": day is not None, "agreement": expert is not None,
             "residuals": expert is not None}
    if day is not None:
        plot_day_histograms(predicted[scored], day[scored], paths["days"],
                            expert=None if expert is None else expert[scored], score_range=axis)
    if expert is not None:
        bounds = {} if intervals is None else {k: intervals[k] for k in ("low", "high")}
        plot_predicted_vs_expert(predicted[scored], expert[scored], paths["agreement"],
                                 **bounds, confidence=INTERVAL_CONFIDENCE, score_range=axis)
        plot_residuals(predicted[scored], expert[scored], paths["residuals"], score_range=axis)
    for key in [key for key, done in drawn.items() if not done]:
        paths.pop(key).unlink(missing_ok=True)

    table = pd.DataFrame({net.image_column: cells[net.image_column].astype(str).to_numpy(),
                          SCORE_PRED_COLUMN: predicted})
    if intervals is not None:
        for name in (SCORE_LOW_COLUMN, SCORE_HIGH_COLUMN):
            table[name] = scores[name].to_numpy()
    if expert is not None:
        table[TARGET_COLUMN] = expert
    if day is not None:
        table[DAY_COLUMN] = day
    for name in SARCOMERE_COLUMNS:
        if name in cells.columns:
            table[name] = pd.to_numeric(cells[name], errors="coerce").to_numpy()
    table["in_figures"] = np.isin(np.arange(len(cells)), chosen)
    for name in (ERROR_COLUMN, OUT_OF_RANGE_COLUMN):
        table[name] = scores[name].to_numpy()
    write_csv_atomically(table, paths["predictions"], inputs=table[net.image_column])

    # metrics, days and the soundness checks on the scored cells (refused ones are counted)
    kept_expert = None if expert is None else expert[scored]
    assessment = assess_predictions(
        model, cells.iloc[np.flatnonzero(scored)], predicted[scored], kept_expert,
        interval_width=None if intervals is None else 2 * intervals["half_width"])
    warn_if_unsound(assessment["problems"], "the model reported on")
    metrics = assessment["metrics"]
    header = provenance(model, cells, model_path=model_path, data_source=data_source,
                        command=command)
    days = None if day is None else _day_table(predicted[scored], kept_expert, day[scored])
    page = _html_page(title, header, metrics, days, paths, intervals, cam, assessment,
                      _sarcomere_table(table[scored], predicted[scored]),
                      _not_scored_note(scores[ERROR_COLUMN]))
    write_atomically(paths["html"], lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return paths


def provenance(
    model,
    cells: pd.DataFrame,
    *,
    model_path: str | PathLike | None = None,
    data_source: str | None = None,
    command: str | None = None,
) -> dict[str, str]:
    """Where a report's numbers come from: the lines of its header, by label.

    ``Model file`` (absolute path and SHA-256), ``Model`` (backbone, image size,
    number of features), ``Data`` (source and number of cells), ``Versions``
    (sarcnet-sklearn, torch, scikit-learn, Python), ``Device``, ``Date`` (UTC)
    and ``Command``; see :func:`write_report` for the arguments.

    Examples
    --------
    >>> provenance(pipeline, cells, model_path="model.joblib")["Model file"]  # doctest: +SKIP
    '/home/me/model.joblib (sha256 5f0c...)'
    """
    import sklearn
    import torch

    from .. import __version__
    from ..deploy._card import card_facts, model_card

    net = SarcNetPipeline.of(model).fitted_regressor
    if model_path is None:
        model_file = "none: a model in memory"
    else:
        path = Path(model_path).resolve()
        model_file = f"{path} (sha256 {sha256_of(path)})"
    n_features = len(getattr(net, "feature_names_", None) or [])
    described = [f"{net.backbone} image branch, {net.image_size} px images"
                 if net.use_images else "no image branch",
                 f"{n_features} cell features" if net.use_features else "no cell features",
                 f"features measured at {pixel_size_of_model(model):g} um/px"]
    if data_source is None:
        data_source = _image_folder(cells, net.image_column) or "cells given in memory"
    device = str(net.device)
    if device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name(torch.device(device))})"
    elif device == "cpu":
        device += f" ({platform.machine()}, {torch.get_num_threads()} threads)"
    if command is None:
        command = "Python: " + shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    card = getattr(model, "model_card_", None)
    facts = card_facts(card if isinstance(card, dict) else model_card(model, {}))
    trained = [f"trained on {facts['trained_on']}"]
    if facts["validation"]:
        trained.append(f"validation {facts['validation']}")
    if facts["fingerprint"]:
        trained.append(f"cells' fingerprint {facts['fingerprint']}")
    trained.append(f"intended use: {facts['intended_use']}")
    return {
        "Model file": model_file,
        "Model": ", ".join(described),
        "Model card": "; ".join(trained),
        "Data": f"{data_source} ({len(cells)} cells)",
        "Versions": (f"sarcnet-sklearn {__version__}, torch {torch.__version__}, "
                     f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}"),
        "Device": device,
        "Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "Command": command,
    }


def _image_folder(cells: pd.DataFrame, column: str) -> str | None:
    """"images under FOLDER", the deepest folder holding every image of ``cells`` (files)."""
    values = cells[column].tolist() if column in cells.columns else []
    paths = [str(value) for value in values if isinstance(value, (str, PathLike))]
    if not paths or len(paths) < len(values):
        return None
    try:
        folder = os.path.commonpath([str(Path(p).resolve().parent) for p in paths])
    except ValueError:  # paths on different drives
        return None
    return f"images under {folder}"


INTERVAL_CONFIDENCE = 0.9


def _calibrated(model) -> bool:
    """Whether the model's calibration gives 90 % intervals."""
    from ..intervals import conformity_scores

    scores = conformity_scores(model)
    return scores is not None and len(scores) >= 9  # fewer cannot give 90 % intervals


def _intervals(model, scores: pd.DataFrame, expert, scored, paths,
               score_range) -> dict | None:
    """The 90 % intervals of the scored cells of a calibrated model (drawn into
    ``paths["intervals"]``), else None."""
    from ..intervals import conformity_scores, interval_half_width

    if SCORE_LOW_COLUMN not in scores.columns:
        paths.pop("intervals").unlink(missing_ok=True)
        return None
    predicted, low, high = (scores[name].to_numpy(dtype=np.float64)[scored] for name in (
        SCORE_PRED_COLUMN, SCORE_LOW_COLUMN, SCORE_HIGH_COLUMN))
    expert = None if expert is None else expert[scored]
    plot_intervals(predicted, low, high, paths["intervals"], expert=expert,
                   confidence=INTERVAL_CONFIDENCE, score_range=score_range)
    summary = {"low": low, "high": high, "n_calibration": len(conformity_scores(model)),
               "score_range": score_range,
               "half_width": interval_half_width(model, INTERVAL_CONFIDENCE)}
    if expert is not None:
        summary["coverage"] = float(np.mean((low <= expert) & (expert <= high)))
    return summary


def _with_planes(cells: pd.DataFrame, column: str, page: int) -> pd.DataFrame:
    """``cells`` with each image read into memory (page ``page``, as stored)."""
    return cells.assign(**{column: read_planes(cells[column], page)})


def _replace_rows(cells: pd.DataFrame, positions: np.ndarray, values: pd.Series) -> pd.DataFrame:
    """A copy of ``cells`` whose ``values.name`` column holds ``values`` at ``positions``."""
    column = object_copy(cells[values.name])
    for position, value in zip(positions, values, strict=True):
        column[position] = value
    return cells.assign(**{values.name: column})


def _numeric_column(cells: pd.DataFrame, column: str) -> np.ndarray | None:
    """The column as floats when present and fully numeric and finite, else None."""
    if column not in cells.columns:
        return None
    values = pd.to_numeric(cells[column], errors="coerce").to_numpy(dtype=np.float64)
    return values if np.isfinite(values).all() else None


def _sarcomere_table(table: pd.DataFrame, predicted) -> pd.DataFrame | None:
    """Median sarcomere measures of the cells per rounded predicted score (None without)."""
    names = [name for name in SARCOMERE_COLUMNS if name in table.columns]
    if not names or table[names].isna().all().all():
        return None
    frame = table[names].assign(**{SCORE_PRED_COLUMN: np.round(np.asarray(predicted, float))})
    grouped = frame.groupby(SCORE_PRED_COLUMN)
    out = grouped.size().rename("cells").to_frame()
    for name in names:
        out[f"median_{name}"] = grouped[name].median()
    return out.reset_index()


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


def _not_scored_note(errors: pd.Series) -> str | None:
    """What the page says about the cells the score policy refused (None: all scored)."""
    failed = errors.dropna()
    if not len(failed):
        return None
    return (f"{len(failed)} of the {len(errors)} cells were not scored (empty score_pred, "
            f"reason in the error column of the predictions; left out of the metrics and "
            f"figures), e.g. {failed.iloc[0]}")


def _html_page(title, header, metrics, day_table, paths, intervals, cam,
               assessment=None, sarcomere_table=None, not_scored: str | None = None) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", provenance_list(header)]
    if not_scored is not None:
        parts.append(f'<p class="note">{html.escape(not_scored)}</p>')
    parts += _assessment_html(assessment)
    if metrics is not None:
        table = (metrics_table({"": metrics}) if assessment is None else metrics_with_intervals(
            {"": metrics}, {"": assessment["metrics_ci95"]}))
        parts += ["<h2>Metrics (expert score vs predicted)</h2>", _html_table(table, "metrics")]
        parts.append('<div class="pair">'
                     + _figure(paths["agreement"], "Predicted against expert score, with the "
                               "identity line" + (" and each cell's prediction interval"
                                                  if intervals is not None else ""))
                     + _figure(paths["residuals"], "Residuals (predicted minus expert score) "
                               "per expert score")
                     + "</div>")
    else:
        parts.append('<p class="note">No <code>score</code> column: no metrics, no comparison '
                     "with the experts.</p>")
    if intervals is not None:
        low, high = intervals["score_range"]
        text = (f"Each predicted score &plusmn; {intervals['half_width']:.2f} (clipped to "
                f"{low:g}-{high:g}) "
                f"holds the cell's true score with probability at least "
                f"{INTERVAL_CONFIDENCE:.0%}: split conformal prediction calibrated on "
                f"{intervals['n_calibration']} held-out cells (columns score_low and score_high "
                "of the predictions).")
        if "coverage" in intervals:
            text += (f" Here {intervals['coverage']:.1%} of the expert scores lie inside "
                     "their interval.")
        parts += [f"<h2>{INTERVAL_CONFIDENCE:.0%} prediction intervals</h2>", f"<p>{text}</p>",
                  _figure(paths["intervals"], "Prediction interval of each cell, cells ordered "
                          "by predicted score")]
    else:
        parts.append('<p class="note">The model is not calibrated: no prediction intervals '
                     "(see sarcnet_sklearn.intervals.calibrate).</p>")
    if day_table is not None:
        parts += ["<h2>Mean scores per day</h2>", _html_table(day_table, "days")]
    if sarcomere_table is not None:
        parts += ["<h2>Sarcomere measures per predicted score</h2>",
                  "<p>Median sarcomere length (um, the dominant period of the cell's power "
                  "spectrum), orientation order of the myofibrils (0 isotropic, 1 all parallel) "
                  "and fraction of the cell with an oriented pattern, per rounded predicted "
                  "score (columns of the predictions).</p>",
                  _html_table(sarcomere_table, "sarcomeres")]
    parts += ["<h2>Example cells across the score range (Fig. 2A)</h2>",
              _figure(paths["examples"], "Cells picked across the score range, ordered by score")]
    size = f", a {cam['side']} x {cam['side']} map" if cam["side"] else ""
    evidence = "raises" if cam["direction"] == "raise" else "lowers"
    text = (f"Where the image branch finds evidence that {evidence} the predicted score: "
            f"Grad-CAM of layer <code>{html.escape(cam['layer'])}</code>{size}, over the cell "
            "only.")
    if cam["n_blank"]:
        text += (f" {cam['n_blank']} of the {cam['n_shown']} maps show no signal (all zero or "
                 "constant over the cell): nothing in those cells "
                 f"{evidence} the score through this layer"
                 + (f" (try {option('direction_lower')})." if cam["direction"] == "raise"
                    else "."))
    parts += ["<h2>Grad-CAM heatmaps of the same cells (Fig. 2B)</h2>", f"<p>{text}</p>",
              _figure(paths["gradcam"], "Grad-CAM overlays, ordered by score")]
    if "days" in paths:
        parts += ["<h2>Scores per day of differentiation (Fig. 3)</h2>",
                  _figure(paths["days"], "Histograms of the scores per day, means dashed")]
    else:
        parts.append('<p class="note">No <code>day</code> column: no per-day histogram.</p>')
    csv = html.escape(paths["predictions"].name)
    parts.append(f'<p>Every cell\'s prediction: <a href="{csv}">{csv}</a> (beside this '
                 "file).</p>")
    return html_document(title, "\n".join(parts))


def _assessment_html(assessment) -> list[str]:
    """The warnings, which cells the metrics are of, and the agreement with each expert."""
    if assessment is None:
        return []
    parts = []
    if assessment["problems"]:
        items = "".join(f"<li>{html.escape(problem)}</li>" for problem in assessment["problems"])
        parts.append(f'<div class="warning"><h2>Warning: this model is not sound</h2>'
                     f"<ul>{items}</ul></div>")
    if assessment["n_seen"]:
        parts.append(f'<p class="note">{assessment["n_seen"]} of the {assessment["n_cells"]} '
                     "cells were among the model's own training, validation or calibration "
                     "cells.</p>")
    if assessment["metrics_cells"]:
        resampling = assessment.get("metrics_ci95_resampling") or "resampling cells"
        parts.append(f'<p class="note">Metrics (with bootstrap 95 % intervals, '
                     f'{html.escape(resampling)}) of '
                     f'{html.escape(assessment["metrics_cells"])}.</p>')
    experts = assessment.get("experts") or {}
    if experts:
        rows = "".join(f"<tr><td>{html.escape('model vs ' + name if ' vs ' not in name else name)}"
                       f"</td><td>{value:.3f}</td></tr>" for name, value in experts.items())
        parts.append("<h2>Agreement with each expert (Spearman)</h2>"
                     f'<table id="experts"><tr><th>pair</th><th>Spearman</th></tr>{rows}</table>'
                     '<p class="note">The experts\' agreement with each other is the ceiling of '
                     "a model's agreement with one expert (0.655 on the real AICS labels).</p>")
    return parts
