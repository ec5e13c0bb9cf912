"""Reading cell images and turning them into the compact uint8 cache the model trains on.

A cell image is one plane of a file: a page of a multi-page (or OME) TIFF, or a
colour channel of a PNG/JPEG; or an image already in memory (a 2-D numpy
array, or a ``(pages, height, width)`` stack), so that a table of cells may
hold arrays instead of paths. :func:`read_plane` reads it as stored;
:func:`to_uint8` and :func:`resize_plane` bring it to the model's input size; and
:func:`load_image_stack` does both for many files at once, in threads, with a
progress bar, into one ``(n_cells, size, size)`` uint8 array.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ._console import progress_bar
from ._pixel_size import resolution_pixel_size

TIFF_SUFFIXES = {".tif", ".tiff"}
PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


class ImageReadError(ValueError):
    """A cell image is missing, unreadable or lacks the requested plane."""


ImageSource = str | PathLike | np.ndarray
"""A cell image: a file, or an array in memory."""


def as_image_source(value) -> str | np.ndarray:
    """A table cell as an image source: arrays kept as they are, anything else as a path string.

    Examples
    --------
    >>> as_image_source(Path("a.tiff")), as_image_source(np.zeros((2, 2))).shape
    ('a.tiff', (2, 2))
    """
    return value if isinstance(value, np.ndarray) else str(value)


def source_name(source) -> str:
    """How messages name an image source: its path, or the shape of an in-memory image.

    Examples
    --------
    >>> source_name(np.zeros((3, 4), np.uint8))
    'in-memory image (3x4 uint8)'
    """
    if isinstance(source, np.ndarray):
        return f"in-memory image ({'x'.join(map(str, source.shape))} {source.dtype})"
    return str(source)


def read_plane(path: ImageSource, page: int = 0) -> np.ndarray:
    """Read one 2-D plane of an image file (or in-memory image), as stored.

    Parameters
    ----------
    path : str, path-like or ndarray
        A TIFF (multi-page, OME, any compression tifffile decodes) or a
        PNG/JPEG/BMP file; or an array: a 2-D array is the plane itself
        (whatever ``page``), a 3-D array a stack of pages along its first axis.
    page : int, default=0
        Page of a multi-page TIFF; for a single-page file with several channels
        (RGB PNG, a ``(C, Y, X)`` or ``(Y, X, C)`` TIFF page), the channel.

    Returns
    -------
    plane : ndarray of shape (height, width)
        The plane in its stored dtype.

    Raises
    ------
    ImageReadError
        When the file is missing, not a regular file, cannot be decoded, or
        has no plane ``page``; or when ``page`` is ambiguous: a TIFF whose
        planes run along two axes (channels and Z, pages of several channels)
        or an OME-TIFF with several scenes. The message names the file (and
        its axes).

    Examples
    --------
    >>> from sarcnet_sklearn.images import read_plane
    >>> # cells: AICS single-cell files (page 1: alpha-actinin-2), as load_aics lists them
    >>> structure = read_plane(cells["image_path"].iloc[0], 1)
    >>> structure.ndim, structure.dtype
    (2, dtype('uint8'))
    >>> read_plane(np.zeros((2, 5, 6)), 1).shape
    (5, 6)
    """
    with open_image(path) as plane:
        return plane(page)


@contextmanager
def open_image(path: ImageSource) -> Iterator[Callable[[int], np.ndarray]]:
    """Open an image file once and read any of its planes from that one open.

    Inside the ``with`` block, ``plane(page)`` gives plane ``page`` as
    :func:`read_plane` does (same checks, same errors), so a cell's structure
    and mask pages come from one open of its file; ``plane.pixel_size_um()``
    gives its pixel size from the same open (TIFF resolution tags), or None.

    Raises
    ------
    ImageReadError
        On entering, when the file is missing or cannot be opened; from
        ``plane(page)``, when that plane cannot be read.

    Examples
    --------
    >>> from sarcnet_sklearn.images import open_image
    >>> with open_image(cells["image_path"].iloc[0]) as plane:  # one open, two pages
    ...     structure, mask = plane(1), plane(9)
    >>> structure.shape == mask.shape
    True
    """
    if isinstance(path, np.ndarray):
        array = path
        yield _with_pixel_size(lambda page: _array_plane(array, page))
        return
    path = Path(path)
    try:
        if not path.exists():
            raise ImageReadError(f"image file not found: {path}")
        if not path.is_file():
            raise ImageReadError(f"{path} is not a regular file (a folder, pipe or device)")
    except OSError as exc:  # a name too long, a folder without permission...
        raise ImageReadError(f"cannot open image {path}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES | PIL_SUFFIXES:
        raise ImageReadError(
            f"{path}: unsupported image type {suffix!r} "
            f"(expected one of {sorted(TIFF_SUFFIXES | PIL_SUFFIXES)})"
        )
    if suffix in PIL_SUFFIXES:
        with _decoding(path):
            with Image.open(path) as image:
                array = np.asarray(image)
        yield _with_pixel_size(lambda page: _as_plane(array, page, path))
        return
    with _decoding(path):
        tif = tifffile.TiffFile(path)
    try:
        with _decoding(path):
            _check_unambiguous(tif, path)
            n_pages = len(tif.pages)
        cache = {}

        def plane(page: int) -> np.ndarray:
            with _decoding(path):
                if n_pages > 1:
                    if not 0 <= page < n_pages:
                        raise ImageReadError(
                            f"{path}: has {n_pages} pages, page {page} was requested"
                        )
                    return _as_plane(tif.pages[page].asarray(), 0, path)
                if "single" not in cache:  # one page (of channels, maybe): decoded once
                    single = tif.pages[0]
                    array = single.asarray()
                    channel_axis = None
                    if "S" in single.axes and array.ndim == len(single.axes):
                        channel_axis = single.axes.index("S")
                    cache["single"] = (array, channel_axis)
                array, channel_axis = cache["single"]
                return _as_plane(array, page, path, channel_axis)

        def pixel_size_um() -> float | None:
            try:
                found = resolution_pixel_size(tif)
            except Exception:  # unreadable tags: no pixel size, as for a file without them
                return None
            return None if found is None else found[0]

        yield _with_pixel_size(plane, pixel_size_um)
    finally:
        tif.close()


def _with_pixel_size(plane: Callable[[int], np.ndarray],
                     pixel_size_um: Callable[[], float | None] = lambda: None
                     ) -> Callable[[int], np.ndarray]:
    """``plane`` with a ``pixel_size_um()`` attribute: the open file's pixel size from its
    metadata (TIFF resolution tags), or None."""
    plane.pixel_size_um = pixel_size_um
    return plane


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Errors of the decoders (tifffile and PIL raise many types on corrupt files) as
    ImageReadError naming the file."""
    try:
        yield
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def _array_plane(array: np.ndarray, page: int) -> np.ndarray:
    name = source_name(array)
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        if not 0 <= page < array.shape[0]:
            raise ImageReadError(
                f"{name}: has {array.shape[0]} pages, page {page} was requested"
            )
        return array[page]
    raise ImageReadError(f"{name}: expected a 2-D plane or a stack of pages")


def _check_unambiguous(tif: tifffile.TiffFile, path: Path) -> None:
    """Raise when a page or channel number does not name one plane of this TIFF."""
    series = tif.series
    if tif.is_ome and len(series) > 1:
        raise ImageReadError(
            f"{path}: holds {len(series)} scenes (axes "
            f"{', '.join(f'{s.axes} {s.shape}' for s in series[:4])}); a page number is "
            "ambiguous: save the scene to score as its own file (or read it with "
            "sarcnet_sklearn.fields.read_field(..., scene=...))"
        )
    if not series:
        return
    first = series[0]
    stacked = {axis: size for axis, size in zip(first.axes, first.shape, strict=True)
               if axis not in "YX" and size > 1}
    page_samples = len(tif.pages) > 1 and tif.pages[0].ndim > 2
    if len(stacked) > 1 or page_samples:
        layout = ", ".join(f"{axis}={size}" for axis, size in stacked.items())
        raise ImageReadError(
            f"{path}: its planes run along several axes ({first.axes} {first.shape}: "
            f"{layout or 'pages of several channels'}), so a page number is ambiguous: save "
            "the plane to score as a single-plane file or a stack with one plane per page"
        )


def _as_plane(
    array: np.ndarray, page: int, path: Path, channel_axis: int | None = None
) -> np.ndarray:
    if channel_axis is not None and array.ndim == 3:
        squeezed = [axis for axis in range(3) if array.shape[axis] == 1]
        channel_axis -= sum(axis < channel_axis for axis in squeezed)
    array = np.squeeze(array)
    if array.ndim == 2:
        if page != 0:
            raise ImageReadError(f"{path}: has a single plane, plane {page} was requested")
        return array
    if array.ndim == 3:
        if channel_axis is None:
            channel_axis = 2 if array.shape[2] <= 4 else 0
        n_channels = array.shape[channel_axis]
        if not 0 <= page < n_channels:
            raise ImageReadError(
                f"{path}: has {n_channels} channels, channel {page} was requested"
            )
        return np.take(array, page, axis=channel_axis)
    raise ImageReadError(f"{path}: expected a 2-D image plane, found shape {array.shape}")


def to_uint8(plane: np.ndarray) -> np.ndarray:
    """Convert a plane to uint8 the way the model expects it.

    8-bit planes are kept as they are (the AICS images are already
    auto-contrasted to 8 bits). Planes of any other dtype (16-bit, float, bool)
    are auto-contrasted: their minimum maps to 0 and their maximum to 255; a
    constant plane becomes all zeros. Non-finite values are an error.
    """
    if plane.dtype == np.uint8:
        return plane
    values = plane.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("image plane contains NaN or infinite values")
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros(plane.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def resize_plane(plane: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 plane to ``size x size`` with antialiased bilinear interpolation."""
    if plane.shape == (size, size):
        return plane
    return np.asarray(Image.fromarray(plane).resize((size, size), Image.Resampling.BILINEAR))


def read_planes(sources, page: int) -> np.ndarray:
    """Plane ``page`` of each source (:func:`read_plane`), as stored, in a 1-D object array.

    A table column of in-memory images: put it in the image column of a cell
    table, and predicting, explaining and drawing those cells reads no file again.

    Examples
    --------
    >>> [plane.shape for plane in read_planes([np.zeros((2, 5, 6)), np.ones((3, 4))], 1)]
    [(5, 6), (3, 4)]
    """
    sources = list(sources)
    planes = np.empty(len(sources), dtype=object)
    planes[:] = [read_plane(as_image_source(source), page) for source in sources]
    return planes


def model_plane(plane: np.ndarray, size: int, source: ImageSource | None = None) -> np.ndarray:
    """A plane as the model reads it: uint8 (:func:`to_uint8`), ``size x size``.

    A plane that already is (e.g. one decoded before) is returned as it is.

    Raises
    ------
    ImageReadError
        For an empty plane or one with non-finite values, naming ``source``.

    Examples
    --------
    >>> model_plane(np.arange(12.0).reshape(3, 4), 2).dtype
    dtype('uint8')
    """
    name = source_name(plane if source is None else source)
    if plane.size == 0:
        raise ImageReadError(f"{name}: image plane is empty")
    try:
        return resize_plane(to_uint8(plane), size)
    except ValueError as exc:
        raise ImageReadError(f"{name}: {exc}") from exc


def load_cell_image(path: ImageSource, page: int, size: int) -> np.ndarray:
    """Read plane ``page`` of ``path`` and return it as a ``size x size`` uint8 array."""
    return model_plane(read_plane(path, page), size, path)


def load_image_stack(
    paths: Sequence[ImageSource],
    page: int,
    size: int,
    *,
    n_jobs: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Decode many cell images once into a compact ``(n, size, size)`` uint8 array.

    Parameters
    ----------
    paths : sequence of str, path-like or ndarray
        One image file (or in-memory image, see :func:`read_plane`) per cell.
    page : int
        Page (or channel) to read, see :func:`read_plane`.
    size : int
        Side of the square the planes are resized to.
    n_jobs : int, optional
        Reader threads; default: the number of CPUs (at most 8).
    progress : bool, optional
        Show a progress bar; default: only for more than 200 images.

    Returns
    -------
    stack : ndarray of shape (n, size, size), dtype uint8

    Raises
    ------
    ImageReadError
        For the first file that cannot be read, naming it.

    Examples
    --------
    >>> from sarcnet_sklearn.images import load_image_stack
    >>> # cells: AICS single-cell files, as load_aics lists them
    >>> load_image_stack(cells["image_path"].iloc[:2], page=1, size=96).shape
    (2, 96, 96)
    """
    paths = list(paths)
    stack = np.empty((len(paths), size, size), dtype=np.uint8)
    if not paths:
        return stack
    if n_jobs is None:
        n_jobs = min(8, os.cpu_count() or 1)
    if progress is None:
        progress = len(paths) > 200

    def load(i: int) -> None:
        stack[i] = load_cell_image(paths[i], page, size)

    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        jobs = pool.map(load, range(len(paths)))
        for _ in progress_bar(jobs, total=len(paths), desc="reading images", show=progress):
            pass
    return stack
