"""Accuracy, speed and memory of ``refine`` seeded with the true masks of a simulated movie.

Reproduce with::

    python benchmarks/refine.py                  # 2000 x 128 x 128, 30 neurons
    python benchmarks/refine.py --large          # and 2000 x 512 x 512, 300 neurons (a 2 GB memmap in a temp dir)
    python benchmarks/refine.py --frames 500     # quick run

For each size a child process simulates the movie (``cellfie_caiman.simulate``, seed 0) and writes it as a CaImAn
order-C memmap with ``save_memmap``; then each backend runs in its own child process on that file, seeded with the
true masks, so that its peak memory is its own. Printed per run:

* wall time (numba kernels compiled beforehand), its ratio to one streaming read of the movie through
  ``Movie.chunks()`` timed in the same child afterwards, and the peak memory: ``ru_maxrss`` (includes memmap file
  pages the process touched, which the kernel can drop) and the peak anonymous memory (RssAnon, sampled every 5 ms:
  what the process really needs);
* median (and 10th percentile) correlation between each true calcium trace and the C row of the component whose
  footprint overlaps it most (neurons with at least one spike), footprint F1 (``match_rois`` on ``Estimates.masks()``),
  median correlation of S with the true spikes after smoothing both with a 5-frame box, and the number of components
  that evaluation accepts.

CaImAn's seeded CNMF runs side by side when a CaImAn interpreter is found (``--caiman-python``, default: the
``CAIMAN_PYTHON`` environment variable), through ``refine(backend='caiman')``. With ``--init`` and a shipped
detection model, the small movie is also seeded with ``initialize``'s output: F1 before and after refinement, and how
many components evaluation rejects. Only ratios within one child are comparable across machines; the machine may be
shared.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


class PeakAnon:
    """Peak RssAnon of this process, sampled in a thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        self.peak = self.now()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.now())


# ------------------------------------------------------------------------------------------------------ workers
def worker_simulate(args) -> None:
    from cellfie_caiman.io import save_memmap
    from cellfie_caiman.simulate import simulate

    sim = simulate(args.frames, (args.size, args.size), args.neurons, seed=0)
    fname = save_memmap(sim.movie, "sim", directory=args.dir)
    np.savez_compressed(Path(args.dir) / "truth.npz", masks=sim.masks, calcium=sim.calcium, spikes=sim.spikes,
                        footprints=sim.footprints)
    print(json.dumps({"fname": fname}))


def metrics(est, truth) -> dict:
    import scipy.sparse
    from scipy.ndimage import uniform_filter1d

    from cellfie_caiman.evaluate import match_rois

    masks, calcium, spikes = truth["masks"], truth["calcium"], truth["spikes"]
    N = len(masks)
    K = est.A.shape[1]
    out = {"K": int(K), "accepted": int(len(est.idx_components)) if est.idx_components is not None else None}
    if K == 0:
        return out
    Ft = scipy.sparse.csr_matrix(truth["footprints"].transpose(0, 2, 1).reshape(N, -1))
    best = np.asarray((Ft @ est.A).toarray()).argmax(1)
    active = np.where(spikes.sum(1) > 0)[0]
    corr = np.array([np.corrcoef(est.C[best[i]], calcium[i])[0, 1] for i in active])
    scorr = np.array([np.corrcoef(uniform_filter1d(est.S[best[i]], 5), uniform_filter1d(spikes[i], 5))[0, 1]
                      for i in active])
    m = match_rois(masks, est.masks())
    out.update(median_corr=float(np.nanmedian(corr)), p10_corr=float(np.nanpercentile(corr, 10)),
               f1=float(m.f1), spike_corr=float(np.nanmedian(scorr)))
    return out


def worker_refine(args) -> None:
    sys.path.insert(0, str(REPO))
    from cellfie_caiman.cnmf import refine
    from cellfie_caiman.io import load_movie

    truth = dict(np.load(Path(args.dir) / "truth.npz"))
    params = {"data": {"fr": 30.0, "decay_time": 0.4}, "refine": {"p": 1, "nb": 2, "merge_thr": 0.85}}
    if args.backend == "builtin":  # compile the numba kernels outside the timed region
        small = np.random.default_rng(0).normal(10, 1, (50, 16, 16)).astype(np.float32)
        m = np.zeros((1, 16, 16), bool)
        m[0, 5:10, 5:10] = True
        refine(small, m, backend="builtin")
    with PeakAnon() as peak:
        t0 = time.perf_counter()
        est = refine(args.fname, truth["masks"], params=params, backend=args.backend)
        t = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()  # the baseline after the run, so that its pages do not count in maxrss
    for _ in load_movie(args.fname).chunks():
        pass
    t_read = time.perf_counter() - t0
    out = {"backend": args.backend, "time_s": t, "read_s": t_read, "ratio_to_read": t / t_read,
           "maxrss_gb": maxrss, "peak_anon_gb": peak.peak / 2**30}
    out.update(metrics(est, truth))
    print(json.dumps(out))


def worker_init(args) -> None:
    from cellfie_caiman.cnmf import refine
    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.initialize import initialize

    truth = dict(np.load(Path(args.dir) / "truth.npz"))
    init = initialize(args.fname)
    before = match_rois(truth["masks"], init.masks).f1
    est = refine(args.fname, init, params={"data": {"fr": 30.0, "decay_time": 0.4}}, backend="builtin")
    after = match_rois(truth["masks"], est.masks()).f1
    good = est.masks()[est.idx_components] if len(est.idx_components) else est.masks()[:0]
    print(json.dumps({"seeds": int(len(init.masks)), "f1_init": float(before), "f1_refined": float(after),
                      "K": int(est.A.shape[1]), "rejected": int(len(est.idx_components_bad)),
                      "f1_accepted": float(match_rois(truth["masks"], good).f1)}))


# ------------------------------------------------------------------------------------------------------- driver
def run_child(python: str, *argv: str, timeout: float = 3600) -> dict | None:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([python, __file__, *argv], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        print(f"    (failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(r: dict) -> str:
    return (f"{r['backend']:8s} time {r['time_s']:7.1f} s ({r['ratio_to_read']:5.1f}x read)  "
            f"maxrss {r['maxrss_gb']:5.2f} GB  anon {r['peak_anon_gb']:5.2f} GB  K {r['K']:4d}  "
            f"median corr {r.get('median_corr', float('nan')):.3f} (p10 {r.get('p10_corr', float('nan')):.3f})  "
            f"F1 {r.get('f1', float('nan')):.3f}  spike corr {r.get('spike_corr', float('nan')):.3f}  "
            f"accepted {r['accepted']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also run 2000 x 512 x 512 with 300 neurons")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--caiman-python", default=os.environ.get("CAIMAN_PYTHON", ""))
    ap.add_argument("--init", action="store_true", help="also seed with initialize() (needs a shipped model)")
    ap.add_argument("--worker", choices=["simulate", "refine", "init"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--fname", help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="builtin", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--neurons", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        {"simulate": worker_simulate, "refine": worker_refine, "init": worker_init}[args.worker](args)
        return
    configs = [(128, 30)] + ([(512, 300)] if args.large else [])
    have_caiman = bool(args.caiman_python) and Path(args.caiman_python).is_file()
    for size, neurons in configs:
        with tempfile.TemporaryDirectory(prefix="cellfie_refine_bench_") as tmp:
            print(f"{args.frames} x {size} x {size}, {neurons} neurons, seeded with the true masks")
            sim = run_child(sys.executable, "--worker", "simulate", "--dir", tmp, "--frames", str(args.frames),
                            "--size", str(size), "--neurons", str(neurons))
            if sim is None:
                continue
            common = ["--worker", "refine", "--dir", tmp, "--fname", sim["fname"]]
            r = run_child(sys.executable, *common, "--backend", "builtin")
            if r:
                print("  " + fmt(r))
            if have_caiman:
                rc = run_child(args.caiman_python, *common, "--backend", "caiman")
                if rc:
                    print("  " + fmt(rc))
                    if r:
                        print(f"  builtin/caiman time ratio {r['time_s'] / rc['time_s']:.2f}, "
                              f"peak anon ratio {r['peak_anon_gb'] / max(rc['peak_anon_gb'], 1e-9):.2f}")
            else:
                print(f"  (CaImAn interpreter {args.caiman_python} not found: builtin only)")
            if args.init and size == 128:
                from cellfie_caiman.models import list_models

                if not list_models():
                    print("  (--init: no detection model shipped yet; skipped)")
                else:
                    ri = run_child(sys.executable, "--worker", "init", "--dir", tmp, "--fname", sim["fname"])
                    if ri:
                        print(f"  initialize: {ri['seeds']} seeds, F1 {ri['f1_init']:.3f} -> refined "
                              f"{ri['f1_refined']:.3f} ({ri['K']} components, {ri['rejected']} rejected; "
                              f"F1 of the accepted {ri['f1_accepted']:.3f})")


if __name__ == "__main__":
    main()
