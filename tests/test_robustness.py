"""Whatever the microscope produced: a clear per-row error or a whole-input error, never a
traceback from deep inside torch and never a silent wrong score."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sarcnet_sklearn import PROTOCOL_1, PROTOCOL_2
from sarcnet_sklearn._columns import SARCOMERE_COLUMNS
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.deploy import (
    ExcludedCellsWarning,
    ModelInputs,
    check_cells,
    predict_cells,
    save_model,
    train_model,
)
from sarcnet_sklearn.features import extract_protocol1
from sarcnet_sklearn.images import ImageReadError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("robustness")


@pytest.fixture(scope="module")
def template(cells) -> np.ndarray:
    """The 10 pages (8-bit) of a real synthetic cell."""
    return tifffile.imread(cells["image_path"].iloc[0])


@pytest.fixture(scope="module")
def trained(cells, folder):
    """A Protocol 1 model trained on 24 good cells plus two that must be left out."""
    table = cells.iloc[:26].copy()
    corrupt = folder / "corrupt_training_cell.tiff"
    corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    table.loc[table.index[0], "image_path"] = str(corrupt)
    table.loc[table.index[1], "score"] = np.nan
    with pytest.warns(ExcludedCellsWarning, match="2 of 26 cells left out"):
        return train_model(table, protocol=1, validation=0, image_size=32, max_epochs=1,
                           batch_size=16, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def model(trained):
    return trained[0]


def test_training_leaves_out_unusable_cells_and_says_so(trained):
    training = trained[1]["training"]
    assert training["n_cells"] == 24 and training["n_excluded"] == 2
    reasons = [example["error"] for example in training["excluded_examples"]]
    assert "cannot read image" in reasons[0] and "corrupt_training_cell.tiff" in reasons[0]
    assert reasons[1] == "no finite 'score'"


def _write(path, pages) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pages, photometric="minisblack")
    return str(path)


def test_bad_files_and_features_get_row_errors_and_the_other_rows_are_scored(
    model, cells, template, folder
):
    base = folder / "mixed" / "dossier ñandú 細胞"
    good = _write(base / "good cell é.tiff", template)
    truncated = base / "truncated.tiff"
    truncated.write_bytes((base / "good cell é.tiff").read_bytes()[:300])
    corrupt = base / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + np.random.default_rng(0).bytes(2000))
    empty = base / "empty.tiff"
    empty.write_bytes(b"")
    rows = {
        "good": good,
        "sixteen_bit": _write(base / "16bit.tiff", template.astype(np.uint16) * 257 + 3),
        "duplicate": good,
        "truncated": str(truncated),
        "corrupt": str(corrupt),
        "zero_bytes": str(empty),
        "missing": str(base / "missing.tiff"),
        "one_page": _write(base / "one page.tiff", template[1]),
        "blank": _write(base / "blank.tiff", np.zeros_like(template)),
        "nan_feature": good,
        "inf_feature": good,
        "text_feature": good,
        "no_path": None,
    }
    table = pd.DataFrame({"cell_id": list(rows), "image_path": list(rows.values())},
                         index=[f"id{i}" for i in range(len(rows))])
    for name in PROTOCOL_1:
        table[name] = cells[name].iloc[0]
    table["cell_area"] = table["cell_area"].astype(object)
    table.loc[table.cell_id == "nan_feature", "cell_area"] = np.nan
    table.loc[table.cell_id == "inf_feature", "cell_area"] = np.inf
    table.loc[table.cell_id == "text_feature", "cell_area"] = "large"

    result = predict_cells(model, table).set_index("cell_id")

    assert list(predict_cells(model, table.iloc[:1]).index) == ["id0"]
    expected = {
        "truncated": r"cannot read image .*truncated\.tiff",
        "corrupt": r"cannot read image .*corrupt\.tif",
        "zero_bytes": r"cannot read image .*empty\.tiff",
        "missing": r"image file not found: .*missing\.tiff",
        "one_page": r"one page\.tiff: has a single plane, plane 1 was requested",
        "blank": r"blank\.tiff: page 1 is blank .*no structure to score",
        "nan_feature": r"feature 'cell_area' is not a finite number: nan",
        "inf_feature": r"feature 'cell_area' is not a finite number: inf",
        "text_feature": r"feature 'cell_area' is not a finite number: 'large'",
        "no_path": r"no image path in column 'image_path'",
    }
    for name, pattern in expected.items():
        assert pd.Series([result.loc[name, "error"]]).str.fullmatch(f".*{pattern}.*").all(), (
            name, result.loc[name, "error"])
        assert np.isnan(result.loc[name, ["score_pred", "score_raw"]].astype(float)).all()
    scored = result.loc[["good", "sixteen_bit", "duplicate"]]
    assert scored["error"].isna().all()
    assert np.isfinite(scored["score_raw"].astype(float)).all()
    np.testing.assert_allclose(scored.loc["good", "score_raw"],
                               scored.loc["duplicate", "score_raw"], rtol=1e-6)
    alone = model.predict(table.iloc[:1])[0]
    np.testing.assert_allclose(scored.loc["good", "score_raw"], alone, rtol=1e-6)
    assert list(result.columns) == ["image_path", *SARCOMERE_COLUMNS, "pixel_size",
                                    "pixel_size_assumed", "score_pred", "score_raw", "error",
                                    "out_of_range"]


def test_huge_images_are_scored_or_get_a_page_error(model, cells, folder):
    rng = np.random.default_rng(1)
    plane = np.repeat(rng.integers(0, 255, (4000, 1), dtype=np.uint8), 4000, axis=1)
    two_pages = _write(folder / "huge" / "two_pages.tiff", np.stack([plane, plane.T]))
    one_page = _write(folder / "huge" / "one_page.tiff", plane)
    table = pd.DataFrame({"image_path": [two_pages, one_page]})
    for name in PROTOCOL_1:
        table[name] = cells[name].iloc[1]
    result = predict_cells(model, table)
    assert result["error"].iloc[0] is None and 1 <= result["score_pred"].iloc[0] <= 5
    assert "has a single plane, plane 1 was requested" in result["error"].iloc[1]


def test_measured_features_from_a_folder_of_images_through_the_shell(
    model, template, folder, capsys
):
    images = folder / "to measure — ünïcode"
    _write(images / "a good.tiff", template)
    _write(images / "b five pages.tiff", template[:5])
    no_mask = template.copy()
    no_mask[9] = 0
    _write(images / "c zero mask.tiff", no_mask)
    one_pixel = template.copy()
    one_pixel[9] = 0
    one_pixel[9, 3, 3] = 255
    _write(images / "d one pixel.tiff", one_pixel)
    _write(images / "e sixteen.tif", template.astype(np.uint16) * 100)
    model_file = save_model(model, folder / "p1 model.joblib")
    out = folder / "measured predictions.csv"
    assert main(["predict", str(model_file), str(images), "--out", str(out), "--quiet"]) == 3
    captured = capsys.readouterr()  # exit status 3: some cells not scored (#26)
    assert "3 of 5 cells were not scored" in captured.err
    assert "1 image missing or unreadable" in captured.err
    assert "1 empty or missing cell mask" in captured.err
    result = pd.read_csv(out)
    assert [name.rsplit("/", 1)[-1] for name in result["image_path"]] == [
        "a good.tiff", "b five pages.tiff", "c zero mask.tiff", "d one pixel.tiff",
        "e sixteen.tif"]
    errors = result["error"].tolist()
    assert pd.isna(errors[0]) and pd.isna(errors[4])
    assert "has 5 pages, page 9 was requested" in errors[1]
    assert "cell mask is empty" in errors[2]
    assert "cell mask has a single pixel" in errors[3]
    assert result.loc[[0, 4], "score_pred"].between(1, 5).all()
    assert result.loc[[1, 2, 3], "score_pred"].isna().all()


@pytest.mark.parametrize(
    "content, message",
    [
        ("path,cell_area\na.tiff,1\n", "no 'image_path' column"),
        ("image_path,cell_area\n", "the CSV has no rows"),
        ("", "the CSV is empty"),
    ],
)
def test_bad_tables_are_whole_input_errors(model, folder, content, message, capsys):
    model_file = folder / "table model.joblib"
    if not model_file.exists():
        save_model(model, model_file)
    table = folder / "bad table.csv"
    table.write_text(content)
    out = folder / "never written.csv"
    assert main(["predict", str(model_file), str(table), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sarcnet-sklearn predict: error: ") and message in err
    assert "Traceback" not in err and not out.exists()


def test_missing_feature_columns_and_empty_input(model, cells):
    lacking = cells.drop(columns="frac_area_fibers").head(3)
    with pytest.raises(ValueError, match=r"needs feature column\(s\) \['frac_area_fibers'\]"):
        check_cells(lacking, ModelInputs(PROTOCOL_2, image_size=32))
    with pytest.raises(ValueError, match="the input table is empty"):
        predict_cells(model, cells.head(0))
    with pytest.raises(ValueError, match="no image column 'image_path'"):
        predict_cells(model, cells[PROTOCOL_1].head(2))


_counter = itertools.count()
_DTYPES = st.sampled_from([np.uint8, np.uint16, np.int16, np.float32])


@st.composite
def cell_images(draw):
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    dtype = draw(_DTYPES)
    elements = (st.floats(-1e3, 1e3, width=32) | st.sampled_from([np.nan, np.inf])
                if dtype == np.float32 else None)
    image = draw(arrays(dtype, (height, width), elements=elements))
    mask = draw(arrays(np.uint8, (height, width), elements=st.sampled_from([0, 255])))
    return image, mask, draw(st.sampled_from([1, 2, 10, 10, 10, 10]))


@settings(max_examples=15, deadline=None)
@given(cell_images())
def test_measurement_and_prediction_succeed_or_fail_cleanly(model, folder, drawn):
    image, mask, n_pages = drawn
    try:
        features = extract_protocol1(image, mask)
    except ValueError as exc:
        assert str(exc)
    else:
        assert all(np.isfinite(value) for value in features.values())

    pages = np.zeros((n_pages, *image.shape), dtype=image.dtype)
    pages[min(1, n_pages - 1)] = image
    pages[-1] = mask.astype(image.dtype)
    path = _write(folder / "hypothesis" / f"cell {next(_counter)}.tiff", pages)
    try:
        row = predict_cells(model, pd.DataFrame({"image_path": [path]})).iloc[0]
    except (ValueError, ImageReadError) as exc:  # pragma: no cover - must not happen
        pytest.fail(f"a single bad cell raised instead of getting a row error: {exc}")
    if row["error"] is None:
        assert 1 <= row["score_pred"] <= 5 and np.isfinite(row["score_raw"])
    elif row["out_of_range"] is not None:  # an extrapolation: reported, not scored
        assert row["error"].startswith("not scored: ")
        assert np.isnan(row["score_pred"]) and np.isfinite(row["score_raw"])
    else:
        assert isinstance(row["error"], str) and row["error"]
        assert np.isnan(row["score_pred"]) and np.isnan(row["score_raw"])
