"""Tables of cells in and out: what the command-line tools read and write.

:func:`load_cells` turns any of the inputs a user may have (an AICS dataset
root, a CSV with an image-path column, a folder of images, image files) into
one DataFrame with absolute image paths; :func:`write_csv_atomically` writes a
result table so that a crash never leaves a half-written file, and never over
one of the inputs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from pathlib import Path

import pandas as pd

from ._columns import IMAGE_COLUMN
from .images import PIL_SUFFIXES, TIFF_SUFFIXES

IMAGE_SUFFIXES = TIFF_SUFFIXES | PIL_SUFFIXES


def collect_images(inputs: Iterable[str | PathLike]) -> list[Path]:
    """Expand folders into their image files (sorted, not recursive); keep files as given.

    Raises
    ------
    FileNotFoundError
        For an input that does not exist.
    ValueError
        When no image is found.

    Examples
    --------
    >>> from sarcnet_sklearn.io import collect_images
    >>> collect_images(["no/such/folder"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such file or folder: no/such/folder
    """
    inputs = [Path(item) for item in inputs]
    paths: list[Path] = []
    for path in inputs:
        if path.is_dir():
            paths += sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.exists():
            paths.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not paths:
        names = ", ".join(str(path) for path in inputs)
        raise ValueError(f"no {'/'.join(sorted(IMAGE_SUFFIXES))} images found in {names}")
    return paths


def is_aics_root(path: str | PathLike) -> bool:
    """Whether ``path`` looks like an AICS dataset root (as :func:`load_aics` reads)."""
    return any(Path(path).glob("2d_autocontrasted_single_cell_features_fish_*"))


def load_cells(
    sources: str | PathLike | Sequence[str | PathLike], *, image_column: str = IMAGE_COLUMN
) -> pd.DataFrame:
    """Read cells from an AICS root, a CSV table, a folder of images or image files.

    Parameters
    ----------
    sources : path or sequence of paths
        - an AICS dataset root (read with :func:`~sarcnet_sklearn.datasets.load_aics`);
        - a CSV file with an ``image_column`` (relative image paths are taken
          relative to the CSV's folder) plus any feature, score or ID columns;
        - image files and/or folders of images: one row per image.
    image_column : str, default="image_path"

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
    >>> from sarcnet_sklearn.io import load_cells
    >>> cells = load_cells("my_cells.csv")  # doctest: +SKIP
    """
    if isinstance(sources, (str, PathLike)):
        sources = [sources]
    sources = [Path(source) for source in sources]
    if len(sources) == 1 and sources[0].is_dir() and is_aics_root(sources[0]):
        from .datasets import load_aics

        return load_aics(sources[0])
    if len(sources) == 1 and sources[0].suffix.lower() == ".csv":
        return _read_cell_csv(sources[0], image_column)
    images = collect_images(sources)
    return pd.DataFrame({image_column: [str(path.resolve()) for path in images]})


def _read_cell_csv(path: Path, image_column: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the CSV is empty") from exc
    if image_column not in table.columns:
        raise ValueError(
            f"{path}: no {image_column!r} column (columns: {list(table.columns)})"
        )
    if table.empty:
        raise ValueError(f"{path}: the CSV has no rows")
    folder = path.resolve().parent

    def absolute(value) -> str | None:
        if pd.isna(value) or not str(value).strip():
            return None
        image = Path(str(value))
        return str(image if image.is_absolute() else folder / image)

    table[image_column] = [absolute(value) for value in table[image_column]]
    return table


def write_atomically(path: str | PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(temporary_path)`` on a file beside ``path``, then rename it into place.

    The file gets the permissions a newly created file would get; on any error
    the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sarcnet_sklearn.io import write_atomically
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> write_atomically(target, lambda tmp: pathlib.Path(tmp).write_text("ok")).read_text()
    'ok'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_csv_atomically(
    table: pd.DataFrame, output: str | PathLike, *, inputs: Iterable[str | PathLike] = ()
) -> Path:
    """Write ``table`` as CSV with :func:`write_atomically`, never over one of ``inputs``.

    Refuses (ValueError) to write over any of ``inputs`` or onto a folder.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> from sarcnet_sklearn.io import write_csv_atomically
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_csv_atomically(pd.DataFrame({"a": [1]}), folder / "t.csv").read_text()
    'a\\n1\\n'
    """
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a folder; give a .csv file name")
    if output.resolve() in {Path(item).resolve() for item in inputs}:
        raise ValueError(f"refusing to overwrite the input file {output}")
    return write_atomically(output, lambda temporary: table.to_csv(temporary, index=False))
