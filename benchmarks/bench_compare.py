"""Are the screen statistics honest? Simulated screens with known effects (issue #29).

On screens where no condition does anything (null screens), a test at alpha = 0.05 should call
about 5 % of the conditions different from the control; the 95 % intervals should hold the true
difference 95 % of the time; and an effect of 0.3 score points with 6 wells per condition should
be found most of the time. The screens are :func:`~sarcnet_sklearn.screens.make_synthetic_screen`'s
defaults (the real labels' spread: SD 0.69 over cells, ICC 0.25 by field, about 10 cells per
field; 4 fields per well, 6 wells per condition), scored by ``compare_conditions`` and, for
comparison, by the t-test over cells that treats cells as independent.

    PYTHONPATH=. python benchmarks/bench_compare.py --screens 400

prints the false-positive rate (well-level permutation test and cell-level t-test), the
coverage of the 95 % intervals, and the power for 0.3 score points, each with its binomial
standard error.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from sarcnet_sklearn.screens import compare_conditions, make_synthetic_screen

ALPHA = 0.05


def run_screens(n_screens: int, effect: float, *, n_conditions: int = 3, wells: int = 6,
                n_plates: int = 1, n_boot: int = 1000, n_perm: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """One row per condition of each screen: p-value, interval, truth and the cell-level t-test."""
    rows = []
    for screen in range(n_screens):
        names = {f"cond{k}": effect for k in range(n_conditions)}
        cells, plate_map, truth = make_synthetic_screen(
            names, wells_per_condition=wells, n_plates=n_plates, random_state=seed + screen)
        cells = cells.drop(columns="sarcomere_length_um")
        result = compare_conditions(cells, plate_map, n_boot=n_boot, n_perm=n_perm,
                                    random_state=seed + screen)
        table = result.conditions.set_index("condition")
        control = cells.loc[result.cells["control"].to_numpy(), "score_pred"]
        for name, true_effect in names.items():
            treated = cells.loc[(result.cells["condition"] == name).to_numpy(), "score_pred"]
            rows.append({
                "screen": screen, "condition": name, "effect": true_effect,
                "p_value": table.loc[name, "p_value"],
                "p_adjusted": table.loc[name, "p_adjusted"],
                "covered": table.loc[name, "ci_low"] <= true_effect <= table.loc[name, "ci_high"],
                "width": table.loc[name, "ci_high"] - table.loc[name, "ci_low"],
                "p_cells": stats.ttest_ind(treated, control).pvalue,
            })
    return pd.DataFrame(rows)


def rate(values) -> str:
    values = np.asarray(values, dtype=float)
    p = values.mean()
    return f"{p:.1%} +- {np.sqrt(p * (1 - p) / len(values)):.1%} (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--screens", type=int, default=400, help="screens per scenario")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--n-perm", type=int, default=1000)
    args = parser.parse_args()
    options = {"n_boot": args.n_boot, "n_perm": args.n_perm}
    start = time.perf_counter()
    null = run_screens(args.screens, 0.0, **options)
    alternative = run_screens(args.screens, 0.3, seed=10**6, **options)
    plates = run_screens(args.screens // 2, 0.0, n_plates=3, seed=2 * 10**6, **options)
    twelve = run_screens(args.screens // 2, 0.3, wells=12, seed=3 * 10**6, **options)
    elapsed = time.perf_counter() - start
    print(f"{args.screens} screens per scenario, 3 conditions + control, 6 wells each, "
          f"4 fields per well, ~10 cells per field; {elapsed:.0f} s")
    print("null screens (no effect):")
    print(f"  false-positive rate, well-level permutation test:  {rate(null.p_value < ALPHA)}")
    print(f"  false-positive rate, cell-level t-test:             {rate(null.p_cells < ALPHA)}")
    family = null.groupby("screen").p_adjusted.min() < ALPHA
    print(f"  screens with any Holm-adjusted call (FWER):         {rate(family)}")
    print(f"  95 % interval covers 0:                             {rate(null.covered)}")
    print(f"  null screens on 3 plates (plate effects), permutation FPR: "
          f"{rate(plates.p_value < ALPHA)}; coverage {rate(plates.covered)}")
    print("effect 0.3 score points:")
    print(f"  power, well-level permutation test:                 "
          f"{rate(alternative.p_value < ALPHA)}")
    print(f"  power after Holm (3 conditions):                    "
          f"{rate(alternative.p_adjusted < ALPHA)}")
    print(f"  95 % interval covers 0.3:                           {rate(alternative.covered)}")
    print(f"  median interval width:                              "
          f"{alternative.width.median():.3f} score points")
    print(f"  power with 12 wells per condition:                  "
          f"{rate(twelve.p_value < ALPHA)}; coverage {rate(twelve.covered)}")


if __name__ == "__main__":
    main()
