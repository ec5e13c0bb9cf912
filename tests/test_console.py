"""Progress bars and skorch's epoch table: drawn on a terminal, plain in a log file."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

from sarcnet_sklearn import SarcNetRegressor
from sarcnet_sklearn._console import PROGRESS_VARIABLE, progress_bar, show_progress
from sarcnet_sklearn._epoch_table import EpochTable


@pytest.fixture
def terminal():
    """A real pseudo-terminal, opened as a text stream (what a shell's stderr is)."""
    main_fd, child_fd = os.openpty()
    stream = open(child_fd, "w", buffering=1)  # noqa: SIM115
    yield stream, main_fd
    stream.close()
    os.close(main_fd)


def _bar_output(stream) -> None:
    for _ in progress_bar(range(3), desc="work", file=stream, mininterval=0):
        pass


@pytest.mark.parametrize("setting", ["", "1", "0"])
def test_progress_bars_only_on_a_terminal_unless_asked(setting, terminal, tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_VARIABLE, setting)
    stream, main_fd = terminal
    log = (tmp_path / "log.txt").open("w")
    monkeypatch.setattr(sys, "stderr", stream)
    drawn_on_terminal = show_progress()
    monkeypatch.setattr(sys, "stderr", log)
    drawn_in_log = show_progress()
    _bar_output(log)
    log.close()
    assert drawn_on_terminal is (setting != "0")
    assert drawn_in_log is (setting == "1")
    assert (b"\r" in (tmp_path / "log.txt").read_bytes()) is drawn_in_log
    assert show_progress(False) is False


def test_epoch_table_is_coloured_only_on_a_terminal(terminal, tmp_path, monkeypatch):
    stream, _ = terminal
    net = SarcNetRegressor(use_images=False, max_epochs=2, batch_size=16, device="cpu",
                           random_state=0)
    log = (tmp_path / "epochs.txt").open("w")
    monkeypatch.setattr(sys, "stdout", log)
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(32, 2)), columns=["a", "b"])
    net.fit(X, np.linspace(1, 5, 32))
    log.close()
    text = (tmp_path / "epochs.txt").read_text()
    assert "valid_loss" in text and len(text.strip().splitlines()) == 4  # header, rule, 2 rows
    assert "\x1b[" not in text
    table = dict(net.callbacks_)["print_log"]
    assert isinstance(table, EpochTable)
    first_epoch = net.history[0]  # its losses are the best so far: PrintLog colours them
    assert "\x1b[" not in table.table(first_epoch)
    monkeypatch.setattr(sys, "stdout", stream)
    assert "\x1b[" in table.table(first_epoch)
