"""Readers: one per storage layout. Each has ``.shape`` (T, rows, cols), ``.dtype``, ``.source`` and
``.read(start, stop)`` -> the raw frames ``start:stop``; :class:`cellfie_caiman.io.Movie` wraps one."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MovieError


class Reader:
    """A movie's storage: ``shape`` (T, rows, cols), ``dtype``, ``source`` and ``read(start, stop)``."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    source: str
    #: Frames per second as the file records it (NWB's rate, ImageJ's or ScanImage's metadata), None if it does not.
    frame_rate: float | None = None
    #: The attribute holding an open file or map, if any: left out when the reader is pickled (sent to another
    #: process), which reopens it on the first read.
    _handle: str | None = None

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __getstate__(self):
        state = self.__dict__.copy()
        if self._handle is not None:
            state[self._handle] = None
        return state


class ArrayReader(Reader):
    """An ndarray, np.memmap or memory-mapped .npy of shape (T, rows, cols)."""

    def __init__(self, array: np.ndarray, source: str):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype
        self.source = source

    def read(self, start, stop):
        return np.asarray(self.array[start:stop])


class MappedFileReader(ArrayReader):
    """A memory-mapped file (.npy or uncompressed TIFF); pickles as its path, not its data."""

    _handle = "array"

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


class TiffPagesReader(Reader):
    """A multi-page TIFF decoded lazily, a range of pages per read (compressed or non-contiguous files)."""

    _handle = "_tf"

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


def open_frame_file(path: Path):
    """A ``tifffile.TiffFile`` of one file of a folder of frames, its series made of this file's pages only.

    An OME-TIFF of a multi-file series (Bruker Prairie View, Micro-Manager's image-per-file) describes the whole
    series in every file: opened as usual, its ``series[0]`` would span all the files of the folder.
    """
    import tifffile

    return tifffile.TiffFile(path, _multifile=False)


class FolderReader(Reader):
    """A folder of single-frame TIFF files, one frame per file, in natural order."""

    def __init__(self, path: Path, files: list[Path], frame_shape, dtype):
        self.source = str(path)
        self.files = files
        self.shape = (len(files),) + tuple(frame_shape)
        self.dtype = dtype

    def read(self, start, stop):
        out = np.empty((max(stop - start, 0),) + self.shape[1:], self.dtype)
        for k, t in enumerate(range(start, stop)):
            try:
                with open_frame_file(self.files[t]) as tf:
                    frame = tf.asarray()
            except Exception as exc:
                raise MovieError(f"{self.files[t]}: cannot read TIFF frame: {exc}") from exc
            frame = np.squeeze(frame)
            if frame.shape != self.shape[1:]:
                raise MovieError(f"{self.files[t]}: frame shape {frame.shape} differs from the first frame's "
                                 f"{self.shape[1:]} in folder {self.source}")
            out[k] = frame
        return out


class H5Reader(Reader):
    """A 3-D dataset in an HDF5 (or NWB) file, read by slicing."""

    _handle = "_file"

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
