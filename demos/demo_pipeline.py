"""CaImAn's batch pipeline with CNMF's initialisation replaced by the cellfie_caiman networks.

Needs CaImAn (``conda install -c conda-forge caiman``; then ``caimanmanager install`` for the sample data).
Without a movie argument it runs on CaImAn's sample movie ``caiman_datadir()/example_movies/demoMovie.tif``::

    python demos/demo_pipeline.py                                 # CaImAn's demoMovie.tif
    python demos/demo_pipeline.py movie.tif --fr 7.5 --decay-time 1.0 --diameter 12 -o demo_out

What changes compared with CaImAn's own demo: no ``rf``/``K``/``greedy_roi``. The networks give boolean masks,
handed to CNMF as ``Ain`` (pixels x K, Fortran order) with ``rf=None`` and ``only_init=False``; CNMF then refines
footprints and traces as usual. ``evaluate_components`` gets the memmap-backed ``images`` (CaImAn needs an
``np.memmap`` there).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("movie", nargs="?", help="movie (default: CaImAn's example_movies/demoMovie.tif)")
    p.add_argument("-o", "--out", default="demo_pipeline_out", help="output folder")
    p.add_argument("--fr", type=float, default=30.0, help="frame rate (Hz)")
    p.add_argument("--decay-time", type=float, default=0.4, help="indicator decay time (s)")
    p.add_argument("--diameter", type=float, default=None, help="neuron diameter (px); default: the model's")
    p.add_argument("--model", default="default", help="detection model (name or .npz weights)")
    p.add_argument("--processes", type=int, default=2, help="CaImAn worker processes (1: no cluster)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        import caiman as cm
        from caiman.paths import caiman_datadir
        from caiman.source_extraction.cnmf import cnmf
        from caiman.source_extraction.cnmf.params import CNMFParams
    except ImportError:
        sys.exit("demo_pipeline.py needs CaImAn (conda install -c conda-forge caiman); "
                 "demos/demo_builtin.py runs the same without it")
    import cellfie_caiman as cc
    from cellfie_caiman import report
    from cellfie_caiman.cnmf.scores import component_scores
    from cellfie_caiman.masks import footprints_to_masks

    # CaImAn resolves relative names against its temp folder: give it an absolute path
    fname = os.path.abspath(args.movie or os.path.join(caiman_datadir(), "example_movies", "demoMovie.tif"))
    if not os.path.exists(fname):
        sys.exit(f"{fname} not found: give a movie, or run `caimanmanager install` for CaImAn's sample data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    # 1. CaImAn's C-order memmap and the (T, rows, cols) memmap view of it (CaImAn's single-file order='F' is broken)
    fname_mmap = cm.save_memmap([fname], base_name="memmap_", order="C")
    Yr, dims, T = cm.load_memmap(fname_mmap)
    images = np.reshape(Yr.T, [T] + list(dims), order="F")

    # 2. the networks replace greedy_roi / patches: boolean masks -> Ain (pixels x K, Fortran order)
    init = cc.initialize(images, model=args.model, neuron_diameter=args.diameter, progress=True)
    print(f"networks: {init.Ain.shape[1]} neurons in {time.perf_counter() - t0:.1f} s")
    diameter = args.diameter or 2 * np.sqrt(np.median(init.masks.sum(axis=(1, 2))) / np.pi)
    g = max(1, int(round(diameter / 2)))

    # 3. seeded CNMF: rf=None (patches would silently drop Ain) and only_init=False (else fit stops after init)
    opts = CNMFParams(params_dict={
        "data": {"fnames": [fname_mmap], "dims": dims, "fr": args.fr, "decay_time": args.decay_time},
        "patch": {"rf": None, "only_init": False},
        "init": {"gSig": [g, g], "nb": 2},
        "preprocess": {"p": 1},
        "temporal": {"p": 1},
        "merging": {"merge_thr": 0.85},
        "quality": {"min_SNR": 2.5, "rval_thr": 0.8, "use_cnn": False},
    })
    dview = None
    if args.processes > 1:
        _, dview, n_processes = cm.cluster.setup_cluster(backend="multiprocessing", n_processes=args.processes)
    else:
        n_processes = 1
    try:
        cnm = cnmf.CNMF(n_processes, params=opts, dview=dview, Ain=init.Ain)
        # CaImAn's seeded background start (nb > 1) draws from NumPy's global generator: seed it, or reruns differ
        np.random.seed(0)
        cnm.fit(images)
        # 4. CaImAn's component evaluation on the memmap-backed images, then its decision again with the networks'
        #    scores in the place of its CNN classifier (whose weights are not in CaImAn's source)
        cnm.estimates.evaluate_components(images, cnm.params, dview=dview)
        cnm.estimates.cnn_preds = component_scores(cnm.estimates.A, init, dims)
        cnm.estimates.filter_components(images, cnm.params,
                                        new_dict={"use_cnn": True, "min_cnn_thr": 0.9, "cnn_lowest": 0.1})
    finally:
        if dview is not None:
            cm.stop_server(dview=dview)
    cnm.estimates.Cn = init.summary.corr
    est = cnm.estimates
    n_acc = len(est.idx_components)
    print(f"CNMF: {est.A.shape[1]} components, {n_acc} accepted, total {time.perf_counter() - t0:.1f} s")

    cnm.save(str((out / "results.hdf5").resolve()))
    masks = footprints_to_masks(est.A, dims)
    accepted = np.zeros(len(masks), bool)
    accepted[est.idx_components] = True
    report.plot_contours(init.summary.corr, masks, out / "contours.png", accepted=accepted,
                         title=f"seeded CaImAn CNMF: {n_acc} accepted of {len(masks)}")
    idx = np.asarray(est.idx_components)
    if len(idx):
        report.plot_traces(est.C[idx], out / "traces.png", fr=args.fr, raw=est.C[idx] + est.YrA[idx],
                           snr=est.SNR_comp[idx])
    print(f"results in {out}/ (results.hdf5: caiman.source_extraction.cnmf.cnmf.load_CNMF reads it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
