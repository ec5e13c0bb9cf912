"""reproduce: the Table 1 experiment writes its table, keeps finished rows, resumes a row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from skorch.callbacks import Callback

from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics, paper_split
from sarcnet_sklearn.deploy import load_model, predict_cells
from sarcnet_sklearn.reproduce import PAPER_TABLE1, ReproduceSettings, reproduce_table1

TINY = ReproduceSettings(image_size=32, max_epochs=3, batch_size=16, n_cells=200,
                         synthetic_size=48)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """The synthetic cells reproduce makes for TINY, made once for this file's library calls
    (the command-line test still has reproduce make its own)."""
    return make_synthetic_aics(tmp_path_factory.mktemp("tiny") / "synthetic_aics",
                               n_cells=TINY.n_cells, image_size=TINY.synthetic_size,
                               random_state=0)


class StopAfter(Callback):
    """Press Ctrl-C at the end of an epoch (skorch catches it and returns early)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_reproduce_writes_the_table_resumes_a_row_and_skips_finished_rows(tiny_root, tmp_path):
    out = tmp_path / "table1"
    params = {"settings": TINY, "device": "cpu", "rows": ["linear", "sarcnet_p2"],
              "split": "cell", "verbose": False, "save_models": True}
    with pytest.raises(KeyboardInterrupt, match="after epoch 2 of 3"):
        reproduce_table1(tiny_root, out, callbacks=[StopAfter(2)], **params)
    # The linear row finished before the interruption; SarcNet left a checkpoint.
    assert (out / "rows" / "linear.json").is_file()
    assert not (out / "rows" / "sarcnet_p2.json").exists()
    history = json.loads((out / "checkpoints" / "sarcnet_p2" / "history.json").read_text())
    assert len(history) == 2
    linear_mtime = (out / "rows" / "linear.json").stat().st_mtime_ns

    result = reproduce_table1(tiny_root, out, **params)
    assert result["skipped"] == ["linear"]
    assert (out / "rows" / "linear.json").stat().st_mtime_ns == linear_mtime
    sarcnet = result["rows"]["sarcnet_p2"]
    assert sarcnet["resumed_from_epoch"] == 2 and 1 <= sarcnet["best_epoch"] <= 3
    assert not (out / "checkpoints" / "sarcnet_p2").exists()

    table = pd.read_csv(out / "table1.csv")
    assert list(table["model"]) == ["Linear regression", "SarcNet (Protocol 2)",
                                    "SarcNet (Protocol 2), calibrated"]
    assert table.loc[1, "paper_spearman"] == PAPER_TABLE1["sarcnet_p2"][0]
    # the paper's row is the raw output; the calibrated one ranks the cells the same way
    assert pd.isna(table.loc[2, "paper_spearman"])
    assert table.loc[2, "spearman"] == pytest.approx(table.loc[1, "spearman"])
    assert sarcnet["params"]["calibrate_scores"] is False
    assert table[["spearman_expert_1", "spearman_expert_2"]].notna().all().all()
    assert table[["spearman", "mae", "mse", "r2"]].notna().all().all()
    predictions = pd.read_csv(out / "predictions" / "sarcnet_p2.csv")
    assert len(predictions) == sum(json.loads((out / "rows" / "linear.json").read_text())
                                   ["settings"]["split"][2:])
    assert set(predictions["day"]) == {18, 32}
    # the score users see is the one predict gives the same cell (one score policy)
    cells = load_aics(tiny_root).set_index("image_path").loc[predictions["image_path"]]
    scored = predict_cells(load_model(result["models"]["sarcnet_p2"]), cells.reset_index())
    np.testing.assert_allclose(scored["score_pred"], predictions["score_pred"], rtol=1e-5)
    assert "Paper (Le et al., Table 1)" in (out / "table1.md").read_text()
    assert (out / "fig3_day_histogram.png").stat().st_size > 0

    # A third run retrains nothing: every row is read back.
    again = reproduce_table1(tiny_root, out, **params)
    assert again["skipped"] == ["linear", "sarcnet_p2"]


def test_reproduce_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["reproduce", "--out", str(out), "--rows", "linear", "--n-cells", "200",
                 "--image-size", "32", "--epochs", "1", "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "table1.csv" in printed and "split by field" in printed
    assert (out / "table1.md").is_file()
    # both splits side by side; the paper's numbers stand beside the paper's split only
    table = pd.read_csv(out / "table1.csv").set_index("model")
    assert list(table.index) == ["Linear regression", "Linear regression (field split)"]
    assert table.loc["Linear regression", "paper_spearman"] == PAPER_TABLE1["linear"][0]
    assert pd.isna(table.loc["Linear regression (field split)", "paper_spearman"])
    field = pd.read_csv(out / "predictions" / "linear_field.csv")
    train, _, test = paper_split(load_aics(out / "synthetic_aics"), by="field")
    assert set(field["field"]) == set(test["field"]) and set(field["field"]).isdisjoint(
        train["field"])
    record = json.loads((out / "rows" / "linear_field.json").read_text())
    assert record["split_by"] == "field" and record["settings"]["split_by"] == "field"
    assert "expert_1 vs expert_2" in record["experts"]
    assert "Spearman between the experts" in (out / "table1.md").read_text()
    with pytest.raises(SystemExit):
        main(["reproduce", "--rows", "vgg"])


def test_rows_beyond_the_paper_have_no_paper_numbers_and_paper_rows_keep_its_recipe(tiny_root,
                                                                                 tmp_path):
    from dataclasses import replace

    from sarcnet_sklearn.reproduce import ROWS, _network_params

    for row in ROWS:
        if row.key in PAPER_TABLE1 and not row.linear:
            assert _network_params(row) | {"augment": None, "test_time_augment": False} \
                == _network_params(row)
    out = tmp_path / "extra"
    result = reproduce_table1(tiny_root, out, settings=replace(TINY, max_epochs=1), device="cpu",
                              rows=["sarcnet_d4", "convnext_tiny"], split="cell", verbose=False)
    rows = result["rows"]
    assert rows["sarcnet_d4"]["params"] == {"augment": "d4", "test_time_augment": True,
                                            "calibrate_scores": False}
    assert rows["convnext_tiny"]["params"]["backbone"] == "convnext_tiny"
    table = result["table"].set_index("model")
    assert table.loc["ConvNeXt-Tiny", ["spearman", "mae"]].notna().all()
    assert table.loc["ConvNeXt-Tiny", "paper_spearman"] != table.loc["ConvNeXt-Tiny",
                                                                      "paper_spearman"]  # NaN
    markdown = (out / "table1.md").read_text()
    paper_part = markdown.split("## Paper")[1]
    assert "ConvNeXt" not in paper_part and "SarcNet" not in paper_part  # no paper rows run
