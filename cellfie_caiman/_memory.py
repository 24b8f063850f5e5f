"""Memory for stacks of masks (K, rows, cols) that are almost all zeros.

A stack of dense boolean masks over a large field is mostly zero bytes: 1000 neurons of a 1280 x 1280 field take
1.6 GB, of which their pixels are a few MB. Made with ``np.zeros`` and then written mask by mask, such a stack
still becomes resident whole, because NumPy asks Linux for transparent huge pages on large arrays and each
written pixel then takes a 2 MB page. The arrays made here take memory only for the pages that are written.
"""
from __future__ import annotations

import mmap

import numpy as np

__all__ = ["available_memory", "zeros_on_demand"]

#: What a MemoryError advises when the caller gives no advice of its own.
_ADVICE = "Run on parts of the field or on a machine with more memory."


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux: ``MemAvailable`` + ``SwapFree`` of /proc/meminfo), or None
    where that is not known."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return sum(int(fields[key].split()[0]) * 1024 for key in ("MemAvailable", "SwapFree") if key in fields) or None
    except (OSError, ValueError, KeyError):
        return None


def zeros_on_demand(shape: tuple[int, ...], what: str = "array", advice: str = _ADVICE) -> np.ndarray:
    """A zeroed bool array whose memory pages are taken only when written.

    Where the system offers private anonymous memory maps (Linux, macOS), arrays of 4 MB or more come from one,
    without transparent huge pages: pages never written stay shared zero pages, so writing a few boxes per mask
    into a (K, rows, cols) stack costs time and memory for those boxes only. ``np.zeros`` instead asks for huge
    pages (NumPy's default on Linux) that the system zeroes, and when memory is fragmented compacts, whole: on 2
    CPU cores, 0.36-5.3 s and 1.0-1.1 GB resident for 1000 masks of 1024 x 1024 with a 20 x 20 box each, against
    0.03 s and 0.02-0.08 GB (``benchmarks/large_field.py``). Reading the whole array once afterwards takes about as
    long either way (0.4-0.8 s), and reading pages never written takes no memory.

    Parameters
    ----------
    shape : tuple of int
    what : str
        What the array holds, for the error message.
    advice : str
        What the error message advises.

    Raises
    ------
    MemoryError
        Naming ``what``, if the system refuses the memory (or, with ``np.zeros``, if :func:`available_memory` says
        it would not fit): never the out-of-memory killer halfway through.
    """
    nbytes = int(np.prod(shape, dtype=np.int64))
    flags = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if nbytes >= 2**22 and None not in flags:
        try:
            buf = mmap.mmap(-1, nbytes, flags=flags[0] | flags[1])
        except (OSError, OverflowError) as err:
            raise MemoryError(_too_large(shape, nbytes, what, None, advice)) from err
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            buf.madvise(mmap.MADV_NOHUGEPAGE)
        return np.frombuffer(buf, dtype=bool).reshape(shape)
    available = available_memory()
    if available is not None and nbytes > available:
        raise MemoryError(_too_large(shape, nbytes, what, available, advice))
    return np.zeros(shape, bool)


def _too_large(shape, nbytes: int, what: str, available: int | None, advice: str) -> str:
    more = "" if available is None else f" (it has {available / 1e9:.1f} GB available)"
    return (f"the {what}, a dense bool array of shape {tuple(shape)}, needs {nbytes / 1e9:.1f} GB, more than this "
            f"machine can give{more}. {advice}")
