"""Atomic file writing: a crash or Ctrl-C never leaves a half-written result."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

#: ``posix_fallocate`` errors that mean the disk (or the user's quota or file-size limit) has no room.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (some writers choose the format from it) and lives in the same
    directory, so the final ``os.replace`` is atomic. On any exception (``KeyboardInterrupt`` included) the
    temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> with atomic_path(target) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(target).tolist()
    [0, 1, 2]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should get the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def reserve_space(path: str | os.PathLike, nbytes: int, what: str = "the file") -> None:
    """Make ``path`` a file of ``nbytes`` bytes whose blocks are allocated on disk, or raise a clear ``OSError``.

    A file written through a memory map is created sparse: when the disk fills while its pages are written back,
    the process is killed by SIGBUS, with no Python exception and a half-written file left behind. Reserving the
    blocks first turns a full disk into an ``OSError`` raised before any data is read or written. The free space
    is checked first (every system); the blocks are then reserved with ``posix_fallocate`` where the system has it
    (it also catches quotas, file-size limits and a disk filled by another program since the check).

    Parameters
    ----------
    path : str or Path
        The file (created, or extended to ``nbytes``).
    nbytes : int
        Size in bytes.
    what : str
        What the file is, for the error message.

    Raises
    ------
    OSError
        ``errno.ENOSPC`` (or the system's ``EDQUOT`` / ``EFBIG``) when the space cannot be had; the message gives the
        size needed and the space free.
    """
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    if nbytes > free:
        raise OSError(errno.ENOSPC, f"not enough free disk space for {what}: it needs {_size(nbytes)}, "
                                    f"{_size(free)} free in {path.parent}")
    with open(path, "ab") as fh:
        if nbytes == 0 or not hasattr(os, "posix_fallocate"):
            fh.truncate(nbytes)
            return
        try:
            os.posix_fallocate(fh.fileno(), 0, nbytes)
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                raise OSError(exc.errno, f"could not reserve {_size(nbytes)} on disk for {what} in {path.parent} "
                                         f"({os.strerror(exc.errno)})") from exc
            logger.debug("posix_fallocate not supported for %s (%s): the free space was checked only", path, exc)
            fh.truncate(nbytes)


def _size(nbytes: float) -> str:
    """A byte count for people: '1.5 GB', '12 MB', '800 B'."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(nbytes) < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} TB"
