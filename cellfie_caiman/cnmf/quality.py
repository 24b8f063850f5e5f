"""Component evaluation with CaImAn's definitions (reference section 8): SNR_comp, r_values, accept/reject."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.special
import scipy.stats


def half_sample_mode(x: np.ndarray) -> float:
    """Robust mode of a sample (Bickel's half-sample mode)."""
    data = np.sort(np.asarray(x, dtype=np.float64).ravel())
    while data.size > 3:
        n = data.size // 2 + data.size % 2
        widths = data[n - 1:2 * n - 1] - data[:n]  # windows starting at 0..n-1
        j = int(np.argmin(widths))
        data = data[j:j + n]
    if data.size == 1:
        return float(data[0])
    if data.size == 2:
        return float(data.mean())
    if data[1] - data[0] < data[2] - data[1]:
        return float(data[:2].mean())
    return float(data[1])


def remove_slow_baseline(traces: np.ndarray) -> np.ndarray:
    """Subtract the 8th percentile over bins of min(T//5, 800) frames, interpolated back with cubic splines.

    Parameters
    ----------
    traces : ndarray (K, T)

    Returns
    -------
    ndarray (K, T) float64
    """
    traces = np.asarray(traces, dtype=np.float64)
    K, T = traces.shape
    bin_len = int(min(T // 5, 800))
    if bin_len < 1 or K == 0:
        return traces.copy()
    missing = int(np.ceil(T / bin_len) * bin_len - T)
    before, after = missing // 2, missing - missing // 2
    padded = np.pad(traces, ((0, 0), (before, after)), mode="reflect") if missing else traces
    n_bins = padded.shape[1] // bin_len
    # bins of consecutive frames: frame t of the padded trace is in bin t // bin_len
    binned = np.percentile(padded.reshape(K, n_bins, bin_len), 8, axis=2)
    baseline = scipy.ndimage.zoom(binned.astype(np.float32), (1, bin_len), order=3, mode="constant", cval=0.0,
                                  prefilter=True)
    baseline = baseline[:, before:before + T]
    return traces - baseline


def event_exceptionality(traces: np.ndarray, N: int, sigma_factor: float = 3.0) -> np.ndarray:
    """Minimum over time of the log-probability of N consecutive samples under the noise below the mode.

    Parameters
    ----------
    traces : ndarray (K, T)
    N : int
        Number of consecutive frames (> 0).

    Returns
    -------
    fitness : ndarray (K,) (more negative = more exceptional)
    """
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    K, T = traces.shape
    fitness = np.zeros(K)
    for k in range(K):
        x = traces[k]
        md = half_sample_mode(x)
        below = np.minimum(x - md, 0.0)
        n_below = np.count_nonzero(below)
        sd = np.sqrt(np.sum(below**2) / n_below) if n_below else 0.0
        if not np.isfinite(sd) or sd <= 0:
            fitness[k] = 0.0
            continue
        z = (x - md) / (sigma_factor * sd)
        ll = scipy.special.log_ndtr(-z)
        cs = np.cumsum(ll)
        cs[N:] = cs[N:] - cs[:-N]
        fitness[k] = cs.min()
    return fitness


def snr_comp(traces: np.ndarray, fr: float, decay_time: float) -> np.ndarray:
    """CaImAn's SNR_comp of each trace (traces = C + YrA, shape (K, T)): -Phi^-1(exp(fitness/N)), N=ceil(fr*decay)."""
    N = max(int(np.ceil(fr * decay_time)), 1)
    detrended = remove_slow_baseline(np.nan_to_num(np.asarray(traces, dtype=np.float64)))
    fitness = event_exceptionality(detrended, N)
    snr = -scipy.special.ndtri(np.exp(fitness / N))
    return np.nan_to_num(snr, nan=0.0, posinf=0.0, neginf=0.0)


def find_peaks_rel(x: np.ndarray, thres: float = 0.3) -> np.ndarray:
    """Indices of local maxima above min + thres*(max - min) (plateaus give their middle sample)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 3 or np.ptp(x) == 0:
        return np.zeros(0, dtype=np.int64)
    level = thres * np.ptp(x) + x.min()
    dy = np.diff(x)
    # propagate the slope over flat runs so that plateaus count as peaks
    zeros = np.where(dy == 0)[0]
    if zeros.size:
        dy = dy.copy()
        for i in zeros[::-1]:
            dy[i] = dy[i + 1] if i + 1 < dy.size else -1.0
        for i in zeros:
            if dy[i] == 0:
                dy[i] = dy[i - 1] if i > 0 else 1.0
    peaks = np.where((np.hstack([dy, 0.0]) < 0) & (np.hstack([0.0, dy]) > 0) & (x > level))[0]
    return peaks


def activity_windows(C: np.ndarray, fr: float, n_peaks: int = 10, thres: float = 0.3) -> list[np.ndarray | None]:
    """Frames around the largest peaks of each trace: [p + tB, p + tA) for the top ``n_peaks`` peaks.

    tB = min(-2, floor(-5 fr/30)) and tA = max(5, ceil(25 fr/30)). None for a trace without peaks.
    """
    K, T = C.shape
    tB = min(-2, int(np.floor(-5 * fr / 30)))
    tA = max(5, int(np.ceil(25 * fr / 30)))
    out: list[np.ndarray | None] = []
    for k in range(K):
        peaks = find_peaks_rel(C[k], thres)
        if peaks.size == 0:
            out.append(None)
            continue
        top = peaks[np.argsort(C[k, peaks])[::-1][:n_peaks]]
        frames = (top[:, None] + np.arange(tB, tA)[None, :]).ravel()
        out.append(np.unique(np.clip(frames, 0, T - 1)))  # CaImAn clips windows at the ends
    return out


def select_frames(A: scipy.sparse.csc_matrix, C: np.ndarray, fr: float, n_peaks: int = 10,
                  overlap_thr: float = 0.1) -> list[np.ndarray | None]:
    """Frames used for the space correlation of each component (its peak windows minus its neighbours')."""
    K = A.shape[1]
    windows = activity_windows(C, fr, n_peaks)
    AA = (A.T @ A).toarray()
    nrm = np.sqrt(np.maximum(np.diag(AA), 1e-300))
    AA = AA / np.outer(nrm, nrm) - np.eye(K)
    frames: list[np.ndarray | None] = []
    for k in range(K):
        if windows[k] is None:
            frames.append(None)
            continue
        keep = windows[k]
        for j in np.where(AA[:, k] > overlap_thr)[0]:
            if windows[j] is not None:
                keep = np.setdiff1d(keep, windows[j])
        frames.append(keep if keep.size else windows[k])
    return frames


def space_correlation(A: scipy.sparse.csc_matrix, mean_images: list[np.ndarray | None]) -> np.ndarray:
    """Pearson correlation between each footprint and the mean data over its frames, on the footprint's pixels.

    Parameters
    ----------
    A : csc (d, K)
    mean_images : list of (n_k,) arrays (the mean of Y over the frames, at the pixels ``A[:, k] > 0``, in the
        order of ``A[:, k].indices``) or None.
    """
    K = A.shape[1]
    r = np.zeros(K)
    for k in range(K):
        lo, hi = A.indptr[k], A.indptr[k + 1]
        vals = A.data[lo:hi]
        pos = vals > 0
        if mean_images[k] is None or pos.sum() < 3:
            continue
        m = mean_images[k][pos]
        a = vals[pos]
        if np.ptp(m) == 0 or np.ptp(a) == 0:
            continue
        r[k] = scipy.stats.pearsonr(m, a)[0]
    return np.nan_to_num(r)


class Evaluation(NamedTuple):
    """Component evaluation: metrics and the accepted/rejected indices."""

    SNR_comp: np.ndarray
    r_values: np.ndarray
    idx_components: np.ndarray
    idx_components_bad: np.ndarray


def accept(snr: np.ndarray, r: np.ndarray, min_SNR: float = 2.5, SNR_lowest: float = 0.5, rval_thr: float = 0.8,
           rval_lowest: float = -1.0, cnn: np.ndarray | None = None, min_cnn_thr: float = 0.9,
           cnn_lowest: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """CaImAn's decision (reference section 8); returns the (accepted, rejected) indices.

    Accepted: (r >= rval_thr or SNR > min_SNR or cnn >= min_cnn_thr) and r > rval_lowest and SNR > SNR_lowest and
    cnn > cnn_lowest; without ``cnn`` (CaImAn's ``use_cnn=False``) the two cnn terms are left out.
    """
    good = (r >= rval_thr) | (snr > min_SNR)
    bad = (r <= rval_lowest) | (snr <= SNR_lowest)
    if cnn is not None:
        cnn = np.asarray(cnn, dtype=np.float64)
        good |= cnn >= min_cnn_thr
        bad |= cnn <= cnn_lowest
    good &= ~bad
    return np.where(good)[0], np.where(~good)[0]
