"""Reproduce Table 1 of the SarcNet paper (and its Fig. 3 histogram) in one command.

``sarcnet-sklearn reproduce --aics-root DIR`` splits the AICS cells as the paper
does, fits the six models of Table 1 with the paper's recipe (and two rows beyond it:
SarcNet with D4 augmentation and test-time averaging, ConvNeXt-Tiny), and writes the
test-split metrics beside the paper's numbers. Each finished row is stored in
the output folder (metrics and predictions) and skipped when the command is run
again; a row interrupted midway continues from its last finished epoch (skorch
checkpoints in ``OUT/checkpoints/<row>/``). Without ``--aics-root`` the same
experiment runs on a synthetic dataset, reduced on a CPU. The demo
(:func:`~sarcnet_sklearn.demo.run_demo`) is two of these rows.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from skorch.callbacks import Checkpoint, LoadInitState, ProgressBar

from ._columns import (
    DAY_COLUMN,
    EXPERT_COLUMNS,
    GROUP_COLUMNS,
    IMAGE_COLUMN,
    SCORE_PRED_COLUMN,
    TARGET_COLUMN,
)
from ._console import show_progress
from ._recipe import BATCH_SIZE, IMAGE_SIZE_PX, LEARNING_RATE, MAX_EPOCHS
from ._table1 import ROW_KEYS, ROWS, SPLITS, Row
from .datasets import load_aics, make_synthetic_aics, paper_split
from .datasets._aics import SPLIT_GROUPS
from .metrics import METRIC_NAMES, expert_agreement, metrics_table, regression_report
from .outputs import write_atomically, write_csv_atomically
from .pipeline import make_linear_baseline, make_sarcnet_pipeline
from .regressor import DEFAULT_DEVICE
from .score_table import score_table

METRICS = tuple(METRIC_NAMES)

PAPER_TABLE1 = {
    "linear": (0.756, 0.373, 0.234, 0.514),
    "resnet18": (0.829, 0.453, 0.300, 0.379),
    "densenet": (0.813, 0.340, 0.194, 0.599),
    "alexnet": (0.788, 0.346, 0.195, 0.596),
    "sarcnet_p1": (0.825, 0.310, 0.159, 0.671),
    "sarcnet_p2": (0.831, 0.310, 0.161, 0.668),
}
"""Table 1 of Le et al. (test split): Spearman, MAE, MSE, R^2 per row (the paper's rows only)."""

PAPER_RECIPE = {"augment": None, "test_time_augment": False, "calibrate_scores": False}
"""The paper trains and predicts without augmentation and reports the network's raw output;
rows use it unless they say otherwise. A network row is also scored through its validation
calibration (:mod:`sarcnet_sklearn._score_map`), shown as ``"<label>, calibrated"``."""

CALIBRATED = ", calibrated"
"""Appended to a row's label for its scores through the validation calibration."""

HISTOGRAM_ROW = "sarcnet_p2"

def split_key(row_key: str, split: str) -> str:
    """The name of a row fitted on a split: the row's key, with ``_<split>`` unless by cell."""
    return row_key if split == "cell" else f"{row_key}_{split}"


def split_label(label: str, split: str) -> str:
    """A row's label, with `` (<split> split)`` unless by cell (the paper's split)."""
    return label if split == "cell" else f"{label} ({split} split)"


@dataclass(frozen=True)
class ReproduceSettings:
    """Size of the run: the paper's recipe on a GPU, a reduced one on a CPU.

    ``n_cells`` and ``synthetic_size`` only apply to the synthetic dataset.
    """

    image_size: int = IMAGE_SIZE_PX
    max_epochs: int = MAX_EPOCHS
    batch_size: int = BATCH_SIZE
    lr: float = LEARNING_RATE
    n_cells: int = 3000
    synthetic_size: int = 256

    @classmethod
    def for_device(cls, device: str, synthetic: bool) -> ReproduceSettings:
        if device.startswith("cuda") or not synthetic:
            return cls()
        return cls(image_size=64, max_epochs=15, n_cells=1200, synthetic_size=112)


def reproduce_table1(
    aics_root: str | PathLike | None = None,
    out: str | PathLike = "sarcnet_table1",
    *,
    settings: ReproduceSettings | None = None,
    weights: str | PathLike | None = None,
    device: str | None = None,
    precision: str = "auto",
    random_state: int = 0,
    rows: Sequence[str] | None = None,
    callbacks: Sequence | None = None,
    save_models: bool = False,
    split: str | Sequence[str] = SPLITS,
    verbose: bool = True,
) -> dict[str, object]:
    """Fit the models of Table 1 on the paper's split and write the table and Fig. 3.

    Parameters
    ----------
    aics_root : str or path-like, optional
        The AICS dataset (see :func:`~sarcnet_sklearn.datasets.load_aics`).
        None: a synthetic dataset is written to ``OUT/synthetic_aics``.
    out : str or path-like, default="sarcnet_table1"
        Output folder: ``table1.csv``, ``table1.md``, ``fig3_day_histogram.png``,
        ``rows/<row>.json`` (metrics), ``predictions/<row>.csv`` (test split).
    settings : ReproduceSettings, optional
        Default: the paper's recipe (224 px, 100 epochs, batch 40, lr 5e-4), except
        for synthetic data on a CPU (64 px, 15 epochs, 1,200 cells).
    weights : None, "imagenet" or folder, optional
        Initial CNN weights: random, torchvision's ImageNet weights, or a folder
        holding torchvision's weight files (``resnet18-*.pth``, ``densenet121-*.pth``,
        ``alexnet-*.pth``).
    device : str, optional
        Default: "cuda" when a GPU is present.
    precision : str, default="auto"
        See :class:`~sarcnet_sklearn.SarcNetRegressor`.
    random_state : int, default=0
        Seeds the networks and the synthetic data, so reruns are comparable.
    rows : sequence of str, optional
        Subset of ``ROW_KEYS`` to run (default: all: the paper's six rows with its recipe,
        no augmentation, then ``sarcnet_d4`` and ``convnext_tiny``).
    callbacks : sequence, optional
        Extra skorch callbacks for the network rows.
    save_models : bool, default=False
        Also save each row's fitted model, calibrated on the validation split
        (prediction intervals), as ``models/<row>.joblib`` with its metadata
        (load with :func:`~sarcnet_sklearn.load_model`); a finished row without
        its model file is then run again.
    split : str or sequence of str, default=("cell", "field")
        How the cells are split (:func:`~sarcnet_sklearn.datasets.paper_split`
        ``by=``): ``"cell"``, the paper's split, and/or ``"field"`` (``"well"``,
        ``"plate"``), keeping each field of view in one part, which a reader can
        trust more (cells of one field are alike). Rows on a split other than by cell are
        stored as ``<row>_<split>`` and labelled ``"<label> (<split> split)"``,
        beside the paper's rows in the table. Both splits fit every row twice.
    verbose : bool, default=True
        Print progress and where the outputs went.

    Returns
    -------
    result : dict
        ``table`` (DataFrame), ``table_csv``, ``table_md``, ``histogram`` (path or
        None), ``rows`` (metrics per row key), ``skipped`` (row keys found done),
        ``models`` (row key to model file, with ``save_models``), ``data_root``,
        ``test`` (the test cells of the first split: the paper's, by cell, by
        default) and ``tests`` (split name to its test cells).

    Examples
    --------
    The paper's stratified split needs a few hundred cells, and training on them takes
    minutes: ``tests/test_reproduce.py`` runs it on 200 synthetic cells.

    >>> from sarcnet_sklearn.reproduce import reproduce_table1
    >>> result = reproduce_table1("aics", "table1_out", weights="imagenet")  # doctest: +SKIP
    >>> result["table"][["model", "spearman", "paper_spearman"]]  # doctest: +SKIP
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    device = device or DEFAULT_DEVICE
    settings = settings or ReproduceSettings.for_device(device, synthetic=aics_root is None)
    selected = _selected_rows(rows)
    splits = [split] if isinstance(split, str) else list(split)
    if not splits or any(name not in SPLIT_GROUPS for name in splits):
        raise ValueError(f"split must be among {list(SPLIT_GROUPS)}, got {split!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    if aics_root is None:
        data_root = _synthetic_dataset(out, settings, random_state, say)
        data = f"synthetic: {settings.n_cells} cells, {settings.synthetic_size} px"
    else:
        data_root = Path(aics_root)
        data = str(data_root.resolve())
    cells = load_aics(data_root)
    base = {
        "data": data,
        **asdict(settings),
        "weights": None if weights is None else str(weights),
        "precision": precision,
        "random_state": random_state,
    }
    if aics_root is not None:
        del base["n_cells"], base["synthetic_size"]

    results, skipped, models, tests = {}, [], {}, {}
    for by in splits:
        train, valid, test = paper_split(cells, by=by)
        tests[by] = test
        say(f"{len(cells)} cells, split by {by}: {len(train)} train / {len(valid)} validation "
            f"/ {len(test)} test")
        run = {**base, "split": [len(train), len(valid), len(test)]}
        if by != "cell":
            run["split_by"] = by
        for row in selected:
            _run_row(row, by, train, valid, test, out, run, settings, weights, device,
                     precision, random_state, callbacks, save_models, verbose, say,
                     results, skipped, models)

    table = format_table1(results)
    table_csv = write_csv_atomically(table, out / "table1.csv")
    table_md = out / "table1.md"
    markdown = _markdown(table, base, tests)
    _write_text(table_md, markdown)
    histogram = None
    if split_key(HISTOGRAM_ROW, splits[0]) in results:
        histogram = _histogram(out, split_key(HISTOGRAM_ROW, splits[0]))
    say("")
    say(markdown)
    say(f"Table (CSV):      {table_csv.resolve()}")
    say(f"Table (Markdown): {table_md.resolve()}")
    if histogram is not None:
        say(f"Fig. 3 histogram: {histogram.resolve()}")
    say(f"Per-row metrics and test predictions: {(out / 'rows').resolve()}, "
        f"{(out / 'predictions').resolve()}")
    if models:
        say(f"Fitted models:    {(out / 'models').resolve()}  (load with "
            "sarcnet_sklearn.load_model)")
    return {
        "table": table,
        "table_csv": table_csv,
        "table_md": table_md,
        "histogram": histogram,
        "rows": results,
        "skipped": skipped,
        "models": models,
        "data_root": data_root,
        "test": tests[splits[0]],
        "tests": tests,
    }


def _run_row(row, by, train, valid, test, out, run, settings, weights, device, precision,
             random_state, callbacks, save_models, verbose, say, results, skipped, models):
    """Fit (or read back) one row on one split and record it in ``results``."""
    key, label = split_key(row.key, by), split_label(row.label, by)
    model_path = out / "models" / f"{key}.joblib"
    stored = _load_row(out, key, run)
    if stored is not None and (model_path.is_file() or not save_models):
        if save_models:
            models[key] = model_path
        say(f"{label}: already done, skipped (delete {out / 'rows' / key}.json to redo it)")
        results[key] = stored
        skipped.append(key)
        return
    say(f"{label}: training on {device} ...")
    start = time.perf_counter()
    if row.linear:
        model = make_linear_baseline(row.protocol).fit(train, train[TARGET_COLUMN])
        extra = {}
    else:
        model, extra = _fit_network(
            row, key, label, train, valid, out, run, settings, weights, device, precision,
            random_state, callbacks, verbose, say,
        )
    calibrated = None
    net = None if row.linear else model.regressor
    if net is not None and getattr(net, "score_map_", None) is not None:
        # the paper's raw output, and the scores users see (calibrated, by the score policy)
        if net.calibrate_scores:
            net.set_params(calibrate_scores=False)
        prediction = np.asarray(model.predict(test), dtype=np.float64).reshape(-1)
        net.set_params(calibrate_scores=True)
        calibrated = score_table(model, test)[SCORE_PRED_COLUMN].to_numpy(dtype=np.float64)
    else:
        prediction = np.asarray(model.predict(test), dtype=np.float64).reshape(-1)
    record = {
        "row": key,
        "label": label,
        "split_by": by,
        "params": {} if row.linear else _network_params(row),
        "metrics": regression_report(test[TARGET_COLUMN], prediction),
        "experts": expert_agreement(test, prediction),
        "calibrated": None if calibrated is None else _calibrated_record(
            net.score_map_["kind"], test, calibrated),
        "seconds": round(time.perf_counter() - start, 1),
        "device": device,
        **extra,
        "settings": run,
    }
    if save_models:
        models[key] = _save_model(model, model_path, record, train, valid)
    _save_row(out, key, record, test, prediction, calibrated)
    shutil.rmtree(out / "checkpoints" / key, ignore_errors=True)
    results[key] = record
    metrics = record["metrics"]
    shown = ", ".join(f"{METRIC_NAMES[name]} {metrics[name]:.3f}" for name in METRICS)
    say(f"{label}: {shown} ({record['seconds']:.0f} s)")
    if record["calibrated"] is not None:
        metrics = record["calibrated"]["metrics"]
        shown = ", ".join(f"{METRIC_NAMES[name]} {metrics[name]:.3f}" for name in METRICS)
        say(f"{label}{CALIBRATED} ({record['calibrated']['map']} map): {shown}")


def format_table1(results: dict[str, dict]) -> pd.DataFrame:
    """Measured metrics beside the paper's, one row per model, in Table 1's order.

    A model fitted on several splits has one row per split, side by side; the paper's
    numbers stand beside its own split (by cell) only. ``spearman_<expert>`` is the
    model's Spearman against that expert.
    """
    records = []
    for row in ROWS:
        for by in SPLIT_GROUPS:
            key = split_key(row.key, by)
            if key not in results:
                continue
            result = results[key]
            versions = [("", result, PAPER_TABLE1.get(row.key) if by == "cell" else None)]
            if result.get("calibrated"):
                versions.append((CALIBRATED, result["calibrated"], None))
            for suffix, scored, paper in versions:
                record = {"model": split_label(row.label, by) + suffix}
                record.update({name: scored["metrics"][name] for name in METRICS})
                paper = paper or (np.nan,) * len(METRICS)
                record.update({f"paper_{name}": value
                               for name, value in zip(METRICS, paper, strict=True)})
                experts = scored.get("experts", {})
                record.update({f"spearman_{name}": experts.get(name, np.nan)
                               for name in EXPERT_COLUMNS})
                record["best_epoch"] = result.get("best_epoch")
                record["seconds"] = result["seconds"]
                records.append(record)
    return pd.DataFrame.from_records(records)


def _selected_rows(rows: Sequence[str] | None) -> list[Row]:
    if rows is None:
        return list(ROWS)
    unknown = sorted(set(rows) - set(ROW_KEYS))
    if unknown:
        raise ValueError(f"unknown row(s) {unknown}; choose from {list(ROW_KEYS)}")
    return [row for row in ROWS if row.key in set(rows)]


def _synthetic_dataset(out: Path, settings: ReproduceSettings, random_state: int, say) -> Path:
    root = out / "synthetic_aics"
    marker = out / "synthetic_aics.json"
    wanted = {"n_cells": settings.n_cells, "image_size": settings.synthetic_size,
              "random_state": random_state}
    if marker.is_file() and json.loads(marker.read_text()) == wanted and root.is_dir():
        say(f"Reusing the synthetic dataset in {root}")
        return root
    say(f"Generating {settings.n_cells} synthetic cells in {root} ...")
    make_synthetic_aics(root, n_cells=settings.n_cells, image_size=settings.synthetic_size,
                        random_state=random_state, n_jobs=-1)
    _write_text(marker, json.dumps(wanted))
    return root


def _backbone_weights(weights, backbone: str):
    if weights is None or weights == "imagenet":
        return weights
    folder = Path(weights)
    if not folder.is_dir():
        raise ValueError(f"weights must be None, 'imagenet' or a folder of weight files; "
                         f"{folder} is not a folder")
    found = sorted(folder.glob(f"{backbone}-*.pt*")) or sorted(folder.glob(f"{backbone}*.pt*"))
    if not found:
        raise ValueError(f"no {backbone} weight file ({backbone}-*.pth) in {folder}")
    return found[0]


def _network_params(row: Row) -> dict:
    """The row's regressor settings: the paper's recipe unless the row says otherwise."""
    return {**PAPER_RECIPE, **row.params}


def _is_best_epoch(net) -> bool:
    """Whether the last epoch has the best validation Spearman so far (resumed epochs included)."""
    scores = [-np.inf if s is None or np.isnan(s) else s for s in net.history[:, "valid_spearman"]]
    return scores[-1] >= max(scores[:-1], default=-np.inf)


def _fit_network(row, key, label, train, valid, out, run, settings, weights, device, precision,
                 random_state, callbacks, verbose, say):
    folder = out / "checkpoints" / key
    signature = folder / "settings.json"
    if folder.is_dir() and (not signature.is_file()
                            or json.loads(signature.read_text()) != run):
        shutil.rmtree(folder)  # checkpoints of a run with other settings
    folder.mkdir(parents=True, exist_ok=True)
    _write_text(signature, json.dumps(run))
    history = folder / "history.json"
    done = len(json.loads(history.read_text())) if history.is_file() else 0
    remaining = max(settings.max_epochs - done, 0)
    if done:
        say(f"{label}: resuming from the checkpoint of epoch {done} of "
            f"{settings.max_epochs} in {folder}")
    last = Checkpoint(monitor=None, dirname=str(folder), f_params="last_params.pt",
                      f_optimizer="last_optimizer.pt", f_criterion=None,
                      f_history="history.json", event_name=None)
    best = Checkpoint(monitor=_is_best_epoch, dirname=str(folder), f_params="best_params.pt",
                      f_optimizer=None, f_criterion=None, f_history=None, event_name=None)
    row_callbacks = [("checkpoint_last", last), ("checkpoint_best", best),
                     ("resume", LoadInitState(last))]
    if show_progress(verbose):
        row_callbacks.append(("progress", ProgressBar()))
    row_callbacks += [(f"extra_{i}", cb) for i, cb in enumerate(callbacks or ())]
    model = make_sarcnet_pipeline(
        protocol=row.protocol,
        **_network_params(row),
        image_size=settings.image_size,
        max_epochs=remaining,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weights=_backbone_weights(weights, row.params.get("backbone", "resnet18")),
        device=device,
        precision=precision,
        random_state=random_state,
        verbose=int(verbose),
        callbacks=row_callbacks,
    )
    model.fit(train, train[TARGET_COLUMN], validation_data=(valid, valid[TARGET_COLUMN]))
    net = model.regressor
    finished = len(net.history)
    if finished < settings.max_epochs:  # skorch swallows Ctrl-C and returns early
        raise KeyboardInterrupt(
            f"{label} stopped after epoch {finished} of {settings.max_epochs}; "
            f"run the same command again to continue from {folder}"
        )
    if (folder / "best_params.pt").is_file():
        net.load_params(f_params=str(folder / "best_params.pt"))
    scores = [np.nan if s is None else s for s in net.history[:, "valid_spearman"]]
    return model, {
        "best_epoch": int(np.nanargmax(scores)) + 1,
        "best_valid_spearman": float(np.nanmax(scores)),
        "resumed_from_epoch": done,
    }


def _load_row(out: Path, key: str, run: dict) -> dict | None:
    path = out / "rows" / f"{key}.json"
    predictions = out / "predictions" / f"{key}.csv"
    if not (path.is_file() and predictions.is_file()):
        return None
    record = json.loads(path.read_text())
    return record if record.get("settings") == run else None


def _calibrated_record(kind: str, test: pd.DataFrame, scores: np.ndarray) -> dict:
    """Metrics of the score policy's scores on the test cells (those it refused, as far
    outside the training data, are left out and counted)."""
    scored = np.isfinite(scores)
    return {"map": kind,
            "metrics": regression_report(test[TARGET_COLUMN][scored], scores[scored]),
            "experts": expert_agreement(test[scored], scores[scored]),
            "n_refused": int((~scored).sum())}


def _save_row(out: Path, key: str, record: dict, test: pd.DataFrame, prediction,
              calibrated=None) -> None:
    kept = [IMAGE_COLUMN, DAY_COLUMN, TARGET_COLUMN,
            *[name for name in [*EXPERT_COLUMNS, *GROUP_COLUMNS] if name in test.columns]]
    table = test[kept].reset_index(drop=True).assign(prediction=prediction)
    if calibrated is not None:
        table[SCORE_PRED_COLUMN] = calibrated  # as predict would score the cell
    write_csv_atomically(table, out / "predictions" / f"{key}.csv")
    _write_text(out / "rows" / f"{key}.json", json.dumps(record, indent=2))


def _save_model(model, path: Path, record: dict, train: pd.DataFrame,
                valid: pd.DataFrame) -> Path:
    from .deploy import save_model
    from .intervals import calibrate

    calibrate(model, valid, valid[TARGET_COLUMN])
    training = {"source": record["settings"]["data"], "row": record["row"],
                "n_train": len(train), "n_validation": len(valid)}
    metrics = {"test": (record["calibrated"] or record)["metrics"]}
    if record["calibrated"]:
        metrics["test_raw"] = record["metrics"]
    return save_model(model, path, metadata={"training": training, "metrics": metrics})


def _write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: Path(temporary).write_text(text))


def _markdown(table: pd.DataFrame, run: dict, tests: dict[str, pd.DataFrame]) -> str:
    rows = table.set_index("model")
    measured = metrics_table({model: row[list(METRICS)] for model, row in rows.iterrows()})
    for name in EXPERT_COLUMNS:
        measured[f"Spearman vs {name}"] = rows[f"spearman_{name}"]
    paper = metrics_table({
        model: {name: row[f"paper_{name}"] for name in METRICS} for model, row in rows.iterrows()
    }).dropna(how="all")
    settings = ", ".join(f"{key} {value}" for key, value in run.items())
    sizes = ", ".join(f"{len(test)} cells split by {by}" for by, test in tests.items())
    ceiling = "; ".join(
        f"split by {by}: " + ", ".join(f"{pair} {value:.3f}" for pair, value
                                       in expert_agreement(test, test[TARGET_COLUMN]).items()
                                       if " vs " in pair)
        for by, test in tests.items()
    )
    return (
        f"# Table 1, reproduced (test cells: {sizes})\n\n{settings}\n\n"
        f"## Measured\n\n{measured.to_markdown(floatfmt='.3f')}\n\n"
        f"Spearman between the experts on the same test cells (the human ceiling of a "
        f"model's Spearman vs one expert): {ceiling or 'no expert columns'}.\n\n"
        f"## Paper (Le et al., Table 1)\n\n{paper.to_markdown(floatfmt='.3f')}\n"
    )


def _histogram(out: Path, key: str) -> Path:
    from .explain import plot_day_histograms

    predictions = pd.read_csv(out / "predictions" / f"{key}.csv")
    path = out / "fig3_day_histogram.png"
    return Path(plot_day_histograms(predictions["prediction"], predictions[DAY_COLUMN], path,
                                    expert=predictions[TARGET_COLUMN]))
