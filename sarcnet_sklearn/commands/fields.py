"""The ``sarcnet-sklearn fields`` subcommand: fields of view and label images to scored cells."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from .._columns import TARGET_COLUMN
from ._exit import EXIT_STATUS_HELP
from ._options import add_test_time_augment_option, n_jobs, pixel_size_um
from ._scale import add_scale_arguments, cluster_client
from ._summary import add_json_option


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
        epilog=EXIT_STATUS_HELP,
        help="score every labelled cell of microscope fields of view",
        description=(
            "Read each field of view (OME-TIFF, TIFF, PNG; CZI, ND2, LIF with "
            "pip install 'sarcnet-sklearn[formats]') and its label image (0 = background, "
            "1, 2, ... = cells, e.g. from cellpose, StarDist or napari), cut every cell exactly "
            "as the AICS training cells were cut, measure its Protocol 1 features at the "
            "field's pixel size and score it with a Protocol 1 model. Writes OUT/cells.csv "
            "(one row per labelled cell; a cell that cannot be scored gets the reason in "
            "'error', its short code in 'reason'), OUT/overlays/<field>_scores.png (every cell "
            "filled by its score, or by the colour of its reason) and OUT/maps/<field>_scores"
            ".ome.tif, _reasons.ome.tif, _labels.ome.tif (the field's shape and pixel size). "
            "Finished fields are kept in OUT/cells.csv.partial/ until all are done: the same "
            "command started again after a stop goes on from there."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="Protocol 1 model file or safe folder/.zip")
    parser.add_argument("fields", metavar="FIELD", nargs="+", help="field-of-view image files")
    parser.add_argument("--labels", metavar="LABELS", nargs="+",
                        help="one label image per FIELD, in the same order (TIFF, PNG, .npy, "
                             "cellpose's _seg.npy or _cp_masks.png, StarDist's label TIFF)")
    parser.add_argument(
        "--segment", choices=["classical", "cellpose"],
        help="no label images: segment each field ('classical': a scikit-image recipe for "
             "alpha-actinin-2 fields, see the README for its limits; 'cellpose': needs "
             "pip install 'sarcnet-sklearn[cellpose]' and fetches its weights online once). "
             "The labels are saved in OUT/segmentation/ (correct them and run again: they "
             "are reused)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--channel", help="alpha-actinin-2 channel: name or index "
                                          "(required when a file has several channels)")
    parser.add_argument("--scene", help="scene: index or name (required when a file has several)")
    parser.add_argument("--z", help="Z plane index, or 'max' for a maximum projection "
                                    "(required for a Z stack)")
    parser.add_argument("--pixel-size", type=pixel_size_um, metavar="UM",
                        help="micrometres per pixel, overriding the files' metadata "
                             "(default: from the metadata, else the model's with a warning; "
                             "the pixel_size_assumed column marks those cells)")
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
    parser.add_argument("--n-jobs", type=n_jobs, default=1,
                        help="cells measured in parallel (default: %(default)s)")
    add_test_time_augment_option(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in OUT (its cells.csv; the overlays and "
                             "crops of fields not in this run are removed); without it such "
                             "an OUT is refused")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_json_option(parser)
    add_scale_arguments(parser, chunk_size=1, what="fields")
    parser.set_defaults(func=run_fields)
    return parser


def run_fields(args: argparse.Namespace) -> int:
    """Score the fields named by ``args`` and write the outputs; returns the exit code."""
    from .._pixel_size import fields_without_pixel_size_message
    from ..fields._maps import MAPS_FOLDER, reason_legend
    from ..fields._screen import OVERLAYS_FOLDER, score_field_files
    from ..outputs import refuse_inputs
    from ._exit import NONE_SCORED, exit_status
    from ._run_record import RUN_FILE, write_run_record
    from ._summary import cell_summary, human_stream, print_summary

    started = datetime.now(timezone.utc)
    if (args.labels is None) == (args.segment is None):
        raise ValueError("give either --labels (one label image per field) or --segment "
                         "classical|cellpose")
    if args.segment is not None:
        from ..fields._segment import segment_field_files

        for path in [args.model, *args.fields]:
            if not Path(path).exists():
                raise FileNotFoundError(f"no such file: {path}")
        args.labels = [str(path) for path in segment_field_files(
            args.fields, args.out, args.segment, channel=args.channel, scene=args.scene,
            z=args.z, pixel_size=args.pixel_size)]
    inputs = [Path(path).resolve() for path in [args.model, *args.fields, *args.labels]]
    refuse_inputs([Path(args.out) / RUN_FILE], inputs)
    with cluster_client(args) as client:
        run = score_field_files(
            args.model, args.fields, args.labels, args.out, channel=args.channel,
            scene=args.scene, z=args.z, pixel_size=args.pixel_size,
            score_border_cells=args.score_border_cells, explain=args.explain,
            save_crops=args.save_crops, device=args.device, n_jobs=args.n_jobs,
            chunk_size=args.chunk_size, client=client, progress=not args.quiet,
            test_time_augment=args.test_time_augment, overwrite=args.overwrite,
        )
    table, out = run.table, Path(args.out)
    cells = table[table["label"] != ""]
    summary = cell_summary(cells["error"], n_failed_inputs=len(run.failed_fields),
                           failed_inputs=run.failed_fields)
    status = exit_status(summary["n_cells"], summary["n_scored"], len(run.failed_fields))
    n_fields = len(args.fields)
    human = human_stream(args)
    print(f"scored {summary['n_scored']} of {summary['n_cells']} cells in "
          f"{n_fields - len(run.failed_fields)} field(s); wrote {run.cells.resolve()}", file=human)
    print(f"overlays: {(out / OVERLAYS_FOLDER).resolve()} "
          f"({n_fields - len(run.failed_fields)} field(s)"
          f"{', with Grad-CAM' if args.explain else ''})", file=human)
    print(f"maps: {(out / MAPS_FOLDER).resolve()} (per field: score map, reason map and labels "
          "as OME-TIFF of the field's shape and pixel size, for napari and Fiji)", file=human)
    if run.crops is not None:
        print(f"single-cell images: {run.crops.parent.resolve()} ({run.n_crops} cells); "
              f"fill in the '{TARGET_COLUMN}' column of {run.crops.resolve()} to train on them",
              file=human)
    record = write_run_record(
        run.cells, args, started=started, model_file=args.model,
        model=SimpleNamespace(model_card_=run.model_card), summary=summary, table=cells,
        exit_status=status, folder_output=True, inputs=inputs,
        extra={"reason_map": reason_legend().splitlines()},
    )
    print(f"run record: {record.resolve()}", file=human)
    print_summary(summary, args, status=status)
    message = fields_without_pixel_size_message(cells)
    if message is not None:
        print(f"warning: {message}", file=sys.stderr)
    if run.failed_fields:
        print(f"error: {len(run.failed_fields)} of {n_fields} field(s) could not be used: "
              f"{', '.join(run.failed_fields)} (see the messages above and the 'error' column)",
              file=sys.stderr)
    if status == NONE_SCORED:
        print(f"error: not one cell could be scored (exit status {status})", file=sys.stderr)
    return status
