"""Detection next to pixels without data: F1 outside them (CaImAn rule, shipped model).

Motion correction leaves the edge of the field without data (NaN, or zeros with some tools). Each simulated movie is
scored outside a left border of ``B`` columns, with the border left as recorded ("none"), set to NaN ("nan") or to 0
("zero"), and with the movie cut to the columns with data ("cut"). ``initialize`` leaves edge rows and columns
without data out of the networks' field, so "nan" and "zero" should score as "cut".

With ``--stripe W`` the ``W`` columns without data run through the middle of the field instead (the dead columns of
a stitched field, a masked patch): scored against the true masks cut to the columns with data (those left with
at least 10 pixels), in brackets the masks that reach into the stripe ("cut" is then not defined).

    python benchmarks/borders.py [--seeds 5252001 5252002 5252003] [--border 12]
    python benchmarks/borders.py --stripe 14
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5252001, 5252002, 5252003])
    parser.add_argument("--border", type=int, default=12, help="border width (columns)")
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--stripe", type=int, default=0,
                        help="columns without data through the middle of the field instead of a left border")
    args = parser.parse_args()
    if args.stripe:
        stripe(args.seeds, args.stripe, args.frames)
        return

    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.simulate import simulate

    b = args.border
    print(f"F1 outside a {b}-column border; masks drawn mostly inside the border in brackets")
    print("seed      none          nan           zero          cut")
    for seed in args.seeds:
        sim = simulate(args.frames, (192, 192), 60, seed=seed, fs=15.0)
        movie = sim.movie.astype(np.float32)
        truth = sim.masks[:, :, b:]
        row = []
        for name in ("none", "nan", "zero", "cut"):
            if name == "cut":
                field = movie[:, :, b:]
            else:
                field = movie.copy()
                if name != "none":
                    field[:, :, :b] = np.nan if name == "nan" else 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reader's warning about the NaN it fills
                masks = initialize(field).masks
            inside = 0 if name == "cut" else int(np.sum(masks[:, :, :b].sum((1, 2)) > 0.5 * masks.sum((1, 2))))
            outside = masks if name == "cut" else masks[:, :, b:]
            row.append(f"{match_rois(truth, outside).f1:.3f} ({inside})")
        print(f"{seed}  " + "  ".join(f"{cell:<12}" for cell in row), flush=True)


def stripe(seeds: list[int], width: int, frames: int) -> None:
    """F1 of each movie with ``width`` blank columns through the middle of its field, as recorded, NaN or 0."""
    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.simulate import simulate

    c0 = (192 - width) // 2
    blank = np.zeros((192, 192), bool)
    blank[:, c0:c0 + width] = True
    print(f"F1 against the true masks cut to the pixels with data, a {width}-column stripe at columns {c0}-"
          f"{c0 + width - 1}; masks reaching into the stripe in brackets")
    print("seed      none          nan           zero")
    for seed in seeds:
        sim = simulate(frames, (192, 192), 60, seed=seed, fs=15.0)
        truth = sim.masks & ~blank
        truth = truth[truth.sum((1, 2)) >= 10]
        row = []
        for name in ("none", "nan", "zero"):
            field = sim.movie.astype(np.float32)
            if name != "none":
                field[:, blank] = np.nan if name == "nan" else 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reader's warning about the NaN it fills
                masks = initialize(field).masks
            into = int(np.sum(masks[:, blank].sum(1) > 0))
            row.append(f"{match_rois(truth, masks & ~blank).f1:.3f} ({into})")
        print(f"{seed}  " + "  ".join(f"{cell:<12}" for cell in row), flush=True)


if __name__ == "__main__":
    main()
