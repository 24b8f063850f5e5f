"""Peak-to-noise ratio of the soma-filtered movie: faint, rarely active neurons made visible.

The per-pixel summary images (:mod:`cellfie_caiman.summary`) see a neuron that fires a few times with a small
transient only through the noise of single pixels. Filtering every frame with a band-pass matched to the soma size
first averages the transient over the soma (the noise drops by about the square root of the soma's area) and
removes the smooth background and neuropil. This is the idea behind CNMF-E's filtered ``correlation_pnr(Y, gSig)``;
the definition here is our own (a difference of Gaussians, noise from frame-to-frame differences) because it is
cheap to stream:

``f_t = G(sigma_1) * Y_t - G(sigma_2) * Y_t`` with ``sigma_1 = diameter / 5`` and ``sigma_2 = diameter / 1.5``
(pixels; the field is mirrored at its edges), and per pixel, over the T frames of a batch::

    pnr_filtered = max(0, (max_t f_t - mean_t f_t) / noise),   noise**2 = sum_t (f_{t+1} - f_t)**2 / (2 (T - 1))

With ``batch_frames`` the image is computed per batch and the pixel-wise maximum over batches is returned, like the
other summary images. Silent structures (out-of-focus somata, vessels, static texture) give about the noise level;
a neuron with a few transients stands out.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import scipy.fft
from tqdm.auto import tqdm

from ._checks import MIN_DIAMETER, number
from ._jit import njit

__all__ = ["filtered_pnr", "soma_filter"]

_Block = TypeVar("_Block")

#: Bytes of padded complex spectra processed at once.
_STEP_BYTES = 64 * 2**20


def _filter_sigmas(diameter: float, frame_shape: tuple[int, ...] | None = None,
                   name: str = "diameter") -> tuple[float, float]:
    """The two Gaussians' widths for somata of ``diameter`` pixels; ``ValueError`` naming ``name`` unless it is a
    number of pixels from ``MIN_DIAMETER`` to the longer side of the frame (of ``frame_shape``, when given)."""
    number(diameter, f"{name} (soma diameter in pixels)", low=MIN_DIAMETER)
    if frame_shape is not None and diameter > max(frame_shape):
        raise ValueError(f"{name} ({diameter:g} px) is larger than the field ({frame_shape[0]} x {frame_shape[1]} "
                         "px): give the soma diameter in pixels")
    return diameter / 5.0, diameter / 1.5


class _SomaFilter:
    """Difference-of-Gaussians band-pass applied in the Fourier domain on mirror-padded frames."""

    def __init__(self, frame_shape: tuple[int, int], diameter: float):
        s1, s2 = _filter_sigmas(diameter, frame_shape)
        rows, cols = frame_shape
        self.pad = int(math.ceil(3 * s2))
        self.shape = (scipy.fft.next_fast_len(rows + 2 * self.pad, real=True),
                      scipy.fft.next_fast_len(cols + 2 * self.pad, real=True))
        fy = scipy.fft.fftfreq(self.shape[0])[:, None]
        fx = scipy.fft.rfftfreq(self.shape[1])[None, :]
        f2 = fy**2 + fx**2
        self.transfer = (np.exp(-2 * np.pi**2 * s1**2 * f2) - np.exp(-2 * np.pi**2 * s2**2 * f2)).astype(np.float32)
        self.frame_shape = (rows, cols)

    def padded(self, frames: np.ndarray) -> np.ndarray:
        """(n, rows, cols) float32 -> filtered frames on the padded grid (n, *self.shape) float32.

        Frame pixel (i, j) is at (i + self.pad, j + self.pad).
        """
        rows, cols = self.frame_shape
        p = self.pad
        pr, pc = self.shape
        padded = np.pad(frames, ((0, 0), (p, pr - rows - p), (p, pc - cols - p)), mode="symmetric")
        spec = scipy.fft.rfft2(padded, workers=-1)
        spec *= self.transfer
        return scipy.fft.irfft2(spec, s=self.shape, workers=-1)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(n, rows, cols) float32 -> filtered (n, rows, cols) float32."""
        rows, cols = self.frame_shape
        p = self.pad
        return np.ascontiguousarray(self.padded(frames)[:, p:p + rows, p:p + cols], dtype=np.float32)


def soma_filter(frames: np.ndarray, diameter: float) -> np.ndarray:
    """Band-pass frames with the difference of Gaussians matched to somata of ``diameter`` pixels.

    Parameters
    ----------
    frames : ndarray (rows, cols) or (n, rows, cols)
    diameter : float
        Soma diameter in pixels, from 2 to the frame's longer side; the Gaussians have widths ``diameter / 5`` and
        ``diameter / 1.5``.

    Returns
    -------
    ndarray float32, same shape
        ``G(diameter / 5) * frame - G(diameter / 1.5) * frame``, the frame mirrored at its edges. A constant frame
        gives zeros (up to float32 round-off).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> disk = ((yy - 32) ** 2 + (xx - 32) ** 2 <= 36).astype(np.float32)
    >>> out = soma_filter(disk, 12.0)
    >>> tuple(int(i) for i in np.unravel_index(out.argmax(), out.shape))
    (32, 32)
    """
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"frames must be (rows, cols) or (n, rows, cols), got shape {x.shape}")
    single = x.ndim == 2
    x3 = x[None] if single else x
    out = _SomaFilter(x3.shape[1:], diameter)(x3)
    return out[0] if single else out


def filtered_pnr(movie, diameter: float, *, batch_frames: int | None = None, chunk_frames: int | None = None,
                 progress: bool = False) -> np.ndarray:
    """Peak-to-noise ratio image of the soma-filtered movie (see the module docstring for the definition).

    Parameters
    ----------
    movie : str, path, ndarray (T, rows, cols) or Movie
        Anything :func:`cellfie_caiman.io.load_movie` accepts. Read in chunks: memory does not grow with T.
    diameter : float
        Typical soma diameter in pixels, from 2 to the field's longer side.
    batch_frames : int or None
        As in :func:`cellfie_caiman.summary.summary_images`: per-batch images, pixel-wise maximum over batches.
    chunk_frames : int or None
        Most frames read at once (None: as many as fit ~64 MB of padded spectra).
    progress : bool
        Show a progress bar.

    Returns
    -------
    ndarray float32 (rows, cols)
        Unitless, >= 0; 0 where the filtered movie does not vary in time beyond float32 round-off (a constant
        baseline or static image does not count: only the movie's variation in time sets that round-off).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> movie = rng.normal(100, 1, (200, 48, 48)).astype(np.float32)
    >>> yy, xx = np.mgrid[:48, :48]
    >>> movie[100:106] += 2.0 * (((yy - 24) ** 2 + (xx - 24) ** 2) <= 25)  # one faint transient
    >>> img = filtered_pnr(movie, 10.0)
    >>> bool(img[24, 24] > 3 * np.median(img))
    True
    """
    from .io import load_movie
    from .summary import batch_bounds

    mov = load_movie(movie)
    n_frames, rows, cols = (int(s) for s in mov.shape)
    filt = _SomaFilter((rows, cols), diameter)
    per_frame = filt.shape[0] * (filt.shape[1] // 2 + 1) * 8 + 3 * filt.shape[0] * filt.shape[1] * 4
    step = max(1, _STEP_BYTES // per_frame)
    if chunk_frames is not None:
        step = max(1, min(step, int(chunk_frames)))
    out = np.zeros((rows, cols), np.float32)
    with tqdm(total=n_frames, desc="filtered PNR", unit="frame", disable=not progress) as bar:
        for start, stop in batch_bounds(n_frames, batch_frames):
            np.maximum(out, _batch_pnr(mov, filt, start, stop, step, bar), out=out)
    return out


def _read_ahead(read: Callable[[int, int], _Block], ranges: Sequence[tuple[int, int]]) -> Iterator[_Block]:
    """``read(a, b)`` for each range in order, the next one read in a thread while the caller filters this one.

    Readers release the GIL while they copy or decode (memmap transposes, TIFF decompression), so reading overlaps
    the FFTs: at most two chunks are held at once.
    """
    if not ranges:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, *ranges[0])
        for nxt in ranges[1:]:
            block = pending.result()
            pending = pool.submit(read, *nxt)
            yield block
        yield pending.result()


@njit(nogil=True)
def _fold(f, p, total, peak, diff2, prev, has_prev):  # pragma: no cover - compiled
    """Add frames ``f[:, p:p+rows, p:p+cols]`` to the per-pixel sum, maximum and sum of squared steps.

    ``prev`` holds the last frame folded before (used when ``has_prev``) and is left holding this chunk's last.
    One pass over the chunk; the steps are float32 differences, squared and summed in float64.
    """
    rows, cols = total.shape
    for t in range(f.shape[0]):
        step = t > 0 or has_prev
        for i in range(rows):
            for j in range(cols):
                v = np.float32(f[t, i + p, j + p])
                total[i, j] += v
                if v > peak[i, j]:
                    peak[i, j] = v
                if step:
                    d = np.float64(v - prev[i, j])
                    diff2[i, j] += d * d
                prev[i, j] = v


def _batch_pnr(mov, filt: _SomaFilter, start: int, stop: int, step: int, bar) -> np.ndarray:
    """pnr_filtered of frames [start, stop) (>= 2 frames), read ``step`` frames at a time; float32 (rows, cols)."""
    rows, cols = filt.frame_shape
    total = np.zeros((rows, cols), np.float64)
    diff2 = np.zeros((rows, cols), np.float64)
    peak = np.full((rows, cols), -np.inf, np.float32)
    prev = np.zeros((rows, cols), np.float32)
    scale = 0.0
    reference = None
    ranges = [(a, min(a + step, stop)) for a in range(start, stop, step)]
    for k, frames in enumerate(_read_ahead(mov.read, ranges)):
        # Less one image for the whole batch (the mean of its first chunk): a fixed image adds a fixed value to each
        # pixel of the filtered movie, which peak - mean and the steps cancel, but the round-off of the FFTs then
        # scales with the movie's variation in time, not with its baseline or static bright pixels.
        if reference is None:
            reference = frames.mean(axis=0, dtype=np.float64).astype(np.float32)
        frames -= reference
        rms = np.linalg.norm(frames.reshape(len(frames), -1), axis=1).max() / math.sqrt(rows * cols)
        scale = max(scale, float(rms))
        _fold(filt.padded(frames), filt.pad, total, peak, diff2, prev, k > 0)
        bar.update(len(frames))
    n = stop - start  # >= 2: load_movie needs 2 frames and batch_bounds merges short remainders
    noise = np.sqrt(diff2 / (2.0 * (n - 1)))
    # without variation beyond the float32 round-off of the FFTs (~2e-6 of the frames' root-mean-square variation
    # from the batch's reference image) the pnr is 0, never inf/NaN
    tiny = noise <= 1e-5 * scale + 1e-30
    pnr = np.where(tiny, 0.0, np.maximum(peak - total / n, 0.0) / np.where(tiny, 1.0, noise))
    return pnr.astype(np.float32)
