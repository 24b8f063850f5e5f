"""Opening HDF5 movies: a 3-D dataset of an ``.h5``, ``.hdf5`` or ``.hdf`` file (the header is read and checked,
and the matching reader returned; no frames are read here), and the HDF5 helpers the NWB reader shares."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import MovieError, check_movie_shape_dtype
from .readers import H5Reader, Reader

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def _open_h5(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise MovieError(f"{path}: not a readable HDF5 file ({exc})") from exc


def open_hdf5(path: Path, var_name: str | None) -> Reader:
    """The 3-D dataset ``var_name`` of an HDF5 file, else ``mov``, else the only 3-D dataset."""
    import h5py
    with _open_h5(path) as f:
        datasets = {}

        def visit(name, obj):  # returns None: visititems stops at the first other value
            if isinstance(obj, h5py.Dataset):
                datasets[name] = obj.shape

        f.visititems(visit)
        listing = ", ".join(f"{n} {shape}" for n, shape in list(datasets.items())[:10]) or "none"
        if var_name is not None:
            if var_name not in f or not isinstance(f[var_name], h5py.Dataset):
                raise MovieError(f"{path}: no dataset '{var_name}' in the file (datasets: {listing})")
            name = var_name
        elif "mov" in f and isinstance(f["mov"], h5py.Dataset):
            name = "mov"
            _warn_other_movies(path, "3-D datasets", name, [n for n, shape in datasets.items() if len(shape) == 3])
        else:
            found = [n for n, shape in datasets.items() if len(shape) == 3]
            if len(found) != 1:
                raise MovieError(f"{path}: no dataset 'mov' and {len(found)} 3-D datasets (datasets: {listing}); "
                                 f"choose the movie with var_name= (command line: --var-name)")
            name = found[0]
        dset = f[name]
        shape, dtype = dset.shape, dset.dtype
    shape = check_movie_shape_dtype(shape, dtype, f"{path}:{name}")
    return H5Reader(path, name, shape, np.dtype(dtype))


def _warn_other_movies(path: Path, what: str, name: str, candidates: list[str]) -> None:
    """UserWarning that ``name`` was read by default from ``path`` though it holds other candidate movies
    (``candidates``, all of them ``what``: '3-D datasets', 'TwoPhotonSeries', 'OnePhotonSeries', 'movies' (an NWB
    file's corrected stack and raw series))."""
    if len(candidates) > 1:
        listing = ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "")
        warnings.warn(f"{path}: read '{name}' (the default) of the {len(candidates)} {what} in the file ({listing}); "
                      "choose another with var_name= (command line: --var-name)", UserWarning, stacklevel=4)


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_group(f, name: str):
    """The group at ``name`` in the open HDF5 file ``f``, or None where there is none, where its link leads nowhere
    (a dangling soft link, an external link to a missing file) or to a dataset."""
    import h5py
    try:
        obj = f.get(name)
    except (KeyError, OSError, ValueError):
        return None
    return obj if isinstance(obj, h5py.Group) else None
