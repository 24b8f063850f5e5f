"""The error that every ROI reader and writer raises, and the checks the readers share: the image size a
file is read in (:func:`_check_shape`) and arrays taken as masks (:func:`_as_masks`)."""
from __future__ import annotations

import numpy as np

from ..io import MovieError


class RoiError(MovieError):
    """An ROI file that cannot be read or written; the message names the file and the problem."""


def _check_shape(shape, path) -> tuple[int, int]:
    if shape is None:
        raise RoiError(f"{path}: this ROI format does not store the image size; pass shape=(rows, cols)")
    try:
        given = tuple(shape)
        shape = tuple(int(s) for s in given)
    except (TypeError, ValueError):
        raise RoiError(f"{path}: shape must be (rows, cols), got {shape!r}") from None
    if any(s != g for s, g in zip(shape, given, strict=True)):
        raise RoiError(f"{path}: shape must be whole numbers of pixels (rows, cols), got {given}")
    if len(shape) != 2 or min(shape) < 1:
        raise RoiError(f"{path}: shape must be two positive integers (rows, cols), got {shape}")
    return shape


def _as_masks(arr: np.ndarray, shape, source: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise RoiError(f"{source}: masks must be numeric or boolean, not {arr.dtype}")
    if arr.ndim == 3:
        if shape is not None and tuple(arr.shape[1:]) != _check_shape(shape, source):
            raise RoiError(f"{source}: masks have frame shape {arr.shape[1:]}, but shape={tuple(shape)} was given")
        return np.asarray(arr > 0)
    if arr.ndim == 2:
        shape = _check_shape(shape, f"{source} (2-D array read as Ain (rows*cols, N))")
        if arr.shape[0] != shape[0] * shape[1]:
            raise RoiError(f"{source}: a 2-D array is read as Ain (rows*cols, N), but it has {arr.shape[0]} rows "
                           f"and shape={shape} has {shape[0] * shape[1]} pixels")
        return np.asarray(arr > 0).T.reshape((arr.shape[1], shape[1], shape[0])).transpose(0, 2, 1)
    raise RoiError(f"{source}: expected masks (N, rows, cols) or Ain (rows*cols, N), got shape {arr.shape}")
