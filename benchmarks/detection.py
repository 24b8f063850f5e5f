"""Detection accuracy and speed of the networks, with honest cross-dataset figures.

Prints, with CaImAn's matching rule (``rule='caiman'``: centroids < 10 px apart, IoU > 0.3) and plain IoU
matching (``rule='iou'``):

* leave-one-dataset-out: a model trained without neurofinder.00.00 scored on neurofinder.00.00-left, and a model
  trained without neurofinder.01.01 scored on neurofinder.01.01 (these two models are not shipped), each also on
  the simulated movies below (500 frames): a training step that gains on one kind of data at the other's expense
  shows there;
* the shipped model on simulated movies it never saw (seeds outside its training set), default settings, with 500,
  1500 and 3000 frames;
* the shipped model on simulated neurons smaller (~7 px) and larger (~20 px) than its training size, at its own
  scale, at default settings (detected again at the measured size when that is far off) and with the true size;
* the shipped model on movies of another generative model (``simulate_blobs``: Gaussian blobs in white noise;
  ``--other-simulator`` prints only these); a third and a fourth generator, written apart from the package, are
  scored by ``benchmarks/independent_simulator.py`` and ``benchmarks/biophysical_simulator.py``;
* the shipped model on the two real excerpts (it was trained on them: not an honest figure, shown for reference);
* a trivial floor: peaks of a difference-of-Gaussians filtered mean image drawn as disks;
* the networks-only time (summary images given) on a 512 x 512 field, next to the time to compute those summary
  images from the 101-frame movie in the same process; the networks' arithmetic (GFLOP) and the rate each runs
  at against this machine's float32 matrix-multiplication rate in the same process (``--speed-only``: only these
  timings).

Reproduce (needs ../shared/data beside the repository)::

    # the shipped weights, in five steps (59 min in all on 2 CPU cores; details in the model card)
    python benchmarks/detection.py --train-shipped step1.npz
    python benchmarks/detection.py --train-shipped step2.npz --init-model step1.npz --simulated 36 \
        --annotated-fraction 0.4 --minutes 22
    python benchmarks/detection.py --train-shipped step3.npz --init-model step2.npz --simulated 72 \
        --annotated-fraction 0.4 --minutes 15
    python benchmarks/detection.py --train-shipped step4.npz --init-model step3.npz --simulated 72 \
        --annotated-fraction 0.4 --minutes 15 --channels corr,pnr,std,mean,median,max,pnr_filtered \
        --simulated-rates 0.005,1
    python benchmarks/detection.py --train-shipped step5.npz --init-model step4.npz --simulated 72 \
        --annotated-fraction 0.4 --minutes 9 --simulated-rates 0.005,1 --simulated-neuropil 0.5 --simulated-blobs 0.1 \
        --simulated-processes 0.25 --simulated-long 0.5
    # step5.npz = cellfie_caiman/models/weights/default.npz (session 12; without --simulated-long it is the default
    # of sessions 9-11, "step 5p", without --simulated-processes too session 8's, "step 5b", without
    # --simulated-blobs too session 7's, "step 5n"; step4.npz was the default until session 7)
    # on a machine of another speed, replace each --minutes by the run's recorded epoch count (steps 1-5:
    # --epochs 35, 17, 23, 25, 22): the time budgets would stop a slower machine early (session 13)
    # the two leave-one-dataset-out models through the same steps (half of the crops from the one real excerpt),
    # each --train-loo then prints the figures below
    python benchmarks/detection.py --train-loo DIR1
    python benchmarks/detection.py --train-loo DIR2 --init-loo DIR1 --simulated 36 --loo-minutes 9
    python benchmarks/detection.py --train-loo DIR3 --init-loo DIR2 --simulated 72 --loo-minutes 9
    python benchmarks/detection.py --train-loo DIR4 --init-loo DIR3 --simulated 72 --loo-minutes 9 \
        --channels corr,pnr,std,mean,median,max,pnr_filtered --simulated-rates 0.005,1
    python benchmarks/detection.py --train-loo DIR5 --init-loo DIR4 --simulated 72 --loo-minutes 7 \
        --simulated-rates 0.005,1 --simulated-neuropil 0.5 --simulated-blobs 0.1 --simulated-processes 0.25 \
        --simulated-long 0.5
    # or, with the models already trained
    python benchmarks/detection.py --loo-dir DIR5
    # a fifth step on 72 other simulated fields, tried and not adopted in session 5 (see the model card)
    python benchmarks/detection.py --train-shipped step5.npz --init-model step4.npz --simulated 72 \
        --annotated-fraction 0.4 --minutes 7 --simulated-rates 0.005,1 --seed 1
    python benchmarks/detection.py --train-loo DIR5 --init-loo DIR4 --simulated 72 --loo-minutes 7 \
        --simulated-rates 0.005,1 --seed 1 --model step5.npz
    # what annotating half of a new field buys: each leave-one-out model fine-tuned on the top half of the
    # excerpt it never saw, scored on the bottom half (00.00-left 0.454 -> 0.624, 01.01 0.369 -> 0.459)
    python benchmarks/detection.py --fine-tune-halves DIR4
    python benchmarks/detection.py --fine-tune-halves DIR4 --fine-tune-top 0.25  # a quarter: 0.593, 0.358
    python benchmarks/detection.py --fine-tune-halves DIR4 --fine-tune-simulated 8  # + simulated: 0.600, 0.390
    # the shipped model (or --model step4.npz) on simulated movies away from the defaults (strong neuropil, dim,
    # dense, ...)
    python benchmarks/detection.py --conditions
    # step 5 with active out-of-focus somata in half of the simulated fields (session 10, not adopted: own simulated
    # movies 0.951 / 0.950; at 3c14587, with sharper ones: 0.948 / 0.949, and with 0.25: 0.945 / 0.955)
    python benchmarks/detection.py --train-shipped step5d.npz --init-model step4.npz --simulated 72 \
        --annotated-fraction 0.4 --minutes 9 --simulated-rates 0.005,1 --simulated-neuropil 0.5 --simulated-blobs 0.1 \
        --simulated-processes 0.25 --simulated-defocus 0.5
    # step 5 with a quarter of the U-Net crops cut around simulated neurons the model misses (session 11, not
    # adopted; with --missed-signal 2.0 only those the soma-filtered image shows); leave-one-out models likewise
    python benchmarks/detection.py --train-shipped step5m.npz --init-model step4.npz --simulated 72 \
        --annotated-fraction 0.4 --minutes 9 --simulated-rates 0.005,1 --simulated-neuropil 0.5 --simulated-blobs 0.1 \
        --simulated-processes 0.25 --missed-crops 0.25
    # the retraining recipe tried (and not adopted) on 2026-11-25, see below
    python benchmarks/detection.py --train-loo DIR --annotated-fraction 0.7 --simulated-variety --selection balanced

Measured 2026-11-26 (session 12) on the 2-core machine (``--loo-dir DIR5``), caiman rule, TTA, default settings,
step 5 with half of the simulated fields 600-2000 frames long (the shipped weights): held out 00.00-left 0.425
(0.469 with ``neuron_diameter`` 9.2 px), 01.01 0.378 (0.451 with 15.3 px); simulated 0.958 (500 frames, 90 % over
the movies 0.949-0.967), 0.964 (1500, 0.954-0.974) and 0.971 (3000, 0.962-0.980; step 5p 0.969); other simulator
(Gaussian blobs) 0.975; independent simulator 0.862; biophysical 0.541; seen 0.803 (00.00-left) and 0.726 (01.01);
size lines 0.782 / 0.965; strong neuropil 0.934, processes 0.906, active out-of-focus somata 0.799; networks only
1.55 s, median of 5 runs interleaved with step 5p's 1.70 s in one process.

Measured 2026-11-26 (session 9) on the 2-core machine (``--loo-dir DIR5``), caiman rule, TTA, default settings,
step 5p (step 5 with blob and process-mesh fields, no long fields; the shipped weights of sessions 9-11): held out
00.00-left 0.431 (0.471 with ``neuron_diameter`` 9.2 px), 01.01 0.385 (0.444 with 15.3 px); simulated 0.958 (500
frames) and 0.964 (1500); other simulator (Gaussian blobs) 0.983; independent simulator 0.864; seen 0.795 (00.00-left)
and 0.700 (01.01); size lines 0.772 / 0.950; strong neuropil 0.931, half the neuropil in processes 0.903; networks
only 1.89 s. Session 10 added the ``--conditions`` line "active out-of-focus somata": 0.806 (P 0.708), and the
fourth generator: 0.520. Session 11 added 90 % bootstrap intervals over the movies to the pooled simulated lines:
0.946-0.968 (500 frames), 0.952-0.974 (1500), blobs 0.979-0.988.

Measured 2026-11-26 (session 8), step 5b (step 5 with blob fields, no process fields; independent simulator 0.646,
processes condition 0.598): held out 00.00-left 0.449 (0.503 with ``neuron_diameter`` 9.2 px),
01.01 0.408 (0.449 with 15.3 px); simulated 0.957 (500 frames) and 0.964 (1500); other simulator (Gaussian blobs)
0.983; seen 0.786 (00.00-left) and 0.723 (01.01); size lines 0.749 / 0.964; strong neuropil 0.900; networks only
1.91 s.

Measured 2026-11-26 (session 7) on the 2-core machine (``--loo-dir DIR5``), caiman rule, TTA, default settings
(``prob_threshold`` 0.4), step 5n (session 7's shipped weights, other simulator 0.672): held out 00.00-left 0.495
(0.521 with ``neuron_diameter`` 9.2 px), 01.01 0.408 (0.439 with 15.3 px); 5 unseen simulated movies pooled 0.957
(500 frames) and 0.964 (1500 frames); seen 0.824 (00.00-left) and 0.706 (01.01); size lines 0.757 (7.4 px) and 0.953
(19.6 px); strong neuropil (``--conditions``) 0.938; networks only on 512 x 512 1.82 s.

Measured 2026-11-26 on the 2-core machine (``--loo-dir DIR4``), caiman rule, TTA, default settings, step 3 ->
step 4 (the shipped weights, which also read the soma-filtered PNR image and were fine-tuned with quieter
simulated fields): held out 00.00-left 0.407 -> 0.454 (0.442 with ``neuron_diameter`` = the annotated median,
9.2 px), 01.01 0.346 -> 0.414 (0.442 with 15.3 px); 5 unseen simulated movies pooled 0.928 -> 0.948 (0.936, 0.936,
0.946, 0.951, 0.972); excerpts seen in training 0.732 -> 0.776 (00.00-left) and 0.666 -> 0.717 (01.01); networks
only on 512 x 512 1.61-1.75 s; the same simulated movies with 1500 frames 0.961 (session 5).
Step 4a (step 4 without ``--simulated-rates``): 0.449 / 0.381 / 0.952. After
step 2 (DIR2): 0.405 / 0.299 / 0.924. History below: the first shipped weights (step 1).

Measured 2026-11-25 on the shared 2-core machine with the weights of commit "first shipped default model" and
``python benchmarks/detection.py --loo-dir DIR`` (DIR holding the two leave-one-out models trained as above).
Before/after averaging both networks over the 8 rotations/flips of the field (``detect(tta=True)``, the default
since the "test-time augmentation" commit; same weights):

    held out: neurofinder.01.01 (model without it)       caiman F1 0.253 -> 0.312 (P 0.396 R 0.257) | iou F1 0.149
    held out: neurofinder.00.00-left (model without it)  caiman F1 0.356 -> 0.375 (P 0.298 R 0.507) | iou F1 0.224
    simulated, unseen seed 20260917 (shipped)            caiman F1 0.911 -> 0.917 (P 0.926 R 0.909) | iou F1 0.899
    neurofinder.01.01 (shipped; trained on it)           caiman F1 0.486 -> 0.561 (P 0.733 R 0.454) | iou F1 0.519
    neurofinder.00.00-left (shipped; trained on it)      caiman F1 0.644 -> 0.691 (P 0.695 R 0.688) | iou F1 0.529
    floor (DoG peaks of the mean image): 01.01 0.327, 00.00-left 0.206, simulated 0.295 (caiman rule)
    networks only on 512x512: 0.55 s -> 3.07 s; summary images of the 101x512x512 movie: 0.25 s

Networks-only time re-measured when the machine was quiet (load < 1): 2.29 s with one U-Net call per orientation,
1.77-1.91 s (two runs) since the orientations of the same shape go through the U-Net as one batch (goal < 2 s met,
barely; detection figures unchanged to the third decimal; summary images 0.25-0.38 s in the same runs).

Retraining tried on 2026-11-25 with the command above (70 % real crops, more varied simulations, best epoch on the
balanced per-strip F1; 11 min per model on the quiet machine), scored with ``--loo-dir`` (TTA):

    held out: neurofinder.01.01       caiman F1 0.312 -> 0.306
    held out: neurofinder.00.00-left  caiman F1 0.375 -> 0.415
    simulated unseen seed, the two leave-one-out models: 0.911 -> 0.875 (without 01.01), 0.893 -> 0.808
    ablation, only the balanced selection (model without 01.01, 37 epochs): held-out 01.01 0.309, simulated 0.903
Not an improvement on both held-out datasets and worse on simulated data: the shipped weights were not retrained.

Where the shipped model loses the ground-truth neurons of the real excerpts (with test-time augmentation; first
weights -> shipped): a candidate centre within 5 px for 53 -> 66 % (01.01) / 81 -> 84 % (00.00-left), a kept
instance for 45 -> 65 % / 73 -> 83 %, a match for 45 -> 69 % / 69 -> 82 %. Deduplication and mask thresholding
lose almost nothing: the region-proposal U-Net does not respond to about a third of 01.01's annotated cells, most
of which are invisible in the summary images of its 101 frames.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REAL = ("neurofinder.01.01", "neurofinder.00.00-left")
SHIPPED_SIMULATED = 12
SHIPPED_MINUTES = 32.0
LOO_MINUTES = 11.0
# recipe of the shipped and leave-one-out weights (a retrain with annotated_fraction 0.7, simulated_variety and
# balanced selection was tried on 2026-11-25 and not adopted: see the module docstring and the model card)
RECIPE = dict(selection="pooled", simulated_variety=False, scale_to_model=False)  # the shipped recipe: own scale
# unseen simulated movies: seeds seed, seed + 1, ... (one movie of 110 neurons has a standard error of ~0.025 on F1)
SIM_TEST = dict(n_frames=500, shape=(256, 256), n_neurons=110, seed=20260917, fs=15.0, movies=5)
# the same movies recorded 3 and 6 times longer (the issue compares with Suite2p and CaImAn on 1500 frames)
SIM_LONG_FRAMES = (1500, 3000)
# movies of another generative model (simulate_blobs: Gaussian blobs in white noise, no resting fluorescence), the
# kind of toy data CNMF implementations are tested on: 2000 frames at 30 Hz, 120 neurons of ~12 px
BLOBS_TEST = dict(n_frames=2000, shape=(256, 256), n_neurons=120, seed=20261126, fs=30.0, movies=5)


def real_files(name: str) -> tuple[Path, Path]:
    """(movie, manual ROIs) files of one real excerpt."""
    return DATA / name / "movie.tif", DATA / name / "regions.json"


def load_real(name: str, model="default"):
    """(SummaryImages the model reads, masks) of one real excerpt, at default settings (no neuron_diameter)."""
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.rois import read_rois

    movie, rois = real_files(name)
    summary = model_summary(movie, model=model, batch_frames=250)
    return summary, read_rois(rois, shape=summary.mean.shape)


def _command() -> str:
    return "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}"] + sys.argv[1:])


def train_shipped(out: Path, init_model: Path | None = None, minutes: float | None = SHIPPED_MINUTES,
                  annotated_fraction: float | None = None, recipe: dict | None = None,
                  simulated: int = SHIPPED_SIMULATED, channels=None, seed: int = 0, epochs: int = 200) -> None:
    from cellfie_caiman.train import train

    data = [real_files(n) for n in REAL]
    record = {"command": _command(), "real": list(REAL)}
    if init_model is not None:
        from cellfie_caiman.models import load_model

        record["previous"] = load_model(init_model).config.training  # keep the history of fine-tuned weights
    res = train(data, out, simulated=simulated, epochs=epochs, patience=12, seed=seed,
                annotated_fraction=annotated_fraction, max_minutes=minutes, init_model=init_model,
                learning_rate=1e-3 if init_model is None else 3e-4, channels=channels,
                record=record, **(recipe or RECIPE))
    print(f"saved {res.path}: best epoch {res.best_epoch}, validation F1 {res.best_f1:.3f}")


def train_loo(folder: Path, minutes: float | None = LOO_MINUTES, annotated_fraction: float | None = 0.5,
              recipe: dict | None = None, simulated: int = SHIPPED_SIMULATED, init_dir: Path | None = None,
              channels=None, seed: int = 0, epochs: int | dict = 200) -> None:
    """Train (or, with ``init_dir``, fine-tune that folder's models at lr 3e-4) the leave-one-out models."""
    from cellfie_caiman.train import train

    folder.mkdir(parents=True, exist_ok=True)
    data = {n: real_files(n) for n in REAL}
    for held_out in REAL:
        kept = [data[n] for n in REAL if n != held_out]
        init = None if init_dir is None else init_dir / f"without_{held_out}.npz"
        record = {"command": _command(), "held_out": held_out}
        if init is not None:
            from cellfie_caiman.models import load_model

            record["previous"] = load_model(init).config.training
        n_epochs = epochs[held_out] if isinstance(epochs, dict) else epochs
        res = train(kept, folder / f"without_{held_out}.npz", simulated=simulated, epochs=n_epochs, patience=12,
                    seed=seed, annotated_fraction=annotated_fraction, max_minutes=minutes, **(recipe or RECIPE),
                    init_model=init, learning_rate=1e-3 if init is None else 3e-4, record=record, channels=channels)
        print(f"without {held_out}: best epoch {res.best_epoch}, validation F1 {res.best_f1:.3f}")


def split_field(name: str, top: float = 0.5, bottom: float = 0.5):
    """Two parts of a real excerpt along its rows: ((movie, masks) of its top ``top``, (movie, masks) of its bottom
    ``bottom``), fractions of the rows (``top + bottom <= 1``).

    A neuron belongs to a part when its centroid does, its mask cut to that part.
    """
    from cellfie_caiman.io import load_movie
    from cellfie_caiman.rois import read_rois

    movie_file, rois = real_files(name)
    movie = load_movie(movie_file).to_array()
    masks = read_rois(rois, shape=movie.shape[1:])
    n_rows = movie.shape[1]
    a, b = int(round(n_rows * top)), int(round(n_rows * (1 - bottom)))
    rows = np.array([ndimage.center_of_mass(m)[0] for m in masks])
    upper, lower = masks[rows < a, :a], masks[rows >= b, b:]
    return (movie[:, :a], upper[upper.any(axis=(1, 2))]), (movie[:, b:], lower[lower.any(axis=(1, 2))])


def fine_tune_halves(loo_dir: Path, minutes: float = 4.0, top: float = 0.5, simulated: int = 0) -> None:
    """What annotating part of a new preparation buys: each leave-one-out model fine-tuned on the top ``top``
    (<= 0.5) of the rows of the excerpt it never saw (its manual ROIs, plus ``simulated`` simulated fields for half
    of the crops; the bottom 20 % of that part for early stopping), scored on the bottom half before and after.
    ``train``'s default scale: since session 28 the model's scale for neurons outside 0.8-1.25 times its size
    (both excerpts, whose annotated neurons are 15.3 and 9.2 px against 11.8), then detected with
    ``neuron_diameter`` their median annotated diameter; their own scale before, detected without it."""
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.train import train

    for name in REAL:
        path = loo_dir / f"without_{name}.npz"
        if not path.is_file():
            print(f"(no {path}: run --train-loo {loo_dir} first)")
            continue
        (upper, top_masks), (bottom, bottom_masks) = split_field(name, top, 0.5)
        before = initialize(bottom, model=path).masks
        t0 = time.perf_counter()
        res = train([(upper, top_masks)], None, simulated=simulated, init_model=path, max_minutes=minutes, epochs=200,
                    patience=8, seed=0, progress=False)
        minutes_used = (time.perf_counter() - t0) / 60
        # a model fine-tuned with the neurons zoomed to its scale is told their size, as the train command advises
        zoomed = res.model.config.training.get("scaled_to_model")
        after = initialize(bottom, model=res.model,
                           neuron_diameter=mask_diameter(top_masks) if zoomed else None).masks
        print(f"{name}: fine-tuned on the top {top:.0%} ({len(top_masks)} ROIs, {simulated} simulated fields, "
              f"{minutes_used:.1f} min), bottom half ({len(bottom_masks)} ROIs):")
        print(score_line("    before (model without it)", bottom_masks, before))
        print(score_line("    after", bottom_masks, after))


def dog_floor(summary, diameter: float = 12.0) -> np.ndarray:
    """Masks from peaks of a difference-of-Gaussians filtered mean image, drawn as disks of ``diameter``."""
    from skimage.feature import peak_local_max

    img = summary.mean.astype(np.float64)
    dog = ndimage.gaussian_filter(img, diameter / 6) - ndimage.gaussian_filter(img, diameter / 2)
    mad = np.median(np.abs(dog - np.median(dog))) * 1.4826
    peaks = peak_local_max(dog, min_distance=int(diameter / 2), threshold_abs=np.median(dog) + 2 * mad)
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    r2 = (diameter / 2) ** 2
    return np.array([(yy - r) ** 2 + (xx - c) ** 2 <= r2 for r, c in peaks], bool).reshape((-1,) + img.shape)


def score_line(label: str, gt: np.ndarray, pred: np.ndarray) -> str:
    """One line of F1/precision/recall under both rules for one movie's ground truth and predicted masks."""
    return pooled_line(label, [(gt, pred)])


def pooled_line(label: str, pairs, interval: bool = False) -> str:
    """Like score_line, for the matches pooled over several movies: ``pairs`` of (gt, pred) masks.

    ``interval``: also the 90 % bootstrap interval of the pooled F1 over the movies (``pool_matches``), how far
    another set of as many movies of the same kind could land.
    """
    from cellfie_caiman.evaluate import match_rois, pool_matches

    parts = []
    for rule in ("caiman", "iou"):
        p = pool_matches([match_rois(gt, pred, rule=rule) for gt, pred in pairs])
        text = f"{rule:6s} F1 {p.f1:.3f} P {p.precision:.3f} R {p.recall:.3f}"
        if interval and rule == "caiman":
            text += f" (90 % over movies {p.f1_low:.3f}-{p.f1_high:.3f})"
        parts.append(text)
    k = sum(len(p) for _, p in pairs)
    n = sum(len(g) for g, _ in pairs)
    return f"{label:52s} K={k:4d} GT={n:4d} | " + " | ".join(parts)


def stage_recall(summary, gt: np.ndarray, model="default", tol: float = 5.0) -> str:
    """Where ground-truth neurons are lost, shipped model and default settings (no zoom).

    Fractions of the ground-truth neurons with a candidate centre within ``tol`` px of their centroid, with a kept
    instance (score >= 0.5) there, with a kept mask there after thresholding and deduplication, and matched
    (``match_rois``, CaImAn rule).
    """
    from cellfie_caiman.detection import detect
    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.instances import dedup_masks, windows_to_masks
    from cellfie_caiman.models import load_model, stack_inputs

    net = load_model(model)
    cfg = net.config
    det = detect(net, stack_inputs(summary, cfg))
    gc = np.array([ndimage.center_of_mass(m) for m in gt]).reshape(-1, 2)

    def found(centers):
        if len(centers) == 0:
            return 0.0
        d = np.hypot(gc[:, None, 0] - centers[None, :, 0], gc[:, None, 1] - centers[None, :, 1])
        return float(np.mean(d.min(1) <= tol))

    keep = det.scores >= 0.5
    shape = summary.mean.shape
    masks, index, centers = windows_to_masks(det, keep, shape, shape, cfg.window,
                                             0.1 * np.pi * (cfg.train_diameter / 2) ** 2)
    order = dedup_masks(masks, det.scores[index])
    return (f"candidate {found(det.centers):.3f}, kept instance {found(det.centers[keep]):.3f}, kept mask "
            f"{found(centers[order]):.3f}, matched {match_rois(gt, masks[order]).recall:.3f}")


def simulated_test_movies(n_frames: int) -> list:
    """The unseen simulated movies (SIM_TEST) with ``n_frames`` (``simulate`` results)."""
    from cellfie_caiman.simulate import simulate

    return [simulate(n_frames, SIM_TEST["shape"], SIM_TEST["n_neurons"], seed=SIM_TEST["seed"] + i,
                     fs=SIM_TEST["fs"]) for i in range(SIM_TEST["movies"])]


def simulated_detections(n_frames: int, model="default", sims: list | None = None) -> list:
    """(true masks, detected masks, summary images) of the unseen simulated movies (SIM_TEST) with ``n_frames``;
    ``sims``: those movies already simulated (:func:`simulated_test_movies`), to score several models on them."""
    from cellfie_caiman.initialize import initialize, model_summary

    out = []
    for sim in simulated_test_movies(n_frames) if sims is None else sims:
        summary = model_summary(sim.movie, model=model, batch_frames=250)
        out.append((sim.masks, initialize(summary, model=model).masks, summary))
    return out


#: neurons smaller and larger than the training range (simulate's diameter parameter; 2 movies each, 500 frames)
SIZE_SWEEP = dict(diameters=(5.0, 18.0), seeds=(30, 31), n_frames=500, fs=15.0)


def size_sweep(model="default") -> None:
    """F1 on simulated neurons of other sizes: at the model's scale (``neuron_diameter=train_diameter``), at default
    settings (``neuron_diameter=None``: re-detected at the size of the masks found when that is far off) and with
    the true median diameter given."""
    from cellfie_caiman.initialize import initialize, model_summary
    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.models import model_config
    from cellfie_caiman.simulate import simulate
    from cellfie_caiman.train import neuron_density

    train_d = model_config(model).train_diameter
    for d in SIZE_SWEEP["diameters"]:
        side = 256 if d <= 14 else 384
        n = int(neuron_density(d) * side * side)  # the training fields' density
        runs = {"model's scale": [], "default": [], "true diameter": []}
        used, true_d = [], []
        for seed in SIZE_SWEEP["seeds"]:
            sim = simulate(SIZE_SWEEP["n_frames"], (side, side), n, seed=seed, fs=SIZE_SWEEP["fs"], diameter=d)
            summary = model_summary(sim.movie, model=model, batch_frames=250)
            true_d.append(mask_diameter(sim.masks))
            auto = initialize(summary, model=model)
            used.append(auto.neuron_diameter)
            runs["default"].append((sim.masks, auto.masks))
            runs["model's scale"].append((sim.masks, initialize(summary, model=model, neuron_diameter=train_d).masks))
            runs["true diameter"].append((sim.masks, initialize(sim.movie, model=model,
                                                                 neuron_diameter=true_d[-1]).masks))
        print(f"simulated neurons of {np.mean(true_d):.1f} px ({side}x{side}, {n} neurons, 2 movies; model trained at "
              f"{train_d:.1f} px; default settings detected at {', '.join(f'{u:.1f}' for u in used)} px):")
        for label, pairs in runs.items():
            print("    " + pooled_line(label, pairs))


#: simulated conditions away from the defaults (--conditions): simulate() keyword arguments, plus n_neurons,
#: n_frames and fs where they differ from 110 neurons, 500 frames at 15 Hz; 2 movies each (seeds 40, 41), 256 x 256
CONDITIONS = {
    "defaults (110 neurons)": {},
    "dim: 1 photon": dict(photons=1.0),
    "dense: 220 neurons": dict(n_neurons=220),
    "strong neuropil: contrast 0.5, activity 0.3": dict(neuropil_contrast=0.5, neuropil_activity=0.3),
    "no dark nuclei (filled 1.0)": dict(filled=1.0),
    "many vessels (3) and puncta (2)": dict(vessels=3.0, puncta=2.0),
    "GCaMP6s-like: decay 1.2 s, rise 0.15 s, AR(2)": dict(decay_time=1.2, rise_time=0.15, p=2),
    "4 Hz, 200 frames": dict(fs=4.0, n_frames=200),
    "neuropil half thin processes": dict(neuropil_processes=0.5),
    "active out-of-focus somata (1 per neuron, 2x per spike)": dict(out_of_focus=1.0, out_of_focus_activity=2.0),
}


def conditions(model="default") -> None:
    """F1 of ``model`` at default settings on simulated movies away from the simulator's defaults."""
    from cellfie_caiman.initialize import initialize, model_summary
    from cellfie_caiman.simulate import simulate

    for name, kwargs in CONDITIONS.items():
        kwargs = dict(kwargs)
        n, n_frames, fs = kwargs.pop("n_neurons", 110), kwargs.pop("n_frames", 500), kwargs.pop("fs", 15.0)
        pairs = []
        for seed in (40, 41):
            sim = simulate(n_frames, (256, 256), n, seed=seed, fs=fs, **kwargs)
            pairs.append((sim.masks, initialize(model_summary(sim.movie, model=model), model=model).masks))
        print(pooled_line(f"condition: {name}", pairs))


def other_simulator(model="default") -> None:
    """F1 of ``model`` at default settings on the BLOBS_TEST movies (each, then pooled)."""
    from cellfie_caiman.initialize import initialize, model_summary
    from cellfie_caiman.simulate_blobs import simulate_blobs

    pairs = []
    for i in range(BLOBS_TEST["movies"]):
        sim = simulate_blobs(BLOBS_TEST["n_frames"], BLOBS_TEST["shape"], BLOBS_TEST["n_neurons"],
                             seed=BLOBS_TEST["seed"] + i, fs=BLOBS_TEST["fs"])
        pairs.append((sim.masks, initialize(model_summary(sim.movie, model=model), model=model).masks))
        print(score_line(f"other simulator (Gaussian blobs), seed {BLOBS_TEST['seed'] + i}", *pairs[-1]))
    print(pooled_line(f"other simulator (Gaussian blobs), {len(pairs)} movies pooled", pairs, interval=True))


def accuracy(loo_dir: Path | None, model="default") -> None:
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.masks import mask_diameter

    real = {n: load_real(n, model) for n in REAL} if DATA.is_dir() else {}
    if not real:
        print(f"(no real data at {DATA}: real-data figures skipped)")
    sims = simulated_test_movies(SIM_TEST["n_frames"])  # simulated once, for every model scored on them
    if loo_dir is not None:
        for name in real:
            path = loo_dir / f"without_{name}.npz"
            if path.is_file():
                summary, gt = load_real(name, path)
                print(score_line(f"held out: {name} (model without it)", gt, initialize(summary, model=path).masks))
                # a user states the soma size (as CaImAn's gSig): here the annotated masks' median diameter
                d = mask_diameter(gt)
                masks = initialize(real_files(name)[0], model=path, neuron_diameter=d).masks
                print(score_line(f"    ... with neuron_diameter={d:.1f}", gt, masks))
            else:
                print(f"(no {path}: run --train-loo {loo_dir} first)")
        for path in sorted(loo_dir.glob("without_*.npz")):
            # the same simulated movies as the shipped model's line below: a step that trades them for the real
            # excerpts shows here (session 29: the rebuilt step 5 lost both)
            pairs = [(g, p) for g, p, _ in simulated_detections(SIM_TEST["n_frames"], path, sims)]
            print(pooled_line(f"simulated, {len(pairs)} unseen movies pooled ({path.stem.replace('_', ' ')})", pairs,
                              interval=True))
    short = simulated_detections(SIM_TEST["n_frames"], model, sims)
    del sims  # the movies; the longer ones below are simulated anew
    for i, (gt, pred, _) in enumerate(short):
        print(score_line(f"simulated, unseen seed {SIM_TEST['seed'] + i} (shipped)", gt, pred))
    print(pooled_line(f"simulated, {len(short)} unseen movies pooled (shipped)", [(g, p) for g, p, _ in short],
                      interval=True))
    for n_frames in SIM_LONG_FRAMES:
        long = simulated_detections(n_frames, model)
        print(pooled_line(f"simulated, same {len(long)}, {n_frames} frames, pooled (shipped)",
                          [(g, p) for g, p, _ in long], interval=True))
    size_sweep(model)
    other_simulator(model)
    sim_masks, _, s_sim = short[0]
    for name, (summary, gt) in real.items():
        print(score_line(f"{name} (shipped; trained on it)", gt, initialize(summary, model=model).masks))
        print(f"    {name}: fraction of the GT neurons with a {stage_recall(summary, gt, model)}")
    for name, (summary, gt) in list(real.items()) + [("simulated", (s_sim, sim_masks))]:
        print(score_line(f"floor: DoG peaks of the mean image, {name}", gt, dog_floor(summary)))


def speed_field():
    """(movie, label): the 512 x 512 field of the speed figures: neurofinder.01.01, or without ../shared/data a
    simulated 101-frame movie of 350 neurons."""
    if DATA.is_dir():
        return str(DATA / REAL[0] / "movie.tif"), REAL[0]
    from cellfie_caiman.simulate import simulate

    return simulate(101, (512, 512), 350, seed=1).movie, "simulated 101x512x512"


def networks_only(summary, repeat: int = 3):
    """(median seconds, last result) of ``initialize(summary)`` over ``repeat`` calls after a warm-up one (graph
    tracing, caches)."""
    from cellfie_caiman.initialize import initialize

    initialize(summary)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = initialize(summary)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), res


def speed() -> None:
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.models import load_model

    movie, label = speed_field()
    load_model("default")  # TensorFlow import and model build outside the timings
    t = time.perf_counter()
    summary = model_summary(movie, batch_frames=250)
    t_summary = time.perf_counter() - t
    t_net, res = networks_only(summary)
    print(f"networks only on 512x512 ({label}, K={len(res.masks)}): {t_net:.2f} s; summary images of the "
          f"{summary.mean.shape} movie: {t_summary:.2f} s; ratio networks/summary {t_net / t_summary:.2f}")
    work_and_rate(summary)
    baselines(summary)


def conv_flops(network, batch: np.ndarray) -> int:
    """Floating-point operations (2 per multiply-add) of the 2-D convolutions of ``network`` on ``batch``.

    The output shape of every convolution comes from one forward pass; a transposed convolution applies its kernel
    once per input pixel (its output has ``strides`` times as many). The other layers (activations, pooling,
    upsampling, concatenation, additions, the score's dense layer) add well under 1 % and are not counted.
    """
    import keras

    transposed = keras.layers.Conv2DTranspose  # a subclass of Conv2D in Keras 2, not in Keras 3
    convs = [layer for layer in network.layers if isinstance(layer, (keras.layers.Conv2D, transposed))]
    outputs = keras.Model(network.inputs, [layer.output for layer in convs]).predict_on_batch(batch)
    return sum(2 * int(np.prod(out.shape[:3])) * int(np.prod(tuple(layer.kernel.shape)))
               // (int(np.prod(layer.strides)) if isinstance(layer, transposed) else 1)
               for layer, out in zip(convs, outputs, strict=True))


def matmul_rate(n: int = 4096, repeat: int = 5) -> float:
    """This machine's float32 matrix-multiplication rate (GFLOP/s, median of ``repeat`` n x n products), the
    practical ceiling of dense convolution kernels on its CPU cores."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times)) / 1e9


def work_and_rate(summary, repeat: int = 5) -> None:
    """The two networks' arithmetic with test-time augmentation and the rate each pass runs at, against this
    machine's float32 matrix-multiplication rate measured in the same process: how far the networks-only time is
    from what the CPU allows, whatever its speed."""
    from cellfie_caiman.detection import detect, predict_instances_tta, predict_maps_tta
    from cellfie_caiman.models import load_model, stack_inputs
    from cellfie_caiman.models.networks import fold_batchnorm

    net = load_model("default")
    x = stack_inputs(summary, net.config)
    centers = detect(net, x).centers
    w = net.config.window
    # the forms that predict (fold_batchnorm), whose decoders do less arithmetic than the trained networks'
    unet_net, instance_net = (fold_batchnorm(n, net.config) for n in (net.unet, net.instance))
    unet = 8 * conv_flops(unet_net, x[None]) / 1e9
    instance = 8 * len(centers) * conv_flops(instance_net, np.zeros((1, w, w, x.shape[2]), np.float32)) / 1e9
    trained = (8 * conv_flops(net.unet, x[None]) + 8 * len(centers)
               * conv_flops(net.instance, np.zeros((1, w, w, x.shape[2]), np.float32))) / 1e9
    t = {"unet": [], "instance": []}
    for _ in range(repeat):
        for key, call in (("unet", lambda: predict_maps_tta(net, x)),
                          ("instance", lambda: predict_instances_tta(net, x, centers))):
            t0 = time.perf_counter()
            call()
            t[key].append(time.perf_counter() - t0)
    tu, ti = (float(np.median(t[k])) for k in ("unet", "instance"))
    peak = matmul_rate()
    print(f"    work, 8 orientations: U-Net {unet:.0f} GFLOP in {tu:.2f} s ({unet / tu:.0f} GFLOP/s), instance "
          f"network {instance:.0f} GFLOP ({len(centers)} windows) in {ti:.2f} s ({instance / ti:.0f} GFLOP/s); "
          f"float32 matmul here {peak:.0f} GFLOP/s: U-Net at {unet / tu / peak:.2f}, instance at "
          f"{instance / ti / peak:.2f} of it; both networks at that rate would take {(unet + instance) / peak:.2f} s "
          f"(the trained networks' form, without the decoders' transposed convolutions: {trained:.0f} GFLOP)")


def baselines(summary, repeat: int = 5) -> None:
    """The networks' passes with their defaults against another setting, interleaved in this process: the U-Net
    on one 512 x 512 field per call (default: 4 of the 8 orientations), the instance network on 512 windows per call
    (the default until session 13; now 128), ``initialize`` with the networks as trained, each batch
    normalisation a layer of its own and each decoder upsampling its input (default: ``fold_batchnorm``'s form,
    batch normalisation folded into the convolution before it since session 16, decoders as transposed
    convolutions since session 18), and
    ``initialize`` with the mean over the 4 flips (``tta=4``) or one pass of each network (``tta=False``) instead of
    the mean over 8 orientations."""
    from cellfie_caiman.detection import detect, extract_windows, predict_maps_tta
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.models import DetectionModel, load_model, stack_inputs

    net = load_model("default")
    live = DetectionModel(net.config, net.unet, net.instance)
    x = stack_inputs(summary, net.config)
    windows = extract_windows(x, detect(net, x).centers, net.config.window)
    initialize(summary, model=live)  # graph tracing outside the timings
    # name: (default call, {other setting: its call}); the default and each other setting alternate
    calls = {"U-Net, 8 orientations": (lambda: predict_maps_tta(net, x), {
                 "one field per call": lambda: predict_maps_tta(net, x, 8, x.shape[0] * x.shape[1])}),
             f"instance network, {len(windows)} windows, one orientation": (lambda: net.predict_instances(windows), {
                 "512 windows per call": lambda: net.predict_instances(windows, 512)}),
             "networks only (initialize)": (lambda: initialize(summary), {
                 "networks as trained": lambda: initialize(summary, model=live),
                 "four flips (tta=4)": lambda: initialize(summary, tta=4),
                 "one pass (tta=False)": lambda: initialize(summary, tta=False)})}
    for name, (default, others) in calls.items():
        t = {key: [] for key in ("default", *others)}
        for _ in range(repeat):
            for key, call in (("default", default), *others.items()):
                t0 = time.perf_counter()
                call()
                t[key].append(time.perf_counter() - t0)
        a = float(np.median(t["default"]))
        for other in others:
            b = float(np.median(t[other]))
            print(f"    {name}: {a:.2f} s; {other} {b:.2f} s (ratio default/other {a / b:.2f})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-shipped", type=Path, help="train the shipped model into this .npz")
    parser.add_argument("--train-loo", type=Path, help="train the two leave-one-dataset-out models into this folder")
    parser.add_argument("--loo-dir", type=Path, help="folder of leave-one-dataset-out models to score")
    parser.add_argument("--init-model", type=Path, help="with --train-shipped: fine-tune these weights (lr 3e-4)")
    parser.add_argument("--minutes", type=float, default=SHIPPED_MINUTES, help="with --train-shipped: time budget")
    parser.add_argument("--epochs", type=lambda t: tuple(int(v) for v in t.split(",")), metavar="N[,N]",
                        help="train at most N epochs and ignore the time budgets: a recorded run's epochs_run "
                             "reproduces it on a machine of any speed (with --train-loo one number per held-out "
                             "excerpt, in the order " + ", ".join(REAL) + ", or one for both)")
    parser.add_argument("--annotated-fraction", type=float, help="fraction of training crops from the real excerpts "
                        "(default: 0.5 for --train-loo, in proportion to areas for --train-shipped)")
    parser.add_argument("--simulated-variety", action="store_true", help="randomise more simulator parameters")
    parser.add_argument("--simulated-neuropil", type=float, default=0.0, metavar="FRACTION",
                        help="fraction of the simulated fields with randomised neuropil strength (0.5: every other)")
    parser.add_argument("--simulated-blobs", type=float, default=0.0, metavar="FRACTION",
                        help="fraction of the simulated fields drawn as Gaussian blobs in white noise (simulate_blobs)")
    parser.add_argument("--simulated-processes", type=float, default=0.0, metavar="FRACTION",
                        help="fraction of the simulated fields whose neuropil is partly a mesh of thin processes")
    parser.add_argument("--simulated-defocus", type=float, default=0.0, metavar="FRACTION",
                        help="fraction of the simulated fields whose out-of-focus somata are active")
    parser.add_argument("--simulated-long", type=float, default=0.0, metavar="FRACTION",
                        help="fraction of the simulated fields lasting 600-2000 frames instead of 100-600")
    parser.add_argument("--simulated-rates", type=lambda t: tuple(float(v) for v in t.split(",")),
                        default=(0.05, 1.0), metavar="LO,HI",
                        help="range of the simulated fields' median firing rates in Hz (default 0.05,1)")
    parser.add_argument("--seed", type=int, default=0, help="training seed; it also picks the simulated fields "
                        "(seeds seed * 1000 + i): another seed trains on other simulated movies")
    parser.add_argument("--missed-crops", type=float, default=0.0, metavar="FRACTION",
                        help="fraction of the U-Net crops cut around simulated neurons the current model misses")
    parser.add_argument("--missed-signal", type=float, metavar="SDS",
                        help="with --missed-crops: only missed neurons where the normalised soma-filtered image "
                             "reaches this")
    parser.add_argument("--scale-to-model", action="store_true",
                        help="train each real excerpt zoomed to the model's train_diameter, its pnr_filtered for its "
                             "own neurons (train(scale_to_model=True)); the shipped recipe trains them at their scale")
    parser.add_argument("--selection", choices=("pooled", "balanced"), default="pooled", help="best-epoch score")
    parser.add_argument("--model", default="default", help="score these weights as the shipped model")
    parser.add_argument("--no-speed", action="store_true", help="skip the timing")
    parser.add_argument("--speed-only", action="store_true", help="only the timing (then stop)")
    parser.add_argument("--conditions", action="store_true",
                        help="only score --model on simulated movies away from the defaults (neuropil, noise, ...)")
    parser.add_argument("--other-simulator", action="store_true",
                        help="only score --model on movies of another generative model (Gaussian blobs)")
    parser.add_argument("--fine-tune-halves", type=Path, metavar="LOO_DIR",
                        help="fine-tune this folder's leave-one-out models on the top half of the excerpt each never "
                             "saw and score the bottom half before and after (then stop)")
    parser.add_argument("--fine-tune-top", type=float, default=0.5, metavar="FRACTION",
                        help="with --fine-tune-halves: fine-tune on this top fraction of the rows (<= 0.5)")
    parser.add_argument("--fine-tune-simulated", type=int, default=0, metavar="N",
                        help="with --fine-tune-halves: also N simulated fields (half of the crops)")
    parser.add_argument("--loo-minutes", type=float, default=LOO_MINUTES, help="with --train-loo: budget per model")
    parser.add_argument("--simulated", type=int, default=SHIPPED_SIMULATED, help="number of simulated training fields")
    parser.add_argument("--init-loo", type=Path, help="with --train-loo: fine-tune the models of this folder")
    parser.add_argument("--channels", type=lambda t: tuple(t.split(",")),
                        help="summary images the trained model reads, comma-separated (default: those of the initial "
                             "model, else corr,pnr,std,mean,median,max); new ones start with zero input weights")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    recipe = dict(selection=args.selection, simulated_variety=args.simulated_variety,
                  simulated_neuropil=args.simulated_neuropil, simulated_blobs=args.simulated_blobs,
                  simulated_processes=args.simulated_processes, simulated_defocus=args.simulated_defocus,
                  simulated_long=args.simulated_long,
                  simulated_rates=args.simulated_rates, missed_crops=args.missed_crops,
                  missed_signal=args.missed_signal, scale_to_model=args.scale_to_model)
    if args.epochs and (len(args.epochs) not in (1, len(REAL)) or min(args.epochs) < 1):
        parser.error(f"--epochs takes one positive number or {len(REAL)}, got {args.epochs}")
    per_excerpt = args.epochs * len(REAL) if args.epochs and len(args.epochs) == 1 else args.epochs
    loo_epochs = dict(zip(REAL, per_excerpt, strict=True)) if args.epochs else 200
    if args.train_shipped:
        if args.epochs and len(args.epochs) != 1:
            parser.error("--epochs takes one number with --train-shipped")
        train_shipped(args.train_shipped, args.init_model, None if args.epochs else args.minutes,
                      args.annotated_fraction, recipe, args.simulated, args.channels, args.seed,
                      epochs=args.epochs[0] if args.epochs else 200)
        return
    if args.speed_only:
        speed()
        return
    if args.conditions:
        conditions(args.model)
        return
    if args.other_simulator:
        other_simulator(args.model)
        return
    if args.fine_tune_halves:
        if not 0 < args.fine_tune_top <= 0.5:
            parser.error("--fine-tune-top must be in (0, 0.5]")
        fine_tune_halves(args.fine_tune_halves, top=args.fine_tune_top, simulated=args.fine_tune_simulated)
        return
    if args.train_loo:
        train_loo(args.train_loo, None if args.epochs else args.loo_minutes,
                  0.5 if args.annotated_fraction is None else args.annotated_fraction,
                  recipe, args.simulated, args.init_loo, args.channels, args.seed, epochs=loo_epochs)
        args.loo_dir = args.train_loo
    accuracy(args.loo_dir, args.model)
    if not args.no_speed:
        speed()


if __name__ == "__main__":
    main()
