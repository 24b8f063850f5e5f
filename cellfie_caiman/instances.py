"""Instance windows to masks on the field: threshold, place (resampling when zoomed), and remove duplicates.

Masks are handled as crops in their bounding boxes (:class:`LocalMasks`) until the end, when the kept ones are
written once into the dense (K, rows, cols) stack and CaImAn's ``Ain``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ._memory import zeros_on_demand
from .detection import Detections
from .masks import bounding_box

__all__ = ["LocalMasks", "place_windows", "windows_to_masks", "dedup_local", "dedup_masks", "CONTAINMENT"]

#: What to do when the dense outputs do not fit in memory.
_ADVICE = ("Detect on parts of the field (e.g. halves of the movie or of the summary images, overlapping by a "
           "neuron diameter) or on a machine with more memory.")

#: A kept instance that lies this much (fraction of its area) inside a better-scored one is a duplicate.
CONTAINMENT = 0.8


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
        """Each of ``masks`` (n, rows, cols) cropped to its bounding box (an empty mask: a 0 x 0 crop).

        Parameters
        ----------
        masks : ndarray, shape (n, rows, cols)
            Nonzero is in.

        Returns
        -------
        LocalMasks
        """
        masks = np.asarray(masks, bool)
        any_r, any_c = masks.any(2), masks.any(1)
        r0, r1 = any_r.argmax(1), any_r.shape[1] - any_r[:, ::-1].argmax(1)
        c0, c1 = any_c.argmax(1), any_c.shape[1] - any_c[:, ::-1].argmax(1)
        empty = ~any_r.any(1)
        r1[empty], c1[empty] = r0[empty], c0[empty]
        boxes = np.stack([r0, r1, c0, c1], axis=1).astype(int)
        crops = [m[a:b, c:d] for m, (a, b, c, d) in zip(masks, boxes, strict=True)]
        return cls(crops, boxes.reshape(-1, 4), tuple(masks.shape[1:]))

    def dense(self, order: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The masks ``order`` (default: all, in order) as one bool array (len(order), rows, cols).

        Only the boxes are written into the zeroed array (whole masks are never copied or transposed): on a 512 x 512
        field with ~300 masks this and :meth:`ain` take ~0.03 s, against ~0.15 s for a dense copy and transpose. The
        array comes from :func:`cellfie_caiman._memory.zeros_on_demand`: resident memory grows with the boxes, not with
        ``len(order) * rows * cols``, until the whole array is written.
        """
        order = self._order(order)
        out = zeros_on_demand((len(order),) + tuple(self.shape), "masks", _ADVICE)
        for k, i in enumerate(order):
            r0, r1, c0, c1 = self.boxes[i]
            out[k, r0:r1, c0:c1] = self.crops[i]
        return out

    def ain(self, order: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The masks ``order`` as CaImAn's ``Ain``: bool (rows * cols, len(order)), Fortran-ordered, column k the
        mask flattened in Fortran order (what :func:`cellfie_caiman.masks.masks_to_ain` gives for :meth:`dense`).

        Written box by box into the column-major memory of a
        :func:`cellfie_caiman._memory.zeros_on_demand` array, like :meth:`dense`.
        """
        order = self._order(order)
        rows, cols = self.shape
        # the memory of a Fortran-ordered (rows * cols, K) array
        columns = zeros_on_demand((len(order), cols, rows), "Ain", _ADVICE)
        for k, i in enumerate(order):
            r0, r1, c0, c1 = self.boxes[i]
            columns[k, c0:c1, r0:r1] = self.crops[i].T
        return columns.reshape(len(order), rows * cols).T

    def _order(self, order) -> np.ndarray:
        return np.arange(len(self.crops)) if order is None else np.asarray(order, int)


def _tight(local: np.ndarray, r0: int, c0: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A nonempty crop ``local`` at field offset (r0, c0) cut to its bounding box, and that box."""
    a, b, c, d = bounding_box(local)
    return local[a:b, c:d], (r0 + a, r0 + b, c0 + c, c0 + d)


def place_windows(det: Detections, keep: np.ndarray, shape: tuple[int, int], scaled_shape: tuple[int, int],
                  window: int, min_area: float) -> tuple[LocalMasks, np.ndarray, np.ndarray]:
    """Threshold kept instance windows at 0.5 and place them on the original grid (resampling if zoomed).

    The model grid (``scaled_shape``) and the original grid (``shape``) share the field's edges: original pixel
    ``i`` sits at model coordinate ``(i + 0.5) * scaled / original - 0.5``. Each mask keeps the connected component
    at its centre (else its largest) and is dropped when smaller than ``min_area`` pixels.

    Parameters
    ----------
    det : Detections
        Instance windows and their centres (row, col) on the model grid.
    keep : ndarray, bool, shape (len(det),)
        Which instances to place.
    shape : (rows, cols)
        The original grid, pixels.
    scaled_shape : (rows, cols)
        The model grid, pixels.
    window : int
        Side of an instance window, model-grid pixels.
    min_area : float
        Smallest mask kept, original-grid pixels.

    Returns
    -------
    masks : LocalMasks
        The k placed masks.
    index : ndarray, int, shape (k,)
        Index of each into ``det``.
    centers : ndarray, float64, shape (k, 2)
        Centre (row, col) of each on the original grid.
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
    """:func:`place_windows` with the masks as one dense bool array (k, rows, cols); same parameters."""
    local, index, centers = place_windows(det, keep, shape, scaled_shape, window, min_area)
    return local.dense(), index, centers


def dedup_local(masks: LocalMasks, scores: np.ndarray, max_overlap: float = 0.5,
                containment: float = CONTAINMENT) -> np.ndarray:
    """:func:`dedup_masks` on cropped masks: only the overlap of two boxes is compared.

    Parameters and return value as for :func:`dedup_masks`, with ``masks`` a :class:`LocalMasks`.
    """
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
        Higher is better; ties keep the earlier mask.
    max_overlap : float
        IoU above which a mask duplicates a kept one.
    containment : float
        Fraction of either mask's area inside the other above which they are duplicates.

    Returns
    -------
    ndarray int (k,)
        Kept indices, sorted by decreasing score.
    """
    if len(masks) == 0:
        return np.zeros(0, int)
    return dedup_local(LocalMasks.from_dense(masks), scores, max_overlap, containment)
