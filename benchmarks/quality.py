"""Quality control after CNMF: CaImAn's rule with and without the networks' scores in the place of its CNN.

CaImAn accepts a component when its space correlation, its trace SNR or its CNN classifier's score passes an upper
threshold and none of them is below a lower one. CaImAn's CNN weights are not part of its source; with
``quality.use_cnn`` (the default since 2026-11-27) the networks' detection score stands in for it: each component
gets the score of the detection that overlaps it most. This script runs ``cellfie_caiman.run`` (builtin CNMF,
default parameters) on simulated movies and scores the accepted components both ways, from the same run (the
refinement is the same; only the decision differs), against the ground truth (CaImAn rule), pooled per set:

* our simulator at ``detection.py``'s settings (256 x 256, 110 neurons, 15 Hz), seeds 7373000-04, 500 and 1500
  frames;
* the independent generator (``independent_simulator.py``), seeds 555200-01.

It also prints the detections before refinement (the networks' masks). Reproduce with::

    python benchmarks/quality.py [--movies 5] [--independent 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

SEED = 7373000
INDEPENDENT_SEED = 555200


def decisions(res) -> dict[str, np.ndarray]:
    """The masks accepted with and without the scores, and the detections, from one run."""
    from cellfie_caiman.cnmf.quality import accept
    from cellfie_caiman.params import QualityParams

    q = QualityParams()
    est = res.estimates
    all_masks = np.load(res.files["masks"])["all_masks"]
    snr, r = np.asarray(est.SNR_comp), np.asarray(est.r_values)
    without, _ = accept(snr, r, q.min_SNR, q.SNR_lowest, q.rval_thr, q.rval_lowest)
    with_scores, _ = accept(snr, r, q.min_SNR, q.SNR_lowest, q.rval_thr, q.rval_lowest, cnn=est.cnn_preds,
                            min_cnn_thr=q.min_cnn_thr, cnn_lowest=q.cnn_lowest)
    return {"without scores": all_masks[without], "with scores (default)": all_masks[with_scores],
            "detections": np.asarray(res.initialization.masks, bool)}


def movies(n_movies: int, n_independent: int):
    import detection
    import independent_simulator as ind

    from cellfie_caiman.simulate import simulate

    for frames in (500, 1500):
        for i in range(n_movies):
            sim = simulate(frames, detection.SIM_TEST["shape"], detection.SIM_TEST["n_neurons"], seed=SEED + i,
                           fs=detection.SIM_TEST["fs"])
            yield f"our simulator, {frames} frames", sim.movie, sim.masks, float(sim.fs)
    for i in range(n_independent):
        sim = ind.simulate_scan(ind.TEST["n_frames"], ind.TEST["shape"], ind.TEST["n_neurons"],
                                seed=INDEPENDENT_SEED + i, fs=ind.TEST["fs"])
        yield "independent generator", sim.movie, sim.masks, float(ind.TEST["fs"])


def main(argv=None) -> None:
    from cellfie_caiman.evaluate import match_rois, pool_matches
    from cellfie_caiman.pipeline import run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movies", type=int, default=5, help="movies of our simulator per length")
    parser.add_argument("--independent", type=int, default=2, help="movies of the independent generator")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list]] = {}
    for name, movie, truth, fr in movies(args.movies, args.independent):
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            res = run(movie, f"{tmp}/out", {"refine": {"backend": "builtin"}, "data": {"fr": fr},
                                            "output": {"pictures": False}}, progress=False)
            found = decisions(res)
        per_set = results.setdefault(name, {})
        for rule, masks in found.items():
            per_set.setdefault(rule, []).append(match_rois(truth, masks))
        print(f"{name}: " + ", ".join(f"{rule} {len(m)} (F1 {per_set[rule][-1].f1:.3f})" for rule, m in found.items())
              + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    for name, per_set in results.items():
        print(f"{name}, pooled over {len(next(iter(per_set.values())))} movies:")
        for rule, matches in per_set.items():
            p = pool_matches(matches)
            print(f"    {rule:22s} F1 {p.f1:.3f}  P {p.precision:.3f}  R {p.recall:.3f}", flush=True)


if __name__ == "__main__":
    main()
