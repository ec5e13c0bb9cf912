"""Fields of view on disk to a results folder, a chunk of fields at a time, resumable.

:func:`score_field_files` is what the ``fields`` command does: each field is
read, cut, measured and scored on its own (here, or on a Dask worker), its
overlays and single-cell crops are written as soon as it is done, and its rows
reach ``OUT/cells.csv`` through :func:`~sarcnet_sklearn.scale.run_in_chunks`,
so a stopped run started again skips the fields already done (their pictures
are not drawn again) and ends with the rows of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from functools import partial
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import (
    IMAGE_COLUMN,
    PROTOCOL_1,
    REASON_COLUMN,
    SARCOMERE_COLUMNS,
    SCORE_RANGE,
    TARGET_COLUMN,
)
from .._console import show_progress
from .._pixel_size import PIXEL_SIZE_ASSUMED_COLUMN, assumed_rows
from .._reasons import reason_codes
from ..outputs import refuse_inputs, write_csv_atomically
from ._crops import write_cell_tiff
from ._maps import MAPS_FOLDER, map_paths, write_field_maps
from ._score import (
    CROP_COLUMN,
    MASK_COLUMN,
    POSITION_COLUMNS,
    SCORE_COLUMNS,
    check_field_model,
    cut_field,
    pair_fields,
    score_cut_cells,
)

CELLS_FILE = "cells.csv"
CROPS_FOLDER = "crops"
OVERLAYS_FOLDER = "overlays"
CROP_PATH_COLUMN = "crop_path"
OUTPUT_COLUMNS = [*SCORE_COLUMNS, REASON_COLUMN]
INTEGER_COLUMNS = ["bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col",
                   "area"]
logger = logging.getLogger(__name__)

FIELD_KEY = "_field_key"
"""A field's identity across runs: its file and its label image's, absolute."""


@dataclass(frozen=True)
class FieldsRun:
    """What :func:`score_field_files` wrote.

    Attributes
    ----------
    cells : Path
        ``OUT/cells.csv``: one row per labelled cell, and one row (with the
        reason in ``error``) per field that could not be used.
    table : DataFrame
        Its rows, as text exactly as written.
    failed_fields : list of str
        Fields that could not be used at all.
    crops : Path or None
        ``OUT/crops/cells.csv`` with ``save_crops``.
    n_crops : int
        Cells written as single-cell TIFFs.
    n_resumed : int
        Fields found done by an earlier run.
    model_card : dict or None
        The model's card (:func:`~sarcnet_sklearn.deploy._card.model_card`).
    """

    cells: Path
    table: pd.DataFrame
    failed_fields: list[str]
    crops: Path | None
    n_crops: int
    n_resumed: int
    model_card: dict | None = None


def unique_stems(paths: list[Path]) -> list[str]:
    """File stems (``.ome.tiff`` counted whole) made unique with ``_2``, ``_3``... suffixes.

    A suffixed name never takes another field's own stem (``a/f.tif``,
    ``b/f.tif`` and ``f_2.tif`` give ``f``, ``f_3``, ``f_2``), and names that
    differ only in case count as the same (case-insensitive file systems), so
    no field's overlays or crops overwrite another's.

    Examples
    --------
    >>> unique_stems([Path("a/f.ome.tiff"), Path("b/f.tif"), Path("g.png")])
    ['f', 'f_2', 'g']
    >>> unique_stems([Path("a/f.tif"), Path("b/f.tif"), Path("f_2.tif")])
    ['f', 'f_3', 'f_2']
    """
    own = [path.name.split(".")[0] or path.stem for path in paths]
    reserved = {stem.lower() for stem in own}
    used: set[str] = set()
    stems = []
    for stem in own:
        name, count = stem, 1
        while name.lower() in used or (count > 1 and name.lower() in reserved):
            count += 1
            name = f"{stem}_{count}"
        used.add(name.lower())
        stems.append(name)
    return stems


def score_field_files(
    model: str | PathLike,
    fields: list[str | PathLike],
    labels: list[str | PathLike],
    out: str | PathLike,
    *,
    channel: int | str | None = None,
    scene: int | str | None = None,
    z: int | str | None = None,
    pixel_size: float | None = None,
    score_border_cells: bool = False,
    explain: bool = False,
    save_crops: bool = False,
    device: str | None = None,
    n_jobs: int = 1,
    batch_size: int = 200,
    chunk_size: int = 1,
    client=None,
    progress: bool = False,
    test_time_augment: bool | None = None,
    overwrite: bool = False,
) -> FieldsRun:
    """Score every labelled cell of field files into ``out``; resume an earlier run there.

    Writes ``out/cells.csv`` (the rows of :func:`score_fields` without the
    arrays, one per cell, plus with ``save_crops`` ``crop_path``, relative to
    the table),
    ``out/overlays/<field>_scores.png`` (and ``_gradcam.png`` with ``explain``)
    and, with ``save_crops``, one AICS-style TIFF per cell in ``out/crops/``
    with ``out/crops/cells.csv``, which ``train`` and ``predict`` read. A field
    that cannot be used at all (unreadable, label image of another shape...)
    gets one row with the reason in ``error`` and the others go on.

    Finished fields are saved in ``out/cells.csv.partial/`` a chunk at a time:
    the same call after a stop (Ctrl-C, a killed job) skips them, and the
    tables are written, atomically, when every field is done.

    Every argument and input is checked before ``out`` is touched, and a
    finished run in ``out`` (its ``cells.csv``) is replaced only with
    ``overwrite=True``; its overlays and crops of fields this run does not
    write are then removed, so that ``out`` holds one run.

    Parameters
    ----------
    model : path
        A Protocol 1 model file (loaded here, or once per cluster worker).
    fields, labels : list of path
        Field files and one label image per field, in the same order.
    out : path
        Output folder (created); nothing in it may be one of the inputs.
    channel, scene, z, pixel_size, score_border_cells
        See :func:`score_fields`.
    explain : bool, default=False
        Also draw each field's Grad-CAM overlay.
    save_crops : bool, default=False
        Also write the single-cell TIFFs and their table.
    device : str, optional
        Device the model is loaded onto.
    n_jobs : int, default=1
        Cells measured in parallel (here; one per task on a cluster).
    batch_size : int, default=200
        Cells handed to the model at once.
    chunk_size : int, default=1
        Fields per chunk (a part file, a cluster task).
    client : distributed.Client, optional
        Score the chunks on its workers; they must read the files and write
        into ``out``.
    progress : bool, default=False
        Progress bar over fields.
    test_time_augment : bool, optional
        Score (and explain) with or without the mean over the 8 flips and
        quarter turns of each cell's image; default: as the model file says.
    overwrite : bool, default=False
        Replace a finished run in ``out``.

    Returns
    -------
    FieldsRun

    Raises
    ------
    ValueError
        For a model that is not a Protocol 1 model, a bad argument, an output
        that is an input, a finished run in ``out`` (without ``overwrite``) or an
        unfinished run in ``out`` with other settings.

    Examples
    --------
    >>> from sarcnet_sklearn.fields import score_field_files
    >>> run = score_field_files("model.joblib", ["a.tif"], ["a_lab.tif"], "out")  # doctest: +SKIP
    >>> run.table[["field", "label", "score_pred", "error"]]  # doctest: +SKIP
    """
    from .._validation import check_pixel_size_um
    from ..datasets._kind import is_synthetic_source
    from ..deploy import load_model
    from ..deploy._card import warn_if_synthetic_model
    from ..scale import partial_folder, run_in_chunks

    out = Path(os.path.abspath(out))
    if pixel_size is not None:
        pixel_size = check_pixel_size_um(pixel_size, "pixel_size")
    for name, value in (("n_jobs", n_jobs), ("batch_size", batch_size),
                        ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    fields = [Path(path) for path in fields]
    labels = [Path(path) for path in labels]
    pair_fields(fields, labels)
    model_file = Path(model).resolve()
    for path in [model_file, *fields, *labels]:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    inputs = [model_file, *(path.resolve() for path in [*fields, *labels])]
    stems = unique_stems(fields)
    check_outputs(out, stems, inputs)
    fitted = load_model(model_file, device=device)
    check_field_model(fitted)
    finished = (out / CELLS_FILE).is_file() and not partial_folder(out / CELLS_FILE).exists()
    if finished and not overwrite:
        raise ValueError(f"{out} already holds a finished run ({CELLS_FILE}); give --overwrite "
                         "(overwrite=True) to replace it, or choose another --out")
    warn_if_synthetic_model(getattr(fitted, "model_card_", None),
                            [path for path in fields if not is_synthetic_source(path)])
    out.mkdir(parents=True, exist_ok=True)
    jobs = pd.DataFrame({
        "field": [str(path) for path in fields],
        "path": [str(path.resolve()) for path in fields],
        "labels": [str(path.resolve()) for path in labels],
        "stem": stems,
    })
    jobs[FIELD_KEY] = jobs["path"] + os.pathsep + jobs["labels"]
    options = {"channel": channel, "scene": scene, "z": z, "pixel_size": pixel_size,
               "score_border_cells": score_border_cells}
    result = run_in_chunks(
        jobs,
        partial(score_field_chunk, out=out, explain=explain, save_crops=save_crops,
                n_jobs=1 if client else n_jobs, batch_size=batch_size,
                test_time_augment=test_time_augment,
                log=progress and not show_progress(progress), **options),
        out / CELLS_FILE,
        key_column=FIELD_KEY,
        settings={"command": "fields", "model": str(model_file),
                  "model_modified_ns": model_file.stat().st_mtime_ns, **options,
                  "explain": explain, "save_crops": save_crops,
                  "test_time_augment": test_time_augment},
        inputs=inputs,
        chunk_size=chunk_size,
        model=model_file if client else fitted,
        load=partial(load_model, device=device),
        client=client,
        progress=progress,
        what="fields",
        several_rows=True,
    )
    table = result.table
    failed = table.loc[table["label"] == "", "field"].tolist()
    crops, n_crops = None, 0
    if save_crops:
        rows = table[table[CROP_PATH_COLUMN] != ""]
        crops = write_csv_atomically(crop_table(rows), out / CROPS_FOLDER / CELLS_FILE,
                                     inputs=inputs)
        n_crops = len(rows)
    if finished:
        _remove_stale(out, stems, table, explain)
    return FieldsRun(result.output, table, failed, crops, n_crops, result.n_resumed,
                     getattr(fitted, "model_card_", None))


def _remove_stale(out: Path, stems: list[str], table: pd.DataFrame, explain: bool) -> None:
    """Remove the overlays and crops an earlier run left in ``out`` that this one did not
    write (a replaced run's files would otherwise sit beside the new table)."""
    kinds = ("scores", "gradcam") if explain else ("scores",)
    overlays = {f"{stem}_{kind}.png" for stem in stems for kind in kinds}
    for path in (out / OVERLAYS_FOLDER).glob("*.png"):
        if path.name not in overlays:
            path.unlink()
    crops = set(table[CROP_PATH_COLUMN]) if CROP_PATH_COLUMN in table.columns else set()
    for path in (out / CROPS_FOLDER).glob("*_cell*.tiff"):
        if f"{CROPS_FOLDER}/{path.name}" not in crops:
            path.unlink()
    if not crops:
        (out / CROPS_FOLDER / CELLS_FILE).unlink(missing_ok=True)
    maps = {path.name for stem in stems for path in map_paths(out / MAPS_FOLDER, stem).values()}
    for path in (out / MAPS_FOLDER).glob("*.ome.tif"):
        if path.name not in maps:
            path.unlink()


def check_outputs(out: Path, stems: list[str], inputs: list[Path]) -> None:
    """Refuse an ``out`` where a table, overlay or crop would be written over an input."""
    refuse_inputs([out / CELLS_FILE, out / CROPS_FOLDER / CELLS_FILE] + [
        out / OVERLAYS_FOLDER / f"{stem}_{kind}.png" for stem in stems
        for kind in ("scores", "gradcam")
    ] + [path for stem in stems for path in map_paths(out / MAPS_FOLDER, stem).values()],
        inputs)
    crops, prefixes = (out / CROPS_FOLDER).resolve(), tuple(f"{stem}_cell" for stem in stems)
    for path in inputs:  # a crop's name holds a label only known once the field is cut
        if path.resolve().parent == crops and path.name.startswith(prefixes):
            raise ValueError(f"refusing to overwrite the input file {path} with a cell's crop; "
                             "choose another --out")


def crop_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The table of single-cell TIFFs (paths relative to it) from rows of ``cells.csv``."""
    table = pd.DataFrame({IMAGE_COLUMN: [Path(path).name for path in rows[CROP_PATH_COLUMN]]})
    for column in ["field", "label", "touches_border", "pixel_size", PIXEL_SIZE_ASSUMED_COLUMN,
                   *PROTOCOL_1,
                   *SARCOMERE_COLUMNS, "score_pred"]:
        table[column] = rows[column].to_numpy()
    table[TARGET_COLUMN] = np.nan
    return table


def score_field_chunk(
    model,
    chunk: pd.DataFrame,
    *,
    out: Path,
    explain: bool = False,
    save_crops: bool = False,
    n_jobs: int = 1,
    batch_size: int = 200,
    test_time_augment: bool | None = None,
    log: bool = False,
    **options,
) -> pd.DataFrame:
    """The ``cells.csv`` rows of a chunk of fields, each row indexed by its field's row.

    Draws each field's overlays (and writes its crops) on the way. A field
    that cannot be used gets one row with the reason (also printed). With
    ``log`` (a run whose progress bars are hidden, e.g. in a cluster job's
    log), each field's number of cells when cut and its rate when scored are
    printed, so a field of 50,000 tiny cells is not silent for minutes.
    """
    from ..pipeline import SarcNetPipeline

    model = SarcNetPipeline.of(model).with_test_time_augment(test_time_augment)
    tables = []
    for index, job in zip(chunk.index, chunk.itertuples(index=False), strict=True):
        rows = _score_field_file(model, job, out, explain=explain, save_crops=save_crops,
                                 n_jobs=n_jobs, batch_size=batch_size, log=log, **options)
        if "label" in rows.columns:  # exact ids next to a failed field's empty row
            rows["label"] = rows["label"].astype(object)
        tables.append(rows.set_axis(np.full(len(rows), index), axis=0))
    columns = POSITION_COLUMNS + PROTOCOL_1 + SARCOMERE_COLUMNS + OUTPUT_COLUMNS
    if save_crops:
        columns = columns + [CROP_PATH_COLUMN]
    table = pd.concat(tables).reindex(columns=columns)
    # the same text whichever fields share a chunk: whole numbers stay whole next to a failed
    # field's empty row
    table[INTEGER_COLUMNS] = table[INTEGER_COLUMNS].astype("Int64")
    labels = np.empty(len(table), dtype=object)  # ids of any size as exact whole numbers
    labels[:] = [None if pd.isna(label) else int(label) for label in table["label"]]
    table["label"] = labels
    table[REASON_COLUMN] = reason_codes(table["error"])
    table.loc[table["label"].isna(), REASON_COLUMN] = "field"  # a field that could not be used
    table["touches_border"] = table["touches_border"].astype("boolean")
    table[PIXEL_SIZE_ASSUMED_COLUMN] = table[PIXEL_SIZE_ASSUMED_COLUMN].astype("boolean")
    return table


def _score_field_file(model, job, out: Path, *, explain, save_crops, n_jobs, batch_size,
                      log=False, **options) -> pd.DataFrame:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = time.perf_counter()
            field, label_image, cut, image = cut_field(job.path, job.labels, **options)
            logger.log(logging.INFO if log else logging.DEBUG,
                       "%s: %d labelled cells cut; measuring and scoring them", job.field,
                       len(cut))
            scores = score_cut_cells(model, cut, keep_crops=True, n_jobs=n_jobs,
                                     batch_size=batch_size)
            seconds = time.perf_counter() - started
            scored = int(np.isfinite(scores["score_pred"].to_numpy()).sum())
            logger.log(logging.INFO if log else logging.DEBUG,
                       "%s: %d of %d cells scored in %.1f s (%.0f cells/s)", job.field, scored,
                       len(scores), seconds, len(scores) / max(seconds, 1e-9))
        for warning in caught:
            logger.warning("%s", str(warning.message).replace(job.path, job.field))
        return _draw_field(model, job, out, field, image, label_image, scores, explain=explain,
                           save_crops=save_crops)
    except (ValueError, OSError, MemoryError) as exc:  # a field that cannot be used: go on
        message = str(exc).replace(job.path, job.field)
        if isinstance(exc, MemoryError):
            detail = str(exc) or "out of memory"
            message = (f"{job.field}: not enough memory to score this field ({detail}); crop "
                       "or tile it, or run it on a machine with more memory")
        logger.error("%s", message)
        return pd.DataFrame({"field": [job.field], "error": [message]})


def _draw_field(model, job, out: Path, field, image, label_image, scores, *, explain,
                save_crops) -> pd.DataFrame:
    """A scored field's overlays, drawn on its stretched ``image`` (and crops); its rows
    without the arrays."""
    scores["field"] = job.field
    overlays = out / OVERLAYS_FOLDER
    plot_scores(image, label_image, scores, overlays / f"{job.stem}_scores.png",
                title=job.field, score_range=model.score_range)
    write_field_maps(out / MAPS_FOLDER, job.stem, label_image, scores, field.pixel_size)
    if explain:
        explain_field(model, image, label_image, scores,
                      overlays / f"{job.stem}_gradcam.png", title=job.field)
    if save_crops:
        scores[CROP_PATH_COLUMN] = save_crops_of(scores, out, job.stem)
    return scores.drop(columns=[CROP_COLUMN, MASK_COLUMN])


def plot_scores(image, labels, scores, path, *, title, score_range=None) -> None:
    from ._overlay import plot_field_scores

    plot_field_scores(image, labels, scores, path, title=title,
                      score_range=score_range or SCORE_RANGE)


def explain_field(model, image, labels, scores, path, *, title) -> None:
    """Grad-CAM of the scored cells of one field, pasted into an overlay of the field."""
    from ..deploy import ModelInputs
    from ..explain import grad_cam
    from ._overlay import plot_field_heatmap

    inputs = ModelInputs.of(model)
    scored = scores[np.isfinite(scores["score_pred"].to_numpy())]
    heatmaps: list[np.ndarray] = []
    if len(scored) and inputs.image_column is not None:
        cells = scored[list(inputs.features)].copy()
        cells.insert(0, inputs.image_column, scored[CROP_COLUMN])
        heatmaps = grad_cam(model, cells)
    else:
        scored = scored.iloc[:0]
    plot_field_heatmap(image, labels, scored, heatmaps, path, title=title)


def save_crops_of(scores: pd.DataFrame, out: Path, stem: str) -> list[str | None]:
    """Write each cell with a crop as an AICS-style TIFF in ``out/crops``.

    Returns each cell's file relative to ``out`` (where ``cells.csv`` is), or
    None for a cell without a crop. A crop carries its pixel size in its resolution tags,
    unless the pixel size was assumed (``pixel_size_assumed``): then it has none, so that
    whatever reads it later assumes (and says so) again.
    """
    (out / CROPS_FOLDER).mkdir(parents=True, exist_ok=True)
    paths: list[str | None] = []
    assumed = assumed_rows(scores)
    for crop, mask, label, size, guessed in zip(
            scores[CROP_COLUMN], scores[MASK_COLUMN], scores["label"], scores["pixel_size"],
            assumed, strict=True):
        if isinstance(crop, np.ndarray) and mask.sum() > 1 and crop.any():
            name = f"{CROPS_FOLDER}/{stem}_cell{label}.tiff"
            write_cell_tiff(out / name, crop, mask,
                            pixel_size_um=None if guessed else float(size))
            paths.append(name)
        else:
            paths.append(None)
    return paths
