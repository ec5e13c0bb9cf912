"""What kind of cells a table holds: synthetic (written by this package), the AICS data, or
other (a lab's own). A model file records the kind it was trained on; a model trained on
synthetic cells warns when it scores anything else."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import pandas as pd

from .._columns import IMAGE_COLUMN
from ._synthetic import MARKER_FILE, TRUTH_COLUMNS

SYNTHETIC, AICS, OTHER = "synthetic", "aics", "other"
DATA_KINDS = (SYNTHETIC, AICS, OTHER)
SAMPLED_IMAGES = 5
"""Images of a table looked at: all of them in a synthetic dataset make the table synthetic."""


def is_synthetic_source(source: str | PathLike | None) -> bool:
    """Whether ``source`` (a file or folder) lies in a dataset written by
    :func:`~sarcnet_sklearn.datasets.make_synthetic_aics` (its marker file is in it or in one
    of the three folders above)."""
    if source is None:
        return False
    path = Path(source).absolute()
    folders = [path] if path.is_dir() else []
    folders += list(path.parents)[:4]
    return any((folder / MARKER_FILE).is_file() for folder in folders)


def data_kind(cells: pd.DataFrame | None = None, source: str | PathLike | None = None) -> str:
    """``"synthetic"``, ``"aics"`` (the real AICS dataset) or ``"other"`` (a lab's own cells).

    Synthetic: the table has the synthetic ground-truth columns, ``source`` lies in a
    synthetic dataset, or its first images do. AICS: ``source`` is an AICS root that is not
    synthetic.

    Examples
    --------
    >>> import pandas as pd
    >>> data_kind(pd.DataFrame({"synthetic_level": [0.3]})), data_kind(None, "cells.csv")
    ('synthetic', 'other')
    """
    if cells is not None and any(column in cells.columns for column in TRUTH_COLUMNS):
        return SYNTHETIC
    if is_synthetic_source(source):
        return SYNTHETIC
    if cells is not None and IMAGE_COLUMN in cells.columns:  # a table listing synthetic images
        files = [value for value in cells[IMAGE_COLUMN].head(SAMPLED_IMAGES)
                 if isinstance(value, (str, PathLike))]
        if files and all(is_synthetic_source(Path(file).parent) for file in files):
            return SYNTHETIC
    if source is not None and Path(source).is_dir() and any(
            Path(source).glob("2d_autocontrasted_single_cell_features_fish_*")):
        return AICS
    return OTHER
