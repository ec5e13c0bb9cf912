"""Label images as segmentation tools save them: ``.npy`` arrays and cellpose's ``_seg.npy``.

TIFF and PNG label images (cellpose's ``_cp_masks.png``, StarDist's label TIFFs, napari's
and CellProfiler's exports) are read through bioio or Pillow like fields. Two more:

- a plain ``.npy`` file holding one 2-D integer (or boolean) array, read with
  ``numpy.load(allow_pickle=False)``;
- cellpose's ``<image>_seg.npy``: ``numpy.save`` of a dict (so a pickle) whose ``"masks"``
  entry is the label image. Unpickling can run any code, so the file is read with an
  unpickler that builds only what numpy arrays, numbers, strings, lists and dicts need and
  refuses anything else, naming it; nothing the file names is imported or called beyond
  that short list.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SEG_SUFFIX = "_seg.npy"
MAX_SEG_BYTES = 4 << 30

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("builtins", "complex"), ("builtins", "slice"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}
"""What a cellpose ``_seg.npy`` pickle may build: numpy arrays, scalars and plain containers."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it asks to build {module}.{name}, which a cellpose _seg.npy never holds; "
            "refusing to unpickle it"
        )


def is_seg_npy(path: str | Path) -> bool:
    """Whether ``path`` is named like cellpose's ``_seg.npy`` output."""
    return str(path).lower().endswith(SEG_SUFFIX)


def read_npy_labels(path: str | Path) -> np.ndarray:
    """The label image in a ``.npy`` file, or in cellpose's ``_seg.npy`` (its ``"masks"``).

    Raises
    ------
    ValueError
        Naming the file: not a numpy file, a pickle that builds anything but arrays
        (``_seg.npy``) or that a plain ``.npy`` would need, no ``"masks"`` entry, or not
        one 2-D plane.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.array([[0, 1], [2, 2]], dtype=np.uint16)
    >>> np.save("field_seg.npy", {"masks": masks, "outlines": masks * 0, "diameter": 30.0})
    >>> read_npy_labels("field_seg.npy").tolist()
    [[0, 1], [2, 2]]
    """
    path = Path(path)
    if is_seg_npy(path):
        labels = _read_seg(path)
    else:
        try:
            labels = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                raise ValueError(
                    f"{path}: holds Python objects (a pickle), not a plain array; a label "
                    "image saved with numpy.save holds integers. For cellpose's output, give "
                    f"the file named <image>{SEG_SUFFIX}"
                ) from None
            raise ValueError(f"cannot read label image {path}: {exc}") from None
        except (OSError, EOFError) as exc:
            raise ValueError(f"cannot read label image {path}: {exc}") from None
    if not isinstance(labels, np.ndarray):
        raise ValueError(f"{path}: holds a {type(labels).__name__}, not a label image")
    labels = np.squeeze(labels) if labels.ndim > 2 else labels
    if labels.ndim != 2:
        raise ValueError(f"{path}: a label image must be one 2-D plane, got shape "
                         f"{labels.shape}")
    return labels


def _read_seg(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            _, _, dtype = read_header(handle)
            if dtype.hasobject:
                if path.stat().st_size > MAX_SEG_BYTES:
                    raise ValueError(f"larger than {MAX_SEG_BYTES >> 30} GiB")
                content = _ArraysOnly(handle).load()
            else:
                handle.seek(0)
                content = np.load(handle, allow_pickle=False)
    except (pickle.UnpicklingError, ValueError, EOFError, OSError, TypeError,
            AttributeError) as exc:
        raise ValueError(f"cannot read cellpose output {path}: {exc}") from None
    if isinstance(content, np.ndarray) and content.dtype.hasobject and content.shape == ():
        content = content.item()
    if isinstance(content, dict):
        if "masks" not in content:
            raise ValueError(f"{path}: a cellpose _seg.npy holds its label image under "
                             f"'masks'; this one holds {sorted(map(str, content))[:8]}")
        content = content["masks"]
    if not isinstance(content, np.ndarray) or content.dtype.hasobject:
        raise ValueError(f"{path}: its 'masks' is not an array of labels")
    return content
