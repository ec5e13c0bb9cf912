"""A comparison on one self-contained HTML page, with its tables as CSV files beside it."""

from __future__ import annotations

import html
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import PLATE_COLUMN, SCORE_PRED_COLUMN, SCORE_RANGE, WELL_COLUMN
from .._pages import (
    embedded_figure,
    html_document,
    html_table,
    provenance_list,
    save_png,
    sha256_of,
)
from ..outputs import write_atomically, write_csv_atomically
from ._compare import Comparison, statistic_column
from ._dose import logistic4
from ._plate_map import CONDITION_COLUMN, CONTROL_COLUMN, DOSE_COLUMN, GROUP_COLUMN

COMPARISON_FILES = {
    "conditions": "conditions.csv",
    "doses": "doses.csv",
    "distributions": "distributions.png",
    "forest": "differences.png",
    "plates": "plates.png",
    "dose_response": "dose_response.png",
    "html": "index.html",
}
"""File names of a comparison, by key of :func:`write_comparison`'s result."""
MODEL_COLUMNS = ("model", "model_file", "model_sha256")
"""Columns of a per-cell table that name the model which scored it (shown in the header)."""
_WELL = re.compile(r"^([A-Z]{1,2})(\d{1,3})$")


def write_comparison(
    result: Comparison,
    out: str | PathLike,
    *,
    title: str = "Screen comparison",
    command: str | None = None,
) -> dict[str, Path]:
    """Write a comparison's tables, figures and one self-contained HTML page into ``out``.

    ``conditions.csv`` (:attr:`Comparison.conditions`), ``doses.csv`` (with
    dose-response fits), ``distributions.png`` (each condition's cells with the
    well means drawn over them), ``differences.png`` (forest plot of the
    differences from the control with their intervals), ``plates.png`` (mean
    score per well, on each plate, with well names like B4), ``dose_response.png``
    (well means, the fitted curve and the EC50), and ``index.html``: where the
    numbers come from (input tables and their SHA-256, the model when the cells
    table names it, versions, date, command), the problems found, the tables and
    the figures embedded. Every file is written atomically, never over an input.

    Parameters
    ----------
    result : Comparison
        From :func:`compare_conditions`.
    out : str or path-like
        Folder to write into (created if missing).
    title : str, default="Screen comparison"
    command : str, optional
        The command line that made it; None: the Python process's.

    Returns
    -------
    paths : dict of pathlib.Path
        Keys of :data:`COMPARISON_FILES` for the files written.

    Examples
    --------
    >>> from sarcnet_sklearn.screens import compare_conditions, make_synthetic_screen
    >>> table, plate_map, _ = make_synthetic_screen({"drugA": 0.4}, random_state=0)
    >>> result = compare_conditions(table, plate_map, n_boot=200, n_perm=200, random_state=0)
    >>> paths = write_comparison(result, "comparison")
    >>> sorted(paths)
    ['conditions', 'distributions', 'forest', 'html', 'plates']
    """
    out = Path(out)
    inputs = [path for path in result.settings.get("sources", {}).values()]
    paths = {key: out / name for key, name in COMPARISON_FILES.items()}
    from ..outputs import check_output, refuse_inputs

    check_output(out, folder=True)
    refuse_inputs(paths.values(), inputs)
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(result.conditions, paths["conditions"], inputs=inputs)
    if len(result.doses):
        write_csv_atomically(result.doses, paths["doses"], inputs=inputs)
    else:
        paths.pop("doses")
    _plot_distributions(result, paths["distributions"])
    if result.control is not None:
        _plot_differences(result, paths["forest"])
    else:
        paths.pop("forest")
    if not _plot_plates(result, paths["plates"]):
        paths.pop("plates")
    if not _plot_doses(result, paths["dose_response"]):
        paths.pop("dose_response")
    for key in set(COMPARISON_FILES) - set(paths):
        (out / COMPARISON_FILES[key]).unlink(missing_ok=True)  # left from an earlier run
    page = _page(result, title, _provenance(result, command), paths)
    write_atomically(paths["html"], lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return paths


def _provenance(result: Comparison, command: str | None) -> dict[str, str]:
    import scipy

    from .. import __version__

    sources = result.settings.get("sources", {})
    header = {}
    for what, count in (("cells", f"{len(result.cells)} cells"),
                        ("plate map", f"{result.settings.get('n_entries', '?')} entries "
                                      f"({', '.join(result.settings.get('keys', []))}), "
                                      f"{len(result.units)} {result.unit}s with cells")):
        path = sources.get(what)
        described = ("a table given in memory" if path is None
                     else f"{Path(path).resolve()} (sha256 {sha256_of(path)})")
        header[what.capitalize()] = f"{described}, {count}"
    named = [f"{column}: {', '.join(map(str, result.cells[column].dropna().unique()[:3]))}"
             for column in MODEL_COLUMNS if column in result.cells.columns]
    header["Model"] = "; ".join(named) if named else "not named by the cells table"
    settings = result.settings
    header["Statistics"] = (
        f"units: {result.unit}s; {settings.get('confidence', 0.95):.0%} intervals from "
        f"{settings.get('n_boot')} hierarchical bootstrap resamples ({result.unit}s, then "
        f"cells); p-values from {settings.get('n_perm')} permutations of {result.unit}s; "
        "Holm's correction across conditions")
    header["Versions"] = (f"sarcnet-sklearn {__version__}, numpy {np.__version__}, "
                          f"scipy {scipy.__version__}, pandas {pd.__version__}, "
                          f"Python {platform.python_version()}")
    header["Date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    header["Command"] = command or ("Python: " + shlex.join([Path(sys.argv[0]).name,
                                                              *sys.argv[1:]]))
    return header


def _labels(result: Comparison) -> list[str]:
    return result.conditions.apply(
        lambda row: row[CONDITION_COLUMN] if not row.get(DOSE_COLUMN) else
        f"{row[CONDITION_COLUMN]} {row[DOSE_COLUMN]}", axis=1).tolist()


def _measure_name(measure: str) -> str:
    return "score" if measure == SCORE_PRED_COLUMN else measure


def _plot_distributions(result: Comparison, path: Path) -> Path:
    from matplotlib.figure import Figure

    labels = _labels(result)
    groups = list(dict.fromkeys(result.cells[GROUP_COLUMN]))
    order = [g for g in labels if g in groups] + [g for g in groups if g not in labels]
    rng = np.random.default_rng(0)
    fig = Figure(figsize=(max(6.0, 0.8 * len(order) + 2), 3.4 * len(result.measures)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(result.measures), 1, squeeze=False)).ravel()
    for ax, measure in zip(axes, result.measures, strict=True):
        for x, group in enumerate(order):
            cells = result.cells.loc[result.cells[GROUP_COLUMN] == group, measure].dropna()
            units = result.units.loc[result.units[GROUP_COLUMN] == group, measure].dropna()
            ax.plot(x + rng.uniform(-0.3, 0.3, len(cells)), cells, ".", color="0.6",
                    markersize=2.5, alpha=0.5, zorder=1)
            control = group == result.control
            ax.plot(x + rng.uniform(-0.12, 0.12, len(units)), units, "o",
                    color="tab:orange" if control else "tab:blue", markersize=6,
                    markeredgecolor="black", markeredgewidth=0.5, zorder=3)
            if len(units):
                ax.hlines(units.mean(), x - 0.35, x + 0.35, color="black", linewidth=2,
                          zorder=4)
        ax.set_xticks(range(len(order)), order, rotation=30 if len(order) > 6 else 0,
                      ha="right" if len(order) > 6 else "center")
        ax.set_ylabel(_measure_name(measure))
        if measure == SCORE_PRED_COLUMN:
            ax.set_ylim(SCORE_RANGE[0] - 0.2, SCORE_RANGE[1] + 0.2)
    fig.suptitle(f"Cells (grey), {result.unit} means (dots; control orange) and the mean of "
                 f"the {result.unit} means (bar)", fontsize=10)
    return save_png(fig, path)


def _plot_differences(result: Comparison, path: Path) -> Path:
    from matplotlib.figure import Figure

    table = result.conditions
    compared = table[table[CONDITION_COLUMN] != result.control]
    labels = [label for label, keep in zip(_labels(result),
                                           table[CONDITION_COLUMN] != result.control,
                                           strict=True) if keep]
    fig = Figure(figsize=(6.0 * len(result.measures), 0.45 * len(labels) + 1.6),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(result.measures), squeeze=False)).ravel()
    y = np.arange(len(labels))[::-1]
    for ax, measure in zip(axes, result.measures, strict=True):
        difference = compared[statistic_column("difference", measure)].to_numpy(float)
        low = compared[statistic_column("ci_low", measure)].to_numpy(float)
        high = compared[statistic_column("ci_high", measure)].to_numpy(float)
        adjusted = compared[statistic_column("p_adjusted", measure)].to_numpy(float)
        called = adjusted < 0.05
        ax.axvline(0, color="black", linewidth=1)
        ax.hlines(y, low, high, color=np.where(called, "tab:red", "tab:blue"), linewidth=2)
        ax.plot(difference[called], y[called], "o", color="tab:red", label="p (Holm) < 0.05")
        ax.plot(difference[~called], y[~called], "o", color="tab:blue", label="not significant")
        for yy, p in zip(y, adjusted, strict=True):
            if np.isfinite(p):
                ax.annotate(f"p={p:.3g}", (1.0, yy), xycoords=("axes fraction", "data"),
                            xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        ax.set_yticks(y, labels)
        ax.set_xlabel(f"difference in {_measure_name(measure)} from {result.control}")
        ax.legend(fontsize=7, loc="best")
    confidence = result.settings.get("confidence", 0.95)
    fig.suptitle(f"Differences from the control with {confidence:.0%} intervals "
                 "(Holm-adjusted p at right)", fontsize=10)
    return save_png(fig, path)


def _plot_plates(result: Comparison, path: Path) -> bool:
    from matplotlib.figure import Figure

    units = result.units
    if WELL_COLUMN not in units.columns:
        return False
    parsed = units[WELL_COLUMN].astype(str).str.extract(_WELL)
    if parsed.isna().any().any():
        return False
    rows = parsed[0].map(lambda letters: sum((ord(c) - 64) * 26 ** i
                                             for i, c in enumerate(reversed(letters))) - 1)
    columns = parsed[1].astype(int) - 1
    n_rows, n_columns = (8, 12) if rows.max() < 8 and columns.max() < 12 else (16, 24)
    if rows.max() >= n_rows or columns.max() >= n_columns:
        return False
    plates = (list(dict.fromkeys(units[PLATE_COLUMN])) if PLATE_COLUMN in units.columns
              else [None])
    fig = Figure(figsize=(6.2, 3.6 * len(plates)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(plates), 1, squeeze=False)).ravel()
    low, high = np.nanpercentile(units[SCORE_PRED_COLUMN], [2, 98]) if units[
        SCORE_PRED_COLUMN].notna().any() else SCORE_RANGE
    image = None
    for ax, plate in zip(axes, plates, strict=True):
        chosen = (units[PLATE_COLUMN] == plate) if plate is not None else np.ones(len(units), bool)
        grid = np.full((n_rows, n_columns), np.nan)
        grid[rows[chosen], columns[chosen]] = units.loc[chosen, SCORE_PRED_COLUMN]
        image = ax.imshow(grid, cmap="viridis", vmin=low, vmax=high)
        controls = chosen & units[CONTROL_COLUMN].astype(bool)
        ax.plot(columns[controls], rows[controls], "s", markerfacecolor="none",
                markeredgecolor="tab:orange", markersize=8, markeredgewidth=1.5)
        ax.set_xticks(range(n_columns), [str(c + 1) for c in range(n_columns)], fontsize=6)
        ax.set_yticks(range(n_rows), [chr(65 + r) for r in range(n_rows)], fontsize=6)
        ax.set_title(f"plate {plate}" if plate is not None else "plate", fontsize=9)
    fig.colorbar(image, ax=axes.tolist(), shrink=0.8, label="mean score of the well")
    fig.suptitle("Mean score per well (orange squares: control wells; white: no score)",
                 fontsize=10)
    save_png(fig, path)
    return True


def _plot_doses(result: Comparison, path: Path) -> bool:
    from matplotlib.figure import Figure

    fits = result.doses[result.doses["measure"] == SCORE_PRED_COLUMN]
    if not len(fits):
        return False
    fig = Figure(figsize=(4.6 * len(fits), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(fits), squeeze=False)).ravel()
    units = result.units
    for ax, (_, fit) in zip(axes, fits.iterrows(), strict=True):
        mine = units[(units[CONDITION_COLUMN] == fit["condition"]) & units[DOSE_COLUMN].notna()]
        doses = mine[DOSE_COLUMN].to_numpy(float)
        positive = doses[doses > 0]
        zero_at = positive.min() / 10 if len(positive) else 1e-3
        shown = np.where(doses > 0, doses, zero_at)
        ax.plot(shown, mine[SCORE_PRED_COLUMN], "o", color="tab:blue", label="wells")
        if result.control is not None:
            control = units.loc[units[GROUP_COLUMN] == result.control, SCORE_PRED_COLUMN]
            ax.plot(np.full(len(control), zero_at), control, "o", color="tab:orange",
                    label=f"{result.control} (dose 0)")
        ax.set_xscale("log")
        if np.isfinite(fit["ec50"]):
            grid = np.geomspace(zero_at, max(shown.max(), zero_at * 10), 200)
            ax.plot(grid, logistic4(grid, fit["bottom"], fit["top"], fit["ec50"], fit["hill"]),
                    color="black", label=f"fit, EC50 {fit['ec50']:.3g}")
            ax.axvline(fit["ec50"], color="tab:red", linestyle="--", linewidth=1)
            if np.isfinite(fit["ec50_low"]):
                ax.axvspan(fit["ec50_low"], fit["ec50_high"], color="tab:red", alpha=0.12,
                           label="EC50 interval")
        else:
            ax.text(0.5, 0.05, "no fit: " + fit["message"][:60], transform=ax.transAxes,
                    ha="center", fontsize=7, wrap=True)
        ax.set_xlabel("dose (control drawn at a tenth of the lowest dose)")
        ax.set_ylabel(f"mean score of the {result.unit}")
        ax.set_title(str(fit["condition"]), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("Dose-response: four-parameter logistic fits to the well means", fontsize=10)
    save_png(fig, path)
    return True


def _page(result: Comparison, title: str, header: dict[str, str], paths: dict) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", provenance_list(header)]
    if result.problems:
        items = "".join(f"<li>{html.escape(problem)}</li>" for problem in result.problems)
        parts += ["<h2>Problems found in the input</h2>",
                  "<p>Each left out only what it names; the rest was compared.</p>"
                  f"<ul>{items}</ul>"]
    if result.refused:
        items = "".join(f"<li>{n} cell(s): {html.escape(reason)}</li>"
                        for reason, n in sorted(result.refused.items(), key=lambda kv: -kv[1]))
        parts.append("<h2>Cells without a score</h2><p>Counted in <code>n_refused</code> of "
                     f"each condition, left out of its score statistics.</p><ul>{items}</ul>")
    shown = [column for column in [CONDITION_COLUMN, DOSE_COLUMN, "n_cells", "n_refused",
                                   "n_fields", "n_wells", "n_plates", "mean_score",
                                   "median_score", "difference", "ci_low", "ci_high", "p_value",
                                   "p_adjusted", "effect_size", "note"]
             if column in result.conditions.columns]
    table = result.conditions[shown].astype(object).where(result.conditions[shown].notna(), "")
    control = html.escape(str(result.control))
    text = (f"Each {result.unit} counts once: a condition's mean is the mean of its "
            f"{result.unit} means, and the difference from the control ({control}) "
            f"is tested by permuting {result.unit}s, since cells of one {result.unit} are not "
            "independent. effect_size: the difference over the pooled standard deviation of "
            f"the {result.unit} means.")
    parts += ["<h2>Conditions (score)</h2>", f"<p>{text}</p>", html_table(table, "conditions")]
    figures = [("distributions", "Distributions per condition"),
               ("forest", "Differences from the control"),
               ("plates", "Plate map of mean scores"),
               ("dose_response", "Dose-response")]
    captions = {
        "distributions": f"Every cell (grey), every {result.unit}'s mean (dots) and the "
                         f"condition's mean of {result.unit} means (bar)",
        "forest": "Difference from the control with its interval; red: Holm-adjusted p < 0.05",
        "plates": "Mean score of each well, laid out as on the plate",
        "dose_response": "Well means against dose, the four-parameter logistic fit and the EC50",
    }
    for key, heading in figures:
        if key in paths:
            parts += [f"<h2>{heading}</h2>", embedded_figure(paths[key], captions[key])]
    if "doses" in paths:
        parts += ["<h2>Dose-response fits</h2>", html_table(
            result.doses.astype(object).where(result.doses.notna(), ""), "doses")]
    csv = html.escape(paths["conditions"].name)
    parts.append(f'<p>All measures of every condition: <a href="{csv}">{csv}</a> (beside this '
                 "file).</p>")
    return html_document(title, "\n".join(parts))
