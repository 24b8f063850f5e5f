"""Score detected ROIs against manual annotations, with CaImAn's own scorer when CaImAn is installed.

::

    python demos/demo_benchmark.py out/rois.json ../shared/data/neurofinder.00.00-left/regions.json --shape 512 256
    python demos/demo_benchmark.py out/results.hdf5 regions.json          # CaImAn results: accepted components

PRED and GT are any ROI files ``cellfie_caiman.read_rois`` reads (neurofinder JSON, ImageJ zip, CaImAn HDF5, NWB,
Suite2p stat.npy, mask arrays). Two rules are printed:

* CaImAn's (neurofinder/eLife protocol): Hungarian matching on 1 - IoU between masks whose centroids are closer than
  10 px, a match when 1 - IoU < 0.7. Computed with CaImAn's ``nf_match_neurons_in_binary_masks`` when CaImAn is
  importable, **given float masks** (it scores boolean masks F1 = 0), and always with ``cellfie_caiman.match_rois``.
* the IoU rule of SUNS/STNeuroNet: one-to-one matching of pairs with IoU >= 0.5.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pred", help="detected ROIs")
    p.add_argument("gt", help="manual ROIs")
    p.add_argument("--shape", nargs=2, type=int, metavar=("ROWS", "COLS"), help="frame shape")
    p.add_argument("--thresh-cost", type=float, default=0.7, help="CaImAn rule: match when 1 - IoU < this")
    p.add_argument("--min-dist", type=float, default=10, help="CaImAn rule: centroid distance gate (px)")
    args = p.parse_args(argv)

    from cellfie_caiman import match_rois, read_rois

    shape = tuple(args.shape) if args.shape else None
    pred = np.asarray(read_rois(args.pred, shape), dtype=bool)
    gt = np.asarray(read_rois(args.gt, shape or pred.shape[1:]), dtype=bool)
    print(f"{len(pred)} detected ROIs, {len(gt)} manual ROIs, frame {gt.shape[1]}x{gt.shape[2]}")
    header = f"{'scorer':<44}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}{'F1':>7}"

    def line(name, tp, fp, fn):
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        print(f"{name:<44}{tp:>5}{fp:>5}{fn:>5}{prec:>11.3f}{rec:>8.3f}{f1:>7.3f}")

    try:
        from caiman.base.rois import nf_match_neurons_in_binary_masks
    except ImportError:
        print("(CaImAn not importable: its scorer is skipped)")
        print(header)
    else:
        print(header)
        tp_gt, tp_comp, fn_gt, fp_comp, _ = nf_match_neurons_in_binary_masks(
            gt.astype(np.float64), pred.astype(np.float64), thresh_cost=args.thresh_cost, min_dist=args.min_dist)
        line("CaImAn rule, CaImAn's nf_match_neurons_...", len(tp_gt), len(fp_comp), len(fn_gt))
    m = match_rois(gt, pred, rule="caiman", thresh_cost=args.thresh_cost, min_dist=args.min_dist)
    line("CaImAn rule, cellfie_caiman.match_rois", m.tp, m.fp, m.fn)
    m = match_rois(gt, pred, rule="iou")
    line("IoU >= 0.5 rule, cellfie_caiman.match_rois", m.tp, m.fp, m.fn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
