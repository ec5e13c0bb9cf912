"""Single-cell TIFFs in the AICS layout, so that cut cells can be annotated and trained on."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import tifffile

from .._columns import CELL_MASK_PAGE, N_AICS_PAGES, STRUCTURE_PAGE
from .._pixel_size import write_tiff_with_pixel_size
from ..outputs import write_atomically

BACKGROUND_MASK_PAGE = 8


def write_cell_tiff(path: str | PathLike, image: np.ndarray, mask: np.ndarray,
                    pixel_size_um: float | None = None) -> Path:
    """Write one cut cell as a 10-page uint8 TIFF laid out as the AICS single-cell files.

    Page 1 holds the structure (``image``), page 9 the cell mask (255 inside),
    page 8 its complement (the background mask); the other pages (bright
    field, FISH, nuclei, their segmentations) are blank. The package's readers
    (``train``, ``predict``, ``features``) read pages 1 and 9 by default. With
    ``pixel_size_um`` the file's resolution tags carry the pixel size (pixels per
    centimetre), which ``predict`` and ``train`` read back.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib, tifffile
    >>> mask = np.zeros((6, 8), bool); mask[1:5, 2:7] = True
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cell1.tiff"
    >>> pages = tifffile.imread(write_cell_tiff(path, mask * np.uint8(200), mask))
    >>> pages.shape, pages[1].max(), pages[9].max()
    ((10, 6, 8), np.uint8(200), np.uint8(255))
    """
    image, mask = np.asarray(image), np.asarray(mask, dtype=bool)
    if image.dtype != np.uint8 or image.shape != mask.shape or image.ndim != 2:
        raise ValueError("expected a 2-D uint8 image and a mask of the same shape")
    pages = np.zeros((N_AICS_PAGES, *image.shape), dtype=np.uint8)
    pages[STRUCTURE_PAGE] = image
    pages[CELL_MASK_PAGE] = mask * np.uint8(255)
    pages[BACKGROUND_MASK_PAGE] = ~mask * np.uint8(255)
    if pixel_size_um is None:
        return write_atomically(path, lambda temporary: tifffile.imwrite(
            temporary, pages, compression="zlib", photometric="minisblack"))
    return write_atomically(path, lambda temporary: write_tiff_with_pixel_size(
        temporary, pages, pixel_size_um))
