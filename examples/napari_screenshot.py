"""Screenshot of the napari plugin after scoring the sample field (docs/napari_screenshot.png).

Run from the repository root, with the napari extra, on a display or under a virtual one:
``xvfb-run -a python examples/napari_screenshot.py``.
"""

from pathlib import Path

import napari
from PIL import Image
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "napari_screenshot.png"


def wait(condition, timeout_s: float = 300.0) -> None:
    import time

    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the widget did not finish in time")
        QApplication.processEvents()
        time.sleep(0.05)


viewer = napari.Viewer(show=True)
viewer.window.resize(1400, 820)
viewer.open_sample("sarcnet-sklearn", "synthetic_field")
_, widget = viewer.window.add_plugin_dock_widget("sarcnet-sklearn", "Score cells")
widget.score()
wait(lambda: not widget.busy)
cells = viewer.layers["cells"]
cells.selected_label = 6
wait(lambda: "Grad-CAM cell 6" in viewer.layers and not widget.busy)
for _ in range(20):
    QApplication.processEvents()
viewer.reset_view()
for _ in range(20):
    QApplication.processEvents()
picture = Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).convert("RGB")
picture.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)
print(f"screenshot written to {OUT} ({OUT.stat().st_size // 1024} KB)")
viewer.close()
