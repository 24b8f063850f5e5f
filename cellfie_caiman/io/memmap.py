"""CaImAn memmaps: the file name that carries the shape, reading one as a movie, writing and opening one
as CaImAn does (``Yr``: pixels x frames float32, pixel ``p = i + j*rows``)."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path, reserve_space
from .errors import MovieError, MovieFileNotFoundError, check_file_size, check_movie_shape_dtype
from .readers import Reader

logger = logging.getLogger(__name__)


def memmap_name(base_name: str, dims: Sequence[int], n_frames: int, order: str = "C") -> str:
    """CaImAn's memmap file name: ``{base}_d1_{d1}_d2_{d2}_d3_{d3}_order_{order}_frames_{T}.mmap``.

    Runs of ``_`` are collapsed as CaImAn's ``generate_fname_tot`` does (``"memmap_"`` gives ``memmap_d1_...``).

    Parameters
    ----------
    base_name : str
        Name prefix.
    dims : (rows, cols) or (d1, d2, d3)
        Frame size in pixels (d3 = 1 for 2-D movies).
    n_frames : int
        Number of frames T.
    order : {'C', 'F'}
        Written into the name as given (not checked here).

    Returns
    -------
    str
        The file name (no directory).

    Examples
    --------
    >>> memmap_name("memmap_", (64, 80), 300)
    'memmap_d1_64_d2_80_d3_1_order_C_frames_300.mmap'
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

    Parameters
    ----------
    fname : str or path
        The file name (a directory part is ignored).

    Returns
    -------
    dict
        ``d1``, ``d2``, ``d3`` (int, pixels), ``order`` ('C' or 'F') and ``T`` (int, frames).

    Raises
    ------
    MovieError
        If a key is missing, a value is not a valid integer / order, a dimension is below 1 or ``T`` below 1.

    Examples
    --------
    >>> decode_memmap_name("memmap_d1_64_d2_80_d3_1_order_C_frames_300.mmap")
    {'d1': 64, 'd2': 80, 'd3': 1, 'order': 'C', 'T': 300}
    """
    name = Path(fname).name
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    tokens = stem.split("_")[1:]
    out: dict[str, Any] = {}
    for key in ("d1", "d2", "d3", "order", "frames"):
        positions = [k for k, tok in enumerate(tokens) if tok == key]
        if not positions or positions[-1] + 1 >= len(tokens):
            raise MovieError(f"{fname}: not a CaImAn memmap name (no '{key}_<value>' in the name; expected "
                             f"'<base>_d1_<rows>_d2_<cols>_d3_1_order_<C|F>_frames_<T>.mmap'). "
                             + _missing_key_hint(stem, key))
        out[key] = tokens[positions[-1] + 1]
    last = tokens[-1] if tokens[-1] != "" else out["frames"]
    values = {"d1": out["d1"], "d2": out["d2"], "d3": out["d3"], "frames (last part)": last}
    numbers = {key: _name_int(fname, key, value) for key, value in values.items()}
    dims, n_frames = [numbers["d1"], numbers["d2"], numbers["d3"]], numbers["frames (last part)"]
    if out["order"] not in ("C", "F"):
        raise MovieError(f"{fname}: CaImAn memmap order must be C or F, not {out['order']!r}")
    if min(dims) < 1:
        raise MovieError(f"{fname}: CaImAn memmap name has a non-positive dimension")
    if n_frames < 1:
        raise MovieError(f"{fname}: the name says the file holds {n_frames} frames")
    return {"d1": dims[0], "d2": dims[1], "d3": dims[2], "order": out["order"], "T": n_frames}


def _missing_key_hint(stem: str, key: str) -> str:
    """Why a key is missing from a memmap name, for the error message."""
    if stem.split("_")[0] == key:
        return (f"The first '_'-separated part of the name is a base name and is skipped (as CaImAn does): "
                f"put a prefix before it, e.g. 'Yr_{stem}'.")
    return ("A CaImAn memmap has no header: its rows, cols, order and frame count are stored only in its name, "
            "so a renamed memmap must be given its original name back.")


def _name_int(fname: str | os.PathLike, key: str, value: str) -> int:
    """``value`` (a part of a memmap name) as an int, or a MovieError naming ``key`` and the value."""
    try:
        return int(value)
    except ValueError:
        raise MovieError(f"{fname}: CaImAn memmap name has a non-integer {key} {value!r}") from None


def is_caiman_memmap_name(path: Path) -> bool:
    """Whether :func:`decode_memmap_name` reads ``path``'s name."""
    try:
        decode_memmap_name(path)
    except MovieError:
        return False
    return True


class CaimanMemmapReader(Reader):
    """A CaImAn memmap: Yr (pixels, T) float32, pixel p = i + j*d1, order C (pixel-major) or F (frame-major)."""

    _handle = "_yr"

    def __init__(self, path: Path, mode: str = "r"):
        self.source = str(path)
        self.path = path
        self.mode = mode
        info = decode_memmap_name(path)
        if info["d3"] != 1:
            raise MovieError(f"{path}: 3-D volumes (d3={info['d3']}) are not supported, only 2-D movies")
        self.d1, self.d2, self.order, self.T = info["d1"], info["d2"], info["order"], info["T"]
        self.shape = check_movie_shape_dtype((self.T, self.d1, self.d2), np.float32, str(path))
        self.dtype = np.dtype(np.float32)
        self._yr = None
        if path.suffix.lower() == ".npy":
            self._yr = self.yr  # checks shape and dtype
        else:
            check_file_size(path, self.d1 * self.d2 * self.T * 4, f"d1*d2*T*4 = {self.d1}*{self.d2}*{self.T}*4")

    @property
    def yr(self) -> np.ndarray:
        """CaImAn's ``Yr``: the (rows*cols, T) float32 memory map, opened on first use."""
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

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as stored (float32, NaN kept), shape (n, rows, cols)."""
        block = self.yr[:, start:stop]  # (d, n); rows of a C file are contiguous per pixel
        n = block.shape[1]
        if self.order == "C":  # a real transpose: tiled (NumPy's copy would fault a page per value)
            from .._transpose import pixels_to_frames

            return pixels_to_frames(block, self.d1)
        # frame[i, j] = Yr[i + j*d1, t]  ->  block.T is (n, d) with d indexed j*d1 + i, i.e. (n, d2, d1) in C.
        return np.ascontiguousarray(np.asarray(block).T.reshape(n, self.d2, self.d1).transpose(0, 2, 1))

    def close(self) -> None:
        """Drop the memory map (it is reopened on the next read)."""
        self._yr = None


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

    Raises
    ------
    ValueError
        An ``order`` other than 'C' or 'F', or ``chunk_frames`` below 1.
    MovieError
        A movie that :func:`load_movie` cannot open (``MovieFileNotFoundError`` when it does not exist).
    PermissionError
        The target file exists and is read-only (no write permission bits): it is not replaced. A writable file
        of that name is replaced (atomically, once the new one is complete).
    IsADirectoryError
        The target name is a folder.
    OSError
        ``errno.ENOSPC`` when the disk has no room for the file (checked, and the space reserved, before the movie
        is read; nothing is left behind).
    """
    from .movie import load_movie  # here: movie.py imports this module

    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', got {order!r}")
    mov = load_movie(movie)
    T, d1, d2 = mov.shape
    d = d1 * d2
    base = Path(base_name)
    out_dir = Path(directory) if directory is not None else (base.parent if str(base.parent) else Path("."))
    fname = (out_dir / memmap_name(base.name, (d1, d2), T, order)).resolve()
    _check_replaceable(fname)
    with atomic_path(fname) as tmp:
        # blocks reserved first: a memory-mapped write onto a full disk is a SIGBUS, not an exception
        reserve_space(tmp, d * T * 4, f"the memmap {fname.name}")
        if order == "C":
            yr = np.memmap(tmp, dtype=np.float32, mode="r+", shape=(d, T), order="C")
            for start, block in mov.chunks(chunk_frames):
                n = block.shape[0]
                # (n, d1, d2) -> (n, d) with p = i + j*d1, then transposed into the pixel-major rows
                yr[:, start:start + n] = block.transpose(0, 2, 1).reshape(n, d).T
            yr.flush()
            del yr
        else:
            with open(tmp, "r+b") as fh:
                for _, block in mov.chunks(chunk_frames):
                    np.ascontiguousarray(block.transpose(0, 2, 1), dtype="<f4").tofile(fh)
    logger.info("wrote %s (%d frames of %dx%d, order %s)", fname, T, d1, d2, order)
    return str(fname)


def _check_replaceable(fname: Path) -> None:
    """Refuse to write a memmap onto a folder or onto a read-only file; log when a file is replaced.

    Parameters
    ----------
    fname : Path
        The memmap about to be written.

    Raises
    ------
    IsADirectoryError
        ``fname`` is a folder.
    PermissionError
        ``fname`` exists and has no write permission bit (the atomic rename would replace it regardless).
    """
    if fname.is_dir():
        raise IsADirectoryError(f"{fname} is a folder: cannot write the memmap under that name")
    if fname.exists():
        if not fname.stat().st_mode & 0o222:
            raise PermissionError(f"{fname} exists and is read-only: not replaced (make it writable or delete it "
                                  f"to write a new memmap of that name, or choose another base_name)")
        logger.info("replacing existing %s", fname)


#: np.memmap modes that open an existing file without erasing it.
_OPEN_MODES = ("r", "readonly", "r+", "readwrite", "c", "copyonwrite")


def load_memmap(fname: str | os.PathLike, mode: str = "r") -> tuple[np.memmap, tuple[int, ...], int]:
    """Open a CaImAn memmap like CaImAn's ``load_memmap``: ``(Yr, dims, T)``.

    ``np.reshape(Yr.T, (T,) + dims, order='F')`` is the movie. A ``.npy`` file named like a memmap is also
    accepted (as CaImAn does).

    Parameters
    ----------
    fname : str or path
        A ``.mmap`` (or ``.npy``) file named as :func:`memmap_name` names it.
    mode : {'r', 'r+', 'c'}
        ``np.memmap`` mode ('readonly', 'readwrite', 'copyonwrite' too). Not 'w+', which would erase the file.

    Returns
    -------
    Yr : numpy.memmap, float32, shape (rows*cols, T)
        In the file's order, pixel p = i + j*rows.
    dims : tuple of int
        (rows, cols), or (d1, d2, d3) for volumes.
    T : int
        Number of frames.

    Raises
    ------
    ValueError
        A ``mode`` other than those above.
    MovieFileNotFoundError
        If the file does not exist.
    MovieError
        Another suffix, a name that is not a CaImAn memmap name (or says 0 frames), a file whose size (or
        ``.npy`` shape and dtype) does not match its name.
    """
    if mode not in _OPEN_MODES:
        raise ValueError(f"mode {mode!r}: load_memmap opens an existing memmap with one of {_OPEN_MODES}; "
                         f"'w+' would erase the movie in it (write memmaps with save_memmap)")
    path = Path(fname)
    if not path.exists():
        raise MovieFileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()  # like load_movie: '.MMAP' is a memmap too
    if suffix not in (".mmap", ".npy"):
        raise MovieError(f"{path}: a CaImAn memmap must end in .mmap or .npy")
    info = decode_memmap_name(path)
    d = info["d1"] * info["d2"] * info["d3"]
    T = info["T"]
    dims = (info["d1"], info["d2"]) if info["d3"] == 1 else (info["d1"], info["d2"], info["d3"])
    if suffix == ".npy":
        try:
            yr = np.load(path, mmap_mode=mode, allow_pickle=False)
        except Exception as exc:
            raise MovieError(f"{path}: cannot read as .npy: {exc}") from exc
        if yr.shape != (d, T) or yr.dtype != np.float32:
            raise MovieError(f"{path}: expected float32 array of shape {(d, T)}, got {yr.dtype} {yr.shape}")
        return yr, dims, T
    check_file_size(path, d * T * 4, f"d1*d2*d3*T*4 = {d}*{T}*4")
    yr = np.memmap(path, dtype=np.float32, mode=mode, shape=(d, T), order=info["order"])
    return yr, dims, T
