"""Chunked runs whose results reach the disk as each chunk finishes, and that resume.

A run over a table of cells writes each finished chunk's rows to a folder
beside the output, ``OUTPUT.partial/`` (each part file written atomically, so
a killed run leaves only whole parts). Started again with the same output and
settings, it skips the cells whose rows are already there: a cell is known by
its row in the input and the value of its key column (the image or field
path), so a cell whose row now names another file is done again. An input row
may give several output rows (a field of view gives one per cell), all saved
in the same part. When every input row has its rows, they are put back in
input order into the output, written atomically and never over an input, and
the folder is removed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._chunks import chunk_slices
from .._console import progress_bar
from ..outputs import refuse_inputs, write_atomically, write_csv_atomically
from ._engine import map_chunks

ROW_COLUMN = "_input_row"
KEY_COLUMN = "_input_key"
SETTINGS_FILE = "run.json"
logger = logging.getLogger(__name__)

MARKER_FILE = ".sarcnet-sklearn-run"
"""Written first into every partial folder this package makes: only such a folder is resumed
or removed, and only the files the package wrote in it are deleted."""
LOCK_FILE = ".lock"
"""Held by the run writing into a partial folder; a second run on the same output is refused."""


@dataclass(frozen=True)
class RunResult:
    """What a chunked run wrote.

    Attributes
    ----------
    output : Path
        The output file.
    table : DataFrame
        Its rows, as text exactly as written (empty strings for missing values).
    n_resumed : int
        Input rows (cells, fields) found done in the partial folder of an earlier run.
    """

    output: Path
    table: pd.DataFrame
    n_resumed: int


def partial_folder(output: str | PathLike) -> Path:
    """Where a run writing ``output`` keeps its finished chunks until it completes.

    Examples
    --------
    >>> from sarcnet_sklearn.scale import partial_folder
    >>> partial_folder("results/scores.csv").as_posix()
    'results/scores.csv.partial'
    """
    output = Path(output)
    return output.with_name(output.name + ".partial")


def run_in_chunks(
    cells: pd.DataFrame,
    work: Callable,
    output: str | PathLike,
    *,
    key_column: str,
    settings: Mapping[str, object],
    inputs: Iterable[str | PathLike] = (),
    chunk_size: int = 1000,
    model=None,
    load=None,
    client=None,
    progress: bool = False,
    what: str = "cells",
    several_rows: bool = False,
    finish: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> RunResult:
    """Run ``work`` over ``cells`` a chunk at a time into ``output``, resuming an earlier run.

    Parameters
    ----------
    cells : DataFrame
        One row per cell, in the order of the output.
    work : callable
        ``work(chunk)`` (or ``work(model, chunk)``) returns one row per row of
        ``chunk``, with the chunk's index; picklable for a cluster. With
        ``several_rows``, one or more rows per row of ``chunk``, each carrying
        the index of the row it comes from, in the chunk's order.
    output : path
        CSV to write; its partial folder is :func:`partial_folder`.
    key_column : str
        Column of ``cells`` that names each cell's file (with its row, the
        cell's identity across runs).
    settings : mapping
        JSON-able description of the run (model file, options); resuming with
        other settings is refused.
    inputs : iterable of path
        Files never to be overwritten (the output is checked against them).
    chunk_size : int, default=1000
        Cells per chunk (a cluster task, a part file).
    model, load, client
        See :func:`~sarcnet_sklearn.scale.map_chunks`.
    progress : bool, default=False
        Progress bar over cells.
    what : str, default="cells"
        What the input rows are, for messages.
    several_rows : bool, default=False
        Whether an input row may give several output rows.
    finish : callable, optional
        Applied to the whole table (as text) before it is written, e.g. to
        make paths relative to the output.

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        For an output that is an input or a folder, or a partial folder left
        by a run with other settings.
    KeyboardInterrupt
        Re-raised after saying how to resume; finished chunks are kept.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.scale import run_in_chunks
    >>> names = pd.DataFrame({"image_path": ["a.tiff", "bb.tiff", "ccc.tiff"]})
    >>> def measure(chunk):  # one row per row of the chunk, same index
    ...     return chunk.assign(length=chunk["image_path"].str.len())
    >>> result = run_in_chunks(names, measure, "lengths.csv", key_column="image_path",
    ...                        settings={"command": "lengths"}, chunk_size=2)
    >>> result.table["length"].tolist(), result.output.name  # the table as written: text
    (['6', '7', '8'], 'lengths.csv')
    """
    output = Path(output)
    inputs = list(inputs)
    if output.is_dir():
        raise ValueError(f"output {output} is a folder; give a .csv file name")
    refuse_inputs([output], inputs)
    if key_column not in cells.columns:
        raise ValueError(f"the input has no {key_column!r} column")
    keys = input_keys(cells, key_column)
    folder = partial_folder(output)
    with _locked(folder, output):
        return _run_locked(cells, work, output, folder, keys, settings=settings, inputs=inputs,
                           chunk_size=chunk_size, model=model, load=load, client=client,
                           progress=progress, what=what, several_rows=several_rows,
                           finish=finish)


def input_keys(cells: pd.DataFrame, key_column: str) -> np.ndarray:
    """Each input row's identity across runs: its file(s), their size and modification time,
    and a hash of the row's values.

    A row whose file was replaced (re-segmented, edited) or whose other columns
    changed (an edited feature) gets another key, so a resumed run does it again.
    ``key_column`` may name several files joined by ``os.pathsep``.
    """
    names = cells[key_column].astype(str).to_numpy()
    content = pd.util.hash_pandas_object(cells.astype(str), index=False).to_numpy()
    keys = np.empty(len(names), dtype=object)
    for index, (name, digest) in enumerate(zip(names, content, strict=True)):
        stats = []
        for part in name.split(os.pathsep):
            try:
                info = os.stat(part)
                stats.append(f"{info.st_size}:{info.st_mtime_ns}")
            except (OSError, ValueError):
                stats.append("-")
        keys[index] = f"{name}|{digest:016x}|{','.join(stats)}"
    return keys.astype(str)


@contextmanager
def _locked(folder: Path, output: Path):
    """Hold the lock of ``folder`` (made, with its marker, if new) for one run."""
    from filelock import FileLock, Timeout

    _claim(folder)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(
            f"another run is writing {output} now ({folder} is locked); wait for it to finish "
            "or choose another output"
        ) from None
    try:
        yield
    finally:
        lock.release()
        if not (folder / SETTINGS_FILE).exists():  # finished, or failed before saving anything
            _remove_folder(folder)


def _claim(folder: Path) -> None:
    """Make ``folder`` with its marker, or check that an existing one is this package's."""
    if folder.is_symlink():
        raise ValueError(f"{folder} is a symbolic link; a run keeps its finished chunks in a "
                         "folder of that name: move the link away or choose another output")
    if folder.exists():
        if not folder.is_dir() or not (folder / MARKER_FILE).is_file():
            raise ValueError(
                f"{folder} exists and was not made by sarcnet-sklearn (it has no "
                f"{MARKER_FILE}); a run keeps its finished chunks in a folder of that name: "
                "move or rename it, or choose another output"
            )
        return
    folder.mkdir(parents=True)
    (folder / MARKER_FILE).write_text("a folder of sarcnet-sklearn's finished chunks; "
                                      "removed when the run completes\n")


def _run_locked(cells, work, output, folder, keys, *, settings, inputs, chunk_size, model,
                load, client, progress, what, several_rows, finish) -> RunResult:
    done = _resume(folder, dict(settings), keys, several_rows)
    pending = np.ones(len(cells), dtype=bool)
    for part in done:
        pending[part.index.to_numpy()] = False
    todo = np.flatnonzero(pending)
    n_resumed = len(cells) - len(todo)
    if n_resumed:
        logger.warning("resuming: %d of %d %s already done in %s (delete it to start afresh)",
                       n_resumed, len(cells), what, folder)
    chunks = []
    for part in chunk_slices(len(todo), chunk_size):
        chunk = cells.iloc[todo[part]]
        chunks.append(chunk.set_axis(todo[part], axis=0))
    bar = progress_bar(total=len(cells), initial=n_resumed, desc=what,
                       unit=what.removesuffix("s"), show=progress)
    try:
        with bar:
            for index, result in map_chunks(work, chunks, model=model, load=load,
                                            client=client):
                rows = chunks[index].index.to_numpy()
                done.append(_save_part(folder, result, rows, keys, several_rows))
                bar.update(len(rows))
    except KeyboardInterrupt:
        saved = sum(pd.read_csv(path, usecols=[ROW_COLUMN])[ROW_COLUMN].nunique()
                    for path in folder.glob("part-*.csv"))
        print(
            f"\ninterrupted: {saved} of {len(cells)} {what} are saved in {folder}; run the same "
            "command again to go on from there",
            file=sys.stderr,
        )
        raise
    except Exception:
        if not any(folder.glob("part-*.csv")):  # nothing saved: leave no run to resume
            _clear_run(folder)
        raise
    table = pd.concat(done).sort_index(kind="stable")  # a row's several rows stay in order
    found = np.unique(table.index.to_numpy())
    if not np.array_equal(found, np.arange(len(cells))) or (
        not several_rows and len(table) != len(cells)
    ):
        raise RuntimeError(f"{folder}: expected rows for each of the {len(cells)} input rows, "
                           f"found {len(table)} rows for {len(found)}")
    table = table.reset_index(drop=True)
    if finish is not None:
        table = finish(table)
    write_csv_atomically(table, output, inputs=inputs)
    _clear_run(folder)
    return RunResult(output, table, n_resumed)


def _clear_run(folder: Path) -> None:
    """Delete the chunks and settings a run wrote in its partial folder (nothing else)."""
    for path in folder.iterdir():
        if path.name.startswith(("part-", ".part-")) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    (folder / SETTINGS_FILE).unlink(missing_ok=True)


def _remove_folder(folder: Path) -> None:
    """Delete a partial folder with no run left in it, unless someone put other files there."""
    if not folder.is_dir():
        return
    _clear_run(folder)
    for name in (LOCK_FILE, MARKER_FILE):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        others = sorted(path.name for path in folder.iterdir())
        logger.warning("kept %s: it holds files sarcnet-sklearn did not write (%s)", folder,
                       ", ".join(others[:5]))


def _resume(
    folder: Path, settings: dict, keys: np.ndarray, several_rows: bool
) -> list[pd.DataFrame]:
    """The finished parts in ``folder`` that match the input (creating the folder if new)."""
    record = folder / SETTINGS_FILE
    if not record.is_file():
        write_atomically(record, lambda tmp: Path(tmp).write_text(json.dumps(settings, indent=1)))
        return []
    try:
        earlier = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{record}: unreadable ({exc}); delete {folder} to start over") from exc
    if earlier != json.loads(json.dumps(settings)):
        changed = sorted(k for k in {*earlier, *settings} if earlier.get(k) != settings.get(k))
        raise ValueError(
            f"{folder} holds an unfinished run with other settings ({', '.join(changed)}); "
            f"run with the same settings to finish it, or delete {folder} to start over"
        )
    parts, seen = [], np.zeros(len(keys), dtype=bool)
    for path in sorted(folder.glob("part-*.csv")):
        part = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows = pd.to_numeric(part[ROW_COLUMN], errors="coerce").to_numpy()
        if ((rows >= 0) & (rows < len(keys))).all():
            rows = rows.astype(np.int64)
            same_cells = np.array_equal(keys[rows], part[KEY_COLUMN].to_numpy())
            ordered = (np.diff(rows) >= 0).all() if several_rows else (
                len(np.unique(rows)) == len(rows))
            if same_cells and ordered and len(rows) and not seen[rows].any():
                seen[rows] = True
                parts.append(part.drop(columns=[ROW_COLUMN, KEY_COLUMN]).set_axis(rows, axis=0))
                continue
        path.unlink()  # rows that now name other cells (or repeat): they are done again
    for leftover in folder.glob(".part-*.tmp"):  # a part being written when the run was killed
        leftover.unlink()
    return parts


def _save_part(
    folder: Path, result: pd.DataFrame, rows: np.ndarray, keys: np.ndarray, several_rows: bool
):
    """Write one chunk's rows atomically; return them as text, as they will be read back."""
    index = result.index.to_numpy()
    if several_rows:
        matches = len(index) and np.array_equal(np.unique(index), np.sort(rows)) and (
            np.diff(np.searchsorted(rows, index)) >= 0).all()
    else:
        matches = np.array_equal(index, rows)
    if not matches:
        raise RuntimeError(f"a chunk's results are not rows of its input rows, in order: "
                           f"{rows[:5]}...")
    part = result.reset_index(drop=True)
    part.insert(0, KEY_COLUMN, keys[index])
    part.insert(0, ROW_COLUMN, index)
    path = folder / f"part-{rows[0]:09d}-{rows[-1]:09d}.csv"
    write_atomically(path, lambda tmp: part.to_csv(tmp, index=False))
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    return text.drop(columns=[ROW_COLUMN, KEY_COLUMN]).set_axis(index, axis=0)
