"""``run.json``: what a scoring command did, written beside its output table.

Months later, a table of scores must still say where it came from: the command line, the
versions, the model file (its SHA-256 and its card's key facts), the pixel size used, and
how many cells were scored or not, per reason. ``fields`` writes ``OUT/run.json``;
``predict --out scores.csv`` writes ``scores.run.json`` beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

RUN_FILE = "run.json"


def run_record_path(table: str | os.PathLike, *, folder_output: bool = False) -> Path:
    """Where the run record of an output table goes.

    Examples
    --------
    >>> run_record_path("out/cells.csv", folder_output=True).as_posix()
    'out/run.json'
    >>> run_record_path("results/scores.csv").as_posix()
    'results/scores.run.json'
    """
    table = Path(table)
    if folder_output:
        return table.parent / RUN_FILE
    return table.with_name(f"{table.name.split('.')[0] or table.stem}.{RUN_FILE}")


def versions() -> dict[str, str]:
    """The versions of the package and of the libraries its numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    found = {"sarcnet_sklearn": __version__, "python": platform.python_version()}
    for name in ("torch", "torchvision", "scikit-learn", "skorch", "numpy", "pandas",
                 "scikit-image", "scipy", "bioio", "tifffile"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def pixel_sizes_used(table) -> dict:
    """The pixel sizes of a table's cells (``pixel_size`` column) and how many were assumed."""
    import pandas as pd

    from .._columns import PIXEL_SIZE_COLUMN
    from .._pixel_size import PIXEL_SIZE_ASSUMED_COLUMN, assumed_rows

    used: dict = {}
    if PIXEL_SIZE_COLUMN in table:
        values = pd.to_numeric(table[PIXEL_SIZE_COLUMN], errors="coerce").dropna().unique()
        used["values_um"] = sorted(float(value) for value in values)
    if PIXEL_SIZE_ASSUMED_COLUMN in table:
        used["n_cells_assumed"] = int(assumed_rows(table).sum())
    return used


def write_run_record(
    table_path: str | os.PathLike,
    args: argparse.Namespace,
    *,
    started: datetime,
    model_file: str | os.PathLike | None,
    model=None,
    summary: dict | None = None,
    table=None,
    exit_status: int | None = None,
    folder_output: bool = False,
    extra: dict | None = None,
    inputs=(),
) -> Path:
    """Write the run record of ``table_path`` (see the module docstring) atomically.

    Returns
    -------
    path : Path
        The ``run.json`` written.
    """
    from .._pages import sha256_of
    from ..deploy._card import card_facts
    from ..outputs import refuse_inputs, write_atomically
    from ._options import command_line

    record: dict = {
        "command": command_line(args),
        "working_directory": os.getcwd(),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output": str(Path(table_path).resolve()),
        "versions": versions(),
    }
    if model_file is not None:
        card = getattr(model, "model_card_", None)
        record["model"] = {"file": str(Path(model_file).resolve()),
                           "sha256": sha256_of(model_file),
                           **(card_facts(card) if isinstance(card, dict) else {})}
    given = getattr(args, "pixel_size", None)
    record["pixel_size"] = {"given_um": given,
                            **(pixel_sizes_used(table) if table is not None else {})}
    if summary is not None:
        record["cells"] = summary
    if exit_status is not None:
        record["exit_status"] = exit_status
    record |= extra or {}
    path = run_record_path(table_path, folder_output=folder_output)
    refuse_inputs([path], inputs)
    text = json.dumps(record, indent=1, default=str)
    return write_atomically(path, lambda target: Path(target).write_text(text,
                                                                         encoding="utf-8"))
