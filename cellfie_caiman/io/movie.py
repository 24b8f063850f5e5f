"""The lazy :class:`Movie` (raw indexing, float32 reads with non-finite pixels filled) and
:func:`load_movie`, which opens any supported source as one."""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MovieError, MovieFileNotFoundError, NonFiniteWarning, check_movie_shape_dtype
from .hdf5 import HDF5_SUFFIXES, open_hdf5
from .memmap import CaimanMemmapReader
from .npy import open_npy
from .nwb import open_nwb
from .readers import ArrayReader, Reader
from .tiff import TIFF_SUFFIXES, open_tiff, open_tiff_folder

#: Non-finite values are interpolated from finite values of the same pixel at most this many frames away.
FILL_WINDOW = 32
#: Default size of a float32 chunk yielded by ``Movie.chunks`` (bytes).
DEFAULT_CHUNK_BYTES = 256 * 2**20


class Movie:
    """A lazy (frames, rows, cols) movie; made by :func:`load_movie`.

    Attributes
    ----------
    shape : tuple of int
        (T, rows, cols).
    n_frames : int
        T.
    frame_shape : tuple of int
        (rows, cols) in pixels.
    dtype : numpy.dtype
        Dtype of the stored data (``m[i]`` returns it; ``read``/``chunks``/``to_array`` return float32).
    source : str
        File or folder name, or ``'<ndarray>'``.
    frame_rate : float or None
        Frames per second (Hz) as the file records it.
    memmap_file, memmap_order : str or None
        The CaImAn memmap behind the movie and its order ('C' or 'F'); None for other sources.
    n_filled : int
        Number of non-finite values filled so far by the float32 readers.

    Indexing (``m[5]``, ``m[2:10]``, ``m[::10]``, ``m[[1, 4]]``, ``m[0:5, 10:20, :]``) returns raw data as stored,
    NaN included. ``read``, ``chunks`` and ``to_array`` return float32 with non-finite values filled (see module
    docstring).
    """

    def __init__(self, reader: Reader):
        self._reader = reader
        self.n_filled = 0
        self._warned = False
        self._constant = None  # see _fill_constant

    # -- description ------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, rows, cols)."""
        return self._reader.shape

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return self.shape[0]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, cols) in pixels."""
        return self.shape[1:]

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored data (what indexing returns)."""
        return self._reader.dtype

    @property
    def source(self) -> str:
        """File or folder name, or ``'<ndarray>'``."""
        return self._reader.source

    @property
    def frame_rate(self) -> float | None:
        """Frames per second as the file records it (an NWB series' rate or timestamps, a TIFF's ImageJ or
        ScanImage metadata); None when it does not (arrays, memmaps, HDF5, plain TIFFs)."""
        return self._reader.frame_rate

    @property
    def memmap_file(self) -> str | None:
        """The CaImAn memmap file behind this movie, or None."""
        return self._reader.source if isinstance(self._reader, CaimanMemmapReader) else None

    @property
    def memmap_order(self) -> str | None:
        """'C' or 'F' for a CaImAn memmap, else None."""
        return self._reader.order if isinstance(self._reader, CaimanMemmapReader) else None

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        return f"Movie(source={self.source!r}, shape={self.shape}, dtype={self.dtype})"

    def default_chunk_frames(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
        """Frames per chunk so that a float32 chunk is about ``chunk_bytes`` bytes (at least 1, at most T).

        Parameters
        ----------
        chunk_bytes : int
            Bytes of float32 per chunk.

        Returns
        -------
        int
        """
        frame_bytes = 4 * self.frame_shape[0] * self.frame_shape[1]
        return int(max(1, min(self.n_frames, chunk_bytes // max(frame_bytes, 1))))

    # -- raw access -------------------------------------------------------------------------------------------
    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            if not key:
                key = slice(None)
            else:
                key, rest = key[0], key[1:]
        if key is Ellipsis:
            key, rest = slice(None), (Ellipsis,) + rest
        if isinstance(key, (int, np.integer)):
            t = int(key)
            if not -self.n_frames <= t < self.n_frames:
                raise IndexError(f"frame {t} out of range for {self.n_frames} frames of {self.source}")
            t %= self.n_frames
            out = self._reader.read(t, t + 1)[0]
            return out[rest] if rest else out
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n_frames)
            if step == 1:
                out = self._reader.read(start, max(start, stop))
            else:
                out = self._take(np.arange(start, stop, step))
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                if idx.shape != (self.n_frames,):
                    raise IndexError(f"boolean frame index of shape {idx.shape} does not match {self.n_frames} frames")
                idx = np.flatnonzero(idx)
            if idx.dtype.kind not in "iu" or idx.ndim != 1:
                raise IndexError(f"unsupported frame index {key!r}")
            if idx.size and (idx.min() < -self.n_frames or idx.max() >= self.n_frames):
                raise IndexError(f"frame index out of range for {self.n_frames} frames of {self.source}")
            out = self._take(idx % self.n_frames if idx.size else idx.astype(np.intp))
        return out[(slice(None),) + rest] if rest else out

    def _take(self, idx: np.ndarray) -> np.ndarray:
        """Raw frames at arbitrary indices, reading each run of consecutive indices once."""
        out = np.empty((len(idx),) + self.frame_shape, self.dtype)
        if not len(idx):
            return out
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        breaks = np.flatnonzero(np.diff(sidx) > 1) + 1
        for run in np.split(np.arange(len(sidx)), breaks):
            lo, hi = int(sidx[run[0]]), int(sidx[run[-1]]) + 1
            block = self._reader.read(lo, hi)
            out[order[run]] = block[sidx[run] - lo]
        return out

    # -- float32 access with non-finite values filled -----------------------------------------------------------
    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` as float32 (n, rows, cols), NaN/inf filled.

        Parameters
        ----------
        start, stop : int
            Frame range (Python slice semantics, clipped to the movie; negative values count from the end; ``stop``
            None: to the end).

        Returns
        -------
        ndarray, float32, shape (n, rows, cols)
            A new array (n = 0 for an empty range).

        Raises
        ------
        MovieError
            Float64 values beyond float32's range.
        """
        start, stop, _ = slice(start, stop).indices(self.n_frames)
        stop = max(start, stop)
        return self._read_filled(start, stop)

    def chunks(self, chunk_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)`` over the whole movie; block is float32 (n, rows, cols), NaN/inf filled.

        Parameters
        ----------
        chunk_frames : int, optional
            Frames per chunk (the last may be shorter). Default: about 256 MB of float32 per chunk.

        Yields
        ------
        start : int
            Index of the chunk's first frame.
        block : ndarray, float32, shape (n, rows, cols)

        Raises
        ------
        ValueError
            If ``chunk_frames`` is below 1 (when the iteration starts).
        """
        if chunk_frames is None:
            chunk_frames = self.default_chunk_frames()
        chunk_frames = int(chunk_frames)
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        left = None
        for start in range(0, self.n_frames, chunk_frames):
            stop = min(start + chunk_frames, self.n_frames)
            block, left = self._read_filled(start, stop, left_context=left, return_tail=True)
            yield start, block

    def to_array(self) -> np.ndarray:
        """The whole movie in memory as float32 (T, rows, cols), NaN/inf filled."""
        return self._read_filled(0, self.n_frames)

    def __array__(self, dtype=None, copy=None):
        out = self.to_array()
        return out if dtype is None else out.astype(dtype, copy=False)

    def close(self) -> None:
        """Release open file handles (they are reopened on the next read)."""
        self._reader.close()

    def __enter__(self) -> Movie:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- filling ----------------------------------------------------------------------------------------------
    def _read_filled(self, start, stop, left_context=None, return_tail=False):
        raw = self._reader.read(start, stop)
        with np.errstate(over="ignore"):  # float64 beyond float32's range: refused below, with the values named
            block = raw.astype(np.float32, copy=True)
        tail = None
        if block.dtype.kind == "f" and raw.dtype.kind in "fc":
            bad = ~np.isfinite(block)
            if bad.any():
                if raw.dtype.itemsize > 4 and np.isfinite(raw[bad]).any():
                    big = float(np.abs(raw[bad][np.isfinite(raw[bad])]).max())
                    raise MovieError(f"{self.source}: values up to {big:.3g} in frames {start}..{stop - 1} are beyond "
                                     f"float32's range (3.4e38), in which movies are processed: rescale the movie")
                self._fill(block, bad, start, stop, left_context)
        if return_tail:
            # raw float32 tail (with its NaN) serves as the next chunk's left context
            tail = np.asarray(raw[-FILL_WINDOW:], dtype=np.float32)
            if stop - start < FILL_WINDOW and left_context is not None:
                tail = np.concatenate([left_context, tail])[-FILL_WINDOW:]
            return block, tail
        return block

    def _fill(self, block, bad, start, stop, left_context):
        T, W = self.n_frames, FILL_WINDOW
        n = stop - start
        rows, cols = self.frame_shape
        flat_bad = bad.reshape(n, -1)
        pix = np.flatnonzero(flat_bad.any(axis=0))
        c0, c1 = max(0, start - W), min(T, stop + W)
        if left_context is not None and len(left_context) >= start - c0:
            left = left_context[len(left_context) - (start - c0):] if start > c0 else left_context[:0]
        else:
            left = np.asarray(self._reader.read(c0, start), dtype=np.float32)
        right = np.asarray(self._reader.read(stop, c1), dtype=np.float32)
        raw_block = np.where(bad, np.nan, block)  # block is a float32 copy of raw with inf kept; unify as NaN
        d = rows * cols
        values = np.concatenate([left.reshape(len(left), d)[:, pix], raw_block.reshape(n, d)[:, pix],
                                 right.reshape(len(right), d)[:, pix]], axis=0)  # (L, P)
        L = values.shape[0]
        finite = np.isfinite(values)
        pos = np.arange(L, dtype=np.int64)[:, None]
        prev = np.maximum.accumulate(np.where(finite, pos, -1), axis=0)
        nxt = np.minimum.accumulate(np.where(finite, pos, L)[::-1], axis=0)[::-1]
        off = start - c0
        tb, pb = np.nonzero(~finite[off:off + n])  # local block frame, column in pix
        t = tb + off
        p, q = prev[t, pb], nxt[t, pb]
        has_p = (p >= 0) & (t - p <= W)
        has_q = (q < L) & (q - t <= W)
        vp = values[np.clip(p, 0, L - 1), pb].astype(np.float64)
        vq = values[np.clip(q, 0, L - 1), pb].astype(np.float64)
        both = has_p & has_q
        w = np.where(both, (t - p) / np.maximum(q - p, 1), 0.0)
        filled = np.where(both, vp + w * (vq - vp), np.where(has_p, vp, vq))
        none = ~(has_p | has_q)
        if none.any():
            filled[none] = self._fill_constant()
        flat = block.reshape(n, -1)
        flat[tb, pix[pb]] = filled.astype(np.float32)
        count = int(len(tb))
        self.n_filled += count
        if not self._warned:
            self._warned = True
            warnings.warn(NonFiniteWarning(
                f"{self.source}: filled {count} non-finite (NaN/inf) values in {len(pix)} of {rows * cols} pixels "
                f"of frames {start}..{stop - 1} (linear interpolation in time within {W} frames, else a constant: "
                f"{self._constant if self._constant is not None else 'none needed yet'}); later fills in this movie "
                f"are counted in Movie.n_filled, not reported"), stacklevel=3)

    def _fill_constant(self, frames_per_read: int = 64) -> float:
        """The value of a missing value with no finite value of its pixel within ``FILL_WINDOW`` frames: the median
        of the finite values of the movie's first frame that has any, the same in every frame. A movie without a
        single finite value raises MovieError (nothing in it could be filled from, and a blank movie would only
        show up much later as "no neurons found").

        A pixel that is never finite (a motion-correction border) is then constant: no variance, no correlation
        with its neighbours, no peak; a value that changed from frame to frame would be the same in all such
        pixels and make them a perfectly correlated band.
        """
        if self._constant is None:
            for start in range(0, self.n_frames, frames_per_read):
                block = np.asarray(self._reader.read(start, min(start + frames_per_read, self.n_frames)), np.float32)
                finite = np.isfinite(block).reshape(len(block), -1)
                first = np.flatnonzero(finite.any(axis=1))
                if len(first):
                    frame = block[first[0]].ravel()
                    self._constant = float(np.median(frame[finite[first[0]]]))
                    break
            else:
                raise MovieError(f"{self.source}: no finite value in any of its {self.n_frames} frames (all NaN or "
                                 f"inf): is it the right file or dataset (var_name)?")
        return self._constant


def _name(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"a {type(source).__name__}"


def load_movie(source: Any, var_name: str | None = None) -> Movie:
    """Open a movie lazily.

    Parameters
    ----------
    source : str, os.PathLike, numpy.ndarray or Movie
        CaImAn ``.mmap``, ``.tif``/``.tiff``, a folder of single-frame TIFFs, ``.h5``/``.hdf5``/``.hdf``, ``.nwb``,
        ``.npy``, an array (T, rows, cols) or a Movie (returned as is).
    var_name : str, optional
        HDF5 dataset path, or NWB series name (or path) to read (a warning says it is ignored for other sources).

    Returns
    -------
    Movie
        Lazy (T, rows, cols) movie; nothing but headers is read here.

    Raises
    ------
    MovieError
        Missing file (``MovieFileNotFoundError``), unknown format, not 3-D, fewer than 2 frames, non-numeric
        dtype, truncated or corrupt file, several channels, z-planes or stage positions in a TIFF, frames of
        different shapes or names of several sequences in a folder.
    """
    if isinstance(source, Movie):
        return source
    if var_name is not None and not (isinstance(source, (str, os.PathLike))
                                     and Path(source).suffix.lower() in (".nwb", *HDF5_SUFFIXES)):
        warnings.warn(f"var_name {var_name!r} ignored for {_name(source)}: only HDF5 and NWB files hold several "
                      "movies to choose from", UserWarning, stacklevel=2)
    if isinstance(source, np.ndarray):
        shape = check_movie_shape_dtype(source.shape, source.dtype, "<ndarray>")
        return Movie(ArrayReader(source.reshape(shape), "<ndarray>"))
    if not isinstance(source, (str, os.PathLike)):
        raise MovieError(f"a {type(source).__name__} is not a movie source (expected a path, an ndarray (T, rows, "
                         f"cols) or a Movie; convert a list with numpy.asarray)")
    path = Path(source).expanduser()
    if not path.exists():
        raise MovieFileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return Movie(open_tiff_folder(path))
    suffix = path.suffix.lower()
    if suffix == ".mmap":
        return Movie(CaimanMemmapReader(path))
    if suffix in TIFF_SUFFIXES:
        return Movie(open_tiff(path))
    if suffix == ".npy":
        return Movie(open_npy(path))
    if suffix == ".nwb":
        return Movie(open_nwb(path, var_name))
    if suffix in HDF5_SUFFIXES:
        return Movie(open_hdf5(path, var_name))
    raise MovieError(f"{path}: unknown movie format '{path.suffix}' (supported: CaImAn .mmap, .tif/.tiff, a folder "
                     f"of TIFF frames, .h5/.hdf5, .nwb, .npy)")
