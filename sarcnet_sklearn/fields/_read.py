"""Reading one 2-D plane of a microscope's field of view, and its label image, through bioio.

A field file may hold several scenes, channels, Z planes and time points. The
user picks the scene, the channel (by name or index) and the Z plane (an index,
or ``"max"`` for a maximum projection as the AICS pipeline made); an ambiguous
choice is an error that lists what the file holds. The physical pixel size
comes from the file's metadata unless given.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from .._doors import option
from .._pixel_size import resolution_pixel_size
from .._resample import same_pixel_size
from .._validation import check_pixel_size_um
from ..images import PIL_SUFFIXES

MAX_FIELD_PIXELS = 2**28
"""Pixels a field (all its Z planes read, for a projection) may declare: 268 million, e.g.
16384 x 16384. Checked from the file's declared shape before anything is decoded, so a small
compressed file that declares a huge image (a decompression bomb) is refused at once. Set the
environment variable ``SARCNET_MAX_FIELD_PIXELS`` (or pass ``max_pixels=``) to read larger ones."""
MAX_PIXELS_VARIABLE = "SARCNET_MAX_FIELD_PIXELS"

FORMATS_HINT = (
    "CZI, ND2 and LIF files need the optional readers: pip install 'sarcnet-sklearn[formats]'"
)


@dataclass
class FieldImage:
    """One 2-D plane of a field of view and where it came from.

    Attributes
    ----------
    data : ndarray of shape (height, width)
        The plane in its stored dtype (e.g. uint16).
    pixel_size : float or None
        Micrometres per pixel (from the metadata, or as given); None if unknown.
    path : pathlib.Path or None
        The file, or None for an array.
    channel : int or str or None
        The channel read (its name when the file names it, else its index).
    scene : int or str or None
        The scene read.
    z : int or "max" or None
        The Z plane read, ``"max"`` for a maximum projection.
    """

    data: np.ndarray
    pixel_size: float | None = None
    path: Path | None = None
    channel: int | str | None = None
    scene: int | str | None = None
    z: int | str | None = None

    @property
    def name(self) -> str:
        """The file's path, or ``"<array>"`` for an in-memory field."""
        return str(self.path) if self.path is not None else "<array>"


def max_field_pixels(max_pixels: int | None = None) -> int:
    """The bound on pixels per field: ``max_pixels``, else ``$SARCNET_MAX_FIELD_PIXELS``, else
    :data:`MAX_FIELD_PIXELS`.

    Examples
    --------
    >>> max_field_pixels(1000), max_field_pixels() >= 2**28
    (1000, True)
    """
    value = max_pixels if max_pixels is not None else os.environ.get(MAX_PIXELS_VARIABLE)
    if value is None:
        return MAX_FIELD_PIXELS
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        source = "max_pixels=" if max_pixels is not None else f"${MAX_PIXELS_VARIABLE}"
        raise ValueError(f"{source}: {value!r} is not a positive whole number of pixels")
    return number


def check_declared_pixels(path, shape: tuple[int, ...], what: str,
                          max_pixels: int | None = None) -> None:
    """Refuse, before decoding, a file whose declared size exceeds :func:`max_field_pixels`."""
    limit = max_field_pixels(max_pixels)
    count = int(np.prod([int(n) for n in shape], dtype=object))
    if count > limit:
        dims = " x ".join(str(int(n)) for n in shape)
        raise ValueError(
            f"{path}: the {what} declares {dims} = {count:,} pixels to decode, more than the "
            f"{limit:,} a field may have; if the file really is that large, crop or tile it, or "
            f"raise the bound with the environment variable {MAX_PIXELS_VARIABLE}"
        )


def field_name(field) -> str:
    """How messages name a field: its path, or ``"<array>"``."""
    if isinstance(field, FieldImage):
        return field.name
    if isinstance(field, (str, PathLike)):
        return str(field)
    return "<array>"


def read_field(
    path: str | PathLike | np.ndarray,
    *,
    channel: int | str | None = None,
    scene: int | str | None = None,
    z: int | str | None = None,
    pixel_size: float | None = None,
) -> FieldImage:
    """Read one 2-D plane of a field of view (OME-TIFF, TIFF, PNG; CZI/ND2/LIF with extras).

    Parameters
    ----------
    path : str, path-like or ndarray
        The file, read with bioio (OME-TIFF and TIFF built in; CZI, ND2 and LIF
        with ``pip install 'sarcnet-sklearn[formats]'``) or, for PNG/JPEG/BMP,
        Pillow. A 2-D array is taken as the plane itself.
    channel : int or str, optional
        Channel index or name; required when the file has several channels.
        A string that is no channel's name but a number is taken as an index.
    scene : int or str, optional
        Scene index or name; required when the file has several scenes.
    z : int or "max", optional
        Z plane, or ``"max"`` for a maximum projection; required for a Z stack.
    pixel_size : float, optional
        Micrometres per pixel; overrides the metadata.

    Returns
    -------
    field : FieldImage

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        For an unreadable file or an ambiguous or impossible choice; the
        message names the file and lists its scenes, channels or Z planes.

    Examples
    --------
    >>> import numpy as np
    >>> field = read_field(np.ones((4, 5), np.uint16), pixel_size=0.12)
    >>> field.data.shape, field.pixel_size, field.name
    ((4, 5), 0.12, '<array>')
    >>> import tifffile  # a Z stack of 3 channels, as a microscope writes it
    >>> tifffile.imwrite("stack.ome.tiff", np.ones((2, 3, 8, 10), np.uint16),
    ...                  metadata={"axes": "ZCYX", "Channel": {"Name": ["DAPI", "488", "TL"]},
    ...                            "PhysicalSizeX": 0.12, "PhysicalSizeY": 0.12})
    >>> field = read_field("stack.ome.tiff", channel="488", z="max")
    >>> field.data.shape, field.pixel_size, field.channel
    ((8, 10), 0.12, '488')
    """
    if pixel_size is not None:
        pixel_size = check_pixel_size_um(pixel_size, option("pixel_size"))
    if isinstance(path, np.ndarray):
        if path.ndim != 2:
            raise ValueError(f"an in-memory field must be one 2-D plane, got shape {path.shape}")
        return FieldImage(path, pixel_size)
    path = Path(path)
    if not path.is_file() and not is_zarr(path):
        raise FileNotFoundError(f"no such field file: {path}")
    if path.suffix.lower() in PIL_SUFFIXES:
        return _read_pil(path, channel, pixel_size)
    return _read_bioio(path, channel, scene, z, pixel_size, what="field")


def read_labels(path: str | PathLike | np.ndarray, *, scene: int | str | None = None) -> np.ndarray:
    """Read a label image (one integer per cell, 0 = background) as a 2-D array.

    Parameters
    ----------
    path : str, path-like or ndarray
        A TIFF / OME-TIFF / PNG label image (cellpose, StarDist, napari,
        CellProfiler), or a 2-D array.
    scene : int or str, optional
        Scene, for a label file with several.

    Returns
    -------
    labels : ndarray of shape (height, width)
        As stored; :func:`cut_cells` checks that the values are integer labels.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file: missing, unreadable, or more than one plane.

    Examples
    --------
    >>> import numpy as np
    >>> read_labels(np.eye(3, dtype=np.int32)).sum()
    np.int64(3)
    """
    if isinstance(path, np.ndarray):
        if path.ndim != 2:
            raise ValueError(f"an in-memory label image must be 2-D, got shape {path.shape}")
        return path
    path = Path(path)
    if not path.is_file() and not is_zarr(path):
        raise FileNotFoundError(f"no such label image: {path}")
    if path.suffix.lower() == ".npy":  # numpy arrays, cellpose's _seg.npy
        from ._label_files import read_npy_labels

        return read_npy_labels(path)
    if path.suffix.lower() in PIL_SUFFIXES:
        return _read_pil(path, None, None).data
    return _read_bioio(path, None, scene, None, None, what="label image").data


def _read_pil(path: Path, channel, pixel_size) -> FieldImage:
    from PIL import Image

    try:
        with Image.open(path) as image:
            names = list(image.getbands())
            check_declared_pixels(path, (image.height, image.width), "image")
            array = np.asarray(image)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"cannot read field {path}: {exc}") from exc
    except Exception as exc:  # Pillow raises many types on corrupt files
        raise ValueError(f"cannot read field {path}: {exc}") from exc
    if array.ndim == 2:
        _pick(0 if channel is None else channel, names, path, "channel")
        return FieldImage(array, pixel_size, path, None, None, None)
    colours = [name for name in names if name != "A"]
    if channel is None:
        first = array[..., 0]
        if all(np.array_equal(first, array[..., k]) for k in range(1, len(colours))):
            return FieldImage(first, pixel_size, path, None, None, None)
        listing = ", ".join(f"{index}: {name!r}" for index, name in enumerate(names))
        raise ValueError(
            f"{path}: has {len(names)} colour channels ({listing}); choose one with "
            f"{option('channel')}"
        )
    index = _pick(channel, names, path, "channel")
    return FieldImage(array[..., index], pixel_size, path, names[index], None, None)


def _pick(choice, names: list[str], path: Path, what: str) -> int:
    """Index of ``choice`` (an index, a name, or a number as a string) among ``names``."""
    listing = ", ".join(f"{index}: {name!r}" for index, name in enumerate(names))
    if isinstance(choice, str) and choice in names:
        return names.index(choice)
    if isinstance(choice, str) and choice.strip().lstrip("-").isdigit():
        choice = int(choice)
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        if 0 <= choice < len(names):
            return int(choice)
        raise ValueError(f"{path}: has no {what} {choice}; it holds {what}s {listing}")
    raise ValueError(f"{path}: has no {what} {choice!r}; it holds {what}s {listing}")


ZARR_HINT = ("OME-Zarr needs bioio's OME-Zarr reader: pip install 'sarcnet-sklearn[formats]' "
             "(or pip install bioio-ome-zarr)")


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (an OME-Zarr field is a folder named ``*.zarr``)."""
    return path.is_dir() and (path.suffix.lower() == ".zarr" or (path / "zarr.json").is_file()
                              or (path / ".zattrs").is_file())


def _zarr_reader(path: Path):
    """bioio's OME-Zarr reader class, or a ValueError naming the extra to install."""
    try:
        from bioio_ome_zarr import Reader
    except ImportError:
        raise ValueError(f"cannot read {path}: {ZARR_HINT}") from None
    return Reader


def _read_bioio(path: Path, channel, scene, z, pixel_size, *, what: str) -> FieldImage:
    from bioio import BioImage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader, plain_tiff, tiff_pixel_size = _tiff_reader(path)
            if is_zarr(path):
                reader = _zarr_reader(path)
            try:
                image = BioImage(path, reader=reader)
            except Exception as exc:
                if not (reader is not None and reader.__module__.startswith("bioio_ome_tiff")
                        and "validation" in str(exc)):
                    raise
                image = _without_ome_metadata(path, exc, what, pixel_size)
                reader, plain_tiff, tiff_pixel_size = None, True, None
            scenes = list(image.scenes)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"cannot read {what} {path}: {exc} ({FORMATS_HINT})") from exc
    except Exception as exc:  # bioio and its plugins raise many types on unknown/corrupt files
        raise ValueError(f"cannot read {what} {path}: {exc} ({FORMATS_HINT})") from exc
    if len(scenes) > 1 and scene is None:
        listing = ", ".join(f"{index}: {name!r}" for index, name in enumerate(scenes))
        raise ValueError(f"{path}: has {len(scenes)} scenes ({listing}); choose one with "
                         f"{option('scene')}")
    scene_index = 0 if scene is None else _pick(scene, scenes, path, "scene")
    image.set_scene(scene_index)
    dims = image.dims
    sizes = dict(zip(dims.order, image.shape, strict=True))
    if sizes.get("T", 1) > 1:
        raise ValueError(f"{path}: has {sizes['T']} time points; give a file of one time point")
    channel_axis = "C"
    names = [str(name) for name in (image.channel_names or [])]
    if sizes.get("C", 1) == 1 and sizes.get("S", 1) > 1:
        channel_axis = "S"
        names = [f"sample {index}" for index in range(sizes["S"])]
    n_channels = sizes.get(channel_axis, 1)
    if len(names) != n_channels:
        names = [str(index) for index in range(n_channels)]
    if what == "label image" and (n_channels > 1 or sizes.get("Z", 1) > 1):
        raise ValueError(
            f"{path}: a label image must be one 2-D plane, but this one has {n_channels} "
            f"channel(s) and {sizes.get('Z', 1)} Z plane(s)"
        )
    if n_channels > 1 and channel is None:
        listing = ", ".join(f"{index}: {name!r}" for index, name in enumerate(names))
        raise ValueError(
            f"{path}: has {n_channels} channels ({listing}); choose the alpha-actinin-2 "
            f"channel with {option('channel')} (name or index)"
        )
    channel_index = 0 if channel is None else _pick(channel, names, path, "channel")
    n_planes = sizes.get("Z", 1)
    if n_planes > 1 and z is None:
        raise ValueError(
            f"{path}: has {n_planes} Z planes (0..{n_planes - 1}); choose one with "
            f"{option('z')}, or {option('z_max')} for a maximum projection"
        )
    check_declared_pixels(path, (n_planes, sizes.get("Y", 1), sizes.get("X", 1))
                          if n_planes > 1 else (sizes.get("Y", 1), sizes.get("X", 1)), what)
    selection = {channel_axis: channel_index}
    if "T" in sizes:
        selection["T"] = 0
    if channel_axis == "S" and "C" in sizes:
        selection["C"] = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stack = np.asarray(image.get_image_data("ZYX", **selection))
    except Exception as exc:
        raise ValueError(f"cannot read {what} {path}: {exc}") from exc
    if z is None:
        z_choice = None
        plane = stack[0]
    elif isinstance(z, str) and z.strip().lower() == "max":
        z_choice = "max"
        plane = stack.max(axis=0)
    else:
        z_choice = _pick(z, [str(index) for index in range(n_planes)], path, "Z plane")
        plane = stack[z_choice]
    if what == "field":  # the file's own, unless given
        given = pixel_size
        try:
            if not plain_tiff:
                pixel_size = _metadata_pixel_size(image, path)
            elif tiff_pixel_size is not None:
                pixel_size = check_pixel_size_um(*tiff_pixel_size)
        except ValueError:
            if given is None:
                raise
        if given is not None:
            if pixel_size is not None and not same_pixel_size(pixel_size, given):
                warnings.warn(f"{path}: {option('pixel_size')} {given:g} um/px used; its "
                              f"metadata says {pixel_size:g} um/px", UserWarning, stacklevel=2)
            pixel_size = given
    return FieldImage(
        np.ascontiguousarray(plane),
        pixel_size,
        path,
        names[channel_index] if channel is not None or n_channels > 1 else channel_index,
        scenes[scene_index] if scene is not None else None,
        z_choice,
    )


TIFF_SUFFIXES = (".tif", ".tiff")


def _tiff_reader(path: Path):
    """The bioio reader of a TIFF (OME or plain), whether it is plain, and its pixel size with
    where it came from ``(um, source)``, or None.

    Choosing the reader avoids bioio trying (and logging) the OME reader on
    every plain TIFF. A plain TIFF's pixel size follows
    :func:`sarcnet_sklearn._pixel_size.resolution_pixel_size`.
    """
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None, False, None
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_ome:
            from bioio_ome_tiff import Reader

            return Reader, False, None
        from bioio_tifffile import Reader

        found = resolution_pixel_size(tif)
    if found is None:
        return Reader, True, None
    pixel_size, where = found
    return Reader, True, (pixel_size, f"{path}: {where}")


def _without_ome_metadata(path: Path, error: Exception, what: str, pixel_size):
    """A TIFF whose OME-XML is invalid (e.g. a pixel size of 0, -1 or NaN), read without it.

    Only when the pixel size is given (or not needed, for a label image): the file's
    own is unusable.
    """
    from bioio import BioImage
    from bioio_tifffile import Reader

    if pixel_size is None and what == "field":
        first = next((line.strip() for line in str(error).splitlines()
                      if "physical_size" in line.lower()), "")
        raise ValueError(
            f"{path}: its OME metadata is invalid ({first or 'it fails validation'}"
            f"), so its pixel size is unknown; give the pixel size ({option('pixel_size')})"
        )
    return BioImage(path, reader=Reader)


OME_UNITS_UM = {"Ym": 1e30, "Zm": 1e27, "Em": 1e24, "Pm": 1e21, "Tm": 1e18, "Gm": 1e15,
                "Mm": 1e12, "km": 1e9, "hm": 1e8, "dam": 1e7, "m": 1e6, "dm": 1e5, "cm": 1e4,
                "mm": 1e3, "\u00b5m": 1.0, "nm": 1e-3, "pm": 1e-6, "fm": 1e-9, "am": 1e-12,
                "zm": 1e-15, "ym": 1e-18, "\u00c5": 1e-4, "thou": 25.4, "li": 2116.67,
                "in": 25_400.0, "ft": 304_800.0, "yd": 914_400.0, "mi": 1.609344e9}
"""Micrometres per OME ``UnitsLength`` (the units a ``PhysicalSizeXUnit`` may name)."""


def _metadata_pixel_size(image, path: Path) -> float | None:
    """The pixel size in micrometres from the file's metadata, in whatever unit it was stored.

    bioio gives the OME ``PhysicalSizeX`` / ``Y`` as stored; their
    ``PhysicalSizeXUnit`` (mm, nm, ...; micrometres by default) converts them.
    An implausible value (0.001 um, 10 mm) is an error naming the file and the
    value, not a silently wrong area.
    """
    try:
        sizes = image.physical_pixel_sizes
        y, x = sizes.Y, sizes.X
    except Exception:  # metadata a reader cannot parse: treat as unknown
        return None
    units = _ome_units(image)
    values, described = [], []
    for raw, unit in zip((y, x), units, strict=True):
        if raw is None:
            continue
        factor = OME_UNITS_UM.get(unit) if unit is not None else 1.0
        if factor is None:
            raise ValueError(f"{path}: its pixel size is given in {unit!r}, which is not a "
                             f"length; give the pixel size ({option('pixel_size')})")
        described.append(f"{raw:g} {unit or 'um'}")
        values.append(float(raw) * factor)
    if not values:
        return None
    source = f"{path}: the pixel size in its metadata ({' x '.join(described)})"
    values = [check_pixel_size_um(value, source) for value in values]
    if len(values) == 2 and abs(values[0] - values[1]) > 0.01 * max(values):
        raise ValueError(
            f"{path}: its pixels are not square ({values[0]} x {values[1]} um); Protocol 1 "
            f"assumes square pixels: resample the field or give {option('pixel_size')}"
        )
    return values[-1]


def _ome_units(image) -> tuple[str | None, str | None]:
    """The OME units of the pixel size (Y, X) of an OME file's current scene; None elsewhere."""
    if not type(image.reader).__module__.startswith("bioio_ome_tiff"):
        return None, None
    try:
        pixels = image.ome_metadata.images[image.current_scene_index].pixels
        units = (pixels.physical_size_y_unit, pixels.physical_size_x_unit)
    except Exception:
        return None, None
    return tuple(None if unit is None else str(getattr(unit, "value", unit)) for unit in units)
