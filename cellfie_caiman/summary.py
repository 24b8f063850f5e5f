"""Summary images of a calcium-imaging movie: local correlation, peak-to-noise, std, mean, median and max.

Definitions (per batch of frames ``Y`` of shape (T, rows, cols); a pixel's "series" is its T values):

``corr``
    CaImAn's ``local_correlations_fft``: for each pixel, the mean over its in-bounds 8 neighbours (8 inside,
    5 on edges, 3 in corners) of the temporal Pearson correlation with that neighbour. A pixel whose std is 0
    contributes a correlation of 0 (CaImAn: z-score 0), so a constant pixel has corr 0 and is never NaN.
    :func:`local_correlation` also gives the 4-neighbour version and CaImAn's quirky ``local_correlations``.
``pnr``
    CaImAn's ``correlation_pnr(Y, gSig=None)`` peak-to-noise ratio: ``max_t(Y - mean_t Y) / sigma``, clipped
    at >= 0, where ``sigma`` is CaImAn's ``get_noise_fft(noise_method='mean')``: with ``X_k`` the DFT over time,
    ``sigma**2 = mean(|X_k|**2 / T)`` over the frequencies ``k/T`` in (0.25, 0.5] cycles/frame. For T > 3072 the
    noise uses, exactly like CaImAn, only 3072 frames of the batch: ``[1, 1025)``, ``[T//2 - 512, T//2 + 512)``
    and ``[T - 1024, T)`` (:func:`noise_frames`). A pixel with sigma = 0 has pnr 0 (CaImAn: NaN).
``std``, ``mean``, ``median``, ``max``
    Population std (ddof=0), mean, median (mean of the two middle values when T is even, like ``np.median``)
    and max over time.
``pnr_filtered`` (only with ``filter_diameter``)
    Peak-to-noise ratio of the movie band-passed for somata of that diameter, which makes faint, rarely active
    neurons visible: :mod:`cellfie_caiman.filtered` (one more pass over the movie).

With ``batch_frames`` the movie is cut into consecutive batches (:func:`batch_bounds`: every frame is used; a
remainder shorter than half a batch, or than 2 frames, joins the last batch), every image is computed per batch and
the pixel-wise maximum over batches is returned. For corr this is CaImAn's
``max_correlation_image(Y, bin_size=batch_frames)`` where ``batch_frames`` divides T; otherwise CaImAn cuts the movie
differently and drops the last frames (:func:`batch_bounds`), so the two differ.
All images are float32 (rows, cols). On real data the builtin images agree with CaImAn's routines to ~1e-7
(corr) and ~1e-5 relative (pnr; CaImAn computes in float32).

How it is computed: in blocks of a few lines of pixels with all frames of a batch, "pixel-major" (each pixel's
series contiguous), handed to a thread pool. On each block one fused numba kernel computes, per pixel and in
float64, the sums of ``a = y - shift`` and ``a²`` (``shift``: mean of the pixel's first 8 frames, so that raw
offsets do not cancel precision), the max, and the products with the 4 forward neighbours (right, down,
down-right, down-left); the noise is an FFT per pixel (``scipy.fft``, float32) and the median sorts (short
series) or partitions (long ones) each series. The correlations follow from the sums. Sources:

* CaImAn order-C memmaps (pixel-major files) are read block by block, all frames of a block of image columns at
  once, each block mapped read-only (pre-faulted, unmapped when done: a quarter of the cost of copying it out)
  and processed a few lines at a time so that the FFT, median and statistics of those lines share the cache: one
  pass over the file. Movies so long that 2 columns x all frames do not fit the budget are read batch by batch
  through the memory map.
* Everything else (TIFF, HDF5, NWB, .npy, arrays, order-F memmaps) is read frame-wise (``Movie[a:b]``, raw data,
  NaN/inf detected and then filled by ``Movie.read``), batch by batch, and transposed into blocks. A batch
  longer than ``chunk_frames`` is read once per band of rows, keeping only the band.

Memory is bounded by ``chunk_frames`` (default ~512 MB of float32 frames), not by the movie: a
512 x 512 x 3000 float32 memmap runs in ~0.6 GB maximum resident memory (0.75 GB with 10000 frames).
"""
from __future__ import annotations

import functools
import logging
import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ._checks import number
from ._pixel_stats import _key_to_float, _Sums, _to_pixel_major, noise_frames

__all__ = ["SummaryImages", "summary_images", "local_correlation", "batch_bounds", "noise_frames"]

logger = logging.getLogger(__name__)

#: Default memory budget (bytes) of one block of frames held at once.
DEFAULT_BLOCK_BYTES = 512 * 2**20
#: Size of the pixel-major blocks (lines x width x frames float32) handed to one thread at a time.
_BLOCK_BYTES = 4 * 2**20
#: Bytes of pixel-major lines processed together while in cache (stats, noise, median).
_SUB_BYTES = 2 * 2**20


class _Images(NamedTuple):
    """The images of :class:`SummaryImages` (its tuple fields)."""

    corr: np.ndarray
    pnr: np.ndarray
    std: np.ndarray
    mean: np.ndarray
    median: np.ndarray
    max: np.ndarray
    pnr_filtered: np.ndarray | None = None


class SummaryImages(_Images):
    """Summary images of a movie, each float32 of shape (rows, cols), and the soma diameter ``pnr_filtered`` was
    computed for.

    ``SummaryImages(corr, pnr, std, mean, median, max, pnr_filtered=None, *, filter_diameter=None)``: a NamedTuple of
    the seven images (``_fields``, iteration, ``_asdict`` and unpacking see images only), with ``filter_diameter`` an
    attribute beside them. ``_replace``, copies and pickling keep it; a SummaryImages built anew from the images alone
    (``SummaryImages(*images)``, ``SummaryImages(**images._asdict())``) has None (unknown). Give
    ``_replace(pnr_filtered=..., filter_diameter=...)`` when replacing ``pnr_filtered`` by one computed for another
    diameter.

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
    pnr_filtered : ndarray or None
        Peak-to-noise ratio of the soma-filtered movie (:func:`cellfie_caiman.filtered.filtered_pnr`, unitless,
        >= 0); None unless ``summary_images(..., filter_diameter=d)`` was asked for it.
    filter_diameter : float or None
        Soma diameter (pixels) that ``pnr_filtered`` was band-passed for (``summary_images``'s ``filter_diameter``;
        scaled with the images when training zooms them). None: unknown (images made by hand or by an older version),
        or no ``pnr_filtered``. :func:`cellfie_caiman.initialize.initialize` warns when it differs from the diameter
        the networks are run for.
    """

    def __new__(cls, *images, filter_diameter: float | None = None, **named):
        self = super().__new__(cls, *images, **named)
        if isinstance(filter_diameter, np.ndarray) and filter_diameter.ndim == 0:  # as np.load gives it back
            filter_diameter = filter_diameter.item()
        if filter_diameter is not None:  # in the instance's __dict__: the tuple holds only images
            number(filter_diameter, "filter_diameter (pixels)", low=0, low_open=True)
            self.__dict__["_filter_diameter"] = float(filter_diameter)
        return self

    @property
    def filter_diameter(self) -> float | None:
        """Soma diameter (pixels) ``pnr_filtered`` was computed for; None: unknown."""
        return self.__dict__.get("_filter_diameter")

    def _replace(self, **changes) -> SummaryImages:
        """A copy with the images (and ``filter_diameter``) in ``changes`` replaced; ``filter_diameter`` is kept
        unless given."""
        diameter = changes.pop("filter_diameter", self.filter_diameter)
        return type(self)(*super()._replace(**changes), filter_diameter=diameter)

    __replace__ = _replace  # copy.replace (Python 3.13)

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if self.filter_diameter is None else f"{text[:-1]}, filter_diameter={self.filter_diameter:g})"


# ----------------------------------------------------------------------------------------------------------------
# Frames: batches and the noise subset


def batch_bounds(n_frames: int, batch_frames: int | None) -> list[tuple[int, int]]:
    """Cut ``n_frames`` consecutive frames into batches of ``batch_frames``.

    All frames are used. A remainder shorter than ``batch_frames / 2`` (or than 2 frames) is merged into the
    previous batch (so the last batch has between ``batch_frames`` and ``1.5 * batch_frames`` frames, 3 with
    ``batch_frames=2``); a longer remainder is a batch of its own. A movie shorter than ``batch_frames`` is one
    batch. No batch of a movie of 2 frames or more has a single frame (which has no temporal variation: no
    correlation, noise or peak).

    This is not CaImAn's ``max_correlation_image(Y, bin_size)`` cutting unless ``batch_frames`` divides
    ``n_frames`` (or ``n_frames <= batch_frames``): CaImAn makes its bins ``n_frames // (n_frames // bin_size)``
    frames long when the remainder is below ``bin_size / 2``, else keeps ``bin_size``, and drops the frames left
    over in both cases.

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
    if number(batch_frames, "batch_frames", low=2, integer=True, optional=True) is None:
        return [(0, n_frames)]
    batch_frames = int(batch_frames)
    n_full, rest = divmod(n_frames, batch_frames)
    starts = [k * batch_frames for k in range(n_full)]
    if n_full == 0 or (2 * rest >= batch_frames and rest >= 2):
        starts.append(n_full * batch_frames)
    stops = starts[1:] + [n_frames]
    return list(zip(starts, stops, strict=True))


_local = threading.local()


def _buffer(shape: tuple[int, ...], slot: str = "block") -> np.ndarray:
    """A float32 scratch array of ``shape`` reused by the calling thread (avoids page faults of fresh buffers)."""
    size = int(np.prod(shape))
    buf = getattr(_local, slot, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=np.float32)
        setattr(_local, slot, buf)
    return buf[:size].reshape(shape)


def _line_blocks(n_lines: int, line_bytes: int) -> list[tuple[int, int]]:
    """Split lines into blocks of about _BLOCK_BYTES (at least 1 line, at least 2 blocks per thread if possible)."""
    per = max(1, min(_BLOCK_BYTES // max(line_bytes, 1), -(-n_lines // (2 * _n_threads()))))
    return [(l0, min(n_lines, l0 + per)) for l0 in range(0, n_lines, per)]


def _n_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------------------------------------------
# Per-batch drivers


class _NonFinite(Exception):
    """A CaImAn memmap holds NaN/inf: use the generic reader, which fills them."""


def _stats_checked(sums: _Sums, block: np.ndarray, line0: int, n_lines: int, t0: int = 0) -> None:
    """``sums.stats`` of the block's first ``n_lines`` lines; raises _NonFinite if one holds NaN/inf."""
    sums.stats(block, line0, n_lines, t0)
    if not sums.finite(line0, n_lines):
        raise _NonFinite


def _batch_memmap(yr: np.ndarray, rows: int, cols: int, start: int, stop: int, opts: _Options,
                  pool: ThreadPoolExecutor) -> _Sums:
    """One batch of a CaImAn order-C memmap ``yr`` (pixels, T): lines are image columns, read in place."""
    n = stop - start
    sums = _Sums(cols, rows, n)

    def work(bounds):
        l0, l1 = bounds
        n_all = min(cols, l1 + 1) - l0
        block = _buffer((n_all, rows, n))
        np.copyto(block.reshape(n_all * rows, n), yr[l0 * rows:(l0 + n_all) * rows, start:stop])
        _stats_checked(sums, block, l0, l1 - l0)
        if opts.noise or opts.median:
            sums.noise_median(block, l0, l1 - l0, opts.median)

    _run_all(pool, work, _line_blocks(cols, rows * n * 4))
    return sums


def _run_all(pool: ThreadPoolExecutor, fn, items, done=None) -> list:
    """fn(item) for every item on the pool; waits for all of them before raising the first exception.

    ``done(item)`` is called in the calling thread as each item finishes (progress bars).
    """
    items = list(items)
    futures = {pool.submit(fn, item): item for item in items}
    for future in as_completed(futures):
        if done is not None and future.exception() is None:
            done(futures[future])
    return [f.result() for f in futures]


def _batch_frames(mov, start: int, stop: int, opts: _Options, pool: ThreadPoolExecutor, bar) -> _Sums:
    """One batch of any movie read as frames; lines are image rows.

    Raw frames are used as stored (no float32 copy of the batch); where they hold NaN/inf, the batch (or chunk)
    is read again with ``Movie.read``, which fills them.
    """
    n = stop - start
    _, rows, cols = mov.shape
    sums = _Sums(rows, cols, n)
    if n <= opts.block_frames:
        def work(bounds, frames):
            l0, l1 = bounds
            block = _buffer((min(rows, l1 + 1) - l0, cols, n))
            if not _to_pixel_major(frames, l0, block, 0):
                raise _NonFinite
            sums.stats(block, l0, l1 - l0)
            if opts.noise or opts.median:
                sums.noise_median(block, l0, l1 - l0, opts.median)

        blocks = _line_blocks(rows, cols * n * 4)
        try:
            _run_all(pool, functools.partial(work, frames=_raw(mov, start, stop)), blocks)
        except _NonFinite:
            _run_all(pool, functools.partial(work, frames=mov.read(start, stop)), blocks)
        bar.update(n)
        return sums
    # The batch does not fit: read it once per band of rows, keeping only the band (pixel-major).
    band_rows = max(1, opts.block_frames * rows // n - 1)
    logger.info("%s: frames %d-%d exceed chunk_frames=%d; reading them once per band of %d rows (%d passes)",
                mov.source, start, stop - 1, opts.block_frames, band_rows, -(-rows // band_rows))
    for r0 in range(0, rows, band_rows):
        r1 = min(rows, r0 + band_rows)
        r_all = min(rows, r1 + 1)
        band = np.empty((r_all - r0, cols, n), dtype=np.float32)
        parts = [(l0, min(r_all - r0, l0 + 4)) for l0 in range(0, r_all - r0, 4)]
        for s in range(start, stop, opts.block_frames):
            e = min(stop, s + opts.block_frames)

            def transpose(bounds, frames, band=band, t0=s - start):
                return _to_pixel_major(frames, bounds[0], band[bounds[0]:bounds[1]], t0)

            if not all(_run_all(pool, functools.partial(transpose, frames=_raw(mov, s, e, r0, r_all)), parts)):
                _run_all(pool, functools.partial(transpose, frames=mov.read(s, e)[:, r0:r_all]), parts)
        sub = _line_blocks(r1 - r0, cols * n * 4)

        def stats(bounds, band=band, r0=r0):
            l0, l1 = bounds
            sums.stats(band[l0:l1 + 1], r0 + l0, l1 - l0)

        def rest(bounds, band=band, r0=r0):
            l0, l1 = bounds
            sums.noise_median(band[l0:l1], r0 + l0, l1 - l0, opts.median)

        _run_all(pool, stats, sub)  # all statistics first: a block reads the next block's first line
        if opts.noise or opts.median:
            _run_all(pool, rest, sub)
        bar.update(n * r1 // rows - n * r0 // rows)
    return sums


_RAW_DTYPES = {np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                                      "float32", "float64")}


def _raw(mov, start: int, stop: int, r0: int = 0, r1: int | None = None) -> np.ndarray:
    """Frames start:stop (rows r0:r1) as stored, or as ``mov.read`` gives them for dtypes the kernels do not take
    (big-endian, float16)."""
    raw = mov[start:stop, r0:r1]
    if raw.dtype not in _RAW_DTYPES:  # np.dtype('>f4') != np.dtype('<f4')
        raw = mov.read(start, stop)[:, r0:r1]
    return raw


# ----------------------------------------------------------------------------------------------------------------
# From sums to images


def _to_image_orientation(sums: _Sums, transposed: bool) -> dict[str, np.ndarray]:
    """Per-pixel arrays and the pair products as (rows, cols) arrays named right/down/dr/dl (see _pair_correlations)."""
    vmax = _key_to_float(sums.vmax)
    if not transposed:
        return {"shift": sums.shift, "s1": sums.s1, "s2": sums.s2, "vmax": vmax, "median": sums.median,
                "sigma": sums.sigma, "right": sums.p_along, "down": sums.p_next, "dr": sums.p_fwd, "dl": sums.p_back}
    # block line l = image column j, position w = image row i
    cols, rows = sums.s1.shape
    dl = np.zeros((rows, cols))
    dl[: rows - 1, 1:] = sums.p_back[: cols - 1, 1:].T  # pair (w,l)-(w-1,l+1) is dl of image pixel (w-1, l+1)
    return {"shift": sums.shift.T, "s1": sums.s1.T, "s2": sums.s2.T, "vmax": vmax.T, "median": sums.median.T,
            "sigma": sums.sigma.T, "right": sums.p_next.T, "down": sums.p_along.T, "dr": sums.p_fwd.T, "dl": dl}


def _pair_correlations(n: int, acc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pearson correlation of each forward neighbour pair, (rows, cols) arrays indexed by the pair's first pixel.

    Keys 'right' (i,j)-(i,j+1), 'down' (i,j)-(i+1,j), 'dr' (i,j)-(i+1,j+1), 'dl' (i,j)-(i+1,j-1). Entries
    without a neighbour are 0. A pair with a zero-std pixel has correlation 0.
    """
    m = acc["s1"] / n
    sd = np.sqrt(np.maximum(acc["s2"] / n - m * m, 0.0))
    rows, cols = m.shape
    full, head, tail = slice(None), slice(0, -1), slice(1, None)
    specs = {"right": ((full, head), (full, tail)), "down": ((head, full), (tail, full)),
             "dr": ((head, head), (tail, tail)), "dl": ((head, tail), (tail, head))}
    out = {}
    for name, (first, second) in specs.items():
        rho = np.zeros((rows, cols))
        den = sd[first] * sd[second]
        cov = acc[name][first] / n - m[first] * m[second]
        safe = np.where(den > 0, den, 1.0)
        rho[first] = np.clip(np.where(den > 0, cov / safe, 0.0), -1.0, 1.0)
        out[name] = rho
    return out


def _neighbour_mean(rho: dict[str, np.ndarray], eight_neighbours: bool = True,
                    caiman_quirk: bool = False) -> np.ndarray:
    """Mean over in-bounds neighbours of the pair correlations from :func:`_pair_correlations`.

    With ``caiman_quirk`` (8 neighbours only) the two diagonal terms are those of CaImAn's
    ``local_correlations``: pixel (i, j) uses rho((i, j-1), (i-1, j)) instead of rho((i, j), (i-1, j-1)) and
    rho((i, j-1), (i+1, j)) instead of rho((i, j), (i+1, j-1)).
    """
    rows, cols = rho["right"].shape
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    full, head, tail = slice(None), slice(0, -1), slice(1, None)

    def add(dst, values):
        total[dst] += values
        count[dst] += 1

    r, d, dr, dl = rho["right"][:, :-1], rho["down"][:-1], rho["dr"][:-1, :-1], rho["dl"][:-1, 1:]
    add((full, head), r)   # right neighbour of (i, j)
    add((full, tail), r)   # left neighbour of (i, j+1)
    add((head, full), d)   # below (i, j)
    add((tail, full), d)   # above (i+1, j)
    if eight_neighbours:
        add((head, head), dr)   # down-right of (i, j)
        add((tail, head), dl)   # up-right of (i+1, j-1)
        if caiman_quirk:
            add((tail, tail), dl)   # up-left of (i, j) taken as pair (i-1, j)-(i, j-1)
            add((head, tail), dr)   # down-left of (i, j) taken as pair (i, j-1)-(i+1, j)
        else:
            add((tail, tail), dr)   # up-left of (i+1, j+1)
            add((head, tail), dl)   # down-left of (i, j)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _images(sums: _Sums, transposed: bool, opts: _Options) -> list[np.ndarray | None]:
    """The six images of one batch, float32 (rows, cols) (None for the ones not requested)."""
    acc = _to_image_orientation(sums, transposed)
    n = sums.n
    mean = acc["shift"] + acc["s1"] / n
    std = np.sqrt(np.maximum(acc["s2"] / n - (acc["s1"] / n) ** 2, 0.0))
    corr = _neighbour_mean(_pair_correlations(n, acc), opts.eight_neighbours, opts.caiman_quirk)
    vmax = np.ascontiguousarray(acc["vmax"])
    pnr = None
    if opts.noise:
        sigma = acc["sigma"]
        peak = np.maximum(vmax - mean, 0.0)
        pnr = np.where(sigma > 0, peak / np.where(sigma > 0, sigma, 1.0), 0.0).astype(np.float32)
    median = np.ascontiguousarray(acc["median"]) if opts.median else None
    return [corr.astype(np.float32), pnr, std.astype(np.float32), mean.astype(np.float32), median, vmax]


# ----------------------------------------------------------------------------------------------------------------
# Driver


class _Options(NamedTuple):
    block_frames: int
    median: bool = True
    noise: bool = True
    eight_neighbours: bool = True
    caiman_quirk: bool = False


def _open(movie):
    from .io import load_movie

    return load_movie(movie)


def _caiman_c_memmap(mov):
    """(Yr, rows, cols) when ``mov`` is a CaImAn order-C memmap (pixel-major file), else None.

    ``Yr.offset`` is where the data start in the file: 0 for a ``.mmap``, past the header for a ``.npy``.
    """
    fname = getattr(mov, "memmap_file", None)
    if fname is None or getattr(mov, "memmap_order", None) != "C":
        return None
    from .io import load_memmap

    yr, dims, _ = load_memmap(fname)
    return yr, int(dims[0]), int(dims[1])


def _block_frames(shape: tuple[int, int, int], chunk_frames: int | None) -> int:
    if chunk_frames is None:
        return max(1, DEFAULT_BLOCK_BYTES // (4 * shape[1] * shape[2]))
    if isinstance(chunk_frames, bool) or int(chunk_frames) != chunk_frames or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer or None, got {chunk_frames!r}")
    return int(chunk_frames)


def _neighbour_count(shape: tuple[int, int], eight_neighbours: bool) -> np.ndarray:
    """Number of in-bounds neighbours of each pixel (8/5/3 or 4/3/2)."""
    count = np.zeros(shape)
    offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)
               and (eight_neighbours or di == 0 or dj == 0)]
    rows, cols = shape
    for di, dj in offsets:
        count[max(0, -di):rows - max(0, di), max(0, -dj):cols - max(0, dj)] += 1
    return count


def _mapped(fname: str, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """Read-only float32 array of ``shape`` mapped from ``fname`` at byte ``offset``.

    Mapping the page cache (pre-faulted with MAP_POPULATE where the OS has it) costs a quarter of copying it out
    with ``read``. The mapping goes away with the last view of the array.
    """
    nbytes = int(np.prod(shape)) * 4
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    with open(fname, "rb") as f:
        if os.fstat(f.fileno()).st_size < offset + nbytes:
            raise OSError(f"{fname}: shorter than its name says (needs {offset + nbytes} bytes)")
        region = mmap.mmap(f.fileno(), offset - start + nbytes, flags=flags, prot=mmap.PROT_READ, offset=start)
    return np.frombuffer(region, dtype=np.float32, count=nbytes // 4, offset=offset - start).reshape(shape)


def _summary_memmap_by_pixels(fname: str, shape: tuple[int, int, int], bounds, opts: _Options,
                              bar, offset: int = 0) -> list[np.ndarray | None] | None:
    """All batches of a CaImAn order-C memmap, reading each block of pixels once (all frames, mapped read-only).

    Lines are image columns (pixel p = i + j*rows: column j is pixels [j*rows, (j+1)*rows), each pixel's frames
    contiguous in the file from byte ``offset`` on: 0 for a ``.mmap``, the header's size for a ``.npy``), on up
    to one thread per core, each holding a block of (>= 2 lines x all frames) within the memory budget. Returns
    None if even one such block would not fit it. Raises _NonFinite if the file holds NaN/inf.
    """
    T, rows, cols = shape
    line_bytes = rows * T * 4
    budget = opts.block_frames * rows * cols * 4
    n_workers = min(_n_threads(), budget // (2 * line_bytes))  # fewer threads rather than smaller blocks
    if n_workers < 1:
        return None
    per_thread = budget // n_workers
    # several blocks per thread keep the threads' loads even (a block is mapped, not copied: small is cheap)
    per = max(1, min(per_thread // line_bytes - 1, -(-cols // (8 * n_workers))))
    blocks = [(l0, min(cols, l0 + per)) for l0 in range(0, cols, per)]
    count = np.maximum(_neighbour_count((cols, rows), opts.eight_neighbours), 1)  # 1 x 1 frames: corr 0
    result = [np.full((cols, rows), -np.inf, dtype=np.float32) for _ in range(6)]
    n_batches = len(bounds)
    # correlation sums of each block's first line: from its own pairs, and from the pairs of the line above
    first_own = np.zeros((len(blocks), n_batches, rows))
    first_above = np.zeros((len(blocks), n_batches, rows))

    def work(k):
        l0, l1 = blocks[k]
        n_real = l1 - l0
        n_all = min(cols, l1 + 1) - l0
        batch_sums = [_Sums(n_all, rows, stop - start) for start, stop in bounds]
        whole = _mapped(fname, offset + l0 * line_bytes, (n_all, rows, T))
        # Sub-blocks of about _SUB_BYTES per batch: a few lines (with their neighbour line), one line at least. For
        # each batch the FFT goes first (compute-bound, it hides the memory reads), then the median and the
        # statistics find the lines in cache.
        sub_lines = max(1, _SUB_BYTES // (rows * max(stop - start for start, stop in bounds) * 4))
        for s0 in range(0, n_all, sub_lines):
            s1 = min(n_all, s0 + sub_lines)
            sub = whole[s0:min(n_all, s1 + 1)]
            n_noise = min(s1, n_real) - s0
            for sums, (start, stop) in zip(batch_sums, bounds, strict=True):
                if n_noise > 0:
                    if opts.noise:
                        sums.noise(sub, s0, n_noise, start)
                    if opts.median:  # on a copy: the mapping is read-only and the median sorts in place
                        y = _buffer((n_noise, rows, stop - start), "median")
                        np.copyto(y, sub[:n_noise, :, start:stop])
                        sums.median_inplace(y, s0, n_noise)
                _stats_checked(sums, sub, s0, s1 - s0, start)
        for b, sums in enumerate(batch_sums):
            images = _block_images(sums, n_real, opts)
            for r, im in zip(result, images, strict=True):
                if im is not None:
                    np.maximum(r[l0:l1], im, out=r[l0:l1])
            totals = _pair_totals(sums, n_real, opts.eight_neighbours)
            first_own[k, b] = totals[0]
            if n_real > 1:
                corr = totals[1:n_real] / count[l0 + 1:l1]
                np.maximum(result[0][l0 + 1:l1], corr, out=result[0][l0 + 1:l1])
            if k + 1 < len(blocks):
                first_above[k + 1, b] = totals[n_real]

    def done(k):
        bar.update(T * blocks[k][1] // cols - T * blocks[k][0] // cols)

    with ThreadPoolExecutor(n_workers) as own_pool:
        _run_all(own_pool, work, range(len(blocks)), done)
    for k, (l0, _) in enumerate(blocks):
        corr = ((first_own[k] + first_above[k]) / count[l0]).max(axis=0)
        np.maximum(result[0][l0], corr, out=result[0][l0])
    return [None if (i == 1 and not opts.noise) or (i == 4 and not opts.median) else np.ascontiguousarray(r.T)
            for i, r in enumerate(result)]


def _block_images(sums: _Sums, n_real: int, opts: _Options) -> list[np.ndarray | None]:
    """corr (None: done elsewhere), pnr, std, mean, median, max of the first ``n_real`` lines of ``sums``."""
    n = sums.n
    m = sums.s1[:n_real] / n
    mean = sums.shift[:n_real] + m
    std = np.sqrt(np.maximum(sums.s2[:n_real] / n - m * m, 0.0))
    vmax = _key_to_float(sums.vmax[:n_real])
    pnr = median = None
    if opts.noise:
        sigma = sums.sigma[:n_real]
        peak = np.maximum(vmax - mean, 0.0)
        pnr = np.where(sigma > 0, peak / np.where(sigma > 0, sigma, 1.0), 0.0)
    if opts.median:
        median = sums.median[:n_real]
    return [None, pnr, std, mean, median, vmax]


def _pair_totals(sums: _Sums, n_real: int, eight_neighbours: bool) -> np.ndarray:
    """Sum of the pair correlations each pixel of a block takes part in, for the pairs whose first pixel is in
    one of the block's first ``n_real`` lines (the lines' own pairs and those with the next line)."""
    n_all, width = sums.s1.shape
    n = sums.n
    m = sums.s1 / n
    sd = np.sqrt(np.maximum(sums.s2 / n - m * m, 0.0))

    def rho(prod, first, second):
        den = sd[first] * sd[second]
        cov = prod[first] / n - m[first] * m[second]
        return np.clip(np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0), -1.0, 1.0)

    totals = np.zeros((n_all, width))
    r = rho(sums.p_along, (slice(0, n_real), slice(0, -1)), (slice(0, n_real), slice(1, None)))
    totals[:n_real, :-1] += r
    totals[:n_real, 1:] += r
    n_next = min(n_real, n_all - 1)
    if n_next > 0:
        top, low = slice(0, n_next), slice(1, n_next + 1)
        r = rho(sums.p_next, (top, slice(None)), (low, slice(None)))
        totals[top] += r
        totals[low] += r
        if eight_neighbours:
            r = rho(sums.p_fwd, (top, slice(0, -1)), (low, slice(1, None)))
            totals[top, :-1] += r
            totals[low, 1:] += r
            r = rho(sums.p_back, (top, slice(1, None)), (low, slice(0, -1)))
            totals[top, 1:] += r
            totals[low, :-1] += r
    return totals


def _summary_builtin(mov, bounds: list[tuple[int, int]], opts: _Options, progress: bool) -> list:
    """Max over batches of the per-batch images (list in SummaryImages order, None where not requested)."""
    memmap = _caiman_c_memmap(mov)
    with ThreadPoolExecutor(_n_threads()) as pool, \
            tqdm(total=bounds[-1][1], unit="frame", desc="summary images", disable=not progress) as bar:
        if memmap is not None and not opts.caiman_quirk:
            try:
                result = _summary_memmap_by_pixels(mov.memmap_file, tuple(mov.shape), bounds, opts, bar,
                                                   offset=int(getattr(memmap[0], "offset", 0)))
                if result is not None:
                    return result
            except _NonFinite:
                logger.info("%s holds NaN/inf values: reading it frame by frame to fill them", mov.source)
                memmap = None
                bar.reset()
        result = None
        for start, stop in bounds:
            sums = None
            if memmap is not None:
                try:
                    sums = _batch_memmap(*memmap, start, stop, opts, pool)
                    transposed = True
                    bar.update(stop - start)
                except _NonFinite:
                    logger.info("%s holds NaN/inf values: reading it frame by frame to fill them", mov.source)
                    memmap = None
            if sums is None:
                sums = _batch_frames(mov, start, stop, opts, pool, bar)
                transposed = False
            images = _images(sums, transposed, opts)
            result = images if result is None else [
                None if r is None else np.maximum(r, x) for r, x in zip(result, images, strict=True)]
    return result


# ----------------------------------------------------------------------------------------------------------------
# Public API


def summary_images(movie, *, batch_frames: int | None = None, backend: str = "auto", chunk_frames: int | None = None,
                   filter_diameter: float | None = None, progress: bool = False) -> SummaryImages:
    """Compute the summary images (local correlation, PNR, std, mean, median, max) of a movie.

    Parameters
    ----------
    movie : str, path, ndarray (T, rows, cols) or Movie
        Anything :func:`cellfie_caiman.io.load_movie` accepts.
    batch_frames : int or None
        If given (cellfie uses 250), every image is computed on consecutive batches of this many frames and the
        pixel-wise maximum over batches is returned; a remainder shorter than ``batch_frames / 2`` (or than 2
        frames) is merged into the last batch (see :func:`batch_bounds`, also for how this differs from CaImAn's
        ``max_correlation_image``). None: one batch with all frames.
    backend : {'auto', 'builtin', 'caiman'}
        'builtin' (and 'auto', which always means builtin): the streaming implementation of this module.
        'caiman': CaImAn's own ``local_correlations_fft`` and ``get_noise_fft`` on each batch held in memory
        (NumPy for std/mean/median/max); raises ImportError if CaImAn is not importable.
    chunk_frames : int or None
        Most frames held in memory at once (memory ~ 2 x chunk_frames x frame size). None: ~512 MB. A batch
        longer than this is read once per band of rows for its median and noise (CaImAn order-C memmaps are
        read in place, pixel by pixel, and need no extra pass).
    filter_diameter : float or None
        Soma diameter in pixels (2 to the field's longer side): also compute ``pnr_filtered``, the peak-to-noise
        ratio of the movie band-passed for somata of this size (:func:`cellfie_caiman.filtered.filtered_pnr`, one
        more pass over the movie, about 2.5 s per 1000 frames of 512 x 512 on 2 cores). None: ``pnr_filtered`` is
        None.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SummaryImages
        Six float32 (rows, cols) images (seven with ``filter_diameter``, which it then records as its
        ``filter_diameter``); see the module docstring for the exact definitions.
    """
    if backend not in ("auto", "builtin", "caiman"):
        raise ValueError(f"backend must be 'auto', 'builtin' or 'caiman', got {backend!r}")
    mov = _open(movie)
    shape = tuple(int(s) for s in mov.shape)
    bounds = batch_bounds(shape[0], batch_frames)
    block_frames = _block_frames(shape, chunk_frames)
    if filter_diameter is not None:
        from .filtered import _filter_sigmas

        _filter_sigmas(filter_diameter, shape[1:], "filter_diameter")  # a bad one fails before the long pass
    if backend == "caiman":
        images = _summary_caiman(mov, bounds, progress)
    else:
        images = SummaryImages(*_summary_builtin(mov, bounds, _Options(block_frames), progress))
    if filter_diameter is None:
        return images
    from .filtered import filtered_pnr

    return images._replace(pnr_filtered=filtered_pnr(mov, filter_diameter, batch_frames=batch_frames,
                                                     chunk_frames=chunk_frames, progress=progress),
                           filter_diameter=float(filter_diameter))


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
        # a pixel without noise (constant) has pnr 0, as in the builtin backend, never NaN
        with np.errstate(divide="ignore", invalid="ignore"):
            pnr = np.where(sigma > 0, np.maximum((y.max(axis=0) - mean) / sigma, 0), 0.0)
        images = [np.asarray(im, dtype=np.float32) for im in
                  (corr, pnr, y.std(axis=0, dtype=np.float64), mean, np.median(y, axis=0), y.max(axis=0))]
        result = images if result is None else [np.maximum(r, x) for r, x in zip(result, images, strict=True)]
    return SummaryImages(*result)


def local_correlation(movie, *, eight_neighbours: bool = True, caiman_quirk: bool = False,
                      chunk_frames: int | None = None, progress: bool = False) -> np.ndarray:
    """Local correlation image of a whole movie (one batch), streamed.

    Parameters
    ----------
    movie : str, path, ndarray (T, rows, cols) or Movie
        Anything :func:`cellfie_caiman.io.load_movie` accepts.
    eight_neighbours : bool
        Average over the 8 neighbours (True) or the 4 of the cross (False); divided by the in-bounds count.
    caiman_quirk : bool
        Reproduce CaImAn's ``local_correlations`` (``cm.local_correlations``, used for its ``Cn``), which takes
        two wrong diagonal pairs: pixel (i, j) uses rho((i, j-1), (i-1, j)) for its up-left neighbour and
        rho((i, j-1), (i+1, j)) for its down-left one. Only with ``eight_neighbours``. Constant pixels still give
        0 here where CaImAn gives NaN. False: CaImAn's correct ``local_correlations_fft`` definition.
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
    shape = tuple(int(s) for s in mov.shape)
    opts = _Options(_block_frames(shape, chunk_frames), median=False, noise=False,
                    eight_neighbours=eight_neighbours, caiman_quirk=caiman_quirk)
    return _summary_builtin(mov, [(0, shape[0])], opts, progress)[0]
