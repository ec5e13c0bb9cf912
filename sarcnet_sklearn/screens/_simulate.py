"""Synthetic screens with known effects: plates, wells, fields of view and cells.

A cell's score is ``baseline + effect of its condition + plate + well + field +
cell`` (independent normal terms). The default spreads match the real expert
labels: a standard deviation of about 0.69 score points over cells, and an
intraclass correlation of about 0.25 between the cells of one field of view
(its well and plate terms included), with about 10 cells per field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._columns import (
    ERROR_COLUMN,
    FIELD_COLUMN,
    PLATE_COLUMN,
    SARCOMERE_LENGTH_COLUMN,
    SCORE_PRED_COLUMN,
    WELL_COLUMN,
)
from ._dose import logistic4
from ._plate_map import CONDITION_COLUMN, CONTROL_COLUMN, DOSE_COLUMN

PLATE_FORMATS = {96: (8, 12), 384: (16, 24)}
"""Rows and columns of the plate formats the generator lays wells out on."""

REFUSED_REASON = "not scored: the image has no signal"
"""The ``error`` of the cells the generator marks as refused."""


class SyntheticScreen(NamedTuple):
    """What :func:`make_synthetic_screen` returns."""

    cells: pd.DataFrame
    """One row per cell: plate, well, field, label, score_pred, sarcomere_length_um, error."""
    plate_map: pd.DataFrame
    """One row per well: plate, well, condition, control (and dose with ``dose_response``)."""
    truth: pd.DataFrame
    """The true difference of each condition (and dose) from the control, in score points."""


def make_synthetic_screen(
    effects: Mapping[str, float] | None = None,
    *,
    control: str = "DMSO",
    dose_response: Mapping[str, Mapping[str, object]] | None = None,
    n_plates: int = 1,
    wells_per_condition: int = 6,
    fields_per_well: int = 4,
    cells_per_field: float = 10.0,
    baseline: float = 3.0,
    sd_plate: float = 0.10,
    sd_well: float = 0.10,
    sd_field: float = 0.31,
    sd_cell: float = 0.59,
    refused_fraction: float = 0.0,
    random_state: int | np.random.Generator | None = None,
) -> SyntheticScreen:
    """Simulate a screen whose true effects are known, as ``predict`` or ``fields`` would score it.

    Every condition (the control included) gets ``wells_per_condition`` wells,
    spread evenly over ``n_plates`` plates (96-well, or 384-well when that is
    too few) at random positions; each well ``fields_per_well`` fields of view,
    each field ``1 + Poisson(cells_per_field - 1)`` cells. Scores are not
    clipped to 1-5, so the effects are exact. ``sarcomere_length_um`` follows
    the score (``1.6 + 0.1 x score`` plus cell noise of 0.08 um).

    Parameters
    ----------
    effects : mapping of str to float, optional
        Conditions and their true effect on the score (score points), e.g.
        ``{"drugA": 0.3, "drugB": 0.0}``. None: one condition ``"drugA"`` with no effect.
    control : str, default="DMSO"
        Name of the control condition (effect 0).
    dose_response : mapping, optional
        Compounds tested at several doses: ``{"drugC": {"doses": [0.01, 0.1, 1, 10, 100],
        "max_effect": 0.6, "ec50": 1.0, "hill": 1.0}}``; the effect at dose ``d`` is
        ``max_effect * d**hill / (d**hill + ec50**hill)``; each dose is a condition of
        its own. The plate map then has a ``dose`` column (empty for the others).
    n_plates : int, default=1
    wells_per_condition : int, default=6
    fields_per_well : int, default=4
    cells_per_field : float, default=10.0
        Mean number of cells per field (at least 1).
    baseline : float, default=3.0
        The control's mean score.
    sd_plate, sd_well, sd_field, sd_cell : float
        Standard deviations of the plate, well, field and cell terms.
    refused_fraction : float, default=0.0
        Fraction of cells whose ``score_pred`` is empty, as the model refuses a
        cell it cannot score (``error`` says why).
    random_state : int, Generator or None

    Returns
    -------
    SyntheticScreen
        ``(cells, plate_map, truth)``.

    Examples
    --------
    >>> from sarcnet_sklearn.screens import make_synthetic_screen
    >>> table, plate_map, truth = make_synthetic_screen({"drugA": 0.3}, random_state=0)
    >>> plate_map.groupby("condition").size().to_dict()
    {'DMSO': 6, 'drugA': 6}
    >>> truth.to_dict("records")
    [{'condition': 'drugA', 'effect': 0.3}]
    """
    rng = np.random.default_rng(random_state)
    effects = {"drugA": 0.0} if effects is None and not dose_response else dict(effects or {})
    if control in effects or control in (dose_response or {}):
        raise ValueError(f"the control {control!r} cannot be one of the conditions")
    if wells_per_condition < 1 or fields_per_well < 1 or n_plates < 1:
        raise ValueError("n_plates, wells_per_condition and fields_per_well must be at least 1")
    if cells_per_field < 1:
        raise ValueError(f"cells_per_field must be at least 1, got {cells_per_field}")
    if not 0 <= refused_fraction < 1:
        raise ValueError(f"refused_fraction must lie in [0, 1), got {refused_fraction}")

    groups = [(control, np.nan, 0.0)] + [(name, np.nan, float(effect))
                                         for name, effect in effects.items()]
    for name, curve in (dose_response or {}).items():
        settings = dict(curve)
        for dose in settings["doses"]:
            effect = float(logistic4(dose, 0.0, settings.get("max_effect", 0.5),
                                     settings.get("ec50", 1.0), settings.get("hill", 1.0)))
            groups.append((name, float(dose), effect))
    wells = _lay_out(len(groups), wells_per_condition, n_plates, rng)

    plate_terms = rng.normal(0, sd_plate, n_plates)
    rows, cell_tables = [], []
    for (group, plate, well) in wells:
        condition, dose, effect = groups[group]
        rows.append({PLATE_COLUMN: f"P{plate + 1}", WELL_COLUMN: well,
                     CONDITION_COLUMN: condition, DOSE_COLUMN: dose,
                     CONTROL_COLUMN: condition == control})
        mean = baseline + effect + plate_terms[plate] + rng.normal(0, sd_well)
        counts = 1 + rng.poisson(cells_per_field - 1, fields_per_well)
        field_terms = np.repeat(rng.normal(0, sd_field, fields_per_well), counts)
        score = mean + field_terms + rng.normal(0, sd_cell, counts.sum())
        cell_tables.append(pd.DataFrame({
            PLATE_COLUMN: f"P{plate + 1}", WELL_COLUMN: well,
            FIELD_COLUMN: np.repeat([f"P{plate + 1}_{well}_f{k + 1}"
                                     for k in range(fields_per_well)], counts),
            "label": np.concatenate([np.arange(1, n + 1) for n in counts]),
            SCORE_PRED_COLUMN: score,
            SARCOMERE_LENGTH_COLUMN: 1.6 + 0.1 * score + rng.normal(0, 0.08, counts.sum()),
        }))
    cells = pd.concat(cell_tables, ignore_index=True)
    refused = rng.random(len(cells)) < refused_fraction
    cells.loc[refused, SCORE_PRED_COLUMN] = np.nan
    cells[ERROR_COLUMN] = np.where(refused, REFUSED_REASON, "")
    plate_map = pd.DataFrame(rows)
    truth = pd.DataFrame([{CONDITION_COLUMN: name, DOSE_COLUMN: dose, "effect": effect}
                          for name, dose, effect in groups[1:]])
    if not dose_response:
        plate_map = plate_map.drop(columns=DOSE_COLUMN)
        truth = truth.drop(columns=DOSE_COLUMN)
    return SyntheticScreen(cells, plate_map, truth)


def _lay_out(n_groups: int, wells_per_group: int, n_plates: int, rng) -> list[tuple]:
    """(group, plate, well name) of every well: groups spread evenly over the plates, at
    random positions of the smallest plate format that holds them."""
    assignments = [(group, k % n_plates) for group in range(n_groups)
                   for k in range(wells_per_group)]
    per_plate = max(sum(1 for _, plate in assignments if plate == p) for p in range(n_plates))
    fitting = [size for size in sorted(PLATE_FORMATS) if size >= per_plate]
    if not fitting:
        raise ValueError(f"{per_plate} wells per plate do not fit a 384-well plate; use more "
                         "plates")
    n_rows, n_columns = PLATE_FORMATS[fitting[0]]
    names = [f"{chr(ord('A') + r)}{c + 1:02d}" for r in range(n_rows) for c in range(n_columns)]
    positions = {p: iter(rng.permutation(names)) for p in range(n_plates)}
    return [(group, plate, str(next(positions[plate]))) for group, plate in assignments]


def field_icc(values: Sequence[float], fields: Sequence) -> float:
    """ICC(1) of ``values`` by ``fields``: the one-way ANOVA estimator (unequal group sizes).

    Examples
    --------
    >>> from sarcnet_sklearn.screens import make_synthetic_screen
    >>> table, _, _ = make_synthetic_screen(n_plates=8, wells_per_condition=40, random_state=0)
    >>> icc = field_icc(table["score_pred"], table["field"])  # 0.24 over 6 such screens
    >>> bool(0.2 < icc < 0.3)
    True
    """
    frame = pd.DataFrame({"value": np.asarray(values, dtype=np.float64),
                          "group": np.asarray(fields)}).dropna()
    grouped = frame.groupby("group")["value"]
    sizes, means = grouped.size(), grouped.mean()
    n_total, k = len(frame), len(sizes)
    between = float((sizes * (means - frame["value"].mean()) ** 2).sum() / (k - 1))
    within = float(((frame["value"] - grouped.transform("mean")) ** 2).sum() / (n_total - k))
    n0 = (n_total - float((sizes ** 2).sum()) / n_total) / (k - 1)
    return (between - within) / (between + (n0 - 1) * within)
