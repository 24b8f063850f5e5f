"""Training fields: an annotated or simulated field's normalised inputs and U-Net targets at one zoom."""
from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse
from scipy import ndimage

from ..masks import bounding_box
from ..models import ModelConfig, stack_inputs
from ..models.preprocess import check_images, is_summary


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


def zoomed_shape(shape: tuple[int, int], zoom: float) -> tuple[int, int]:
    """(rows, cols) of a field of ``shape`` zoomed by ``zoom``: rounded, at least 8 px a side."""
    return max(8, int(round(shape[0] * zoom))), max(8, int(round(shape[1] * zoom)))


def _zoom_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from ..initialize import _resize

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
    shape = zoomed_shape(np.asarray(getattr(summary, config.channels[0])).shape, zoom)
    images = {c: _zoom_image(getattr(summary, c), shape) for c in config.channels}
    inputs = stack_inputs(images, config)
    m = _zoom_masks(np.asarray(masks, bool), shape)
    m = m[m.any(axis=(1, 2))]  # (reshape(len, -1) fails on an empty stack)
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


def _annotated(source, rois, channels, filter_diameter: float | None, batch_frames: int, progress: bool,
               region=None, name: str = "dataset"):
    """(SummaryImages, masks) of one annotated dataset, with the images the model reads, cut to ``region`` (the
    annotated part of the field, :func:`crop_region`) when it is given; bad ROIs or a bad region fail before the
    images are computed (:func:`checked_annotation`).

    ``pnr_filtered`` is computed with ``filter_diameter`` (the model's training diameter; None: not computed), as
    ``initialize`` does when it is not told the neuron size: the model learns to read it on neurons of every size.
    """
    opened, masks, bounds = checked_annotation(source, rois, channels, region, name)
    return annotated_images(opened, masks, bounds, filter_diameter, batch_frames, progress)


def checked_annotation(source, rois, channels, region=None, name: str = "dataset") -> tuple:
    """``(summary images or Movie, masks, bounds or None)`` of one annotated dataset, checked without computing
    anything: the movie's header read, the ROIs fit its frames, the region is valid, and there is an ROI (in the
    region) to learn from (``ValueError`` naming ``name`` and the ROIs otherwise)."""
    if is_summary(source):
        check_images(source, channels, "a dataset given as summary images needs them (pass the movie instead)")
        opened, shape = source, np.asarray(source.mean).shape
    else:
        from ..io import load_movie

        opened = load_movie(source)
        shape = opened.frame_shape
        _warn_if_short(opened.n_frames, name)
    masks = _as_masks(rois, shape)
    bounds = None if region is None else parse_region(region, shape)
    r0, r1, c0, c1 = bounds if bounds is not None else (0, shape[0], 0, shape[1])
    if not masks[:, r0:r1, c0:c1].any():
        where = "" if bounds is None else f" in its region {region!r}"
        what = rois if isinstance(rois, (str, os.PathLike)) else "its masks"
        raise ValueError(f"{name} ({what}): no ROI{where}, nothing to learn from")
    _warn_if_in_pieces(masks, name, rois)
    return opened, masks, bounds


def _warn_if_in_pieces(masks: np.ndarray, name: str, rois) -> None:
    """A ``UserWarning`` when most ROIs (more than half) are in several pieces (8-connected): not outlines of somata,
    most likely an ``Ain`` flattened in C order (CaImAn's is in Fortran order), which reads as each neuron's rows
    scattered over the field. The manual ROIs of neurofinder.01.01 and 00.00-left are all in one piece; flattened in
    C order, all of 00.00-left's are in 2 pieces, a 160 x 128 field's in 14."""
    pieces = np.array([ndimage.label(_cropped(m), structure=np.ones((3, 3)))[1] for m in masks if m.any()])
    if len(pieces) and np.mean(pieces > 1) > 0.5:
        what = rois if isinstance(rois, (str, os.PathLike)) else "its masks"
        warnings.warn(f"{name} ({what}): {int(np.sum(pieces > 1))} of {len(pieces)} ROIs are in several pieces "
                      f"(median {np.median(pieces):g}), not outlines of somata: an Ain (rows*cols, N) flattened in C "
                      "order? CaImAn's Ain is in Fortran order: masks.reshape(len(masks), -1, order='F').T, or give "
                      "the masks (N, rows, cols) themselves", UserWarning, stacklevel=5)


def _cropped(mask: np.ndarray) -> np.ndarray:
    """``mask`` (rows, cols) cut to its bounding box."""
    r0, r1, c0, c1 = bounding_box(mask)
    return mask[r0:r1, c0:c1]


def _warn_if_short(n_frames: int, name: str) -> None:
    """A ``RuntimeWarning`` for a movie shorter than ``initialize`` warns about: its summary images are noisy, and
    the networks would learn to read them so."""
    from ..initialize import SHORT_MOVIE_FRAMES

    if n_frames < SHORT_MOVIE_FRAMES:
        warnings.warn(f"{name}: the movie has only {n_frames} frames: its summary images are noisy and its neurons "
                      "that did not fire barely show in them; train on the whole recording", RuntimeWarning,
                      stacklevel=5)


def annotated_images(opened, masks: np.ndarray, bounds, filter_diameter: float | None, batch_frames: int,
                     progress: bool) -> tuple:
    """(SummaryImages, masks) of a dataset checked by :func:`checked_annotation`: its summary images computed from
    the movie (unless given), both cut to ``bounds``. Given summary images whose recorded ``filter_diameter`` is more
    than ``FILTER_DIAMETER_TOLERANCE`` away from ``filter_diameter`` are used as they are, with a RuntimeWarning."""
    if is_summary(opened):
        summary = opened
        _warn_about_filter(getattr(summary, "filter_diameter", None), filter_diameter)
    else:
        from ..summary import summary_images

        summary = summary_images(opened, batch_frames=batch_frames, progress=progress, filter_diameter=filter_diameter)
    return (summary, masks) if bounds is None else crop_region(summary, masks, bounds)


def _warn_about_filter(recorded: float | None, wanted: float | None) -> None:
    """RuntimeWarning when summary images given for training record a ``pnr_filtered`` computed for somata of
    ``recorded`` pixels, more than ``FILTER_DIAMETER_TOLERANCE`` away from the ``wanted`` diameter (nothing when
    either is None: unknown, or no filtered image)."""
    from ..initialize import filtered_for_another_size

    if not filtered_for_another_size(recorded, wanted):
        return
    warnings.warn(f"summary images given for training: their pnr_filtered was computed for somata of {recorded:g} "
                  f"px, but training filters for {wanted:g} px, so the networks learn an image that detection does "
                  f"not show them; give the movie instead, or summary_images(movie, batch_frames=250, "
                  f"filter_diameter={wanted:g})", RuntimeWarning, stacklevel=5)


#: Smallest side (pixels) of an annotated region (:func:`parse_region`).
MIN_REGION = 16


def parse_region(region, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of the annotated part of a field of ``shape`` (rows, cols).

    Parameters
    ----------
    region : str or (slice, slice)
        ``'R0:R1,C0:C1'`` in NumPy's slice syntax (an end may be left out or negative: ``'0:256,:'`` is the top 256
        rows, ``':,-200:'`` the last 200 columns), or a pair of slices (``numpy.s_[0:256, :]``).
    shape : (int, int)

    Examples
    --------
    >>> parse_region("0:256,:", (512, 400))
    (0, 256, 0, 400)
    """
    text = region
    if isinstance(region, str):
        parts = [p.split(":") for p in region.replace(" ", "").split(",")]
        if len(parts) != 2 or any(len(p) != 2 for p in parts):
            raise ValueError(f"region must look like 'R0:R1,C0:C1' (e.g. '0:256,:'), got {region!r}")
        try:
            region = tuple(slice(*(int(b) if b else None for b in p)) for p in parts)
        except ValueError:
            raise ValueError(f"region bounds must be whole pixel numbers, got {text!r}") from None
    if not (isinstance(region, tuple) and len(region) == 2
            and all(isinstance(s, slice) and s.step in (None, 1) for s in region)):
        raise ValueError(f"region must be 'R0:R1,C0:C1' or a pair of slices, got {text!r}")
    (r0, r1, _), (c0, c1, _) = (s.indices(n) for s, n in zip(region, shape, strict=True))
    if r1 - r0 < MIN_REGION or c1 - c0 < MIN_REGION:
        raise ValueError(f"region {text!r} of a {shape[0]} x {shape[1]} field spans {max(0, r1 - r0)} x "
                         f"{max(0, c1 - c0)} pixels; it needs at least {MIN_REGION} x {MIN_REGION}")
    return r0, r1, c0, c1


def crop_region(summary, masks: np.ndarray, bounds: tuple[int, int, int, int]) -> tuple:
    """The annotated part of a field: its summary images and masks cut to ``bounds`` (row0, row1, col0, col1; from
    :func:`parse_region`).

    The summary images are computed on the whole movie first, so the crop's edges keep their context. Masks
    without a pixel in the region are dropped; those cut by its edge keep their part inside.

    Returns
    -------
    (SummaryImages, masks (N, rows, cols) bool)
    """
    r0, r1, c0, c1 = bounds
    cropped = summary._replace(**{name: np.asarray(image)[r0:r1, c0:c1] for name, image in summary._asdict().items()
                                  if image is not None})
    return cropped, masks_in(masks, bounds)


def masks_in(masks: np.ndarray, bounds: tuple[int, int, int, int]) -> np.ndarray:
    """``masks`` (N, rows, cols) cut to ``bounds`` (row0, row1, col0, col1), those without a pixel there dropped."""
    r0, r1, c0, c1 = bounds
    inside = np.asarray(masks, bool)[:, r0:r1, c0:c1]
    return inside[inside.any(axis=(1, 2))]  # (reshape(len, -1) fails on an empty stack)


def _as_masks(rois, shape: tuple[int, int]) -> np.ndarray:
    """Bool masks (N, rows, cols) of a field of ``shape`` from an ROI file, or from an array read as
    :func:`cellfie_caiman.rois.read_rois` reads a ``.npy`` file: masks (N, rows, cols) or CaImAn's ``Ain`` / ``A``
    (rows*cols, N), dense or SciPy sparse, a pixel being in an ROI where its value is > 0 (NaN is not)."""
    from ..rois import read_rois
    from ..rois.checks import _as_masks as array_masks

    if isinstance(rois, (str, os.PathLike)):
        return read_rois(rois, shape=shape)
    if scipy.sparse.issparse(rois):
        rois = rois.toarray()
    masks = np.asarray(rois)
    if masks.ndim == 3 and masks.shape[1:] != tuple(shape):
        swapped = ("; rows and columns swapped ((x, y) order)? masks.transpose(0, 2, 1) has the movie's"
                   if masks.shape[1:] == tuple(shape)[::-1] else "")
        raise ValueError(f"masks must have shape (N, {shape[0]}, {shape[1]}) (or be Ain, (rows*cols, N)), got "
                         f"{masks.shape}{swapped}")
    return array_masks(masks, shape, "masks")
