"""The ``sarcnet-sklearn fields`` subcommand: fields of view and label images to scored cells."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import IMAGE_COLUMN, PROTOCOL_1, TARGET_COLUMN
from .._console import progress_bar
from ..fields._crops import write_cell_tiff
from ..fields._cut import stretch_field
from ..fields._score import (
    CROP_COLUMN,
    MASK_COLUMN,
    POSITION_COLUMNS,
    load_field,
    pair_fields,
    score_fields,
)
from ..outputs import refuse_inputs, write_csv_atomically

OUTPUT_COLUMNS = ["score_pred", "score_raw", "error"]

CROPS_FOLDER = "crops"
OVERLAYS_FOLDER = "overlays"


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``fields`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_subcommand(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["fields", "m.joblib", "a.tif", "b.tif", "--labels", "la.tif",
    ...                           "lb.tif", "--z", "max", "--out", "o"])
    >>> args.fields, args.labels, args.z
    (['a.tif', 'b.tif'], ['la.tif', 'lb.tif'], 'max')
    """
    parser = subparsers.add_parser(
        "fields",
        help="score every labelled cell of microscope fields of view",
        description=(
            "Read each field of view (OME-TIFF, TIFF, PNG; CZI, ND2, LIF with "
            "pip install 'sarcnet-sklearn[formats]') and its label image (0 = background, "
            "1, 2, ... = cells, e.g. from cellpose, StarDist or napari), cut every cell exactly "
            "as the AICS training cells were cut, measure its Protocol 1 features at the "
            "field's pixel size and score it with a Protocol 1 model. Writes OUT/cells.csv "
            "(one row per labelled cell; a cell that cannot be scored gets the reason in "
            "'error') and OUT/overlays/<field>_scores.png (every cell filled by its score)."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="Protocol 1 model file or safe folder/.zip")
    parser.add_argument("fields", metavar="FIELD", nargs="+", help="field-of-view image files")
    parser.add_argument("--labels", metavar="LABELS", nargs="+", required=True,
                        help="one label image per FIELD, in the same order")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--channel", help="alpha-actinin-2 channel: name or index "
                                          "(required when a file has several channels)")
    parser.add_argument("--scene", help="scene: index or name (required when a file has several)")
    parser.add_argument("--z", help="Z plane index, or 'max' for a maximum projection "
                                    "(required for a Z stack)")
    parser.add_argument("--pixel-size", type=float, metavar="UM",
                        help="micrometres per pixel, overriding the files' metadata "
                             "(default: from the metadata, else 0.12 with a warning)")
    parser.add_argument("--score-border-cells", action="store_true",
                        help="also score cells touching the field's border (left out by default, "
                             "as in the AICS data)")
    parser.add_argument("--explain", action="store_true",
                        help="also write a Grad-CAM overlay per field")
    parser.add_argument("--save-crops", action="store_true",
                        help="also write each cell as an AICS-style single-cell TIFF (page 1: "
                             "structure, page 9: mask) and OUT/crops/cells.csv, which 'train' "
                             "(once its 'score' column is filled in) and 'predict' read")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        help="default: the model's device if available, else the CPU")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="cells measured in parallel (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_fields)
    return parser


def unique_stems(paths: list[Path]) -> list[str]:
    """File stems (``.ome.tiff`` counted whole) made unique with ``_2``, ``_3``... suffixes.

    Examples
    --------
    >>> unique_stems([Path("a/f.ome.tiff"), Path("b/f.tif"), Path("g.png")])
    ['f', 'f_2', 'g']
    """
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = path.name.split(".")[0] or path.stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return stems


def run_fields(args: argparse.Namespace) -> int:
    """Score the fields named by ``args`` and write the outputs; returns the exit code."""
    from ..deploy import ModelInputs, load_model

    out = Path(args.out)
    fields = [Path(path) for path in args.fields]
    labels = [Path(path) for path in args.labels]
    pairs = pair_fields(fields, labels)
    for path in [Path(args.model), *fields, *labels]:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    inputs = [Path(args.model), *fields, *labels]
    stems = unique_stems(fields)
    outputs = [out / "cells.csv", out / CROPS_FOLDER / "cells.csv"] + [
        out / OVERLAYS_FOLDER / f"{stem}_{kind}.png" for stem in stems
        for kind in ("scores", "gradcam")
    ]
    refuse_inputs(outputs, inputs)
    model = load_model(args.model, device=args.device)
    model_inputs = ModelInputs.of(model)
    progress = not args.quiet
    tables = []
    crop_rows = []
    failed_fields: list[str] = []
    n_overlays = 0
    for index, ((field_path, label_path), stem) in enumerate(
        progress_bar(list(zip(pairs, stems, strict=True)), desc="fields", unit="field",
                     show=progress and len(pairs) > 1)
    ):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                name, field, label_image = load_field(
                    field_path, label_path, index, channel=args.channel, scene=args.scene,
                    z=args.z, pixel_size=args.pixel_size,
                )
                scores = score_fields(
                    model, field, label_image, pixel_size=field.pixel_size,
                    score_border_cells=args.score_border_cells, keep_crops=True,
                    n_jobs=args.n_jobs, progress=progress and len(pairs) == 1,
                )
        except ValueError as exc:  # a field that cannot be used at all: say so, go on
            print(f"error: {exc}", file=sys.stderr)
            failed_fields.append(str(field_path))
            tables.append(pd.DataFrame({"field": [str(field_path)], "error": [str(exc)]}))
            continue
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        scores["field"] = name
        tables.append(scores.drop(columns=[CROP_COLUMN, MASK_COLUMN]))
        if args.save_crops:
            crop_rows.append(save_crops(scores, out / CROPS_FOLDER, stem))
        # the tables so far, rewritten after each field: an interrupted run keeps its results
        write_tables(tables, crop_rows, out, inputs, args.save_crops)
        image = stretch_field(field.data)
        plot_scores(image, label_image, scores, out / OVERLAYS_FOLDER / f"{stem}_scores.png",
                    title=name)
        n_overlays += 1
        if args.explain:
            explain_field(model, model_inputs, image, label_image, scores,
                          out / OVERLAYS_FOLDER / f"{stem}_gradcam.png", title=name)
    table, crops, output, written = write_tables(tables, crop_rows, out, inputs, args.save_crops)
    cells = table[table["label"].notna()]
    failed = cells["error"].dropna()
    print(f"scored {len(cells) - len(failed)} of {len(cells)} cells in "
          f"{len(pairs) - len(failed_fields)} field(s); wrote {output.resolve()}")
    print(f"overlays: {(out / OVERLAYS_FOLDER).resolve()} ({n_overlays} field(s)"
          f"{', with Grad-CAM' if args.explain else ''})")
    if args.save_crops:
        print(f"single-cell images: {(out / CROPS_FOLDER).resolve()} ({len(crops)} cells); "
              f"fill in the '{TARGET_COLUMN}' column of {written.resolve()} to train on them")
    if len(failed):
        print(f"warning: {len(failed)} of {len(cells)} cells were not scored (see the 'error' "
              f"column), e.g. label {table.loc[failed.index[0], 'label']} of "
              f"{table.loc[failed.index[0], 'field']}: {failed.iloc[0]}", file=sys.stderr)
    if failed_fields:
        print(f"error: {len(failed_fields)} of {len(pairs)} field(s) could not be used: "
              f"{', '.join(failed_fields)} (see the messages above and the 'error' column)",
              file=sys.stderr)
        return 1
    return 0


def write_tables(tables, crop_rows, out: Path, inputs, save_crops: bool):
    """Write OUT/cells.csv (and OUT/crops/cells.csv) from the fields scored so far."""
    table = pd.concat(tables, ignore_index=True)
    if "label" not in table.columns:
        table["label"] = np.nan
    for column in ("label", "bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col",
                   "area"):
        if column in table.columns:
            table[column] = table[column].astype("Int64")
    table = table[[c for c in POSITION_COLUMNS + PROTOCOL_1 + OUTPUT_COLUMNS if c in table]]
    crops = written = None
    if save_crops:
        crops = pd.concat(crop_rows, ignore_index=True) if crop_rows else pd.DataFrame(
            columns=[IMAGE_COLUMN, "field", "label"])
        paths = {(field, int(label)): str((out / CROPS_FOLDER / name).resolve())
                 for field, label, name in zip(crops["field"], crops["label"],
                                               crops[IMAGE_COLUMN], strict=True)}
        table["crop_path"] = [
            paths.get((field, label)) if not pd.isna(label) else None
            for field, label in zip(table["field"], table["label"], strict=True)
        ]
        written = write_csv_atomically(crops, out / CROPS_FOLDER / "cells.csv", inputs=inputs)
    output = write_csv_atomically(table, out / "cells.csv", inputs=inputs)
    return table, crops, output, written


def plot_scores(image, labels, scores, path, *, title) -> None:
    from ..fields._overlay import plot_field_scores

    plot_field_scores(image, labels, scores, path, title=title)


def explain_field(model, model_inputs, image, labels, scores, path, *, title) -> None:
    """Grad-CAM of the scored cells of one field, pasted into an overlay of the field."""
    from ..explain import grad_cam
    from ..fields._overlay import plot_field_heatmap

    scored = scores[np.isfinite(scores["score_pred"].to_numpy())]
    heatmaps: list[np.ndarray] = []
    if len(scored) and model_inputs.image_column is not None:
        cells = scored[list(model_inputs.features)].copy()
        cells.insert(0, model_inputs.image_column, scored[CROP_COLUMN])
        heatmaps = grad_cam(model, cells)
    else:
        scored = scored.iloc[:0]
    plot_field_heatmap(image, labels, scored, heatmaps, path, title=title)


def save_crops(scores: pd.DataFrame, folder: Path, stem: str) -> pd.DataFrame:
    """Write each cell with a crop as an AICS-style TIFF; its rows of the crops table."""
    has_crop = [
        isinstance(crop, np.ndarray) and mask.sum() > 1 and crop.any()
        for crop, mask in zip(scores[CROP_COLUMN], scores[MASK_COLUMN], strict=True)
    ]
    rows = scores[has_crop]
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for row in rows.itertuples():
        name = f"{stem}_cell{row.label}.tiff"
        write_cell_tiff(folder / name, getattr(row, CROP_COLUMN), getattr(row, MASK_COLUMN))
        names.append(name)
    table = pd.DataFrame({IMAGE_COLUMN: names})
    for column in ["field", "label", "touches_border", "pixel_size", *PROTOCOL_1,
                   "score_pred"]:
        table[column] = rows[column].to_numpy()
    table[TARGET_COLUMN] = np.nan
    return table
