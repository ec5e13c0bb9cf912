"""Where each cell's pixel size comes from, and the pixel size a model was trained at.

One rule for every door (``predict``, ``fields``, ``explain``, ``report``, ``train``, the
napari widget, the Python API): a pixel size the user gives (``--pixel-size``,
``pixel_size=``) wins, then a :data:`~sarcnet_sklearn._columns.PIXEL_SIZE_COLUMN` of the
cell table (except in rows a :data:`PIXEL_SIZE_ASSUMED_COLUMN` marks: a value assumed by an
earlier run is not known), then the image file's own metadata (TIFF resolution tags, read as
the field reader reads them); a cell with none of these is measured at the model's pixel
size, with one warning per run, and is marked in :data:`PIXEL_SIZE_ASSUMED_COLUMN`.
"""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from ._columns import PIXEL_SIZE_COLUMN, PIXEL_SIZE_UM
from ._doors import option
from ._validation import check_pixel_size_um

PIXEL_SIZE_ASSUMED_COLUMN = "pixel_size_assumed"
"""True for a cell whose pixel size was not known (it was measured at the model's)."""

MODEL_PIXEL_SIZE_KEY = "pixel_size_um"
"""Key of a model file's training metadata holding the pixel size its features are measured
at (the Protocol 1 texture and the sarcomere measures are taken at it, whatever a cell's own
pixel size)."""


def model_pixel_size(metadata: dict | None = None) -> float:
    """The pixel size a model was trained at, from its file's metadata (0.12 when absent: the
    AICS images', which every model before this record was trained at).

    >>> model_pixel_size({"training": {"pixel_size_um": 0.24}}), model_pixel_size(None)
    (0.24, 0.12)
    """
    training = (metadata or {}).get("training") or {}
    value = training.get(MODEL_PIXEL_SIZE_KEY)
    if value is None:
        return PIXEL_SIZE_UM
    return check_pixel_size_um(value, "the model file's training pixel size")


_UM_PER_RESOLUTION_UNIT = {2: 25_400.0, 3: 10_000.0}  # TIFF ResolutionUnit: inch, centimetre
_MICRONS = {"um", "micron", "microns", "\u00b5m", "\u03bcm", "\\u00b5m"}


def resolution_pixel_size(tif) -> tuple[float, str] | None:
    """An open ``tifffile.TiffFile``'s pixel size (um) from its resolution tags and a phrase
    saying so, or None.

    Only a real unit counts: ImageJ's micrometres or the TIFF resolution unit (inch,
    centimetre); tifffile's default resolution of 1 without a unit means "unknown". The one
    rule for plain TIFFs, used by the field reader and for single-cell files.
    """
    page = tif.pages[0]
    resolution = page.tags.get("XResolution")
    if resolution is None:
        return None
    numerator, denominator = resolution.value
    if not numerator or not denominator:
        return None
    per_unit = denominator / numerator
    imagej_unit = (tif.imagej_metadata or {}).get("unit")
    if imagej_unit is not None and str(imagej_unit).strip().lower() in _MICRONS:
        return per_unit, "the pixel size in its ImageJ metadata (um)"
    unit = page.tags.get("ResolutionUnit")
    factor = _UM_PER_RESOLUTION_UNIT.get(int(unit.value) if unit is not None else 1)
    if factor is None:
        return None
    return per_unit * factor, (f"the pixel size from its TIFF resolution tags "
                               f"({numerator}/{denominator} pixels per "
                               f"{'inch' if factor > 10_000 else 'cm'})")


def tiff_pixel_size(source) -> float | None:
    """A TIFF file's pixel size (um) from its resolution tags (:func:`resolution_pixel_size`);
    None for other files, no unit or no tags.

    >>> tiff_pixel_size("not_a_file.tiff") is None
    True
    """
    if not isinstance(source, (str, PathLike)):
        return None
    path = Path(source)
    try:  # a name the system refuses is reported where the image is read
        if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
            return None
    except OSError:
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            found = resolution_pixel_size(tif)
    except Exception:  # an unreadable file is reported where it is read
        return None
    return None if found is None else found[0]


class PixelSizeRule:
    """The rule of this module for the cells of one table, applied row by row.

    The user's pixel size and the table's column are checked when the rule is made (before
    any image is read); the metadata of each image comes from the open that decodes it
    (:meth:`resolve`), so no file is opened for its pixel size alone. :meth:`finish` gives
    the warnings of the run: metadata that disagrees with the user's value, and cells whose
    pixel size was assumed.

    Parameters
    ----------
    cells : DataFrame
    pixel_size : float, optional
        Given by the user: used for every cell; files whose metadata says otherwise are
        named in a warning.
    assumed : float, default=0.12
        For cells with no pixel size at all (the model's pixel size).
    source : str, optional
        How ``pixel_size`` was given, for messages (default: the option's name at the
        caller's door, e.g. ``--pixel-size`` on the command line).

    Examples
    --------
    >>> import pandas as pd
    >>> rule = PixelSizeRule(pd.DataFrame({"pixel_size": [0.24, None, None]}))
    >>> rule.resolve(0, 0.5), rule.resolve(1, 0.5), rule.resolve(2, None)
    (0.24, 0.5, 0.12)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     rule.finish()
    >>> rule.sizes.tolist(), rule.assumed.tolist(), len(caught)
    ([0.24, 0.5, 0.12], [False, False, True], 1)
    """

    def __init__(self, cells: pd.DataFrame, *, pixel_size: float | None = None,
                 assumed: float = PIXEL_SIZE_UM, source: str | None = None) -> None:
        n = len(cells)
        self.source = source or option("pixel_size")
        self.default = check_pixel_size_um(assumed, "the model's pixel size")
        self.given = None if pixel_size is None else check_pixel_size_um(pixel_size,
                                                                         self.source)
        self.sizes = np.full(n, np.nan)
        self.assumed = np.zeros(n, bool)
        self.disagree: dict[str, float] = {}
        if self.given is not None:
            self.sizes[:] = self.given
        elif PIXEL_SIZE_COLUMN in cells.columns:
            column = np.array(pd.to_numeric(cells[PIXEL_SIZE_COLUMN], errors="coerce"),
                              dtype=float)
            column[assumed_rows(cells)] = np.nan  # a value assumed before is unknown
            for row in np.flatnonzero(np.isfinite(column)):
                self.sizes[row] = check_pixel_size_um(
                    column[row], f"column {PIXEL_SIZE_COLUMN!r}, row {cells.index[row]!r}")
        self.known = np.isfinite(self.sizes)

    def needs_metadata(self, row: int) -> bool:
        """Whether ``row``'s file metadata matters (for its size, or to check the user's)."""
        return self.given is not None or not self.known[row]

    def resolve(self, row: int, metadata: float | None, name: str = "the image") -> float:
        """Row ``row``'s pixel size, given its file's metadata (um, or None); records it.

        Raises
        ------
        ValueError
            When the metadata is implausible, naming ``name`` (the row's file).
        """
        if metadata is not None and self.needs_metadata(row):
            metadata = check_pixel_size_um(metadata, f"{name}'s metadata")
            if self.given is not None:
                if abs(metadata - self.given) > 0.01 * self.given:
                    self.disagree.setdefault(name, metadata)
            else:
                self.sizes[row] = metadata
        if not np.isfinite(self.sizes[row]):
            self.sizes[row], self.assumed[row] = self.default, True
        return float(self.sizes[row])

    def finish(self, failed: np.ndarray | None = None) -> None:
        """Assume the pixel size of rows never resolved, except ``failed`` ones (their file
        was never read: NaN), and warn once for the run."""
        unknown = ~np.isfinite(self.sizes)
        if failed is not None:
            unknown &= ~np.asarray(failed, bool)
        self.sizes[unknown], self.assumed[unknown] = self.default, True
        if self.disagree:
            first, meta = next(iter(self.disagree.items()))
            warnings.warn(f"{self.source} {self.given:g} um/px used for every cell; "
                          f"{len(self.disagree)} image file(s) say otherwise in their "
                          f"metadata, e.g. {first}: {meta:g} um/px", UserWarning, stacklevel=3)
        if self.assumed.any():
            # one text whatever the counts, so that Python shows it once per run
            warnings.warn(f"cells without a pixel size (no {PIXEL_SIZE_COLUMN!r} column, none "
                          f"in their files' metadata) are measured as if at {self.default:g} "
                          f"um/px, the model's; give {option('pixel_size')} if that is wrong "
                          f"(column {PIXEL_SIZE_ASSUMED_COLUMN!r} marks them)", UserWarning,
                          stacklevel=3)


def assumed_rows(cells: pd.DataFrame) -> np.ndarray:
    """Which rows :data:`PIXEL_SIZE_ASSUMED_COLUMN` marks, whether the table holds booleans or
    the text a CSV gives back (all False without the column).

    >>> assumed_rows(pd.DataFrame({"pixel_size_assumed": ["True", "False", None, 1]})).tolist()
    [True, False, False, True]
    """
    if PIXEL_SIZE_ASSUMED_COLUMN not in cells.columns:
        return np.zeros(len(cells), bool)
    return cells[PIXEL_SIZE_ASSUMED_COLUMN].astype(str).str.lower().isin(
        ["true", "1", "1.0"]).to_numpy()


def fields_without_pixel_size_message(cells: pd.DataFrame) -> str | None:
    """The one warning of a run for the fields whose pixel size was assumed, from their
    cells' rows (``field``, :data:`PIXEL_SIZE_ASSUMED_COLUMN` and the ``pixel_size`` they
    were given), or None when none was.

    >>> cells = pd.DataFrame({"field": ["a.tif", "a.tif", "b.tif"], "pixel_size": 0.12,
    ...                       "pixel_size_assumed": [True, True, False]})
    >>> print(fields_without_pixel_size_message(cells))
    1 of 2 field(s) had no pixel size in their metadata (e.g. a.tif): their 2 cell(s) were \
measured as if at 0.12 um/px, the model's, and are marked in the column 'pixel_size_assumed'; \
give pixel_size= if that is wrong
    """
    assumed = assumed_rows(cells)
    if not assumed.any():
        return None
    fields = pd.unique(cells.loc[assumed, "field"])
    pixel_size = float(cells.loc[assumed, PIXEL_SIZE_COLUMN].iloc[0])
    return (f"{len(fields)} of {cells['field'].nunique()} field(s) had no pixel size in their "
            f"metadata (e.g. {fields[0]}): their {int(assumed.sum())} cell(s) were measured as "
            f"if at {pixel_size:g} um/px, the model's, and are marked in the column "
            f"{PIXEL_SIZE_ASSUMED_COLUMN!r}; give {option('pixel_size')} if that is wrong")


def cell_pixel_sizes(
    cells: pd.DataFrame,
    image_column: str | None,
    *,
    pixel_size: float | None = None,
    assumed: float = PIXEL_SIZE_UM,
    source: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's pixel size and whether it was assumed, by :class:`PixelSizeRule`, opening
    each image file for its metadata (where the images are decoded anyway, the decode's open
    reads it instead: :func:`~sarcnet_sklearn.deploy.check_cells`).

    Returns
    -------
    sizes : ndarray of float
    assumed : ndarray of bool

    Examples
    --------
    >>> import pandas as pd
    >>> cells = pd.DataFrame({"image_path": ["a.tif", "b.tif"], "pixel_size": [0.24, None]})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     sizes, assumed = cell_pixel_sizes(cells, "image_path")
    >>> sizes.tolist(), assumed.tolist(), len(caught)
    ([0.24, 0.12], [False, True], 1)
    """
    rule = PixelSizeRule(cells, pixel_size=pixel_size, assumed=assumed, source=source)
    files = cells[image_column].tolist() if image_column in cells.columns else [None] * len(cells)
    for row, file in enumerate(files):
        if rule.needs_metadata(row):
            rule.resolve(row, tiff_pixel_size(file), str(file))
    rule.finish()
    return rule.sizes, rule.assumed


def write_tiff_with_pixel_size(path, pages: np.ndarray, pixel_size_um: float) -> None:
    """Write ``pages`` as a zlib-compressed TIFF whose resolution tags give the pixel size
    (pixels per centimetre: a unit every TIFF reader, and the field reader, knows)."""
    import tifffile

    per_cm = 1e4 / check_pixel_size_um(pixel_size_um, "pixel size")
    tifffile.imwrite(path, pages, compression="zlib", photometric="minisblack",
                     resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")


def pixel_size_of_model(model) -> float:
    """The pixel size a fitted model (as :func:`~sarcnet_sklearn.deploy.load_model` or
    :func:`~sarcnet_sklearn.deploy.train_model` returns it) was trained at: its
    ``pixel_size_um_`` attribute, else 0.12."""
    value = getattr(model, "pixel_size_um_", None)
    return PIXEL_SIZE_UM if value is None else check_pixel_size_um(value, "the model's pixel size")
