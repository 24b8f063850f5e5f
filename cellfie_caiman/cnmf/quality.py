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


def snr_from_fitness(fitness: np.ndarray, N: int) -> np.ndarray:
    """SNR_comp from the fitness: -Phi^-1(exp(fitness / N)), finite even where ``exp`` underflows.

    Where ``exp(fitness / N)`` is 0 (fitness / N < -745, a transient over 100 noise sigmas high), CaImAn's formula
    gives +inf; here it is the finite s with log Phi(-s) = fitness / N (about 38.6 and above), which passes every
    SNR threshold as inf does, so the decision is CaImAn's, and keeps SNR_comp writable to JSON, HDF5 and NWB.

    Parameters
    ----------
    fitness : ndarray (K,)
        From :func:`event_exceptionality` (<= 0).
    N : int
        The number of frames it sums (> 0).

    Returns
    -------
    ndarray (K,) float64; 0 where fitness is 0 (a trace with no sample below its mode: CaImAn's NaN, which its
    ``Estimates.evaluate_components`` also stores as 0).
    """
    y = np.asarray(fitness, dtype=np.float64) / N
    p = np.exp(y)
    snr = -scipy.special.ndtri(p)
    tail = p == 0
    if tail.any():
        snr[tail] = _inverse_log_ndtr(np.maximum(y[tail], -1e200))
    return np.nan_to_num(snr, nan=0.0, neginf=0.0)


def _inverse_log_ndtr(y: np.ndarray, n_iter: int = 8) -> np.ndarray:
    """The s > 0 with log Phi(-s) = y, for y < -700 (Newton's method from sqrt(-2 y), which lies above s)."""
    s = np.sqrt(-2.0 * y)
    for _ in range(n_iter):
        slope = np.sqrt(2 / np.pi) / scipy.special.erfcx(s / np.sqrt(2))  # phi(s) / Phi(-s), without overflow
        s = s + (scipy.special.log_ndtr(-s) - y) / slope
    return s


def snr_comp(traces: np.ndarray, fr: float, decay_time: float) -> np.ndarray:
    """CaImAn's SNR_comp of each trace (traces = C + YrA, shape (K, T)): -Phi^-1(exp(fitness/N)), N=ceil(fr*decay).

    Two departures, where CaImAn's value is not a measure of the trace: a very high SNR is finite instead of
    +inf (:func:`snr_from_fitness`), and a trace constant over time gets 0. CaImAn gives such a trace NaN (stored
    as 0) when alone, but the baselines of all traces are interpolated as one 2-D array, so next to other traces it
    picks up their rounding errors (~1e-16 of their size) and gets an SNR computed from them, often above min_SNR.

    Parameters
    ----------
    traces : ndarray (K, T)
        C + YrA, in any fluorescence unit (NaN counts as 0).
    fr : float
        Frame rate in Hz.
    decay_time : float
        Decay time of the transients in s.

    Returns
    -------
    ndarray (K,) float64, finite for any finite input.
    """
    N = max(int(np.ceil(fr * decay_time)), 1)
    x = np.nan_to_num(np.asarray(traces, dtype=np.float64))
    flat = np.ptp(x, axis=1) == 0 if x.size else np.ones(x.shape[0], dtype=bool)
    fitness = event_exceptionality(remove_slow_baseline(x), N)
    snr = snr_from_fitness(fitness, N)
    snr[flat] = 0.0
    return snr


def _fill_flat_slopes(dy: np.ndarray) -> np.ndarray:
    """Slopes with each run of zeros replaced as peakutils (CaImAn's peak finder) does.

    A run at the start takes the slope after it, a run at the end the slope before it; an inner run's samples
    below its median index take the slope before it, the others the slope after it, so that a flat top is a
    peak at its middle sample and a flat top at the end of the trace is none.
    """
    zeros = np.flatnonzero(dy == 0)
    if zeros.size == 0:
        return dy
    dy = dy.copy()
    last = dy.size - 1
    for run in np.split(zeros, np.flatnonzero(np.diff(zeros) != 1) + 1):
        start, end = int(run[0]), int(run[-1])
        if start == 0:
            dy[run] = dy[end + 1]
        elif end == last:
            dy[run] = dy[start - 1]
        else:
            mid = np.median(run)
            dy[run[run < mid]] = dy[start - 1]
            dy[run[run >= mid]] = dy[end + 1]
    return dy


def find_peaks_rel(x: np.ndarray, thres: float = 0.3) -> np.ndarray:
    """Indices of local maxima above min + thres*(max - min), as ``peakutils.indexes(x, thres)`` (CaImAn's).

    A flat top counts once, at its middle sample (the first of two middle ones), and not at all at the end of the trace
    (:func:`_fill_flat_slopes`); the first and last samples are never peaks.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 3 or np.ptp(x) == 0:
        return np.zeros(0, dtype=np.int64)
    level = thres * np.ptp(x) + x.min()
    dy = _fill_flat_slopes(np.diff(x))
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
    """Frames used for the space correlation of each component (its peak windows minus its neighbours').

    Neighbours are all components whose footprints overlap (cosine > ``overlap_thr``), as in CaImAn's
    ``evaluate_components`` on an in-memory movie. On a memmap movie (``Estimates.evaluate_components``) CaImAn
    evaluates components in groups of 50 consecutive ones and only looks for neighbours within each group, so with
    more than 50 components the r_values of neighbours split across groups differ (by 0.06 on a simulation).
    """
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
