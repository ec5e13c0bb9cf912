from __future__ import annotations

import subprocess
import sys

import numpy as np

from sarcnet_sklearn import load_model, regression_report
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.datasets import load_aics, paper_split
from sarcnet_sklearn.demo import DemoSettings, run_demo


def test_module_and_console_script_show_the_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "sarcnet_sklearn", "--help"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    assert "demo" in out and "features" in out


def test_demo_runs_end_to_end_and_saves_a_working_model(tmp_path, capsys):
    settings = DemoSettings(n_cells=300, synthetic_size=48, image_size=32, max_epochs=2)
    result = run_demo(tmp_path / "out", settings=settings, device="cpu", verbose=True)
    printed = capsys.readouterr().out
    assert "Linear regression (Protocol 2)" in printed and "SarcNet (Protocol 2)" in printed
    assert str(result["model_path"].resolve()) in printed
    for row in result["report"].values():
        assert set(row) == {"spearman", "mae", "mse", "r2"}
        assert np.isfinite(row["mae"]) and np.isfinite(row["mse"])
    assert "| model" in result["table_path"].read_text()
    model, metadata = load_model(result["model_path"], return_metadata=True)
    assert metadata["metrics"]["test"] == result["report"]["SarcNet (Protocol 2)"]
    assert result["report_path"].is_file() and str(result["report_path"].resolve()) in printed
    test = paper_split(load_aics(result["data_root"]))[2]
    prediction = model.predict(test)
    assert prediction.shape == (len(test),)
    reported = result["report"]["SarcNet (Protocol 2)"]["mse"]
    assert regression_report(test["score"], prediction)["mse"] == reported


def test_demo_subcommand_parses_its_options(tmp_path, monkeypatch):
    seen = {}

    def fake_run_demo(out, *, settings, device, random_state):
        seen.update(out=out, settings=settings, device=device, random_state=random_state)

    monkeypatch.setattr("sarcnet_sklearn.commands.demo.run_demo", fake_run_demo)
    code = main(["demo", "--out", str(tmp_path), "--device", "cpu", "--n-cells", "50",
                 "--image-size", "40", "--epochs", "3"])
    assert code == 0
    assert seen["settings"] == DemoSettings(n_cells=50, synthetic_size=112, image_size=40,
                                            max_epochs=3)
    assert seen["device"] == "cpu" and seen["out"] == str(tmp_path)
