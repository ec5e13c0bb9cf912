"""Which cells a model has seen: fingerprints of its training, validation and calibration cells.

A report on cells the model was trained or calibrated on overstates its accuracy. A fitted
SarcNet pipeline remembers a fingerprint of every cell it was fitted on (training and
validation cells, :meth:`~sarcnet_sklearn.SarcNetPipeline.fit`) and calibrated on
(:func:`~sarcnet_sklearn.intervals.calibrate`), in ``seen_cells_`` of its final step, which
both model-file formats store; :func:`count_seen` says how many of a table's cells are among
them. A cell's fingerprint is the first 16 hex digits of the SHA-1 of its image file's name
(without the folder, so a dataset moved elsewhere is still recognised), or of the image's
pixels for an image given as an array, or of its feature values without an image column.
"""

from __future__ import annotations

import hashlib
from os import PathLike
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from ._columns import IMAGE_COLUMN

SEEN_ATTRIBUTE = "seen_cells_"
"""Attribute of the model's final step: sorted fingerprints of the cells it has seen."""
MAX_SEEN_CELLS = 10**6


def cell_fingerprints(cells: pd.DataFrame, image_column: str = IMAGE_COLUMN) -> list[str]:
    """One fingerprint per row of ``cells`` (see the module docstring).

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn._fingerprint import cell_fingerprints
    >>> a, b = cell_fingerprints(pd.DataFrame({"image_path": ["/x/cell1.tiff", "/y/cell1.tiff"]}))
    >>> a == b, len(a)
    (True, 16)
    """
    if image_column in cells.columns:
        keys = [_image_key(value) for value in cells[image_column]]
    else:
        numbers = cells.select_dtypes("number").to_numpy(dtype=np.float64)
        keys = [b"features:" + np.round(row, 9).tobytes() for row in numbers]
    return [hashlib.sha1(key).hexdigest()[:16] for key in keys]


def _image_key(value) -> bytes:
    if isinstance(value, (str, PathLike)):
        return b"name:" + PurePosixPath(str(value).replace("\\", "/")).name.encode()
    if isinstance(value, np.ndarray):
        return b"pixels:" + hashlib.sha1(np.ascontiguousarray(value).tobytes()).digest()
    return b"value:" + repr(value).encode()


def _final_step(model):
    return model.steps[-1][1] if hasattr(model, "steps") else model


def seen_cells(model) -> set[str]:
    """The fingerprints ``model`` remembers (empty for a model that remembers none)."""
    return set(getattr(_final_step(model), SEEN_ATTRIBUTE, None) or ())


def remember_cells(model, *tables: pd.DataFrame | None, replace: bool = False) -> None:
    """Add the cells of ``tables`` to what ``model`` has seen (``replace``: instead of it).

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn import SarcNetRegressor
    >>> from sarcnet_sklearn._fingerprint import count_seen, remember_cells
    >>> net = SarcNetRegressor()
    >>> remember_cells(net, pd.DataFrame({"image_path": ["a.tiff", "b.tiff"]}))
    >>> count_seen(net, pd.DataFrame({"image_path": ["/elsewhere/a.tiff", "c.tiff"]}))
    1
    """
    final = _final_step(model)
    known = set() if replace else seen_cells(model)
    column = getattr(final, "image_column", IMAGE_COLUMN)
    for table in tables:
        if table is not None:
            known.update(cell_fingerprints(table, column))
    if len(known) > MAX_SEEN_CELLS:  # a model fitted on more cells remembers none
        known = set()
    setattr(final, SEEN_ATTRIBUTE, sorted(known))


def count_seen(model, cells: pd.DataFrame) -> int:
    """How many rows of ``cells`` are among the cells ``model`` was fitted or calibrated on."""
    return int(seen_mask(model, cells).sum())


def seen_mask(model, cells: pd.DataFrame) -> np.ndarray:
    """Per row of ``cells``: whether ``model`` was fitted or calibrated on that cell."""
    known = seen_cells(model)
    if not known:
        return np.zeros(len(cells), dtype=bool)
    column = getattr(_final_step(model), "image_column", IMAGE_COLUMN)
    return np.array([key in known for key in cell_fingerprints(cells, column)], dtype=bool)


def seen_note(model, cells: pd.DataFrame) -> str | None:
    """A sentence saying how many of ``cells`` the model has seen; None when it saw none.

    Examples
    --------
    >>> from sarcnet_sklearn._fingerprint import seen_note
    >>> print(seen_note(model, cells.iloc[40:45]))  # model: fitted on cells 0-44
    5 of the 5 cells given were among the model's own training, validation or calibration cells: their scores are no test of it
    """  # noqa: E501
    n_seen = count_seen(model, cells)
    if not n_seen:
        return None
    return (f"{n_seen} of the {len(cells)} cells given were among the model's own training, "
            "validation or calibration cells: their scores are no test of it")
