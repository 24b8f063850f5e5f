"""Catch seeds (``Ain``) flattened in C (row-major) order instead of CaImAn's Fortran (column-major) order.

The pixel count is the same either way, so no shape check sees the mistake: on a non-square field each seed becomes
scattered pieces (an error here), on a square one the transposed seed (a warning when the movie says so: most seeds
are more coherent over time read in C order).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.ndimage
import scipy.sparse

from .patterns import _SQUARE, _crop
from .seeds import seed_matrix

#: seeds examined by the pixel-order checks (the first ones with at least 4 pixels)
ORDER_CHECK_SEEDS = 200
#: frames read by :func:`pixel_order_evidence`: ``ORDER_CHECK_BLOCKS`` runs of ``ORDER_CHECK_RUN`` frames
ORDER_CHECK_BLOCKS, ORDER_CHECK_RUN = 10, 30
#: the warning of :func:`check_pixel_order`: this fraction of the checked seeds more coherent read in C order, and
#: their median coherence this many times the median as given (measured: correct Ain of simulated and neurofinder
#: seeds gave at most 0.375 and 0.77; C-ordered Ain at least 0.6 and 1.38)
ORDER_WARN_FRACTION, ORDER_WARN_RATIO = 0.6, 1.25
#: fewest seeds of 4+ pixels for the coherence comparison (fewer: no warning)
ORDER_WARN_MIN_SEEDS = 5
C_ORDER_HINT = ("flatten each mask in Fortran (column-major) order, as CaImAn does: "
                "Ain = masks.transpose(0, 2, 1).reshape(K, -1).T (i.e. mask.ravel(order='F') per column), or pass "
                "the bool masks (K, rows, cols) themselves")


def as_c_order(A: scipy.sparse.csc_matrix, dims: tuple[int, int]) -> scipy.sparse.csc_matrix:
    """The seeds re-read as if each column had been flattened in C (row-major) order: row q = r * cols + c moved to
    the Fortran-order pixel r + c * rows.

    Parameters
    ----------
    A : (rows*cols, K) sparse
        Seeds as given (Fortran order expected).
    dims : (rows, cols)

    Returns
    -------
    scipy.sparse.csc_matrix (rows*cols, K)
    """
    rows, cols = dims
    A = scipy.sparse.csc_matrix(A)
    r, c = np.divmod(A.indices.astype(np.int64), cols)
    out = scipy.sparse.csc_matrix((A.data, r + c * rows, A.indptr), shape=A.shape)
    out.sort_indices()
    return out


def _order_check_columns(A: scipy.sparse.csc_matrix) -> np.ndarray:
    """Indices of the (at most ``ORDER_CHECK_SEEDS``) first columns with at least 4 pixels."""
    return np.flatnonzero(np.diff(A.indptr) >= 4)[:ORDER_CHECK_SEEDS]


def fragments(A: scipy.sparse.csc_matrix, dims: tuple[int, int], cols_idx: np.ndarray) -> np.ndarray:
    """Number of 8-connected pieces of the support of each column ``cols_idx`` of A (Fortran pixel order).

    Returns
    -------
    ndarray of int (len(cols_idx),)
    """
    out = np.zeros(len(cols_idx), dtype=np.int64)
    for n, k in enumerate(cols_idx):
        pix = A.indices[A.indptr[k]:A.indptr[k + 1]]
        i, j, r0, r1, c0, c1 = _crop(pix, dims, 0)
        img = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        img[i - r0, j - c0] = True
        out[n] = scipy.ndimage.label(img, _SQUARE)[1]
    return out


def looks_c_ordered(A: scipy.sparse.csc_matrix, dims: tuple[int, int]) -> bool:
    """True when Ain's columns are compact blobs read in C order but scattered pieces in Fortran order (a mask
    flattened with ``ravel()`` instead of ``ravel(order='F')``): at least 3 seeds of 4+ pixels, at most 1.5 pieces
    per seed when read in C order and at least twice as many when read in Fortran order. Never True on a square
    field (there C order is the transpose, as compact): see :func:`pixel_order_evidence`.
    """
    A = scipy.sparse.csc_matrix(A)
    idx = _order_check_columns(A)
    if dims[0] == dims[1] or idx.size < 3:
        return False
    given = fragments(A, dims, idx).sum()
    other = fragments(as_c_order(A, dims), dims, idx).sum()
    return bool(other <= 1.5 * idx.size and given >= 2 * other)


def seed_coherence(Y: np.ndarray, A: scipy.sparse.csc_matrix) -> np.ndarray:
    """Mean pairwise correlation over time of the pixels of each seed, after the mean trace of all the pixels
    given (a background proxy) is projected out of every pixel.

    Parameters
    ----------
    Y : ndarray (T, n)
        Traces of n pixels.
    A : (n, K) sparse
        Seeds over those n pixels (support only is used).

    Returns
    -------
    ndarray (K,), NaN for seeds of fewer than 2 pixels.
    """
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y - Y.mean(0)
    g = Y.mean(1)
    ng = np.linalg.norm(g)
    if ng > 0:
        g /= ng
        Y = Y - np.outer(g, g @ Y)
    sd = Y.std(0)
    Z = Y / np.where(sd > 0, sd, np.inf)
    B = (scipy.sparse.csc_matrix(A) != 0).astype(np.float64)
    n = np.asarray(B.sum(0)).ravel()
    sums = np.asarray(B.T @ Z.T).T  # (T, K): the summed standardised traces of each seed
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, (np.sum(sums**2, 0) / Y.shape[0] - n) / (n * (n - 1)), np.nan)


def pixel_order_evidence(movie, A: scipy.sparse.csc_matrix, dims: tuple[int, int]) -> tuple[float, float]:
    """How much more coherent the seeds are over time when read in C order than as given (Fortran order).

    Reads ``ORDER_CHECK_BLOCKS`` runs of ``ORDER_CHECK_RUN`` frames spread over the movie, keeping only the pixels
    of the checked seeds in either reading, and compares :func:`seed_coherence` of the two readings.

    Parameters
    ----------
    movie : a ``cellfie_caiman.io.Movie`` (``read(start, stop)``, ``shape``)
    A : (rows*cols, K) sparse, the seeds as given.
    dims : (rows, cols)

    Returns
    -------
    (fraction, ratio) : the fraction of checked seeds more coherent in C order, and the median coherence in C
        order over the median as given (0, 0 when fewer than 3 seeds of 4+ pixels can be checked).
    """
    A = scipy.sparse.csc_matrix(A)
    idx = _order_check_columns(A)
    if idx.size < 3:
        return 0.0, 0.0
    given, other = A[:, idx], as_c_order(A, dims)[:, idx]
    pix = np.union1d(given.indices, other.indices)  # Fortran order
    T = int(movie.shape[0])
    if T <= ORDER_CHECK_BLOCKS * ORDER_CHECK_RUN:  # every frame, once
        starts = np.arange(0, T, ORDER_CHECK_RUN)
    else:
        starts = np.linspace(0, T - ORDER_CHECK_RUN, ORDER_CHECK_BLOCKS).astype(np.int64)
    rows = dims[0]
    pix_c = (pix % rows) * dims[1] + pix // rows
    Y = np.concatenate([movie.read(int(s), int(s) + ORDER_CHECK_RUN).reshape(-1, rows * dims[1])[:, pix_c]
                        for s in starts])
    local = np.searchsorted(pix, np.arange(rows * dims[1]))  # Fortran pixel -> column of Y (where present)
    def restrict(M):
        return scipy.sparse.csc_matrix((np.ones(M.nnz), local[M.indices], M.indptr), shape=(pix.size, M.shape[1]))
    coh_given = seed_coherence(Y, restrict(given))
    coh_other = seed_coherence(Y, restrict(other))
    ok = np.isfinite(coh_given) & np.isfinite(coh_other)
    if ok.sum() < ORDER_WARN_MIN_SEEDS:
        return 0.0, 0.0
    fraction = float(np.mean(coh_other[ok] > coh_given[ok]))
    med_given = float(np.median(coh_given[ok]))
    ratio = float(np.median(coh_other[ok]) / med_given) if med_given > 0 else float("inf")
    return fraction, ratio


def check_pixel_order(movie, init, dims: tuple[int, int]) -> None:
    """Catch Ain flattened in C order instead of Fortran order (``init`` given as Ain; masks and Initializations
    carry their own pixel order and are not checked).

    Raises
    ------
    ValueError
        On a non-square field, when the seeds are compact only in C order (:func:`looks_c_ordered`).

    Warns
    -----
    UserWarning
        When most seeds (``ORDER_WARN_FRACTION``) are more coherent over time read in C order, and their median
        coherence is ``ORDER_WARN_RATIO`` times higher (:func:`pixel_order_evidence`): on a square field, where C
        order is the transposed footprint, the shape cannot tell.
    """
    if hasattr(init, "Ain") or not (scipy.sparse.issparse(init) or np.ndim(init) == 2):
        return
    A = seed_matrix(init, dims)
    if looks_c_ordered(A, dims):
        raise ValueError("the seeds (Ain) look flattened in C (row-major) order: each column is scattered pieces "
                         "when read in CaImAn's Fortran (column-major) pixel order, a compact blob in C order; "
                         + C_ORDER_HINT)
    from ..io import load_movie

    fraction, ratio = pixel_order_evidence(load_movie(movie), A, dims)
    if fraction >= ORDER_WARN_FRACTION and ratio >= ORDER_WARN_RATIO:
        msg = (f"the seeds (Ain) may be flattened in C (row-major) order: {100 * fraction:.0f}% of them are more "
               f"coherent over time read that way (median {ratio:.1f}x) than in CaImAn's Fortran (column-major) "
               f"order, which refine assumes; if so, {C_ORDER_HINT}")
        warnings.warn(msg, UserWarning, stacklevel=3)
