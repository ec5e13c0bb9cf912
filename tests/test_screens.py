"""Comparing the conditions of a screen: the statistics proved on simulated screens with known
effects, the plate-map join and its bad inputs, dose-response fits, the page and the command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sarcnet_sklearn.commands import main
from sarcnet_sklearn.screens import (
    compare_conditions,
    field_icc,
    fit_dose_response,
    holm,
    logistic4,
    make_synthetic_screen,
    write_comparison,
)
from sarcnet_sklearn.screens._stats import Units, bootstrap_interval, permutation_p_value

FAST = {"n_boot": 200, "n_perm": 200, "n_boot_dose": 30}
NULL_CONDITIONS = {f"c{k}": 0.0 for k in range(10)}


def simulated(effects, n_screens, seed, **options):
    """Per condition of each screen: p-value, interval, true effect and the cell-level t-test."""
    rows = []
    for screen in range(n_screens):
        table, plate_map, truth = make_synthetic_screen(effects, random_state=seed + screen,
                                                        **options)
        table = table.drop(columns="sarcomere_length_um")
        result = compare_conditions(table, plate_map, random_state=screen, **FAST)
        conditions = result.conditions.set_index("condition")
        control = table.loc[result.cells["control"].to_numpy(), "score_pred"]
        for name, effect in effects.items():
            row = conditions.loc[name]
            treated = table.loc[(result.cells["condition"] == name).to_numpy(), "score_pred"]
            rows.append({"p": row["p_value"], "covered": row["ci_low"] <= effect <= row["ci_high"],
                         "p_cells": stats.ttest_ind(treated, control).pvalue})
    return pd.DataFrame(rows)


def test_the_synthetic_screen_has_the_real_labels_spread_and_clustering():
    table = make_synthetic_screen(n_plates=8, wells_per_condition=24, random_state=3).cells
    assert 0.19 < field_icc(table["score_pred"], table["field"]) < 0.31
    assert 0.6 < table["score_pred"].std() < 0.8
    assert 8 < table.groupby("field").size().mean() < 12


def test_null_screens_keep_the_false_positive_rate_where_a_cell_level_t_test_does_not():
    found = simulated(NULL_CONDITIONS, n_screens=8, seed=100)
    assert found["p"].notna().all() and len(found) == 80
    assert (found["p"] < 0.05).mean() <= 0.11
    assert (found["p_cells"] < 0.05).mean() >= 0.25  # cells treated as independent
    assert found["covered"].mean() >= 0.85


def test_an_effect_of_three_tenths_is_found_and_covered():
    effects = {f"c{k}": 0.3 for k in range(8)}
    found = simulated(effects, n_screens=5, seed=200)
    assert (found["p"] < 0.05).mean() >= 0.3
    assert found["covered"].mean() >= 0.85


def test_holm_and_the_permutation_test_by_hand():
    assert holm([0.04, 0.01, 0.03]).tolist() == pytest.approx([0.06, 0.03, 0.06])
    rng = np.random.default_rng(0)
    # 3 against 3 well-separated units: the exact test's smallest two-sided p is 2/20.
    assert permutation_p_value(np.r_[5.0, 6, 7], np.r_[1.0, 2, 3], n_perm=100,
                               rng=rng) == pytest.approx(0.1)
    # Within plates: the plate effect (+10 on plate b) cannot make a difference.
    treated, control = np.r_[1.0, 2, 11, 12], np.r_[1.5, 2.5, 11.5, 12.5]
    strata = np.array(["a", "a", "b", "b"])
    p = permutation_p_value(treated, control, n_perm=500, rng=rng, treated_strata=strata,
                            control_strata=strata)
    assert p > 0.2


def test_the_bootstrap_resamples_wells_then_cells():
    rng = np.random.default_rng(1)
    # Two wells per side whose cells agree perfectly: all the spread is between wells.
    treated = Units.from_labels([1.0] * 5 + [3.0] * 5, ["a"] * 5 + ["b"] * 5)
    control = Units.from_labels([0.0] * 10, ["c"] * 5 + ["d"] * 5)
    low, high = bootstrap_interval(treated, control, n_boot=400, confidence=0.95, rng=rng)
    assert low == pytest.approx(1.0) and high == pytest.approx(3.0)
    means = Units.from_labels([1.0, 3.0, 10.0], ["a", "a", "b"]).bootstrap_means(2000, rng)
    # a's cells resampled give a mean of 1, 2 or 3; two wells drawn, then averaged
    assert set(np.round(np.unique(means), 6)) == {1.0, 1.5, 2.0, 2.5, 3.0, 5.5, 6.0, 6.5, 10.0}


@pytest.fixture(scope="module")
def screen():
    return make_synthetic_screen({"drugA": 0.6, "drugB": 0.0}, random_state=5,
                                 refused_fraction=0.02)


def test_conditions_table_counts_cells_wells_refusals_and_compares_sarcomere_length(screen):
    table, plate_map, _ = screen
    table = table.copy()
    table.loc[3, "error"] = ""
    table.loc[3, "score_pred"] = np.nan
    table["out_of_range"] = ""
    table.loc[3, "out_of_range"] = "cell_area"
    result = compare_conditions(table, plate_map, random_state=0, **FAST)
    conditions = result.conditions.set_index("condition")
    assert list(conditions.index) == ["DMSO", "drugA", "drugB"]
    assert conditions["n_cells"].sum() == len(table)
    assert conditions["n_refused"].sum() == table["score_pred"].isna().sum() > 1
    assert result.refused["outside the training data: cell_area"] == 1
    assert conditions["n_wells"].tolist() == [6, 6, 6]
    assert conditions["n_fields"].tolist() == [24, 24, 24]
    drug = conditions.loc["drugA"]
    assert drug["ci_low"] < 0.6 < drug["ci_high"] and drug["p_adjusted"] < 0.05
    assert drug["difference"] == pytest.approx(drug["mean_score"] - conditions.loc["DMSO",
                                                                                   "mean_score"])
    assert drug["difference_sarcomere_length_um"] > 0  # 0.1 um per score point
    assert np.isnan(conditions.loc["DMSO", "p_value"])


def test_the_join_names_cells_and_entries_that_do_not_match(screen):
    table, plate_map, _ = screen
    with pytest.raises(ValueError, match=r"cell\(s\) of cells match no entry .*well"):
        compare_conditions(table, plate_map.iloc[1:], **FAST)
    extra = pd.concat([plate_map, pd.DataFrame([{"plate": "P1", "well": "Z99",
                                                 "condition": "drugZ", "control": False}])])
    with pytest.raises(ValueError, match="1 entry of plate map match no cell.*Z99 \\(drugZ\\)"):
        compare_conditions(table, extra, **FAST)
    renamed = plate_map.assign(well=plate_map["well"].str.replace(r"^([A-H])0", r"\1",
                                                                  regex=True))
    assert len(compare_conditions(table, renamed, **FAST).cells) == len(table)  # B04 is B4


def test_bad_plate_map_entries_are_explained_and_the_rest_compared(screen):
    table, plate_map, _ = screen
    plate_map = plate_map.copy()
    drug_b = plate_map.index[plate_map["condition"] == "drugB"]
    duplicate = plate_map.loc[[drug_b[0]]].assign(condition="drugA")
    plate_map = pd.concat([plate_map, duplicate], ignore_index=True)
    result = compare_conditions(table, plate_map, random_state=0, **FAST)
    assert any("listed 2 times" in p and "different conditions" in p for p in result.problems)
    conditions = result.conditions.set_index("condition")
    assert conditions.loc["drugB", "n_wells"] == 5
    assert np.isfinite(conditions.loc["drugA", "p_value"])


def test_one_control_well_no_control_and_all_refused_are_notes_not_failures(screen, tmp_path):
    table, plate_map, _ = screen
    control_wells = plate_map.loc[plate_map["condition"] == "DMSO", "well"]
    one = table[~table["well"].isin(control_wells.iloc[1:])]
    result = compare_conditions(one, plate_map[~plate_map["well"].isin(control_wells.iloc[1:])],
                                **FAST)
    conditions = result.conditions.set_index("condition")
    assert "the control has 1 well" in conditions.loc["drugA", "note"]
    assert np.isfinite(conditions.loc["drugA", "difference"])
    assert np.isnan(conditions.loc["drugA", "p_value"])
    assert any("has 1 well" in p for p in result.problems)

    drug_a = table["well"].isin(plate_map.loc[plate_map["condition"] == "drugA", "well"])
    refused = table.assign(score_pred=np.where(drug_a, np.nan, table["score_pred"]))
    result = compare_conditions(refused, plate_map, random_state=0, **FAST)
    conditions = result.conditions.set_index("condition")
    assert conditions.loc["drugA", "n_refused"] == conditions.loc["drugA", "n_cells"]
    assert conditions.loc["drugA", "note"].startswith("all ")
    assert np.isnan(conditions.loc["drugA", "mean_score"])
    assert np.isfinite(conditions.loc["drugB", "p_value"])
    assert np.isfinite(conditions.loc["drugA", "p_value_sarcomere_length_um"])

    result = compare_conditions(table, plate_map.drop(columns="control"), **FAST)
    assert result.control is None and result.conditions["p_value"].isna().all()
    assert any(p.startswith("no control") for p in result.problems)
    assert result.conditions["mean_score"].notna().all()
    (tmp_path / "differences.png").write_bytes(b"from an earlier run")
    paths = write_comparison(result, tmp_path)
    assert "forest" not in paths and not (tmp_path / "differences.png").exists()
    assert "no control: mark the control rows" in paths["html"].read_text()


def test_a_condition_on_a_plate_without_controls_is_compared_on_the_others():
    table, plate_map, _ = make_synthetic_screen({"drugA": 0.0}, n_plates=2, random_state=2)
    gone = plate_map[(plate_map["condition"] == "DMSO") & (plate_map["plate"] == "P2")]
    keep = ~(table["plate"] + table["well"]).isin(gone["plate"] + gone["well"])
    result = compare_conditions(table[keep], plate_map.drop(gone.index), **FAST)
    note = result.conditions.set_index("condition").loc["drugA", "note"]
    assert "no control wells on plate(s) P2: 3 unit(s) there left out" in note


def test_dose_response_fit_and_its_failures(screen):
    doses = np.repeat([0.0, 0.01, 0.1, 1, 10, 100], 4)
    wells = logistic4(doses, 3.0, 4.0, 0.5, 1.2) + np.random.default_rng(0).normal(0, 0.02, 24)
    fit = fit_dose_response(doses, wells, n_boot=40, random_state=0)
    assert fit.converged and 0.3 < fit.ec50 < 0.8 and fit.ec50_low < fit.ec50 < fit.ec50_high
    assert fit.top == pytest.approx(4.0, abs=0.1) and fit.bottom == pytest.approx(3.0, abs=0.1)
    flat = fit_dose_response(doses, np.full(24, 3.0) + np.random.default_rng(1).normal(
        0, 0.05, 24), n_boot=0)
    assert not flat.converged and "did not converge" in flat.message

    table, plate_map, _ = make_synthetic_screen(
        {"drugA": 0.0}, dose_response={"drugC": {"doses": [0.01, 0.1, 1, 10, 100],
                                                 "max_effect": 1.0, "ec50": 1.0}},
        wells_per_condition=4, random_state=4)
    plate_map["dose"] = plate_map["dose"].astype(object)
    plate_map.loc[plate_map["condition"] == "drugA", "dose"] = "high"
    result = compare_conditions(table, plate_map, random_state=0, **FAST)
    assert any("drugA: dose 'high' is not a number" in p for p in result.problems)
    assert "drugA high" not in result.conditions["condition"].tolist()
    assert result.conditions.set_index("condition").loc["drugA", "dose"] == "high"
    assert np.isfinite(result.conditions.set_index("condition").loc["drugA", "p_value"])
    score_fit = result.doses[result.doses["measure"] == "score_pred"].set_index("condition")
    assert list(score_fit.index) == ["drugC"]
    assert 0.1 < score_fit.loc["drugC", "ec50"] < 10


def test_compare_command_writes_the_table_and_a_self_contained_page(screen, tmp_path, capsys):
    table, plate_map, _ = screen
    cells_csv, map_csv = tmp_path / "cells.csv", tmp_path / "map.csv"
    table.assign(model_sha256="abc123").to_csv(cells_csv, index=False)
    plate_map.drop(columns="control").to_csv(map_csv, index=False)
    out = tmp_path / "out"
    assert main(["compare", str(cells_csv), "--plate-map", str(map_csv), "--out", str(out),
                 "--control", "DMSO", "--n-boot", "200", "--n-perm", "200"]) == 0
    printed = capsys.readouterr()
    assert str((out / "conditions.csv").resolve()) in printed.out
    assert "not scored: the image has no signal" in printed.err
    written = pd.read_csv(out / "conditions.csv")
    for column in ["condition", "n_cells", "n_refused", "n_wells", "mean_score", "difference",
                   "ci_low", "ci_high", "p_value", "p_adjusted"]:
        assert column in written.columns
    page = (out / "index.html").read_text()
    from sarcnet_sklearn._pages import sha256_of

    assert sha256_of(cells_csv) in page and sha256_of(map_csv) in page
    assert "model_sha256: abc123" in page and page.count("data:image/png;base64") == 3
    assert "src=\"http" not in page
    assert main(["compare", str(cells_csv), "--plate-map", str(map_csv), "--out",
                 str(cells_csv)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_write_comparison_refuses_to_overwrite_an_input(screen, tmp_path):
    table, plate_map, _ = screen
    plate_map.to_csv(tmp_path / "conditions.csv", index=False)
    table.to_csv(tmp_path / "cells.csv", index=False)
    result = compare_conditions(tmp_path / "cells.csv", tmp_path / "conditions.csv", **FAST)
    with pytest.raises(ValueError, match="refusing to overwrite the input file"):
        write_comparison(result, tmp_path)


def test_without_wells_the_fields_are_the_units(screen):
    table, plate_map, _ = screen
    by_field = table.drop(columns=["plate", "well"])
    conditions = table[["field", "well"]].drop_duplicates().merge(plate_map, on="well")
    result = compare_conditions(by_field, conditions[["field", "condition", "control"]],
                                random_state=0, **FAST)
    assert result.unit == "field"
    drug = result.conditions.set_index("condition").loc["drugA"]
    assert drug["n_fields"] == 24 and pd.isna(drug["n_wells"]) and np.isfinite(drug["p_value"])
    assert len(result.units) == table["field"].nunique()
