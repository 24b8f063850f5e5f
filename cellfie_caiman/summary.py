"""Summary images of a calcium-imaging movie: local correlation, peak-to-noise, std, mean, median and max.

Every image is computed in one streaming pass over the movie (plus, only for batches that do not fit the
memory budget, extra passes that read row bands for the median and the noise), with float64 accumulators.

Definitions (``Y`` is one batch of frames, shape (T, rows, cols); "pixel" means its time course):

``corr``
    CaImAn's ``local_correlations_fft``: for each pixel, the mean over its in-bounds 8 neighbours (8 inside,
    5 on edges, 3 in corners) of the temporal Pearson correlation with that neighbour. A pixel whose std is 0
    contributes a correlation of 0 (CaImAn: z-score 0), so a constant pixel has corr 0 and is never NaN.
``pnr``
    CaImAn's ``correlation_pnr(Y, gSig=None)`` peak-to-noise ratio: ``max_t(Y - mean_t Y) / sigma``, clipped
    at >= 0, where ``sigma`` is CaImAn's ``get_noise_fft(noise_method='mean')``: with ``X_k`` the DFT over time,
    ``sigma**2 = mean(|X_k|**2 / T)`` over the frequencies ``k/T`` in (0.25, 0.5] cycles/frame. When T > 3072
    the noise uses, exactly as CaImAn does, only 3072 frames: ``[1, 1025)``, ``[T//2 - 512, T//2 + 512)`` and
    ``[T - 1024, T)`` (see :func:`noise_frames`). A pixel with sigma = 0 has pnr 0 (CaImAn gives NaN).
``std``, ``mean``, ``median``, ``max``
    Population std (ddof=0), mean, median (the mean of the two middle values when T is even, like
    ``np.median``) and max over time.

With ``batch_frames`` the movie is cut into consecutive batches (see :func:`batch_bounds`), every image is
computed per batch, and the pixel-wise maximum over batches is returned.

All images are float32 of shape (rows, cols).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import scipy.fft
from numba import njit, prange
from tqdm.auto import tqdm

__all__ = ["SummaryImages", "summary_images", "local_correlation", "batch_bounds", "noise_frames"]

logger = logging.getLogger(__name__)

#: Number of frames CaImAn's ``get_noise_fft`` uses at most (``max_num_samples_fft``).
NOISE_MAX_FRAMES = 3072
#: Default memory budget (bytes) of one block of frames held at once.
DEFAULT_BLOCK_BYTES = 512 * 2**20
#: Frames averaged for the per-pixel offset subtracted before accumulating the moments (numerical accuracy).
_SHIFT_FRAMES = 8
#: Pixels processed together by the median / noise step (a (pixels, T) block that stays in cache).
_PIXEL_BLOCK = 4096


class SummaryImages(NamedTuple):
    """Summary images of a movie, each float32 of shape (rows, cols).

    Attributes
    ----------
    corr : ndarray
        Local correlation: mean Pearson correlation of each pixel with its in-bounds 8 neighbours (unitless, in
        [-1, 1]).
    pnr : ndarray
        Peak-to-noise ratio: (max over time - temporal mean) / PSD noise sigma (unitless, >= 0).
    std : ndarray
        Temporal standard deviation (ddof=0), in movie units.
    mean : ndarray
        Temporal mean, in movie units.
    median : ndarray
        Temporal median, in movie units.
    max : ndarray
        Temporal maximum, in movie units.
    """

    corr: np.ndarray
    pnr: np.ndarray
    std: np.ndarray
    mean: np.ndarray
    median: np.ndarray
    max: np.ndarray


# ----------------------------------------------------------------------------------------------------------------
# Frames: batches and the noise subset


def batch_bounds(n_frames: int, batch_frames: int | None) -> list[tuple[int, int]]:
    """Cut ``n_frames`` consecutive frames into batches of ``batch_frames``.

    All frames are used. A remainder shorter than ``batch_frames / 2`` is merged into the previous batch (so
    the last batch has between ``batch_frames`` and ``1.5 * batch_frames`` frames); a longer remainder is a
    batch of its own. A movie shorter than ``batch_frames`` is one batch.

    Parameters
    ----------
    n_frames : int
        Number of frames T.
    batch_frames : int or None
        Frames per batch; None means one batch with every frame.

    Returns
    -------
    list of (start, stop)
        Half-open frame ranges, in order, covering ``range(n_frames)``.

    Examples
    --------
    >>> batch_bounds(1100, 250)
    [(0, 250), (250, 500), (500, 750), (750, 1100)]
    >>> batch_bounds(1130, 250)
    [(0, 250), (250, 500), (500, 750), (750, 1000), (1000, 1130)]
    """
    if n_frames < 1:
        raise ValueError(f"the movie has no frame (n_frames={n_frames})")
    if batch_frames is None:
        return [(0, n_frames)]
    if int(batch_frames) != batch_frames or batch_frames < 2:
        raise ValueError(f"batch_frames must be an integer >= 2 or None, got {batch_frames!r}")
    batch_frames = int(batch_frames)
    n_full, rest = divmod(n_frames, batch_frames)
    starts = [k * batch_frames for k in range(n_full)]
    if n_full == 0 or 2 * rest >= batch_frames:
        starts.append(n_full * batch_frames)
    stops = starts[1:] + [n_frames]
    return list(zip(starts, stops, strict=True))


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
# Numba kernels


@njit(parallel=True, cache=True)
def _accumulate(block, shift, s1, s2, p_right, p_down, p_dr, p_dl, vmax):  # pragma: no cover - compiled
    """Add one block of frames (n, rows, cols) float32 to the moment and neighbour-product sums.

    ``a = block - shift`` (float64). Per pixel (i, j): s1 += a, s2 += a², p_right += a(i,j)·a(i,j+1),
    p_down += a(i,j)·a(i+1,j), p_dr += a(i,j)·a(i+1,j+1), p_dl += a(i,j)·a(i+1,j-1); vmax = max(vmax, block).
    Entries whose neighbour is out of bounds are left untouched.
    """
    n, rows, cols = block.shape
    for i in prange(rows):
        a = np.empty(cols)
        b = np.empty(cols)
        below = i + 1 < rows
        for t in range(n):
            for j in range(cols):
                v = block[t, i, j]
                a[j] = v - shift[i, j]
                vmax[i, j] = max(vmax[i, j], v)
            for j in range(cols):
                s1[i, j] += a[j]
                s2[i, j] += a[j] * a[j]
            for j in range(cols - 1):
                p_right[i, j] += a[j] * a[j + 1]
            if below:
                for j in range(cols):
                    b[j] = block[t, i + 1, j] - shift[i + 1, j]
                for j in range(cols):
                    p_down[i, j] += a[j] * b[j]
                for j in range(cols - 1):
                    p_dr[i, j] += a[j] * b[j + 1]
                for j in range(1, cols):
                    p_dl[i, j] += a[j] * b[j - 1]


@njit(cache=True, inline="always")
def _select(a, k):  # pragma: no cover - compiled
    """Return the k-th smallest element of ``a`` (1-D), partially reordering ``a`` in place (Hoare select).

    On return ``a[:k] <= a[k] <= a[k+1:]``.
    """
    lo = 0
    hi = a.size - 1
    while hi > lo:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@njit(parallel=True, cache=True)
def _median_rows(x, out):  # pragma: no cover - compiled
    """Median of each row of ``x`` (pixels, n) float32 into ``out`` (pixels,); ``x`` is reordered in place."""
    p, n = x.shape
    k = (n - 1) // 2
    for q in prange(p):
        row = x[q]
        lo = _select(row, k)
        if n % 2 == 1:
            out[q] = lo
        else:
            hi = row[k + 1]
            for t in range(k + 2, n):
                hi = min(hi, row[t])
            out[q] = 0.5 * (np.float64(lo) + np.float64(hi))


@njit(parallel=True, cache=True)
def _transpose(x, out):  # pragma: no cover - compiled
    """out[p, t] = x[t, p] for x (n, pixels) -> out (pixels, n), in cache-sized tiles."""
    n, p = x.shape
    tile = 32
    n_tiles = (p + tile - 1) // tile
    for b in prange(n_tiles):
        p0 = b * tile
        p1 = min(p, p0 + tile)
        for t0 in range(0, n, tile):
            t1 = min(n, t0 + tile)
            for q in range(p0, p1):
                for t in range(t0, t1):
                    out[q, t] = x[t, q]


# ----------------------------------------------------------------------------------------------------------------
# Per-batch statistics


class _Moments:
    """Streaming float64 sums of one batch: moments, the 4 forward neighbour products and the max."""

    def __init__(self, shift: np.ndarray):
        rows, cols = shift.shape
        self.shift = np.ascontiguousarray(shift, dtype=np.float64)
        self.n = 0
        self.s1, self.s2, self.p_right, self.p_down, self.p_dr, self.p_dl = (np.zeros((rows, cols)) for _ in range(6))
        self.vmax = np.full((rows, cols), -np.inf, dtype=np.float32)

    def update(self, block: np.ndarray) -> None:
        """Add frames ``block`` (n, rows, cols) float32."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        _accumulate(block, self.shift, self.s1, self.s2, self.p_right, self.p_down, self.p_dr, self.p_dl, self.vmax)
        self.n += block.shape[0]

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Temporal mean and population std (float64, (rows, cols))."""
        m = self.s1 / self.n
        var = np.maximum(self.s2 / self.n - m * m, 0.0)
        return self.shift + m, np.sqrt(var)

    def pair_correlations(self) -> dict[str, np.ndarray]:
        """Pearson correlation of each forward neighbour pair, full (rows, cols) arrays indexed by the first pixel.

        Keys 'right' (i,j)-(i,j+1), 'down' (i,j)-(i+1,j), 'dr' (i,j)-(i+1,j+1), 'dl' (i,j)-(i+1,j-1). Entries
        without a neighbour are 0. A pair with a zero-std pixel has correlation 0.
        """
        n = self.n
        m = self.s1 / n
        sd = np.sqrt(np.maximum(self.s2 / n - m * m, 0.0))
        rows, cols = m.shape
        out = {}
        specs = {
            "right": (self.p_right, (slice(None), slice(0, cols - 1)), (slice(None), slice(1, cols))),
            "down": (self.p_down, (slice(0, rows - 1), slice(None)), (slice(1, rows), slice(None))),
            "dr": (self.p_dr, (slice(0, rows - 1), slice(0, cols - 1)), (slice(1, rows), slice(1, cols))),
            "dl": (self.p_dl, (slice(0, rows - 1), slice(1, cols)), (slice(1, rows), slice(0, cols - 1))),
        }
        for name, (prod, first, second) in specs.items():
            rho = np.zeros((rows, cols))
            den = sd[first] * sd[second]
            cov = prod[first] / n - m[first] * m[second]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0)
            rho[first] = np.clip(r, -1.0, 1.0)
            out[name] = rho
        return out


def _neighbour_mean(rho: dict[str, np.ndarray], eight_neighbours: bool = True,
                    caiman_quirk: bool = False) -> np.ndarray:
    """Mean over in-bounds neighbours of the pair correlations from :meth:`_Moments.pair_correlations`.

    With ``caiman_quirk`` (8 neighbours only) the two diagonal terms are those of CaImAn's
    ``local_correlations``: pixel (i, j) uses rho((i, j-1), (i-1, j)) instead of rho((i, j), (i-1, j-1)) and
    rho((i, j-1), (i+1, j)) instead of rho((i, j), (i+1, j-1)).
    """
    rows, cols = rho["right"].shape
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))

    def add(dst, src, values):
        total[dst] += values[src]
        count[dst] += 1

    r, d, dr, dl = rho["right"], rho["down"], rho["dr"], rho["dl"]
    add((slice(None), slice(0, cols - 1)), (slice(None), slice(0, cols - 1)), r)     # right neighbour
    add((slice(None), slice(1, cols)), (slice(None), slice(0, cols - 1)), r)         # left neighbour
    add((slice(0, rows - 1), slice(None)), (slice(0, rows - 1), slice(None)), d)     # below
    add((slice(1, rows), slice(None)), (slice(0, rows - 1), slice(None)), d)         # above
    if eight_neighbours:
        inner = (slice(0, rows - 1), slice(0, cols - 1))   # pair index of (i,j)-(i+1,j+1)
        inner_l = (slice(0, rows - 1), slice(1, cols))     # pair index of (i,j)-(i+1,j-1)
        add(inner, inner, dr)                                           # down-right of (i, j)
        add((slice(0, rows - 1), slice(1, cols)), inner_l, dl)          # down-left of (i, j)
        add((slice(1, rows), slice(0, cols - 1)), inner_l, dl)          # up-right of (i+1, j-1)
        if caiman_quirk:
            # up-left of (i, j) replaced by pair (i-1, j)-(i, j-1) = dl at (i-1, j)
            add((slice(1, rows), slice(1, cols)), inner_l, dl)
            # down-left of (i, j) replaced by pair (i, j-1)-(i+1, j) = dr at (i, j-1): undo dl, add dr
            total[0:rows - 1, 1:cols] += dr[inner] - dl[inner_l]
        else:
            add((slice(1, rows), slice(1, cols)), inner, dr)            # up-left of (i+1, j+1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _median_noise(frames: np.ndarray, want_median: bool = True,
                  workers: int | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """Median over time and CaImAn's PSD noise sigma of every pixel of ``frames``.

    Parameters
    ----------
    frames : ndarray, float32, (n, pixels)
        All frames of one batch (for some pixels), time first.
    want_median : bool
        Compute the median (else None is returned for it).

    Returns
    -------
    median : ndarray float32 (pixels,) or None
    sigma : ndarray float64 (pixels,)
    """
    n, n_pix = frames.shape
    idx = noise_frames(n)
    n_noise = idx.size
    k0, k1 = _noise_band(n_noise)
    median = np.empty(n_pix, dtype=np.float32) if want_median else None
    sigma = np.zeros(n_pix)
    block = np.empty((min(_PIXEL_BLOCK, n_pix), n), dtype=np.float32)
    if workers is None:
        workers = -1
    for p0 in range(0, n_pix, _PIXEL_BLOCK):
        p1 = min(n_pix, p0 + _PIXEL_BLOCK)
        tb = block[: p1 - p0]
        _transpose(frames[:, p0:p1], tb)
        if k1 > k0:
            series = tb if n_noise == n else tb[:, idx]
            spec = scipy.fft.rfft(series, axis=1, workers=workers)[:, k0:k1]
            power = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
            sigma[p0:p1] = np.sqrt(power.mean(axis=1) / n_noise)
        if want_median:
            _median_rows(tb, median[p0:p1])
    return median, sigma


class _BatchImages(NamedTuple):
    corr: np.ndarray
    pnr: np.ndarray
    std: np.ndarray
    mean: np.ndarray
    median: np.ndarray | None
    max: np.ndarray


def _batch_images(movie, start: int, stop: int, block_frames: int, want_median: bool, bar) -> _BatchImages:
    """Summary images of frames [start, stop) of ``movie``, reading at most ``block_frames`` frames at once."""
    n = stop - start
    rows, cols = movie.shape[1:]
    shift = np.asarray(movie.read(start, start + min(n, _SHIFT_FRAMES)), dtype=np.float64).mean(axis=0)
    moments = _Moments(shift)
    if n <= block_frames:
        frames = np.ascontiguousarray(movie.read(start, stop), dtype=np.float32)
        moments.update(frames)
        median, sigma = _median_noise(frames.reshape(n, rows * cols), want_median)
        del frames
        bar.update(n)
    else:
        for s in range(start, stop, block_frames):
            block = movie.read(s, min(stop, s + block_frames))
            moments.update(block)
            bar.update(block.shape[0])
        median = np.empty(rows * cols, dtype=np.float32) if want_median else None
        sigma = np.empty(rows * cols)
        band_rows = max(1, (block_frames * rows) // n)
        for r0 in range(0, rows, band_rows):
            r1 = min(rows, r0 + band_rows)
            band = np.empty((n, r1 - r0, cols), dtype=np.float32)
            for s in range(start, stop, block_frames):
                e = min(stop, s + block_frames)
                band[s - start:e - start] = movie.read(s, e)[:, r0:r1]
            m_band, s_band = _median_noise(band.reshape(n, -1), want_median)
            sigma[r0 * cols:r1 * cols] = s_band
            if want_median:
                median[r0 * cols:r1 * cols] = m_band
    mean, std = moments.mean_std()
    corr = _neighbour_mean(moments.pair_correlations())
    sigma = sigma.reshape(rows, cols)
    peak = moments.vmax.astype(np.float64) - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        pnr = np.where(sigma > 0, np.maximum(peak, 0.0) / np.where(sigma > 0, sigma, 1.0), 0.0)
    return _BatchImages(corr=corr.astype(np.float32), pnr=pnr.astype(np.float32), std=std.astype(np.float32),
                        mean=mean.astype(np.float32),
                        median=None if median is None else median.reshape(rows, cols),
                        max=moments.vmax.copy())


# ----------------------------------------------------------------------------------------------------------------
# Input


def _open(movie):
    from .io import load_movie

    return load_movie(movie)


def _block_frames(shape: tuple[int, int, int], chunk_frames: int | None) -> int:
    if chunk_frames is None:
        frame_bytes = 4 * shape[1] * shape[2]
        return max(1, DEFAULT_BLOCK_BYTES // frame_bytes)
    if int(chunk_frames) != chunk_frames or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer or None, got {chunk_frames!r}")
    return int(chunk_frames)


# ----------------------------------------------------------------------------------------------------------------
# Public API


def summary_images(movie, *, batch_frames: int | None = None, backend: str = "auto", chunk_frames: int | None = None,
                   progress: bool = False) -> SummaryImages:
    """Compute the summary images (local correlation, PNR, std, mean, median, max) of a movie.

    Parameters
    ----------
    movie : str, path, ndarray (T, rows, cols) or Movie
        Anything :func:`cellfie_caiman.io.load_movie` accepts.
    batch_frames : int or None
        If given (cellfie uses 250), every image is computed on consecutive batches of this many frames and the
        pixel-wise maximum over batches is returned; a remainder shorter than ``batch_frames / 2`` is merged into
        the last batch (see :func:`batch_bounds`). None: one batch with all frames.
    backend : {'auto', 'builtin', 'caiman'}
        'builtin' (and 'auto', which always means builtin): the streaming implementation of this module.
        'caiman': CaImAn's own ``local_correlations_fft`` and ``get_noise_fft`` on each batch held in memory
        (NumPy for std/mean/median/max); raises ImportError if CaImAn is not importable.
    chunk_frames : int or None
        Most frames held in memory at once (memory ~ 2 × chunk_frames × frame size). None: ~512 MB.
        A batch longer than this is read again in row bands for its median and noise.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SummaryImages
        Six float32 (rows, cols) images; see the module docstring for the exact definitions.
    """
    if backend not in ("auto", "builtin", "caiman"):
        raise ValueError(f"backend must be 'auto', 'builtin' or 'caiman', got {backend!r}")
    mov = _open(movie)
    shape = tuple(int(s) for s in mov.shape)
    if len(shape) != 3:
        raise ValueError(f"movie must have shape (T, rows, cols), got {shape}")
    bounds = batch_bounds(shape[0], batch_frames)
    if backend == "caiman":
        return _summary_caiman(mov, bounds, progress)
    return _summary_builtin(mov, bounds, _block_frames(shape, chunk_frames), True, progress)


def _summary_builtin(mov, bounds, block_frames: int, want_median: bool, progress: bool) -> SummaryImages:
    result = None
    with tqdm(total=bounds[-1][1], unit="frame", desc="summary images", disable=not progress) as bar:
        for start, stop in bounds:
            images = _batch_images(mov, start, stop, block_frames, want_median, bar)
            if result is None:
                result = list(images)
            else:
                result = [None if r is None else np.maximum(r, x) for r, x in zip(result, images, strict=True)]
    return SummaryImages(*result)


def _summary_caiman(mov, bounds, progress: bool) -> SummaryImages:
    try:
        from caiman.source_extraction.cnmf.pre_processing import get_noise_fft
        from caiman.summary_images import local_correlations_fft
    except ImportError as err:
        raise ImportError("backend='caiman' needs CaImAn (https://github.com/flatironinstitute/CaImAn), which could "
                          f"not be imported ({err}); use backend='builtin', which computes the same definitions") \
            from err
    result = None
    for start, stop in tqdm(bounds, desc="summary images (CaImAn)", disable=not progress):
        y = np.ascontiguousarray(mov.read(start, stop), dtype=np.float32)
        corr = local_correlations_fft(y.copy(), swap_dim=False)
        mean = y.mean(axis=0, dtype=np.float64)
        sigma = get_noise_fft(np.ascontiguousarray(np.moveaxis(y, 0, -1)), noise_method="mean")[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            pnr = np.maximum((y.max(axis=0) - mean) / sigma, 0)
        images = [np.asarray(im, dtype=np.float32) for im in
                  (corr, pnr, y.std(axis=0, dtype=np.float64), mean, np.median(y, axis=0), y.max(axis=0))]
        result = images if result is None else [np.maximum(r, x) for r, x in zip(result, images, strict=True)]
    return SummaryImages(*result)


def local_correlation(movie, *, eight_neighbours: bool = True, caiman_quirk: bool = False,
                      chunk_frames: int | None = None, progress: bool = False) -> np.ndarray:
    """Local correlation image of a whole movie, streamed.

    Parameters
    ----------
    movie : str, path, ndarray (T, rows, cols) or Movie
        Anything :func:`cellfie_caiman.io.load_movie` accepts.
    eight_neighbours : bool
        Average over the 8 neighbours (True) or the 4 of the cross (False); divided by the in-bounds count.
    caiman_quirk : bool
        Reproduce CaImAn's ``local_correlations`` (``cm.local_correlations``, used for ``Cn``), which uses two
        wrong diagonal pairs (see :func:`_neighbour_mean`). Only with ``eight_neighbours``. Constant pixels still
        give 0 here where CaImAn gives NaN. False: CaImAn's ``local_correlations_fft`` (correct) definition.
    chunk_frames : int or None
        Most frames read at once; None: ~512 MB.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray float32 (rows, cols)
    """
    if caiman_quirk and not eight_neighbours:
        raise ValueError("caiman_quirk only changes the 8-neighbour correlation; use eight_neighbours=True")
    mov = _open(movie)
    n = int(mov.shape[0])
    block_frames = _block_frames(tuple(mov.shape), chunk_frames)
    shift = np.asarray(mov.read(0, min(n, _SHIFT_FRAMES)), dtype=np.float64).mean(axis=0)
    moments = _Moments(shift)
    with tqdm(total=n, unit="frame", desc="local correlation", disable=not progress) as bar:
        for s in range(0, n, block_frames):
            block = mov.read(s, min(n, s + block_frames))
            moments.update(block)
            bar.update(block.shape[0])
    return _neighbour_mean(moments.pair_correlations(), eight_neighbours, caiman_quirk).astype(np.float32)
