"""Compare the conditions of a screen with their control, at the level of wells."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

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
from .._doors import option
from ._dose import fit_dose_response
from ._plate_map import (
    CONDITION_COLUMN,
    CONTROL_COLUMN,
    DOSE_COLUMN,
    DOSE_LABEL_COLUMN,
    GROUP_COLUMN,
    join_plate_map,
)
from ._stats import Units, bootstrap_interval, cohen_d, holm, permutation_p_value

UNIT_COLUMN = "unit"
"""The joined table's column naming each cell's unit (its well, or field without wells)."""
REFUSED_COLUMN = "refused"
"""Why a cell has no score (empty where it has one), in the joined table."""
RANGE_COLUMN = "out_of_range"
"""The features that made ``predict`` refuse a cell (see :func:`~sarcnet_sklearn.predict_cells`)."""
STATISTICS = ["mean", "median", "difference", "ci_low", "ci_high", "p_value", "p_adjusted",
              "effect_size"]
"""What :func:`compare_conditions` reports for each measure (see :func:`statistic_column`)."""
MIN_UNITS = 2
"""Wells (or fields) each side of a comparison needs for an interval and a p-value."""


def statistic_column(statistic: str, measure: str) -> str:
    """The column of ``conditions.csv`` holding ``statistic`` of ``measure``.

    The score's are ``mean_score``, ``median_score``, ``difference``,
    ``ci_low``, ``ci_high``, ``p_value``, ``p_adjusted`` and ``effect_size``;
    another measure's carry its name, e.g. ``difference_sarcomere_length_um``.

    Examples
    --------
    >>> statistic_column("mean", "score_pred"), statistic_column("p_value", "score_pred")
    ('mean_score', 'p_value')
    >>> statistic_column("ci_low", "sarcomere_length_um")
    'ci_low_sarcomere_length_um'
    """
    if measure == SCORE_PRED_COLUMN:
        return f"{statistic}_score" if statistic in ("mean", "median") else statistic
    return f"{statistic}_{measure}"


@dataclass
class Comparison:
    """What :func:`compare_conditions` found."""

    conditions: pd.DataFrame
    """One row per condition (and dose): counts, then :data:`STATISTICS` of each measure, note."""
    doses: pd.DataFrame
    """One row per compound tested at several doses and measure: the fitted curve, EC50."""
    units: pd.DataFrame
    """One row per well (or field): its group, plate, cells, and the mean of each measure."""
    cells: pd.DataFrame
    """The cells joined to the plate map (``group``, ``condition``, ``unit``, ``refused``...)."""
    control: str | None
    unit: str
    """``"well"`` or ``"field"``: what the statistics resample and permute."""
    measures: list[str]
    problems: list[str] = field(default_factory=list)
    """Messages about the inputs; each names what it left out, the rest was compared."""
    refused: dict[str, int] = field(default_factory=dict)
    """Cells without a score, counted by reason."""
    settings: dict = field(default_factory=dict)


def compare_conditions(
    cells,
    plate_map,
    *,
    control: str | None = None,
    columns: Sequence[str] = (),
    n_boot: int = 2000,
    n_perm: int = 2000,
    confidence: float = 0.95,
    n_boot_dose: int = 200,
    random_state: int | np.random.Generator | None = None,
) -> Comparison:
    """Compare each condition of a screen with its control, treating wells as the replicates.

    The per-cell table (as ``predict`` or ``fields`` write it) is joined to the
    plate map on the location columns both have (plate, well, field). Cells of
    one well (or field) are not independent, so every statistic works on the
    means of the *units*, the wells (the fields when there are no wells): a
    group's mean is the mean of its unit means; the difference from the
    control has a confidence interval from a two-stage bootstrap (units
    resampled, then the cells of each unit) and a p-value from a permutation
    test of the units' labels (within plates when a screen has several), with
    Holm's correction across the conditions; the standardized effect size is
    the difference over the pooled standard deviation of the unit means.
    A condition is compared with the control wells of its own plates (its
    wells on plates without control wells are left out, with a note).

    Cells whose ``score_pred`` is empty (refused by the model) are counted in
    ``n_refused`` and by reason, never silently dropped. A problem with part of
    the input (a plate-map entry listed twice with different conditions, a
    dose that is not a number, a condition without a control, a control with
    one well, a condition whose cells were all refused) is explained in
    ``problems`` and in the condition's ``note``; the other conditions are
    still compared.

    Parameters
    ----------
    cells : DataFrame or path
        One row per cell with ``score_pred`` and location columns; an
        ``error`` (and ``out_of_range``) column says why a score is empty.
    plate_map : DataFrame or path
        One row per plate/well (or field) with ``condition``; optional
        ``dose`` (a number) and ``control`` (true/false).
    control : str, optional
        The control condition's name; default: the condition of the plate
        map's rows whose ``control`` is true.
    columns : sequence of str, default=()
        Other numeric per-cell columns to compare the same way;
        ``sarcomere_length_um`` is compared whenever present.
    n_boot : int, default=2000
        Bootstrap resamples for each interval.
    n_perm : int, default=2000
        Random permutations for each p-value (every one when there are fewer).
    confidence : float, default=0.95
    n_boot_dose : int, default=200
        Bootstrap refits for each EC50 interval (see :func:`fit_dose_response`).
    random_state : int, Generator or None

    Returns
    -------
    Comparison
        ``conditions`` is the table ``sarcnet-sklearn compare`` writes.

    Raises
    ------
    ValueError
        When no comparison can be right: no shared location column, cells that
        match no plate-map entry or entries that match no cell (named), a
        missing column, control rows naming several conditions.

    Examples
    --------
    >>> from sarcnet_sklearn.screens import compare_conditions, make_synthetic_screen
    >>> table, plate_map, truth = make_synthetic_screen({"drugA": 0.5, "drugB": 0.0},
    ...                                                 random_state=1)
    >>> result = compare_conditions(table, plate_map, n_boot=500, random_state=0)
    >>> result.conditions[["condition", "n_wells", "n_refused"]].values.tolist()
    [['DMSO', 6, 0], ['drugA', 6, 0], ['drugB', 6, 0]]
    >>> row = result.conditions.set_index("condition").loc["drugA"]
    >>> bool(row["ci_low"] < 0.5 < row["ci_high"]), bool(row["p_adjusted"] < 0.05)
    (True, True)
    """
    from ..tables import read_table

    rng = np.random.default_rng(random_state)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1 or n_perm < 1:
        raise ValueError("n_boot and n_perm must be at least 1")
    sources = {}
    frames = []
    for what, table in (("cells", cells), ("plate map", plate_map)):
        if isinstance(table, (str, PathLike)):
            sources[what] = Path(table)
            table = read_table(table)
        elif not isinstance(table, pd.DataFrame):
            raise TypeError(f"{what} must be a DataFrame or a CSV path, got {type(table).__name__}")
        frames.append(table.reset_index(drop=True))
    cells, plate_map = frames
    cells_name = str(sources.get("cells", "cells"))
    map_name = str(sources.get("plate map", "plate map"))
    if SCORE_PRED_COLUMN not in cells.columns:
        raise ValueError(f"{cells_name} has no {SCORE_PRED_COLUMN!r} column (columns: "
                         f"{list(cells.columns)}); give the table that predict or fields wrote")
    measures = [SCORE_PRED_COLUMN] + [
        column for column in dict.fromkeys([SARCOMERE_LENGTH_COLUMN, *columns])
        if column != SCORE_PRED_COLUMN and (column in cells.columns
                                            or column != SARCOMERE_LENGTH_COLUMN)]
    for column in measures:
        if column not in cells.columns:
            raise ValueError(f"{cells_name} has no column {column!r} to compare (columns: "
                             f"{list(cells.columns)})")
        values = pd.to_numeric(cells[column], errors="coerce")
        text = values.isna() & cells[column].notna() & (cells[column].astype(str).str.strip()
                                                        != "")
        if text.any() and column != SCORE_PRED_COLUMN:
            rows = [int(i) + 2 for i in cells.index[text][:5]]
            raise ValueError(f"{cells_name}: column {column!r} holds text in row(s) {rows}; "
                             "compare numeric columns only")
    joined, problems, control_name, keys = join_plate_map(
        cells, plate_map, control=control, cells_name=cells_name, map_name=map_name)
    joined[REFUSED_COLUMN] = _refusals(joined)
    for column in measures:
        joined[column] = pd.to_numeric(joined[column], errors="coerce")

    ambiguous = joined["ambiguous"].to_numpy(dtype=bool)
    if ambiguous.any():
        problems.append(f"{int(ambiguous.sum())} cell(s) in plate-map entries listed with "
                        "different conditions are left out")
    joined = joined[~ambiguous].drop(columns="ambiguous").reset_index(drop=True)
    unit = WELL_COLUMN if WELL_COLUMN in joined.columns else FIELD_COLUMN
    if unit not in joined.columns:
        raise ValueError("the cells have neither a well nor a field column: the comparison "
                         "needs the units that were treated")
    unit_parts = [c for c in (PLATE_COLUMN, WELL_COLUMN, FIELD_COLUMN) if c in joined.columns]
    unit_parts = unit_parts[:unit_parts.index(unit) + 1]
    joined[UNIT_COLUMN] = _joined_text(joined, unit_parts)
    field_id = (_joined_text(joined, [c for c in (PLATE_COLUMN, WELL_COLUMN, FIELD_COLUMN)
                                      if c in joined.columns])
                if FIELD_COLUMN in joined.columns else None)
    well_id = (_joined_text(joined, [c for c in (PLATE_COLUMN, WELL_COLUMN)
                                     if c in joined.columns])
               if WELL_COLUMN in joined.columns else None)
    plates = PLATE_COLUMN in joined.columns and joined[PLATE_COLUMN].nunique() > 1

    groups = list(dict.fromkeys(
        ([control_name] if control_name in set(joined[GROUP_COLUMN]) else [])
        + joined[GROUP_COLUMN].tolist()))
    units = _unit_table(joined, measures)
    if control_name is None:
        problems.append("no control: mark the control rows of the plate map (a 'control' "
                        f"column, true/false) or name it ({option('control')}); the conditions are "
                        "described but not compared")

    rows, notes = [], {group: [] for group in groups}
    for group in groups:
        members = joined[joined[GROUP_COLUMN] == group]
        first = members.iloc[0]
        row = {CONDITION_COLUMN: first[CONDITION_COLUMN]}
        if DOSE_COLUMN in plate_map.columns:
            row[DOSE_COLUMN] = first[DOSE_LABEL_COLUMN]
        refused = members[REFUSED_COLUMN] != ""
        row.update(control=control_name or "", n_cells=len(members), n_refused=int(refused.sum()),
                   n_fields=np.nan if field_id is None else field_id[members.index].nunique(),
                   n_wells=np.nan if well_id is None else well_id[members.index].nunique(),
                   n_plates=members[PLATE_COLUMN].nunique() if PLATE_COLUMN in members else 1)
        if refused.all():
            reasons = Counter(members[REFUSED_COLUMN])
            notes[group].append(f"all {len(members)} cells refused ("
                                + "; ".join(f"{n} {why}" for why, n in reasons.items()) + ")")
        rows.append(row)
    table = pd.DataFrame(rows)
    table["n_fields"] = table["n_fields"].astype("Int64")
    table["n_wells"] = table["n_wells"].astype("Int64")

    for measure in measures:
        label = "" if measure == SCORE_PRED_COLUMN else f"{measure}: "
        stats = {name: np.full(len(groups), np.nan) for name in STATISTICS}
        for position, group in enumerate(groups):
            members = joined[joined[GROUP_COLUMN] == group]
            mine = units[(units[GROUP_COLUMN] == group) & units[measure].notna()]
            if len(mine):
                stats["mean"][position] = mine[measure].mean()
                stats["median"][position] = float(np.nanmedian(members[measure]))
            if group == control_name or control_name is None or not len(mine):
                continue
            outcome = _compare_group(joined, units, group, control_name, measure, plates,
                                     n_boot=n_boot, n_perm=n_perm, confidence=confidence,
                                     rng=rng)
            for name, value in outcome.items():
                if name == "note":  # a reason the score already gives is not repeated
                    notes[group].extend(label + line for line in value
                                        if line not in notes[group])
                else:
                    stats[name][position] = value
        stats["p_adjusted"] = holm(stats["p_value"])
        for name in STATISTICS:
            table[statistic_column(name, measure)] = stats[name]
    table["note"] = ["; ".join(dict.fromkeys(notes[group])) for group in groups]
    _control_problems(units, control_name, measures, problems)

    doses = _fit_doses(units, joined, control_name, measures, plates, n_boot_dose, rng, problems)
    refused_counts = Counter(reason for reason in joined[REFUSED_COLUMN] if reason)
    settings = {"n_boot": n_boot, "n_perm": n_perm, "confidence": confidence,
                "n_boot_dose": n_boot_dose, "keys": keys, "sources": sources,
                "n_entries": len(plate_map)}
    return Comparison(table, doses, units, joined, control_name, unit, measures, problems,
                      dict(refused_counts), settings)


def _joined_text(table: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The columns' values joined by spaces, row by row (an identifier of plate, well...)."""
    text = table[columns[0]].astype(str)
    for column in columns[1:]:
        text = text + " " + table[column].astype(str)
    return text


def _refusals(joined: pd.DataFrame) -> pd.Series:
    """Why each cell has no score: its error, the features out of range, or 'no score'."""
    score = pd.to_numeric(joined[SCORE_PRED_COLUMN], errors="coerce")
    text = score.isna() & joined[SCORE_PRED_COLUMN].notna() & (
        joined[SCORE_PRED_COLUMN].astype(str).str.strip() != "")

    def text_of(column: str) -> pd.Series:
        if column not in joined.columns:
            return pd.Series("", index=joined.index)
        return joined[column].map(lambda v: "" if pd.isna(v) else str(v).strip())

    error, outside = text_of(ERROR_COLUMN), text_of(RANGE_COLUMN)
    reasons = np.where(error != "", error,
                       np.where(outside != "", "outside the training data: " + outside,
                                np.where(text, "score_pred is not a number",
                                         "empty score_pred")))
    return pd.Series(np.where(score.isna(), reasons, ""), index=joined.index)


def _unit_table(joined: pd.DataFrame, measures: list[str]) -> pd.DataFrame:
    """One row per unit: group, condition, dose, control, plate, cells, scored cells, means."""
    columns = [GROUP_COLUMN, CONDITION_COLUMN, DOSE_COLUMN, CONTROL_COLUMN]
    location = [c for c in (PLATE_COLUMN, WELL_COLUMN) if c in joined.columns]
    grouped = joined.groupby(UNIT_COLUMN, sort=False)
    table = grouped[columns + location].first()
    table["n_cells"] = grouped.size()
    table["n_scored"] = grouped[SCORE_PRED_COLUMN].count()
    for measure in measures:
        table[measure] = grouped[measure].mean()
    return table.reset_index()


def _compare_group(joined, units, group, control, measure, plates, *, n_boot, n_perm,
                   confidence, rng) -> dict:
    """difference, ci_low, ci_high, p_value, effect_size and notes of one group and measure."""
    notes: list[str] = []
    mine = units[(units[GROUP_COLUMN] == group) & units[measure].notna()]
    theirs = units[(units[GROUP_COLUMN] == control) & units[measure].notna()]
    if not len(theirs):
        return {"note": [f"the control {control} has no value"]}
    if plates:
        shared = set(theirs[PLATE_COLUMN])
        outside = mine[~mine[PLATE_COLUMN].isin(shared)]
        if len(outside):
            named = ", ".join(sorted(set(outside[PLATE_COLUMN])))
            notes.append(f"no control wells on plate(s) {named}: {len(outside)} unit(s) there "
                         "left out")
        mine = mine[mine[PLATE_COLUMN].isin(shared)]
        theirs = theirs[theirs[PLATE_COLUMN].isin(set(mine[PLATE_COLUMN]))]
        if not len(mine):
            return {"note": notes[:1] + ["no control on its plates: not compared"]}
    outcome = {"difference": float(mine[measure].mean() - theirs[measure].mean()),
               "effect_size": cohen_d(mine[measure].to_numpy(), theirs[measure].to_numpy())}
    unit_word = "well" if WELL_COLUMN in units.columns else "field"
    if len(mine) < MIN_UNITS or len(theirs) < MIN_UNITS:
        few = [f"the control has {len(theirs)} {unit_word}" if len(theirs) < MIN_UNITS else "",
               f"{len(mine)} {unit_word}" if len(mine) < MIN_UNITS else ""]
        notes.append(" and ".join(part for part in few if part)
                     + f": no interval or p-value (each side needs at least {MIN_UNITS} "
                     f"{unit_word}s)")
        outcome["note"] = notes
        return outcome
    values, labels = joined[measure].to_numpy(), joined[UNIT_COLUMN].to_numpy()
    inside = joined[UNIT_COLUMN].isin(mine[UNIT_COLUMN]).to_numpy()
    treated = Units.from_labels(values[inside], labels[inside])
    inside = joined[UNIT_COLUMN].isin(theirs[UNIT_COLUMN]).to_numpy()
    reference = Units.from_labels(values[inside], labels[inside])
    outcome["ci_low"], outcome["ci_high"] = bootstrap_interval(
        treated, reference, n_boot=n_boot, confidence=confidence, rng=rng)
    strata = (mine[PLATE_COLUMN].to_numpy(), theirs[PLATE_COLUMN].to_numpy()) if plates else (
        None, None)
    outcome["p_value"] = permutation_p_value(
        mine[measure].to_numpy(), theirs[measure].to_numpy(), n_perm=n_perm, rng=rng,
        treated_strata=strata[0], control_strata=strata[1])
    outcome["note"] = notes
    return outcome


def _control_problems(units, control, measures, problems) -> None:
    if control is None:
        return
    theirs = units[(units[GROUP_COLUMN] == control) & units[SCORE_PRED_COLUMN].notna()]
    word = "well" if WELL_COLUMN in units.columns else "field"
    if len(theirs) == 0:
        problems.append(f"the control {control} has no scored cell: no condition is compared "
                        "on the score")
    elif len(theirs) < MIN_UNITS:
        problems.append(f"the control {control} has {len(theirs)} {word} with scores: the "
                        f"differences have no interval or p-value (at least {MIN_UNITS} "
                        f"{word}s needed)")


DOSE_FIT_COLUMNS = ["condition", "measure", "n_doses", "bottom", "top", "ec50", "ec50_low",
                    "ec50_high", "hill", "message"]


def _fit_doses(units, joined, control, measures, plates, n_boot, rng, problems) -> pd.DataFrame:
    """A four-parameter logistic per compound tested at several numeric doses (and measure),
    the control's wells (on the compound's plates) as dose 0."""
    rows = []
    if DOSE_COLUMN not in units.columns or units[DOSE_COLUMN].isna().all():
        return pd.DataFrame(columns=DOSE_FIT_COLUMNS)
    texts = set()
    if "dose_is_text" in joined:
        texts = set(joined.loc[joined["dose_is_text"].astype(bool), CONDITION_COLUMN])
    for condition in dict.fromkeys(units[CONDITION_COLUMN]):
        if condition == control or condition in texts:
            continue
        mine = units[(units[CONDITION_COLUMN] == condition) & units[DOSE_COLUMN].notna()]
        if mine[DOSE_COLUMN].nunique() < 2:
            continue
        theirs = units[units[GROUP_COLUMN] == control] if control is not None else units.iloc[:0]
        if plates and len(theirs):
            theirs = theirs[theirs[PLATE_COLUMN].isin(set(mine[PLATE_COLUMN]))]
        for measure in measures:
            wells = pd.concat([mine[[DOSE_COLUMN, measure]],
                               theirs[[measure]].assign(**{DOSE_COLUMN: 0.0})]).dropna()
            fit = fit_dose_response(wells[DOSE_COLUMN], wells[measure], n_boot=n_boot,
                                    random_state=rng)
            rows.append({"condition": condition, "measure": measure, "n_doses": fit.n_doses,
                         "bottom": fit.bottom, "top": fit.top, "ec50": fit.ec50,
                         "ec50_low": fit.ec50_low, "ec50_high": fit.ec50_high, "hill": fit.hill,
                         "message": fit.message})
            if fit.message and measure == SCORE_PRED_COLUMN:
                problems.append(f"dose-response of {condition}: {fit.message}")
    return pd.DataFrame(rows, columns=DOSE_FIT_COLUMNS)
