"""Builtin seeded CNMF (CaImAn's model and update rules, reference sections 3 and 4), streamed over frame chunks.

Model: Y (pixels x T) ~ A C + b f + noise, A >= 0 sparse (one column per seed), C >= 0, b >= 0.

1. Per-pixel noise sn (PSD definition, at most 3072 frames).
2. Start from the seeds: f = background of the pixels beyond the seeds' reach (mean, or an NMF run to convergence
   for nb > 1); C = mean over each seed after subtracting the background; b from a least-squares fit.
3. ``n_iter`` rounds of: spatial update (non-negative HALS of each footprint within its seed in the first round,
   as CaImAn does with boolean seeds, on the radius-2 dilation of its support after that, fitted to each pixel's
   fluctuations (CaImAn's intercept) with CaImAn's per-pixel L1 weight, then median filter, energy threshold,
   closing and largest connected component; background by HALS), temporal update (block coordinate descent over
   groups of non-overlapping components; p = 0 (clipping) on all rounds but the last, OASIS deconvolution on the
   last), and, after the first round, merging of overlapping components whose traces correlate above ``merge_thr``.
4. Component evaluation (SNR_comp, r_values).

Only Aᵀ Y, Y Cᵀ (on the candidate pixels of each component) and Y fᵀ are computed from the movie, chunk by chunk;
memory is a few chunks plus the factors.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph
from tqdm.auto import tqdm

from ..masks import sparse_rows
from ._data import MovieData
from ._kernels import entries_dot, entries_dot_pm, hals_shapes, pattern_rows, sparse_project
from .estimates import Estimates
from .oasis import deconvolve
from .quality import accept, select_frames, snr_comp, space_correlation

logger = logging.getLogger(__name__)

#: seeds whose supports overlap with at least this intersection-over-union are duplicates
DUPLICATE_IOU = 0.95
#: bytes (float32) of the background pixels that the background NMF holds (nb > 1): beyond it, they are pooled
#: into square cells of the field (:func:`background_pooling`)
BACKGROUND_NMF_BYTES = 64 * 2**20
_DIAMOND = scipy.ndimage.iterate_structure(scipy.ndimage.generate_binary_structure(2, 1), 2)
_SQUARE = np.ones((3, 3), dtype=bool)


@dataclass
class Settings:
    """Values the builtin CNMF uses (from the ``data``, ``refine`` and ``quality`` parameter groups)."""

    p: int = 1
    nb: int = 2
    merge_thr: float = 0.85
    n_iter: int = 2
    chunk_frames: int | None = 1000
    fr: float = 30.0
    decay_time: float = 0.4
    min_SNR: float = 2.5
    SNR_lowest: float = 0.5
    rval_thr: float = 0.8
    rval_lowest: float = -1.0
    hals_rounds: int = 8
    temporal_sweeps: int = 2
    max_merge: int = 50
    nrgthr: float = 0.9999
    medw: int = 3
    lasso_weight: float = 0.5


# ---------------------------------------------------------------------------------------------------------- seeds
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


# ----------------------------------------------------------------------------------------------------- patterns
def _entries(A: scipy.sparse.csc_matrix, f2c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(component, C-order pixel, value) of each stored entry of a CSC matrix with Fortran-order rows."""
    A = scipy.sparse.csc_matrix(A)
    comp = np.repeat(np.arange(A.shape[1], dtype=np.int64), np.diff(A.indptr))
    return comp, f2c[A.indices].astype(np.int64), A.data.astype(np.float64)


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


def _chunks(data: MovieData, chunk_frames: int | None, desc: str, progress: bool):
    """``data.chunks(chunk_frames)`` behind a progress bar that counts the chunks of one pass over the movie
    (``ceil(T / frames per chunk)`` of them)."""
    total = -(-data.n_frames // data.chunk_length(chunk_frames))
    return tqdm(data.chunks(chunk_frames), desc=desc, total=total, unit="chunk", disable=not progress, leave=False)


# ----------------------------------------------------------------------------------------------- initialisation
def initial_traces(data: MovieData, A: scipy.sparse.csc_matrix, nb: int, chunk_frames, progress: bool = False,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Starting C (K, T) and f (nb, T) from the seeds (CaImAn's seeded path, reference section 3).

    f is the mean of the background pixels (nb = 1) or an NMF of max(Y, 0) over all of them (nb > 1; beyond
    ``BACKGROUND_NMF_BYTES`` of them, see :func:`background_pooling`), the background pixels being those that no
    footprint can reach (:func:`background_pixels`); C = max(Wᵀ Y − Wᵀ b f, 0) with W = A / ||a||² (the mean
    over a binary seed) and Wᵀ b from the least-squares background b = Y fᵀ (f fᵀ)⁻¹.
    """
    K = A.shape[1]
    T = data.n_frames
    norms2 = np.asarray(A.multiply(A).sum(0)).ravel()
    W = scipy.sparse.csc_matrix(A @ scipy.sparse.diags(1.0 / np.maximum(norms2, 1e-300)))
    f2c = data.f2c
    w_comp, w_pix, w_val = _entries(W, f2c)
    out_idx = np.flatnonzero(background_pixels(A, data.dims, nb))
    pool = background_pooling(out_idx, data.dims, BACKGROUND_NMF_BYTES // (4 * T)) if nb > 1 else None
    WY = np.zeros((K, T))
    n_rows = out_idx.size if pool is None else pool.shape[0]
    Yout = np.zeros((n_rows, T), dtype=np.float32) if nb > 1 else None
    fmean = np.zeros(T)
    out_c = f2c[out_idx]
    Wt = scipy.sparse.csr_matrix(W.T, dtype=np.float32)
    for t0, Y in _chunks(data, chunk_frames, "init", progress):
        if data.pixel_major:
            n = Y.shape[1]
            if K:
                WY[:, t0:t0 + n] = Wt @ Y
            Yo = Y[out_idx]
        else:
            n = Y.shape[0]
            if K:
                WY[:, t0:t0 + n] = sparse_project(Y, w_comp, w_pix, w_val, K).T
            Yo = Y[:, out_c].T
        if nb > 1:
            Yo = np.maximum(Yo, 0)
            Yout[:, t0:t0 + n] = Yo if pool is None else pool @ Yo
        else:
            fmean[t0:t0 + n] = Yo.mean(axis=0, dtype=np.float64)
    if nb == 0:
        f = np.zeros((0, T))
    elif nb == 1:
        f = fmean[None, :]
    else:
        f = _nmf_background(Yout, nb, seed)
    if nb and K:
        F = f @ f.T
        Wb = np.linalg.lstsq(F, (WY @ f.T).T, rcond=None)[0].T  # K x nb
        C = np.maximum(WY - Wb @ f, 0)
    else:
        C = np.maximum(WY, 0)
    return C, f


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


# ------------------------------------------------------------------------------------------------------ spatial
def _spatial_products(data: MovieData, Cc: np.ndarray, fc: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                      s: Settings, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The movie's products the spatial update needs, in one pass: (Y Ccᵀ on the pattern's entries (nnz,),
    Y fcᵀ (pixels, nb), Σ_t Y (pixels,)), pixels in Fortran order; Cc and fc are the traces less their means."""
    d, K, nb = data.n_pixels, Cc.shape[0], fc.shape[0]
    U = np.zeros(indices.size)
    Yf = np.zeros((d, nb))
    ysum = np.zeros(d)
    f32 = fc.astype(np.float32)
    comp_of_entry = np.repeat(np.arange(K), np.diff(indptr))
    pix_c = data.f2c[indices]
    for t0, Y in _chunks(data, s.chunk_frames, "spatial", progress):
        if data.pixel_major:  # Fortran-order pixels in this layout
            n = Y.shape[1]
            if K:
                entries_dot_pm(Y, np.ascontiguousarray(Cc[:, t0:t0 + n], dtype=np.float64), comp_of_entry,
                               indices, U)
            if nb:
                Yf += Y @ f32[:, t0:t0 + n].T
            ysum += Y.sum(axis=1, dtype=np.float64)
            continue
        n = Y.shape[0]
        if K:
            entries_dot(Y, np.ascontiguousarray(Cc[:, t0:t0 + n].T, dtype=np.float64), comp_of_entry, pix_c, U)
        if nb:
            Yf += Y.T @ f32[:, t0:t0 + n].T
        ysum += Y.sum(axis=0, dtype=np.float64)
    if not data.pixel_major:
        Yf, ysum = Yf[data.f2c], ysum[data.f2c]
    return U, Yf, ysum


def _background_hals(b: np.ndarray, Rf: np.ndarray, F: np.ndarray, penalty: np.ndarray | float = 0.0,
                     sweeps: int = 1) -> np.ndarray:
    """Non-negative HALS sweeps, in place, over the columns of b (pixels, nb) in a fit of Y fᵀ − A C fᵀ = ``Rf`` by
    b f fᵀ (``F`` = f fᵀ), with an L1 weight ``penalty`` (pixels, nb) per unit of b."""
    _hals_rows(b.T, Rf - penalty, F, sweeps)  # the columns of b are the rows of its transpose (a view)
    return b


def spatial_update(data: MovieData, A: scipy.sparse.csc_matrix, C: np.ndarray, f: np.ndarray, b: np.ndarray | None,
                   sn: np.ndarray, s: Settings, progress: bool = False, dilate: bool = True
                   ) -> tuple[scipy.sparse.csc_matrix, np.ndarray, np.ndarray]:
    """Update footprints and spatial background for fixed traces.

    The footprints are CaImAn's per-pixel non-negative LASSO on the traces and the background traces with an
    intercept (reference section 4.1 step 4): fitted to the fluctuations of each pixel (every product centred in
    time), L1 weights 0.5 sn_i std(c_k) per unit of a_ik and 0.5 sn_i std(f_m) per unit of the background's
    coefficient, solved by HALS. The background coefficients of that fit are dropped, as CaImAn drops them; b is
    then fitted to Y fᵀ − A C fᵀ for the new footprints (step 8), from ``b`` (least squares when None).

    ``dilate``: each footprint may grow into the radius-2 dilation of its support (CaImAn with float footprints);
    False keeps it within its support (CaImAn's first update of boolean seeds, reference section 4.1 step 1).

    Returns (A (pixels, K') csc, b (pixels, nb), kept component indices (K',)).
    """
    dims = data.dims
    d, K, nb = data.n_pixels, A.shape[1], f.shape[0]
    indptr, indices = dilated_pattern(A, dims) if dilate else support_pattern(A)
    comp_of_entry = np.repeat(np.arange(K), np.diff(indptr))
    Cc, fc = C - C.mean(axis=1, keepdims=True), f - f.mean(axis=1, keepdims=True)
    U, Yfc, ysum = _spatial_products(data, Cc, fc, indptr, indices, s, progress)
    V, Cfc, Fc = Cc @ Cc.T, Cc @ fc.T, fc @ fc.T
    row_ptr, row_entries, row_comp = pattern_rows(indptr, indices, d)
    # CaImAn's LASSO weight 0.5 * sn_i in standardised units, i.e. 0.5 * sn_i * std(c_k) per unit of a_ik
    sn64 = sn.astype(np.float64)
    penalty = s.lasso_weight * sn64[indices] * np.std(C, axis=1)[comp_of_entry] if K else np.zeros(0)
    a = _values_on_pattern(A, indptr, indices)
    a[np.diag(V)[comp_of_entry] <= 0] = 0  # a constant trace explains no fluctuation (CaImAn's LASSO gives it 0)
    w = np.maximum(np.linalg.lstsq(Fc, (Yfc - scipy.sparse.csc_matrix((a, indices, indptr), shape=(d, K)) @ Cfc).T,
                                   rcond=None)[0].T, 0) if nb else np.zeros((d, 0))
    for _ in range(s.hals_rounds):
        if K:
            bcf = np.einsum("em,em->e", w[indices], Cfc[comp_of_entry]) if nb else np.zeros(indices.size)
            a = hals_shapes(a, U, V, bcf, penalty, indptr, indices, row_ptr, row_entries, row_comp, 2)
        if nb:
            Rf = Yfc - scipy.sparse.csc_matrix((a, indices, indptr), shape=(d, K)) @ Cfc
            _background_hals(w, Rf, Fc, s.lasso_weight * sn64[:, None] * np.std(f, axis=1)[None, :])
    A_new, kept = _footprints(a, indptr, indices, dims, s, K)
    if not nb:
        return A_new, np.zeros((d, 0)), kept
    Rf = Yfc + np.outer(ysum, f.mean(axis=1)) - A_new @ (C[kept] @ f.T)  # Y fᵀ − A C fᵀ, uncentred
    F = f @ f.T
    b = np.maximum(np.linalg.lstsq(F, Rf.T, rcond=None)[0].T, 0) if b is None or b.shape[1] != nb else b.copy()
    return A_new, _background_hals(b, Rf, F, sweeps=s.hals_rounds), kept


def _footprints(a: np.ndarray, indptr: np.ndarray, indices: np.ndarray, dims: tuple[int, int], s: Settings,
                K: int) -> tuple[scipy.sparse.csc_matrix, np.ndarray]:
    """CaImAn's post-processing of each footprint (:func:`threshold_footprint`); empty ones dropped.

    Returns (A (pixels, K') csc, kept component indices (K',))."""
    d = dims[0] * dims[1]
    cols_pix, cols_val = [], []
    for k in range(K):
        lo, hi = indptr[k], indptr[k + 1]
        pix, val = threshold_footprint(indices[lo:hi], a[lo:hi], dims, s.nrgthr, s.medw)
        cols_pix.append(pix)
        cols_val.append(val)
    keep = np.array([p.size > 0 for p in cols_pix], dtype=bool)
    if K and not keep.all():
        logger.info("spatial update: %d empty footprint(s) removed", int((~keep).sum()))
    kept = np.where(keep)[0]
    new_indptr = np.zeros(kept.size + 1, np.int64)
    new_indptr[1:] = np.cumsum([cols_pix[k].size for k in kept])
    A_new = scipy.sparse.csc_matrix(
        (np.concatenate([cols_val[k] for k in kept]) if kept.size else np.zeros(0),
         np.concatenate([cols_pix[k] for k in kept]) if kept.size else np.zeros(0, np.int64), new_indptr),
        shape=(d, kept.size))
    return A_new, kept


# ----------------------------------------------------------------------------------------------------- temporal
def normalize(A: scipy.sparse.csc_matrix, C: np.ndarray, b: np.ndarray, f: np.ndarray, *rows_scaled: np.ndarray):
    """Unit-norm columns of A and b; C (and any other (K, T) arrays given) and f rescaled to keep A C and b f."""
    nA = np.sqrt(np.asarray(A.multiply(A).sum(0)).ravel())
    nA[nA == 0] = 1.0
    A = scipy.sparse.csc_matrix(A @ scipy.sparse.diags(1.0 / nA))
    C = C * nA[:, None]
    others = [r * nA[:, None] if r is not None else None for r in rows_scaled]
    nB = np.linalg.norm(b, axis=0) if b.size else np.zeros(b.shape[1])
    nB[nB == 0] = 1.0
    return (A, C, b / nB, f * nB[:, None], *others)


def update_order(AA: np.ndarray) -> list[np.ndarray]:
    """Greedy colouring: groups of components whose footprints do not overlap (AA = AᵀA, K x K)."""
    K = AA.shape[0]
    groups: list[list[int]] = []
    members: list[set] = []
    for k in range(K):
        nbrs = set(np.nonzero(AA[k])[0]) - {k}
        for g, mem in zip(groups, members, strict=False):
            if not (nbrs & mem):
                g.append(k)
                mem.add(k)
                break
        else:
            groups.append([k])
            members.append({k})
    return [np.array(g, dtype=np.int64) for g in groups]


@dataclass
class TemporalResult:
    """What :func:`temporal_update` returns, in CaImAn's names: traces ``C``, background traces ``f``, spikes ``S``,
    residuals ``YrA``, baselines ``bl``, initial values ``c1``, noise ``neurons_sn``, AR coefficients ``g`` and the
    sparsity penalties ``lam``."""

    C: np.ndarray
    f: np.ndarray
    S: np.ndarray
    YrA: np.ndarray
    bl: np.ndarray
    c1: np.ndarray
    neurons_sn: np.ndarray
    g: np.ndarray
    lam: np.ndarray


def temporal_update(data: MovieData, A: scipy.sparse.csc_matrix, b: np.ndarray, C: np.ndarray, f: np.ndarray,
                    p: int, s: Settings, progress: bool = False, clip: bool = True) -> TemporalResult:
    """Block coordinate descent on the traces (groups of non-overlapping components), A and b unit-norm.

    ``p`` > 0 deconvolves each trace (OASIS, baseline included in C); ``p`` = 0 takes the residual trace itself,
    clipped at 0 when ``clip`` (CaImAn) or not (used between rounds: a trace whose baseline is below the
    background's estimate keeps its negative part, so the next spatial update can correct the background).
    """
    K, nb, T = A.shape[1], b.shape[1], data.n_frames
    a_comp, a_pix, a_val = _entries(A, data.f2c)
    b_c = np.zeros((data.n_pixels, nb), dtype=np.float32)
    b_c[data.f2c] = b
    At = scipy.sparse.csr_matrix(A.T, dtype=np.float32)
    bt = np.ascontiguousarray(b.T, dtype=np.float32)
    U = np.zeros((K + nb, T))
    for t0, Y in _chunks(data, s.chunk_frames, "temporal", progress):
        if data.pixel_major:
            n = Y.shape[1]
            if K:
                U[:K, t0:t0 + n] = At @ Y
            if nb:
                U[K:, t0:t0 + n] = bt @ Y
            continue
        n = Y.shape[0]
        if K:
            U[:K, t0:t0 + n] = sparse_project(Y, a_comp, a_pix, a_val, K).T
        if nb:
            U[K:, t0:t0 + n] = (Y @ b_c).T
    Abar = scipy.sparse.hstack([A, scipy.sparse.csc_matrix(b)]).tocsc()
    G = (Abar.T @ Abar).toarray()
    diag = np.maximum(np.diag(G), 1e-12)
    Cbar = np.vstack([C, f]).astype(np.float64)
    R = U - G @ Cbar
    del U
    groups = update_order(G[:K, :K] > 0)
    S = np.zeros((K, T))
    bl, c1, sn_k, lam = np.zeros(K), np.zeros(K), np.zeros(K), np.zeros(K)
    g_all = np.zeros((K, max(p, 0)))
    have_g = np.zeros(K, dtype=bool)
    for _sweep in range(s.temporal_sweeps):
        C_old = Cbar[:K].copy()
        for grp in groups:
            Yg = R[grp] / diag[grp, None] + Cbar[grp]
            new = np.empty_like(Yg)
            for r, k in enumerate(grp):
                if p == 0 and not clip:
                    new[r] = Yg[r]
                    S[k] = np.maximum(Yg[r], 0)
                    have_g[k] = True
                    continue
                dec = deconvolve(Yg[r], p, g=g_all[k] if (have_g[k] and p) else None,
                                 sn=sn_k[k] if have_g[k] else None, fr=s.fr, decay_time=s.decay_time)
                new[r] = dec.c + dec.bl
                S[k] = dec.s
                bl[k], c1[k], sn_k[k], lam[k] = dec.bl, dec.c1, dec.sn, dec.lam
                if p:
                    g_all[k] = dec.g[:p]
                have_g[k] = True
            dC = new - Cbar[grp]
            Cbar[grp] = new
            R -= G[:, grp] @ dC
        for m in range(K, K + nb):
            dC = R[m] / diag[m]
            Cbar[m] += dC
            R -= np.outer(G[:, m], dC)
        change = np.linalg.norm(Cbar[:K] - C_old)
        if change <= 1e-3 * np.linalg.norm(Cbar[:K]):
            break
    YrA = R[:K] / diag[:K, None]
    return TemporalResult(Cbar[:K], Cbar[K:], S, YrA, bl, c1, sn_k, g_all, lam)


# ------------------------------------------------------------------------------------------------------ merging
def merge_components(A: scipy.sparse.csc_matrix, C: np.ndarray, YrA: np.ndarray, thr: float, max_merge: int = 50
                     ) -> tuple[scipy.sparse.csc_matrix, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Merge groups of overlapping components whose traces correlate above ``thr`` (rank-1 NMF of each group).

    Returns (A, C, YrA, merged groups as arrays of old indices). Merged components are appended at the end.
    """
    K = A.shape[1]
    if K < 2:
        return A, C, YrA, []
    overlap = (A.T @ A).toarray() > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(C))
    adj = overlap & (corr > thr)
    np.fill_diagonal(adj, False)
    if not adj.any():
        return A, C, YrA, []
    n_groups, labels = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(adj), directed=False)
    groups = [np.where(labels == g)[0] for g in range(n_groups)]
    groups = [g for g in groups if g.size > 1]
    score = [np.sum(np.triu(corr[np.ix_(g, g)] * adj[np.ix_(g, g)], 1)) for g in groups]
    groups = [groups[i] for i in np.argsort(score)[::-1][:max_merge]]
    new_a, new_c, new_r = [], [], []
    for grp in groups:
        Ag = A[:, grp]
        Ct = C[grp] + YrA[grp]
        alpha = np.sqrt(np.asarray(Ag.multiply(Ag).sum(0)).ravel()) * np.linalg.norm(Ct, axis=1)
        a = np.asarray(Ag @ alpha).ravel()
        c = np.zeros(C.shape[1])
        for _ in range(10):
            na2 = a @ a
            if na2 <= 0:
                break
            c = np.maximum((Ag.T @ a) @ Ct / na2, 0)
            nc2 = c @ c
            if nc2 <= 0:
                break
            a = np.maximum(np.asarray(Ag @ (Ct @ c)).ravel() / nc2, 0)
        na = np.linalg.norm(a)
        if na <= 0:
            continue
        r = (Ag.T @ (a / na)) @ Ct - c * na
        new_a.append(a / na)
        new_c.append(c * na)
        new_r.append(r)
        logger.info("merged components %s", grp.tolist())
    merged = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(K), merged)
    if new_a:
        A = scipy.sparse.hstack([A[:, keep], scipy.sparse.csc_matrix(np.array(new_a).T)]).tocsc()
        C = np.vstack([C[keep], np.array(new_c)])
        YrA = np.vstack([YrA[keep], np.array(new_r)])
    else:
        A, C, YrA = A[:, keep], C[keep], YrA[keep]
    A.eliminate_zeros()
    return scipy.sparse.csc_matrix(A), C, YrA, groups


# --------------------------------------------------------------------------------------------------- evaluation
def evaluate(data: MovieData, A: scipy.sparse.csc_matrix, C: np.ndarray, YrA: np.ndarray, s: Settings,
             progress: bool = False):
    """SNR_comp, r_values and the accepted/rejected indices (CaImAn's definitions, reference section 8)."""
    from .quality import Evaluation

    K, T = C.shape
    if K == 0:
        z = np.zeros(0)
        return Evaluation(z, z, np.zeros(0, np.int64), np.zeros(0, np.int64))
    snr = snr_comp(C + YrA, s.fr, s.decay_time)
    frames = select_frames(A, C, s.fr)
    Wsel = np.zeros((K, T))
    for k, fr_k in enumerate(frames):
        if fr_k is not None and fr_k.size:
            Wsel[k, fr_k] = 1.0 / fr_k.size
    Apos = A.copy()
    Apos.data[Apos.data < 0] = 0
    Apos.eliminate_zeros()
    Apos.sort_indices()
    indptr = Apos.indptr.astype(np.int64)
    comp, pix_c, _ = _entries(Apos, data.f2c)
    M = np.zeros(pix_c.size)
    pix_f = Apos.indices.astype(np.int64)
    for t0, Y in _chunks(data, s.chunk_frames, "evaluate", progress):
        if data.pixel_major:
            n = Y.shape[1]
            entries_dot_pm(Y, np.ascontiguousarray(Wsel[:, t0:t0 + n]), comp, pix_f, M)
        else:
            n = Y.shape[0]
            entries_dot(Y, np.ascontiguousarray(Wsel[:, t0:t0 + n].T), comp, pix_c, M)
    means = [M[indptr[k]:indptr[k + 1]] if frames[k] is not None else None for k in range(K)]
    r = space_correlation(Apos, means)
    good, bad = accept(snr, r, s.min_SNR, s.SNR_lowest, s.rval_thr, s.rval_lowest)
    return Evaluation(snr, r, good, bad)


# ---------------------------------------------------------------------------------------------------- the loop
def run_cnmf(data: MovieData, A0: scipy.sparse.csc_matrix, s: Settings, progress: bool = False) -> Estimates:
    """Seeded CNMF on a movie from seed footprints ``A0`` (pixels, K). See the module docstring."""
    T = data.n_frames
    steps = tqdm(total=3 + 2 * s.n_iter, desc="refine", disable=not progress)
    sn = data.noise()
    steps.update()
    C, f = initial_traces(data, A0, s.nb, s.chunk_frames, progress)
    steps.update()
    A, b = A0, None
    n_merged = 0
    for it in range(s.n_iter):
        last = it == s.n_iter - 1
        # the seeds' first update stays within each seed, as CaImAn's with boolean Ain; later ones may grow
        A, b, kept = spatial_update(data, A, C, f, b, sn, s, progress, dilate=it > 0)
        C = C[kept]
        steps.update()
        A, C, b, f = normalize(A, C, b, f)
        res = temporal_update(data, A, b, C, f, s.p if last else 0, s, progress, clip=True)
        steps.update()
        C, f, YrA = res.C, res.f, res.YrA
        nz = np.any(C != 0, axis=1)
        if not nz.all():
            logger.info("temporal update: %d all-zero trace(s) removed", int((~nz).sum()))
            A, C, YrA = A[:, np.where(nz)[0]], C[nz], YrA[nz]
            res = TemporalResult(C, f, res.S[nz], YrA, res.bl[nz], res.c1[nz], res.neurons_sn[nz], res.g[nz],
                                 res.lam[nz])
        if not last and s.merge_thr < 1:
            A, C, YrA, merged = merge_components(A, C, YrA, s.merge_thr, s.max_merge)
            if merged:
                logger.info("merged %d group(s) of components", len(merged))
                n_merged += len(merged)
    remapped = remap_message(A0.shape[1], A.shape[1], n_merged)
    if remapped:
        logger.warning(remapped)
    A = scipy.sparse.csc_matrix(A)
    A.sort_indices()
    ev = evaluate(data, A, C, YrA, s, progress)
    steps.update()
    steps.close()
    est = Estimates(A=A, C=C, S=res.S, YrA=YrA, b=b, f=f, sn=sn, g=res.g, bl=res.bl, c1=res.c1,
                    neurons_sn=res.neurons_sn, lam=res.lam, SNR_comp=ev.SNR_comp, r_values=ev.r_values,
                    idx_components=ev.idx_components, idx_components_bad=ev.idx_components_bad, dims=data.dims)
    _check_finite(est, T)
    return est


def _check_finite(est: Estimates, T: int) -> None:
    for name in ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "lam", "SNR_comp", "r_values"):
        v = getattr(est, name)
        if v is not None and not np.all(np.isfinite(v)):
            logger.warning("non-finite values in %s replaced by 0", name)
            setattr(est, name, np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0))
    if est.A is not None and not np.all(np.isfinite(est.A.data)):
        est.A.data = np.nan_to_num(est.A.data)
