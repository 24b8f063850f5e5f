"""Footprint patterns on the pixel grid: each component's candidate pixels and CaImAn's footprint post-processing.

The spatial update's search region (reference section 4.1 step 1 of ``shared/reference/caiman-interop.md``): a
seed's support in the first update, the radius-2 diamond dilation of the support after that; and
:func:`threshold_footprint`, CaImAn's ``threshold_components`` (section 4.1 step 6: median filter, energy threshold,
closing, largest connected component). Pixels are Fortran-order indices (i + j * rows).
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.sparse

_DIAMOND = scipy.ndimage.iterate_structure(scipy.ndimage.generate_binary_structure(2, 1), 2)
_SQUARE = np.ones((3, 3), dtype=bool)


def _crop(pix: np.ndarray, dims: tuple[int, int], margin: int):
    rows, cols = dims
    i, j = pix % rows, pix // rows
    r0, r1 = max(int(i.min()) - margin, 0), min(int(i.max()) + margin + 1, rows)
    c0, c1 = max(int(j.min()) - margin, 0), min(int(j.max()) + margin + 1, cols)
    return i, j, r0, r1, c0, c1


def _to_pix(ii: np.ndarray, jj: np.ndarray, r0: int, c0: int, rows: int) -> np.ndarray:
    return (ii + r0) + (jj + c0) * rows


def dilated_pattern(A: scipy.sparse.csc_matrix, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pixels of each component: its support dilated by a radius-2 diamond. Returns (indptr, indices)."""
    K = A.shape[1]
    cols_idx = []
    for k in range(K):
        pix = A.indices[A.indptr[k]:A.indptr[k + 1]]
        if pix.size == 0:
            cols_idx.append(np.zeros(0, np.int64))
            continue
        i, j, r0, r1, c0, c1 = _crop(pix, dims, 3)
        img = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        img[i - r0, j - c0] = True
        ii, jj = np.nonzero(scipy.ndimage.binary_dilation(img, _DIAMOND))
        cols_idx.append(np.sort(_to_pix(ii, jj, r0, c0, dims[0])).astype(np.int64))
    indptr = np.zeros(K + 1, np.int64)
    indptr[1:] = np.cumsum([c.size for c in cols_idx])
    indices = np.concatenate(cols_idx) if K else np.zeros(0, np.int64)
    return indptr, indices


def support_pattern(A: scipy.sparse.csc_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pixels of each component: its support (the nonzero pixels), sorted. Returns (indptr, indices)."""
    A = scipy.sparse.csc_matrix(A, copy=True)
    A.eliminate_zeros()
    A.sort_indices()
    return A.indptr.astype(np.int64), A.indices.astype(np.int64)


def _values_on_pattern(A: scipy.sparse.csc_matrix, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    out = np.zeros(indices.size)
    for k in range(A.shape[1]):
        lo, hi = A.indptr[k], A.indptr[k + 1]
        pos = np.searchsorted(indices[indptr[k]:indptr[k + 1]], A.indices[lo:hi])
        out[indptr[k] + pos] = A.data[lo:hi]
    return out


def threshold_footprint(pix: np.ndarray, vals: np.ndarray, dims: tuple[int, int], nrgthr: float = 0.9999,
                        medw: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """CaImAn's footprint post-processing: median filter (medw x medw), energy threshold, 3x3 closing, largest
    connected component (by energy).

    Returns the kept pixels and their (median-filtered) values.
    """
    pos = vals > 0
    pix, vals = pix[pos], vals[pos]
    if pix.size == 0:
        return pix, vals
    i, j, r0, r1, c0, c1 = _crop(pix, dims, 2)
    img = np.zeros((r1 - r0, c1 - c0))
    img[i - r0, j - c0] = vals
    med = scipy.ndimage.median_filter(img, size=medw, mode="reflect") if medw > 1 else img
    flat = med.ravel()
    total = np.sum(flat**2)
    if total <= 0:
        return pix[:0], vals[:0]
    order = np.argsort(flat)[::-1]
    before = np.concatenate([[0.0], np.cumsum(flat[order] ** 2)[:-1]]) / total
    bw = np.zeros(flat.size, dtype=bool)
    bw[order[before < nrgthr]] = True
    bw &= flat > 0
    bw = scipy.ndimage.binary_closing(bw.reshape(med.shape), _SQUARE)
    labels, n = scipy.ndimage.label(bw, _SQUARE)
    if n == 0:
        return pix[:0], vals[:0]
    if n > 1:
        energy = scipy.ndimage.sum(med**2, labels, index=np.arange(1, n + 1))
        bw = labels == (int(np.argmax(energy)) + 1)
    ii, jj = np.nonzero(bw & (med > 0))
    out_pix = _to_pix(ii, jj, r0, c0, dims[0])
    order = np.argsort(out_pix)
    return out_pix[order], med[ii, jj][order]
