"""Plate maps: which condition (and dose) each plate, well or field received, joined to cells.

The two tables are joined on the location columns both have (plate, well,
field). Every problem of a plate map that spoils only part of it (a well
listed twice with two conditions, a dose that is not a number) is collected as
a message and the rest is used; a problem that would make every number wrong
(cells that match no entry, entries that match no cell, no shared column) is an
error naming the rows.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._columns import GROUP_COLUMNS, PLATE_COLUMN, WELL_COLUMN

CONDITION_COLUMN = "condition"
DOSE_COLUMN = "dose"
CONTROL_COLUMN = "control"
GROUP_COLUMN = "group"
"""The comparison group of a cell in the joined table: the condition, and its dose if any."""
DOSE_LABEL_COLUMN = "dose_label"
AMBIGUOUS = "its plate-map entry is listed twice with different conditions"

_TRUE = {"true", "yes", "1", "y", "t", "control"}
_FALSE = {"false", "no", "0", "n", "f", "", "nan"}
_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")
SHOWN = 5
"""How many offending rows an error message names."""


def key_text(values: pd.Series, column: str) -> pd.Series:
    """Location values as comparable text: 1.0 and "1" alike, and well B04 is B4.

    Examples
    --------
    >>> key_text(pd.Series(["B04", "b4", "H12"]), "well").tolist()
    ['B4', 'B4', 'H12']
    >>> key_text(pd.Series([1.0, 2.0]), "plate").tolist()
    ['1', '2']
    """
    def text(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        value = str(value).strip()
        if column == WELL_COLUMN:
            match = _WELL.match(value)
            if match:
                return f"{match.group(1).upper()}{int(match.group(2))}"
        return value

    return values.map(text).astype(object)


def _where(row: pd.Series, keys: list[str]) -> str:
    return " ".join(f"{key} {row[key]}" for key in keys)


def _control_flags(values: pd.Series) -> pd.Series:
    flags = []
    for row, value in values.items():
        word = str(value).strip().lower()
        if isinstance(value, (bool, np.bool_)):
            flags.append(bool(value))
        elif word in _TRUE:
            flags.append(True)
        elif word in _FALSE:
            flags.append(False)
        else:
            raise ValueError(f"plate map, row {row + 2}: control is {value!r}; write true or "
                             "false")
    return pd.Series(flags, index=values.index, dtype=bool)


def prepare_plate_map(
    plate_map: pd.DataFrame, keys: list[str], control: str | None, problems: list[str]
) -> tuple[pd.DataFrame, str | None]:
    """The plate map's entries with a group, a dose and a control flag; and the control's name.

    Entries listed twice are used once when they agree, and flagged
    (:data:`AMBIGUOUS`) when they do not; a dose that is not a number makes its
    entries a group of their own, without a dose-response fit.
    """
    if CONDITION_COLUMN not in plate_map.columns:
        raise ValueError(f"the plate map has no {CONDITION_COLUMN!r} column (columns: "
                         f"{list(plate_map.columns)})")
    table = pd.DataFrame({key: key_text(plate_map[key], key) for key in keys})
    table.index = plate_map.index
    empty = (table == "").any(axis=1)
    if empty.any():
        rows = [int(i) + 2 for i in table.index[empty][:SHOWN]]
        raise ValueError(f"plate map: empty {'/'.join(keys)} in row(s) {rows} (row 1 is the "
                         "header)")
    table[CONDITION_COLUMN] = plate_map[CONDITION_COLUMN].map(
        lambda value: "" if pd.isna(value) else str(value).strip())
    missing = table[CONDITION_COLUMN] == ""
    if missing.any():
        rows = [int(i) + 2 for i in table.index[missing][:SHOWN]]
        raise ValueError(f"plate map: no condition in row(s) {rows} (row 1 is the header)")

    table[DOSE_COLUMN], table[DOSE_LABEL_COLUMN] = np.nan, ""
    if DOSE_COLUMN in plate_map.columns:
        raw = plate_map[DOSE_COLUMN]
        numbers = pd.to_numeric(raw, errors="coerce")
        text = raw.notna() & numbers.isna() & (raw.astype(str).str.strip() != "")
        for condition, rows in table[text].groupby(CONDITION_COLUMN).groups.items():
            values = sorted({str(raw[row]).strip() for row in rows})
            problems.append(
                f"plate map: {condition}: dose {', '.join(map(repr, values))} is not a number "
                f"(row(s) {[int(r) + 2 for r in rows][:SHOWN]}); those wells are compared as a "
                f"group of their own and {condition} gets no dose-response fit")
        negative = numbers < 0
        if negative.any():
            rows = [int(i) + 2 for i in table.index[negative][:SHOWN]]
            raise ValueError(f"plate map: negative dose in row(s) {rows}")
        table[DOSE_COLUMN] = numbers
        table[DOSE_LABEL_COLUMN] = [
            f"{number:g}" if np.isfinite(number) else ("" if not flagged else str(value).strip())
            for number, value, flagged in zip(numbers, raw, text, strict=True)]
        table["dose_is_text"] = text

    name = _control_name(plate_map, table, control)
    table[CONTROL_COLUMN] = table[CONDITION_COLUMN] == name if name is not None else False
    table[GROUP_COLUMN] = [
        condition if is_control or not label else f"{condition} {label}"
        for condition, label, is_control in zip(table[CONDITION_COLUMN],
                                                table[DOSE_LABEL_COLUMN],
                                                table[CONTROL_COLUMN], strict=True)]

    table["ambiguous"] = False
    duplicated = table.duplicated(keys, keep=False)
    if duplicated.any():
        for key_values, rows in table[duplicated].groupby(keys).groups.items():
            key_values = key_values if isinstance(key_values, tuple) else (key_values,)
            where = " ".join(f"{k} {v}" for k, v in zip(keys, key_values, strict=True))
            groups = sorted(set(table.loc[rows, GROUP_COLUMN]))
            line_numbers = [int(r) + 2 for r in rows]
            if len(groups) == 1:
                problems.append(f"plate map: {where} is listed {len(rows)} times (rows "
                                f"{line_numbers}), each time as {groups[0]}; used once")
            else:
                problems.append(f"plate map: {where} is listed {len(rows)} times (rows "
                                f"{line_numbers}) with different conditions ({', '.join(groups)});"
                                " its cells are left out of the comparison")
                table.loc[rows, "ambiguous"] = True
        table = table.drop_duplicates(keys, keep="first")
    return table, name


def _control_name(plate_map: pd.DataFrame, table: pd.DataFrame, control: str | None) -> str | None:
    conditions = list(dict.fromkeys(table[CONDITION_COLUMN]))
    if control is not None:
        if control not in conditions:
            raise ValueError(f"the control {control!r} is not a condition of the plate map "
                             f"(conditions: {', '.join(conditions)})")
        return control
    if CONTROL_COLUMN not in plate_map.columns:
        return None
    flags = _control_flags(plate_map[CONTROL_COLUMN])
    names = sorted(set(table.loc[flags, CONDITION_COLUMN]))
    if len(names) > 1:
        raise ValueError(f"plate map: the control rows name {len(names)} conditions "
                         f"({', '.join(names)}); pick one with --control NAME (control=)")
    return names[0] if names else None


def join_plate_map(
    cells: pd.DataFrame, plate_map: pd.DataFrame, *, control: str | None = None,
    cells_name: str = "cells", map_name: str = "plate map",
) -> tuple[pd.DataFrame, list[str], str | None, list[str]]:
    """Cells with their plate-map entry: (joined cells, problems, control name, key columns).

    Raises ValueError naming the cells that match no entry, or the entries that
    match no cell.

    Examples
    --------
    >>> cells_table = pd.DataFrame({"well": ["B4", "B5"], "score_pred": [3.0, 3.5]})
    >>> plate_map = pd.DataFrame({"well": ["B04", "B05"], "condition": ["DMSO", "drugA"],
    ...                           "control": [True, False]})
    >>> joined, problems, name, keys = join_plate_map(cells_table, plate_map)
    >>> joined["condition"].tolist(), name, keys
    (['DMSO', 'drugA'], 'DMSO', ['well'])
    """
    keys = [column for column in GROUP_COLUMNS if column in cells.columns
            and column in plate_map.columns]
    keys = [column for column in (PLATE_COLUMN, WELL_COLUMN) if column in keys] + [
        column for column in keys if column not in (PLATE_COLUMN, WELL_COLUMN)]
    if not keys:
        raise ValueError(f"{cells_name} and {map_name} share no location column (one of "
                         f"{', '.join(GROUP_COLUMNS)}) to join on; {cells_name} has "
                         f"{list(cells.columns)}, {map_name} has {list(plate_map.columns)}")
    clash = sorted({CONDITION_COLUMN, DOSE_COLUMN, CONTROL_COLUMN, GROUP_COLUMN}
                   & set(cells.columns) & set(plate_map.columns) | (
                       {GROUP_COLUMN} & set(cells.columns)))
    if clash:
        raise ValueError(f"{cells_name} already has the column(s) {clash} that the plate map "
                         "gives; remove or rename them in one of the tables")
    problems: list[str] = []
    entries, name = prepare_plate_map(plate_map, keys, control, problems)
    cells = cells.copy()
    for key in keys:
        cells[key] = key_text(cells[key], key)
    joined = cells.merge(entries, on=keys, how="left", indicator=True, validate="many_to_one")
    unmatched = joined[joined["_merge"] == "left_only"]
    if len(unmatched):
        places = unmatched.drop_duplicates(keys)
        named = ", ".join(_where(row, keys) for _, row in places.head(SHOWN).iterrows())
        more = f" and {len(places) - SHOWN} more" if len(places) > SHOWN else ""
        raise ValueError(f"{len(unmatched)} cell(s) of {cells_name} match no entry of "
                         f"{map_name} (joined on {', '.join(keys)}): {named}{more}")
    found = entries.merge(cells[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    lonely = found[found["_merge"] == "left_only"]
    if len(lonely):
        named = ", ".join(f"{_where(row, keys)} ({row[GROUP_COLUMN]})"
                          for _, row in lonely.head(SHOWN).iterrows())
        more = f" and {len(lonely) - SHOWN} more" if len(lonely) > SHOWN else ""
        raise ValueError(f"{len(lonely)} entr{'y' if len(lonely) == 1 else 'ies'} of "
                         f"{map_name} match no cell of {cells_name} (joined on "
                         f"{', '.join(keys)}): {named}{more}; remove them from the plate map "
                         "if those wells were not imaged")
    return joined.drop(columns="_merge"), problems, name, keys
