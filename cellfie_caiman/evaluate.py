"""Scoring detected ROIs against ground truth.

:func:`match_rois` pairs two sets of binary masks one-to-one with the Hungarian algorithm and counts true
positives, false positives and false negatives. Two rules:

* ``'caiman'`` reproduces CaImAn's ``nf_match_neurons_in_binary_masks`` (the neurofinder/eLife protocol): the cost
  of a pair is ``1 - IoU`` when the masks' centroids are closer than ``min_dist`` pixels (strictly), else 1; the
  full rectangular cost matrix is assigned with ``scipy.optimize.linear_sum_assignment``, and an assigned pair is
  a match when its cost is below ``thresh_cost`` (0.7: IoU > 0.3).
* ``'iou'`` is the rule of SUNS and STNeuroNet: one-to-one matching of the pairs whose IoU is at least 0.5,
  without a centroid gate.

:func:`pool_matches` pools the matches of several movies (the counts are summed, then scored) and says how
uncertain the pooled F1 is: a bootstrap interval over the movies.

Masks are binarised at ``> 0`` (CaImAn would use float values as weights; with 0/1 masks both agree). Unlike
CaImAn, boolean masks work (CaImAn scores them F1 = 0).
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from ._checks import frame_shape, number

logger = logging.getLogger(__name__)

__all__ = ["MatchResult", "PooledMatch", "match_rois", "pool_matches"]


class MatchResult(NamedTuple):
    """Result of :func:`match_rois`.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs; predicted ROIs without a match; ground-truth ROIs without a match.
    precision, recall, f1 : float
        ``tp / (tp + fp)``, ``tp / (tp + fn)``, ``2 tp / (2 tp + fp + fn)``; 0.0 where the denominator is 0
        (CaImAn gives NaN there: precision with no predictions, recall with no ground truth, all three when both
        are empty).
    matched : list of (int, int)
        ``(gt_index, pred_index)`` of each match, in increasing ``gt_index``.
    cost : ndarray, float64, (N_gt, N_pred)
        The cost matrix: ``1 - IoU`` (for ``rule='caiman'``, 1 where the centroids are ``min_dist`` or more apart).
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    matched: list
    cost: np.ndarray


def _check_values(values: np.ndarray, name: str) -> None:
    """``ValueError`` unless ``values`` are bool or real numbers, all finite."""
    if values.dtype != bool and not (np.issubdtype(values.dtype, np.integer)
                                     or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"{name}: masks must be bool or real numbers, got dtype {values.dtype}")
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: masks must be finite, found NaN or infinite values")


def _stack(x, name: str) -> np.ndarray:
    """``x`` as an array; a list of 2-D masks of different shapes is a clear ``ValueError``."""
    if isinstance(x, (list, tuple)) and x:
        shapes = {np.shape(m) for m in x}
        if len(shapes) > 1:
            raise ValueError(f"{name}: the masks have different frame shapes {sorted(shapes)}")
    return np.asarray(x)


def _as_masks(x, dims: tuple[int, int] | None, name: str) -> tuple[sp.csr_matrix | None, tuple[int, int] | None]:
    """Binary masks as a CSR matrix (N, rows * cols) with C-order pixels, and the frame shape.

    ``x`` is (N, rows, cols) (bool, numbers, or a list of 2-D masks), or ``Ain`` (pixels, K) dense or sparse with
    Fortran-order pixels (then ``dims`` is required). Returns (None, None) for an empty set of unknown shape.
    """
    if sp.issparse(x):
        coo = sp.coo_matrix(x)
        _check_values(coo.data, name)
        return _from_ain(coo, dims, name)
    arr = _stack(x, name)
    _check_values(arr, name)
    if arr.size == 0 and arr.ndim < 3:
        if arr.ndim == 2 and dims is not None:
            if arr.shape[0] != dims[0] * dims[1]:
                raise ValueError(f"{name}: Ain has {arr.shape[0]} rows but dims={tuple(dims)} has "
                                 f"{dims[0] * dims[1]} pixels")
            return sp.csr_matrix((0, dims[0] * dims[1])), tuple(dims)
        return None, None
    if arr.ndim == 3:
        n, rows, cols = arr.shape
        if dims is not None and tuple(dims) != (rows, cols):
            raise ValueError(f"{name}: masks of shape {(rows, cols)} do not match dims={tuple(dims)}")
        # one pass over the flat array is several times faster than a 2-D nonzero
        flat = np.flatnonzero(arr if arr.dtype == bool else arr > 0)
        k, p = np.divmod(flat, rows * cols)
        mat = sp.csr_matrix((np.ones(len(k)), (k, p)), shape=(n, rows * cols))
        return mat, (rows, cols)
    if arr.ndim == 2:
        return _from_ain(sp.coo_matrix(arr), dims, name)
    raise ValueError(f"{name}: expected masks (N, rows, cols) or Ain (pixels, N) with dims, got shape {arr.shape}")


def _from_ain(coo: sp.coo_matrix, dims: tuple[int, int] | None, name: str) -> tuple[sp.csr_matrix, tuple[int, int]]:
    """(pixels, K) Fortran-order footprints -> (K, pixels) C-order binary CSR."""
    if dims is None:
        raise ValueError(f"{name}: a 2-D input is read as Ain (pixels, K) in Fortran order and needs dims=(rows, cols)")
    rows, cols = (int(d) for d in dims)
    if coo.shape[0] != rows * cols:
        raise ValueError(f"{name}: Ain has {coo.shape[0]} rows but dims={tuple(dims)} has {rows * cols} pixels")
    keep = coo.data > 0
    p_f = coo.row[keep].astype(np.int64)
    p_c = (p_f % rows) * cols + p_f // rows
    mat = sp.csr_matrix((np.ones(len(p_c)), (coo.col[keep], p_c)), shape=(coo.shape[1], rows * cols))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat, (rows, cols)


def _centroids(mat: sp.csr_matrix, cols: int) -> np.ndarray:
    """(N, 2) mean (row, col) of each mask's pixels; NaN for empty masks (like ``ndimage.center_of_mass``)."""
    p = mat.indices.astype(np.int64)
    counts = np.diff(mat.indptr).astype(np.float64)
    out = np.full((mat.shape[0], 2), np.nan)
    nz = counts > 0
    starts = mat.indptr[:-1][nz]
    if len(p):
        # sums of integer coordinates are exact in float64, as in scipy's center_of_mass
        out[nz, 0] = np.add.reduceat((p // cols).astype(np.float64), starts) / counts[nz]
        out[nz, 1] = np.add.reduceat((p % cols).astype(np.float64), starts) / counts[nz]
    return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def match_rois(masks_gt, masks_pred, *, thresh_cost: float = 0.7, min_dist: float = 10, rule: str = "caiman",
               dims: tuple[int, int] | None = None) -> MatchResult:
    """Match predicted ROIs to ground-truth ROIs one-to-one and score them.

    Parameters
    ----------
    masks_gt, masks_pred : array-like or sparse matrix
        Each either masks (N, rows, cols) (bool or real numbers; a pixel belongs to a mask where its value is
        > 0), a list of 2-D masks of one shape, or ``Ain`` (rows * cols, N) dense or ``scipy.sparse`` with
        Fortran-order pixels (``p = row + col * rows``, CaImAn's layout; then ``dims`` is required). NaN and
        infinite values are refused. Both sets must have the same frame shape.
    thresh_cost : float
        ``rule='caiman'``: an assigned pair is a match when its cost ``1 - IoU`` is below this (0.7: IoU > 0.3).
    min_dist : float
        ``rule='caiman'``: pairs whose centroids are ``min_dist`` pixels or more apart cost 1 (never match);
        ``np.inf``: no distance limit (as in CaImAn).
    rule : {'caiman', 'iou'}
        ``'caiman'``: CaImAn's ``nf_match_neurons_in_binary_masks``. ``'iou'``: match pairs with IoU >= 0.5
        (SUNS, STNeuroNet); ``thresh_cost`` and ``min_dist`` are not used.
    dims : (int, int) or None
        Frame shape (rows, cols), positive integers; required for ``Ain`` inputs, checked against 3-D inputs.

    Returns
    -------
    MatchResult

    Raises
    ------
    ValueError
        For an unknown ``rule``, settings out of range, masks that are not finite real numbers, frame shapes
        that differ (between the two sets, within a list, or from ``dims``).
    """
    if rule not in ("caiman", "iou"):
        raise ValueError(f"rule must be 'caiman' or 'iou', got {rule!r}")
    number(thresh_cost, "thresh_cost (1 - IoU)", low=0, high=1, low_open=True)
    if not (isinstance(min_dist, (int, float, np.floating)) and min_dist == np.inf):  # inf: no distance limit
        number(min_dist, "min_dist (pixels)", low=0, low_open=True)
    dims = None if dims is None else frame_shape(dims, "dims")
    gt, dims_gt = _as_masks(masks_gt, dims, "masks_gt")
    pred, dims_pred = _as_masks(masks_pred, dims, "masks_pred")
    if dims_gt is not None and dims_pred is not None and dims_gt != dims_pred:
        raise ValueError(f"masks_gt frames {dims_gt} and masks_pred frames {dims_pred} differ")
    n_gt = 0 if gt is None else gt.shape[0]
    n_pred = 0 if pred is None else pred.shape[0]
    if n_gt == 0 or n_pred == 0:
        return MatchResult(0, n_pred, n_gt, 0.0, 0.0, 0.0, [], np.ones((n_gt, n_pred)))

    cols = dims_gt[1]
    inter = (gt @ pred.T).toarray()
    size_gt = np.diff(gt.indptr).astype(np.float64)
    size_pred = np.diff(pred.indptr).astype(np.float64)
    union = size_gt[:, None] + size_pred[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    if rule == "caiman":
        c_gt, c_pred = _centroids(gt, cols), _centroids(pred, cols)
        dr = c_gt[:, None, 0] - c_pred[None, :, 0]
        dc = c_gt[:, None, 1] - c_pred[None, :, 1]
        with np.errstate(invalid="ignore"):
            close = np.sqrt(dr * dr + dc * dc) < min_dist  # NaN (empty mask) is never close
        # the same floating-point expression as CaImAn, so that ties are broken identically
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = np.where(close & (union > 0), 1.0 - inter / np.where(union > 0, union, 1.0), 1.0)
        rows_a, cols_a = linear_sum_assignment(cost)
        ok = cost[rows_a, cols_a] < thresh_cost
    else:
        cost = 1.0 - iou
        allowed = iou >= 0.5
        rows_a, cols_a = linear_sum_assignment(np.where(allowed, cost, 2.0))
        ok = allowed[rows_a, cols_a]
    matched = [(int(i), int(j)) for i, j in zip(rows_a[ok], cols_a[ok], strict=True)]
    tp = len(matched)
    fp, fn = n_pred - tp, n_gt - tp
    return MatchResult(tp, fp, fn, _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn),
                       matched, cost)


class PooledMatch(NamedTuple):
    """Matches of several movies pooled: summed counts, their scores and a bootstrap interval of F1.

    Attributes
    ----------
    tp, fp, fn : int
        Summed over the movies.
    precision, recall, f1 : float
        Of the summed counts (movies with more neurons weigh more).
    f1_low, f1_high : float
        Percentile bootstrap interval of the pooled F1 at ``confidence_level``, resampling whole movies with
        replacement (the neurons of one movie are not independent draws: they share its noise, density and
        background). NaN with fewer than two movies.
    confidence_level : float
    n_movies : int
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    f1_low: float
    f1_high: float
    confidence_level: float
    n_movies: int


def _pooled_f1(tp, fp, fn, axis=-1):
    tp, fp, fn = (np.sum(a, axis=axis, dtype=np.float64) for a in (tp, fp, fn))
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)


def pool_matches(results: Sequence[MatchResult], *, confidence_level: float = 0.9, n_resamples: int = 9999,
                 seed: int = 0) -> PooledMatch:
    """Pool the matches of several movies and bootstrap the pooled F1 over the movies.

    Parameters
    ----------
    results : sequence of MatchResult
        One per movie (from :func:`match_rois`).
    confidence_level : float
        Of the two-sided interval (0..1).
    n_resamples : int
        Bootstrap resamples (``scipy.stats.bootstrap``, percentile method, the movies' tp/fp/fn resampled
        together).
    seed : int
        Seeds the resampling: the same call gives the same interval.

    Returns
    -------
    PooledMatch

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((2, 20, 20), bool); gt[0, 2:8, 2:8] = True; gt[1, 12:18, 12:18] = True
    >>> pooled = pool_matches([match_rois(gt, gt), match_rois(gt, gt[:1])])
    >>> pooled.tp, pooled.fn, round(pooled.f1, 3)
    (3, 1, 0.857)
    """
    from scipy import stats

    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    if len(results) == 0:
        raise ValueError("pool_matches needs at least one MatchResult")
    counts = np.array([(r.tp, r.fp, r.fn) for r in results], dtype=np.float64)
    tp, fp, fn = (int(v) for v in counts.sum(0))
    f1 = float(_pooled_f1(*counts.T))
    low = high = float("nan")
    if len(results) >= 2:
        rng = np.random.default_rng(seed)
        # scipy >= 1.15 calls the generator rng, older versions random_state
        key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
        boot = stats.bootstrap(tuple(counts.T), _pooled_f1, paired=True, vectorized=True, method="percentile",
                               confidence_level=confidence_level, n_resamples=n_resamples, **{key: rng})
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    return PooledMatch(tp, fp, fn, _ratio(tp, tp + fp), _ratio(tp, tp + fn), f1, low, high,
                       float(confidence_level), len(results))
