"""What produced a result: this package, the model's weights, the software around them, the input and the time.

:func:`run` writes it as ``provenance.json`` beside the results, so that a figure in a paper can be traced to the
exact weights (by their SHA-256) and library versions that made it.

Examples
--------
>>> record = provenance(model="default")
>>> sorted(record)
['argv', 'cellfie_caiman', 'created', 'model', 'software']
>>> len(record["model"]["sha256"])
64
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.metadata
import logging
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .io import Movie
    from .models import DetectionModel
    from .params import Params

logger = logging.getLogger(__name__)

__all__ = ["provenance", "file_sha256", "software_versions"]

#: Distributions whose versions are recorded when installed (CaImAn is not among them: ``pip``'s package named
#: ``caiman`` is another project; its version is recorded from the module when the CaImAn backend ran).
DISTRIBUTIONS = ("numpy", "scipy", "scikit-image", "scikit-learn", "h5py", "tifffile", "keras", "tensorflow",
                 "torch", "numba", "pynwb", "hdmf")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, hex; cached per path, inode, size, modification and status-change time (the
    status-change time moves on every write and cannot be set back, so a file rewritten with its old size and
    modification time is hashed again).

    Parameters
    ----------
    path : str or path

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    OSError
        If the file cannot be read (``FileNotFoundError`` when it does not exist).
    """
    st = os.stat(path)
    return _sha256(os.fspath(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions(backend: str | None = None) -> dict[str, Any]:
    """Python, the platform, the installed versions of :data:`DISTRIBUTIONS` (for Keras, TensorFlow and PyTorch
    the version loaded in this process, when loaded), Keras' backend when Keras is loaded, and CaImAn's version
    when ``backend == 'caiman'``.

    Parameters
    ----------
    backend : str, optional
        The refinement backend that ran.

    Returns
    -------
    dict
        ``python``, ``platform``, ``cpu_count``, and one entry per installed distribution (version strings).
    """
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                                "cpu_count": os.cpu_count()}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    for name in ("keras", "tensorflow", "torch"):  # what this process runs (tensorflow-cpu is another distribution)
        version = getattr(sys.modules.get(name), "__version__", None)
        if isinstance(version, str):
            versions[name] = version
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend") and hasattr(keras.backend, "backend"):
        versions["keras_backend"] = keras.backend.backend()
    if backend == "caiman" and "caiman" in sys.modules:
        versions["caiman"] = getattr(sys.modules["caiman"], "__version__", "unknown")
    return versions


def _model_record(model) -> dict[str, Any]:
    from .models import DetectionModel, model_config, model_file

    if isinstance(model, DetectionModel):  # only load_model's (frozen) models still hold their file's weights
        name, path = None, (model.source or None) if model.frozen else None
        config = model.config
    else:
        name, path = os.fspath(model), os.fspath(model_file(model))
        config = model_config(model)
    record: dict[str, Any] = {"name": name, "file": path,
                              "sha256": file_sha256(path) if path and os.path.isfile(path) else None,
                              "train_diameter": float(config.train_diameter)}
    return record


def _movie_record(movie) -> dict[str, Any]:
    from .outputs import movie_dataset, movie_file

    record: dict[str, Any] = {"source": str(movie.source), "shape": [int(s) for s in movie.shape],
                              "dtype": str(movie.dtype)}
    path = movie_file(movie)
    if path is not None:
        st = path.stat()
        record["path"] = str(path)
        if path.is_file():
            record["size_bytes"] = int(st.st_size)
            logger.info("SHA-256 of %s (%.1f GB) for the provenance record", path, st.st_size / 1e9)
            record["sha256"] = file_sha256(path)  # the same bytes, not merely the same name, size and time
        record["modified"] = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).isoformat()
    dataset = movie_dataset(movie)
    if dataset is not None:  # which of an HDF5 / NWB file's movies was read (a default pick included)
        record["dataset"] = dataset
    return record


def provenance(*, model: str | os.PathLike | DetectionModel = "default", movie: Movie | None = None,
               backend: str | None = None, params: Params | None = None) -> dict[str, Any]:
    """A JSON-ready record of what produces a result.

    Parameters
    ----------
    model : str, path or DetectionModel
        The detection model, as given to :func:`cellfie_caiman.initialize`.
    movie : cellfie_caiman.io.Movie, optional
        The input movie: its source, shape (frames, rows, cols) and dtype, and for a file its absolute path, size in
        bytes, SHA-256 (hex; the whole file is read once) and modification time (UTC); for an HDF5 or NWB file also
        the path of the dataset read in it (``dataset``).
    backend : str, optional
        The refinement backend that ran ('caiman', 'builtin' or 'none'); with 'caiman' CaImAn's version is recorded.
    params : Params, optional
        The parameters of the run, as it used them (``params.json``'s content).

    Returns
    -------
    dict
        ``cellfie_caiman`` (version), ``created`` (UTC, ISO 8601), ``argv`` (the command line of this process),
        ``model`` (name, file, SHA-256 of its weights, training diameter in pixels), ``software``
        (:func:`software_versions`), and with ``movie``, ``movie``; with ``backend``, ``backend``; with ``params``,
        ``params`` (:meth:`Params.to_dict`: what :meth:`Params.from_dict` reads back).
    """
    from . import __version__

    record: dict[str, Any] = {"cellfie_caiman": __version__,
                              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                              "argv": list(sys.argv), "model": _model_record(model),
                              "software": software_versions(backend)}
    if movie is not None:
        record["movie"] = _movie_record(movie)
    if backend is not None:
        record["backend"] = backend
    if params is not None:
        record["params"] = params.to_dict()
    return record
