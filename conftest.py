"""Collect the napari plugin's modules (doctests) only where napari is installed."""

from importlib.util import find_spec

collect_ignore = [] if find_spec("napari") and find_spec("magicgui") else ["sarcnet_sklearn/napari"]
