"""Noise levels and autoregressive coefficients, with CaImAn's definitions.

* :func:`psd_noise`: per-pixel noise from the power spectral density over 0.25..0.5 cycles/frame
  (CaImAn's ``get_noise_fft`` with ``noise_method='mean'``).
* :func:`fft_frame_subset`: the frames CaImAn uses for that estimate on long movies (at most 3072).
* :func:`trace_noise`: noise of one trace from Welch's PSD (CaImAn's ``GetSn``).
* :func:`estimate_ar`: AR(p) coefficients of a trace from its autocovariance (CaImAn's ``estimate_time_constant``).
* :func:`ar_from_decay`: AR coefficients from the indicator decay time.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.signal

#: Fewest frames of a noise estimate by :func:`psd_noise` (and so of a movie the refinement accepts).
MIN_FRAMES = 4


def fft_frame_subset(n_frames: int, max_frames: int = 3072) -> np.ndarray:
    """Indices of the frames used for the per-pixel noise estimate.

    All frames when ``n_frames <= max_frames``; otherwise frames 1..max/3, max/3 frames around the middle, and the
    last max/3 frames (CaImAn's choice).

    Returns
    -------
    ndarray of int64, sorted.
    """
    if n_frames <= max_frames:
        return np.arange(n_frames)
    third = max_frames // 3
    mid = n_frames // 2
    half = int(max_frames / 3 / 2)
    idx = np.concatenate([np.arange(1, third + 1), np.arange(mid - half, mid + half),
                          np.arange(n_frames - third, n_frames)])
    return idx


def psd_noise(Y: np.ndarray, noise_range: tuple[float, float] = (0.25, 0.5), method: str = "mean") -> np.ndarray:
    """Noise standard deviation of each row of ``Y`` from its periodogram.

    sigma^2 is the mean (or median, or geometric mean for ``'logmexp'``) of psd/2 over the frequencies
    ``noise_range[0] < k/T <= noise_range[1]``, where psd = 2|DFT|^2/T.

    Parameters
    ----------
    Y : ndarray (n, T)
        Time series, time last.
    noise_range : (float, float)
        Frequency band in cycles per frame.
    method : {'mean', 'median', 'logmexp'}

    Returns
    -------
    ndarray (n,) float64, in the units of ``Y``.
    """
    Y = np.atleast_2d(Y)
    T = Y.shape[-1]
    if T < MIN_FRAMES:
        raise ValueError(f"need at least {MIN_FRAMES} frames to estimate noise, got {T}")
    k = np.arange(T // 2 + 1)
    band = (k / T > noise_range[0]) & (k / T <= noise_range[1])
    out = np.empty(Y.shape[0])
    step = max(1, int(2**22 // T))  # bounds the float64/complex temporaries to ~32 MB each
    for s in range(0, Y.shape[0], step):
        blk = np.asarray(Y[s:s + step], dtype=np.float64)
        blk = blk - blk.mean(axis=-1, keepdims=True)  # the band excludes frequency 0; this only cuts roundoff
        xdft = np.fft.rfft(blk, axis=-1)[:, band]
        half_psd = (xdft.real**2 + xdft.imag**2) / T  # psd / 2
        if method == "mean":
            out[s:s + step] = np.sqrt(half_psd.mean(axis=-1))
        elif method == "median":
            out[s:s + step] = np.sqrt(np.median(half_psd, axis=-1))
        elif method == "logmexp":
            out[s:s + step] = np.sqrt(np.exp(np.log(half_psd + 1e-10).mean(axis=-1)))
        else:
            raise ValueError(f"unknown noise method {method!r}; use 'mean', 'median' or 'logmexp'")
    return out


def trace_noise(y: np.ndarray, noise_range: tuple[float, float] = (0.25, 0.5), method: str = "mean") -> float:
    """Noise standard deviation of one trace from Welch's PSD (Hann window, 256-sample segments).

    Parameters
    ----------
    y : ndarray (T,)

    Returns
    -------
    float, in the units of ``y``.
    """
    y = np.asarray(y, dtype=np.float64)
    ff, pxx = scipy.signal.welch(y, nperseg=min(256, y.size))
    band = (ff > noise_range[0]) & (ff <= noise_range[1])
    if not band.any():
        return float(np.std(np.diff(y)) / np.sqrt(2)) if y.size > 1 else 0.0
    p = pxx[band] / 2
    if method == "mean":
        return float(np.sqrt(p.mean()))
    if method == "median":
        return float(np.sqrt(np.median(p)))
    return float(np.sqrt(np.exp(np.log(p + 1e-10).mean())))


def autocovariance(y: np.ndarray, maxlag: int) -> np.ndarray:
    """Biased autocovariance xc(0..maxlag) of a trace (mean removed, divided by T), via FFT."""
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    T = y.size
    n = 1 << int(np.ceil(np.log2(2 * T - 1)))
    f = np.fft.rfft(y, n)
    xc = np.fft.irfft(f.real**2 + f.imag**2, n)[:maxlag + 1] / T
    return xc


def estimate_ar(y: np.ndarray, p: int, sn: float | None = None, lags: int = 5, fudge_factor: float = 0.96,
                seed: int = 45) -> np.ndarray:
    """AR(p) coefficients of a calcium trace from its autocovariance, corrected for white noise.

    Solves (Toeplitz(xc[0..L-1], xc[0..p-1]) - sn^2 I) g = xc[1..L] in the least-squares sense with L = lags + p,
    keeps the real parts of the roots of the AR polynomial, replaces roots > 1 by 0.95 and negative roots by 0.15
    (with a little seeded jitter, as CaImAn), shrinks them by ``fudge_factor`` and rebuilds g.

    Returns
    -------
    ndarray (p,) float64; empty when p == 0.
    """
    if p == 0:
        return np.zeros(0)
    if sn is None:
        sn = trace_noise(y)
    L = lags + p
    xc = autocovariance(y, L)
    M = scipy.linalg.toeplitz(xc[:L], xc[:p]) - sn**2 * np.eye(L, p)
    g = np.linalg.lstsq(M, xc[1:L + 1], rcond=None)[0]
    roots = np.roots(np.concatenate([[1.0], -g])).real
    rng = np.random.RandomState(seed)
    big = roots > 1
    roots[big] = 0.95 + rng.normal(0, 0.01, big.sum())
    neg = roots < 0
    roots[neg] = 0.15 + rng.normal(0, 0.01, neg.sum())
    poly = np.poly(fudge_factor * roots)
    return -poly[1:].real


def ar_from_decay(fr: float, decay_time: float, p: int, rise_time: float | None = None) -> np.ndarray:
    """AR coefficients of an indicator with the given decay (and, for p=2, rise) time constant in seconds."""
    if p == 0:
        return np.zeros(0)
    d = np.exp(-1.0 / (decay_time * fr))
    if p == 1:
        return np.array([d])
    r = np.exp(-1.0 / ((rise_time if rise_time else max(decay_time / 10, 1.0 / fr / 2)) * fr))
    return np.array([d + r, -d * r])

