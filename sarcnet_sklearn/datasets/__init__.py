"""Datasets: the AICS hiPSC-CM layout, the paper's split, and synthetic stand-ins."""

from ._aics import cell_groups, cell_locations, load_aics, paper_split
from ._field import make_synthetic_field
from ._synthetic import make_synthetic_aics

__all__ = [
    "cell_groups",
    "cell_locations",
    "load_aics",
    "make_synthetic_aics",
    "make_synthetic_field",
    "paper_split",
]
