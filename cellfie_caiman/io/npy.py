"""Opening a ``.npy`` movie (memory-mapped: the header is read and checked, and the matching reader returned; no
frames are read here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MovieError, check_movie_shape_dtype
from .memmap import CaimanMemmapReader, is_caiman_memmap_name
from .readers import MappedFileReader, Reader


def open_npy(path: Path) -> Reader:
    """A ``.npy`` movie (T, rows, cols), memory-mapped; a 2-D ``.npy`` named like a CaImAn memmap is its ``Yr``."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise MovieError(f"{path}: cannot read as .npy: {exc}") from exc
    except Exception as exc:
        raise MovieError(f"{path}: corrupt or truncated .npy file: {exc}") from exc
    if arr.ndim == 2 and is_caiman_memmap_name(path):  # CaImAn's Yr (pixels, T) saved as .npy
        return CaimanMemmapReader(path)
    shape = check_movie_shape_dtype(arr.shape, arr.dtype, str(path))
    del arr
    return MappedFileReader(path, "npy", shape)

