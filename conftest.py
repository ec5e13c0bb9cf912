"""What the package's doctests share; the napari plugin's modules are collected only where
napari is installed.

Every doctest runs in an empty temporary folder, so that an example that writes ``report/``
or ``sarcnet.zip`` writes there. A doctest that uses ``cells`` (60 synthetic AICS cells,
48 px, as :func:`~sarcnet_sklearn.datasets.load_aics` returns them) or ``model`` (a Protocol
1 SarcNet pipeline fitted on them at 32 px for 1 epoch, calibrated for prediction intervals)
gets them, made once per session.
"""

from __future__ import annotations

import copy
import re
from importlib.util import find_spec

import pytest
from _pytest.doctest import DoctestItem

SHARED = re.compile(r"\b(cells|model)\b")

collect_ignore = [] if find_spec("napari") and find_spec("magicgui") else ["sarcnet_sklearn/napari"]

# pyproject.toml turns off pytest's plugin autoloading: autoloaded plugins get their whole
# distribution rewritten for assertions (napari, zarr, hypothesis: 500 modules, 10 s per run
# where bytecode is not cached); the plugins the tests use are loaded here, when installed.
pytest_plugins = [
    plugin for plugin, package in [
        ("_hypothesis_pytestplugin", "hypothesis"),
        ("pytestqt.plugin", "pytestqt"),
        ("napari.utils._testsupport", "napari"),
    ] if find_spec(package)
]


@pytest.fixture(scope="session")
def _doctest_cells_and_model(tmp_path_factory) -> dict:
    from sarcnet_sklearn import calibrate, make_sarcnet_pipeline
    from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics

    root = tmp_path_factory.mktemp("doctest") / "synthetic_aics"
    cells = load_aics(make_synthetic_aics(root, n_cells=60, image_size=48, random_state=0))
    model = make_sarcnet_pipeline(protocol=1, image_size=32, max_epochs=1, batch_size=16,
                                  verbose=0, random_state=0, device="cpu")
    model.fit(cells.iloc[:45], cells["score"].iloc[:45])
    calibrate(model, cells.iloc[45:], cells["score"].iloc[45:])
    return {"cells": cells, "model": model}


@pytest.fixture(autouse=True)
def _doctest_setup(request, doctest_namespace):
    if not isinstance(request.node, DoctestItem):
        return
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
    source = "".join(example.source for example in request.node.dtest.examples)
    used = set(SHARED.findall(source))
    if used:  # copies of what the example uses: it may change what it is given
        shared = request.getfixturevalue("_doctest_cells_and_model")
        if "cells" in used:
            doctest_namespace["cells"] = shared["cells"].copy()
        if "model" in used:
            doctest_namespace["model"] = copy.deepcopy(shared["model"])
