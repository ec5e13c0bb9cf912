from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sarcnet_sklearn import PROTOCOL_2
from sarcnet_sklearn.datasets import cell_groups, cell_locations, load_aics, paper_split
from sarcnet_sklearn.datasets._aics import aics_paths

from .conftest import DATA


@pytest.fixture(scope="module")
def real_labels() -> pd.DataFrame:
    """The real experts' scores, cut to the paper's 5,761 cells (both scores > 0)."""
    labels = pd.read_csv(DATA / "expert_scores.csv")
    labels = labels[(labels.expert_mh > 0) & (labels.expert_kg > 0)]
    assert len(labels) == 5771
    # The paper's merge with the features table loses 10 cells; which ones does not
    # change the split sizes.
    labels = labels.iloc[:-10].rename(columns={"expert_mh": "expert_1", "expert_kg": "expert_2"})
    labels = labels.reset_index(drop=True)
    # the cell id is the field's name, then "_annotations_corrected...cellK"
    fields = labels.cell_id.str.split("_annotations").str[0] + ".czi"
    return pd.concat([labels, cell_locations(fields)], axis=1)


def test_cell_locations_of_the_real_fields(real_labels):
    original = real_labels[real_labels.cohort == "original"]
    assert original.field.nunique() == 478
    assert original.groupby("field").size().median() == 10
    assert original.well.nunique() == 16 and sorted(original.plate.unique()) == [
        "5500000013", "5500000014"]
    holdout = real_labels[real_labels.cohort == "holdout"]  # named otherwise: field only
    assert holdout.field.notna().all() and holdout.well.isna().all()
    with pytest.raises(ValueError, match=r"cell\(s\) without a 'well', e.g. row"):
        cell_groups(real_labels, "well")
    with pytest.raises(ValueError, match="no 'plate' column"):
        cell_groups(real_labels.drop(columns="plate"), "plate")


def test_paper_split_by_field_keeps_fields_whole_and_the_proportions(real_labels):
    train, valid, test = paper_split(real_labels, by="field")
    assert abs(len(test) / len(real_labels) - 0.2) < 0.01
    assert abs(len(valid) / (len(train) + len(valid)) - 0.2) < 0.01
    assert len(train) + len(valid) + len(test) == len(real_labels)
    for a, b in ((train, valid), (train, test), (valid, test)):
        assert set(a.field).isdisjoint(b.field)
    overall = real_labels.expert_1.value_counts(normalize=True)
    share = test.expert_1.value_counts(normalize=True).reindex(overall.index)
    np.testing.assert_allclose(share, overall, atol=0.01)
    assert not test.index.equals(paper_split(real_labels, by="field", random_state=0)[2].index)


def test_paper_split_by_plate_needs_five_plates(real_labels):
    original = real_labels[real_labels.cohort == "original"]
    with pytest.raises(ValueError, match=r"2 plate\(s\).*at least 5"):
        paper_split(original, by="plate")
    with pytest.raises(ValueError, match="by must be one of"):
        paper_split(original, by="day")


def test_paper_split_sizes_on_the_real_labels(real_labels):
    train, valid, test = paper_split(real_labels)
    assert (len(train), len(valid), len(test)) == (3686, 922, 1153)
    assert set(train.index).isdisjoint(valid.index) and set(train.index).isdisjoint(test.index)
    assert len(set(train.index) | set(valid.index) | set(test.index)) == 5761
    overall = real_labels.expert_1.value_counts(normalize=True)
    for part in (train, valid, test):
        share = part.expert_1.value_counts(normalize=True).reindex(overall.index)
        np.testing.assert_allclose(share, overall, atol=0.01)


def test_paper_split_is_reproducible_and_seeded(real_labels):
    first = paper_split(real_labels)[2].index
    assert first.equals(paper_split(real_labels, random_state=42)[2].index)
    assert not first.equals(paper_split(real_labels, random_state=0)[2].index)


def test_paper_split_names_a_score_too_rare_to_stratify(real_labels):
    few = real_labels[(real_labels.expert_1 != 5)]
    few = pd.concat([few, real_labels[real_labels.expert_1 == 5].head(1)])
    with pytest.raises(ValueError, match=r"stratified on 'expert_1' .*5: 1\}"):
        paper_split(few)


def _raw_cohort(root: Path, cohort: str) -> pd.DataFrame:
    paths = aics_paths(root, cohort)
    features = pd.read_csv(paths["features"])
    metadata = pd.read_csv(paths["metadata"]).rename(columns={"original_fov_location": "fov_path"})
    merged = features.merge(metadata, on=["napariCell_ObjectNumber", "fov_path"])
    merged["cohort"] = cohort
    return merged


def test_load_aics_equals_what_was_written(synthetic_root, cells):
    raw = pd.concat([_raw_cohort(synthetic_root, c) for c in ("fish_1", "fish_2")])
    scored = raw[(raw.mh_structure_org_score > 0) & (raw.kg_structure_org_score > 0)]
    assert len(raw) > len(scored) > 0, "the synthetic data should contain no-signal cells"
    assert len(cells) == len(scored)
    assert list(cells.columns[:12]) == ["image_path", *PROTOCOL_2]
    assert cells.index.equals(pd.RangeIndex(len(cells)))

    key = ["cohort", "napariCell_ObjectNumber", "fov_path"]
    scored = scored.assign(napariCell_ObjectNumber=scored.napariCell_ObjectNumber.astype(str))
    both = cells.merge(scored, on=key, validate="one_to_one")
    assert len(both) == len(cells)
    np.testing.assert_allclose(both.cell_area, both.napariCell_AreaShape_Area * 0.0144)
    np.testing.assert_allclose(
        both.cell_aspect_ratio,
        both.napariCell_AreaShape_MinorAxisLength / both.napariCell_AreaShape_MajorAxisLength,
    )
    np.testing.assert_allclose(both.peak_distance, both.Peak_Distance * 0.12)
    np.testing.assert_allclose(both.peak_height, both.Peak_Height)
    np.testing.assert_allclose(both.frac_area_organized_zdiscs, both.Frac_Area_Organized_ZDisks)
    np.testing.assert_array_equal(both.expert_1, both.mh_structure_org_score)
    np.testing.assert_array_equal(both.expert_2, both.kg_structure_org_score)
    np.testing.assert_allclose(
        both.score, (both.mh_structure_org_score + both.kg_structure_org_score) / 2
    )
    np.testing.assert_array_equal(both.day, both.cell_age)
    for path, relative in zip(both.image_path, both.rescaled_2D_single_cell_tiff_path, strict=True):
        assert Path(path).is_absolute() and Path(path).is_file()
        assert Path(path).name == Path(relative).name
    assert set(cells.cohort) == {"fish_1", "fish_2"}
    for path, field, well, plate in zip(both.fov_path, both.field, both.well, both.plate,
                                        strict=True):
        assert Path(path).stem == field and field.startswith(plate) and well.startswith(plate)


def test_load_aics_pixel_size_column_only_where_the_table_gives_one(synthetic_root, cells,
                                                                   tmp_path):
    # make_synthetic_aics records the pixel size rendered at (scaled cells count as 0.12 um)
    assert cells["pixel_size"].eq(0.12).all() and cells.columns[-1] == "pixel_size"
    root = _copy(synthetic_root, tmp_path)
    for cohort in ("fish_1", "fish_2"):  # the AICS tables have no pixel size column
        path = aics_paths(root, cohort)["features"]
        pd.read_csv(path).drop(columns="synthetic_pixel_size_um").to_csv(path, index=False)
    real_like = load_aics(root)
    assert "pixel_size" not in real_like.columns
    pd.testing.assert_frame_equal(real_like.drop(columns="image_path"),
                                  cells.drop(columns=["image_path", "pixel_size"]),
                                  check_exact=False)


def _copy(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "aics"
    shutil.copytree(root, copy)
    return copy


def test_load_aics_names_a_missing_table(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    metadata = aics_paths(root, "fish_2")["metadata"]
    metadata.unlink()
    with pytest.raises(FileNotFoundError, match="fish_2/metadata.csv"):
        load_aics(root)


def test_load_aics_names_a_missing_column(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    features = aics_paths(root, "fish_1")["features"]
    pd.read_csv(features).drop(columns=["Peak_Height"]).to_csv(features, index=False)
    with pytest.raises(ValueError, match=r"cp_features.csv: missing column\(s\) \['Peak_Height'\]"):
        load_aics(root)


def test_load_aics_names_a_missing_image(synthetic_root, cells, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    victim = Path(cells.image_path[3]).name
    next(root.rglob(victim)).unlink()
    with pytest.raises(FileNotFoundError, match=victim):
        load_aics(root)
    assert len(load_aics(root, check_images=False)) == len(cells)


def test_load_aics_on_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an AICS dataset root"):
        load_aics(tmp_path)
