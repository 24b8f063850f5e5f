"""Fine-tuning on neurons of another size: at their own scale (train's default) or at the model's (scale_to_model).

Two measurements, each printing F1 / precision / recall (CaImAn's rule) with ``neuron_diameter`` given (the true
median mask diameter) and without it (the automatic size), for the shipped model and for it fine-tuned both ways:

* simulated: the shipped model fine-tuned on 2 simulated movies of 20 px neurons (500 frames at 15 Hz, 256 x 256,
  the benchmark's size-sweep density), scored pooled on 4 others;
* real (needs ../shared/data): fine-tuned on rows 0-409 of neurofinder.00.00-left (9 px neurons; its own early
  stopping on the last fifth of them), scored on rows 410-511 (35 annotated neurons the shipped weights never
  trained on: their validation strip).

Each fine-tuning runs ``--minutes`` of CPU (default 6); the whole script ~30 min on 2 cores. Results:
benchmarks/RESULTS.md.

    python benchmarks/fine_tune_scale.py [--minutes 6] [--part simulated|real|both] [--seed 0] [--diameter 20]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: the simulated movies: neuron diameter parameter (px), training and test seeds
SIM = dict(diameter=20.0, n_frames=500, shape=(256, 256), fs=15.0, train=(100, 101), test=(200, 201, 202, 203))
#: the real field, the rows fine-tuned on and the rows scored
REAL = dict(name="neurofinder.00.00-left", shape=(512, 256), cut=410)


def scores(model, cases) -> dict:
    """Pooled F1, precision, recall of ``model`` on ``cases`` [(movie, true masks, true diameter, keep)], with the
    true diameter given and without; ``keep`` maps a mask stack to the part scored."""
    from cellfie_caiman import initialize
    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.initialize import model_summary

    out = {}
    for mode in ("with d", "without d"):
        tp = fp = fn = 0
        for movie, masks, d, keep in cases:
            given = d if mode == "with d" else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = initialize(model_summary(movie, model=model, neuron_diameter=given), model=model,
                                   neuron_diameter=given).masks
            r = match_rois(keep(masks), keep(found))
            tp, fp, fn = tp + r.tp, fp + r.fp, fn + r.fn
        out[mode] = (2 * tp / max(2 * tp + fp + fn, 1), tp / max(tp + fp, 1), tp / max(tp + fn, 1))
    return out


def show(label: str, result: dict, minutes: float | None = None) -> None:
    cells = "; ".join(f"{mode} F1 {f1:.3f} P {p:.3f} R {r:.3f}" for mode, (f1, p, r) in result.items())
    extra = "" if minutes is None else f" ({minutes:.1f} min of fine-tuning)"
    print(f"    {label:28s} {cells}{extra}", flush=True)


def fine_tuned(datasets, to_model: bool, minutes: float, seed: int, folder: Path) -> tuple[str, float]:
    """The shipped model fine-tuned on ``datasets`` (its file) and the minutes it took."""
    from cellfie_caiman import train

    path = folder / f"{'model' if to_model else 'own'}_scale_{seed}.npz"
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the size warning of the own-scale run is what is measured here
        train(datasets, path, init_model="default", simulated=0, max_minutes=minutes, seed=seed,
              scale_to_model=to_model, progress=False)
    return str(path), (time.perf_counter() - t) / 60


def compare(title: str, datasets, cases, minutes: float, seed: int) -> None:
    print(title, flush=True)
    show("shipped", scores("default", cases))
    with tempfile.TemporaryDirectory() as folder:
        for to_model, label in ((False, "fine-tuned, own scale"), (True, "fine-tuned, model's scale")):
            path, spent = fine_tuned(datasets, to_model, minutes, seed, Path(folder))
            show(label, scores(path, cases), spent)


def simulated_part(minutes: float, seed: int, diameter: float = SIM["diameter"]) -> None:
    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.simulate import simulate
    from cellfie_caiman.training.simulated import neuron_density

    n = int(neuron_density(diameter) * SIM["shape"][0] * SIM["shape"][1])
    sims = {s: simulate(SIM["n_frames"], SIM["shape"], n, seed=s, fs=SIM["fs"], diameter=diameter)
            for s in SIM["train"] + SIM["test"]}
    train_sets = [(sims[s].movie, sims[s].masks) for s in SIM["train"]]
    cases = [(sims[s].movie, sims[s].masks, mask_diameter(sims[s].masks), lambda m: m) for s in SIM["test"]]
    true = np.median([mask_diameter(sims[s].masks) for s in SIM["test"]])
    compare(f"simulated neurons of {diameter:g} px (diameter parameter; masks {true:.1f} px), {n} per movie, seed "
            f"{seed}:",
            train_sets, cases, minutes, seed)


def real_part(minutes: float, seed: int) -> None:
    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.rois import read_rois

    folder = DATA / REAL["name"]
    if not folder.is_dir():
        print(f"real part skipped: {folder} not found")
        return
    movie, rois, cut = str(folder / "movie.tif"), str(folder / "regions.json"), REAL["cut"]
    gt = read_rois(rois, shape=REAL["shape"])

    def below(masks):  # the masks mostly in the scored rows, cut to them
        m = np.asarray(masks, bool)
        return m[m[:, cut:].sum((1, 2)) > 0.5 * m.sum((1, 2))][:, cut:]

    compare(f"{REAL['name']} ({mask_diameter(gt):.1f} px), fine-tuned on rows 0-{cut - 1}, scored on rows "
            f"{cut}-{REAL['shape'][0] - 1} ({len(below(gt))} neurons), seed {seed}:",
            [(movie, rois, f"0:{cut},:")], [(movie, gt, mask_diameter(gt), below)], minutes, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="CPU minutes of each fine-tuning (default 6)")
    parser.add_argument("--part", choices=("simulated", "real", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--diameter", type=float, default=SIM["diameter"],
                        help=f"the simulated neurons' diameter parameter, px (default {SIM['diameter']:g})")
    args = parser.parse_args()
    if args.part in ("simulated", "both"):
        simulated_part(args.minutes, args.seed, args.diameter)
    if args.part in ("real", "both"):
        real_part(args.minutes, args.seed)


if __name__ == "__main__":
    main()
