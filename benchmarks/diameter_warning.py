"""When does ``initialize(neuron_diameter=D)`` warn that the neurons it found are of another size?

Each movie is detected with D = its annotated median mask diameter times a factor (0.5 ... 2), the soma-filtered
image computed for that D, as ``initialize`` does when given D. Printed per movie and factor: the number of
masks found, the ratios the check reads (the masks' median diameter / D, and the median diameter of the
neuron-probability regions that hold the centres / D) and whether it warned ("larger": the somata look larger
than D, "smaller": smaller, "-": no warning). The rule (``initialize.GIVEN_DIAMETER_RANGE``): masks > 1.2 x D or
regions < 0.8 x D, with at least ``AUTO_DIAMETER_MIN_MASKS`` masks. With fewer masks at D (a D far too large shrinks
the field until the networks find almost nothing), ``initialize`` detects once more at the model's own scale and
warns when the neurons found there break the same rule and the few masks found at D side with them (marked "*":
"smaller*", "larger*"). It must never warn at the annotated size.

Movies: simulated fields of four soma sizes (3 seeds each) and seven harder variants (strong neuropil, rare
firing, 12 neurons, 100 frames, a neuropil of processes, dense packing, the tests' movie), and the two real
excerpts (annotated medians 15.3 and 9.2 px) when ``../shared/data`` is beside the repository.

    python benchmarks/diameter_warning.py [--factors 0.5 0.67 0.8 1 1.25 1.5 2] [--only real|sim|variants]
    python benchmarks/diameter_warning.py --factors 0.25 0.33 1 2 3 4      # sizes far off (any factors > 0)
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL = ("neurofinder.01.01", "neurofinder.00.00-left")
#: (nominal soma diameter parameter, field side, neurons): four sizes; seeds 41-43 each
SIZES = ((5.7, 128, 70), (6.7, 128, 60), (10.0, 160, 50), (15.0, 192, 35))
VARIANTS = {
    "tests' movie": dict(n_frames=300, shape=(128, 128), n_neurons=40, seed=11),
    "strong neuropil": dict(n_frames=300, shape=(160, 160), n_neurons=50, seed=3, neuropil_contrast=0.5,
                            neuropil_activity=0.3),
    "rare firing": dict(n_frames=300, shape=(160, 160), n_neurons=50, seed=51, rate=0.02),
    "12 neurons": dict(n_frames=300, shape=(160, 160), n_neurons=12, seed=52),
    "100 frames": dict(n_frames=100, shape=(160, 160), n_neurons=50, seed=53),
    "processes": dict(n_frames=300, shape=(160, 160), n_neurons=50, seed=54, neuropil_processes=0.5),
    "dense": dict(n_frames=300, shape=(128, 128), n_neurons=70, seed=55, diameter=10.0),
}


def movies(only: str | None):
    """(name, movie (T, rows, cols), annotated masks (K, rows, cols))."""
    from cellfie_caiman.simulate import simulate

    if only in (None, "real"):
        import tifffile

        from cellfie_caiman.rois import read_rois

        for name in REAL:
            if (DATA / name).is_dir():
                movie = tifffile.imread(DATA / name / "movie.tif")
                yield name, movie, read_rois(DATA / name / "regions.json", shape=movie.shape[1:])
    if only in (None, "sim"):
        for nominal, side, n in SIZES:
            for seed in (41, 42, 43):
                sim = simulate(300, (side, side), n, seed=seed, fs=15.0, diameter=nominal)
                yield f"simulated, diameter {nominal:g}, seed {seed}", sim.movie, sim.masks
    if only in (None, "variants"):
        for name, kw in VARIANTS.items():
            kw = dict(kw)
            sim = simulate(kw.pop("n_frames"), kw.pop("shape"), kw.pop("n_neurons"), fs=15.0, **kw)
            yield name, sim.movie, sim.masks


def check(movie: np.ndarray, truth: np.ndarray, factors) -> list[tuple]:
    """(factor, D, masks found, mask ratio, region ratio, warning side) for each factor."""
    from cellfie_caiman._checks import MIN_DIAMETER
    from cellfie_caiman.filtered import filtered_pnr
    from cellfie_caiman.initialize import initialize, region_diameter
    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.summary import summary_images

    true_d = mask_diameter(truth)
    base = summary_images(movie, batch_frames=250)
    rows = []
    for factor in factors:
        d = round(true_d * factor, 2)
        if not MIN_DIAMETER <= d <= max(movie.shape[1:]):  # refused by initialize with a ValueError
            rows.append((factor, d, 0, np.nan, np.nan, "refused"))
            continue
        images = base._replace(pnr_filtered=filtered_pnr(movie, d, batch_frames=250), filter_diameter=d)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = initialize(images, neuron_diameter=d)
        said = [str(w.message) for w in caught if str(w.message).startswith(f"neuron_diameter={d:g} px, but")]
        side = "-" if not said else ("larger" if "look larger" in said[0] else "smaller")
        side += "*" if said and "at the model's own scale" in said[0] else ""
        k = len(found.masks)
        rows.append((factor, d, k, mask_diameter(found.masks) / d if k else np.nan,
                     region_diameter(found.prob_map, found.centers) / d if k else np.nan, side))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0])
    parser.add_argument("--only", choices=("real", "sim", "variants"))
    args = parser.parse_args()
    start = time.perf_counter()
    if min(args.factors) <= 0:
        parser.error("--factors must be positive")
    warned: dict[float, list[bool]] = {f: [] for f in args.factors}
    at_model: dict[float, list[bool]] = {f: [] for f in args.factors}
    print(f"{'movie':38s} factor  D (px)  masks  masks/D  regions/D  warning")
    for name, movie, truth in movies(args.only):
        for factor, d, k, mask_ratio, region_ratio, side in check(movie, truth, args.factors):
            if side != "refused":
                warned[factor].append(side != "-")
                at_model[factor].append(side.endswith("*"))
            print(f"{name:38s} {factor:5.2f}  {d:6.2f}  {k:5d}  {mask_ratio:7.3f}  {region_ratio:9.3f}  {side}",
                  flush=True)
    print(f"\nwarned, by factor ({time.perf_counter() - start:.0f} s):")
    for factor, said in warned.items():
        print(f"  x{factor:g}: {sum(said)} of {len(said)} movies ({sum(at_model[factor])} after a detection at the "
              f"model's scale)")


if __name__ == "__main__":
    main()
