"""Per-pixel statistics of pixel-major blocks: the compiled kernels and per-block work behind summary images.

A pixel-major block ``x`` (L, W, n) holds L lines of W pixels, each pixel's n frames contiguous (like a CaImAn
order-C memmap); line l+1 is the neighbour line of line l. :class:`_Sums` collects, block by block, what
:mod:`cellfie_caiman.summary` turns into its images: moments, maxima and neighbour products
(:func:`_block_stats`), CaImAn's PSD noise (:func:`_psd_noise`) and medians (:func:`_median_inplace`).
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from ._jit import njit

#: Number of frames CaImAn's ``get_noise_fft`` uses at most (``max_num_samples_fft``).
NOISE_MAX_FRAMES = 3072
#: Samples per FFT call in the noise step (enough to make the call overhead small, few enough to stay in cache).
_FFT_SAMPLES = 128 * 3000
#: Series up to this length are sorted for the median, longer ones partitioned.
_SORT_MAX = 800


def noise_frames(n_frames: int) -> np.ndarray:
    """Frame indices CaImAn's ``get_noise_fft`` uses for the PSD noise of a series of ``n_frames``.

    All frames if ``n_frames <= 3072``; otherwise 1024 frames from the start (skipping frame 0, as CaImAn
    does), 1024 around the middle and the last 1024, concatenated in this order.

    Parameters
    ----------
    n_frames : int
        Length T of the time series.

    Returns
    -------
    ndarray of int64
        Indices into ``range(n_frames)`` (may repeat when the three parts overlap, as in CaImAn).
    """
    if n_frames <= NOISE_MAX_FRAMES:
        return np.arange(n_frames)
    third = NOISE_MAX_FRAMES // 3
    mid = n_frames // 2
    return np.concatenate([np.arange(1, third + 1), np.arange(mid - third // 2, mid + third // 2),
                           np.arange(n_frames - third, n_frames)])


def _noise_band(n: int) -> tuple[int, int]:
    """rfft bins [k0, k1) with frequency k/n in (0.25, 0.5] cycles/frame (CaImAn's noise range)."""
    return n // 4 + 1, n // 2 + 1


# ----------------------------------------------------------------------------------------------------------------
# Numba kernels. They work on "pixel-major" blocks x (L, W, n): L lines of W pixels, each pixel's n frames
# contiguous (like a CaImAn order-C memmap). Line l+1 is the neighbour line of line l.

_FASTMATH = {"reassoc", "contract"}  # lets LLVM vectorise the float64 reductions; no NaN/inf assumptions


@njit(nogil=True, fastmath=_FASTMATH)
def _block_stats(x, n_lines, t0, t1, shift, s1, s2, vmax, p_along, p_next, p_fwd, p_back):  # pragma: no cover
    """Moments, max and neighbour products over frames [t0, t1) of the first ``n_lines`` lines of a pixel-major
    block (compiled).

    Parameters
    ----------
    x : float32 (L, W, n), C-contiguous
        L >= n_lines; line ``n_lines`` (if present) is only used as the neighbour line of line ``n_lines - 1``.
    shift, s1, s2, p_along, p_next, p_fwd, p_back : float64 (n_lines, W), written
        With ``a = x - shift`` (shift = float32 mean of the pixel's first <= 8 frames, for accuracy): s1 = sum a,
        s2 = sum a², p_along = sum a(l,w)·a(l,w+1), p_next = sum a(l,w)·a(l+1,w), p_fwd = sum a(l,w)·a(l+1,w+1),
        p_back = sum a(l,w)·a(l+1,w-1) over frames, in float64; entries without that neighbour are 0.
    vmax : int32 (n_lines, W), written
        Max over frames as an order-preserving int32 key of the float32 value (integer max vectorises; see
        _key_to_float).
    """
    n_all, width, _ = x.shape
    n = t1 - t0
    m = min(n, 8)
    sh = np.empty((n_all, width), dtype=np.float32)
    for line in range(n_all):
        for w in range(width):
            acc = 0.0
            for t in range(t0, t0 + m):
                acc += x[line, w, t]
            sh[line, w] = acc / m
    keys = x.view(np.int32)
    zero = np.zeros(n, dtype=np.float32)
    nil = np.float32(0.0)
    for line in range(n_lines):
        below = line + 1 < n_all
        for w in range(width):
            right = w + 1 < width
            left = w > 0
            a = x[line, w, t0:t1]
            sa = sh[line, w]
            # a missing neighbour is replaced by a zero series with shift 0: its products are 0
            r = x[line, w + 1, t0:t1] if right else zero
            sr = sh[line, w + 1] if right else nil
            d = x[line + 1, w, t0:t1] if below else zero
            sd = sh[line + 1, w] if below else nil
            f = x[line + 1, w + 1, t0:t1] if below and right else zero
            sf = sh[line + 1, w + 1] if below and right else nil
            b = x[line + 1, w - 1, t0:t1] if below and left else zero
            sb = sh[line + 1, w - 1] if below and left else nil
            ka = keys[line, w, t0:t1]
            acc1 = 0.0
            acc2 = 0.0
            pr = 0.0
            pd = 0.0
            pf = 0.0
            pb = 0.0
            top = np.int32(-2147483648)
            for t in range(n):
                va = np.float64(a[t] - sa)
                acc1 += va
                acc2 += va * va
                pr += va * (r[t] - sr)
                pd += va * (d[t] - sd)
                pf += va * (f[t] - sf)
                pb += va * (b[t] - sb)
                k = ka[t]
                top = max(top, k ^ ((k >> 31) & np.int32(0x7FFFFFFF)))
            shift[line, w] = sa
            s1[line, w] = acc1
            s2[line, w] = acc2
            vmax[line, w] = top
            p_along[line, w] = pr
            p_next[line, w] = pd
            p_fwd[line, w] = pf
            p_back[line, w] = pb


@njit(nogil=True, fastmath=_FASTMATH)
def _band_power(spec, k0, k1, out):  # pragma: no cover - compiled
    """out[p] = sum over k0 <= k < k1 of |spec[p, k]|² (complex64 spectrum rows), in float64."""
    for p in range(spec.shape[0]):
        acc = 0.0
        for k in range(k0, k1):
            v = spec[p, k]
            acc += np.float64(v.real * v.real + v.imag * v.imag)
        out[p] = acc


@njit(nogil=True)
def _to_pixel_major(frames, line0, out, t0):  # pragma: no cover - compiled
    """out[l, w, t0 + t] = float32(frames[t, line0 + l, w]) for l < out.shape[0], t < frames.shape[0].

    ``frames`` (n, rows, cols) of any numeric dtype and strides. Returns False if a value is NaN/inf as float32.
    Frames are taken 8 at a time (rows of a frame are 2^k bytes apart in typical movies: more at once would
    collide in the cache).
    """
    n = frames.shape[0]
    n_lines, width, _ = out.shape
    n8 = n - n % 8
    zero = np.float32(0.0)
    check = np.float32(0.0)
    for line in range(n_lines):
        src = line0 + line
        for w0 in range(0, width, 1024):
            w1 = min(width, w0 + 1024)
            for i0 in range(0, n8, 8):
                for w in range(w0, w1):
                    for i in range(8):
                        v = np.float32(frames[i0 + i, src, w])
                        check += v * zero
                        out[line, w, t0 + i0 + i] = v
            for w in range(w0, w1):
                for i in range(n8, n):
                    v = np.float32(frames[i, src, w])
                    check += v * zero
                    out[line, w, t0 + i] = v
    return check == zero


# ----------------------------------------------------------------------------------------------------------------
# Per-block work: statistics, PSD noise, median


class _Sums:
    """Per-batch results in block orientation: (lines, width) arrays, filled block by block."""

    def __init__(self, n_lines: int, width: int, n: int):
        self.n = n
        shape = (n_lines, width)
        self.shift, self.s1, self.s2, self.p_along, self.p_next, self.p_fwd, self.p_back, self.sigma = (
            np.zeros(shape) for _ in range(8))
        self.vmax = np.zeros(shape, dtype=np.int32)  # order-preserving int32 keys of the float32 maxima
        self.median = np.zeros(shape, dtype=np.float32)

    def stats(self, block: np.ndarray, line0: int, n_lines: int, t0: int = 0) -> None:
        """Statistics of frames [t0, t0 + n) of the block's first ``n_lines`` lines, stored at ``line0``."""
        sl = slice(line0, line0 + n_lines)
        _block_stats(block, n_lines, t0, t0 + self.n, self.shift[sl], self.s1[sl], self.s2[sl], self.vmax[sl],
                     self.p_along[sl], self.p_next[sl], self.p_fwd[sl], self.p_back[sl])

    def finite(self, line0: int, n_lines: int) -> bool:
        sl = slice(line0, line0 + n_lines)
        return bool(np.isfinite(self.s2[sl]).all() and np.isfinite(_key_to_float(self.vmax[sl])).all())

    def noise(self, block: np.ndarray, line0: int, n_lines: int, t0: int = 0) -> None:
        """PSD noise of frames [t0, t0 + n) of the block's first ``n_lines`` lines, stored at ``line0``."""
        width = block.shape[1]
        series = block[:n_lines, :, t0:t0 + self.n].reshape(n_lines * width, self.n)
        self.sigma[line0:line0 + n_lines] = _psd_noise(series).reshape(n_lines, width)

    def median_inplace(self, block: np.ndarray, line0: int, n_lines: int) -> None:
        """Median of the block's first ``n_lines`` lines (all its n frames), reordering them in place."""
        width = block.shape[1]
        series = block[:n_lines].reshape(n_lines * width, self.n)
        self.median[line0:line0 + n_lines] = _median_inplace(series).reshape(n_lines, width)

    def noise_median(self, block: np.ndarray, line0: int, n_lines: int, want_median: bool) -> None:
        """PSD noise and (destroying the order of the block's first ``n_lines`` lines) median."""
        self.noise(block, line0, n_lines)
        if want_median:
            self.median_inplace(block, line0, n_lines)


def _psd_noise(series: np.ndarray) -> np.ndarray:
    """CaImAn's ``get_noise_fft(noise_method='mean')`` of each row of ``series`` (pixels, n) -> float64 (pixels,).

    Each row is shifted by a value of its own (the median of its first, middle and last samples) before the float32
    FFT: a constant only enters the excluded zero-frequency bin, but a large one left in would leak its round-off
    into the noise band (raw counts far from zero, such as uint16 or int16 data with large offsets and little
    noise, would get their noise wrong by up to a few percent).
    """
    n = series.shape[1]
    idx = noise_frames(n)
    if idx.size != n:
        series = series[:, idx]
    n_noise = idx.size
    k0, k1 = _noise_band(n_noise)
    if k1 <= k0:
        return np.zeros(series.shape[0])
    power = np.empty(series.shape[0])
    step = max(1, _FFT_SAMPLES // n_noise)
    shifted = np.empty((min(step, series.shape[0]), n_noise), dtype=np.float32)
    for p in range(0, series.shape[0], step):  # small groups keep the spectrum in cache
        group = series[p:p + step]
        out = shifted[:len(group)]
        np.subtract(group, _median3(group[:, :1], group[:, n_noise // 2:n_noise // 2 + 1], group[:, -1:]), out=out)
        _band_power(scipy.fft.rfft(out, axis=1, workers=1), k0, k1, power[p:p + step])
    return np.sqrt(power / ((k1 - k0) * n_noise))


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Element-wise median of three arrays of the same shape."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _median_inplace(series: np.ndarray) -> np.ndarray:
    """Median of each row of ``series`` (pixels, n) float32, as np.median; reorders the rows in place.

    Short rows are sorted (NumPy's vectorised sort beats selection below ~800 values), longer ones partitioned.
    """
    n = series.shape[1]
    k = n // 2
    if n <= _SORT_MAX:
        series.sort(axis=1)
        lower = series[:, (n - 1) // 2]
    else:
        series.partition(k, axis=1)
        lower = series[:, :k].max(axis=1) if n % 2 == 0 else None
    upper = series[:, k]
    if n % 2:
        return upper.copy()
    return (0.5 * (lower.astype(np.float64) + upper)).astype(np.float32)


def _key_to_float(keys: np.ndarray) -> np.ndarray:
    """Invert the order-preserving int32 key of _block_stats (k ^ ((k >> 31) & 0x7fffffff) is an involution)."""
    keys = np.asarray(keys, dtype=np.int32)
    return (keys ^ ((keys >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)
