"""Sparse non-negative deconvolution of calcium traces (OASIS, Friedrich et al. 2017), written from the equations.

Model (AR(1)): c_t = g c_{t-1} + s_t with s_t >= 0, observed y_t = b + c_t + noise. :func:`oasis_ar1` solves

    minimise 1/2 ||y - c||^2 + sum_t mu_t c_t   subject to  c_t - g c_{t-1} >= 0, c_1 >= 0

exactly with the pool-adjacent-violators algorithm (an L1 penalty lambda ||s||_1 becomes the linear term mu).
:func:`deconvolve` adds the baseline and picks lambda so that the residual matches the noise (CaImAn's
``constrained_foopsi``: ||y - b - c||^2 = sn^2 T). AR(2) is solved by accelerated projected gradient on s.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import njit
from .noise import ar_from_decay, estimate_ar, trace_noise


@njit()
def oasis_ar1(y, g, mu):
    """Exact solution of min 1/2||y-c||^2 + mu.c s.t. c_t >= g c_{t-1}, c >= 0 (pool adjacent violators).

    Parameters
    ----------
    y, mu : float64 (T,)
    g : float, 0 <= g < 1

    Returns
    -------
    c : float64 (T,)
    """
    T = y.shape[0]
    num = np.empty(T)   # sum_i (y - mu)_{t+i} g^i over the pool
    den = np.empty(T)   # sum_i g^{2i}
    start = np.empty(T, np.int64)
    length = np.empty(T, np.int64)
    gl = np.empty(T)    # g^length
    n = 0
    for t in range(T):
        num[n] = y[t] - mu[t]
        den[n] = 1.0
        start[n] = t
        length[n] = 1
        gl[n] = g
        n += 1
        while n > 1:
            v_prev = num[n - 2] / den[n - 2]
            v_cur = num[n - 1] / den[n - 1]
            if v_prev < 0.0:
                v_prev = 0.0 if n - 2 == 0 else v_prev
            if v_prev * gl[n - 2] <= v_cur:
                break
            # merge pool n-1 into pool n-2
            num[n - 2] += gl[n - 2] * num[n - 1]
            den[n - 2] += gl[n - 2] * gl[n - 2] * den[n - 1]
            length[n - 2] += length[n - 1]
            gl[n - 2] *= gl[n - 1]
            n -= 1
    c = np.empty(T)
    for i in range(n):
        v = num[i] / den[i]
        if v < 0.0:
            v = 0.0
        x = v
        for k in range(start[i], start[i] + length[i]):
            c[k] = x
            x *= g
    return c


@njit()
def _fit_ar1(y, g, lam, b0, fit_b, penalize_first, n_alt):
    """Baseline and trace for a fixed lambda, alternating b = mean(y - c) and the OASIS solve."""
    T = y.shape[0]
    mu = np.empty(T)
    for t in range(T):
        mu[t] = lam * (1.0 - g)
    mu[T - 1] = lam
    if not penalize_first:
        mu[0] = -lam * g if T > 1 else 0.0
    b = b0
    c = np.zeros(T)
    for _ in range(n_alt):
        c = oasis_ar1(y - b, g, mu)
        if not fit_b:
            break
        nb = np.mean(y - c)
        if abs(nb - b) <= 1e-9 * (abs(b) + 1e-12):
            b = nb
            break
        b = nb
    rss = 0.0
    for t in range(T):
        r = y[t] - b - c[t]
        rss += r * r
    return c, b, rss


@njit()
def constrained_ar1(y, g, sn, b0, fit_b, penalize_first):
    """Noise-constrained AR(1) deconvolution: the smallest lambda with ||y - b - c||^2 >= sn^2 T.

    Returns c, b, lambda.
    """
    T = y.shape[0]
    target = sn * sn * T
    n_alt = 20
    c, b, rss = _fit_ar1(y, g, 0.0, b0, fit_b, penalize_first, n_alt)
    if rss >= target or sn <= 0.0:
        return c, b, 0.0
    lo = 0.0
    hi = sn * np.sqrt(T) * 0.1 + 1e-12
    c_hi, b_hi, rss_hi = _fit_ar1(y, g, hi, b, fit_b, penalize_first, n_alt)
    it = 0
    while rss_hi < target and it < 60:
        lo = hi
        c, b = c_hi, b_hi
        hi *= 4.0
        c_hi, b_hi, rss_hi = _fit_ar1(y, g, hi, b_hi, fit_b, penalize_first, n_alt)
        it += 1
    if rss_hi < target:
        return c_hi, b_hi, hi
    best_c, best_b, best_lam = c, b, lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        cm, bm, rssm = _fit_ar1(y, g, mid, best_b, fit_b, penalize_first, n_alt)
        if rssm < target:
            lo = mid
            best_c, best_b, best_lam = cm, bm, mid
        else:
            hi = mid
        if abs(rssm - target) < 1e-4 * target or (hi - lo) < 1e-7 * hi:
            break
    return best_c, best_b, best_lam


def _ar_filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Impulse-response convolution c = K s for c_t = sum_i g_i c_{t-i} + s_t."""
    import scipy.signal

    return scipy.signal.lfilter([1.0], np.concatenate([[1.0], -g]), x)


def _ar_filter_T(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return _ar_filter(x[::-1], g)[::-1]


def _nnls_ar(y: np.ndarray, g: np.ndarray, lam: float, b: float, fit_b: bool, n_iter: int = 300,
             s0: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """min_s>=0 1/2||y - b - K s||^2 + lam*sum(s) by FISTA (any AR order); returns s, b."""
    T = y.size
    # Lipschitz constant of K^T K: the squared gain of the AR filter at its peak frequency
    w = np.linspace(0, np.pi, 512)
    H = 1.0 / np.abs(1 - sum(gi * np.exp(-1j * w * (i + 1)) for i, gi in enumerate(g)))
    step = 1.0 / (H.max() ** 2 * 1.05)
    s = np.zeros(T) if s0 is None else s0.copy()
    z = s.copy()
    tk = 1.0
    for _ in range(n_iter):
        r = _ar_filter(z, g) + b - y
        s_new = np.maximum(z - step * (_ar_filter_T(r, g) + lam), 0.0)
        tk1 = 0.5 * (1 + np.sqrt(1 + 4 * tk * tk))
        z = s_new + (tk - 1) / tk1 * (s_new - s)
        s, tk = s_new, tk1
        if fit_b:
            b = float(np.mean(y - _ar_filter(s, g)))
    return s, b


def constrained_ar_general(y: np.ndarray, g: np.ndarray, sn: float, b0: float, fit_b: bool
                           ) -> tuple[np.ndarray, float, float]:
    """Noise-constrained deconvolution for any AR order (bisection on lambda around a FISTA solver)."""
    T = y.size
    target = sn * sn * T

    def fit(lam, b, s0):
        s, b = _nnls_ar(y, g, lam, b, fit_b, s0=s0)
        c = _ar_filter(s, g)
        return c, b, float(np.sum((y - b - c) ** 2)), s

    c, b, rss, s = fit(0.0, b0, None)
    if rss >= target or sn <= 0:
        return c, b, 0.0
    lo, hi = 0.0, sn * np.sqrt(T) * 0.1 + 1e-12
    c_hi, b_hi, rss_hi, s_hi = fit(hi, b, s)
    while rss_hi < target and hi < 1e12:
        lo, c, b, s = hi, c_hi, b_hi, s_hi
        hi *= 4
        c_hi, b_hi, rss_hi, s_hi = fit(hi, b_hi, s_hi)
    if rss_hi < target:
        return c_hi, b_hi, hi
    best = (c, b, lo)
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        cm, bm, rssm, sm = fit(mid, best[1], s)
        if rssm < target:
            lo, best, s = mid, (cm, bm, mid), sm
        else:
            hi = mid
        if abs(rssm - target) < 1e-3 * target:
            break
    return best


def constrained_ar2_split(y: np.ndarray, roots: np.ndarray, sn: float, b0: float, fit_b: bool
                          ) -> tuple[np.ndarray, float, float]:
    """AR(2) with real roots d >= r: remove the rise (u_t = y_t - r y_{t-1}), solve the AR(1) problem in d on u
    with OASIS (noise sn*sqrt(1+r^2)), and filter back (c = u-solution / (1 - r z^-1)).

    Fast (two O(T) passes per lambda) and exact on noiseless data; with noise it is an approximation of the AR(2)
    noise-constrained problem (the noise of u is slightly coloured).
    """
    import scipy.signal

    d, r = float(roots[0]), float(roots[1])
    u = y.copy()
    u[1:] -= r * y[:-1]
    cu, bu, lam = constrained_ar1(u, min(d, 0.9999), sn * np.sqrt(1 + r * r), b0 * (1 - r), fit_b, False)
    c = scipy.signal.lfilter([1.0], [1.0, -r], cu)
    return c, (bu / (1 - r) if fit_b else 0.0), lam


class Deconvolution(NamedTuple):
    """Result of :func:`deconvolve` for one trace.

    Attributes
    ----------
    c : ndarray (T,)
        Denoised calcium, without the baseline (units of the trace).
    s : ndarray (T,)
        Deconvolved activity, s_t = c_t - sum_i g_i c_{t-i} >= 0.
    bl : float
        Baseline.
    c1 : float
        Initial calcium value c_1.
    g : ndarray (p,)
        AR coefficients used.
    sn : float
        Noise of the trace.
    lam : float
        Sparsity penalty that made ||y - bl - c||^2 = sn^2 T.
    """

    c: np.ndarray
    s: np.ndarray
    bl: float
    c1: float
    g: np.ndarray
    sn: float
    lam: float


def deconvolve(y: np.ndarray, p: int = 1, g: np.ndarray | None = None, sn: float | None = None,
               fit_baseline: bool = True, fr: float | None = None, decay_time: float | None = None) -> Deconvolution:
    """Deconvolve one calcium trace with a noise-constrained AR(p) model.

    Parameters
    ----------
    y : ndarray (T,)
        Fluorescence trace (any units; baseline included).
    p : int
        AR order: 0 (no deconvolution: c = max(y, 0)), 1 or 2.
    g : ndarray (p,) or None
        AR coefficients; None estimates them from the autocovariance of y (or from ``decay_time``·``fr`` when both
        are given and the estimate fails).
    sn : float or None
        Noise standard deviation; None estimates it from Welch's PSD of y.
    fit_baseline : bool
        Estimate an unconstrained baseline ``bl`` (else bl = 0).

    Returns
    -------
    Deconvolution
    """
    y = np.nan_to_num(np.asarray(y, dtype=np.float64))
    T = y.size
    if sn is None:
        sn = trace_noise(y) if T >= 8 else 0.0
    sn = float(np.nan_to_num(sn))
    if p == 0:
        c = np.maximum(y, 0)
        return Deconvolution(c, c.copy(), 0.0, 0.0, np.zeros(0), sn, 0.0)
    if g is None:
        if np.ptp(y) > 0:
            g = estimate_ar(y, p, sn)
        elif fr and decay_time:
            g = ar_from_decay(fr, decay_time, p)
        else:
            g = ar_from_decay(30.0, 0.4, p)
    g = np.asarray(g, dtype=np.float64).ravel()
    if not np.all(np.isfinite(g)):
        g = ar_from_decay(fr or 30.0, decay_time or 0.4, p)
    b0 = float(np.percentile(y, 15)) if fit_baseline else 0.0
    if p == 1:
        g1 = float(min(max(g[0], 0.0), 0.9999))
        c, b, lam = constrained_ar1(y, g1, sn, b0, fit_baseline, False)
        g = np.array([g1])
    else:
        roots = np.roots(np.concatenate([[1.0], -g]))
        if p == 2 and np.all(np.abs(roots.imag) < 1e-6) and np.all((roots.real >= 0) & (roots.real < 1)):
            c, b, lam = constrained_ar2_split(y, np.sort(roots.real)[::-1], sn, b0, fit_baseline)
        else:
            c, b, lam = constrained_ar_general(y, g, sn, b0, fit_baseline)
        c = np.maximum(c, 0)
    s = c.copy()
    for i, gi in enumerate(g):
        s[i + 1:] -= gi * c[:T - i - 1]
    s = np.maximum(s, 0)
    s[:1] = 0  # the calcium at frame 0 is the initial value c1, not a spike (as CaImAn's OASIS sets s[0] = 0)
    return Deconvolution(c, s, float(b), float(c[0]) if T else 0.0, g, sn, float(lam))
