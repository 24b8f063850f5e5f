"""The cellfie_caiman pipeline step by step, without CaImAn (refinement by the builtin seeded CNMF).

::

    python demos/demo_builtin.py                                  # a simulated movie with known neurons
    python demos/demo_builtin.py movie.tif --fr 7.5 --decay-time 1.0 --diameter 12 --gt regions.json

Each step is one call; ``cellfie-caiman run`` (``cellfie_caiman.run``) does the same and also writes every output
file. Results go to ``demo_builtin_out/`` (CaImAn's HDF5 layout, neurofinder JSON ROIs, pictures).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("movie", nargs="?", help="movie (default: simulate 1000 frames of 128x128 with 40 neurons)")
    p.add_argument("-o", "--out", default="demo_builtin_out", help="output folder")
    p.add_argument("--fr", type=float, default=30.0, help="frame rate (Hz)")
    p.add_argument("--decay-time", type=float, default=0.4, help="indicator decay time (s)")
    p.add_argument("--diameter", type=float, default=None, help="neuron diameter (px)")
    p.add_argument("--model", default="default", help="detection model (name or .npz weights)")
    p.add_argument("--gt", help="ground-truth ROIs to score against")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    import cellfie_caiman as cc
    from cellfie_caiman import report
    from cellfie_caiman.masks import footprints_to_masks

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gt = None
    if args.movie is None:
        sim = cc.simulate(1000, (128, 128), 40, seed=0, fs=args.fr, decay_time=args.decay_time, diameter=12.0)
        movie, gt, args.diameter = cc.load_movie(sim.movie), sim.masks, 12.0
    else:
        movie = cc.load_movie(args.movie)
        if args.gt:
            gt = cc.read_rois(args.gt, movie.frame_shape)
    params = cc.Params.from_dict({"data": {"fr": args.fr, "decay_time": args.decay_time,
                                           "neuron_diameter": args.diameter},
                                  "detection": {"model": args.model}, "refine": {"backend": "builtin"}})
    t = {}

    t0 = time.perf_counter()
    summary = cc.summary_images(movie, batch_frames=params.summary.batch_frames, progress=True)  # 1. summary images
    t["summary"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # 2. the networks: masks, scores, Ain
    init = cc.initialize(summary, model=args.model, neuron_diameter=args.diameter, progress=True)
    t["networks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    est = cc.refine(movie, init, params=params, backend="builtin", progress=True)  # 3. seeded CNMF + quality control
    t["refine"] = time.perf_counter() - t0

    est.Cn = summary.corr
    est.save(out / "results.hdf5")  # CaImAn's layout: load_CNMF reads it
    masks = footprints_to_masks(est.A, movie.frame_shape)
    idx = np.asarray(est.idx_components, dtype=int)
    cc.write_rois(out / "rois.json", masks[idx])
    accepted = np.zeros(len(masks), bool)
    accepted[idx] = True
    report.plot_contours(summary.corr, masks, out / "contours.png", accepted=accepted, gt_masks=gt,
                         title=f"{len(idx)} accepted of {len(masks)} refined ({len(init.masks)} detected)")
    if len(idx):
        report.plot_traces(est.C[idx], out / "traces.png", fr=args.fr, raw=est.C[idx] + est.YrA[idx],
                           snr=est.SNR_comp[idx])
    print(f"{len(init.masks)} detected, {len(masks)} refined, {len(idx)} accepted; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))
    if gt is not None:  # 4. scores against the ground truth
        for stage, pred in (("detected", init.masks), ("refined", masks[idx])):
            for rule in ("caiman", "iou"):
                m = cc.match_rois(gt, pred, rule=rule)
                print(f"{stage:>9} {rule:>6} rule: precision {m.precision:.3f} recall {m.recall:.3f} F1 {m.f1:.3f}")
    print(f"results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
