"""Files out: written atomically, never over one of the inputs.

:func:`write_atomically` (and :func:`write_csv_atomically` for tables) write
so that a crash never leaves a half-written file; :func:`check_output` is the
one check, run before any work, that an output is not an input and can be
written.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from os import PathLike
from pathlib import Path

import pandas as pd


def write_atomically(path: str | PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(temporary_path)`` on a file beside ``path``, then rename it into place.

    The file gets the permissions a newly created file would get; on any error
    the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sarcnet_sklearn.outputs import write_atomically
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
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}; {path} is "
                          "unchanged (free some space or write elsewhere)") from exc
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def refuse_inputs(
    outputs: Iterable[str | PathLike], inputs: Iterable[str | PathLike]
) -> None:
    """Raise ValueError when one of ``outputs`` is one of ``inputs`` (the same file).

    The one "never overwrite what the user gave us" check: every writer and
    command runs it (through :func:`check_output` or directly, for the files
    an output folder will receive) before any work is done.

    Examples
    --------
    >>> from sarcnet_sklearn.outputs import refuse_inputs
    >>> refuse_inputs(["out/cells.csv"], inputs=["cells.csv"])
    >>> refuse_inputs(["out/cells.csv"], inputs=["out/cells.csv"])
    Traceback (most recent call last):
    ...
    ValueError: refusing to overwrite the input file out/cells.csv with an output
    """
    given = {Path(item).resolve(): item for item in inputs}
    for path in outputs:
        item = given.get(Path(path).resolve())
        if item is not None:
            raise ValueError(f"refusing to overwrite the input file {item} with an output")


def check_output(
    path: str | PathLike, *, inputs: Iterable[str | PathLike] = (), folder: bool = False
) -> Path:
    """Refuse, before any work is done, an output that is an input or cannot be written.

    Parameters
    ----------
    path : str or path-like
        The file (or, with ``folder=True``, the folder) a command will write.
    inputs : iterable of paths
        Files the output must not replace (data tables, images, the model).
    folder : bool, default=False
        Whether ``path`` is an output folder (an existing folder is then fine).

    Returns
    -------
    path : Path

    Raises
    ------
    ValueError
        Naming ``path``: it is one of ``inputs``, a folder where a file is
        expected (or the reverse), or its folder cannot be created or written.

    Examples
    --------
    >>> from sarcnet_sklearn.outputs import check_output
    >>> check_output("cells.csv", inputs=["cells.csv"])
    Traceback (most recent call last):
    ...
    ValueError: refusing to overwrite the input file cells.csv with an output
    """
    path = Path(path)
    resolved = path.resolve()
    refuse_inputs([path], inputs)
    if path.is_dir() and not folder:
        raise ValueError(f"output {path} is a folder; give a file name")
    if path.exists() and folder and not path.is_dir():
        raise ValueError(f"output {path} is a file; give a folder name")
    existing = resolved if folder and path.is_dir() else resolved.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot write {path}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {existing} is not writable ({exc.strerror})"
                         ) from exc
    return path


def write_csv_atomically(
    table: pd.DataFrame, output: str | PathLike, *, inputs: Iterable[str | PathLike] = ()
) -> Path:
    """Write ``table`` as CSV with :func:`write_atomically`, never over one of ``inputs``.

    Refuses (ValueError, see :func:`check_output`) to write over any of
    ``inputs``, onto a folder or where it cannot write.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> from sarcnet_sklearn.outputs import write_csv_atomically
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_csv_atomically(pd.DataFrame({"a": [1]}), folder / "t.csv").read_text()
    'a\\n1\\n'
    """
    output = check_output(output, inputs=inputs)
    table = neutralise_formulas(table)
    return write_atomically(output, lambda temporary: table.to_csv(temporary, index=False))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula."""


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with text cells that a spreadsheet would run as a formula made plain text.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return (a field named ``=HYPERLINK(...)``) gets a leading ``'``, as
    spreadsheet tools recommend; numbers (``-0.5``) are left as they are.
    :func:`restore_formulas` undoes it when the package reads the table back.

    Examples
    --------
    >>> neutralise_formulas(pd.DataFrame({"field": ["=1+2", "-0.5", "well"]}))["field"].tolist()
    ["'=1+2", '-0.5', 'well']
    """
    out = None
    for column in table.columns:
        if table[column].dtype != object and not pd.api.types.is_string_dtype(table[column]):
            continue
        values = table[column]
        risky = values.map(_is_formula)
        if risky.any():
            out = table.copy() if out is None else out
            out[column] = values.where(~risky, "'" + values.astype(str))
    return table if out is None else out


def restore_formulas(values: pd.Series) -> pd.Series:
    """Text cells as they were before :func:`neutralise_formulas`.

    Examples
    --------
    >>> restore_formulas(pd.Series(["'=1+2", "'plain", "x"])).tolist()
    ['=1+2', "'plain", 'x']
    """
    return values.map(lambda value: value[1:] if isinstance(value, str) and value[:1] == "'"
                      and value[1:2] != "" and value[1] in FORMULA_STARTS else value)


def _is_formula(value) -> bool:
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False
