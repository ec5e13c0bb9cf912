"""Scoring cells by hand: the sheet of cells to score, saved after every cell; two scorers merged.

:class:`ScoreSheet` walks through the cells of a table (a crops table from
``fields --save-crops``, whose ``score`` column ``train`` reads, or one row per
label of a field) in an order (the table's, or the model's from
:func:`~sarcnet_sklearn.deploy.suggest_cells`); every score, skip and undo is
written to its file atomically at once, so stopping anywhere loses nothing and
opening the file again resumes at the first unscored cell.
:func:`merge_scorers` joins two scorers' files and measures their agreement.
The napari widget (``sarcnet_sklearn.napari``) is a view of a sheet.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from ._columns import FIELD_COLUMN, IMAGE_COLUMN, SCORE_RANGE, TARGET_COLUMN
from .agreement import scorer_agreement
from .outputs import write_csv_atomically

LABEL_COLUMN = "label"


class ScoreSheet:
    """The cells to score by hand, in order, with undo; saved after every change.

    Parameters
    ----------
    table : DataFrame
        One row per cell; its ``score`` column (added, empty, when missing)
        holds the scores given so far.
    path : str or path-like, optional
        The CSV the table is written to (atomically) after every change;
        None: kept in memory.
    order : sequence of row positions, optional
        The order to walk the cells in (e.g. ``suggest_cells``'s); cells left
        out of it come after it, in the table's order. Default: the table's.
    half_steps : bool, default=False
        Allow scores between the whole numbers (1, 1.5, 2, ...).
    score_range : (low, high), default=(1.0, 5.0)

    Examples
    --------
    >>> import pandas as pd
    >>> sheet = ScoreSheet(pd.DataFrame({"label": [1, 2, 3]}))
    >>> sheet.current, sheet.set_score(4), sheet.skip(), sheet.current
    (0, 1, 2, 2)
    >>> sheet.back(), sheet.back(), sheet.table["score"].isna().all()
    (1, 0, np.True_)
    """

    def __init__(self, table: pd.DataFrame, path: str | PathLike | None = None, *,
                 order=None, half_steps: bool = False,
                 score_range: tuple[float, float] = SCORE_RANGE) -> None:
        self.table = table.reset_index(drop=True).copy()
        if TARGET_COLUMN not in self.table.columns:
            self.table[TARGET_COLUMN] = np.nan
        scores = pd.to_numeric(self.table[TARGET_COLUMN], errors="coerce")
        bad = self.table[TARGET_COLUMN].notna() & scores.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path or 'the table'}: row {row + 2} has the score "
                             f"{self.table[TARGET_COLUMN].iloc[row]!r}, not a number")
        self.table[TARGET_COLUMN] = scores.astype(float)
        self.path = None if path is None else Path(path)
        self.half_steps = half_steps
        self.score_range = tuple(score_range)
        given = [] if order is None else [int(i) for i in order]
        self.order = given + [i for i in range(len(self.table)) if i not in set(given)]
        self._skipped: set[int] = set()
        self._history: list[tuple[int, float]] = []
        self.current = self._next_unscored(0)

    @classmethod
    def from_file(cls, path: str | PathLike, **options) -> ScoreSheet:
        """The sheet of a CSV (a crops table, or a sheet saved before): resumes where it was."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no such table: {path}")
        return cls(pd.read_csv(path), path, **options)

    # -- state ------------------------------------------------------------------------------

    @property
    def scored(self) -> int:
        """The number of cells with a score."""
        return int(self.table[TARGET_COLUMN].notna().sum())

    @property
    def done(self) -> bool:
        """Whether every cell was scored or skipped."""
        return self.current is None

    def image_path(self, row: int) -> Path | None:
        """The image file of a row, relative paths taken from the table's folder."""
        if IMAGE_COLUMN not in self.table.columns or pd.isna(self.table[IMAGE_COLUMN].iloc[row]):
            return None
        path = Path(str(self.table[IMAGE_COLUMN].iloc[row]))
        return path if path.is_absolute() or self.path is None else self.path.parent / path

    def _next_unscored(self, start: int) -> int | None:
        scores = self.table[TARGET_COLUMN].to_numpy()
        for position in range(start, len(self.order)):
            row = self.order[position]
            if np.isnan(scores[row]) and row not in self._skipped:
                return row
        return None

    def _position(self, row: int | None) -> int:
        return len(self.order) if row is None else self.order.index(row)

    # -- actions ----------------------------------------------------------------------------

    def check_score(self, value: float) -> float:
        """``value`` if it is a score this sheet allows, else a ValueError saying which are."""
        low, high = self.score_range
        step = 0.5 if self.half_steps else 1.0
        value = float(value)
        if not (low <= value <= high) or abs(value / step - round(value / step)) > 1e-9:
            raise ValueError(f"score {value:g} is not allowed: {low:g}-{high:g} in steps of "
                             f"{step:g}")
        return value

    def set_score(self, value: float) -> int | None:
        """Score the current cell, save, and go to the next cell to score (returned)."""
        if self.current is None:
            raise ValueError("every cell is scored or skipped")
        value = self.check_score(value)
        row = self.current
        self._history.append((row, self.table.at[row, TARGET_COLUMN]))
        self.table.at[row, TARGET_COLUMN] = value
        self.save()
        self.current = self._next_unscored(self._position(row) + 1)
        return self.current

    def skip(self) -> int | None:
        """Leave the current cell unscored (for this session) and go to the next."""
        if self.current is None:
            raise ValueError("every cell is scored or skipped")
        row = self.current
        self._history.append((row, None))
        self._skipped.add(row)
        self.current = self._next_unscored(self._position(row) + 1)
        return self.current

    def back(self) -> int | None:
        """Undo the last score or skip (saved at once) and return to that cell."""
        if not self._history:
            return self.current
        row, before = self._history.pop()
        if before is None:
            self._skipped.discard(row)
        else:
            self.table.at[row, TARGET_COLUMN] = before
            self.save()
        self.current = row
        return row

    def save(self) -> Path | None:
        """Write the table to its file atomically (nothing without a file)."""
        if self.path is None:
            return None
        return write_csv_atomically(self.table, self.path)


def field_sheet_table(labels: np.ndarray, field: str) -> pd.DataFrame:
    """One row per label of a field's label image, with an empty ``score`` column.

    Examples
    --------
    >>> import numpy as np
    >>> field_sheet_table(np.array([[0, 3], [3, 7]]), "well_B4").to_dict("list")
    {'field': ['well_B4', 'well_B4'], 'label': [3, 7], 'score': [nan, nan]}
    """
    found = np.unique(np.asarray(labels))
    found = found[found != 0]
    return pd.DataFrame({FIELD_COLUMN: field, LABEL_COLUMN: found.astype(int),
                         TARGET_COLUMN: np.nan})


def merge_scorers(
    first: str | PathLike | pd.DataFrame,
    second: str | PathLike | pd.DataFrame,
    *,
    score_step: float | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Join two scorers' tables of the same cells; their mean score and their agreement.

    The cells are matched on ``image_path`` when both tables have it, else on
    ``field`` and ``label``.

    Parameters
    ----------
    first, second : path or DataFrame
        Tables with a ``score`` column (empty where not scored).
    score_step : float, optional
        The steps of the scores, for the weighted kappa; default: 0.5 when
        some score is not a whole number, else 1.

    Returns
    -------
    merged : DataFrame
        The first table's columns with ``score_1``, ``score_2`` and ``score``
        (their mean; the one score where only one scorer scored the cell).
    agreement : dict
        :func:`~sarcnet_sklearn.agreement.scorer_agreement` on the cells both
        scored (Spearman, weighted kappas, exact agreement).

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"field": "f", "label": [1, 2, 3, 4], "score": [1, 2, 4, None]})
    >>> b = pd.DataFrame({"field": "f", "label": [1, 2, 3, 4], "score": [1, 3, 4, 5]})
    >>> merged, agreement = merge_scorers(a, b)
    >>> merged["score"].tolist(), agreement["n_cells"]
    ([1.0, 2.5, 4.0, 5.0], 3)
    """
    tables = [pd.read_csv(item) if isinstance(item, (str, PathLike)) else item.copy()
              for item in (first, second)]
    for number, table in enumerate(tables, 1):
        if TARGET_COLUMN not in table.columns:
            raise ValueError(f"scorer {number}'s table has no {TARGET_COLUMN!r} column")
    keys = ([IMAGE_COLUMN] if all(IMAGE_COLUMN in t.columns for t in tables)
            else [FIELD_COLUMN, LABEL_COLUMN])
    for number, table in enumerate(tables, 1):
        missing = [key for key in keys if key not in table.columns]
        if missing:
            raise ValueError(f"scorer {number}'s table lacks {missing}: cannot match its cells")
        if table.duplicated(keys).any():
            raise ValueError(f"scorer {number}'s table lists a cell twice "
                             f"({table[table.duplicated(keys)][keys].iloc[0].tolist()})")
    one, two = tables
    merged = one.rename(columns={TARGET_COLUMN: "score_1"}).merge(
        two[[*keys, TARGET_COLUMN]].rename(columns={TARGET_COLUMN: "score_2"}),
        on=keys, how="outer", indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        raise ValueError(f"{len(unmatched)} cell(s) are in only one scorer's table, e.g. "
                         f"{unmatched[keys].iloc[0].tolist()}")
    merged = merged.drop(columns="_merge")
    merged[TARGET_COLUMN] = merged[["score_1", "score_2"]].mean(axis=1)
    if score_step is None:
        given = merged[["score_1", "score_2"]].to_numpy(dtype=float)
        given = given[np.isfinite(given)]
        score_step = 1.0 if np.all(given == np.round(given)) else 0.5
    return merged, scorer_agreement(merged["score_1"], merged["score_2"], score_step=score_step)
