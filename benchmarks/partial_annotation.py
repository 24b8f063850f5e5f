"""Fine-tuning on a partly annotated field: with the annotated region named, and without.

A user who outlines the neurons of part of a new field and fine-tunes on them should say which part
(``train([(movie, rois, "0:128,:")])``, ``cellfie-caiman train --data MOVIE ROIS 0:128,:``); otherwise every neuron
of the rest of the field is a background target. This script measures both on a "new preparation": movies of our
simulator with an active out-of-focus soma per neuron (``out_of_focus=1.0``, ``out_of_focus_activity=2.0``; not
ground truth), where the shipped model loses precision. The top half of each field is "annotated" (its true masks),
the bottom half is scored (true masks whose centroid lies there, cut to it; ``initialize`` on that half of the
movie; CaImAn rule, pooled over the movies):

* ``shipped``: the shipped model;
* ``region``: fine-tuned on the top half named as the annotated region;
* ``whole field``: fine-tuned on the whole field with the top half's masks only (what ``train`` did before regions).

Fine-tuning as ``benchmarks/detection.py --fine-tune-halves``: from the shipped weights, no simulated fields, at most
``--minutes`` minutes, patience 8, seed 0. Reproduce (about 20 minutes on 2 CPU cores)::

    python benchmarks/partial_annotation.py [--movies 2] [--seed 9090000] [--minutes 4]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

#: the movies: seeds seed, seed + 1, ... (not used for training or for choosing any setting)
SEED = 9090000
MOVIE = dict(n_frames=1000, shape=(256, 256), n_neurons=110, fs=15.0, out_of_focus=1.0, out_of_focus_activity=2.0)


def halves(masks: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The masks reaching into the top ``rows`` rows, and the bottom part's masks (centroid below, cut to it)."""
    top = masks[masks[:, :rows].any(axis=(1, 2))]
    centroid = np.array([ndimage.center_of_mass(m)[0] for m in masks])
    bottom = masks[centroid >= rows, rows:]
    return top, bottom[bottom.any(axis=(1, 2))]


def main(n_movies: int, seed: int, minutes: float) -> None:
    from cellfie_caiman.evaluate import match_rois, pool_matches
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.simulate import simulate
    from cellfie_caiman.train import train

    results: dict[str, list] = {"shipped": [], "region": [], "whole field": []}
    tune = dict(simulated=0, init_model="default", max_minutes=minutes, epochs=200, patience=8, seed=0,
                progress=False)
    for k in range(n_movies):
        sim = simulate(seed=seed + k, **MOVIE)
        half = sim.movie.shape[1] // 2
        top, bottom = halves(sim.masks, half)
        scored = sim.movie[:, half:]
        t0 = time.perf_counter()
        models = {"shipped": "default",
                  "region": train([(sim.movie, sim.masks, f"0:{half},:")], None, **tune).model,
                  "whole field": train([(sim.movie, top)], None, **tune).model}
        for name, model in models.items():
            results[name].append(match_rois(bottom, initialize(scored, model=model).masks))
        print(f"movie {seed + k}: {len(top)} ROIs annotated (top {half} rows), {len(bottom)} scored (bottom); "
              f"{(time.perf_counter() - t0) / 60:.1f} min")
        for name, res in results.items():
            r = res[-1]
            print(f"    {name:12s} F1 {r.f1:.3f}  precision {r.precision:.3f}  recall {r.recall:.3f}")
    print(f"pooled over {n_movies} movies (90 % bootstrap interval over the movies):")
    for name, res in results.items():
        p = pool_matches(res)
        print(f"    {name:12s} F1 {p.f1:.3f} ({p.f1_low:.3f}-{p.f1_high:.3f})  precision {p.precision:.3f}  "
              f"recall {p.recall:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movies", type=int, default=2, help="number of simulated movies")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the first movie")
    parser.add_argument("--minutes", type=float, default=4.0, help="time budget of each fine-tuning")
    args = parser.parse_args()
    main(args.movies, args.seed, args.minutes)
