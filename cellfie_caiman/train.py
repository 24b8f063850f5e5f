"""Train the detection networks on annotated movies and simulated ones.

Every training field (a movie's summary images plus its manual masks) is normalised once, at a few zoom factors
(the scale augmentation). Each epoch runs ``steps_per_epoch`` updates of the region-proposal U-Net on random crops
and of the instance network on subframes centred near true neuron centres, on the U-Net's current candidate
centres (hard negatives) and at random places; crops get random 90-degree rotations, flips, per-channel gain and
noise. A held-out strip at the bottom of every field (``val_fraction`` of its rows) is never trained on: after each
epoch the whole detector runs there and the weights with the best detection F1 (``match_rois``) are kept; training
stops after ``patience`` epochs without improvement, after ``epochs``, or after ``max_minutes``.

The updates run on TensorFlow (Keras 2, or Keras 3's default backend) or on PyTorch (Keras 3 with
``KERAS_BACKEND=torch`` set before Keras is imported, e.g. on a GPU machine without TensorFlow); the weight files
are the same either way.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from ._checks import number
from .detection import PROB_THRESHOLD, _dihedral, detect, find_candidates
from .instances import dedup_local, place_windows
from .models import DetectionModel, ModelConfig, new_model, stack_inputs
from .models.preprocess import check_images, is_summary
from .rois import bounding_box, mask_diameter

logger = logging.getLogger(__name__)

__all__ = ["train", "TrainResult", "prepare_field", "Field", "mask_diameter"]


class TrainResult(NamedTuple):
    """Outcome of :func:`train`.

    Attributes
    ----------
    model : DetectionModel
        The networks with the best validation weights.
    path : Path or None
        Where they were saved.
    history : list of dict
        Per epoch: epoch, unet_loss, instance_loss, val_f1 (the selection score), val_f1_pooled, val_f1_balanced,
        val_precision, val_recall, val_f1_real, val_f1_simulated, seconds.
    best_epoch : int
    best_f1 : float
    """

    model: DetectionModel
    path: Path | None
    history: list
    best_epoch: int
    best_f1: float


class Field(NamedTuple):
    """One training field at one zoom factor (model grid).

    ``inputs`` (rows, cols, channels) normalised images; ``prob`` and ``heat`` (rows, cols) U-Net targets;
    ``centers`` (N, 2) mask centroids; ``boxes`` list of (r0, c0, bool crop) per mask; ``train_rows``: rows
    ``[0, train_rows)`` are for training, the rest for validation; ``name`` and ``zoom`` for logs.
    """

    name: str
    zoom: float
    inputs: np.ndarray
    prob: np.ndarray
    heat: np.ndarray
    centers: np.ndarray
    boxes: list
    train_rows: int


def _zoom_masks(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Masks (N, rows, cols) resized to ``shape``: bilinear interpolation of each mask, thresholded at 0.5.

    The same as ``skimage.transform.resize(mask, shape, order=1, mode='constant', anti_aliasing=False) > 0.5``
    (output pixel ``o`` samples the input at ``(o + 0.5) * rows / shape[0] - 0.5``), computed only around each
    mask's bounding box: ~20 x faster on 256 x 256 fields of ~100 neurons.
    """
    masks = np.asarray(masks, bool)
    n, rows, cols = masks.shape
    if (rows, cols) == tuple(shape):
        return masks.copy()
    out = np.zeros((n,) + tuple(shape), bool)
    scale = (rows / shape[0], cols / shape[1])
    for k, m in enumerate(masks):
        box = [np.flatnonzero(m.any(1 - axis)) for axis in (0, 1)]
        if not box[0].size:
            continue
        spans, coords = [], []
        for axis, (idx, s, size) in enumerate(zip(box, scale, shape, strict=True)):
            # output pixels whose sampling point lies within one input pixel of the box, and the crop around it
            o0 = max(0, int(np.floor((idx[0] - 0.5) / s - 0.5)))
            o1 = min(size, int(np.ceil((idx[-1] + 1.5) / s - 0.5)) + 1)
            a0, a1 = max(0, idx[0] - 2), min(m.shape[axis], idx[-1] + 3)
            spans.append((o0, o1, a0, a1))
            coords.append((np.arange(o0, o1) + 0.5) * s - 0.5 - a0)
        (o0, o1, a0, a1), (p0, p1, b0, b1) = spans
        grid = np.meshgrid(*coords, indexing="ij")
        values = ndimage.map_coordinates(m[a0:a1, b0:b1].astype(np.float32), grid, order=1, mode="grid-constant")
        out[k, o0:o1, p0:p1] = values > 0.5
    return out


def _zoom_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from .initialize import _resize

    return _resize(np.asarray(image, np.float32), shape)


def prepare_field(summary, masks: np.ndarray, config: ModelConfig, *, zoom: float = 1.0, val_fraction: float = 0.2,
                  name: str = "") -> Field:
    """Normalised inputs and targets of one annotated field, zoomed by ``zoom``.

    Parameters
    ----------
    summary : SummaryImages
    masks : bool (N, rows, cols)
        Manual masks.
    config : ModelConfig
    zoom : float
        Zoom factor applied to images and masks.
    val_fraction : float
        Fraction of rows (at the bottom) held out for validation.
    """
    rows, cols = np.asarray(getattr(summary, config.channels[0])).shape
    shape = (max(8, int(round(rows * zoom))), max(8, int(round(cols * zoom))))
    images = {c: _zoom_image(getattr(summary, c), shape) for c in config.channels}
    inputs = stack_inputs(images, config)
    m = _zoom_masks(np.asarray(masks, bool), shape)
    m = m[m.reshape(len(m), -1).any(1)]
    prob = m.any(0).astype(np.float32) if len(m) else np.zeros(shape, np.float32)
    centers = np.array([ndimage.center_of_mass(x) for x in m]).reshape(-1, 2)
    heat = np.zeros(shape, np.float32)
    yy, xx = np.arange(shape[0]), np.arange(shape[1])
    s2 = 2 * config.center_sigma**2
    for r, c in centers:
        r0, r1 = max(0, int(r - 4 * config.center_sigma)), min(shape[0], int(r + 4 * config.center_sigma) + 2)
        c0, c1 = max(0, int(c - 4 * config.center_sigma)), min(shape[1], int(c + 4 * config.center_sigma) + 2)
        g = np.exp(-((yy[r0:r1, None] - r) ** 2 + (xx[None, c0:c1] - c) ** 2) / s2)
        heat[r0:r1, c0:c1] = np.maximum(heat[r0:r1, c0:c1], g)
    boxes = []
    for x in m:
        r0, r1, c0, c1 = bounding_box(x)
        boxes.append((r0, c0, x[r0:r1, c0:c1].copy()))
    train_rows = int(round(shape[0] * (1 - val_fraction)))
    return Field(name, zoom, inputs, prob, heat, centers, boxes, train_rows)


# ----------------------------------------------------------------------------------------------------- sampling
def _augment_channels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gain in [0.8, 1.25] and Gaussian noise of random strength on a normalised crop."""
    gain = np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=x.shape[-1])).astype(np.float32)
    noise = rng.uniform(0, 0.3) * rng.standard_normal(x.shape).astype(np.float32)
    return x * gain + noise


def _unet_batch(fields: Sequence[Field], weights: np.ndarray, n: int, crop: int, rng: np.random.Generator,
                missed: Sequence[tuple[int, float, float]] = (), missed_fraction: float = 0.0):
    """A batch of augmented U-Net crops (x, prob target, heat target) from the training rows of the fields.

    With ``missed`` (field index, row, col) and ``missed_fraction``, that fraction of the crops (on average) is cut
    around one of those neurons, placed at random in the crop's middle half.
    """
    xs, ps, hs = [], [], []
    for _ in range(n):
        hard = len(missed) > 0 and rng.random() < missed_fraction
        if hard:
            fi, mr, mc = missed[rng.integers(len(missed))]
            f = fields[fi]
        else:
            f = fields[rng.choice(len(fields), p=weights)]
        cr, cc = min(crop, f.train_rows), min(crop, f.inputs.shape[1])
        if hard:
            r = int(np.clip(round(mr) - rng.integers(cr // 4, 3 * cr // 4 + 1), 0, f.train_rows - cr))
            c = int(np.clip(round(mc) - rng.integers(cc // 4, 3 * cc // 4 + 1), 0, f.inputs.shape[1] - cc))
        else:
            r = rng.integers(0, f.train_rows - cr + 1)
            c = rng.integers(0, f.inputs.shape[1] - cc + 1)
        x = np.zeros((crop, crop, f.inputs.shape[2]), np.float32)
        p = np.zeros((crop, crop), np.float32)
        h = np.zeros((crop, crop), np.float32)
        x[:cr, :cc] = f.inputs[r:r + cr, c:c + cc]
        p[:cr, :cc] = f.prob[r:r + cr, c:c + cc]
        h[:cr, :cc] = f.heat[r:r + cr, c:c + cc]
        t = rng.integers(8)
        xs.append(_augment_channels(_dihedral(x, t), rng))
        ps.append(_dihedral(p, t))
        hs.append(_dihedral(h, t))
    return np.array(xs), np.array(ps), np.array(hs)


def _instance_example(f: Field, r: int, c: int, config: ModelConfig, t: int, rng: np.random.Generator):
    """Window centred on (r, c) under dihedral transform ``t`` with its targets (mask, score, mask weight)."""
    w, h = config.window, config.window // 2
    # the window is [r - h, r + h); a flip moves the centre pixel, so shift the window by one before flipping
    r0, c0 = r - h + (t & 1), c - h + ((t >> 1) & 1)
    x = np.zeros((w, w, f.inputs.shape[2]), np.float32)
    a0, a1 = max(0, r0), min(f.train_rows, r0 + w)
    b0, b1 = max(0, c0), min(f.inputs.shape[1], c0 + w)
    if a1 > a0 and b1 > b0:
        x[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = f.inputs[a0:a1, b0:b1]
    mask = np.zeros((w, w), np.float32)
    score, weight = 0.0, 0.0
    if len(f.centers):
        d = np.hypot(f.centers[:, 0] - r, f.centers[:, 1] - c)
        k = int(np.argmin(d))
        if d[k] <= 0.25 * config.train_diameter:
            score, weight = 1.0, 1.0
            br, bc, crop = f.boxes[k]
            # the part of the neuron's bounding box inside the window
            i0, i1 = max(r0, br), min(r0 + w, br + crop.shape[0])
            j0, j1 = max(c0, bc), min(c0 + w, bc + crop.shape[1])
            if i1 > i0 and j1 > j0:
                mask[i0 - r0:i1 - r0, j0 - c0:j1 - c0] = crop[i0 - br:i1 - br, j0 - bc:j1 - bc]
    return _augment_channels(_dihedral(x, t), rng), _dihedral(mask, t), score, weight


def _instance_batch(fields, weights, hard, n, config, rng):
    xs, ms, ss, ws = [], [], [], []
    jitter = 0.1 * config.train_diameter
    h = config.window // 2
    for _ in range(n):
        u = rng.random()
        if u < 0.35 and len(hard):
            fi, r, c = hard[rng.integers(len(hard))]
            f = fields[fi]
        else:
            f = fields[rng.choice(len(fields), p=weights)]
            ok = f.centers[:, 0] < f.train_rows - h if len(f.centers) else np.zeros(0, bool)
            if u < 0.75 and ok.any():
                r, c = f.centers[rng.choice(np.flatnonzero(ok))] + rng.normal(0, jitter, 2)
            else:
                r, c = rng.uniform(0, max(1, f.train_rows - h)), rng.uniform(0, f.inputs.shape[1])
        r = int(np.clip(round(r), 0, max(0, f.train_rows - h - 1)))
        c = int(np.clip(round(c), 0, f.inputs.shape[1] - 1))
        x, m, s, wgt = _instance_example(f, r, c, config, int(rng.integers(8)), rng)
        xs.append(x)
        ms.append(m)
        ss.append(s)
        ws.append(wgt)
    return (np.array(xs), np.array(ms), np.array(ss, np.float32)[:, None], np.array(ws, np.float32))


def _hard_candidates(model: DetectionModel, fields: Sequence[Field], missed_from: Sequence[bool] | None = None,
                     missed_signal: float | None = None) -> tuple[list, list]:
    """The current model's errors on the training rows of every unzoomed field, as (field index, row, col) lists.

    Returns
    -------
    candidates : list
        U-Net candidate centres (permissive thresholds): the instance network's hard negatives.
    missed : list
        Only with ``missed_from`` (one bool per field): the neurons of those fields that get no candidate within a
        quarter of the training diameter at the inference thresholds (``PROB_THRESHOLD``, the model's centre
        threshold); with ``missed_signal``, only those whose normalised ``pnr_filtered`` input reaches that value
        within a quarter of the training diameter of their centre (neurons the input shows). Else empty.
    """
    out, missed = [], []
    h = model.config.window // 2
    radius = max(1, int(round(model.config.train_diameter / 4)))
    for i, f in enumerate(fields):
        if f.zoom != 1.0:
            continue
        prob, heat = model.predict_maps(f.inputs[:f.train_rows])
        cand = find_candidates(heat, prob, radius=radius, heat_threshold=model.config.center_threshold,
                               prob_threshold=0.1)
        out += [(i, r, c) for r, c in cand if r < f.train_rows - h]
        if missed_from is not None and missed_from[i] and len(f.centers):
            strict = cand[prob[cand[:, 0], cand[:, 1]] >= PROB_THRESHOLD]  # the candidates inference would keep
            inside = f.centers[f.centers[:, 0] < f.train_rows]
            if missed_signal is not None:
                near = ndimage.maximum_filter(f.inputs[..., model.config.channels.index("pnr_filtered")],
                                              size=2 * radius + 1, mode="nearest")
                rc = np.round(inside).astype(int)
                inside = inside[near[rc[:, 0], rc[:, 1]] >= missed_signal]
            if len(strict) and len(inside):
                d = np.hypot(inside[:, None, 0] - strict[None, :, 0], inside[:, None, 1] - strict[None, :, 1])
                inside = inside[d.min(1) > 0.25 * model.config.train_diameter]
            missed += [(i, r, c) for r, c in inside]
    return out, missed


# -------------------------------------------------------------------------------------------------- validation
def _val_masks(f: Field) -> np.ndarray:
    """Ground-truth masks of the validation strip whose centroid lies in it, (N, val_rows, cols)."""
    shape = (f.inputs.shape[0] - f.train_rows, f.inputs.shape[1])
    out = []
    for (br, bc, crop), (cr, _) in zip(f.boxes, f.centers, strict=False):
        if cr < f.train_rows:
            continue
        m = np.zeros((f.inputs.shape[0], f.inputs.shape[1]), bool)
        m[br:br + crop.shape[0], bc:bc + crop.shape[1]] = crop
        out.append(m[f.train_rows:])
    return np.array(out, bool).reshape((-1,) + shape)


def detect_masks(model: DetectionModel, inputs: np.ndarray, *, min_score=0.5, prob_threshold=0.3, max_overlap=0.5):
    """Masks (K, rows, cols) found on normalised ``inputs`` at the model's scale (no zoom).

    One pass of the networks (no test-time augmentation, 8 times cheaper): used to pick the best epoch. The
    default ``prob_threshold`` (0.3) is :func:`cellfie_caiman.initialize`'s default of the time the shipped weights
    were trained (now 0.4); it stays so that the recorded training commands reproduce those weights.
    """
    det = detect(model, inputs, prob_threshold=prob_threshold, tta=False)
    shape = inputs.shape[:2]
    min_area = 0.1 * np.pi * (model.config.train_diameter / 2) ** 2
    local, index, _ = place_windows(det, det.scores >= min_score, shape, shape, model.config.window, min_area)
    return local.dense(dedup_local(local, det.scores[index], max_overlap=max_overlap))


def validate(model: DetectionModel, fields: Sequence[Field], selection: str = "pooled") -> dict:
    """Detection scores (``match_rois``, CaImAn rule) on the validation strips.

    ``val_f1`` is the model-selection score: with ``selection='pooled'`` the F1 of the matches pooled over all
    strips; with ``'balanced'`` the mean of the per-field F1 with every annotated (real) field weighted as much as
    all simulated fields together, so that a dozen simulated strips cannot outvote the real ones. Both are
    returned (``val_f1_pooled``, ``val_f1_balanced``), with the pooled precision and recall and the mean F1 of
    the real and of the simulated strips.
    """
    from .evaluate import match_rois

    counts = []
    for f in fields:
        if f.zoom != 1.0 or f.train_rows >= f.inputs.shape[0]:
            continue
        res = match_rois(_val_masks(f), detect_masks(model, f.inputs[f.train_rows:]))
        counts.append((f.name.startswith("simulated"), res.tp, res.fp, res.fn))
    return selection_scores(counts, selection)


def selection_scores(counts: Sequence[tuple[bool, int, int, int]], selection: str = "pooled") -> dict:
    """Combine per-strip match counts ``(is_simulated, tp, fp, fn)`` into the scores of :func:`validate`."""
    if selection not in ("pooled", "balanced"):
        raise ValueError(f"selection must be 'pooled' or 'balanced', got {selection!r}")
    tp = sum(c[1] for c in counts)
    fp = sum(c[2] for c in counts)
    fn = sum(c[3] for c in counts)
    real = [2 * t / (2 * t + p + n) for s, t, p, n in counts if not s and t + p + n]
    sim = [2 * t / (2 * t + p + n) for s, t, p, n in counts if s and t + p + n]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    pooled = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    scores = real + ([float(np.mean(sim))] if sim else [])
    balanced = float(np.mean(scores)) if scores else 0.0
    return {"val_f1": pooled if selection == "pooled" else balanced, "val_f1_pooled": pooled,
            "val_f1_balanced": balanced, "val_precision": precision, "val_recall": recall,
            "val_f1_real": float(np.mean(real)) if real else float("nan"),
            "val_f1_simulated": float(np.mean(sim)) if sim else float("nan")}


# ---------------------------------------------------------------------------------------------------- training
def _annotated(source, rois, channels, filter_diameter: float | None, batch_frames: int, progress: bool):
    """(SummaryImages, masks) of one annotated dataset, with the images the model reads.

    ``pnr_filtered`` is computed with ``filter_diameter`` (the model's training diameter; None: not computed), as
    ``initialize`` does when it is not told the neuron size: the model learns to read it on neurons of every size.
    """
    if is_summary(source):
        check_images(source, channels, "a dataset given as summary images needs them (pass the movie instead)")
        return source, _as_masks(rois, np.asarray(source.mean).shape)
    from .io import load_movie
    from .summary import summary_images

    movie = load_movie(source)
    masks = _as_masks(rois, movie.frame_shape)
    return summary_images(movie, batch_frames=batch_frames, progress=progress, filter_diameter=filter_diameter), masks


def _as_masks(rois, shape) -> np.ndarray:
    if isinstance(rois, (str, os.PathLike)):
        from .rois import read_rois

        return read_rois(rois, shape=shape)
    masks = np.asarray(rois)
    if masks.ndim != 3 or masks.shape[1:] != tuple(shape):
        raise ValueError(f"masks must have shape (N, {shape[0]}, {shape[1]}), got {masks.shape}")
    return masks.astype(bool)


def neuron_density(diameter: float) -> float:
    """Neurons per pixel of the simulated training fields (before their 0.6-2x random factor) for somata of
    ``diameter`` pixels: neurofinder fields hold about 0.0015 per pixel with ~12 px neurons, and the number that
    fits scales with the inverse of the soma area."""
    return 0.0013 * (12.0 / diameter) ** 2


def _evenly(fraction: float, n: int, name: str) -> list[bool]:
    """Which of ``n`` fields get a property given to ``fraction`` of them, evenly spread (0.5: every other one)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {fraction}")
    return [int((i + 1) * fraction) > int(i * fraction) for i in range(n)]


def simulated_datasets(n: int, *, seed: int, shape=(256, 256), progress: bool = False,
                       variety: bool = False, filter_diameter: float | None = None,
                       rates: tuple[float, float] = (0.05, 1.0), neuropil: float = 0.0, blobs: float = 0.0,
                       processes: float = 0.0, defocus: float = 0.0, long: float = 0.0) -> list:
    """``n`` varied simulated fields as (SummaryImages, masks) pairs: :func:`simulated_field` ``0 .. n - 1``.

    ``neuropil``: fraction of the fields (evenly spread: 0.5 is every other one) whose neuropil strength varies.
    ``blobs``: fraction of the fields (evenly spread, offset from the neuropil ones) drawn instead by
    :func:`cellfie_caiman.simulate_blobs.simulate_blobs` (:func:`blob_field`).
    ``processes``: fraction of the fields (evenly spread like the neuropil ones: with ``neuropil`` 0.5 they are
    among those) whose neuropil is partly a mesh of thin processes.
    ``defocus``: fraction of the fields (evenly spread from the other end, like the blob ones: with 0.5 the even
    ones, whose neuropil is the default) whose out-of-focus somata are active.
    ``long``: fraction of the fields (spread at random, the same for every ``seed``) that last 600-2000 frames
    instead of 100-600 (blob fields keep their 200-2000).
    """
    from tqdm.auto import tqdm

    varied = _evenly(neuropil, n, "neuropil")
    is_blob = _evenly(blobs, n, "blobs")[::-1]  # from the other end: with both at 0.5, the even fields
    meshed = _evenly(processes, n, "processes")
    active_oof = _evenly(defocus, n, "defocus")[::-1]
    lasting = np.array(_evenly(long, n, "long"))[np.random.default_rng(13).permutation(n)]  # any kind of field

    def field(i):
        if is_blob[i]:
            return blob_field(i, seed=seed, shape=shape, filter_diameter=filter_diameter)
        return simulated_field(i, seed=seed, shape=shape, variety=variety, filter_diameter=filter_diameter,
                               rates=rates, neuropil=varied[i], processes=meshed[i], defocus=active_oof[i],
                               long=bool(lasting[i]))

    return [field(i) for i in tqdm(range(n), desc="simulating fields", disable=not progress)]


def simulated_field(i: int, *, seed: int, shape=(256, 256), variety: bool = False,
                    filter_diameter: float | None = None, rates: tuple[float, float] = (0.05, 1.0),
                    neuropil: bool = False, processes: bool = False, defocus: bool = False,
                    long: bool = False) -> tuple:
    """Simulated training field number ``i`` of series ``seed`` as a (SummaryImages, masks (N, rows, cols)) pair.

    Neuron size, density, brightness, activity, frame rate, length and noise vary from field to field, drawn from
    a generator seeded by ``(seed, i)``; the movie's seed is ``seed * 1000 + i``. With ``variety`` the range of
    cell brightness, occlusion (dark nuclei/holes), blood vessels, bright puncta and spike amplitudes vary too. With
    ``filter_diameter`` (pixels) the summary images include ``pnr_filtered`` computed with it. ``rates``: range
    (Hz) of the fields' median firing rates, drawn log-uniformly. With ``neuropil`` the neuropil's spatial
    contrast (0.1-0.6, default 0.15) and activity (0.03-0.4, default 0.05) vary too, log-uniformly (drawn after
    everything else: the other parameters of field ``i`` stay the same). With ``processes`` 20-90 % of the
    neuropil's brightness is a mesh of thin processes whose dark gaps are not somata (``neuropil_processes``,
    drawn last). With ``defocus`` the out-of-focus somata (0.3-1.2 per neuron) are active, 0.5-3 times their
    resting brightness per spike (``out_of_focus_activity``; drawn after that), and blurrier (soft edges of 3-6 px
    instead of 2-4, far from the neurons' 0.7): blobs that flicker but are not neurons. With ``long`` the movie
    lasts 600-2000 frames instead of 100-600 (drawn apart: nothing else changes). Fields are independent of
    each other, so a series can be made in parallel processes.
    """
    from .simulate import simulate
    from .summary import summary_images

    rng = np.random.default_rng([seed, i, 7])
    diameter = rng.uniform(7.0, 13.0)
    n_neurons = max(5, int(rng.uniform(0.6, 2.0) * neuron_density(diameter) * shape[0] * shape[1]))
    fs = float(rng.choice([7.5, 15.0, 30.0]))
    n_frames = int(rng.integers(100, 600))  # drawn even when long, so the draws after it stay the same
    if long:
        n_frames = int(np.random.default_rng([seed, i, 13]).integers(600, 2000))
    extra = {}
    if variety:
        lo = rng.uniform(0.05, 0.4)
        amp = rng.uniform(0.15, 0.6)
        extra = dict(cell_brightness=(lo, lo + rng.uniform(0.5, 2.0)), occlusion=float(rng.uniform(0.2, 0.9)),
                     vessels=float(rng.uniform(0.0, 2.0)), puncta=float(rng.uniform(0.0, 1.5)),
                     spike_amplitude=(amp, amp + rng.uniform(0.3, 1.5)))
    photons = float(np.exp(rng.uniform(np.log(3), np.log(40))))
    rate = float(np.exp(rng.uniform(np.log(rates[0]), np.log(rates[1]))))
    if neuropil:
        extra.update(neuropil_contrast=float(np.exp(rng.uniform(np.log(0.1), np.log(0.6)))),
                     neuropil_activity=float(np.exp(rng.uniform(np.log(0.03), np.log(0.4)))))
    if processes:
        extra.update(neuropil_processes=float(rng.uniform(0.2, 0.9)))
    if defocus:
        extra.update(out_of_focus=float(rng.uniform(0.3, 1.2)), out_of_focus_activity=float(rng.uniform(0.5, 3.0)),
                     out_of_focus_edge=(3.0, 6.0))
    sim = simulate(n_frames, shape, n_neurons, seed=seed * 1000 + i, fs=fs, diameter=diameter, photons=photons,
                   rate=rate, **extra)
    logger.info("simulated field %d: %d neurons, diameter %.1f, %d frames", i, len(sim.masks), diameter, n_frames)
    return summary_images(sim.movie, batch_frames=250, filter_diameter=filter_diameter), sim.masks


def blob_field(i: int, *, seed: int, shape=(256, 256), filter_diameter: float | None = None) -> tuple:
    """Training field number ``i`` of series ``seed`` drawn by :func:`cellfie_caiman.simulate_blobs.simulate_blobs`.

    Gaussian-blob neurons with no resting fluorescence in white noise: the only cue is their activity, which keeps
    the networks from relying on the resting contrast that :func:`simulated_field`'s somata nearly always have
    (:func:`blob_movie` draws the movie). Neurons that spike fewer than twice are left out of the masks (nothing
    shows them). Returns a (SummaryImages, masks) pair as :func:`simulated_field` does.
    """
    from .summary import summary_images

    sim = blob_movie(i, seed=seed, shape=shape)
    seen = sim.spikes.sum(axis=1) >= 2
    logger.info("blob field %d: %d neurons (%d spiking), %d frames", i, len(sim.masks), seen.sum(), len(sim.movie))
    return summary_images(sim.movie, batch_frames=250, filter_diameter=filter_diameter), sim.masks[seen]


def blob_movie(i: int, *, seed: int, shape=(256, 256)):
    """The :func:`cellfie_caiman.simulate_blobs.simulate_blobs` movie of :func:`blob_field` ``i`` (a Simulation).

    Size, density, frame rate, length, firing rate, decay, noise, background variation and the dimmer centres
    vary from field to field, drawn from a generator seeded by ``(seed, i, 11)``; the movie's seed is
    ``seed * 1000 + i``.
    """
    from .simulate_blobs import simulate_blobs

    rng = np.random.default_rng([seed, i, 11])
    diameter = rng.uniform(7.0, 13.0)
    n_neurons = max(5, int(rng.uniform(0.6, 2.0) * neuron_density(diameter) * shape[0] * shape[1]))
    fs = float(rng.choice([7.5, 15.0, 30.0]))
    n_frames = int(rng.integers(200, 2000))
    log_uniform = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # noqa: E731
    return simulate_blobs(n_frames, shape, n_neurons, seed=seed * 1000 + i, fs=fs, diameter=diameter,
                          rate=log_uniform(0.1, 2.0), decay_time=log_uniform(0.3, 1.5), noise=log_uniform(0.1, 0.5),
                          background=rng.uniform(0.0, 0.06), dip=None if rng.random() < 0.3 else (0.2, 0.8))


def train(datasets: Sequence[tuple[Any, Any]] = (), out_path: str | os.PathLike | None = None, *,
          simulated: int | Sequence[tuple[Any, Any]] | None = None, simulated_shape: tuple[int, int] = (256, 256),
          epochs: int = 60, steps_per_epoch: int = 100, patience: int = 8, seed: int = 0,
          config: ModelConfig | None = None, init_model=None, val_fraction: float = 0.2,
          zooms: Sequence[float] = (0.7, 0.85, 1.0, 1.15, 1.3),
          unet_batch: int = 6, unet_crop: int = 128, instance_batch: int = 48, learning_rate: float | None = None,
          annotated_fraction: float | None = 0.5, max_minutes: float | None = None, batch_frames: int = 250,
          simulated_variety: bool = False, simulated_rates: tuple[float, float] = (0.05, 1.0),
          simulated_neuropil: float = 0.0, simulated_blobs: float = 0.0, simulated_processes: float = 0.0,
          simulated_defocus: float = 0.0, simulated_long: float = 0.0, selection: str = "pooled",
          channels: Sequence[str] | None = None,
          missed_crops: float = 0.0, missed_signal: float | None = None, progress: bool = True,
          record: dict | None = None) -> TrainResult:
    """Train a detection model on annotated movies plus simulated ones.

    Parameters
    ----------
    datasets : sequence of (movie_or_summary, rois)
        ``movie_or_summary``: anything :func:`cellfie_caiman.io.load_movie` reads, or SummaryImages. ``rois``: a
        file :func:`cellfie_caiman.rois.read_rois` reads, or bool masks (N, rows, cols).
    out_path : path, optional
        Where to save the best weights (.npz), atomically.
    simulated : int or sequence of (SummaryImages, masks), optional
        Number of simulated fields added to the training data (see :func:`simulated_datasets`), or the fields
        themselves (made beforehand, e.g. with :func:`simulated_field` in parallel processes; they must include the
        images the model reads). None: 0 when fine-tuning ``init_model`` on annotated ``datasets`` (measured: the
        annotations of the new preparation alone adapt the model better than mixed with simulated fields), else 8.
    simulated_shape : (int, int)
        Their size in pixels.
    simulated_variety : bool
        Also randomise cell brightness, occlusion, vessels, puncta and spike amplitudes of the simulated fields.
    simulated_neuropil : float
        Fraction of the simulated fields (evenly spread) whose neuropil strength is randomised too (see
        :func:`simulated_field`).
    simulated_blobs : float
        Fraction of the simulated fields (evenly spread) drawn instead as Gaussian blobs in white noise
        (:func:`blob_field`): neurons seen only through their activity.
    simulated_processes : float
        Fraction of the simulated fields (evenly spread like the neuropil ones) whose neuropil is partly a mesh
        of thin processes: dark gaps that are not somata.
    simulated_defocus : float
        Fraction of the simulated fields (evenly spread like the blob ones) whose out-of-focus somata are active:
        flickering blurred blobs that are not neurons.
    simulated_long : float
        Fraction of the simulated fields (spread at random) that last 600-2000 frames instead of 100-600, as real
        recordings often do: their summary images pool more batches and show quieter neurons.
    simulated_rates : (float, float)
        Range (Hz) of the simulated fields' median firing rates (log-uniform); lower rates give quieter fields,
        whose neurons are seen mostly by their shape.
    epochs, steps_per_epoch, patience : int
        At most ``epochs`` epochs of ``steps_per_epoch`` updates of each network; stop after ``patience`` epochs
        without a better validation F1.
    seed : int
        Seeds NumPy, Python and the Keras backend (TensorFlow, or PyTorch with ``KERAS_BACKEND=torch`` on Keras 3);
        with TensorFlow's op determinism the same call gives the same weights (PyTorch on a GPU: nearly, some of
        its CUDA kernels are not deterministic).
    config : ModelConfig, optional
        Architecture; default ``ModelConfig()`` with ``train_diameter`` set from the data.
    init_model : str, path or DetectionModel, optional
        Start from these weights (fine-tuning) instead of random ones.
    channels : sequence of str, optional
        Summary images the model reads (fields of :class:`cellfie_caiman.summary.SummaryImages`). Default: those of
        ``init_model``, else of ``config``. Fine-tuning with more channels than ``init_model`` starts the new
        channels' input weights at zero.
    val_fraction : float
        Fraction of every field's rows (at the bottom) held out for validation and early stopping.
    zooms : sequence of float
        Scale augmentation: every field is also used zoomed by these factors.
    unet_batch, unet_crop, instance_batch : int
        Batch sizes and U-Net crop side (pixels, multiple of ``2**depth``).
    learning_rate : float, optional
        Adam learning rate (halved when validation F1 stalls for 3 epochs). None: 1e-3 from scratch, 3e-4 when
        fine-tuning ``init_model`` (a large first step would undo what the model knows).
    annotated_fraction : float or None
        Fraction of the training crops drawn from ``datasets`` rather than simulated fields (None: in proportion
        to their areas). Real fields are few but are what the model must learn to read.
    selection : {'pooled', 'balanced'}
        Validation score that picks the best epoch (see :func:`validate`).
    missed_crops : float
        Fraction of the U-Net crops (0..1) cut around simulated neurons that the current model misses (no candidate
        centre near them at the inference thresholds; found again after every epoch): hard positives. Only the
        simulated fields' neurons, whose ground truth is exact, are used. 0: none (all crops at random places).
    missed_signal : float, optional
        With ``missed_crops``, only the missed neurons that the soma-filtered image shows: its normalised input
        (local standard deviations) reaches this value near their centre. Needs ``pnr_filtered`` among the channels.
    max_minutes : float, optional
        Stop after the epoch that passes this wall-clock budget.
    batch_frames : int
        ``batch_frames`` of the summary images computed from movies.
    progress : bool
        tqdm progress bars.
    record : dict, optional
        Stored in ``config.training`` (e.g. the command that was run).

    Returns
    -------
    TrainResult
    """
    import keras
    from tqdm.auto import tqdm

    _check_settings(epochs=epochs, steps_per_epoch=steps_per_epoch, patience=patience, val_fraction=val_fraction,
                    zooms=zooms, unet_batch=unet_batch, unet_crop=unet_crop, instance_batch=instance_batch,
                    learning_rate=learning_rate, annotated_fraction=annotated_fraction, max_minutes=max_minutes,
                    batch_frames=batch_frames, simulated_rates=simulated_rates, selection=selection,
                    missed_crops=missed_crops, missed_signal=missed_signal, depth=(config or ModelConfig()).depth)

    from .models import load_model

    t_start = time.monotonic()
    _deterministic(seed)
    rng = np.random.default_rng(seed)

    # fine-tuning defaults: a smaller first step, and the new annotations alone (see the docstring)
    if learning_rate is None:
        learning_rate = 1e-3 if init_model is None else 3e-4
    if simulated is None:
        simulated = 0 if datasets and init_model is not None else 8
    if not datasets and not simulated:
        raise ValueError("train needs at least one annotated dataset or simulated > 0")
    start = load_model(init_model) if init_model is not None else None
    if channels is None:
        channels = start.config.channels if start is not None else (config or ModelConfig()).channels
    channels = tuple(channels)
    from .summary import SummaryImages

    unknown = [c for c in channels if c not in SummaryImages._fields]
    if unknown or not channels:
        raise ValueError(f"channels must be summary image names {SummaryImages._fields}, got {list(channels)}")
    if missed_signal is not None and "pnr_filtered" not in channels:
        raise ValueError("missed_signal reads the pnr_filtered image, which is not among the channels "
                         f"{list(channels)}")
    # pnr_filtered is computed at the training diameter (ModelConfig's default 12 px when training from scratch)
    filter_diameter = None
    if "pnr_filtered" in channels:
        filter_diameter = (start.config if start is not None else config or ModelConfig()).train_diameter
    named = [(f"dataset{i}", *_annotated(s, r, channels, filter_diameter, batch_frames, progress))
             for i, (s, r) in enumerate(datasets)]
    if isinstance(simulated, (int, np.integer)):
        if simulated < 0:
            raise ValueError(f"simulated must be >= 0, got {simulated}")
        made = simulated_datasets(int(simulated), seed=seed, shape=simulated_shape, progress=progress,
                                  variety=simulated_variety, rates=simulated_rates, filter_diameter=filter_diameter,
                                  neuropil=simulated_neuropil, blobs=simulated_blobs,
                                  processes=simulated_processes, defocus=simulated_defocus,
                                  long=simulated_long)
    else:
        made = []
        for s, m in simulated:
            check_images(s, channels, "simulated fields given as summary images need them")
            made.append((s, _as_masks(m, np.asarray(getattr(s, channels[0])).shape)))
        simulated = len(made)
    named += [(f"simulated{i}", s, m) for i, (s, m) in enumerate(made)]
    diameters = [mask_diameter(m) for _, _, m in named]
    if start is not None:
        model = DetectionModel(dataclasses.replace(start.config, channels=channels),
                               *_clone(start, channels), source="")
        config = model.config
    else:
        config = dataclasses.replace(config or ModelConfig(), channels=channels)
        if dataclasses.replace(config, channels=ModelConfig().channels) == ModelConfig():
            config = dataclasses.replace(config, train_diameter=round(float(np.nanmedian(diameters)), 2))
        model = new_model(config)
    fields = []
    for name, s, m in tqdm(named, desc="preparing fields", disable=not progress):
        for z in zooms:
            fields.append(prepare_field(s, m, config, zoom=z, val_fraction=val_fraction, name=name))
    area = np.array([f.train_rows * f.inputs.shape[1] for f in fields], np.float64)
    annotated = np.array([not f.name.startswith("simulated") for f in fields])
    weights = area / area.sum()
    if annotated_fraction is not None and annotated.any() and (~annotated).any():
        weights[annotated] *= annotated_fraction / weights[annotated].sum()
        weights[~annotated] *= (1 - annotated_fraction) / weights[~annotated].sum()
    logger.info("%d fields (%d datasets x %d zooms), neuron diameters %s", len(fields), len(named), len(zooms),
                np.round(diameters, 1))

    unet, inst = model.unet, model.instance
    opt_u = keras.optimizers.Adam(learning_rate)
    opt_i = keras.optimizers.Adam(learning_rate)
    unet_step, inst_step = _train_steps(unet, inst, opt_u, opt_i)

    history: list[dict] = []
    best = (-1.0, -1, None)
    stale = 0
    hard: list = []
    missed: list = []
    simulated_field_flags = [f.name.startswith("simulated") for f in fields]
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    for epoch in bar:
        t0 = time.monotonic()
        lu = li = 0.0
        for _ in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", leave=False, disable=not progress):
            x, yp, yh = _unet_batch(fields, weights, unet_batch, unet_crop, rng, missed, missed_crops)
            lu += unet_step(x, yp, yh)
            x, ym, ys, wm = _instance_batch(fields, weights, hard, instance_batch, config, rng)
            li += inst_step(x, ym, ys, wm)
        hard, missed = _hard_candidates(model, fields, simulated_field_flags if missed_crops > 0 else None,
                                        missed_signal)
        if missed_crops > 0:
            logger.info("%d simulated neurons without a candidate centre", len(missed))
        val = validate(model, fields, selection)
        now = time.monotonic()
        row = {"epoch": epoch, "unet_loss": lu / steps_per_epoch, "instance_loss": li / steps_per_epoch, **val,
               "seconds": now - t0, "minutes": (now - t_start) / 60}
        history.append(row)
        logger.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        shown = {"f1": f"{val['val_f1']:.3f}", "best": f"{max(best[0], val['val_f1']):.3f}"}
        if max_minutes is not None:  # the bar's own estimate runs to ``epochs``, which a budget usually cuts short
            shown["budget_left"] = f"{max(0.0, max_minutes - row['minutes']):.1f} min"
        bar.set_postfix(shown)
        if val["val_f1"] > best[0]:
            best = (val["val_f1"], epoch, {k: [w.copy() for w in net.get_weights()] for k, net in
                                           model.networks.items()})
            stale = 0
        else:
            stale += 1
            if stale % 3 == 0:
                for opt in (opt_u, opt_i):
                    opt.learning_rate.assign(float(np.asarray(opt.learning_rate)) * 0.5)
            if stale >= patience:
                break
        if max_minutes is not None and (time.monotonic() - t_start) / 60 > max_minutes:
            logger.info("stopping: %.1f min budget spent", max_minutes)
            break
    for k, net in model.networks.items():
        net.set_weights(best[2][k])
    from . import __version__
    from .provenance import provenance, software_versions

    info = dict(record or {})
    info.update({"cellfie_caiman": __version__, "software": software_versions(),
                 # the weights fine-tuned (file and SHA-256), or None when trained from scratch
                 "init_model": provenance(model=start)["model"] if start is not None else None,
                 "best_epoch": best[1], "val_f1": round(best[0], 4), "epochs_run": len(history), "seed": seed,
                 "selection": selection, "learning_rate": learning_rate, "simulated": simulated,
                 "annotated_fraction": annotated_fraction, "simulated_variety": simulated_variety,
                 "simulated_neuropil": simulated_neuropil, "simulated_blobs": simulated_blobs,
                 "simulated_processes": simulated_processes, "simulated_defocus": simulated_defocus,
                 "simulated_long": simulated_long,
                 "missed_crops": missed_crops, "missed_signal": missed_signal,
                 "simulated_rates": list(simulated_rates),
                 "datasets": [n for n, _, _ in named], "neuron_diameters": [round(d, 2) for d in diameters],
                 "minutes": round((time.monotonic() - t_start) / 60, 1),
                 # when each epoch ended (minutes since the start, field preparation included) and its score: how
                 # much of the budget the best epoch needed
                 "epoch_minutes": [round(r["minutes"], 3) for r in history],
                 "epoch_val_f1": [round(r["val_f1"], 4) for r in history]})
    model = DetectionModel(dataclasses.replace(config, training=info), unet, inst)
    path = model.save(out_path) if out_path is not None else None
    return TrainResult(model, path, history, best[1], best[0])


_EPS = 1e-6


def _check_settings(*, epochs, steps_per_epoch, patience, val_fraction, zooms, unet_batch, unet_crop, instance_batch,
                    learning_rate, annotated_fraction, max_minutes, batch_frames, simulated_rates, selection,
                    missed_crops, missed_signal, depth: int) -> None:
    """:func:`train`'s settings, each a ``ValueError`` naming it when out of range, before any data is prepared (the
    simulated fields' fractions are checked by :func:`simulated_datasets`, which alone reads them)."""
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("patience", patience),
                        ("unet_batch", unet_batch), ("instance_batch", instance_batch)):
        number(value, name, low=1, integer=True)
    number(val_fraction, "val_fraction", low=0, high=1, low_open=True, high_open=True)
    if isinstance(zooms, (str, bytes)) or not np.iterable(zooms) or len(zooms) == 0:
        raise ValueError(f"zooms must be a non-empty sequence of scale factors, got {zooms!r}")
    for z in zooms:
        number(z, "each of zooms", low=0, low_open=True)
    m = 2**depth
    number(unet_crop, "unet_crop", low=m, integer=True)
    if unet_crop % m:
        raise ValueError(f"unet_crop must be a multiple of {m} (the U-Net pools {depth} times), got {unet_crop}")
    number(learning_rate, "learning_rate", low=0, low_open=True, optional=True)
    number(annotated_fraction, "annotated_fraction", low=0, high=1, optional=True)
    number(max_minutes, "max_minutes", low=0, low_open=True, optional=True)
    number(batch_frames, "batch_frames", low=2, integer=True, optional=True)
    number(missed_crops, "missed_crops", low=0, high=1)
    number(missed_signal, "missed_signal", optional=True)
    if len(simulated_rates) != 2:
        raise ValueError(f"simulated_rates must be (low, high) in Hz, got {simulated_rates!r}")
    low = number(simulated_rates[0], "simulated_rates[0] (Hz)", low=0, low_open=True)
    number(simulated_rates[1], "simulated_rates[1] (Hz)", low=low)
    if selection not in ("pooled", "balanced"):
        raise ValueError(f"selection must be 'pooled' or 'balanced', got {selection!r}")


def _deterministic(seed: int) -> None:
    """Seed NumPy, Python and the Keras backend, and ask the backend for deterministic kernels."""
    import keras

    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch"):
        raise RuntimeError(f"training runs on Keras' TensorFlow or PyTorch backend, not {backend!r} "
                           "(set KERAS_BACKEND=tensorflow or torch before importing keras)")
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        else:
            import torch

            # some CUDA kernels (upsampling's gradient) have no deterministic version: warn instead of failing
            torch.use_deterministic_algorithms(True, warn_only=True)
    except Exception:  # pragma: no cover - older TF or PyTorch
        logger.warning("deterministic kernels unavailable under %s; training is not bit-reproducible", backend)


def _train_steps(unet, inst, opt_u, opt_i):
    """One update of each network on a NumPy batch, for the running Keras backend; each returns the loss.

    U-Net loss: mean BCE of the pixel probability + 5 x mean BCE of the centre heat map. Instance loss: mean BCE of
    the score + BCE of the mask averaged over the windows centred on a neuron (``wm`` = 1), divided by their number
    + 1.
    """
    import keras

    if keras.backend.backend() == "torch":
        return _torch_steps(unet, inst, opt_u, opt_i)
    import tensorflow as tf

    def bce(y, p):
        p = tf.clip_by_value(p, _EPS, 1 - _EPS)
        return -(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))

    @tf.function
    def unet_graph(x, yp, yh):
        with tf.GradientTape() as tape:
            out = unet(x, training=True)
            loss = tf.reduce_mean(bce(yp, out[..., 0])) + 5.0 * tf.reduce_mean(bce(yh, out[..., 1]))
        grads = tape.gradient(loss, unet.trainable_variables)
        opt_u.apply_gradients(zip(grads, unet.trainable_variables, strict=False))
        return loss

    @tf.function
    def inst_graph(x, ym, ys, wm):
        with tf.GradientTape() as tape:
            m, s = inst(x, training=True)
            lm = tf.reduce_mean(bce(ym, m[..., 0]), axis=[1, 2])
            loss = tf.reduce_mean(bce(ys, s)) + tf.reduce_sum(lm * wm) / (tf.reduce_sum(wm) + 1.0)
        grads = tape.gradient(loss, inst.trainable_variables)
        opt_i.apply_gradients(zip(grads, inst.trainable_variables, strict=False))
        return loss

    def unet_step(*arrays):
        return float(unet_graph(*map(tf.constant, arrays)))

    def inst_step(*arrays):
        return float(inst_graph(*map(tf.constant, arrays)))

    return unet_step, inst_step


def _torch_steps(unet, inst, opt_u, opt_i):
    """:func:`_train_steps` under Keras 3's PyTorch backend (on the GPU when PyTorch sees one)."""
    import torch
    from keras import ops

    def bce(y, p):
        p = ops.clip(p, _EPS, 1 - _EPS)
        return -(y * ops.log(p) + (1 - y) * ops.log(1 - p))

    def update(net, opt, loss):
        net.zero_grad()
        loss.backward()
        variables = net.trainable_weights
        with torch.no_grad():
            opt.apply([v.value.grad for v in variables], variables)
        return float(loss.detach())

    def unet_step(x, yp, yh):
        x, yp, yh = map(ops.convert_to_tensor, (x, yp, yh))
        out = unet(x, training=True)
        return update(unet, opt_u, ops.mean(bce(yp, out[..., 0])) + 5.0 * ops.mean(bce(yh, out[..., 1])))

    def inst_step(x, ym, ys, wm):
        x, ym, ys, wm = map(ops.convert_to_tensor, (x, ym, ys, wm))
        m, s = inst(x, training=True)
        lm = ops.mean(bce(ym, m[..., 0]), axis=(1, 2))
        return update(inst, opt_i, ops.mean(bce(ys, s)) + ops.sum(lm * wm) / (ops.sum(wm) + 1.0))

    return unet_step, inst_step


def _clone(model: DetectionModel, channels: Sequence[str] | None = None):
    """Fresh copies of a model's networks, optionally reading other input channels.

    With ``channels``, the weights that read the input images are remapped by channel name: a channel the model
    already read keeps its weights, a new one starts at zero (so the copy computes exactly what the model did
    until training teaches it to use the new images).
    """
    old = tuple(model.config.channels)
    new = tuple(channels) if channels is not None else old
    fresh = new_model(dataclasses.replace(model.config, channels=new))
    for name, net in fresh.networks.items():
        source = {layer.name: layer for layer in model.networks[name].layers}
        for layer in net.layers:
            src = source[layer.name].get_weights()
            dst = layer.get_weights()
            if not src:
                continue
            if all(a.shape == b.shape for a, b in zip(src, dst, strict=True)):
                layer.set_weights(src)
                continue
            # a kernel (kh, kw, offset + channels, filters) that reads the input images (after `offset` features)
            kernel = np.zeros_like(dst[0])
            offset = src[0].shape[2] - len(old)
            kernel[:, :, :offset] = src[0][:, :, :offset]
            for j, c in enumerate(new):
                if c in old:
                    kernel[:, :, offset + j] = src[0][:, :, offset + old.index(c)]
            layer.set_weights([kernel, *src[1:]])
    return fresh.unet, fresh.instance
