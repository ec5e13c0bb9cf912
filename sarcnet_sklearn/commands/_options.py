"""Options and checks that several commands share."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .._columns import PATH_RULE

DATA_HELP = (
    "an AICS dataset root, a CSV with an image_path column (plus feature columns; a "
    "Protocol 1 model measures its features from the images when they are absent), or a "
    f"folder of images. Paths: {PATH_RULE}"
)
"""Help text of a DATA argument that :func:`~sarcnet_sklearn.tables.load_cells` reads."""


def add_pixel_size_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--pixel-size UM``: every cell's pixel size, over a table column and file metadata.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_pixel_size_option(parser)
    >>> parser.parse_args(["--pixel-size", "0.24"]).pixel_size
    0.24
    """
    parser.add_argument(
        "--pixel-size", type=float, metavar="UM",
        help="micrometres per pixel of every cell, overriding a pixel_size column of the table "
             "and the image files' metadata (default: from those, else the model's with a "
             "warning; the pixel_size_assumed column marks those cells)",
    )


def add_test_time_augment_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--test-time-augment`` / ``--no-test-time-augment``: override the model file's choice.

    ``args.test_time_augment`` is True, False or None (as the model file says), for
    :meth:`~sarcnet_sklearn.SarcNetPipeline.with_test_time_augment`.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_test_time_augment_option(parser)
    >>> [parser.parse_args(argv).test_time_augment
    ...  for argv in ([], ["--test-time-augment"], ["--no-test-time-augment"])]
    [None, True, False]
    """
    parser.add_argument(
        "--test-time-augment", action=argparse.BooleanOptionalAction, default=None,
        help="score each cell as the mean over its image's 8 flips and quarter turns "
             "(orientation-independent), or with --no-test-time-augment with one forward pass "
             "(8x faster, the paper's recipe) (default: as the model file says)",
    )


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--overwrite``: let ``--out`` replace an existing file that is not a model file."""
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing --out file even when it is not a sarcnet-sklearn model "
             "(a model file is always replaced)",
    )


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1.

    Examples
    --------
    >>> positive("3")
    3
    >>> positive("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be at least 1, got 0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def pixel_size_um(text: str) -> float:
    """An argparse type: a plausible pixel size in micrometres (refused before any work).

    Examples
    --------
    >>> pixel_size_um("0.12")
    0.12
    >>> pixel_size_um("nan")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'nan' is not a plausible pixel size; give micrometres per pixel ...
    """
    from .._validation import check_pixel_size_um

    try:
        return check_pixel_size_um(text, "--pixel-size")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--pixel-size: ")) from None


def n_jobs(text: str) -> int:
    """An argparse type: workers in parallel, a whole number other than 0 (-1: all cores).

    Examples
    --------
    >>> n_jobs("-1"), n_jobs("2")
    (-1, 2)
    >>> n_jobs("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number other than 0 (-1: all cores), got 0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError(
            f"must be a whole number other than 0 (-1: all cores), got {value}")
    return value


def non_negative(text: str) -> float:
    """An argparse type: a finite number of at least 0.

    Examples
    --------
    >>> non_negative("2.5")
    2.5
    >>> non_negative("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number of at least 0, got 'nan'
    """
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of at least 0, got {text!r}")
    return value


def model_format(out: Path, requested: str | None) -> str:
    """The format a model file named ``out`` is written in: safe for a .zip or folder.

    Examples
    --------
    >>> from pathlib import Path
    >>> model_format(Path("model.zip"), None), model_format(Path("model.joblib"), None)
    ('safe', 'joblib')
    """
    implied = "safe" if out.suffix.lower() == ".zip" or out.is_dir() else "joblib"
    if requested is not None and requested != implied and out.suffix.lower() == ".zip":
        raise ValueError(f"--out {out}: a .zip is always the safe format; name a joblib model "
                         "e.g. model.joblib")
    return requested or implied


def command_line(args: argparse.Namespace) -> str | None:
    """The command line that ran, as :func:`~sarcnet_sklearn.commands.main` recorded it.

    Examples
    --------
    >>> command_line(argparse.Namespace(argv=["report", "m.zip", "my cells.csv"]))
    "sarcnet-sklearn report m.zip 'my cells.csv'"
    """
    argv = getattr(args, "argv", None)
    return None if argv is None else shlex.join(["sarcnet-sklearn", *argv])


TABLE_SUFFIX = ".csv"


def check_csv_output(path, option: str = "--out") -> None:
    """Refuse an output table not named ``.csv``: the table is comma-separated text, and a
    file named ``scores.json`` (or ``.xlsx``, ``.csv.gz``, ``.parquet``) that holds CSV
    would mislead whatever opens it.

    Examples
    --------
    >>> check_csv_output("scores.csv")
    >>> check_csv_output("scores.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --out scores.json: the table is written as CSV; name it scores.csv ...
    """
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() != TABLE_SUFFIX:
        name = path.name.split(".")[0] or path.stem
        raise ValueError(f"{option} {path}: the table is written as CSV; name it "
                         f"{name}{TABLE_SUFFIX} (a closing summary in JSON: --json)")
