"""Datasets: the AICS hiPSC-CM layout, the paper's split, and a synthetic stand-in."""

from ._aics import load_aics, paper_split
from ._synthetic import make_synthetic_aics

__all__ = ["load_aics", "make_synthetic_aics", "paper_split"]
