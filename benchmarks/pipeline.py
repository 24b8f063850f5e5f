"""Speed of a whole run (builtin backend) on real data: seconds per step, peak memory, F1; CaImAn side by side.

Reproduce (on 2 cores, the goal is under 30 s for the whole run)::

    python benchmarks/pipeline.py                       # neurofinder.00.00-left (600 x 512 x 256), 2 cores
    python benchmarks/pipeline.py --cores 1 --movie M.tif --gt regions.json --fr 30 --decay-time 0.4 --diameter 12

Baselines, measured in the same process:

* reading the whole movie once as float32 (the I/O floor: a run costs this many movie reads);
* when CaImAn is importable (``--caiman``, on by default then): CaImAn's batch pipeline on the same movie with the
  settings of its own neurofinder comparison (``comparison_humans.py``: rf 20, stride 10, K 7 per patch, gSig 6,
  p 1, nb 2, ssub = tsub = 2, refit, component evaluation without the CNN whose weights are not in CaImAn's source),
  on ``--cores`` processes, scored with the same rule.

For reference, from the project brief (not measured here): CaImAn's batch pipeline takes about 145 s on this movie
with 2 processes; Suite2p about 10 s on 1500 x 256 x 256.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_MOVIE = DATA / "neurofinder.00.00-left" / "movie.tif"


def _limit_cores(n: int) -> None:
    """Pin this process to ``n`` cores and size every thread pool to match (before numpy/numba/TF load)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cores)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def read_once(movie_path) -> float:
    """Seconds to read the whole movie once as float32, chunk by chunk."""
    from cellfie_caiman.io import load_movie

    t0 = time.perf_counter()
    with load_movie(movie_path) as m:
        total = 0.0
        for _, block in m.chunks():
            total += float(block[:, 0, 0].sum())
    return time.perf_counter() - t0


def run_cellfie(movie_path, gt, args, out_dir):
    import cellfie_caiman as cc

    params = cc.Params.from_dict({
        "data": {"fr": args.fr, "decay_time": args.decay_time, "neuron_diameter": args.diameter},
        "refine": {"backend": "builtin"},
        "detection": {"model": args.model},
        "output": {"pictures": not args.no_pictures},
    })
    return cc.run(movie_path, out_dir, params, gt=gt, overwrite=True, progress=False)


def run_caiman_batch(movie_path, args, work_dir):
    """CaImAn's batch pipeline (patches, refit, evaluation); returns (seconds per step, accepted masks)."""
    import caiman as cm
    import numpy as np
    from caiman.source_extraction.cnmf import cnmf
    from caiman.source_extraction.cnmf.params import CNMFParams

    from cellfie_caiman.io import load_movie, save_memmap
    from cellfie_caiman.masks import footprints_to_masks

    times = {}
    t0 = time.perf_counter()
    fname = save_memmap(load_movie(movie_path), "caiman_bench", order="C", directory=work_dir)
    Yr, dims, T = cm.load_memmap(fname)
    images = np.reshape(Yr.T, [T] + list(dims), order="F")
    times["memmap"] = time.perf_counter() - t0
    gsig = 6
    opts = CNMFParams(params_dict={
        "data": {"fnames": [fname], "dims": dims, "fr": args.fr, "decay_time": args.decay_time},
        "patch": {"rf": 20, "stride": 10, "only_init": True},
        "init": {"K": 7, "gSig": [gsig, gsig], "nb": 2, "method_init": "greedy_roi", "ssub": 2, "tsub": 2},
        "preprocess": {"p": 1}, "temporal": {"p": 1},
        "merging": {"merge_thr": 0.8},
        "quality": {"min_SNR": 2.0, "rval_thr": 0.85, "rval_lowest": -1.1, "SNR_lowest": 0.5, "use_cnn": False},
    })
    _, dview, n_processes = cm.cluster.setup_cluster(backend="multiprocessing", n_processes=args.cores)
    try:
        t0 = time.perf_counter()
        cnm = cnmf.CNMF(n_processes, params=opts, dview=dview)
        cnm.fit(images)
        times["fit (patches)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cnm2 = cnm.refit(images, dview=dview)
        times["refit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cnm2.estimates.evaluate_components(images, cnm2.params, dview=dview)
        times["evaluate"] = time.perf_counter() - t0
    finally:
        cm.stop_server(dview=dview)
    est = cnm2.estimates
    masks = footprints_to_masks(est.A, dims)[np.asarray(est.idx_components, dtype=int)]
    return times, masks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--movie", default=str(DEFAULT_MOVIE), help="movie (default: neurofinder.00.00-left)")
    p.add_argument("--gt", help="manual ROIs (default: regions.json beside the default movie)")
    p.add_argument("--fr", type=float, default=7.0, help="frame rate (Hz)")
    p.add_argument("--decay-time", type=float, default=0.7, help="decay time (s); CaImAn's comparison uses 0.7 here")
    p.add_argument("--diameter", type=float, default=9.0, help="neuron diameter (px)")
    p.add_argument("--model", default="default", help="detection model")
    p.add_argument("--cores", type=int, default=2, help="cores (and CaImAn processes) to use")
    p.add_argument("--no-pictures", action="store_true", help="time the run without writing pictures")
    p.add_argument("--caiman", dest="caiman", action="store_true", default=None, help="also run CaImAn's batch")
    p.add_argument("--no-caiman", dest="caiman", action="store_false", help="skip CaImAn even if importable")
    args = p.parse_args(argv)
    _limit_cores(args.cores)

    movie = Path(args.movie)
    if not movie.exists():
        sys.exit(f"{movie} not found (the shared data lives in ../shared/data beside the repository)")
    gt = args.gt or (movie.parent / "regions.json" if movie == DEFAULT_MOVIE else None)

    import cellfie_caiman  # noqa: F401 - import cost outside the timings
    from cellfie_caiman.cnmf.caiman_adapter import caiman_available

    rss0 = _rss_mb()
    t_read = read_once(movie)
    with tempfile.TemporaryDirectory(prefix="cellfie_bench_") as tmp:
        res = run_cellfie(movie, gt, args, Path(tmp) / "out")
        peak = _peak_rss_mb()
        t, r, c = res.shape
        print(f"movie {movie} ({t} x {r} x {c}), {args.cores} core(s), builtin backend")
        print(f"{'step':<12}{'seconds':>9}{'CPU s':>9}")
        for step, sec in res.timings.items():
            print(f"{step:<12}{sec:>9.2f}{res.cpu_timings.get(step, float('nan')):>9.2f}")
        cpu = sum(res.cpu_timings.values())
        print(f"{'total':<12}{res.total_time:>9.2f}{cpu:>9.2f}   (goal < 30 s on 2 cores)")
        print(f"load average {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs on this machine): a load well "
              f"above {args.cores} means other processes competed for the cores and inflated the wall-clock times")
        print(f"peak memory {peak:.0f} MB (RSS; {rss0:.0f} MB after imports); movie as float32 "
              f"{t * r * c * 4 / 2**20:.0f} MB")
        print(f"baseline, same process: reading the movie once takes {t_read:.2f} s -> the run costs "
              f"{res.total_time / t_read:.1f} movie reads")
        print(f"{res.n_detected} detected, {res.n_components} refined, {res.n_accepted} accepted")
        if res.scores:
            for stage, by_rule in res.scores.items():
                print(f"F1 {stage:<9} CaImAn rule {by_rule['caiman'].f1:.3f}   IoU>=0.5 rule {by_rule['iou'].f1:.3f}")

        use_caiman = caiman_available() if args.caiman is None else args.caiman
        if use_caiman:
            from cellfie_caiman import match_rois, read_rois

            times, masks = run_caiman_batch(movie, args, tmp)
            total = sum(times.values())
            print(f"\nCaImAn batch pipeline ({args.cores} processes), same movie, same process:")
            for step, sec in times.items():
                print(f"{step:<14}{sec:>9.2f}")
            print(f"{'total':<14}{total:>9.2f}   cellfie_caiman is {total / res.total_time:.1f}x faster")
            if gt is not None:
                g = read_rois(gt, (r, c))
                f_c = match_rois(g, masks, rule="caiman").f1
                f_i = match_rois(g, masks, rule="iou").f1
                print(f"CaImAn batch: {len(masks)} accepted; F1 CaImAn rule {f_c:.3f}   IoU>=0.5 rule {f_i:.3f}")
            print(f"\n{'':<22}{'seconds':>9}{'F1 (CaImAn rule)':>18}")
            print(f"{'cellfie_caiman':<22}{res.total_time:>9.1f}{res.f1('refined') or float('nan'):>18.3f}")
            print(f"{'CaImAn batch':<22}{total:>9.1f}{f_c if gt is not None else float('nan'):>18.3f}")
        else:
            print("\nCaImAn not importable: its batch pipeline was not run (brief's figure: about 145 s with 2 "
                  "processes on neurofinder.00.00-left).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
