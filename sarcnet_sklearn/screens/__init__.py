"""From per-cell scores to the answer of a screen: conditions compared at the level of wells.

- :func:`compare_conditions`: the per-cell table (``predict``, ``fields``) and a
  plate map in; one row per condition out: cells, fields, wells, plates, mean
  and median score, the difference from the control with a bootstrap interval
  (wells, then cells, resampled), a permutation p-value over wells, Holm's
  correction, a standardized effect size; the same for ``sarcomere_length_um``
  and any numeric column named; dose-response fits per compound.
- :func:`fit_dose_response`, :func:`logistic4`: a four-parameter logistic fit,
  EC50 with a bootstrap interval.
- :func:`write_comparison`: ``conditions.csv``, ``doses.csv`` and a
  self-contained HTML page (distributions with well means, forest plot, plate
  heatmaps, dose-response curves).
- :func:`make_synthetic_screen`: screens with known effects and realistic
  field and well variation, which prove the statistics by simulation
  (``benchmarks/bench_compare.py``).

The command line has them as ``sarcnet-sklearn compare``.
"""

from ._compare import STATISTICS, Comparison, compare_conditions, statistic_column
from ._dose import DoseFit, fit_dose_response, logistic4
from ._page import write_comparison
from ._simulate import SyntheticScreen, field_icc, make_synthetic_screen
from ._stats import holm

__all__ = [
    "STATISTICS",
    "Comparison",
    "DoseFit",
    "SyntheticScreen",
    "compare_conditions",
    "field_icc",
    "fit_dose_response",
    "holm",
    "logistic4",
    "make_synthetic_screen",
    "statistic_column",
    "write_comparison",
]
