"""The view of a movie that the builtin CNMF needs: pixel-major frame chunks and per-pixel noise, streamed."""
from __future__ import annotations

import logging
import mmap
from collections.abc import Iterator

import numpy as np

from ..io import load_memmap, load_movie
from .noise import MIN_FRAMES, fft_frame_subset, psd_noise

logger = logging.getLogger(__name__)

#: bytes of float32 data per chunk (each chunk is also transposed once, so twice this is held)
CHUNK_BYTES = 192 * 2**20


class MovieData:
    """Frames of a movie as (frames, pixels) float32 blocks, and its per-pixel noise in Fortran order.

    Parameters
    ----------
    movie : ndarray (T, rows, cols), a ``cellfie_caiman.io.Movie`` or anything ``load_movie`` accepts.
    """

    def __init__(self, movie):
        if isinstance(movie, np.ndarray) and movie.ndim != 3:
            raise ValueError(f"movie must have shape (T, rows, cols), got {movie.shape}")
        self._movie = load_movie(movie)  # fills NaN/inf like every other reader of movies
        self.n_frames, self.rows, self.cols = (int(s) for s in self._movie.shape)
        if self.n_frames < MIN_FRAMES:
            raise ValueError(f"refinement needs a movie of at least {MIN_FRAMES} frames (its noise is estimated from "
                             f"the power spectrum of each pixel), got {self.n_frames}")
        self.dims = (self.rows, self.cols)
        self.n_pixels = self.rows * self.cols
        self._Yr = self._pixel_major_source()
        #: chunks are (pixels, n) in Fortran pixel order (a CaImAn order-C memmap, read as stored) instead of
        #: (n, pixels) frames in C pixel order
        self.pixel_major = self._Yr is not None

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self._movie.read(start, stop)

    def chunk_length(self, chunk_frames: int | None) -> int:
        """Frames per chunk: ``chunk_frames`` capped so that a chunk holds at most ``CHUNK_BYTES``."""
        cap = max(1, CHUNK_BYTES // (4 * self.n_pixels))
        n = cap if not chunk_frames else min(int(chunk_frames), cap)
        return max(1, min(n, self.n_frames))

    def chunks(self, chunk_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, Y)`` float32 C-contiguous blocks of frames, NaN filled.

        Y is (n, pixels) with pixels in C order (use ``f2c``), or, when ``pixel_major``, (pixels, n) with pixels
        in Fortran order (a CaImAn memmap read without transposing it).
        """
        n = self.chunk_length(chunk_frames)
        for start in range(0, self.n_frames, n):
            stop = min(start + n, self.n_frames)
            if self._Yr is not None:
                Y = np.empty((self.n_pixels, stop - start), dtype=np.float32)
                step = max(1, (32 * 2**20) // (4 * self.n_frames))  # rows of the file per copy: ~32 MB of pages
                for p0 in range(0, self.n_pixels, step):
                    Y[p0:p0 + step] = self._Yr[p0:p0 + step, start:stop]
                    self._release()
                if not np.isfinite(Y).all():  # let io fill them, as for every other source
                    block = self._movie.read(start, stop)
                    Y = np.ascontiguousarray(block.transpose(2, 1, 0)).reshape(self.n_pixels, -1)
                yield start, Y
                continue
            block = self._read(start, stop)
            yield start, np.ascontiguousarray(block, dtype=np.float32).reshape(block.shape[0], -1)

    @property
    def f2c(self) -> np.ndarray:
        """C-order index (i*cols + j) of each Fortran-order pixel p = i + j*rows, int64 (pixels,)."""
        p = np.arange(self.n_pixels, dtype=np.int64)
        return (p % self.rows) * self.cols + p // self.rows

    def _release(self) -> None:
        """Unmap the memmap pages read so far from this process (they stay in the page cache).

        Without this, every page of the file that was touched counts in the resident set (``ru_maxrss``) although
        the kernel can drop it at any time.
        """
        mm = getattr(self._Yr, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # pragma: no cover - platform dependent
                pass

    def _pixel_major_source(self):
        """(pixels, T) array in Fortran pixel order readable by rows without a copy of the movie, or None."""
        movie = self._movie
        if movie.memmap_order != "C":  # io decodes CaImAn's names
            return None
        Yr, dims, T = load_memmap(movie.memmap_file)
        if tuple(dims)[:2] != self.dims or int(T) != self.n_frames:
            return None
        return Yr

    def noise(self, max_frames: int = 3072, budget_bytes: int = 128 * 2**20) -> np.ndarray:
        """Per-pixel noise (CaImAn's PSD definition on at most ``max_frames`` frames), Fortran order, float32.

        Memory stays below ``budget_bytes`` plus one chunk: pixels are processed in blocks of rows.
        """
        idx = fft_frame_subset(self.n_frames, max_frames)
        n = idx.size
        sn = np.zeros(self.n_pixels, dtype=np.float64)
        Yr = self._Yr
        if Yr is not None:
            step = max(1, budget_bytes // (8 * n))
            for p0 in range(0, self.n_pixels, step):
                blk = np.asarray(Yr[p0:p0 + step], dtype=np.float64)[:, idx]
                self._release()
                sn[p0:p0 + step] = psd_noise(np.nan_to_num(blk))
            return sn.astype(np.float32)
        # split the frame subset into contiguous runs
        runs = np.split(idx, np.where(np.diff(idx) != 1)[0] + 1)
        rows_per_block = max(1, int(budget_bytes // (4 * n * self.cols)))
        img = np.zeros((self.rows, self.cols))
        for r0 in range(0, self.rows, rows_per_block):
            r1 = min(self.rows, r0 + rows_per_block)
            buf = np.empty((n, r1 - r0, self.cols), dtype=np.float32)
            pos = 0
            step = self.chunk_length(None)
            for run in runs:
                for s in range(int(run[0]), int(run[-1]) + 1, step):
                    e = min(int(run[-1]) + 1, s + step)
                    buf[pos:pos + e - s] = self._read(s, e)[:, r0:r1]
                    pos += e - s
            img[r0:r1] = psd_noise(buf.reshape(n, -1).T).reshape(r1 - r0, self.cols)
        return img.ravel(order="F").astype(np.float32)
