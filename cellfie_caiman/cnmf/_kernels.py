"""Numba kernels on a fixed sparsity pattern (the candidate pixels of each component).

A pattern is CSC-like: ``indptr`` (K+1,), ``indices`` (nnz,) pixel of each entry, sorted within a column. Values live
in flat arrays aligned with ``indices``. ``row_ptr``/``row_entries``/``row_comp`` give the same entries by pixel.
"""
from __future__ import annotations

import numba
import numpy as np

from .._jit import njit


@njit()
def pattern_rows(indptr, indices, n_pixels):
    """Row view of a pattern: (row_ptr (pixels+1,), row_entries (nnz,), row_comp (nnz,))."""
    K = indptr.shape[0] - 1
    nnz = indices.shape[0]
    counts = np.zeros(n_pixels + 1, np.int64)
    for e in range(nnz):
        counts[indices[e] + 1] += 1
    row_ptr = np.cumsum(counts)
    fill = row_ptr[:-1].copy()
    row_entries = np.empty(nnz, np.int64)
    row_comp = np.empty(nnz, np.int64)
    for k in range(K):
        for e in range(indptr[k], indptr[k + 1]):
            p = indices[e]
            row_entries[fill[p]] = e
            row_comp[fill[p]] = k
            fill[p] += 1
    return row_ptr, row_entries, row_comp


@njit()
def hals_shapes(a, U, V, bcf, penalty, indptr, indices, row_ptr, row_entries, row_comp, n_sweeps):
    """Non-negative HALS sweeps over the footprints, restricted to the pattern.

    Minimises 1/2 ||Y - A C - b f||^2 + sum_ik penalty[e] a_ik over a >= 0 on the pattern, given
    U[e] = (Y C^T)[i, k], V = C C^T (K, K), bcf[e] = (b (C f^T)^T)[i, k].
    """
    K = indptr.shape[0] - 1
    for _ in range(n_sweeps):
        for k in range(K):
            vkk = V[k, k]
            if vkk <= 0.0:
                continue
            for e in range(indptr[k], indptr[k + 1]):
                p = indices[e]
                s = 0.0
                for r in range(row_ptr[p], row_ptr[p + 1]):
                    s += V[row_comp[r], k] * a[row_entries[r]]
                v = a[e] + (U[e] - s - bcf[e] - penalty[e]) / vkk
                a[e] = v if v > 0.0 else 0.0
    return a


@njit(parallel=True)
def entries_dot(Y, Wt, comp, pix, out):
    """out[e] += sum_t Y[t, pix[e]] * Wt[t, comp[e]] (float64 accumulation).

    Y : (n, pixels) float32 frames (time-major, as read); Wt : (n, K) float64; comp, pix : (nnz,) int64.
    """
    nnz = pix.shape[0]
    n = Y.shape[0]
    n_blocks = min(nnz, 64)
    for blk in numba.prange(n_blocks):
        lo = blk * nnz // n_blocks
        hi = (blk + 1) * nnz // n_blocks
        for t in range(n):
            for e in range(lo, hi):
                out[e] += Y[t, pix[e]] * Wt[t, comp[e]]


@njit(parallel=True)
def sparse_project(Y, comp, pix, vals, K):
    """(n, K) array of sum_e vals[e] * Y[t, pix[e]] over the entries of each component (i.e. Y A for sparse A)."""
    n = Y.shape[0]
    out = np.zeros((n, K))
    for t in numba.prange(n):
        for e in range(pix.shape[0]):
            out[t, comp[e]] += vals[e] * Y[t, pix[e]]
    return out


@njit(parallel=True)
def entries_dot_pm(Y, W, comp, pix, out):
    """out[e] += sum_t Y[pix[e], t] * W[comp[e], t] for pixel-major Y (pixels, n) float32, W (K, n) float64."""
    nnz = pix.shape[0]
    n = Y.shape[1]
    n_blocks = min(nnz, 64)
    for blk in numba.prange(n_blocks):
        for e in range(blk * nnz // n_blocks, (blk + 1) * nnz // n_blocks):
            p = pix[e]
            k = comp[e]
            s = 0.0
            for t in range(n):
                s += Y[p, t] * W[k, t]
            out[e] += s
