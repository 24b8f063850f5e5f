"""Movie input/output: one lazy ``Movie`` for every format, and CaImAn's memmap layout.

``load_movie`` opens a movie without reading it: frames are read on demand (``m[a:b]`` raw, ``m.read`` /
``m.chunks`` / ``m.to_array`` as float32 with non-finite pixels filled). Supported sources:

* CaImAn memmaps ``{base}_d1_{d1}_d2_{d2}_d3_1_order_{C|F}_frames_{T}.mmap`` (also the older ``..._frames_{T}_.mmap``),
  decoded as CaImAn does (the token after the *last* occurrence of each key). Pixel ``p = i + j*d1`` (Fortran
  flattening of a frame); the float32 value of (p, t) is at element ``p*T + t`` (order C) or ``p + t*d`` (order F).
* multi-page TIFF (memory-mapped when uncompressed and contiguous, otherwise decoded page by page per chunk);
* a folder of single-frame TIFFs (sorted naturally: ``img2.tif`` before ``img10.tif``), e.g. neurofinder's
  ``images/``;
* HDF5 (``.h5``/``.hdf5``): dataset ``var_name``, else ``mov``, else the only 3-D dataset in the file;
* NWB (``.nwb``): the data of a ``TwoPhotonSeries`` (``var_name`` picks one by name). NWB documents the axes as
  (time, x, y); like CaImAn and Suite2p we read them as (time, rows, cols), i.e. NWB's ``x`` is our row axis;
* ``.npy`` (memory-mapped) and in-memory arrays (T, rows, cols).

Non-finite pixels (motion correction leaves NaN at the borders) are filled on the float32 paths, never in raw
indexing: each missing value is interpolated linearly in time between the pixel's nearest finite values at most
``FILL_WINDOW`` frames away (the nearest one if only one side has one), otherwise replaced by the median of the
finite pixels of its frame (0 if the frame has none). The result depends only on the movie, not on how it is
chunked. A ``NonFiniteWarning`` says how many values were filled (once per Movie).
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["Movie", "MovieError", "MovieFileNotFoundError", "NonFiniteWarning", "load_movie", "save_memmap",
           "load_memmap", "decode_memmap_name", "memmap_name", "FILL_WINDOW", "DEFAULT_CHUNK_BYTES"]

#: Non-finite values are interpolated from finite values of the same pixel at most this many frames away.
FILL_WINDOW = 32
#: Default size of a float32 chunk yielded by ``Movie.chunks`` (bytes).
DEFAULT_CHUNK_BYTES = 256 * 2**20

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


class MovieError(ValueError):
    """A movie source that cannot be read as a (frames, rows, cols) movie; the message names the file and why."""


class MovieFileNotFoundError(MovieError, FileNotFoundError):
    """The movie file or folder does not exist."""


class NonFiniteWarning(RuntimeWarning):
    """NaN or inf pixels were found and filled."""


# ----------------------------------------------------------------------------------------------------------------
# CaImAn memmap names
# ----------------------------------------------------------------------------------------------------------------

def memmap_name(base_name: str, dims: Sequence[int], n_frames: int, order: str = "C") -> str:
    """CaImAn's memmap file name: ``{base}_d1_{d1}_d2_{d2}_d3_{d3}_order_{order}_frames_{T}.mmap``.

    Runs of ``_`` are collapsed as CaImAn's ``generate_fname_tot`` does (``"memmap_"`` gives ``memmap_d1_...``).
    """
    dims = tuple(int(d) for d in dims)
    d3 = dims[2] if len(dims) > 2 else 1
    stem = "_".join([str(base_name), "d1", str(dims[0]), "d2", str(dims[1]), "d3", str(d3), "order", order])
    stem = re.sub("_+", "_", stem)
    return f"{stem}_frames_{int(n_frames)}.mmap"


def decode_memmap_name(fname: str | os.PathLike) -> dict:
    """Decode a CaImAn memmap name into ``{'d1', 'd2', 'd3', 'order', 'T'}`` the way CaImAn does.

    The extension is dropped, the name split on ``_`` and its first token dropped; each key's value is the token
    after the key's *last* occurrence. ``T`` is the last token, or the ``frames`` value when the name ends in ``_``.

    Raises
    ------
    MovieError
        If a key is missing or a value is not a valid integer / order.
    """
    name = Path(fname).name
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    tokens = stem.split("_")[1:]
    out: dict[str, Any] = {}
    for key in ("d1", "d2", "d3", "order", "frames"):
        positions = [k for k, tok in enumerate(tokens) if tok == key]
        if not positions or positions[-1] + 1 >= len(tokens):
            raise MovieError(f"{fname}: not a CaImAn memmap name (no '{key}_<value>' in the name; expected "
                             f"'<base>_d1_<rows>_d2_<cols>_d3_1_order_<C|F>_frames_<T>.mmap')")
        out[key] = tokens[positions[-1] + 1]
    try:
        dims = [int(out[k]) for k in ("d1", "d2", "d3")]
        last = tokens[-1] if tokens[-1] != "" else out["frames"]
        n_frames = int(last)
    except ValueError:
        raise MovieError(f"{fname}: CaImAn memmap name has a non-integer dimension or frame count") from None
    if out["order"] not in ("C", "F"):
        raise MovieError(f"{fname}: CaImAn memmap order must be C or F, not {out['order']!r}")
    if min(dims) < 1 or n_frames < 0:
        raise MovieError(f"{fname}: CaImAn memmap name has a non-positive dimension")
    return {"d1": dims[0], "d2": dims[1], "d3": dims[2], "order": out["order"], "T": n_frames}


def _is_caiman_memmap_name(path: Path) -> bool:
    try:
        decode_memmap_name(path)
    except MovieError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------------
# Readers: one per format. Each has .shape (T, rows, cols), .dtype, .source and .read(start, stop) -> raw array.
# ----------------------------------------------------------------------------------------------------------------

class _Reader:
    shape: tuple[int, int, int]
    dtype: np.dtype
    source: str

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass


class _ArrayReader(_Reader):
    """An ndarray, np.memmap or memory-mapped .npy of shape (T, rows, cols)."""

    def __init__(self, array: np.ndarray, source: str):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype
        self.source = source

    def read(self, start, stop):
        return np.asarray(self.array[start:stop])


class _MappedFileReader(_ArrayReader):
    """A memory-mapped file (.npy or uncompressed TIFF); pickles as its path, not its data."""

    def __init__(self, path: Path, kind: str, shape):
        self.path, self.kind = path, kind
        super().__init__(self._open(shape), str(path))

    def _open(self, shape=None):
        if self.kind == "npy":
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        else:
            import tifffile
            arr = tifffile.memmap(self.path, mode="r")
        return arr.reshape(shape if shape is not None else self.shape)

    def read(self, start, stop):
        if self.array is None:
            self.array = self._open()
        return np.asarray(self.array[start:stop])

    def close(self):
        self.array = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["array"] = None
        return state


class _CaimanMemmapReader(_Reader):
    """A CaImAn memmap: Yr (pixels, T) float32, pixel p = i + j*d1, order C (pixel-major) or F (frame-major)."""

    def __init__(self, path: Path, mode: str = "r"):
        self.source = str(path)
        self.path = path
        self.mode = mode
        info = decode_memmap_name(path)
        if info["d3"] != 1:
            raise MovieError(f"{path}: 3-D volumes (d3={info['d3']}) are not supported, only 2-D movies")
        self.d1, self.d2, self.order, self.T = info["d1"], info["d2"], info["order"], info["T"]
        self.shape = _check_movie_shape_dtype((self.T, self.d1, self.d2), np.float32, str(path))
        self.dtype = np.dtype(np.float32)
        self._yr = None
        if path.suffix.lower() == ".npy":
            self._yr = self.yr  # checks shape and dtype
        else:
            _check_file_size(path, self.d1 * self.d2 * self.T * 4, f"d1*d2*T*4 = {self.d1}*{self.d2}*{self.T}*4")

    @property
    def yr(self) -> np.ndarray:
        if self._yr is None:
            if self.path.suffix.lower() == ".npy":
                yr = np.load(self.path, mmap_mode=self.mode, allow_pickle=False)
                if yr.shape != (self.d1 * self.d2, self.T) or yr.dtype != np.float32:
                    raise MovieError(f"{self.path}: expected a float32 Yr of shape {(self.d1 * self.d2, self.T)} as "
                                     f"its name says, got {yr.dtype} {yr.shape}")
                self.order = "F" if yr.flags.f_contiguous and not yr.flags.c_contiguous else "C"
                self._yr = yr
            else:
                self._yr = np.memmap(self.path, dtype=np.float32, mode=self.mode,
                                     shape=(self.d1 * self.d2, self.T), order=self.order)
        return self._yr

    def read(self, start, stop):
        block = self.yr[:, start:stop]  # (d, n); rows of a C file are contiguous per pixel
        n = block.shape[1]
        if self.order == "C":  # a real transpose: tiled (NumPy's copy would fault a page per value)
            from ._transpose import pixels_to_frames

            return pixels_to_frames(block, self.d1)
        # frame[i, j] = Yr[i + j*d1, t]  ->  block.T is (n, d) with d indexed j*d1 + i, i.e. (n, d2, d1) in C.
        return np.ascontiguousarray(np.asarray(block).T.reshape(n, self.d2, self.d1).transpose(0, 2, 1))

    def close(self):
        self._yr = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_yr"] = None
        return state


def _check_file_size(path: Path, expected: int, formula: str) -> None:
    size = path.stat().st_size
    if size != expected:
        what = "truncated" if size < expected else "longer than its name says"
        raise MovieError(f"{path}: file is {what}: {size} bytes on disk, but its name implies {expected} bytes "
                         f"({formula}); the file is corrupt or misnamed")


class _TiffPagesReader(_Reader):
    """A multi-page TIFF decoded lazily, a range of pages per read (compressed or non-contiguous files)."""

    def __init__(self, path: Path, shape, dtype, series: int | None = 0):
        self.source = str(path)
        self.path = path
        self.series = series
        self.shape = shape
        self.dtype = dtype
        self._tf = None

    @property
    def tf(self):
        if self._tf is None:
            import tifffile
            self._tf = tifffile.TiffFile(self.path)
        return self._tf

    def read(self, start, stop):
        n = stop - start
        if n <= 0:
            return np.empty((0,) + self.shape[1:], self.dtype)
        try:
            data = self.tf.asarray(key=list(range(start, stop)), series=self.series, maxworkers=1)
        except Exception as exc:  # corrupt pages, missing codec, ...
            raise MovieError(f"{self.path}: cannot decode pages {start}..{stop - 1}: {exc}") from exc
        return np.asarray(data).reshape((n,) + self.shape[1:])

    def close(self):
        if self._tf is not None:
            self._tf.close()
            self._tf = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tf"] = None
        return state


class _FolderReader(_Reader):
    """A folder of single-frame TIFF files, one frame per file, in natural order."""

    def __init__(self, path: Path, files: list[Path], frame_shape, dtype):
        self.source = str(path)
        self.files = files
        self.shape = (len(files),) + tuple(frame_shape)
        self.dtype = dtype

    def read(self, start, stop):
        import tifffile
        out = np.empty((max(stop - start, 0),) + self.shape[1:], self.dtype)
        for k, t in enumerate(range(start, stop)):
            try:
                frame = tifffile.imread(self.files[t])
            except Exception as exc:
                raise MovieError(f"{self.files[t]}: cannot read TIFF frame: {exc}") from exc
            frame = np.squeeze(frame)
            if frame.shape != self.shape[1:]:
                raise MovieError(f"{self.files[t]}: frame shape {frame.shape} differs from the first frame's "
                                 f"{self.shape[1:]} in folder {self.source}")
            out[k] = frame
        return out


class _H5Reader(_Reader):
    """A 3-D dataset in an HDF5 (or NWB) file, read by slicing."""

    def __init__(self, path: Path, dataset: str, shape, dtype):
        self.source = str(path)
        self.path = path
        self.dataset = dataset
        self.shape = shape
        self.dtype = dtype
        self._file = None

    @property
    def dset(self):
        if self._file is None:
            import h5py
            self._file = h5py.File(self.path, "r")
        return self._file[self.dataset]

    def read(self, start, stop):
        try:
            return np.asarray(self.dset[start:stop]).reshape((max(stop - start, 0),) + self.shape[1:])
        except OSError as exc:
            raise MovieError(f"{self.path}: cannot read frames {start}..{stop - 1} of '{self.dataset}': {exc}") \
                from exc

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        return state


# ----------------------------------------------------------------------------------------------------------------
# Movie
# ----------------------------------------------------------------------------------------------------------------

class Movie:
    """A lazy (frames, rows, cols) movie.

    Attributes
    ----------
    shape : tuple of int
        (T, rows, cols).
    dtype : numpy.dtype
        Dtype of the stored data (``m[i]`` returns it; ``read``/``chunks``/``to_array`` return float32).
    source : str
        File or folder name, or ``'<ndarray>'``.
    n_filled : int
        Number of non-finite values filled so far by the float32 readers.

    Indexing (``m[5]``, ``m[2:10]``, ``m[::10]``, ``m[[1, 4]]``, ``m[0:5, 10:20, :]``) returns raw data as stored,
    NaN included. ``read``, ``chunks`` and ``to_array`` return float32 with non-finite values filled (see module
    docstring).
    """

    def __init__(self, reader: _Reader):
        self._reader = reader
        self.n_filled = 0
        self._warned = False

    # -- description ------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self._reader.shape

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return self._reader.dtype

    @property
    def source(self) -> str:
        return self._reader.source

    @property
    def memmap_file(self) -> str | None:
        """The CaImAn memmap file behind this movie, or None."""
        return self._reader.source if isinstance(self._reader, _CaimanMemmapReader) else None

    @property
    def memmap_order(self) -> str | None:
        """'C' or 'F' for a CaImAn memmap, else None."""
        return self._reader.order if isinstance(self._reader, _CaimanMemmapReader) else None

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        return f"Movie(source={self.source!r}, shape={self.shape}, dtype={self.dtype})"

    def default_chunk_frames(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
        """Frames per chunk so that a float32 chunk is about ``chunk_bytes`` bytes (at least 1)."""
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
            Frame range (Python slice semantics, clipped to the movie; negative values count from the end).
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
        block = raw.astype(np.float32, copy=True)
        tail = None
        if block.dtype.kind == "f" and raw.dtype.kind in "fc":
            bad = ~np.isfinite(block)
            if bad.any():
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
            frames = np.unique(tb[none])
            med = np.zeros(n, np.float64)
            for f in frames:
                fin = raw_block[f][np.isfinite(raw_block[f])]
                med[f] = float(np.median(fin)) if fin.size else 0.0
            filled[none] = med[tb[none]]
        flat = block.reshape(n, -1)
        flat[tb, pix[pb]] = filled.astype(np.float32)
        count = int(len(tb))
        self.n_filled += count
        if not self._warned:
            self._warned = True
            warnings.warn(NonFiniteWarning(
                f"{self.source}: filled {count} non-finite (NaN/inf) values in {len(pix)} of {rows * cols} pixels "
                f"of frames {start}..{stop - 1} (linear interpolation in time within {W} frames, else the frame's "
                f"median); later fills in this movie are counted in Movie.n_filled, not reported"), stacklevel=3)


# ----------------------------------------------------------------------------------------------------------------
# load_movie
# ----------------------------------------------------------------------------------------------------------------

def _check_movie_shape_dtype(shape, dtype, source: str, hint: str = "") -> tuple[int, int, int]:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise MovieError(f"{source}: data type {dtype} is not a numeric (integer or float) movie type")
    shape = tuple(int(s) for s in shape)
    if len(shape) > 3:
        # drop singleton axes except the frame axis and the last two (e.g. ImageJ/OME T,Z,C,Y,X with Z=C=1)
        keep = [k for k, s in enumerate(shape) if s != 1 or k == 0 or k >= len(shape) - 2]
        if len(keep) == 3:
            shape = tuple(shape[k] for k in keep)
    if len(shape) != 3:
        raise MovieError(f"{source}: expected a 3-D movie (frames, rows, cols), got {len(shape)}-D data of shape "
                         f"{shape}{hint}")
    if shape[0] < 2:
        raise MovieError(f"{source}: a movie needs at least 2 frames, got {shape[0]} (shape {shape})")
    if min(shape[1:]) < 1:
        raise MovieError(f"{source}: empty frames (shape {shape})")
    return shape


def load_movie(source: Any, var_name: str | None = None) -> Movie:
    """Open a movie lazily.

    Parameters
    ----------
    source : str, os.PathLike, numpy.ndarray or Movie
        CaImAn ``.mmap``, ``.tif``/``.tiff``, a folder of single-frame TIFFs, ``.h5``/``.hdf5``, ``.nwb``,
        ``.npy``, an array (T, rows, cols) or a Movie (returned as is).
    var_name : str, optional
        HDF5 dataset path, or NWB series name (or path) to read.

    Returns
    -------
    Movie
        Lazy (T, rows, cols) movie; nothing but headers is read here.

    Raises
    ------
    MovieError
        Missing file (``MovieFileNotFoundError``), unknown format, not 3-D, fewer than 2 frames, non-numeric
        dtype, truncated or corrupt file, frames of different shapes in a folder.
    """
    if isinstance(source, Movie):
        return source
    if isinstance(source, np.ndarray):
        shape = _check_movie_shape_dtype(source.shape, source.dtype, "<ndarray>")
        return Movie(_ArrayReader(source.reshape(shape), "<ndarray>"))
    if not isinstance(source, (str, os.PathLike)):
        raise MovieError(f"a {type(source).__name__} is not a movie source (expected a path, an ndarray (T, rows, "
                         f"cols) or a Movie; convert a list with numpy.asarray)")
    path = Path(source).expanduser()
    if not path.exists():
        raise MovieFileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return Movie(_open_tiff_folder(path))
    suffix = path.suffix.lower()
    if suffix == ".mmap":
        return Movie(_CaimanMemmapReader(path))
    if suffix in TIFF_SUFFIXES:
        return Movie(_open_tiff(path))
    if suffix == ".npy":
        return Movie(_open_npy(path))
    if suffix == ".nwb":
        return Movie(_open_nwb(path, var_name))
    if suffix in HDF5_SUFFIXES:
        return Movie(_open_hdf5(path, var_name))
    raise MovieError(f"{path}: unknown movie format '{path.suffix}' (supported: CaImAn .mmap, .tif/.tiff, a folder "
                     f"of TIFF frames, .h5/.hdf5, .nwb, .npy)")


def _open_npy(path: Path) -> _Reader:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise MovieError(f"{path}: cannot read as .npy: {exc}") from exc
    except Exception as exc:
        raise MovieError(f"{path}: corrupt or truncated .npy file: {exc}") from exc
    if arr.ndim == 2 and _is_caiman_memmap_name(path):  # CaImAn's Yr (pixels, T) saved as .npy
        return _CaimanMemmapReader(path)
    shape = _check_movie_shape_dtype(arr.shape, arr.dtype, str(path))
    del arr
    return _MappedFileReader(path, "npy", shape)


def _open_tiff(path: Path) -> _Reader:
    import tifffile
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            shape, dtype = series.shape, series.dtype
            n_pages = len(series.pages)
            mappable = series.dataoffset is not None
            page_shape = tuple(series.pages[0].shape) if n_pages else ()
            use_series = True
            if len([s for s in shape if s != 1]) == 2 and len(tf.pages) > 1:
                # pages written one by one (each its own series): the movie is all pages of the file
                pages = [tf.pages[k] for k in range(len(tf.pages))]
                shapes = {tuple(p.shape) for p in pages}
                dtypes = {np.dtype(p.dtype) for p in pages}
                if len(shapes) != 1 or len(dtypes) != 1:
                    raise MovieError(f"{path}: pages of different shapes or types ({sorted(shapes)[:4]}, "
                                     f"{sorted(map(str, dtypes))}) cannot form a movie")
                page_shape = shapes.pop()
                shape, dtype, n_pages, mappable, use_series = (len(pages),) + page_shape, dtypes.pop(), len(pages), \
                    False, False
    except MovieError:
        raise
    except Exception as exc:
        raise MovieError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc})") from exc
    shape = _check_movie_shape_dtype(shape, dtype, str(path))
    if mappable:
        try:
            return _MappedFileReader(path, "tiff", shape)
        except Exception as exc:  # fall back to page reading
            logger.debug("%s: cannot memory-map (%s); decoding pages instead", path, exc)
    if n_pages == shape[0] and int(np.prod(page_shape)) == shape[1] * shape[2]:
        return _TiffPagesReader(path, shape, np.dtype(dtype), series=0 if use_series else None)
    raise MovieError(f"{path}: TIFF is truncated or corrupt, or its layout is not supported ({n_pages} readable "
                     f"pages of shape {page_shape} for a movie of shape {shape}, not memory-mappable)")


def _natural_key(path: Path):
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def _open_tiff_folder(path: Path) -> _Reader:
    import tifffile
    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
                    and not f.name.startswith(".")), key=_natural_key)
    if not files:
        raise MovieError(f"{path}: folder contains no .tif/.tiff frames")
    frame_shape = dtype = None
    for f in files:
        try:
            with tifffile.TiffFile(f) as tf:
                series = tf.series[0]
                shape, fdtype = tuple(s for s in series.shape if s != 1) or (1,), series.dtype
                n_pages = len(tf.pages)
        except Exception as exc:
            raise MovieError(f"{f}: not a readable TIFF frame ({type(exc).__name__}: {exc})") from exc
        if n_pages != 1 or len(shape) != 2:
            raise MovieError(f"{f}: expected one 2-D frame per file in folder {path}, found {n_pages} page(s) of "
                             f"shape {series.shape}")
        if frame_shape is None:
            frame_shape, dtype = shape, np.dtype(fdtype)
        elif shape != frame_shape:
            raise MovieError(f"{f}: frame shape {shape} differs from {frame_shape} of {files[0].name} in folder {path}")
        elif np.dtype(fdtype) != dtype:
            raise MovieError(f"{f}: frame dtype {fdtype} differs from {dtype} of {files[0].name} in folder {path}")
    _check_movie_shape_dtype((len(files),) + frame_shape, dtype, str(path))
    return _FolderReader(path, files, frame_shape, dtype)


def _open_h5(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise MovieError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _open_hdf5(path: Path, var_name: str | None) -> _Reader:
    import h5py
    with _open_h5(path) as f:
        if var_name is not None:
            if var_name not in f or not isinstance(f[var_name], h5py.Dataset):
                raise MovieError(f"{path}: no dataset '{var_name}' in the file")
            name = var_name
        elif "mov" in f and isinstance(f["mov"], h5py.Dataset):
            name = "mov"
        else:
            found = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 3 else None)
            if len(found) != 1:
                raise MovieError(f"{path}: no dataset 'mov' and {len(found)} 3-D datasets ({', '.join(found[:10])}); "
                                 f"choose one with var_name= (command line: --var-name)")
            name = found[0]
        dset = f[name]
        shape, dtype = dset.shape, dset.dtype
    shape = _check_movie_shape_dtype(shape, dtype, f"{path}:{name}")
    return _H5Reader(path, name, shape, np.dtype(dtype))


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open_nwb(path: Path, var_name: str | None) -> _Reader:
    import h5py
    with _open_h5(path) as f:
        series = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and _attr_str(obj.attrs.get("neurodata_type", "")) == "TwoPhotonSeries":
                series[name] = obj

        f.visititems(visit)
        if var_name is not None:
            picked = [n for n in series if n == var_name.strip("/") or n.split("/")[-1] == var_name]
            if len(picked) != 1:
                raise MovieError(f"{path}: no unique TwoPhotonSeries named '{var_name}' (found: "
                                 f"{', '.join(series) or 'none'})")
        else:
            picked = list(series)
            acq = [n for n in picked if n.startswith("acquisition/")]
            if len(picked) > 1 and len(acq) == 1:
                picked = acq
            if len(picked) != 1:
                raise MovieError(f"{path}: {len(picked)} TwoPhotonSeries in the file ({', '.join(picked) or 'none'}); "
                                 f"choose one with var_name= (command line: --var-name)" if picked else
                                 f"{path}: no TwoPhotonSeries in this NWB file")
        name = picked[0]
        group = series[name]
        if "data" not in group:
            raise MovieError(f"{path}: TwoPhotonSeries '{name}' has no data")
        dset = group["data"]
        shape, dtype = dset.shape, dset.dtype
        if shape and shape[0] == 0 and "external_file" in group:
            raise MovieError(f"{path}: TwoPhotonSeries '{name}' stores its frames in external files "
                             f"({[_attr_str(x) for x in group['external_file'][:3]]}); open those instead")
    shape = _check_movie_shape_dtype(shape, dtype, f"{path}:{name}")
    return _H5Reader(path, f"{name}/data", shape, np.dtype(dtype))


# ----------------------------------------------------------------------------------------------------------------
# CaImAn memmaps
# ----------------------------------------------------------------------------------------------------------------

def save_memmap(movie: Any, base_name: str = "Yr", order: str = "C", directory: str | os.PathLike | None = None,
                chunk_frames: int | None = None) -> str:
    """Write a movie as a CaImAn memmap, streaming chunk by chunk; return the full file name.

    The file is ``{base}_d1_{rows}_d2_{cols}_d3_1_order_{order}_frames_{T}.mmap``, headerless little-endian
    float32: element (p, t), p = i + j*rows, at ``p*T + t`` (order C: each pixel's time course contiguous, what
    CNMF wants) or ``p + t*rows*cols`` (order F: frames contiguous). CaImAn's ``load_memmap`` reads both back to
    the same movie (CaImAn's own single-file ``order='F'`` writer is broken; ours is not).

    Unlike CaImAn, **nothing is added to the data** (CaImAn adds 1e-4): the values are the movie's, cast to
    float32, with non-finite values filled as ``Movie.chunks`` does.

    Parameters
    ----------
    movie : anything ``load_movie`` accepts
    base_name : str
        Name prefix; may contain a directory.
    order : {'C', 'F'}
    directory : str or path, optional
        Output folder (created if needed). Default: the directory part of ``base_name``, else the current one.
    chunk_frames : int, optional
        Frames read per step (default ~256 MB of float32). Memory use is about two chunks.

    Returns
    -------
    str
        Absolute path of the written file (written atomically).
    """
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', got {order!r}")
    mov = load_movie(movie)
    T, d1, d2 = mov.shape
    d = d1 * d2
    base = Path(base_name)
    out_dir = Path(directory) if directory is not None else (base.parent if str(base.parent) else Path("."))
    fname = (out_dir / memmap_name(base.name, (d1, d2), T, order)).resolve()
    with atomic_path(fname) as tmp:
        if order == "C":
            yr = np.memmap(tmp, dtype=np.float32, mode="w+", shape=(d, T), order="C")
            for start, block in mov.chunks(chunk_frames):
                n = block.shape[0]
                # (n, d1, d2) -> (n, d) with p = i + j*d1, then transposed into the pixel-major rows
                yr[:, start:start + n] = block.transpose(0, 2, 1).reshape(n, d).T
            yr.flush()
            del yr
        else:
            with open(tmp, "wb") as fh:
                for _, block in mov.chunks(chunk_frames):
                    np.ascontiguousarray(block.transpose(0, 2, 1), dtype="<f4").tofile(fh)
    logger.info("wrote %s (%d frames of %dx%d, order %s)", fname, T, d1, d2, order)
    return str(fname)


def load_memmap(fname: str | os.PathLike, mode: str = "r") -> tuple[np.memmap, tuple[int, ...], int]:
    """Open a CaImAn memmap like CaImAn's ``load_memmap``: ``(Yr, dims, T)``.

    ``Yr`` is an (rows*cols, T) float32 memmap in the file's order, pixel p = i + j*rows; ``dims`` is
    (rows, cols) (or (d1, d2, d3) for volumes). ``np.reshape(Yr.T, (T,) + dims, order='F')`` is the movie.
    A ``.npy`` file named like a memmap is also accepted (as CaImAn does).
    """
    path = Path(fname)
    if not path.exists():
        raise MovieFileNotFoundError(f"{path}: no such file")
    if path.suffix not in (".mmap", ".npy"):
        raise MovieError(f"{path}: a CaImAn memmap must end in .mmap or .npy")
    info = decode_memmap_name(path)
    d = info["d1"] * info["d2"] * info["d3"]
    T = info["T"]
    dims = (info["d1"], info["d2"]) if info["d3"] == 1 else (info["d1"], info["d2"], info["d3"])
    if path.suffix == ".npy":
        try:
            yr = np.load(path, mmap_mode=mode, allow_pickle=False)
        except Exception as exc:
            raise MovieError(f"{path}: cannot read as .npy: {exc}") from exc
        if yr.shape != (d, T) or yr.dtype != np.float32:
            raise MovieError(f"{path}: expected float32 array of shape {(d, T)}, got {yr.dtype} {yr.shape}")
        return yr, dims, T
    _check_file_size(path, d * T * 4, f"d1*d2*d3*T*4 = {d}*{T}*4")
    yr = np.memmap(path, dtype=np.float32, mode=mode, shape=(d, T), order=info["order"])
    return yr, dims, T
