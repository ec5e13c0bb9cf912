"""Label images for those without one: a classical scikit-image recipe, or cellpose.

``classical`` (:func:`segment_classical`), for an alpha-actinin-2 field of hiPSC-CMs, every
length in micrometres (the field's pixel size converts them):

1. smooth the field (Gaussian, sigma :data:`SMOOTH_UM`) so that the striations of a cell
   merge into one bright region;
2. foreground: above Otsu's threshold of the smoothed field, holes filled, regions smaller
   than :data:`MIN_CELL_AREA_UM2` dropped;
3. one seed per local maximum of the (smoothed) distance to the background, at least
   :data:`SEED_DISTANCE_UM` apart;
4. watershed of the smoothed field's gradient (Sobel) from the seeds, inside the
   foreground; cells smaller than :data:`MIN_CELL_AREA_UM2` dropped, labels renumbered.

Its limits: it separates touching cells only where their brightness differs or the
foreground narrows between them; a long cell may be split in two, two touching cells of the
same brightness merged; dim cells below Otsu's threshold are missed; the seed distance
assumes cells tens of micrometres across. On synthetic fields (``make_synthetic_field``, 5
fields, 44 cells; ``benchmarks/bench_segment.py``) 73 % of the cells were recovered with an
intersection over union above 0.5 (median 0.72). Check the labels it saves, correct them
(napari's labels layer), and score again: the corrected file is used as it is.

``cellpose`` (optional: ``pip install 'sarcnet-sklearn[cellpose]'``) runs cellpose's
generalist model (Cellpose-SAM in cellpose 4, ``cyto3`` in cellpose 3); cellpose fetches
its weights itself the first time, so offline it fails with a message saying which weights
and where to put them.
"""

from __future__ import annotations

import numpy as np

from .._doors import option

SMOOTH_UM = 1.5
MIN_CELL_AREA_UM2 = 100.0
SEED_DISTANCE_UM = 12.0
METHODS = ("classical", "cellpose")
CELLPOSE_HINT = "pip install 'sarcnet-sklearn[cellpose]' (or pip install cellpose)"


def segment_classical(field: np.ndarray, pixel_size_um: float) -> np.ndarray:
    """Label the cells of an alpha-actinin-2 field by the recipe of the module docstring.

    Parameters
    ----------
    field : ndarray of shape (height, width)
    pixel_size_um : float
        Micrometres per pixel (the recipe's lengths are in micrometres).

    Returns
    -------
    labels : ndarray of int32
        0 = background, 1..n = cells.

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import make_synthetic_field
    >>> field, truth = make_synthetic_field((384, 384), 6, random_state=0, pixel_size_um=0.48)
    >>> labels = segment_classical(field, 0.48)
    >>> labels.shape, labels.dtype, 3 <= int(labels.max()) <= 12
    ((384, 384), dtype('int32'), True)
    """
    from scipy import ndimage as ndi
    from skimage import feature, filters, measure, segmentation

    from .._validation import check_pixel_size_um

    pixel_size_um = check_pixel_size_um(pixel_size_um, "the field's pixel size")
    image = np.asarray(field, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"a field to segment must be one 2-D plane, got shape {image.shape}")
    smooth = filters.gaussian(image, sigma=SMOOTH_UM / pixel_size_um, preserve_range=True)
    if np.ptp(smooth) == 0:
        return np.zeros(image.shape, np.int32)
    min_pixels = max(1, int(MIN_CELL_AREA_UM2 / pixel_size_um**2))
    foreground = ndi.binary_fill_holes(smooth > filters.threshold_otsu(smooth))
    regions = measure.label(foreground)
    sizes = np.bincount(regions.ravel())
    foreground &= sizes[regions] >= min_pixels
    regions[~foreground] = 0
    distance = filters.gaussian(ndi.distance_transform_edt(foreground), sigma=2 / pixel_size_um)
    peaks = feature.peak_local_max(distance, min_distance=max(1, int(SEED_DISTANCE_UM
                                                                     / pixel_size_um)),
                                   labels=regions, exclude_border=False)
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(filters.sobel(smooth), markers, mask=foreground)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < min_pixels] = 0
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def segment_cellpose(field: np.ndarray, pixel_size_um: float) -> np.ndarray:
    """Label the cells with cellpose's generalist model (cellpose 4: Cellpose-SAM; cellpose 3:
    ``cyto3``; cell diameter 40 um at the field's pixel size); a ValueError naming the extra
    without cellpose, or saying which weights cellpose could not fetch (offline) and where
    to put them."""
    from importlib.metadata import version

    try:
        from cellpose import models
    except ImportError:
        raise ValueError(f"cellpose segmentation needs cellpose: {CELLPOSE_HINT}; or use "
                         f"{option('segment_classical')}") from None
    release = version("cellpose")
    diameter_px = 40.0 / pixel_size_um
    if int(release.split(".")[0]) >= 4:
        weights, options, evaluate = "Cellpose-SAM", {}, {}
    else:
        weights, options, evaluate = "cyto3", {"model_type": "cyto3"}, {"channels": [0, 0]}
    try:
        model = models.CellposeModel(gpu=False, **options)
    except Exception as exc:  # cellpose downloads its weights: offline, a network error
        folder = getattr(models, "MODEL_DIR", "~/.cellpose/models")
        raise ValueError(
            f"cellpose {release} could not load its {weights} weights ({type(exc).__name__}: "
            f"{exc}); cellpose downloads them the first time it runs: run it once online, or "
            f"copy the weights into {folder} (or the folder $CELLPOSE_LOCAL_MODELS_PATH "
            f"names), or use {option('segment_classical')}"
        ) from None
    masks = model.eval(np.asarray(field), diameter=diameter_px, **evaluate)[0]
    return np.asarray(masks, dtype=np.int32)


def segment_field(field: np.ndarray, pixel_size_um: float, method: str = "classical"
                  ) -> np.ndarray:
    """A label image of ``field`` by ``method`` (``"classical"`` or ``"cellpose"``)."""
    if method == "classical":
        return segment_classical(field, pixel_size_um)
    if method == "cellpose":
        return segment_cellpose(field, pixel_size_um)
    raise ValueError(f"segmentation method must be one of {METHODS}, got {method!r}")


SEGMENTATION_FOLDER = "segmentation"
"""Sub-folder of a ``fields`` output folder holding the label images ``--segment`` made."""


def segment_field_files(fields, out, method: str = "classical", *, channel=None, scene=None,
                        z=None, pixel_size: float | None = None) -> list:
    """Segment each field file into ``out/segmentation/<field>_labels.ome.tif``; their paths.

    A label image already there (an earlier run's, or one corrected by hand) is used as it
    is, so a stopped run goes on with the same cells and a corrected one is scored as
    corrected; delete it to segment that field again. The files keep the field's pixel
    size (OME-TIFF), so napari and Fiji lay them on the field.
    """
    import logging
    from pathlib import Path

    from .._columns import PIXEL_SIZE_UM
    from ._maps import _ome_labels, _write_ome
    from ._read import read_field
    from ._screen import unique_stems

    logger = logging.getLogger(__name__)
    folder = Path(out) / SEGMENTATION_FOLDER
    paths = []
    for field_path, stem in zip(fields, unique_stems([Path(p) for p in fields]), strict=True):
        target = folder / f"{stem}_labels.ome.tif"
        paths.append(target)
        if target.is_file():
            logger.info("%s: using the labels in %s (delete it to segment again)", field_path,
                        target)
            continue
        field = read_field(field_path, channel=channel, scene=scene, z=z, pixel_size=pixel_size)
        labels = segment_field(field.data, field.pixel_size or PIXEL_SIZE_UM, method)
        if not labels.any():
            raise ValueError(f"{field_path}: --segment {method} found no cell in this field")
        _write_ome(target, _ome_labels(labels), field.pixel_size, f"cells ({method} segmentation)")
        logger.info("%s: %s segmentation found %d cells; labels in %s", field_path, method,
                    int(labels.max()), target)
    return paths
