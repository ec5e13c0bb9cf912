from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sarcnet_sklearn import load_model, regression_report
from sarcnet_sklearn.commands import build_parser
from sarcnet_sklearn.commands._main import COMMAND_MODULES
from sarcnet_sklearn.commands.reproduce import run_settings
from sarcnet_sklearn.datasets import load_aics, paper_split
from sarcnet_sklearn.demo import run_demo
from sarcnet_sklearn.intervals import interval_half_width
from sarcnet_sklearn.reproduce import ReproduceSettings

HEAVY_MODULES = ("torch", "torchvision", "skorch", "sklearn", "optuna", "pandas", "distributed",
                 "dask")
"""What building the parser and printing any help or usage error must not import: a command
imports them in its run function."""


def test_module_and_console_script_show_the_subcommands_without_heavy_imports():
    """In one fresh Python (each costs seconds): ``python -m sarcnet_sklearn --help``, then the
    whole parser, every subcommand's help and a usage error, none importing a heavy library."""
    code = textwrap.dedent(f"""
        import contextlib, io, runpy, sys
        from sarcnet_sklearn.commands import build_parser

        sys.argv = ["sarcnet-sklearn", "--help"]
        with contextlib.suppress(SystemExit):
            runpy.run_module("sarcnet_sklearn", run_name="__main__")
        parser = build_parser()
        for command in parser._subparsers._group_actions[0].choices.values():
            command.format_help()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):
            parser.parse_args(["predict", "model.joblib"])
        print([name for name in {HEAVY_MODULES!r} if name in sys.modules])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    *help_lines, loaded = done.stdout.splitlines()
    assert "usage: sarcnet-sklearn" in help_lines[0]
    assert all(command in "\n".join(help_lines) for command in COMMAND_MODULES)
    assert loaded == "[]", f"building the parser and printing help imported {loaded}"


def test_each_command_is_registered_by_its_module_and_features_never_loads_torch(cells,
                                                                                 tmp_path):
    everything = build_parser()._subparsers._group_actions[0].choices
    assert list(everything) == list(COMMAND_MODULES)
    for command in COMMAND_MODULES:
        alone = build_parser(command)._subparsers._group_actions[0].choices
        assert command in alone and set(alone) <= set(COMMAND_MODULES)

    out = tmp_path / "features.csv"
    code = ("import sys; from sarcnet_sklearn.commands import main; "
            "code = main(sys.argv[1:]); print('torch' in sys.modules, 'skorch' in sys.modules); "
            "sys.exit(code)")
    done = subprocess.run(
        [sys.executable, "-c", code, "features", cells["image_path"].iloc[0], "-o", str(out),
         "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False"
    assert len(out.read_text().splitlines()) == 2


def test_demo_runs_end_to_end_and_saves_a_working_model(tmp_path, capsys):
    settings = ReproduceSettings(n_cells=220, synthetic_size=48, image_size=32, max_epochs=2)
    result = run_demo(tmp_path / "out", settings=settings, device="cpu", verbose=True)
    printed = capsys.readouterr().out
    assert "Linear regression" in printed and "SarcNet (Protocol 2)" in printed
    assert str(result["model_path"].resolve()) in printed
    assert set(result["report"]) == {"Linear regression", "SarcNet (Protocol 2)",
                                     "SarcNet (Protocol 2), calibrated"}
    for row in result["report"].values():
        assert set(row) == {"spearman", "mae", "mse", "r2"}
        assert np.isfinite(row["mae"]) and np.isfinite(row["mse"])
    assert "| model" in result["table_path"].read_text()
    model, metadata = load_model(result["model_path"], return_metadata=True)
    # the model file scores through its validation calibration; the paper's raw row is kept too
    assert metadata["metrics"]["test"] == result["report"]["SarcNet (Protocol 2), calibrated"]
    assert metadata["metrics"]["test_raw"] == result["report"]["SarcNet (Protocol 2)"]
    assert interval_half_width(model, 0.9) > 0  # calibrated: the report shows intervals
    assert result["report_path"].is_file() and str(result["report_path"].resolve()) in printed
    test = paper_split(load_aics(result["data_root"]))[2]
    prediction = model.predict(test)
    assert prediction.shape == (len(test),)
    reported = result["report"]["SarcNet (Protocol 2), calibrated"]["mse"]
    assert regression_report(test["score"], prediction)["mse"] == reported

    again = run_demo(tmp_path / "out", settings=settings, device="cpu", verbose=True)
    assert "already done, skipped" in capsys.readouterr().out
    assert again["report"] == result["report"] and again["model_path"] == result["model_path"]


def test_demo_and_reproduce_share_their_run_options():
    parser = build_parser()
    args = parser.parse_args(["demo", "--device", "cpu", "--n-cells", "50", "--image-size",
                              "40", "--epochs", "3"])
    assert run_settings(args, synthetic=True) == (
        "cpu", ReproduceSettings(n_cells=50, synthetic_size=112, image_size=40, max_epochs=3))
    args = parser.parse_args(["reproduce", "--device", "cpu", "--n-cells", "50",
                              "--image-size", "40", "--epochs", "3"])
    assert run_settings(args, synthetic=True) == (
        "cpu", ReproduceSettings(n_cells=50, synthetic_size=112, image_size=40, max_epochs=3))
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--epochs", "0"])
