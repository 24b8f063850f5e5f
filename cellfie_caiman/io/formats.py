"""Opening each file format: the header is read and checked, and the matching reader returned (no frames
are read here)."""
from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np

from .errors import MovieError, check_movie_shape_dtype
from .memmap import CaimanMemmapReader, is_caiman_memmap_name
from .readers import FolderReader, H5Reader, MappedFileReader, Reader, TiffPagesReader, open_frame_file

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
#: Seconds per ImageJ time unit (``tunit``, the unit of ``finterval``; ImageJ's default is 'sec'), lower case.
_TIME_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), 1e-3),
    **dict.fromkeys(("us", "\u00b5s", "\u03bcs", "usec", "\u00b5sec", "\u03bcsec", "microsecond", "microseconds"),
                    1e-6),
    **dict.fromkeys(("ns", "nsec", "nanosecond", "nanoseconds"), 1e-9),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
}


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
    of all its pages in file order: each series must then be (frames, rows, cols) or (rows, cols), all of one
    frame shape and type. A ScanImage volume recording (several z-planes), an OME-TIFF of several images (stage
    positions) or a series with a position/tile axis, and a file that holds fewer frames than its header declares
    (a truncated copy) are refused.
    """
    import tifffile
    try:
        with tifffile.TiffFile(path) as tf:
            _check_scanimage_planes(path, tf)
            _check_imagej_complete(path, tf)
            series = tf.series[0]
            shape, dtype = series.shape, series.dtype
            n_pages = len(series.pages)
            mappable = series.dataoffset is not None
            page_shape = tuple(series.pages[0].shape) if n_pages else ()
            use_series = True
            n_series = len(tf.series)
            if n_series > 1:
                _check_series(path, tf.series)
            elif series.axes.endswith("S") and shape[-1] > 1:  # samples per pixel: RGB(A) colour, not time
                raise MovieError(f"{path}: a colour (RGB) image or stack, shape {shape} (axes {series.axes}), not a "
                                 "movie of (frames, rows, cols): save one channel as a grey stack (e.g. "
                                 "tifffile.imread(path)[..., 1]) and pass that")
            _check_positions(path, tf)
            if (len([s for s in shape if s != 1]) == 2 or n_series > 1) and len(tf.pages) > 1:
                # pages written one by one, or stacks appended: the movie is all pages of the file
                pages = [tf.pages[k] for k in range(len(tf.pages))]
                shapes = {tuple(p.shape) for p in pages}
                dtypes = {np.dtype(p.dtype) for p in pages}
                if len(shapes) != 1 or len(dtypes) != 1:
                    hint = (f"; {_series_listing(tf.series)}: read the one you want with tifffile.imread(path, "
                            "series=k) and pass the array") if n_series > 1 else ""
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
    with tifffile.TiffFile(path) as tf:  # only on failure: counting whole pages reads every page's header
        present = _complete_frames(tf)
    if present[0] < shape[0]:
        raise _truncated_error(path, shape[0], "frames its header declares", present)
    raise MovieError(f"{path}: TIFF is truncated or corrupt, or its layout is not supported ({n_pages} readable "
                     f"pages of shape {page_shape} for a movie of shape {shape}, not memory-mappable)")


#: tifffile's axis codes of stage positions and tiles: R (OME tile / region / position, NDTiff position),
#: M (LSM mosaic), J and K (NDTiff tile column and row).
_POSITION_AXES = "RMJK"


def _series_in_file(tf) -> list:
    """The image series of ``tf`` with a page in this file (a multi-file OME-TIFF describes the series of its other
    files too; each of those files is opened on its own)."""
    return [s for s in tf.series if any(p is not None and p.parent is tf for p in s.pages)]


def _check_positions(path: Path, tf) -> None:
    """MovieError for a TIFF of several stage positions, fields of view or tiles: an OME-TIFF of several images
    (OME's way of storing positions; a time series is one image of SizeT planes), or a series with a position or
    tile axis (:data:`_POSITION_AXES`) of more than one; they would otherwise be read one after another as frames."""
    series = _series_in_file(tf)
    how = ("read the one you want with tifffile.imread(path, series=k) and pass the array (command line: save it "
           "with tifffile.imwrite first)")
    if tf.is_ome and len(series) > 1:
        listing = ", ".join(f"series {tf.series.index(s)} '{s.name or ''}' {s.shape} (axes {s.axes})"
                            for s in series[:6]) + (", ..." if len(series) > 6 else "")
        raise MovieError(f"{path}: OME-TIFF of {len(series)} images (stage positions or fields of view, not one "
                         f"movie: {listing}); {how}")
    for s in series:
        k = tf.series.index(s)
        for axis, n in zip(s.axes, s.shape, strict=False):  # tifffile's axes and shape: one code per axis
            if axis in _POSITION_AXES and n > 1:
                raise MovieError(f"{path}: image series {k} of shape {s.shape} (axes {s.axes}) holds {n} stage "
                                 f"positions or tiles along axis {axis}, not frames of one movie; select one (e.g. "
                                 f"tifffile.imread(path, series={k}) indexed along axis {s.axes.index(axis)}) and "
                                 "pass that array")


def _imagej_images(tf) -> int:
    """The number of images an ImageJ TIFF's header declares (``images=``; 0 when not an ImageJ file or unreadable)."""
    try:
        return int((tf.imagej_metadata or {}).get("images", 0)) if tf.is_imagej else 0
    except (TypeError, ValueError):
        return 0


def _complete_frames(tf) -> tuple[int, str]:
    """How many leading frames (pages) of a TIFF are wholly in the file, and how to read them (a Python expression).

    When only the first page's header can be read (an ImageJ file or a tifffile shaped file keeps the other pages'
    headers after all frame data, lost when the file is cut short), the frames are counted in the bytes after the
    first frame's offset, if uncompressed and contiguous; otherwise the pages whose data end inside the file.
    """
    size = tf.filehandle.size
    page = tf.pages.first
    if len(tf.pages) == 1 and page.compression == 1 and page.is_contiguous and page.nbytes:
        offset = int(page.dataoffsets[0])
        n = max(0, (size - offset) // page.nbytes)
        dtype = np.dtype(page.dtype).newbyteorder(tf.byteorder).str
        return n, (f"numpy.memmap(path, dtype='{dtype}', mode='r', offset={offset}, "
                   f"shape=({n}, {', '.join(map(str, page.shape))}))")
    n = 0
    for k in range(len(tf.pages)):
        p = tf.pages[k]
        if not p.dataoffsets or int(p.dataoffsets[-1]) + int(p.databytecounts[-1]) > size:
            break
        n += 1
    return n, f"tifffile.imread(path, key=range({n}))"


def _truncated_error(path: Path, declared: int, what: str, present: tuple[int, str]) -> MovieError:
    """MovieError: the TIFF at ``path`` holds ``present[0]`` complete frames of the ``declared`` ones (``what``
    says which header declares them); ``present[1]`` reads those."""
    n, how = present
    return MovieError(f"{path}: truncated TIFF: it holds only {n} complete frames of the {declared} {what} (a copy "
                      f"or recording cut short?); copy it again from the original, or, to analyse the {n} frames "
                      f"present, read them with {how} and pass that array")


def _check_imagej_complete(path: Path, tf) -> None:
    """MovieError for an ImageJ TIFF that holds fewer images than its header's ``images=`` (tifffile then falls back
    to reading only the pages whose headers it finds, often only the first: a 2-D image)."""
    declared = _imagej_images(tf)
    series = tf.series[0]
    if declared <= 1 or series.kind == "imagej":  # tifffile read the ImageJ series: its header fits the file
        return
    held = int(np.prod(series.shape)) // max(1, int(np.prod(tf.pages.first.shape)))
    if held < declared:
        raise _truncated_error(path, declared, "images its ImageJ header declares", _complete_frames(tf))


def _series_listing(series) -> str:
    """'the file holds N image series (shape dtype, ...)' for an error message."""
    listing = ", ".join(f"{s.shape} {s.dtype}" for s in series[:4]) + (", ..." if len(series) > 4 else "")
    return f"the file holds {len(series)} image series ({listing})"


def _check_series(path: Path, series) -> None:
    """MovieError unless the image series of a file are all frames of one movie: each (frames, rows, cols) or
    (rows, cols) (singleton axes aside), all of one frame shape and data type.

    Several series of channels, z-planes or samples (e.g. (T, C, rows, cols) stacks written in pieces, or an
    OME-TIFF of several positions) would otherwise be joined page by page, channels as frames.
    """
    frames = set()
    for k, s in enumerate(series):
        kept = [i for i, n in enumerate(s.shape) if n != 1 or i >= len(s.shape) - 2]
        axes = "".join(s.axes[i] for i in kept) if len(s.axes) == len(s.shape) else ""
        if len(kept) > 3 or axes.endswith("S"):
            raise MovieError(f"{path}: image series {k} has shape {s.shape} (axes {s.axes}), not (frames, rows, cols): "
                             f"its pages are channels, z-planes or samples, not frames; {_series_listing(series)}: "
                             "save one channel/plane as a (frames, rows, cols) stack and pass that (e.g. "
                             "tifffile.imread(path, series=k)[:, c])")
        frames.add((tuple(s.shape[-2:]), np.dtype(s.dtype)))
    if len(frames) > 1:
        raise MovieError(f"{path}: image series of different frame shapes or types cannot form a movie; "
                         f"{_series_listing(series)}: read the one you want with tifffile.imread(path, series=k) "
                         "and pass the array")


def _scanimage_planes(tf) -> int:
    """Number of z-planes a ScanImage recording cycles through (``SI.hStackManager.actualNumSlices``, else
    ``numSlices``; 1 when its stack is disabled, when it is not a ScanImage file, or when the metadata do not say)."""
    try:
        if not tf.is_scanimage:
            return 1
        frame_data = (tf.scanimage_metadata or {}).get("FrameData", {})
        if frame_data.get("SI.hStackManager.enable", True) is False:
            return 1
        planes = frame_data.get("SI.hStackManager.actualNumSlices", frame_data.get("SI.hStackManager.numSlices"))
        return max(1, int(planes or 1))
    except Exception as exc:  # noqa: BLE001 - odd metadata must not stop a movie from loading
        logger.debug("ScanImage metadata without a number of planes (%s)", exc)
        return 1


def _check_scanimage_planes(path: Path, tf) -> None:
    """MovieError for a ScanImage volume recording (fast-Z or stack): its pages cycle through the z-planes."""
    planes = _scanimage_planes(tf)
    if planes > 1:
        raise MovieError(f"{path}: ScanImage volume recording of {planes} z-planes (SI.hStackManager.numSlices): its "
                         f"pages cycle through the planes, which are not frames of one movie; deinterleave it into one "
                         f"movie per plane first (plane k: tifffile.imread(path)[k::{planes}], if no flyback frames "
                         "were saved) and pass one plane")


def _positive(value) -> float | None:
    """``value`` as a positive finite float, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _tiff_frame_rate(tf) -> float | None:
    """Frames per second from a TIFF's ImageJ metadata (``finterval`` in its time unit ``tunit``, or ``fps``) or
    a single-plane ScanImage recording's ``scanFrameRate``; None when neither says, or when ImageJ's time unit is
    not one of :data:`_TIME_UNITS` (metadata that cannot be parsed counts as none)."""
    try:
        imagej = tf.imagej_metadata or {}
        interval = _positive(imagej.get("finterval"))
        if interval is not None:
            unit = str(imagej.get("tunit") or "sec")
            seconds = _TIME_UNITS.get(unit.strip().lower())
            if seconds is None:
                logger.warning("%s: ImageJ frame interval %g in an unknown time unit %r: frame rate not taken from "
                               "the file (give it as data.fr / --fr)", tf.filename, interval, unit)
                return None
            return 1.0 / (interval * seconds)
        if _positive(imagej.get("fps")) is not None:
            return _positive(imagej.get("fps"))
        if tf.is_scanimage and _scanimage_planes(tf) <= 1:
            frame_data = (tf.scanimage_metadata or {}).get("FrameData", {})
            return _positive(frame_data.get("SI.hRoiManager.scanFrameRate"))
    except Exception as exc:  # noqa: BLE001 - odd metadata must not stop a movie from loading
        logger.debug("TIFF metadata without a frame rate (%s)", exc)
    return None


def _natural_key(path: Path):
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", path.name)]


def _sequence_key(name: str) -> str:
    """A file name with its last run of digits replaced by '#' ('x_Ch1_000001.ome.tif' -> 'x_Ch1_#.ome.tif'):
    the files of one numbered sequence share it (up to case, as in :func:`_natural_key`)."""
    return re.sub(r"\d+(?=\D*$)", "#", name)


def _check_one_sequence(path: Path, files: list[Path]) -> None:
    """MovieError unless the names of a folder's frame files form one numbered sequence (one :func:`_sequence_key`):
    other channels (Bruker's ``..._Ch1_...`` beside ``..._Ch2_...``) or a projection saved beside the frames
    (ImageJ's ``AVG_...``) would otherwise become frames of the movie."""
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(_sequence_key(f.name).lower(), []).append(f.name)
    if len(groups) > 1:
        listing = "; ".join(f"'{_sequence_key(names[0])}' ({len(names)} file{'s' if len(names) > 1 else ''}: "
                            f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                            for names in list(groups.values())[:5])
        raise MovieError(f"{path}: the TIFF files form {len(groups)} sequences of names, not one movie ({listing}"
                         f"{'; ...' if len(groups) > 5 else ''}): put one sequence of frames per folder (move other "
                         "channels, projections and other images out)")


def open_tiff_folder(path: Path) -> Reader:
    """A folder of single-frame TIFFs in natural order; their names must form one numbered sequence, and every frame
    must have the first one's shape and type (each file read alone: see :func:`.readers.open_frame_file`)."""
    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
                    and not f.name.startswith(".")), key=_natural_key)
    if not files:
        raise MovieError(f"{path}: folder contains no .tif/.tiff frames")
    _check_one_sequence(path, files)
    frame_shape = dtype = None
    for f in files:
        try:
            with open_frame_file(f) as tf:
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
    (``candidates``, all of them ``what``: '3-D datasets', 'TwoPhotonSeries')."""
    if len(candidates) > 1:
        listing = ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "")
        warnings.warn(f"{path}: read '{name}' (the default) of the {len(candidates)} {what} in the file ({listing}); "
                      "choose another with var_name= (command line: --var-name)", UserWarning, stacklevel=4)


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
                _warn_other_movies(path, "TwoPhotonSeries", acq[0], picked)
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
