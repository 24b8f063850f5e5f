"""The seeds: ``Ain`` or masks as the sparse seed matrix the builtin CNMF starts from, and their checks.

What CaImAn's seeded path takes as ``Ain`` (reference section 3, "What ``Ain`` must be", of
``shared/reference/caiman-interop.md``): one column per seed, pixels in Fortran order. Here the seeds may also be
bool/float masks (K, rows, cols) or sparse; NaN and negative values are zeroed, empty seeds and seeds that duplicate
an earlier one (IoU >= ``DUPLICATE_IOU``) are dropped with a warning, and :func:`remap_message` words the warning
that component k is no longer seed k.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse

from ..masks import sparse_rows

logger = logging.getLogger(__name__)

#: seeds whose supports overlap with at least this intersection-over-union are duplicates
DUPLICATE_IOU = 0.95


def seed_matrix(init, dims: tuple[int, int]) -> scipy.sparse.csc_matrix:
    """Every seed as a column of a (pixels, K) float64 CSC matrix in Fortran pixel order: NaN and negative values
    zeroed, indices sorted; empty and duplicate seeds kept (:func:`seeds_to_A` drops them).

    Parameters
    ----------
    init : Initialization (its ``Ain``), bool/float masks (K, rows, cols), or Ain (pixels, K) dense or sparse.
    dims : (rows, cols) of the movie.
    """
    rows, cols = dims
    d = rows * cols
    if hasattr(init, "Ain"):
        init = init.Ain
    if scipy.sparse.issparse(init):
        if init.shape[0] != d:
            raise ValueError(f"seeds (Ain) have {init.shape[0]} pixels per component, expected {d} "
                             f"(movie frames are {rows}x{cols})")
        A = scipy.sparse.csc_matrix(init, dtype=np.float64)
    else:
        arr = np.asarray(init)
        if arr.ndim == 3:
            if arr.shape[1:] != (rows, cols):
                raise ValueError(f"seed masks have frame shape {arr.shape[1:]}, expected {(rows, cols)} "
                                 "(the movie's frame shape)")
            # mask k's pixels in C order (r * cols + c), renumbered in Fortran order (r + c * rows)
            B = sparse_rows(arr.reshape(arr.shape[0], d))
            r, c = np.divmod(B.indices, cols)
            A = scipy.sparse.csc_matrix((B.data, r + c * rows, B.indptr), shape=(d, arr.shape[0]))
        elif arr.ndim == 2:
            if arr.shape[0] != d:
                hint = " (it looks transposed: expected (pixels, K))" if arr.shape[1] == d else ""
                raise ValueError(f"seeds (Ain) have {arr.shape[0]} pixels per component, expected {d} "
                                 f"(movie frames are {rows}x{cols}){hint}")
            A = sparse_rows(arr).tocsc()
        else:
            raise ValueError(f"seeds must be masks (K, rows, cols) or Ain (pixels, K), got shape {arr.shape}")
    A.data = np.nan_to_num(A.data)
    A.data[A.data < 0] = 0
    A.eliminate_zeros()
    A.sort_indices()
    return A


def duplicate_seeds(A: scipy.sparse.csc_matrix) -> np.ndarray:
    """Which seeds duplicate an earlier kept one (supports with IoU >= ``DUPLICATE_IOU``), a warning for each.

    Parameters
    ----------
    A : (pixels, K) sparse, the seeds as :func:`seed_matrix` gives them (empty seeds are never duplicates).

    Returns
    -------
    ndarray of bool (K,): True for the seeds to drop.
    """
    A = scipy.sparse.csc_matrix(A)
    nnz = np.diff(A.indptr)
    dup = np.zeros(A.shape[1], dtype=bool)
    B = (A > 0).astype(np.float64).tocsc()
    inter = (B.T @ B).tocoo()
    for i, j, v in sorted(zip(inter.row, inter.col, inter.data, strict=False)):
        if i < j and not dup[i] and not dup[j]:
            iou = v / (nnz[i] + nnz[j] - v)
            if iou >= DUPLICATE_IOU:
                dup[j] = True
                logger.warning("seed %d duplicates seed %d (IoU %.2f): dropped", j, i, iou)
    return dup


def take_seeds(init, keep: np.ndarray):
    """The seeds ``init`` at indices ``keep`` (bool or int), in the same form: an Initialization (its Ain, masks,
    scores and centers), masks (K, rows, cols) or Ain (pixels, K) dense or sparse."""
    idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
    if hasattr(init, "Ain") and hasattr(init, "_replace"):  # Initialization (a NamedTuple)
        fields = {name: getattr(init, name)[idx] for name in ("masks", "scores", "centers")
                  if getattr(init, name, None) is not None}
        return init._replace(Ain=take_seeds(init.Ain, idx), **fields)
    if hasattr(init, "Ain"):
        init = init.Ain
    if scipy.sparse.issparse(init):
        return scipy.sparse.csc_matrix(init)[:, idx]
    arr = np.asarray(init)
    return arr[idx] if arr.ndim == 3 else arr[:, idx]


def seeds_to_A(init, dims: tuple[int, int]) -> scipy.sparse.csc_matrix:
    """Seeds as a (pixels, K) float64 CSC matrix in Fortran pixel order; empty and duplicate seeds dropped.

    Parameters
    ----------
    init : Initialization (its ``Ain``), bool/float masks (K, rows, cols), or Ain (pixels, K) dense or sparse.
    dims : (rows, cols) of the movie.
    """
    A = seed_matrix(init, dims)
    K = A.shape[1]
    nnz = np.diff(A.indptr)
    empty = np.where(nnz == 0)[0]
    if empty.size:
        logger.warning("dropping %d empty seed(s) (all-zero columns): %s", empty.size, empty.tolist()[:20])
    keep = (nnz > 0) & ~duplicate_seeds(A)
    if not keep.all():
        A = A[:, np.where(keep)[0]]
    logger.info("%d seeds kept of %d", A.shape[1], K)
    return scipy.sparse.csc_matrix(A)


def remap_message(n_seeds: int, n_components: int, n_merged: int) -> str | None:
    """The warning that component k is no longer seed k (None when it still is), worded for the command line and
    for Python alike.

    Parameters
    ----------
    n_seeds : int
        Seeds the fit started from.
    n_components : int
        Components it ended with.
    n_merged : int
        Groups of components merged on the way (the rest of the difference: footprints that emptied).

    Returns
    -------
    str or None
    """
    if n_components == n_seeds and not n_merged:
        return None
    merged = (f"{n_merged} group{'s' if n_merged != 1 else ''} of overlapping seeds merged" if n_merged
              else "no seeds merged")
    return (f"{n_seeds} seeds gave {n_components} component{'s' if n_components != 1 else ''} ({merged}, "
            "seeds whose footprint emptied removed): component k is no longer seed k. A run's masks.npz keeps both "
            "(detected_masks: the seeds, all_masks: the components); in Python, "
            "cellfie_caiman.cnmf.seed_index(A, masks) maps each component to its seed")
