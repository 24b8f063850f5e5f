"""What can be wrong with a movie source: the exceptions and warnings of :mod:`cellfie_caiman.io`, and the
checks that raise them."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class MovieError(ValueError):
    """A movie source that cannot be read as a (frames, rows, cols) movie; the message names the file and why."""


class MovieFileNotFoundError(MovieError, FileNotFoundError):
    """The movie file or folder does not exist."""


class NonFiniteWarning(RuntimeWarning):
    """NaN or inf pixels were found and filled."""


def check_movie_shape_dtype(shape, dtype, source: str, hint: str = "") -> tuple[int, int, int]:
    """The (T, rows, cols) shape of a movie stored as ``shape``/``dtype`` (singleton axes other than time and the
    frame's dropped); MovieError naming ``source`` (and ending with ``hint``) if it cannot be a movie."""
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


def check_file_size(path: Path, expected: int, formula: str) -> None:
    """MovieError unless ``path`` holds exactly ``expected`` bytes (``formula`` says where that number comes from)."""
    size = path.stat().st_size
    if size != expected:
        what = "truncated" if size < expected else "longer than its name says"
        raise MovieError(f"{path}: file is {what}: {size} bytes on disk, but its name implies {expected} bytes "
                         f"({formula}); the file is corrupt or misnamed")
