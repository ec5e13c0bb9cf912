"""A lab's own model from a few hundred of its cells (issue #30): fine-tuning and the model asking.

A synthetic "other lab": synthetic AICS cells (``make_synthetic_aics``, another seed) post-processed
as another microscope and stain would give them: cells smaller in the frame (a coarser pixel size:
a zero margin of ``--margin`` of the side on each side), stretched along one axis (other cell
shapes), another contrast (gamma 0.6, dimmer) and more blur and noise. Their Protocol 1 features
are measured from those images. The lab's scorer is the synthetic experts' mean score.

Measured: Spearman on the lab's held-out test cells of
- the model trained on synthetic AICS cells, as is;
- models trained from scratch on N of the lab's cells (and on ``--reference`` cells);
- the AICS model fine-tuned on the same N cells (first epoch with the image branch frozen);
- fine-tuned on cells the model chose (``suggest_cells`` with the settings of ``--choose``, e.g.
  ``order=representative`` or ``order=uncertain,groups=50``; 20 % random) against random cells,
  at equal counts: rounds of 50 (random), 100, 200 cells, each round asking the last round's
  model. ``order=random`` runs the same rounds with random cells: the fair control, averaged
  over ``--repeats`` draws (one draw of random cells varies by +-0.05 in Spearman here).

Sized for a shared 2-core CPU: 32 px images, few epochs, 1 seed by default.

Run: ``PYTHONPATH=. python benchmarks/bench_finetune.py --out /tmp/bench_finetune``
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
from skimage.transform import resize

from sarcnet_sklearn import PROTOCOL_1, make_sarcnet_pipeline, spearman_score
from sarcnet_sklearn._columns import PIXEL_SIZE_UM
from sarcnet_sklearn._recipe import FINETUNE_LR_FACTOR, SUGGEST_RANDOM_SHARE
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics
from sarcnet_sklearn.deploy import finetune_callbacks, suggest_cells, train_model
from sarcnet_sklearn.features import extract_protocol1
from sarcnet_sklearn.fields._crops import write_cell_tiff


def other_lab(source: pd.DataFrame, out: Path, margin: float, seed: int) -> pd.DataFrame:
    """Post-process the synthetic cells into another lab's; measure their Protocol 1 features."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, cell in enumerate(source.itertuples()):
        pages = tifffile.imread(cell.image_path)
        image, mask = pages[1].astype(float), pages[9] > 0
        stretch = 1.5
        shape = (int(image.shape[0] * stretch), image.shape[1])
        image = resize(image, shape, order=1, preserve_range=True, anti_aliasing=True)
        mask = resize(mask.astype(float), shape, order=0) > 0.5
        image = 255 * 0.7 * (image / 255) ** 0.6
        image = image + rng.normal(0, 18, image.shape)
        pad = [(int(margin * n), int(margin * n)) for n in image.shape]
        image, mask = np.pad(image, pad), np.pad(mask, pad)
        image = np.where(mask, np.clip(image, 1, 255), 0).astype(np.uint8)
        path = write_cell_tiff(out / f"lab_{i:05d}.tiff", image, mask)
        features = extract_protocol1(image, mask)
        rows.append({"image_path": str(path), **{k: features[k] for k in PROTOCOL_1},
                     "pixel_size": PIXEL_SIZE_UM, "score": cell.score})
    table = pd.DataFrame(rows)
    return table[np.isfinite(table[PROTOCOL_1]).all(axis=1)].reset_index(drop=True)


def fit(cells: pd.DataFrame, args, seed: int, init=None, min_epochs: int | None = None):
    epochs = int(np.clip(round(args.steps / len(cells)), min_epochs or args.min_epochs,
                         args.max_epochs))
    model = make_sarcnet_pipeline(
        1, image_size=args.image_size, max_epochs=epochs, batch_size=32,
        lr=args.lr if init is None else args.finetune_lr,
        random_state=seed, device="cpu", train_split=None, verbose=0, test_time_augment=False,
        callbacks=finetune_callbacks(init, freeze_image_epochs=1 if init is not None else 0),
    )
    return model.fit(cells, cells["score"])


def fit_as_train(cells: pd.DataFrame, args, seed: int, init) -> object:
    """Fine-tune as ``train --init-from`` does: a validation part of the cells, the best epoch
    on it kept (``train_model``)."""
    epochs = int(np.clip(round(args.steps / len(cells)), args.min_epochs, args.max_epochs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small validation parts: soundness notices
        model, _ = train_model(cells, protocol=1, validation=args.finetune_validation,
                               image_size=args.image_size, max_epochs=epochs, batch_size=32,
                               lr=args.finetune_lr, random_state=seed, device="cpu",
                               test_time_augment=False, init_from=init, freeze_image_epochs=1)
    return model


def choice_arm(spec: str) -> tuple[str, dict]:
    """``"order=uncertain,groups=50"`` -> ``("chosen_uncertain_groups50", {"order":
    "uncertain", "groups": 50, "random_share": 0.2})``; ``"order=random"``: random cells (a
    random share of 1)."""
    settings = {"random_share": SUGGEST_RANDOM_SHARE}
    for item in spec.split(","):
        key, value = item.split("=")
        settings[key] = (int(value) if key == "groups" else value if key == "order"
                         else float(value))
    name = "".join(f"_{value}" if key == "order" else f"_{key}{value}"
                   for key, value in settings.items() if key != "random_share")
    if settings.get("order") == "random":
        settings = {"random_share": 1.0}
    return "chosen" + name, settings


def rho(model, test: pd.DataFrame) -> float:
    return spearman_score(test["score"], model.predict(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_finetune"))
    parser.add_argument("--aics-cells", type=int, default=800)
    parser.add_argument("--lab-cells", type=int, default=1500)
    parser.add_argument("--test-cells", type=int, default=400)
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--crop-size", type=int, default=48)
    parser.add_argument("--margin", type=float, default=0.35)
    parser.add_argument("--steps", type=int, default=3000,
                        help="cells seen per training (epochs = steps / cells, clipped)")
    parser.add_argument("--min-epochs", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=25)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=None,
                        help="learning rate when fine-tuning (default: --lr times the "
                             "package's fine-tuning share, as train --init-from does)")
    parser.add_argument("--finetune-validation", type=float, default=0.0,
                        help="fine-tune as train --init-from does, keeping the best epoch on "
                             "this fraction of the cells (0: all cells, the last epoch)")
    parser.add_argument("--reference-min-epochs", type=int, default=15,
                        help="at least this many epochs for the scratch reference")
    parser.add_argument("--arms", nargs="+", default=["scratch", "finetuned", "chosen"],
                        choices=["scratch", "finetuned", "chosen"])
    parser.add_argument("--choose", nargs="+", default=["order=random", "order=representative"],
                        help="suggest_cells settings of the chosen arms, one arm each (e.g. "
                             "order=representative order=uncertain,groups=50; order=random: "
                             "random cells in the same rounds, the control)")
    parser.add_argument("--chosen-counts", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--repeats", type=int, default=1,
                        help="draws of each chosen arm per seed (the suggest order's random "
                             "share and, with order=random, the cells), averaged")
    parser.add_argument("--only-aics", action="store_true",
                        help="only the AICS model, on AICS and on the lab's test cells")
    args = parser.parse_args()
    if args.finetune_lr is None:
        args.finetune_lr = args.lr * FINETUNE_LR_FACTOR
    tune = fit_as_train if args.finetune_validation > 0 else fit
    torch.set_num_threads(2)
    started = time.time()
    aics = load_aics(make_synthetic_aics(args.out / "aics", args.aics_cells, args.crop_size,
                                         random_state=100))
    source = load_aics(make_synthetic_aics(args.out / "lab_source", args.lab_cells,
                                           args.crop_size, random_state=200))
    lab = other_lab(source, args.out / "lab", args.margin, seed=1)
    print(f"data ready: {len(aics)} AICS cells, {len(lab)} lab cells "
          f"({time.time() - started:.0f} s)", flush=True)
    results = []
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(lab))
        test, pool = lab.iloc[order[:args.test_cells]], lab.iloc[order[args.test_cells:]]
        held_out = np.random.default_rng(seed).random(len(aics)) < 0.2
        aics_model = fit(aics[~held_out][["image_path", *PROTOCOL_1, "score"]], args, seed)
        row = {"seed": seed, "aics_on_aics": rho(aics_model, aics[held_out]),
               "aics_as_is": rho(aics_model, test)}
        print(f"seed {seed}: AICS model on held-out AICS cells {row['aics_on_aics']:.3f}, "
              f"on the lab's test cells {row['aics_as_is']:.3f}", flush=True)
        if args.only_aics:
            results.append(row)
            continue
        counts = sorted({*args.counts, *(args.chosen_counts if "chosen" in args.arms else [])})
        for n in [*counts, args.reference]:
            cells = pool.iloc[:n]
            if "scratch" in args.arms and (n in args.counts or n == args.reference):
                row[f"scratch_{n}"] = rho(fit(cells, args, seed, min_epochs=(
                    args.reference_min_epochs if n == args.reference else None)), test)
            if n != args.reference and ("finetuned" in args.arms or n in args.chosen_counts):
                row[f"finetuned_{n}"] = rho(tune(cells, args, seed, init=aics_model), test)
            print(f"  {n} cells: scratch {row.get(f'scratch_{n}', float('nan')):.3f}, "
                  f"fine-tuned {row.get(f'finetuned_{n}', float('nan')):.3f} "
                  f"({time.time() - started:.0f} s)", flush=True)
        first_round = None  # the first round: random cells, as the random arm's
        for spec in args.choose if "chosen" in args.arms else []:
            arm, settings = choice_arm(spec)
            if first_round is None:
                first_round = tune(pool.iloc[:50], args, seed, init=aics_model)
            draws = {n: [] for n in args.chosen_counts}
            for repeat in range(args.repeats):
                chosen, model = pool.iloc[:50], first_round
                for n in args.chosen_counts:
                    rest = pool.drop(index=chosen.index)
                    asked = suggest_cells(model, pd.concat([chosen, rest.assign(score=np.nan)]),
                                          random_state=seed * 1000 + repeat,
                                          **settings).head(n - len(chosen))
                    chosen = pd.concat([chosen, pool.loc[asked.index]])
                    model = tune(chosen, args, seed, init=aics_model)
                    draws[n].append(rho(model, test))
                    print(f"  {n} cells chosen by the model ({spec}, draw {repeat}): fine-tuned "
                          f"{draws[n][-1]:.3f} (first {n} random cells: "
                          f"{row.get(f'finetuned_{n}', float('nan')):.3f}; "
                          f"{time.time() - started:.0f} s)", flush=True)
            for n in args.chosen_counts:
                row[f"{arm}_{n}"] = float(np.mean(draws[n]))
                row.setdefault("draws", {})[f"{arm}_{n}"] = draws[n]
        results.append(row)
    table = pd.DataFrame(results).drop(columns=["draws"], errors="ignore")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    summary = table.drop(columns=["seed"]).mean().to_dict()
    if args.only_aics:
        return
    if "finetuned_200" in summary and f"scratch_{args.reference}" in summary:
        goal = 0.9 * summary[f"scratch_{args.reference}"]
        print(f"goal 1: fine-tuned on 200 cells {summary['finetuned_200']:.3f} vs 90 % of "
              f"scratch on {args.reference} ({goal:.3f}): "
              f"{'met' if summary['finetuned_200'] >= goal else 'missed'} by "
              f"{summary['finetuned_200'] - goal:+.3f}")
    control = "chosen_random" if "order=random" in args.choose else "finetuned"
    for spec in args.choose:
        arm, _ = choice_arm(spec)
        for n in args.chosen_counts:
            if arm != control and f"{arm}_{n}" in summary and f"{control}_{n}" in summary:
                chosen, random = summary[f"{arm}_{n}"], summary[f"{control}_{n}"]
                wins = int((table[f"{arm}_{n}"] > table[f"{control}_{n}"]).sum())
                print(f"goal 2 at {n} cells ({spec}): chosen {chosen:.3f} vs random "
                      f"{random:.3f} ({chosen - random:+.3f}; higher in {wins} of "
                      f"{len(table)} seeds)")
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"{time.time() - started:.0f} s in all; results in {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
