"""Sparse non-negative deconvolution of calcium traces (OASIS, Friedrich et al. 2017), written from the equations.

Model (AR(1)): c_t = g c_{t-1} + s_t with s_t >= 0, observed y_t = b + c_t + noise. :func:`oasis_ar1` solves

    minimise 1/2 ||y - c||^2 + sum_t mu_t c_t   subject to  c_t - g c_{t-1} >= 0, c_1 >= 0

exactly with the pool-adjacent-violators algorithm (an L1 penalty lambda ||s||_1 becomes the linear term mu).
:func:`deconvolve` adds the baseline and picks lambda so that the residual matches the noise (CaImAn's
``constrained_foopsi``: ||y - b - c||^2 = sn^2 T). AR(2) is solved exactly too (:func:`constrained_ar`: an interior
point method on the banded problem in c, with the same lambda search); CaImAn's AR(2) code approximates this
problem (lambda from an AR(1) fit of a 5x decimated trace, then one NNLS), so its results differ from ours by a few
hundredths of the noise sigma in baseline and calcium on typical traces, more on very active ones (where its
residual overshoots sn^2 T). The AR(1) baseline is the exact optimum at each lambda (the root of a monotone
piecewise-linear function). On neurons firing in 10-25 % of frames CaImAn's AR(1) ``constrained_foopsi`` misses
its own constraint (residual 1.15-43 x sn^2 T on 16 simulated traces, baseline up to 37 sigma off the optimum), so
ours differs from CaImAn's there; on ordinary traces they agree within 0.02 sigma.
"""
from __future__ import annotations

import warnings
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
    return _oasis_ar1_slope(y, g, mu)[0]


@njit()
def _oasis_ar1_slope(y, g, mu):
    """:func:`oasis_ar1`, and the derivative of sum(c) with respect to a constant added to y (pools held fixed).

    A pool of frames t0..t0+l-1 holds c = v g^k with v = sum_k (y - mu)_{t0+k} g^k / sum_k g^2k, so a constant
    added to y moves its sum by (sum_k g^k)^2 / sum_k g^2k (by Cauchy-Schwarz at most l); a pool clipped to 0 by
    c_1 >= 0 does not move.

    Returns
    -------
    c : float64 (T,)
    slope : float
        d sum(c) / d y_const, in [0, T].
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
    slope = 0.0
    for i in range(n):
        v = num[i] / den[i]
        if v < 0.0:
            v = 0.0
        else:
            gsum = (1.0 - gl[i]) / (1.0 - g) if g < 1.0 else float(length[i])
            slope += gsum * gsum / den[i]
        x = v
        for k in range(start[i], start[i] + length[i]):
            c[k] = x
            x *= g
    return c, slope


@njit()
def _fit_ar1(y, g, lam, b0, fit_b, penalize_first):
    """Baseline and trace for a fixed lambda: the exact joint minimiser over b and c.

    b is optimal when it is the mean of y - c(b) (c(b): :func:`oasis_ar1` of y - b). h(b) = b + mean(c(b) - y) is
    piecewise linear and non-decreasing in b (slope 1 - d mean(c) / d(y - b), in [0, 1]), negative as b -> -inf
    when lam > 0 and positive as b -> +inf; its root is found with Newton steps (exact once the pools stop
    changing) kept inside a bracket. (Alternating b = mean(y - c) with the OASIS solve converges at the rate
    1 - slope, which on a neuron that fires in many frames is close to 1: after 20 alternations b was still
    tens of noise sigmas too high.)

    Returns
    -------
    c : float64 (T,), b : float, rss : float
    """
    T = y.shape[0]
    mu = np.empty(T)
    for t in range(T):
        mu[t] = lam * (1.0 - g)
    mu[T - 1] = lam
    if not penalize_first:
        mu[0] = -lam * g if T > 1 else 0.0
    b = b0
    c, slope = _oasis_ar1_slope(y - b, g, mu)
    if fit_b:
        ym = np.mean(y)
        scale = max(np.std(y), np.abs(y).max() * 1e-3, 1e-300)
        lo, hi = -np.inf, np.inf
        step = scale
        for _ in range(200):
            h = b + np.mean(c) - ym
            if abs(h) <= 1e-12 * scale or hi - lo <= 1e-14 * (abs(b) + scale):
                break
            if h > 0.0:
                hi = b
            else:
                lo = b
            d = 1.0 - slope / T
            nb = b - h / d if d > 1e-12 else (b - step if h > 0.0 else b + step)
            if not lo < nb < hi:
                if np.isfinite(lo) and np.isfinite(hi):
                    nb = 0.5 * (lo + hi)
                else:
                    nb = b - step if h > 0.0 else b + step
                    step *= 2.0
            b = nb
            c, slope = _oasis_ar1_slope(y - b, g, mu)
    rss = 0.0
    for t in range(T):
        r = y[t] - b - c[t]
        rss += r * r
    return c, b, rss


@njit()
def constrained_ar1(y, g, sn, b0, fit_b, penalize_first):
    """Noise-constrained AR(1) deconvolution: lambda with ||y - b - c||^2 = sn^2 T (to 1e-4 relative, by bisection;
    0 when the residual at lambda 0 is already above it).

    Returns c, b, lambda.
    """
    T = y.shape[0]
    target = sn * sn * T
    c, b, rss = _fit_ar1(y, g, 0.0, b0, fit_b, penalize_first)
    if rss >= target or sn <= 0.0:
        return c, b, 0.0
    lo = 0.0
    hi = sn * np.sqrt(T) * 0.1 + 1e-12
    c_hi, b_hi, rss_hi = _fit_ar1(y, g, hi, b, fit_b, penalize_first)
    it = 0
    while rss_hi < target and it < 60:
        lo = hi
        c, b = c_hi, b_hi
        hi *= 4.0
        c_hi, b_hi, rss_hi = _fit_ar1(y, g, hi, b_hi, fit_b, penalize_first)
        it += 1
    if rss_hi < target:
        return c_hi, b_hi, hi
    best_c, best_b, best_lam = c, b, lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        cm, bm, rssm = _fit_ar1(y, g, mid, best_b, fit_b, penalize_first)
        if abs(rssm - target) < 1e-4 * target:
            return cm, bm, mid  # on the constraint, from either side
        if rssm < target:
            lo = mid
            best_c, best_b, best_lam = cm, bm, mid
        else:
            hi = mid
        if (hi - lo) < 1e-7 * hi:
            break
    return best_c, best_b, best_lam


def ar_bands(g: np.ndarray, T: int) -> np.ndarray:
    """Bands of the lower-triangular operator D with s = D c (spikes from calcium) for an AR(p) model.

    Row t >= p is s_t = c_t - sum_i g_i c_{t-i}. The first p rows describe the calcium left from before the
    recording and are not spikes: row 0 is c_0 (>= 0) and, for p = 2 with real roots d >= r in [0, 1), row 1 is
    c_1 - d c_0 (>= 0). Those two constraints admit every state that a non-negative spike history leaves (c_1/c_0
    from d, for an old transient, to d + r, for one that started at frame 0), plus a spike at frame 1; neither row
    is penalised, as CaImAn's c1. For other g, row t < p is the AR recursion truncated at frame 0.

    Parameters
    ----------
    g : ndarray (p,)
        AR coefficients.
    T : int
        Number of frames.

    Returns
    -------
    ndarray (p + 1, T) float64
        ``a[k, t] = D[t, t - k]`` (``a[0] = 1``; zero where t < k).
    """
    g = np.asarray(g, dtype=np.float64).ravel()
    p = g.size
    a = np.zeros((p + 1, T))
    a[0] = 1.0
    for k in range(1, p + 1):
        a[k, k:] = -g[k - 1]
    if p == 2 and T > 1:
        roots = np.roots(np.concatenate([[1.0], -g]))
        if np.all(np.abs(roots.imag) < 1e-9) and np.all((roots.real >= 0) & (roots.real < 1)):
            a[1, 1] = -float(roots.real.max())
    return a


@njit()
def _d_mul(a, c):
    """s = D c for the bands ``a`` of :func:`ar_bands`."""
    T = c.shape[0]
    s = c.copy()
    for k in range(1, a.shape[0]):
        for t in range(k, T):
            s[t] += a[k, t] * c[t - k]
    return s


@njit()
def _dt_mul(a, z):
    """x = D^T z."""
    T = z.shape[0]
    x = z.copy()
    for k in range(1, a.shape[0]):
        for t in range(k, T):
            x[t - k] += a[k, t] * z[t]
    return x


@njit()
def _d_solve(a, s):
    """c with D c = s (forward substitution; D has a unit diagonal)."""
    T = s.shape[0]
    c = s.copy()
    for t in range(T):
        for k in range(1, a.shape[0]):
            if t >= k:
                c[t] -= a[k, t] * c[t - k]
    return c


@njit()
def _dt_solve(a, x):
    """z with D^T z = x (back substitution)."""
    T = x.shape[0]
    z = x.copy()
    for t in range(T - 1, -1, -1):
        for k in range(1, a.shape[0]):
            if t + k < T:
                z[t] -= a[k, t + k] * z[t + k]
    return z


@njit()
def _polish(y, a, q, lam, fit_b, s, z):
    """Re-solve with the active set of an interior-point iterate held fixed: the constraints with s_t < z_t become
    equalities, enforced by an augmented Lagrangian (penalty 1e6, multipliers started at z). Returns (c, b, ok),
    ok when the result satisfies all the optimality conditions (s >= 0 off the set, multipliers >= 0 on it) to
    1e-9 of the scale of y."""
    T = y.shape[0]
    rho = 1e6
    w = np.zeros(T)
    mult = np.zeros(T)
    for t in range(T):
        if s[t] < z[t]:
            w[t] = rho
            mult[t] = z[t]
    L = _cholesky_h(a, w)
    v = _cholesky_solve(L, np.ones(T))
    base = y - lam * _dt_mul(a, q)
    c = y.copy()
    b = 0.0
    sc = s
    for _ in range(6):
        u = _cholesky_solve(L, base + _dt_mul(a, mult))
        if fit_b:
            b = (y.sum() - u.sum()) / max(T - v.sum(), 1e-12)
            c = u - v * b
        else:
            c = u
        sc = _d_mul(a, c)
        mult -= w * sc
    mult = _dt_solve(a, c + b - y) + lam * q
    eps = 1e-9 * max(np.abs(y).max(), 1e-300)
    ok = True
    for t in range(T):
        if (w[t] == 0.0 and sc[t] < -eps) or (w[t] > 0.0 and (mult[t] < -eps or abs(sc[t]) > eps)):
            ok = False
            break
    return c, b, ok


@njit()
def _cholesky_h(a, w):
    """Banded Cholesky factor of H = I + D^T diag(w) D (bandwidth p), lower: ``L[j, k]`` = L_(j+k, j)."""
    m = a.shape[0] - 1
    T = w.shape[0]
    H = np.zeros((T, m + 1))
    for j in range(T):
        H[j, 0] = 1.0
    for t in range(T):
        for k in range(min(m, t) + 1):
            wa = w[t] * a[k, t]
            for j in range(k + 1):
                # D[t, t-k] D[t, t-j] w_t goes to H[t-j, t-k] (row >= column)
                H[t - k, k - j] += wa * a[j, t]
    L = np.zeros((T, m + 1))
    for j in range(T):
        d = H[j, 0]
        for k in range(1, min(m, j) + 1):
            d -= L[j - k, k] ** 2
        d = np.sqrt(max(d, 1e-300))
        L[j, 0] = d
        for i in range(1, min(m, T - 1 - j) + 1):
            v = H[j, i]
            for k in range(1, min(m - i, j) + 1):
                v -= L[j - k, i + k] * L[j - k, k]
            L[j, i] = v / d
    return L


@njit()
def _cholesky_solve(L, x):
    """Solve L L^T u = x for the banded factor of :func:`_cholesky_h`."""
    m = L.shape[1] - 1
    T = x.shape[0]
    u = x.copy()
    for j in range(T):
        v = u[j]
        for k in range(1, min(m, j) + 1):
            v -= L[j - k, k] * u[j - k]
        u[j] = v / L[j, 0]
    for j in range(T - 1, -1, -1):
        v = u[j]
        for k in range(1, min(m, T - 1 - j) + 1):
            v -= L[j, k] * u[j + k]
        u[j] = v / L[j, 0]
    return u


@njit()
def _max_step(x, dx):
    """Largest alpha in (0, 1] with x + alpha dx >= 0."""
    alpha = 1.0
    for i in range(x.shape[0]):
        if dx[i] < 0.0:
            r = -x[i] / dx[i]
            if r < alpha:
                alpha = r
    return alpha


@njit()
def _newton_step(a, L, v, s, z, rd, rb, rp, rcent, fit_b):
    """Direction of the primal-dual Newton system (see :func:`l1_ar_fixed_lambda`)."""
    T = s.shape[0]
    rhs = -rd - _dt_mul(a, (rcent + z * rp) / s)
    u = _cholesky_solve(L, rhs)
    db = 0.0
    if fit_b:
        db = (-rb - u.sum()) / max(T - v.sum(), 1e-12)
        dc = u - v * db
    else:
        dc = u
    ds = _d_mul(a, dc) + rp
    dz = -(rcent + z * ds) / s
    return dc, db, ds, dz


@njit()
def l1_ar_fixed_lambda(y, a, q, lam, fit_b, tol, max_iter):
    """Exact solution of min_{c, b} 1/2 ||y - b - c||^2 + lam q.(D c) subject to D c >= 0 (b = 0 unless fit_b).

    Primal-dual interior point (Mehrotra predictor-corrector) with slack s = D c and multipliers z >= 0; each
    Newton step solves the banded system (I + D^T diag(z/s) D), bordered by the baseline, in O(T p^2).

    Parameters
    ----------
    y : float64 (T,)
    a : float64 (p + 1, T)
        Bands of D (:func:`ar_bands`).
    q : float64 (T,)
        Penalty weight of each s_t (0 for the rows that describe the initial calcium).
    lam : float
        Sparsity penalty, units of y.
    fit_b : bool
    tol : float
        Relative tolerance on the duality gap and on the residuals.
    max_iter : int

    Returns
    -------
    c : float64 (T,), b : float, s : float64 (T,) (= D c >= 0)
    drss : float
        Derivative of ||y - b - c||^2 with respect to lam.
    """
    T = y.shape[0]
    scale = max(np.std(y), np.abs(y).max() * 1e-3, lam, 1e-12)
    gsum = 0.0
    for k in range(1, a.shape[0]):
        gsum -= a[k, T - 1]
    s = np.full(T, scale * max(0.1 * (1.0 - gsum), 1e-3))
    c = _d_solve(a, s)
    b = 0.0
    if fit_b:
        b = np.mean(y - c)
    z = np.full(T, scale + lam)
    lq = lam * q
    ones = np.ones(T)
    atol = tol * scale
    for _ in range(max_iter):
        r = c + b - y
        rd = r + _dt_mul(a, lq - z)
        rb = r.sum() if fit_b else 0.0
        rp = _d_mul(a, c) - s
        mu = (s @ z) / T
        if (mu < atol * scale and np.sqrt((rd @ rd) / T) < atol and abs(rb) / T < atol
                and np.sqrt((rp @ rp) / T) < atol):
            break
        w = np.minimum(z / s, 1e14)
        L = _cholesky_h(a, w)
        v = _cholesky_solve(L, ones) if fit_b else ones
        dc, db, ds, dz = _newton_step(a, L, v, s, z, rd, rb, rp, s * z, fit_b)
        mu_aff = ((s + _max_step(s, ds) * ds) @ (z + _max_step(z, dz) * dz)) / T
        sigma = (mu_aff / mu) ** 3
        dc, db, ds, dz = _newton_step(a, L, v, s, z, rd, rb, rp, s * z + ds * dz - sigma * mu, fit_b)
        alpha = 0.99 * min(_max_step(s, ds), _max_step(z, dz))
        c += alpha * dc
        b += alpha * db
        s += alpha * ds
        z += alpha * dz
    cp, bp, ok = _polish(y, a, q, lam, fit_b, s, z)
    if ok:
        c, b = cp, bp
    # d(RSS)/d(lam) at the solution: differentiate the optimality conditions with the active set held fixed
    L = _cholesky_h(a, np.minimum(z / s, 1e14))
    u = _cholesky_solve(L, -_dt_mul(a, q))
    if fit_b:
        v = _cholesky_solve(L, ones)
        db = -u.sum() / max(T - v.sum(), 1e-12)
        u = u - v * db
    else:
        db = 0.0
    r = y - b - c
    drss = -2.0 * (r @ u + db * r.sum())
    return c, b, _d_mul(a, c), drss


def constrained_ar(y: np.ndarray, g: np.ndarray, sn: float, fit_b: bool, rtol: float = 1e-3
                   ) -> tuple[np.ndarray, float, float]:
    """Noise-constrained AR(p) deconvolution: minimise ||s||_1 subject to ||y - b - c||^2 = sn^2 T, s = D c >= 0.

    The problem that CaImAn's ``constrained_foopsi`` states (and that :func:`constrained_ar1` solves exactly for
    p = 1), solved here exactly for any p: :func:`l1_ar_fixed_lambda` for a given lambda, and Newton's method on
    log(RSS) against log(lambda), kept inside a bracket, until the residual is within ``rtol`` of sn^2 T.
    (CaImAn's AR(2) code approximates the same problem: lambda from an AR(1) fit of a decimated trace, then one
    NNLS; on simulated GCaMP6s traces its residual was within 3 % of sn^2 T, but up to 6 times it on a neuron
    firing in 7 % of the frames.)

    Parameters
    ----------
    y : ndarray (T,)
    g : ndarray (p,)
        AR coefficients.
    sn : float
        Noise standard deviation (units of y).
    fit_b : bool
        Estimate a free baseline b (else b = 0).
    rtol : float
        Relative tolerance on the residual.

    Returns
    -------
    c : ndarray (T,) (without b), b : float, lam : float
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    T = y.size
    a = ar_bands(g, T)
    q = np.ones(T)
    q[:a.shape[0] - 1] = 0.0
    target = sn * sn * T

    spike_floor = 1e-9 * max(float(np.abs(y).max()), 1e-300)

    def solve(lam: float) -> tuple[float, float, bool, tuple[np.ndarray, float, float]]:
        """log(RSS / target), its derivative in log(lam), whether any spike is left, and the solution."""
        c, b, s, drss = l1_ar_fixed_lambda(y, a, q, lam, fit_b, 1e-10, 100)
        rss = max(float(np.sum((y - b - c) ** 2)), 1e-300)
        return np.log(rss / target), lam * drss / rss, bool(np.any(s * q > spike_floor)), (c, b, lam)

    if sn <= 0.0:
        c, b, _, _ = l1_ar_fixed_lambda(y, a, q, 0.0, fit_b, 1e-12, 200)
        return c, b, 0.0
    # Newton's method on log(RSS) against log(lam), kept inside a bracket [lo, hi] (bisection in log(lam) when a
    # Newton step leaves it). lam starts at sn ||h||, the noise of K^T r for the impulse response h.
    h = _d_solve(a, np.concatenate([[0.0, 1.0], np.zeros(min(T, 2000) - 2)])) if T > 2 else np.ones(1)
    u = np.log(sn * max(np.linalg.norm(h), 1.0))
    lo, hi = -np.inf, np.inf
    best, best_f = None, np.inf
    tol = np.log1p(rtol)
    for _ in range(60):
        f, df, spikes_left, sol = solve(float(np.exp(u)))
        if abs(f) < best_f:
            best, best_f = sol, abs(f)
        if abs(f) <= tol:
            break
        if f < 0 and not spikes_left:
            return sol  # a larger lambda changes nothing: the residual stays below the noise
        if f < 0:
            lo = u
        else:
            hi = u
        step = -f / df if df > 1e-12 else np.inf
        u_new = u + float(np.clip(step, -3.0, 3.0))
        if not lo < u_new < hi:
            if np.isfinite(lo) and np.isfinite(hi):
                u_new = 0.5 * (lo + hi)
            else:
                u_new = u + (3.0 if f < 0 else -3.0)
        if abs(u_new - u) < 1e-9 or u_new < np.log(sn) - 30:
            break  # lam has no effect left: even no penalty leaves the residual above the noise
        u = u_new
    return best


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


def _fill_missing(y: np.ndarray) -> np.ndarray:
    """``y`` (T,) with its non-finite values interpolated linearly in time, with a RuntimeWarning; ValueError when
    no value is finite. (Filling with 0 would put a dropped frame a whole baseline below the trace and drag the
    fitted baseline down with it.)"""
    bad = ~np.isfinite(y)
    if not bad.any():
        return y
    if bad.all():
        raise ValueError(f"the trace has no finite value (all {y.size} NaN or inf): nothing to deconvolve")
    warnings.warn(f"the trace has {int(bad.sum())} non-finite values of {y.size}: interpolated from their "
                  "neighbours in time before deconvolution", RuntimeWarning, stacklevel=3)
    t = np.arange(y.size)
    y = y.copy()
    y[bad] = np.interp(t[bad], t[~bad], y[~bad])
    return y


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

    Raises
    ------
    ValueError
        If ``p`` >= 2 and ``g`` is not a decaying AR model (a root of 1 - sum_i g_i z^-i on or outside the unit
        circle), or if ``y`` has no finite value.

    Warns
    -----
    RuntimeWarning
        When ``y`` has non-finite values (a dropped frame): they are interpolated linearly from the finite values
        either side (the nearest one at the ends) and deconvolved like the others.
    """
    y = _fill_missing(np.asarray(y, dtype=np.float64).ravel())
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
        if np.any(np.abs(roots) >= 1.0):
            raise ValueError(f"AR coefficients g={g.tolist()} do not describe a decaying transient: the roots of "
                             f"1 - sum_i g_i z^-i, {np.round(roots, 4).tolist()}, must lie inside the unit circle")
        c, b, lam = constrained_ar(y, g, sn, fit_baseline)
        c = np.maximum(c, 0)
    s = c.copy()
    for i, gi in enumerate(g):
        s[i + 1:] -= gi * c[:T - i - 1]
    s = np.maximum(s, 0)
    s[:1] = 0  # the calcium at frame 0 is the initial value c1, not a spike (as CaImAn's OASIS sets s[0] = 0)
    return Deconvolution(c, s, float(b), float(c[0]) if T else 0.0, g, sn, float(lam))
