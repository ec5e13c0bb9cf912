"""Tables of cells in: what a user may point the package at.

:func:`load_cells` turns any of the inputs a user may have (an AICS dataset
root, a CSV with an image-path column, a folder of images, image files) into
one DataFrame with absolute image paths; :data:`PATH_RULE` is how image paths
in a CSV are read and written (:func:`paths_relative_to`).
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import pandas as pd

from ._columns import IMAGE_COLUMN
from ._columns import PATH_RULE as PATH_RULE  # re-exported: the rule this module applies
from .images import PIL_SUFFIXES, TIFF_SUFFIXES
from .outputs import restore_formulas

IMAGE_SUFFIXES = TIFF_SUFFIXES | PIL_SUFFIXES


class SkippedEntriesWarning(UserWarning):
    """Entries of an input folder were not read as images; the message says which and why."""


def collect_images(
    inputs: Iterable[str | PathLike], *, recursive: bool = False
) -> list[Path]:
    """Expand folders into their image files (sorted); keep files as given.

    Every entry of a folder that is not read is reported in one
    :class:`SkippedEntriesWarning` with the reason (not an image file, a
    sub-folder without ``recursive``, a pipe or other special file, a
    dangling link).

    Parameters
    ----------
    inputs : iterable of paths
        Image files and folders.
    recursive : bool, default=False
        Also read the images in sub-folders (links to folders are not followed).

    Raises
    ------
    FileNotFoundError
        For an input that does not exist.
    ValueError
        When no image is found.

    Examples
    --------
    >>> from sarcnet_sklearn.tables import collect_images
    >>> collect_images(["no/such/folder"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such file or folder: no/such/folder
    """
    inputs = [Path(item) for item in inputs]
    paths: list[Path] = []
    skipped: list[str] = []
    for path in inputs:
        if path.is_dir():
            paths += _folder_images(path, recursive, skipped)
        elif path.exists():
            paths.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if skipped:
        shown = "; ".join(skipped[:50]) + (f"; ... ({len(skipped) - 50} more)"
                                            if len(skipped) > 50 else "")
        warnings.warn(f"skipped {len(skipped)} entries: {shown}", SkippedEntriesWarning,
                      stacklevel=2)
    if not paths:
        names = ", ".join(str(path) for path in inputs)
        raise ValueError(f"no {'/'.join(sorted(IMAGE_SUFFIXES))} images found in {names}")
    return paths


def _folder_images(folder: Path, recursive: bool, skipped: list[str]) -> list[Path]:
    images = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() and not entry.exists():
            skipped.append(f"{entry} (a dangling link)")
        elif entry.is_dir():
            if recursive and not entry.is_symlink():
                images += _folder_images(entry, recursive, skipped)
            else:
                skipped.append(f"{entry} (a folder{'' if recursive else '; use --recursive'}"
                               f"{', a link, not followed' if entry.is_symlink() else ''})")
        elif not entry.is_file():
            skipped.append(f"{entry} (not a regular file: a pipe, socket or device)")
        elif entry.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{entry} (not a {'/'.join(sorted(IMAGE_SUFFIXES))} image)")
        else:
            images.append(entry)
    return images


def is_aics_root(path: str | PathLike) -> bool:
    """Whether ``path`` looks like an AICS dataset root (as :func:`load_aics` reads)."""
    return any(Path(path).glob("2d_autocontrasted_single_cell_features_fish_*"))


def load_cells(
    sources: str | PathLike | Sequence[str | PathLike],
    *,
    image_column: str = IMAGE_COLUMN,
    recursive: bool = False,
) -> pd.DataFrame:
    """Read cells from an AICS root, a CSV table, a folder of images or image files.

    Parameters
    ----------
    sources : path or sequence of paths
        - an AICS dataset root (read with :func:`~sarcnet_sklearn.datasets.load_aics`);
        - a CSV file with an ``image_column`` (relative image paths are taken
          relative to the CSV's folder, see :data:`PATH_RULE`) plus any
          feature, score or ID columns; its column names must be unique;
        - image files and/or folders of images: one row per image (see
          :func:`collect_images`).
    image_column : str, default="image_path"
    recursive : bool, default=False
        Read the images in sub-folders of a folder too.

    Returns
    -------
    cells : DataFrame
        With absolute paths in ``image_column``; the CSV's other columns kept.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file or column at fault; also for an empty table.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.tables import load_cells
    >>> pd.DataFrame({"image_path": ["cells/a.tiff"], "score": [3.5]}).to_csv("my.csv")
    >>> table = load_cells("my.csv")  # the image path is now absolute
    >>> table["image_path"][0].endswith("a.tiff"), table["score"].tolist()
    (True, [3.5])
    """
    if isinstance(sources, (str, PathLike)):
        sources = [sources]
    sources = [Path(source) for source in sources]
    if len(sources) == 1 and sources[0].is_dir() and is_aics_root(sources[0]):
        from .datasets import load_aics

        return load_aics(sources[0])
    if len(sources) == 1 and sources[0].suffix.lower() == ".csv":
        return _read_cell_csv(sources[0], image_column)
    images = collect_images(sources, recursive=recursive)
    return pd.DataFrame({image_column: [str(path.resolve()) for path in images]})


def paths_relative_to(paths: Iterable[str | PathLike], table: str | PathLike) -> list[str]:
    """Image paths as a CSV at ``table`` should hold them (see :data:`PATH_RULE`).

    Relative to the CSV's folder, so that the CSV and its images can move
    together; absolute where no relative path exists (another drive).

    Examples
    --------
    >>> from sarcnet_sklearn.tables import paths_relative_to
    >>> paths_relative_to(["/data/cells/a.tiff"], "/data/out/features.csv")
    ['../cells/a.tiff']
    """
    folder = Path(os.path.abspath(table)).parent
    written = []
    for path in paths:
        absolute = os.path.abspath(path)
        try:
            written.append(Path(os.path.relpath(absolute, folder)).as_posix())
        except ValueError:
            written.append(absolute)
    return written


def read_table(path: str | PathLike) -> pd.DataFrame:
    """Read a CSV table, refusing (naming the file) one that is missing, empty or unreadable,
    or whose column names repeat.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.tables import read_table
    >>> pd.DataFrame({"well": ["B4"], "condition": ["DMSO"]}).to_csv("map.csv", index=False)
    >>> read_table("map.csv")["condition"].tolist()
    ['DMSO']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the CSV is empty") from exc
    except (UnicodeDecodeError, csv.Error, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: not a readable CSV table ({exc})") from exc
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: repeated column name(s) {repeated}; each column must have "
                         "a unique name")
    if table.empty:
        raise ValueError(f"{path}: the CSV has no rows")
    for column in table.columns:  # text as the package wrote it (outputs.neutralise_formulas)
        if pd.api.types.is_string_dtype(table[column]) or table[column].dtype == "object":
            table[column] = restore_formulas(table[column])
    return table


def _read_cell_csv(path: Path, image_column: str) -> pd.DataFrame:
    table = read_table(path)
    if image_column not in table.columns:
        raise ValueError(
            f"{path}: no {image_column!r} column (columns: {list(table.columns)})"
        )
    folder = path.resolve().parent

    def absolute(value) -> str | None:
        if pd.isna(value) or not str(value).strip():
            return None
        image = Path(str(value))
        return os.path.normpath(image if image.is_absolute() else folder / image)

    table[image_column] = [absolute(value) for value in table[image_column]]
    return table
