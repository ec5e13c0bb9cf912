"""A simulated screen through ``sarcnet-sklearn compare`` (the README's "Compare conditions").

Writes ``screen/cells.csv`` (as ``predict`` or ``fields`` would) and ``screen/plate_map.csv`` for a
screen with a control, a compound that raises the score by 0.4, one that does nothing, and one
tested at five doses; runs the command; and copies the figures the README shows to ``docs/``.
Run from the repository root: ``python examples/compare_screen.py``.
"""

import shutil
from pathlib import Path

from sarcnet_sklearn.commands import main
from sarcnet_sklearn.screens import make_synthetic_screen

ROOT = Path(__file__).resolve().parents[1]
folder = Path("screen")
folder.mkdir(exist_ok=True)
cells, plate_map, truth = make_synthetic_screen(
    {"drugA": 0.4, "drugB": 0.0},
    dose_response={"drugC": {"doses": [0.01, 0.1, 1, 10, 100], "max_effect": 0.8, "ec50": 1.0}},
    n_plates=2, refused_fraction=0.02, random_state=7)
cells.to_csv(folder / "cells.csv", index=False)
plate_map.to_csv(folder / "plate_map.csv", index=False)
print(truth.to_string(index=False))
main(["compare", str(folder / "cells.csv"), "--plate-map", str(folder / "plate_map.csv"),
      "--out", str(folder / "compared")])
for name in ("distributions.png", "differences.png"):
    shutil.copyfile(folder / "compared" / name, ROOT / "docs" / f"compare_{name}")
