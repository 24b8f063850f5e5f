"""From a movie (or its summary images) to neuron masks ready to seed CNMF.

Steps: summary images -> (optional zoom to the model's neuron size) -> normalised inputs -> region-proposal U-Net
(neuron probability and centre heat map) -> candidate centres (local maxima of the heat map) -> instance network
on a subframe around each candidate (mask + score) -> keep by score -> map masks back to the original grid ->
remove duplicates.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from .rois import mask_diameter

logger = logging.getLogger(__name__)

#: With ``neuron_diameter=None``, the masks found at the model's scale must have a median diameter within these
#: factors of its ``train_diameter`` (symmetric in log scale); otherwise the neurons are re-detected at their size
#: (see :func:`initialize`). Chosen on simulated movies of 5 neuron sizes (seeds 31-33, not the benchmark's).
AUTO_DIAMETER_RANGE = (0.8, 1.25)
#: A re-detection at another size is kept only if its summed instance score is at least this fraction of the
#: previous pass's: the size is wrong when the networks find far fewer or far less certain neurons there (on
#: simulated movies, right sizes gave 0.71-2.9, wrong ones 0.37-0.61).
AUTO_DIAMETER_KEEP = 0.7
#: At most this many re-detections, each at the median diameter of the masks of the previous pass, until it changes
#: by less than 10 %; the estimate needs at least ``AUTO_DIAMETER_MIN_MASKS`` masks.
AUTO_DIAMETER_PASSES = 2
AUTO_DIAMETER_MIN_MASKS = 10

__all__ = ["Initialization", "initialize", "model_summary", "detect", "Detections", "dedup_masks"]

#: A kept instance that lies this much (fraction of its area) inside a better-scored one is a duplicate.
CONTAINMENT = 0.8


class Initialization(NamedTuple):
    """Neurons found by :func:`initialize`.

    Attributes
    ----------
    Ain : ndarray, bool, (rows * cols, K)
        Column k is ``masks[k]`` flattened in Fortran order (pixel ``i + j * rows``), as CaImAn's ``CNMF(Ain=...)``
        expects.
    masks : ndarray, bool, (K, rows, cols)
        One mask per neuron, sorted by decreasing score.
    scores : ndarray, float32, (K,)
        Instance network's probability that a neuron is centred at ``centers[k]``.
    centers : ndarray, float64, (K, 2)
        Candidate centre (row, col) of each neuron, original pixel grid.
    prob_map : ndarray, float32, (rows, cols)
        Region-proposal probability that each pixel belongs to a neuron.
    summary : SummaryImages
        The summary images the networks saw (original grid).
    neuron_diameter : float or None
        Soma diameter (pixels) the networks were run for: the one given, the estimated one when ``initialize`` had
        to rescale, or the model's ``train_diameter`` (no zoom).
    """

    Ain: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    centers: np.ndarray
    prob_map: np.ndarray
    summary: Any
    neuron_diameter: float | None = None


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
    h = window // 2
    padded = np.pad(inputs, ((h, h), (h, h), (0, 0)), mode="constant")
    out = np.empty((len(centers), window, window, inputs.shape[2]), np.float32)
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
                     max_batch_pixels: int = 2**21) -> tuple[np.ndarray, np.ndarray]:
    """U-Net probability and centre heat maps averaged over the first ``n_transforms`` of the 8 rotations/flips.

    The networks were trained on randomly rotated and flipped crops; averaging their outputs over the transforms
    of the field (test-time augmentation) removes orientation-dependent errors: on the validation strips and on
    unseen simulated movies it raised detection F1 by 0.01-0.03 at no cost in precision. Transformed fields of
    the same shape go through the U-Net in batches of at most ``max_batch_pixels`` pixels (bounded memory; which
    batch is fastest depends on the machine: ``benchmarks/detection.py`` times one field per call against it).

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
            p, h = model.predict_maps_batch(np.stack([_dihedral(inputs, t) for t in ts]))
            for i, t in enumerate(ts):
                prob += _undo_dihedral(p[i], t)
                heat += _undo_dihedral(h[i], t)
    return (prob / n_transforms).astype(np.float32), (heat / n_transforms).astype(np.float32)


def predict_instances_tta(model, inputs: np.ndarray, centers: np.ndarray,
                          n_transforms: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Instance masks and scores averaged over the rotations/flips of each window.

    A window of even side ``w`` centred on pixel ``(r, c)`` has the centre at index ``w // 2``; a flip would move
    it to ``w // 2 - 1``, so a flipped window is cut one pixel further along the flipped axis (as in training) and
    its mask shifted back after undoing the transform.

    Returns
    -------
    windows : ndarray float32 (n, window, window), scores : ndarray float32 (n,)
    """
    w = model.config.window
    masks = np.zeros((len(centers), w, w), np.float64)
    scores = np.zeros(len(centers), np.float64)
    if len(centers) == 0:
        return masks.astype(np.float32), scores.astype(np.float32)
    for t in range(n_transforms):
        sr, sc = t & 1, (t >> 1) & 1
        patches = extract_windows(inputs, centers + np.array([sr, sc]), w)
        patches = np.ascontiguousarray(np.moveaxis(_dihedral(np.moveaxis(patches, 0, 2), t), 2, 0))
        m, s = model.predict_instances(patches)
        m = np.moveaxis(_undo_dihedral(np.moveaxis(m, 0, 2), t), 2, 0)
        # m is on the window whose origin is (r - w//2 + sr, c - w//2 + sc): shift it onto the unshifted window
        shifted = np.zeros_like(masks)
        shifted[:, sr:, sc:] = m[:, :w - sr, :w - sc]
        masks += shifted
        scores += s
    return (masks / n_transforms).astype(np.float32), (scores / n_transforms).astype(np.float32)


#: Minimum centre heat-map value of a candidate when the maps are averaged over rotations/flips (averaging lowers
#: the peaks of the less certain centres; 0.05 was chosen on the validation strips and simulated movies).
TTA_CENTER_THRESHOLD = 0.05
#: Default minimum region-proposal probability at a candidate centre (chosen on simulated validation movies and the
#: real excerpts' validation strips for the shipped weights; see the model card).
PROB_THRESHOLD = 0.4


def detect(model, inputs: np.ndarray, *, prob_threshold: float = PROB_THRESHOLD, tta: bool = True) -> Detections:
    """Run both networks on one normalised field (model scale): candidates, their masks and scores.

    Parameters
    ----------
    model : DetectionModel
    inputs : ndarray (rows, cols, channels) float32
        From :func:`cellfie_caiman.models.stack_inputs`.
    prob_threshold : float
        Minimum U-Net probability at a candidate centre.
    tta : bool
        Average both networks' outputs over the 8 rotations/flips (test-time augmentation; 8 times the work).
        False: one pass, candidates need ``model.config.center_threshold`` of centre heat.
    """
    cfg = model.config
    if tta:
        prob, heat = predict_maps_tta(model, inputs)
        heat_threshold = min(cfg.center_threshold, TTA_CENTER_THRESHOLD)
    else:
        prob, heat = model.predict_maps(inputs)
        heat_threshold = cfg.center_threshold
    centers = find_candidates(heat, prob, radius=max(1, int(round(cfg.train_diameter / 4))),
                              heat_threshold=heat_threshold, prob_threshold=prob_threshold)
    if tta:
        windows, scores = predict_instances_tta(model, inputs, centers)
    else:
        windows, scores = model.predict_instances(extract_windows(inputs, centers, cfg.window))
    return Detections(windows, scores, centers, prob, heat)


def _component_at(mask: np.ndarray, r: int, c: int) -> np.ndarray:
    """The connected component of ``mask`` containing (r, c), else its largest component."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    lab = labels[r, c] if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] else 0
    if lab == 0:
        lab = 1 + int(np.argmax(ndimage.sum(mask, labels, index=np.arange(1, n + 1))))
    return labels == lab


class LocalMasks(NamedTuple):
    """Masks stored as crops on a field: the same masks as a dense (n, rows, cols) stack in a fraction of the memory.

    Attributes
    ----------
    crops : list of ndarray, bool
        ``crops[i]`` is mask ``i`` inside its box; the mask is empty outside it.
    boxes : ndarray int (n, 4)
        ``(r0, r1, c0, c1)``: crop ``i`` covers rows ``r0:r1`` and columns ``c0:c1`` of the field.
    shape : tuple (rows, cols)
        The field.
    """

    crops: list
    boxes: np.ndarray
    shape: tuple

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> LocalMasks:
        """Each of ``masks`` (n, rows, cols) cropped to its bounding box (an empty mask: a 0 x 0 crop)."""
        masks = np.asarray(masks, bool)
        any_r, any_c = masks.any(2), masks.any(1)
        r0, r1 = any_r.argmax(1), any_r.shape[1] - any_r[:, ::-1].argmax(1)
        c0, c1 = any_c.argmax(1), any_c.shape[1] - any_c[:, ::-1].argmax(1)
        empty = ~any_r.any(1)
        r1[empty], c1[empty] = r0[empty], c0[empty]
        boxes = np.stack([r0, r1, c0, c1], axis=1).astype(int)
        crops = [m[a:b, c:d] for m, (a, b, c, d) in zip(masks, boxes, strict=True)]
        return cls(crops, boxes.reshape(-1, 4), tuple(masks.shape[1:]))

    def dense(self, order=None) -> np.ndarray:
        """The masks ``order`` (default: all, in order) as one bool array (len(order), rows, cols).

        Only the boxes are written into the zeroed array (whole masks are never copied or transposed): on a 512 x 512
        field with ~300 masks this and :meth:`ain` take ~0.03 s, against ~0.15 s for a dense copy and transpose.
        Memory is that of the dense array, ``len(order) * rows * cols`` bytes.
        """
        order = self._order(order)
        out = np.zeros((len(order),) + tuple(self.shape), bool)
        for k, i in enumerate(order):
            r0, r1, c0, c1 = self.boxes[i]
            out[k, r0:r1, c0:c1] = self.crops[i]
        return out

    def ain(self, order=None) -> np.ndarray:
        """The masks ``order`` as CaImAn's ``Ain``: bool (rows * cols, len(order)), Fortran-ordered, column k the
        mask flattened in Fortran order (what :func:`cellfie_caiman.rois.masks_to_ain` gives for :meth:`dense`).

        Written box by box into the column-major memory, like :meth:`dense` (``rows * cols * len(order)`` bytes).
        """
        order = self._order(order)
        rows, cols = self.shape
        columns = np.zeros((len(order), cols, rows), bool)  # memory of a Fortran-ordered (rows * cols, K) array
        for k, i in enumerate(order):
            r0, r1, c0, c1 = self.boxes[i]
            columns[k, c0:c1, r0:r1] = self.crops[i].T
        return columns.reshape(len(order), rows * cols).T

    def _order(self, order) -> np.ndarray:
        return np.arange(len(self.crops)) if order is None else np.asarray(order, int)


def _tight(local: np.ndarray, r0: int, c0: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A nonempty crop ``local`` at field offset (r0, c0) cut to its bounding box, and that box."""
    rows, cols = np.flatnonzero(local.any(1)), np.flatnonzero(local.any(0))
    a, b, c, d = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return local[a:b, c:d], (r0 + a, r0 + b, c0 + c, c0 + d)


def place_windows(det: Detections, keep: np.ndarray, shape: tuple[int, int], scaled_shape: tuple[int, int],
                  window: int, min_area: float) -> tuple[LocalMasks, np.ndarray, np.ndarray]:
    """Threshold kept instance windows at 0.5 and place them on the original grid (resampling if zoomed).

    The model grid (``scaled_shape``) and the original grid (``shape``) share the field's edges: original pixel
    ``i`` sits at model coordinate ``(i + 0.5) * scaled / original - 0.5``. Each mask keeps the connected component
    at its centre (else its largest) and is dropped when smaller than ``min_area`` pixels.

    Returns
    -------
    masks : LocalMasks (k masks), index : int (k,) into ``det``, centers : float (k, 2) original grid
    """
    rows, cols = shape
    fr, fc = scaled_shape[0] / rows, scaled_shape[1] / cols
    same_grid = tuple(shape) == tuple(scaled_shape)
    h = window // 2
    crops, boxes, index, centers = [], [], [], []
    for i in np.flatnonzero(keep):
        r, c = det.centers[i]
        r0, c0 = r - h, c - h  # window origin, model grid
        # original-grid box covering the window
        i0 = max(0, int(np.floor((r0 + 0.5) / fr - 0.5)) - 1)
        i1 = min(rows, int(np.ceil((r0 + window + 0.5) / fr - 0.5)) + 1)
        j0 = max(0, int(np.floor((c0 + 0.5) / fc - 0.5)) - 1)
        j1 = min(cols, int(np.ceil((c0 + window + 0.5) / fc - 0.5)) + 1)
        if i1 <= i0 or j1 <= j0:
            continue
        if same_grid:  # the window's pixels themselves (what interpolating at whole pixels gives)
            local = np.zeros((i1 - i0, j1 - j0), bool)
            a0, a1, b0, b1 = max(i0, r0), min(i1, r0 + window), max(j0, c0), min(j1, c0 + window)
            local[a0 - i0:a1 - i0, b0 - j0:b1 - j0] = det.windows[i][a0 - r0:a1 - r0, b0 - c0:b1 - c0] > 0.5
        else:
            yy = (np.arange(i0, i1) + 0.5) * fr - 0.5 - r0
            xx = (np.arange(j0, j1) + 0.5) * fc - 0.5 - c0
            grid = np.meshgrid(yy, xx, indexing="ij")
            local = ndimage.map_coordinates(det.windows[i], grid, order=1, mode="constant", cval=0.0) > 0.5
        center = ((r + 0.5) / fr - 0.5, (c + 0.5) / fc - 0.5)
        local = _component_at(local, int(round(center[0])) - i0, int(round(center[1])) - j0)
        if local.sum() < min_area or not local.any():
            continue
        crop, box = _tight(local, i0, j0)
        crops.append(crop)
        boxes.append(box)
        index.append(i)
        centers.append(center)
    local_masks = LocalMasks(crops, np.array(boxes, int).reshape(-1, 4), (rows, cols))
    return local_masks, np.array(index, int), np.array(centers, dtype=np.float64).reshape(-1, 2)


def windows_to_masks(det: Detections, keep: np.ndarray, shape: tuple[int, int], scaled_shape: tuple[int, int],
                     window: int, min_area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`place_windows` with the masks as one dense bool array (k, rows, cols)."""
    local, index, centers = place_windows(det, keep, shape, scaled_shape, window, min_area)
    return local.dense(), index, centers


def dedup_local(masks: LocalMasks, scores: np.ndarray, max_overlap: float = 0.5,
                containment: float = CONTAINMENT) -> np.ndarray:
    """:func:`dedup_masks` on cropped masks: only the overlap of two boxes is compared."""
    crops, boxes = masks.crops, masks.boxes
    areas = np.array([c.sum() for c in crops], np.float64)
    kept: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if areas[i] == 0:
            continue
        r0, r1, c0, c1 = boxes[i]
        duplicate = False
        if kept:
            k = np.array(kept)
            b = boxes[k]
            for j in k[(b[:, 0] < r1) & (r0 < b[:, 1]) & (b[:, 2] < c1) & (c0 < b[:, 3])]:
                a0, a1 = max(r0, boxes[j, 0]), min(r1, boxes[j, 1])
                b0, b1 = max(c0, boxes[j, 2]), min(c1, boxes[j, 3])
                inter = float(np.count_nonzero(
                    crops[i][a0 - r0:a1 - r0, b0 - c0:b1 - c0]
                    & crops[j][a0 - boxes[j, 0]:a1 - boxes[j, 0], b0 - boxes[j, 2]:b1 - boxes[j, 2]]))
                iou = inter / (areas[i] + areas[j] - inter)
                if iou > max_overlap or max(inter / areas[i], inter / areas[j]) > containment:
                    duplicate = True
                    break
        if not duplicate:
            kept.append(int(i))
    return np.array(kept, dtype=int)


def dedup_masks(masks: np.ndarray, scores: np.ndarray, max_overlap: float = 0.5,
                containment: float = CONTAINMENT) -> np.ndarray:
    """Indices of masks to keep after removing duplicates, best score first.

    Going down the scores, a mask is dropped when, with an already kept mask, its IoU exceeds ``max_overlap`` or
    the fraction of either mask lying inside the other exceeds ``containment``. Empty masks are dropped.

    Parameters
    ----------
    masks : bool (n, rows, cols)
    scores : (n,)

    Returns
    -------
    ndarray int (k,)
        Kept indices, sorted by decreasing score.
    """
    if len(masks) == 0:
        return np.zeros(0, int)
    return dedup_local(LocalMasks.from_dense(masks), scores, max_overlap, containment)


def model_summary(movie, *, model="default", neuron_diameter: float | None = None, batch_frames: int | None = 250,
                  progress: bool = False):
    """The summary images a detection model reads, computed from a movie.

    :func:`cellfie_caiman.summary.summary_images` with ``filter_diameter`` set when the model reads
    ``pnr_filtered`` (to ``neuron_diameter``, or the model's ``train_diameter`` when it is None), so that
    ``initialize(model_summary(movie, ...), ...)`` equals ``initialize(movie, ...)`` with the same arguments.

    Parameters
    ----------
    movie : anything :func:`cellfie_caiman.io.load_movie` reads
    model : str, path or DetectionModel
    neuron_diameter : float, optional
        Soma diameter in pixels.
    batch_frames : int or None
    progress : bool

    Returns
    -------
    SummaryImages
    """
    from .models import model_config

    cfg = model_config(model)  # no TensorFlow needed for the summary images
    return _as_summary(movie, cfg.channels, _filter_diameter(cfg, neuron_diameter), batch_frames, progress)


def _filter_diameter(cfg, neuron_diameter: float | None) -> float:
    if neuron_diameter is not None and not (np.isfinite(neuron_diameter) and neuron_diameter > 0):
        raise ValueError(f"neuron_diameter must be a positive number of pixels, got {neuron_diameter!r}")
    return cfg.train_diameter if neuron_diameter is None else float(neuron_diameter)


def _as_summary(movie_or_summary, channels, filter_diameter: float, batch_frames, progress):
    """The summary images the model reads: given ones (checked), or computed from the movie."""
    from .models.preprocess import check_images, is_summary

    if is_summary(movie_or_summary):
        check_images(movie_or_summary, channels, "pass the movie, or compute them with summary_images(movie, "
                     "batch_frames=..., filter_diameter=<soma diameter in pixels>)")
        return movie_or_summary
    from .summary import summary_images

    return summary_images(movie_or_summary, batch_frames=batch_frames, progress=progress,
                          filter_diameter=filter_diameter if "pnr_filtered" in channels else None)


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize on the pixel-area convention (edges of the field aligned), anti-aliased when shrinking."""
    from skimage.transform import resize

    if image.shape == tuple(shape):
        return image
    return resize(image.astype(np.float32), shape, order=1, mode="reflect", preserve_range=True,
                  anti_aliasing=shape[0] < image.shape[0]).astype(np.float32)


def _empty(shape, summary, prob=None, diameter: float | None = None) -> Initialization:
    rows, cols = shape
    prob = np.zeros(shape, np.float32) if prob is None else prob
    return Initialization(np.zeros((rows * cols, 0), bool), np.zeros((0, rows, cols), bool), np.zeros(0, np.float32),
                          np.zeros((0, 2)), prob, summary, diameter)


def initialize(movie_or_summary, *, model="default", neuron_diameter: float | None = None, min_score: float = 0.5,
               prob_threshold: float = PROB_THRESHOLD, max_overlap: float = 0.5, batch_frames: int | None = 250,
               tta: bool = True, progress: bool = False) -> Initialization:
    """Find neurons with the detection networks.

    Parameters
    ----------
    movie_or_summary : movie or SummaryImages
        Anything :func:`cellfie_caiman.io.load_movie` reads (array (T, rows, cols), path, CaImAn memmap name), or
        precomputed :class:`cellfie_caiman.summary.SummaryImages` with the images the model reads
        (``model.config.channels``; the shipped model also reads ``pnr_filtered``: compute them with
        ``summary_images(movie, batch_frames=250, filter_diameter=d)``, ``d`` the soma diameter in pixels, or
        ``model.config.train_diameter`` when ``neuron_diameter`` is not given).
    model : str, path or DetectionModel
        Shipped model name (see :func:`cellfie_caiman.models.list_models`) or a ``.npz`` weight file.
    neuron_diameter : float, optional
        Typical soma diameter in pixels. The images are zoomed by ``model.config.train_diameter / neuron_diameter``
        so neurons have the size the model was trained on; masks come back on the original grid. None (size
        unknown): detect at the model's scale (no zoom); if the masks found there have a median diameter outside
        ``AUTO_DIAMETER_RANGE`` (0.8-1.25) times ``train_diameter`` (the neurons are smaller or larger than those
        the model was trained on), detect again at that diameter, and once more if the new masks measure more than
        10 % differently (the summary images are not recomputed). A re-detection is kept only if the networks are
        about as sure of it (summed instance score at least ``AUTO_DIAMETER_KEEP``, 0.7, times the previous
        pass's): masks that are merely drawn smaller than the annotation would have it must not shrink the zoom.
        The diameter used is returned (``neuron_diameter``). Neurons more than ~2x the training size are cut into
        pieces of about that size, which this check may not notice: give their diameter.
    min_score : float
        Keep instances whose score is at least this (0..1; lower finds more, less certain neurons).
    prob_threshold : float
        Candidate centres need at least this region-proposal probability.
    max_overlap : float
        Two kept masks with IoU above this (or one more than 80 % inside the other) are one neuron: the
        higher-scored is kept.
    batch_frames : int or None
        Frames per batch for the max image of :func:`cellfie_caiman.summary.summary_images` (the models were
        trained with 250).
    tta : bool
        Average both networks' outputs over the 8 rotations and flips of the field and of each subframe
        (test-time augmentation; the default, and the setting of every figure in the model card). False: one
        pass of each network, for quick looks: 2.6 times as fast on a 512 x 512 field on 2 CPU cores, less
        accurate (on the shipped model's validation data F1 0.963 against 0.967 on simulated movies and 0.51
        against 0.55 on the real excerpts' held-out strips; model card, "Speed and portability").
    progress : bool
        Progress bar while computing summary images.

    Returns
    -------
    Initialization
        Empty (K = 0, ``Ain`` of shape (pixels, 0)) with a warning when the images carry no signal.
    """
    from .models import load_model

    net = load_model(model)
    cfg = net.config
    summary = _as_summary(movie_or_summary, cfg.channels, _filter_diameter(cfg, neuron_diameter), batch_frames,
                          progress)
    images = {name: np.asarray(getattr(summary, name)) for name in cfg.channels}
    shape = images[cfg.channels[0]].shape
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"summary images must be 2-D (rows, cols), got shape {shape}")
    bad = [name for name, im in images.items() if not np.isfinite(im).any()]
    if bad:
        warnings.warn(f"summary images {bad} have no finite value; no neuron can be found", RuntimeWarning,
                      stacklevel=2)
        return _empty(shape, summary)

    settings = dict(min_score=min_score, prob_threshold=prob_threshold, max_overlap=max_overlap, tta=tta)
    if neuron_diameter is not None:
        return _detect_at(net, images, summary, float(neuron_diameter), **settings)
    result = _detect_at(net, images, summary, cfg.train_diameter, **settings)
    for k in range(AUTO_DIAMETER_PASSES):
        if len(result.masks) < AUTO_DIAMETER_MIN_MASKS:
            break
        used, found = result.neuron_diameter, mask_diameter(result.masks)
        low, high = AUTO_DIAMETER_RANGE if k == 0 else (0.9, 1.1)
        if low <= found / used <= high:
            break
        logger.info("the neurons found for a diameter of %.1f px measure %.1f px: detecting them again at that size",
                    used, found)
        again = _detect_at(net, images, summary, found, **settings)
        if len(again.masks) < AUTO_DIAMETER_MIN_MASKS:  # nothing to go on at that size: keep what was found
            break
        kept = float(again.scores.sum()) / max(float(result.scores.sum()), 1e-12)
        if kept < AUTO_DIAMETER_KEEP:
            logger.info("at %.1f px the networks find less (summed score %.2f times that at %.1f px): keeping %.1f px",
                        found, kept, used, used)
            break
        logger.info("summed score at %.1f px: %.2f times that at %.1f px", found, kept, used)
        result = again
    return result


def _detect_at(net, images: dict, summary, diameter: float, *, min_score: float, prob_threshold: float,
               max_overlap: float, tta: bool) -> Initialization:
    """:func:`initialize` for somata of ``diameter`` pixels: images zoomed by ``train_diameter / diameter``."""
    from .models import stack_inputs

    cfg = net.config
    shape = images[cfg.channels[0]].shape
    ratio = cfg.train_diameter / diameter
    scaled_shape = (max(1, int(round(shape[0] * ratio))), max(1, int(round(shape[1] * ratio))))
    scaled = {name: _resize(np.where(np.isfinite(im), im, np.nan).astype(np.float32), scaled_shape)
              if ratio != 1.0 else im for name, im in images.items()}
    inputs = stack_inputs(scaled, cfg)
    if not inputs.any():
        warnings.warn("the summary images are constant (empty or constant movie?); no neuron can be found",
                      RuntimeWarning, stacklevel=3)
        return _empty(shape, summary)

    det = detect(net, inputs, prob_threshold=prob_threshold, tta=tta)
    keep = det.scores >= min_score
    min_area = 0.1 * np.pi * (cfg.train_diameter / 2) ** 2 / ratio**2
    local, index, centers = place_windows(det, keep, shape, scaled_shape, cfg.window, min_area)
    scores = det.scores[index]
    order = dedup_local(local, scores, max_overlap=max_overlap)
    masks, ain = local.dense(order), local.ain(order)
    scores, centers = scores[order].astype(np.float32), centers[order]
    prob = _resize(det.prob, shape).astype(np.float32)
    logger.info("%d candidates, %d kept, %d after removing duplicates", len(det.scores), int(keep.sum()), len(order))
    if len(masks) == 0:
        return _empty(shape, summary, prob, diameter)
    return Initialization(ain, masks, scores, centers, prob, summary, diameter)
