"""napari plugin: score the cells of an open field of view, see scores and Grad-CAM heatmaps.

Install with ``pip install "sarcnet-sklearn[napari]"``; napari finds the plugin
through the ``napari.manifest`` entry point (``napari.yaml`` beside this file).
Its dock widget, *Plugins > SarcNet > Score cells*, is
:class:`~sarcnet_sklearn.napari._widget.ScoreCellsWidget`; its sample, *File >
Open Sample > SarcNet*, opens a synthetic field with its cells and a demo model.
Nothing else in the package imports this subpackage, napari or Qt.
"""

import os
import sys
from importlib.util import find_spec


def _import_triton_with_its_own_llvm() -> None:
    """Import triton (torch's compiler, which torchvision's import pulls in) safely under napari.

    napari's OpenGL canvas on Mesa drivers (llvmpipe, radeonsi) loads Mesa's
    LLVM library into the process; triton's extension bundles another LLVM,
    and importing it afterwards crashes the process with a segmentation fault.
    ``RTLD_DEEPBIND`` makes triton's library use its own LLVM symbols.
    """
    if sys.platform != "linux" or "triton" in sys.modules or find_spec("triton") is None:
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import triton  # noqa: F401
    except Exception:  # torch works without triton; it imports it only when present
        pass
    finally:
        sys.setdlopenflags(flags)


_import_triton_with_its_own_llvm()
