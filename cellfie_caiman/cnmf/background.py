"""The background's start: the pixels it is estimated from and the NMF of their traces (nb > 1).

CaImAn's seeded path (reference section 3, "Where the seeded path gets its starting C, b and f", of
``shared/reference/caiman-interop.md``) takes f as the mean of the pixels in no seed (nb = 1) or an NMF of
max(Y, 0) over them (nb > 1). Here the pixels are those beyond every seed's reach (:func:`background_pixels`),
pooled into square cells when too many (:func:`background_pooling`), and the NMF is a HALS run to convergence
(:func:`_nmf_background`; :func:`_hals_rows` is also the spatial update's background step).
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.ndimage
import scipy.sparse

from .patterns import _DIAMOND

logger = logging.getLogger(__name__)


def background_pixels(A: scipy.sparse.csc_matrix, dims: tuple[int, int], nb: int, min_pixels: int = 256
                      ) -> np.ndarray:
    """The pixels the starting background is estimated from: those beyond the radius-2 dilation of every seed.

    CaImAn takes every pixel in no seed. But a neuron's footprint reaches beyond its seed (a mask outlines the
    bright part of a soma), and a refined footprint may grow into that dilation: its pixels carry the neuron's
    activity. The NMF of an nb > 1 background, fitted to convergence, then takes an active neuron's calcium as a
    background trace (one neuron at 2 Hz alone in its field: corr(C, calcium) 0.89 instead of 0.99).

    Parameters
    ----------
    A : (pixels, K) sparse, the seeds (Fortran pixel order).
    dims : (rows, cols) of the movie.
    nb : int
        Number of background components.
    min_pixels : int
        Fewest pixels beyond the seeds' dilation to use them; with fewer, the pixels in no seed are used (as CaImAn),
        and with fewer than max(nb, 10) of those, all pixels (with a warning).

    Returns
    -------
    ndarray of bool (pixels,), Fortran order.
    """
    outside = np.asarray((A > 0).sum(1)).ravel() == 0
    far = ~scipy.ndimage.binary_dilation(~outside.reshape(dims, order="F"), _DIAMOND).ravel(order="F")
    if far.sum() >= max(min_pixels, nb):
        return far
    if outside.sum() < max(nb, 10):
        logger.warning("almost no pixel is outside the seeds: the background is estimated from all pixels")
        outside[:] = True
    return outside


def background_pooling(out_idx: np.ndarray, dims: tuple[int, int], max_rows: int) -> scipy.sparse.csr_matrix | None:
    """How the background NMF sees the background pixels: each pixel (None), as CaImAn does, when there are at most
    ``max_rows`` of them; otherwise their sums over square cells of the field, each divided by the square root of
    its number of pixels.

    A sum keeps the signal of every pixel (a random sample of pixels misses small active structures such as
    dendrite cross-sections, and the background traces then follow noise); the square root keeps each cell's
    weight in the fit that of its pixels when its background is uniform. A non-negative low-rank background keeps
    its temporal components under any such pooling.

    Parameters
    ----------
    out_idx : ndarray of int (n,)
        The background pixels (:func:`background_pixels`), Fortran order (i + j * rows).
    dims : (rows, cols) of the movie.
    max_rows : int
        Most rows the NMF may hold (at least 256 are allowed).

    Returns
    -------
    None, or a (cells, n) float32 CSR matrix.
    """
    max_rows = max(int(max_rows), 256)
    if out_idx.size <= max_rows:
        return None
    rows, cols = dims
    i, j = out_idx % rows, out_idx // rows
    side = int(np.ceil(np.sqrt(out_idx.size / max_rows)))
    while True:
        cell = (i // side) * (-(-cols // side)) + j // side
        _, label, count = np.unique(cell, return_inverse=True, return_counts=True)
        if count.size <= max_rows:
            break
        side += 1
    logger.info("background start: %d background pixels pooled into %d cells of %d x %d", out_idx.size,
                count.size, side, side)
    weight = (1.0 / np.sqrt(count[label])).astype(np.float32)
    return scipy.sparse.csr_matrix((weight, (label, np.arange(out_idx.size))), shape=(count.size, out_idx.size))


def _nmf_start(X: np.ndarray, nb: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(W (pixels, nb), H (nb, T)) to start an NMF of X from: positive parts of the leading right singular vectors
    (zeros replaced by the mean) as H, W = max(X Hᵀ, 0)."""
    k = max(1, min(nb, min(X.shape)))
    # leading right singular vectors by a seeded randomized range finder (2 power iterations)
    rng = np.random.RandomState(seed)
    Q = np.linalg.qr(X @ rng.standard_normal((X.shape[1], min(k + 5, X.shape[1]))))[0]
    for _ in range(2):
        Q = np.linalg.qr(X @ (X.T @ Q))[0]
    Vt = np.linalg.svd(Q.T @ X, full_matrices=False)[2][:k]
    H = np.zeros((nb, X.shape[1]))
    for m in range(k):
        v = Vt[m] if Vt[m].sum() >= 0 else -Vt[m]
        H[m] = np.maximum(v, 0)
    H[k:] = np.linspace(0.5, 1.5, X.shape[1])
    H[H == 0] = H[H > 0].mean() if np.any(H > 0) else 1.0
    W = np.maximum(X @ H.T.astype(np.float32), 0).astype(np.float64)
    return W, H


def _hals_rows(H: np.ndarray, XtW: np.ndarray, WtW: np.ndarray, sweeps: int) -> None:
    """``sweeps`` non-negative HALS sweeps, in place, over the rows of H (r, n) in a fit X ~ W H, given
    XtW = (Wᵀ X)ᵀ (n, r) and WtW = Wᵀ W (r, r). For the columns of W, pass Wᵀ, X Hᵀ and H Hᵀ."""
    for _ in range(sweeps):
        for m in range(H.shape[0]):
            if WtW[m, m] > 0:
                H[m] = np.maximum(H[m] + (XtW[:, m] - H.T @ WtW[:, m]) / WtW[m, m], 0)


def _nmf_background(X: np.ndarray, nb: int, seed: int, max_iter: int = 300, tol: float = 1e-9,
                    sweeps: int = 10) -> np.ndarray:
    """nb non-negative temporal components f (nb, T) of a non-negative (pixels, T) matrix X ~ W f.

    HALS from :func:`_nmf_start`: each iteration computes Wᵀ X and X fᵀ once and makes ``sweeps`` sweeps over f,
    then over W, with them; it stops when an iteration lowers ||X - W f||² by less than ``tol`` ||X||² (or after
    ``max_iter``). The fit must be run to convergence: a background that fluctuates far less than its mean (the
    usual case) leaves the start's two nearly equal rows only after tens of iterations, and before that f follows
    noise rather than the background's activity.
    """
    X = np.asarray(X, dtype=np.float32)  # the products below are the cost; the updates are in float64
    if not np.any(X > 0):
        return np.zeros((nb, X.shape[1]))
    W, H = _nmf_start(X, nb, seed)
    xx = float(np.sum(X.astype(np.float64) ** 2))
    previous = np.inf
    for _ in range(max_iter):
        _hals_rows(H, (W.T.astype(np.float32) @ X).T, W.T @ W, sweeps)
        XHt, HHt = X @ H.T.astype(np.float32), H @ H.T
        _hals_rows(W.T, XHt, HHt, sweeps)  # the columns of W are the rows of its transpose (a view)
        misfit = xx - 2 * float(np.sum(W * XHt)) + float(np.sum((W.T @ W) * HHt))
        if previous - misfit <= tol * xx:
            break
        previous = misfit
    # order by energy (of W f), and never return an all-zero row (it would make f fᵀ singular)
    energy = np.linalg.norm(W, axis=0) * np.linalg.norm(H, axis=1)
    H = H[np.argsort(-energy)]
    for m in range(nb):
        if not np.any(H[m]):
            H[m] = X.mean(axis=0) if m == 0 else np.linspace(0.5, 1.5, X.shape[1])
    return H
