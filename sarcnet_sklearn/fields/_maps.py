"""Per-pixel maps of a scored field, of the field's exact shape: scores, reasons, labels.

:func:`score_image` fills each cell with its score (NaN elsewhere), :func:`reason_image`
with its reason code (``0`` no cell, ``1`` scored, ``2``... the reasons of
``sarcnet_sklearn._reasons``); :func:`write_field_maps` writes them, and the label image,
as OME-TIFF files that keep the pixel size, so that napari and Fiji lay them on the field
pixel for pixel. The napari plugin shows the same two maps as layers.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._reasons import MAP_CODES, MAP_SCORED, REASONS, reason_of
from ._cut import check_labels, compact_labels

MAPS_FOLDER = "maps"
"""Sub-folder of a ``fields`` output folder holding each field's maps."""
MAP_KINDS = ("scores", "reasons", "labels")


def _lookup_image(labels: np.ndarray, table: pd.DataFrame, values: np.ndarray,
                  fill, dtype) -> np.ndarray:
    """An image of ``labels``' shape with ``values[i]`` on the pixels of ``table``'s i-th label."""
    ids, compact = compact_labels(check_labels(labels, np.shape(labels), "the label image"))
    lookup = np.full(len(ids) + 1, fill, dtype=dtype)
    wanted = np.array([int(label) for label in table["label"]], dtype=object)
    if len(wanted) and len(ids):
        positions = np.searchsorted(ids, table["label"].to_numpy(ids.dtype))
        present = positions < len(ids)
        present[present] = ids[positions[present]].astype(object) == wanted[present]
        lookup[positions[present] + 1] = np.asarray(values, dtype=dtype)[present]
    return lookup[compact]


def score_image(labels: np.ndarray, table: pd.DataFrame,
                column: str = "score_pred") -> np.ndarray:
    """float32 image: each cell of ``table`` filled with its ``column``, NaN elsewhere.

    Examples
    --------
    >>> labels = np.array([[0, 1], [2, 2]])
    >>> table = pd.DataFrame({"label": [1, 2], "score_pred": [1.5, np.nan]})
    >>> score_image(labels, table).tolist()
    [[nan, 1.5], [nan, nan]]
    """
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float32)
    return _lookup_image(labels, table, values, np.nan, np.float32)


def reason_codes_of(table: pd.DataFrame) -> np.ndarray:
    """Each row's reason-map value: 1 where scored, else its reason's (:data:`MAP_CODES`)."""
    scores = pd.to_numeric(table["score_pred"], errors="coerce").to_numpy(float)
    errors = table["error"] if "error" in table else [None] * len(table)
    codes = [MAP_SCORED if np.isfinite(score) else MAP_CODES[reason_of(error) or "other"]
             for score, error in zip(scores, errors, strict=True)]
    return np.array(codes, dtype=np.uint8)


def reason_image(labels: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """uint8 image: 0 outside cells, 1 on scored cells, a reason's code on the others.

    Examples
    --------
    >>> labels = np.array([[0, 1], [2, 2]])
    >>> table = pd.DataFrame({"label": [1, 2], "score_pred": [1.5, np.nan],
    ...                       "error": [None, "label 2 has a single pixel; it is not a cell"]})
    >>> reason_image(labels, table).tolist()
    [[0, 1], [3, 3]]
    """
    return _lookup_image(labels, table, reason_codes_of(table), 0, np.uint8)


def reason_legend() -> str:
    """What each value of a reason map means, one ``value: meaning`` per line.

    Examples
    --------
    >>> reason_legend().splitlines()[:3]
    ['0: no cell', '1: scored', "2: not scored: touches the field's border"]
    """
    lines = ["0: no cell", f"{MAP_SCORED}: scored"]
    lines += [f"{MAP_CODES[reason.code]}: not scored: {reason.title}" for reason in REASONS]
    return "\n".join(lines)


def _write_ome(path: Path, image: np.ndarray, pixel_size_um: float | None, name: str) -> None:
    import tifffile

    from ..outputs import write_atomically

    metadata = {"axes": "YX", "Name": name}
    if pixel_size_um is not None:
        metadata |= {"PhysicalSizeX": float(pixel_size_um), "PhysicalSizeXUnit": "\u00b5m",
                     "PhysicalSizeY": float(pixel_size_um), "PhysicalSizeYUnit": "\u00b5m"}
    per_cm = None if pixel_size_um is None else 1e4 / float(pixel_size_um)

    def write(target: str) -> None:
        tifffile.imwrite(target, image, ome=True, metadata=metadata, compression="zlib",
                         photometric="minisblack",
                         **({} if per_cm is None else {"resolution": (per_cm, per_cm),
                                                       "resolutionunit": "CENTIMETER"}))

    write_atomically(path, write)


def map_paths(folder: str | PathLike, stem: str) -> dict[str, Path]:
    """Where :func:`write_field_maps` writes a field's maps.

    Examples
    --------
    >>> sorted(p.name for p in map_paths("maps", "well_B4").values())
    ['well_B4_labels.ome.tif', 'well_B4_reasons.ome.tif', 'well_B4_scores.ome.tif']
    """
    folder = Path(folder)
    return {kind: folder / f"{stem}_{kind}.ome.tif" for kind in MAP_KINDS}


def write_field_maps(folder: str | PathLike, stem: str, labels: np.ndarray,
                     table: pd.DataFrame, pixel_size_um: float | None) -> dict[str, Path]:
    """Write a field's score map, reason map and label image as OME-TIFF (pixel size kept).

    Parameters
    ----------
    folder : path
        Where to write (created).
    stem : str
        The field's name in the file names: ``<stem>_scores.ome.tif`` (float32,
        NaN outside scored cells), ``<stem>_reasons.ome.tif`` (uint8, see
        :func:`reason_legend`) and ``<stem>_labels.ome.tif`` (the label image the
        cells were cut from).
    labels : ndarray
        The field's label image.
    table : DataFrame
        The field's rows of :func:`~sarcnet_sklearn.fields.score_fields`.
    pixel_size_um : float or None
        Micrometres per pixel, stored as OME ``PhysicalSizeX``/``Y`` (and the TIFF
        resolution tags).

    Returns
    -------
    paths : dict
        ``{"scores": path, "reasons": path, "labels": path}``.

    Examples
    --------
    >>> import tifffile
    >>> labels = np.array([[0, 1], [2, 2]], dtype=np.uint16)
    >>> table = pd.DataFrame({"label": [1, 2], "score_pred": [1.5, 4.0], "error": [None, None]})
    >>> paths = write_field_maps(".", "f", labels, table, 0.12)
    >>> tifffile.imread(paths["scores"]).tolist()
    [[nan, 1.5], [4.0, 4.0]]
    """
    paths = map_paths(folder, stem)
    labels = np.asarray(labels)
    _write_ome(paths["scores"], score_image(labels, table), pixel_size_um,
               "predicted score (NaN: no cell or not scored)")
    _write_ome(paths["reasons"], reason_image(labels, table), pixel_size_um,
               "reason map: " + "; ".join(reason_legend().splitlines()))
    _write_ome(paths["labels"], _ome_labels(labels), pixel_size_um, "cell labels")
    return paths


def _ome_labels(labels: np.ndarray) -> np.ndarray:
    """The label image in the smallest unsigned type OME-TIFF holds (ids up to 2**32 - 1 kept;
    larger ids, which Fiji cannot show either, as the compact ids 1..n in label order)."""
    labels = check_labels(labels, np.shape(labels), "the label image")
    top = int(labels.max()) if labels.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return labels.astype(dtype)
    return compact_labels(labels)[1].astype(np.uint32)
