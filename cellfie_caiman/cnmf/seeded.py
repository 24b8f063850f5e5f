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

The seeds (``Ain`` or masks as a sparse matrix, their checks) are in :mod:`cellfie_caiman.cnmf.seeds`, the
background's start (its pixels and the NMF of their traces) in :mod:`cellfie_caiman.cnmf.background`, and the
footprints' candidate pixels and post-processing in :mod:`cellfie_caiman.cnmf.patterns`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
from tqdm.auto import tqdm

from ._data import MovieData
from ._kernels import entries_dot, entries_dot_pm, hals_shapes, pattern_rows, sparse_project
from .background import _hals_rows, _nmf_background, background_pixels, background_pooling
from .estimates import Estimates
from .oasis import deconvolve
from .patterns import _values_on_pattern, dilated_pattern, support_pattern, threshold_footprint
from .quality import accept, select_frames, snr_comp, space_correlation
from .seeds import remap_message

logger = logging.getLogger(__name__)

#: bytes (float32) of the background pixels that the background NMF holds (nb > 1): beyond it, they are pooled
#: into square cells of the field (:func:`background_pooling`)
BACKGROUND_NMF_BYTES = 64 * 2**20


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


# ------------------------------------------------------------------------------------------------- movie chunks
def _entries(A: scipy.sparse.csc_matrix, f2c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(component, C-order pixel, value) of each stored entry of a CSC matrix with Fortran-order rows."""
    A = scipy.sparse.csc_matrix(A)
    comp = np.repeat(np.arange(A.shape[1], dtype=np.int64), np.diff(A.indptr))
    return comp, f2c[A.indices].astype(np.int64), A.data.astype(np.float64)


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
