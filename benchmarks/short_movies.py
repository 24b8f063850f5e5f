"""Detection F1 against movie length: the first T frames of simulated movies (CaImAn rule, shipped model).

The figures behind ``cellfie_caiman.initialize.SHORT_MOVIE_FRAMES`` (the length below which ``initialize`` warns).

    python benchmarks/short_movies.py [--seeds 5151001 5151002] [--lengths 3 5 10 20 40 80 160 400]
"""
from __future__ import annotations

import argparse
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5151001, 5151002])
    parser.add_argument("--lengths", type=int, nargs="+", default=[3, 5, 10, 20, 40, 80, 160, 400])
    args = parser.parse_args()

    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.simulate import simulate

    print("seed      frames  K   F1     precision recall")
    for seed in args.seeds:
        sim = simulate(max(args.lengths), (192, 192), 60, seed=seed, fs=15.0)
        for n in args.lengths:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the short-movie warning itself
                found = initialize(sim.movie[:n])
            m = match_rois(sim.masks, found.masks)
            print(f"{seed}  {n:6d}  {len(found.masks):3d} {m.f1:.3f}  {m.precision:.3f}     {m.recall:.3f}", flush=True)


if __name__ == "__main__":
    main()
