"""Opening each file format: the header is read and checked, and the matching reader returned (no frames
are read here)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .errors import MovieError, check_movie_shape_dtype
from .memmap import CaimanMemmapReader, is_caiman_memmap_name
from .readers import FolderReader, H5Reader, MappedFileReader, Reader, TiffPagesReader

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


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


def open_tiff(path: Path) -> Reader:
    """A multi-page TIFF: memory-mapped when uncompressed and contiguous, else decoded a range of pages per read.

    A file of several image series (stacks appended one after another, or pages written one by one) is the movie
    of all its pages in file order, which must then share one frame shape and type.
    """
    import tifffile
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            shape, dtype = series.shape, series.dtype
            n_pages = len(series.pages)
            mappable = series.dataoffset is not None
            page_shape = tuple(series.pages[0].shape) if n_pages else ()
            use_series = True
            n_series = len(tf.series)
            if (len([s for s in shape if s != 1]) == 2 or n_series > 1) and len(tf.pages) > 1:
                # pages written one by one, or stacks appended: the movie is all pages of the file
                pages = [tf.pages[k] for k in range(len(tf.pages))]
                shapes = {tuple(p.shape) for p in pages}
                dtypes = {np.dtype(p.dtype) for p in pages}
                if len(shapes) != 1 or len(dtypes) != 1:
                    hint = ""
                    if n_series > 1:
                        listing = ", ".join(f"{s.shape} {s.dtype}" for s in tf.series[:4]) + (
                            ", ..." if n_series > 4 else "")
                        hint = (f"; the file holds {n_series} image series ({listing}): read the one you want with "
                                "tifffile.imread(path, series=k) and pass the array")
                    raise MovieError(f"{path}: pages of different shapes or types ({sorted(shapes)[:4]}, "
                                     f"{sorted(map(str, dtypes))}) cannot form a movie{hint}")
                page_shape = shapes.pop()
                shape, dtype, n_pages, mappable, use_series = (len(pages),) + page_shape, dtypes.pop(), len(pages), \
                    False, False
            rate = _tiff_frame_rate(tf)
    except MovieError:
        raise
    except Exception as exc:
        raise MovieError(f"{path}: not a readable TIFF file ({type(exc).__name__}: {exc})") from exc
    shape = check_movie_shape_dtype(shape, dtype, str(path))
    reader = None
    if mappable:
        try:
            reader = MappedFileReader(path, "tiff", shape)
        except Exception as exc:  # fall back to page reading
            logger.debug("%s: cannot memory-map (%s); decoding pages instead", path, exc)
    if reader is None and n_pages == shape[0] and int(np.prod(page_shape)) == shape[1] * shape[2]:
        reader = TiffPagesReader(path, shape, np.dtype(dtype), series=0 if use_series else None)
    if reader is not None:
        reader.frame_rate = rate
        return reader
    raise MovieError(f"{path}: TIFF is truncated or corrupt, or its layout is not supported ({n_pages} readable "
                     f"pages of shape {page_shape} for a movie of shape {shape}, not memory-mappable)")


def _positive(value) -> float | None:
    """``value`` as a positive finite float, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _tiff_frame_rate(tf) -> float | None:
    """Frames per second from a TIFF's ImageJ metadata (``finterval`` in seconds, or ``fps``) or a single-plane
    ScanImage recording's ``scanFrameRate``; None when neither says (metadata that cannot be parsed counts as none)."""
    try:
        imagej = tf.imagej_metadata or {}
        interval = _positive(imagej.get("finterval"))
        if interval is not None:
            return 1.0 / interval
        if _positive(imagej.get("fps")) is not None:
            return _positive(imagej.get("fps"))
        if tf.is_scanimage:
            frame_data = (tf.scanimage_metadata or {}).get("FrameData", {})
            if int(frame_data.get("SI.hStackManager.numSlices", 1) or 1) <= 1:
                return _positive(frame_data.get("SI.hRoiManager.scanFrameRate"))
    except Exception as exc:  # noqa: BLE001 - odd metadata must not stop a movie from loading
        logger.debug("TIFF metadata without a frame rate (%s)", exc)
    return None


def _natural_key(path: Path):
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def open_tiff_folder(path: Path) -> Reader:
    """A folder of single-frame TIFFs in natural order; every frame must have the first one's shape and type."""
    import tifffile
    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
                    and not f.name.startswith(".")), key=_natural_key)
    if not files:
        raise MovieError(f"{path}: folder contains no .tif/.tiff frames")
    frame_shape = dtype = None
    for f in files:
        try:
            with tifffile.TiffFile(f) as tf:
                series = tf.series[0]
                shape, fdtype = tuple(s for s in series.shape if s != 1) or (1,), series.dtype
                n_pages = len(tf.pages)
        except Exception as exc:
            raise MovieError(f"{f}: not a readable TIFF frame ({type(exc).__name__}: {exc})") from exc
        if n_pages != 1 or len(shape) != 2:
            raise MovieError(f"{f}: expected one 2-D frame per file in folder {path}, found {n_pages} page(s) of "
                             f"shape {series.shape}")
        if frame_shape is None:
            frame_shape, dtype = shape, np.dtype(fdtype)
        elif shape != frame_shape:
            raise MovieError(f"{f}: frame shape {shape} differs from {frame_shape} of {files[0].name} in folder {path}")
        elif np.dtype(fdtype) != dtype:
            raise MovieError(f"{f}: frame dtype {fdtype} differs from {dtype} of {files[0].name} in folder {path}")
    check_movie_shape_dtype((len(files),) + frame_shape, dtype, str(path))
    return FolderReader(path, files, frame_shape, dtype)


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


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def open_nwb(path: Path, var_name: str | None) -> Reader:
    """The data of the ``TwoPhotonSeries`` named ``var_name`` of an NWB file, else of its only one (or of the only one
    under ``acquisition/``)."""
    import h5py
    with _open_h5(path) as f:
        series = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and _attr_str(obj.attrs.get("neurodata_type", "")) == "TwoPhotonSeries":
                series[name] = obj

        f.visititems(visit)
        if var_name is not None:
            picked = [n for n in series if n == var_name.strip("/") or n.split("/")[-1] == var_name]
            if len(picked) != 1:
                raise MovieError(f"{path}: no unique TwoPhotonSeries named '{var_name}' (found: "
                                 f"{', '.join(series) or 'none'})")
        else:
            picked = list(series)
            acq = [n for n in picked if n.startswith("acquisition/")]
            if len(picked) > 1 and len(acq) == 1:
                picked = acq
            if len(picked) != 1:
                raise MovieError(f"{path}: {len(picked)} TwoPhotonSeries in the file ({', '.join(picked) or 'none'}); "
                                 f"choose one with var_name= (command line: --var-name)" if picked else
                                 f"{path}: no TwoPhotonSeries in this NWB file")
        name = picked[0]
        group = series[name]
        if "data" not in group:
            raise MovieError(f"{path}: TwoPhotonSeries '{name}' has no data")
        dset = group["data"]
        shape, dtype = dset.shape, dset.dtype
        if shape and shape[0] == 0 and "external_file" in group:
            raise MovieError(f"{path}: TwoPhotonSeries '{name}' stores its frames in external files "
                             f"({[_attr_str(x) for x in group['external_file'][:3]]}); open those instead")
        rate = _nwb_frame_rate(group)
    shape = check_movie_shape_dtype(shape, dtype, f"{path}:{name}")
    reader = H5Reader(path, f"{name}/data", shape, np.dtype(dtype))
    reader.frame_rate = rate
    return reader


def _nwb_frame_rate(group) -> float | None:
    """An NWB TimeSeries' rate (``starting_time``'s attribute) or the median step of its first timestamps."""
    if "starting_time" in group:
        return _positive(group["starting_time"].attrs.get("rate"))
    if "timestamps" in group and len(group["timestamps"]) > 1:
        step = _positive(np.median(np.diff(np.asarray(group["timestamps"][:1001], dtype=np.float64))))
        return None if step is None else 1.0 / step
    return None
