"""The two networks on one normalised field: region proposal, candidate centres, instance windows and scores.

:func:`detect` runs the U-Net (probability and centre heat maps), finds candidate centres (local maxima of the heat
map) and runs the instance network on a window around each, by default averaging both networks over the 8
rotations/flips of their input (test-time augmentation). Everything here is at the model's scale; mapping the
windows back to the field is :mod:`cellfie_caiman.instances`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

__all__ = ["Detections", "detect", "find_candidates", "extract_windows", "predict_maps_tta", "predict_instances_tta",
           "tta_orientations", "PROB_THRESHOLD", "TTA_CENTER_THRESHOLD", "TTA_ORIENTATIONS"]


class Detections(NamedTuple):
    """Raw output of :func:`detect` on one normalised field, at the model's scale.

    Attributes
    ----------
    windows : ndarray float32 (n, window, window)
        Instance mask probabilities, window ``i`` centred on ``centers[i]``.
    scores : ndarray float32 (n,)
    centers : ndarray int (n, 2)
        Candidate centres (row, col).
    prob : ndarray float32 (rows, cols)
        U-Net neuron probability.
    heat : ndarray float32 (rows, cols)
        U-Net centre heat map.
    """

    windows: np.ndarray
    scores: np.ndarray
    centers: np.ndarray
    prob: np.ndarray
    heat: np.ndarray


def find_candidates(heat: np.ndarray, prob: np.ndarray, *, radius: int, heat_threshold: float,
                    prob_threshold: float) -> np.ndarray:
    """Local maxima of the centre heat map (within ``radius`` px) where heat and probability pass thresholds.

    Returns
    -------
    ndarray int (n, 2)
        (row, col) of each candidate, sorted by decreasing heat.
    """
    size = 2 * int(radius) + 1
    peaks = (heat == ndimage.maximum_filter(heat, size=size, mode="nearest"))
    peaks &= heat > ndimage.minimum_filter(heat, size=size, mode="nearest") + 1e-6  # no flat plateaus
    peaks &= (heat >= heat_threshold) & (prob >= prob_threshold)
    rc = np.argwhere(peaks)
    order = np.argsort(-heat[rc[:, 0], rc[:, 1]], kind="stable")
    return rc[order]


def extract_windows(inputs: np.ndarray, centers: np.ndarray, window: int) -> np.ndarray:
    """Subframes (n, window, window, channels) of ``inputs`` (rows, cols, channels) centred on ``centers``.

    The window of centre (r, c) covers rows ``r - window//2 .. r + window//2 - 1``; outside the field is zero.
    """
    return _cut_windows(_pad_for_windows(inputs, window), centers, window)


def _pad_for_windows(inputs: np.ndarray, window: int) -> np.ndarray:
    """``inputs`` with ``window // 2`` zero pixels on every side, for :func:`_cut_windows`."""
    h = window // 2
    return np.pad(inputs, ((h, h), (h, h), (0, 0)), mode="constant")


def _cut_windows(padded: np.ndarray, centers: np.ndarray, window: int) -> np.ndarray:
    out = np.empty((len(centers), window, window, padded.shape[2]), np.float32)
    for i, (r, c) in enumerate(centers):
        out[i] = padded[r:r + window, c:c + window]
    return out


def _dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """Dihedral transform ``t`` (0..7) of the first two axes (of the last-but-one two for a batch, see below).

    Bit 0 flips rows, bit 1 flips columns, bit 2 transposes (applied in that order).
    """
    if t & 1:
        a = a[::-1]
    if t & 2:
        a = a[:, ::-1]
    if t & 4:
        a = np.swapaxes(a, 0, 1)
    return a


def _dihedral_batch(inputs: np.ndarray, transforms) -> np.ndarray:
    """C-contiguous float32 stack of ``_dihedral(inputs, t)`` for each ``t`` of ``transforms`` (all of one shape).

    ``np.stack`` of transposed views keeps their memory order, so the networks' call would copy it once more.
    """
    first = _dihedral(inputs, transforms[0])
    batch = np.empty((len(transforms),) + first.shape, np.float32)
    for i, t in enumerate(transforms):
        batch[i] = _dihedral(inputs, t)
    return batch


def _dihedral_origins(origins: np.ndarray, shape: tuple[int, int], window: int, t: int) -> np.ndarray:
    """Where the windows of side ``window`` at ``origins`` (n, 2) of a field of ``shape`` lie, transformed, in
    ``_dihedral(field, t)``: a flipped axis of length ``L`` maps rows ``a .. a + window`` to ``L - a - window ..
    L - a``; the transpose swaps the two coordinates."""
    r, c = origins[:, 0], origins[:, 1]
    if t & 1:
        r = shape[0] - r - window
    if t & 2:
        c = shape[1] - c - window
    return np.stack([c, r] if t & 4 else [r, c], axis=1)


def _undo_dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """Inverse of :func:`_dihedral` (transpose first, then the flips)."""
    if t & 4:
        a = np.swapaxes(a, 0, 1)
    if t & 2:
        a = a[:, ::-1]
    if t & 1:
        a = a[::-1]
    return a


def predict_maps_tta(model, inputs: np.ndarray, n_transforms: int = 8,
                     max_batch_pixels: int = 2**21, bar=None) -> tuple[np.ndarray, np.ndarray]:
    """U-Net probability and centre heat maps averaged over the first ``n_transforms`` of the 8 rotations/flips.

    The networks were trained on randomly rotated and flipped crops; averaging their outputs over the transforms
    of the field (test-time augmentation) removes orientation-dependent errors: on the validation strips and on
    unseen simulated movies it raised detection F1 by 0.01-0.03 at no cost in precision. Transformed fields of
    the same shape go through the U-Net in batches of at most ``max_batch_pixels`` pixels (bounded memory; which
    batch is fastest depends on the machine: ``benchmarks/detection.py`` times one field per call against it).
    ``bar`` (a tqdm progress bar, optional) advances by one per orientation.

    Returns
    -------
    prob, heat : ndarray (rows, cols) float32
    """
    prob = np.zeros(inputs.shape[:2], np.float64)
    heat = np.zeros(inputs.shape[:2], np.float64)
    per_batch = max(1, int(max_batch_pixels // (inputs.shape[0] * inputs.shape[1])))
    groups = [[t for t in range(n_transforms) if (t & 4) == k] for k in (0, 4)]  # same shape within a group
    for group in groups:
        for start in range(0, len(group), per_batch):
            ts = group[start:start + per_batch]
            p, h = model.predict_maps_batch(_dihedral_batch(inputs, ts))
            for i, t in enumerate(ts):
                prob += _undo_dihedral(p[i], t)
                heat += _undo_dihedral(h[i], t)
            if bar is not None:
                bar.update(len(ts))
    return (prob / n_transforms).astype(np.float32), (heat / n_transforms).astype(np.float32)


def predict_instances_tta(model, inputs: np.ndarray, centers: np.ndarray,
                          n_transforms: int = 8, bar=None) -> tuple[np.ndarray, np.ndarray]:
    """Instance masks and scores averaged over the rotations/flips of each window.

    A window of even side ``w`` centred on pixel ``(r, c)`` has the centre at index ``w // 2``; a flip would move
    it to ``w // 2 - 1``, so a flipped window is cut one pixel further along the flipped axis (as in training) and
    its mask shifted back after undoing the transform. ``bar`` (a tqdm progress bar, optional) advances by one per
    orientation.

    Returns
    -------
    windows : ndarray float32 (n, window, window), scores : ndarray float32 (n,)
    """
    w = model.config.window
    masks = np.zeros((len(centers), w, w), np.float64)
    scores = np.zeros(len(centers), np.float64)
    if len(centers) == 0:
        if bar is not None:
            bar.update(n_transforms)
        return masks.astype(np.float32), scores.astype(np.float32)
    padded = _pad_for_windows(inputs, w)  # once for all orientations
    for t in range(n_transforms):
        sr, sc = t & 1, (t >> 1) & 1
        # the transform of the window at (r + sr, c + sc) of `padded`, cut from the transformed field (one copy
        # of the field instead of a strided copy of every window)
        patches = _cut_windows(np.ascontiguousarray(_dihedral(padded, t)),
                               _dihedral_origins(centers + np.array([sr, sc]), padded.shape[:2], w, t), w)
        m, s = model.predict_instances(patches)
        m = np.moveaxis(_undo_dihedral(np.moveaxis(m, 0, 2), t), 2, 0)
        # m is on the window whose origin is (r - w//2 + sr, c - w//2 + sc): shift it onto the unshifted window
        masks[:, sr:, sc:] += m[:, :w - sr, :w - sc]
        scores += s
        if bar is not None:
            bar.update(1)
    return (masks / n_transforms).astype(np.float32), (scores / n_transforms).astype(np.float32)


#: How many orientations test-time augmentation can average: the first n of the 8 rotations/flips of
#: :func:`predict_maps_tta` (2: and the upside-down field; 4: the four flips; 8: those of the field and of its
#: transpose).
TTA_ORIENTATIONS = (1, 2, 4, 8)


def tta_orientations(tta: bool | int) -> int:
    """The number of orientations that ``tta`` asks for: True 8, False 1, else ``tta`` itself (1, 2, 4 or 8).

    Raises ValueError for anything else.
    """
    if isinstance(tta, (bool, np.bool_)):
        return 8 if tta else 1
    if isinstance(tta, (int, np.integer)) and int(tta) in TTA_ORIENTATIONS:
        return int(tta)
    raise ValueError(f"tta must be True, False or a number of orientations in {TTA_ORIENTATIONS}, got {tta!r}")


#: Minimum centre heat-map value of a candidate when the maps are averaged over rotations/flips (averaging lowers
#: the peaks of the less certain centres; 0.05 was chosen on the validation strips and simulated movies).
TTA_CENTER_THRESHOLD = 0.05
#: Default minimum region-proposal probability at a candidate centre (chosen on simulated validation movies and the
#: real excerpts' validation strips for the shipped weights; see the model card).
PROB_THRESHOLD = 0.4


def detect(model, inputs: np.ndarray, *, prob_threshold: float = PROB_THRESHOLD, tta: bool | int = True,
           progress: bool = False) -> Detections:
    """Run both networks on one normalised field (model scale): candidates, their masks and scores.

    Parameters
    ----------
    model : DetectionModel
    inputs : ndarray (rows, cols, channels) float32
        From :func:`cellfie_caiman.models.stack_inputs`.
    prob_threshold : float
        Minimum U-Net probability at a candidate centre.
    tta : bool or int
        Average both networks' outputs over the 8 rotations/flips (True; test-time augmentation, 8 times the
        work), or over the first 1, 2, 4 or 8 of them (:func:`tta_orientations`). False or 1: one pass,
        candidates need ``model.config.center_threshold`` of centre heat.
    progress : bool
        Progress bar over the networks' passes (16 with ``tta``: 8 orientations of each network; else 2).
    """
    cfg = model.config
    passes = tta_orientations(tta)
    tta = passes > 1
    with tqdm(total=2 * passes, desc="networks", unit="pass", disable=not progress) as bar:
        if tta:
            prob, heat = predict_maps_tta(model, inputs, passes, bar=bar)
            heat_threshold = min(cfg.center_threshold, TTA_CENTER_THRESHOLD)
        else:
            prob, heat = model.predict_maps(inputs)
            heat_threshold = cfg.center_threshold
            bar.update(1)
        centers = find_candidates(heat, prob, radius=max(1, int(round(cfg.train_diameter / 4))),
                                  heat_threshold=heat_threshold, prob_threshold=prob_threshold)
        bar.set_postfix(candidates=len(centers))
        if tta:
            windows, scores = predict_instances_tta(model, inputs, centers, passes, bar=bar)
        else:
            windows, scores = model.predict_instances(extract_windows(inputs, centers, cfg.window))
            bar.update(1)
    return Detections(windows, scores, centers, prob, heat)
