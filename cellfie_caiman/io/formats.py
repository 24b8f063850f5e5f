"""Opening each file format: the header is read and checked, and the matching reader returned (no frames
are read here)."""
from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
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
    positions) or a series with a position/tile axis, a series with several axes beside rows and columns (an ImageJ
    hyperstack or OME-TIFF of channels or z-planes at each time point, a ScanImage recording of several channels) or
    whose one such axis is not time (channels: :func:`_labelled_channels`), and a file that holds fewer frames than
    its header declares (a truncated copy) are refused.
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
            _check_axes(path, tf)
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


#: What each of tifffile's axis codes counts, for messages (other codes are named by their letter).
_AXIS_NAMES = {"T": "time points", "Z": "z-planes", "C": "channels", "S": "samples", "E": "excitation wavelengths",
               "H": "lifetime bins", "A": "angles", "P": "phases", "I": "images", "Q": "images", "L": "exposures",
               "V": "events"}
#: Axes that are never the frames of a movie, alone beside rows and columns (for C see :func:`_labelled_channels`).
_NOT_FRAMES = "CSEHAP"
#: Axes that may be time, in the order the frame axis is chosen in a message's selection (ImageJ labels the frames
#: of a plain stack Z (slices), ScanImage's tifffile series too).
_FRAME_AXES = "TZIQVL"
#: A 3-D ImageJ or OME-TIFF series labelled C is a movie written with tifffile's defaults (``imwrite(path, movie,
#: imagej=True)`` and ``ome=True`` label a 3-D array's first axis C), unless it holds at most this many channels
#: (microscopes record a few channels; a movie needs far more frames) or its metadata describe channels.
_FEW_CHANNELS = 8


def _labelled_channels(tf, series, n: int) -> bool:
    """Whether the C axis (``n`` entries) of a 3-D ``series`` of ``tf`` holds channels rather than a movie's frames.

    A tifffile shaped file (or any other kind) labels an axis C only when told to: channels. ImageJ and OME-TIFF:
    channels if ``n <= _FEW_CHANNELS``, or if ImageJ displays them as composite or colour channels, or if an OME
    channel has a name, fluorophore or wavelength; otherwise the frames of a movie written with tifffile's defaults.
    """
    kind = getattr(series, "kind", "")
    if kind not in ("imagej", "ome"):
        return True
    if n <= _FEW_CHANNELS:
        return True
    if kind == "imagej":
        return str((tf.imagej_metadata or {}).get("mode", "")).lower() in ("composite", "color")
    return _ome_channels_described(tf)


def _ome_root(tf):
    """The parsed OME-XML of the TIFF ``tf`` (an ``xml.etree`` element), None when it has none that parses."""
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(tf.ome_metadata or "")
    except ElementTree.ParseError as exc:
        logger.debug("OME metadata not parsed (%s)", exc)
        return None


def _ome_channels_described(tf) -> bool:
    """Whether a channel of an OME-TIFF's first image has a name, fluorophore or wavelength (tifffile's defaults give
    none); False for XML that cannot be parsed."""
    root = _ome_root(tf)
    if root is None:
        return False
    image = root.find("{*}Image")
    channels = [] if image is None else image.iterfind("{*}Pixels/{*}Channel")
    described = ("Name", "Fluor", "EmissionWavelength", "ExcitationWavelength")
    return any(channel.get(attr) for channel in channels for attr in described)


def _axes_error(path: Path, series, extra: list[int], label: str) -> MovieError:
    """MovieError for the image series ``series`` (``label``: '' or ' k', its index in a file of several) whose axes
    ``extra`` (indices into ``series.axes``, besides the frame's rows and columns) are not one time axis; it names the
    axes and says how to read one movie out of the file."""
    axes, shape = series.axes, tuple(series.shape)
    rows, cols = shape[-2:]
    counts = " x ".join(f"{shape[k]} {_AXIS_NAMES.get(axes[k], f'{axes[k]} entries')}" for k in extra)
    head = f"{path}: image series{label} of shape {shape} (axes {axes}, as tifffile reads them): {counts}"
    save = "(command line: save it with tifffile.imwrite first)"
    frames = next((k for a in _FRAME_AXES for k in extra if axes[k] == a), None)
    if frames is None:
        return MovieError(f"{head} of one {rows} x {cols} px image, not a movie of (frames, rows, cols); if the axis "
                          f"{axes[extra[0]]} is really time, read the file with tifffile.imread(path) and pass the "
                          f"array {save}")
    index = ", ".join(":" if k == frames or k not in extra else "0" for k in range(max(extra) + 1))
    picked = ", ".join(f"{_AXIS_NAMES.get(axes[k], axes[k]).rstrip('s')} 0" for k in extra if k != frames)
    read = f"tifffile.imread(path, series={label.strip()})" if label else "tifffile.imread(path)"
    return MovieError(f"{head} of {rows} x {cols} px, not one movie of (frames, rows, cols); read one movie along "
                      f"axis {axes[frames]} and pass that array, e.g. {read}[{index}] ({picked}) {save}")


def _check_axes(path: Path, tf) -> None:
    """MovieError for an image series whose axes beside rows and columns are not one time axis: several
    (hyperstacks: channels or z-planes at each time point) or one that is not time (:data:`_NOT_FRAMES`, channels by
    :func:`_labelled_channels`); they would otherwise be read one after another as frames. A series' axes as
    tifffile reads them: ImageJ hyperstacks, OME-TIFF, ScanImage, tifffile shaped files."""
    series = _series_in_file(tf)
    for s in series:
        axes, shape = s.axes, tuple(s.shape)
        if len(axes) != len(shape) or not axes.endswith("YX"):
            continue
        extra = [k for k in range(len(shape) - 2) if shape[k] > 1]
        if len(extra) == 1:
            axis, n = axes[extra[0]], shape[extra[0]]
            if axis not in _NOT_FRAMES or (axis == "C" and not _labelled_channels(tf, s, n)):
                continue
        if extra:
            label = f" {tf.series.index(s)}" if len(tf.series) > 1 else ""
            raise _axes_error(path, s, extra, label)


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


def _name_parts(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A file name split into its text, in lower case, and its runs of digits:
    'Img_ch1_t002.tif' -> (('img_ch', '_t', '.tif'), ('1', '002'))."""
    parts = re.split(r"(\d+)", name)
    return tuple(p.lower() for p in parts[::2]), tuple(parts[1::2])


def _run_label(name: str, k: int) -> str:
    """How a message names the k-th run of digits of ``name``: the word before it ('time' in '..._time0001_...'),
    else its rank ('run 2 of digits')."""
    word = re.search(r"[A-Za-z]*$", re.split(r"\d+", name)[k]).group()
    return f"'{word}'" if word else f"run {k + 1} of digits"


def _numbered_sequences(names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The numbered sequences of names that share their text (:func:`_name_parts`), and how their runs of digits vary.

    Parameters
    ----------
    names : list of str
        File names whose text, apart from the runs of digits, is the same (up to case); at least one.

    Returns
    -------
    sequences : dict of str to list of str
        The names of each sequence, by the first one's name with its frame number replaced by '#'. The frame number
        is the one run of digits that differs between the names (as a number); where several do (time and channel,
        time and z-plane), the one with the most values (the last of equals), each combination of the others'
        values being a sequence of its own.
    varying : list of str
        When several runs differ, each of them described for a message ("'channel' (2 values: 000 to 001)");
        else [].
    """
    runs = [_name_parts(name)[1] for name in names]
    values = [sorted({int(r[k]) for r in runs}) for k in range(len(runs[0]))]
    differing = [k for k, v in enumerate(values) if len(v) > 1]
    if not differing:
        return {names[0]: names}, []
    frame_run = max(reversed(differing), key=lambda k: len(values[k]))
    others = [k for k in differing if k != frame_run]
    sequences: dict[tuple[int, ...], list[str]] = {}
    for name, r in zip(names, runs, strict=True):
        sequences.setdefault(tuple(int(r[k]) for k in others), []).append(name)
    keyed = {}
    for members in sequences.values():
        pieces = re.split(r"(\d+)", members[0])
        pieces[2 * frame_run + 1] = "#"
        keyed["".join(pieces)] = members
    varying = [f"{_run_label(names[0], k)} ({len(values[k])} values: {values[k][0]} to {values[k][-1]})"
               for k in differing] if others else []
    return keyed, varying


def _check_distinct_numbers(path: Path, names: list[str]) -> None:
    """MovieError when two names of one sequence carry the same frame number ('img_7.tif' and 'img_007.tif'): their
    order would be a guess."""
    seen: dict[tuple[int, ...], str] = {}
    for name in names:
        number = tuple(int(r) for r in _name_parts(name)[1])
        if number in seen:
            raise MovieError(f"{path}: {seen[number]} and {name} carry the same frame number, so the order of the "
                             "frames is unknown: rename or remove one of them")
        seen[number] = name


def _check_one_sequence(path: Path, files: list[Path]) -> None:
    """MovieError unless the names of a folder's frame files form one numbered sequence: the same names (up to case)
    but for one run of digits, the frame number, which may be any of their runs (Micro-Manager's
    ``img_channel000_position000_time000000007_z000.tif``); see :func:`_numbered_sequences`. Other channels
    (Bruker's ``..._Ch1_...`` beside ``..._Ch2_...``), the planes of a hyperstack (names differing in two runs: time
    and z) or a projection saved beside the frames (ImageJ's ``AVG_...``) would otherwise become frames of the
    movie."""
    by_text: dict[tuple[str, ...], list[str]] = {}
    for f in files:
        by_text.setdefault(_name_parts(f.name)[0], []).append(f.name)
    groups: dict[str, list[str]] = {}
    varying: list[str] = []
    for names in by_text.values():
        sequences, runs = _numbered_sequences(names)
        groups.update(sequences)
        varying += runs
    if len(groups) > 1:
        listing = "; ".join(f"'{key}' ({len(names)} file{'s' if len(names) > 1 else ''}: "
                            f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                            for key, names in list(groups.items())[:5])
        hyperstack = (f"; the names differ in {len(varying)} runs of digits, as the channels, planes or positions of "
                      f"a hyperstack do: {' and '.join(varying)}" if varying else "")
        raise MovieError(f"{path}: the TIFF files form {len(groups)} sequences of names, not one movie ({listing}"
                         f"{'; ...' if len(groups) > 5 else ''}){hyperstack}: put one sequence of frames per folder "
                         "(move other channels, planes, projections and other images out)")
    _check_distinct_numbers(path, next(iter(groups.values())))


def _ome_file_planes(tf) -> dict[str, tuple[int, int, int]]:
    """The (image, channel, z-plane) that each file of a multi-file OME-TIFF series holds, by file name, as the OME
    metadata of ``tf`` (one of its files) describe them (``TiffData`` naming a file, its ``FirstC`` and ``FirstZ``);
    {} for a file that is not an OME-TIFF or whose metadata cannot be read."""
    root = _ome_root(tf) if tf.is_ome else None
    if root is None:
        return {}
    planes = {}
    try:
        for i, image in enumerate(root.iterfind("{*}Image")):
            for data in image.iterfind("{*}Pixels/{*}TiffData"):
                uuid = data.find("{*}UUID")
                if uuid is not None and uuid.get("FileName"):
                    planes[Path(uuid.get("FileName")).name] = (i, int(data.get("FirstC", 0)),
                                                               int(data.get("FirstZ", 0)))
    except ValueError as exc:  # a FirstC or FirstZ that is not a number
        logger.debug("OME metadata without file planes (%s)", exc)
        return {}
    return planes


def _check_folder_planes(path: Path, files: list[Path]) -> None:
    """MovieError when the OME metadata of a folder's first file (a multi-file OME-TIFF series: Micro-Manager, Bruker,
    Bio-Formats) place the folder's files in several channels, z-planes or images: one numbered sequence of files
    that cycles through the channels would otherwise be read with its channels as frames."""
    try:
        with open_frame_file(files[0]) as tf:
            planes = _ome_file_planes(tf)
    except Exception as exc:  # noqa: BLE001 - the frame check that follows says what is wrong with the file
        logger.debug("%s: OME metadata not read (%s)", files[0], exc)
        return
    held = {f.name: planes[f.name] for f in files if f.name in planes}
    if len(set(held.values())) <= 1:
        return
    counts = [(len({p[k] for p in held.values()}), what) for k, what in enumerate(("images", "channels", "z-planes"))]
    listing = ", ".join(f"{n} {what}" for n, what in counts if n > 1)
    examples = "; ".join(f"{name}: image {i}, channel {c}, z-plane {z}" for name, (i, c, z) in list(held.items())[:3])
    raise MovieError(f"{path}: the files' OME metadata place them in {listing} ({examples}; ...), not frames of one "
                     "movie: put the files of one channel and plane in a folder of their own")


def open_tiff_folder(path: Path) -> Reader:
    """A folder of single-frame TIFFs in natural order; their names must form one numbered sequence, and every frame
    must have the first one's shape and type (each file read alone: see :func:`.readers.open_frame_file`)."""
    files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
                    and not f.name.startswith(".")), key=_natural_key)
    if not files:
        raise MovieError(f"{path}: folder contains no .tif/.tiff frames")
    _check_one_sequence(path, files)
    _check_folder_planes(path, files)
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
    (``candidates``, all of them ``what``: '3-D datasets', 'TwoPhotonSeries', 'OnePhotonSeries', 'movies' (an NWB
    file's corrected stack and raw series))."""
    if len(candidates) > 1:
        listing = ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "")
        warnings.warn(f"{path}: read '{name}' (the default) of the {len(candidates)} {what} in the file ({listing}); "
                      "choose another with var_name= (command line: --var-name)", UserWarning, stacklevel=4)


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: ``neurodata_type`` of NWB's raw movies: two-photon, and one-photon (miniscope, widefield; NWB 2.6, pynwb >= 2.4).
_RAW_TYPES = ("TwoPhotonSeries", "OnePhotonSeries")
#: ``neurodata_type`` of NWB's motion-corrected movie (``pynwb.ophys.CorrectedImageStack``, one per corrected movie
#: in a ``MotionCorrection``, usually ``processing/ophys/MotionCorrection/<name>``): it holds the ``corrected``
#: ImageSeries, a link to its ``original`` raw series and the ``xy_translation`` TimeSeries.
_STACK = "CorrectedImageStack"


@dataclass(frozen=True)
class _NwbMovie:
    """A movie an NWB file offers: a ``TwoPhotonSeries`` or ``OnePhotonSeries``, or the ``corrected`` ImageSeries of
    a ``CorrectedImageStack``.

    Attributes
    ----------
    name : str
        Its path in the file, as errors and warnings list it and ``var_name`` matches it: the raw series' group's, or
        the CorrectedImageStack group's (e.g. ``processing/ophys/MotionCorrection/plane0``).
    series : str
        Path of the group holding ``data`` and the frame times: ``name``, or ``name + '/corrected'``.
    corrected : bool
        Whether it is a motion-corrected stack.
    type : str
        Its group's ``neurodata_type``: one of :data:`_RAW_TYPES`, or ``CorrectedImageStack``.
    """

    name: str
    series: str
    corrected: bool
    type: str

    @property
    def label(self) -> str:
        """``name``, marked '(motion-corrected)' for a stack."""
        return f"{self.name} (motion-corrected)" if self.corrected else self.name

    @property
    def kind(self) -> str:
        """What it is, for messages: "TwoPhotonSeries 'name'" (its type) or "motion-corrected stack 'name'"."""
        return f"motion-corrected stack '{self.name}'" if self.corrected else f"{self.type} '{self.name}'"


def _h5_group(f, name: str):
    """The group at ``name`` in the open HDF5 file ``f``, or None where there is none, where its link leads nowhere
    (a dangling soft link, an external link to a missing file) or to a dataset."""
    import h5py
    try:
        obj = f.get(name)
    except (KeyError, OSError, ValueError):
        return None
    return obj if isinstance(obj, h5py.Group) else None


def _nwb_movies(f) -> list[_NwbMovie]:
    """The movies of the open NWB file ``f``: its CorrectedImageStacks, then its raw series (TwoPhotonSeries and
    OnePhotonSeries), each in file order.

    A raw series that is some stack's ``corrected`` series (a writer may store it as one) is listed once, as that
    stack. Soft links (a stack's ``original``) are not followed, so each group is found once.
    """
    import h5py
    found: list[tuple[str, str]] = []

    def visit(name, obj):  # returns None: visititems stops at the first other value
        if isinstance(obj, h5py.Group):
            kind = _attr_str(obj.attrs.get("neurodata_type", ""))
            if kind in _RAW_TYPES or kind == _STACK:
                found.append((name, kind))

    f.visititems(visit)
    stacks = [_NwbMovie(n, f"{n}/corrected", True, kind) for n, kind in found if kind == _STACK]
    corrected = [g for g in (_h5_group(f, m.series) for m in stacks) if g is not None]
    raw = [_NwbMovie(n, n, False, kind) for n, kind in found
           if kind != _STACK and not any(f[n] == g for g in corrected)]
    return stacks + raw


def _nwb_original(f, stack: _NwbMovie, movies: list[_NwbMovie]) -> _NwbMovie | None:
    """The raw series of ``movies`` that ``stack`` was corrected from (its ``original`` link), None when the link is
    missing or dangling or leads to none of them (another file)."""
    target = _h5_group(f, f"{stack.name}/original")
    if target is None:
        return None
    return next((m for m in movies if not m.corrected and f[m.series] == target), None)


def _listing(movies: list[_NwbMovie]) -> str:
    return ", ".join(m.label for m in movies) or "none"


def _raw_types(raws: list[_NwbMovie]) -> str:
    """The types of the raw series ``raws``, for messages: 'TwoPhotonSeries', 'OnePhotonSeries' or both."""
    return " and ".join(t for t in _RAW_TYPES if any(m.type == t for m in raws)) or _RAW_TYPES[0]


#: How ``var_name`` names an NWB movie, for error messages.
_NWB_NAMING = ("var_name is a movie's path in the file or its last parts (a TwoPhotonSeries or OnePhotonSeries: "
               "e.g. 'TwoPhotonSeries' or 'acquisition/TwoPhotonSeries'; a motion-corrected stack: its "
               "CorrectedImageStack's name, e.g. "
               "'plane0' or 'MotionCorrection/plane0', optionally followed by '/corrected')")


def _nwb_name_matches(movie: _NwbMovie, var_name: str) -> bool:
    """Whether ``var_name`` is the last whole parts of ``movie``'s path (all of it included); for a stack, a
    trailing '/corrected' after its name (or path) names it too."""
    parts = [p for p in var_name.split("/") if p]
    if movie.corrected and len(parts) > 1 and parts[-1] == "corrected":
        parts = parts[:-1]
    own = movie.name.split("/")
    return bool(parts) and own[-len(parts):] == parts


def _nwb_by_name(path: Path, movies: list[_NwbMovie], var_name: str) -> _NwbMovie:
    """The movie ``var_name`` names (:func:`_nwb_name_matches`; a whole path in the file wins over trailing parts of
    other paths); MovieError, listing the movies, unless exactly one."""
    exact = [m for m in movies if var_name.strip("/") in (m.name, m.series)]
    picked = exact or [m for m in movies if _nwb_name_matches(m, var_name)]
    if len(picked) != 1:
        found = f"{len(picked)} movies named '{var_name}' ({_listing(picked)})" if picked else \
            f"no movie named '{var_name}'"
        raise MovieError(f"{path}: {found}; the file holds: {_listing(movies)}. {_NWB_NAMING}")
    return picked[0]


def _nwb_default(f, path: Path, movies: list[_NwbMovie]) -> tuple[_NwbMovie, str, list[str]]:
    """The movie read when no ``var_name`` is given, what the file's candidate movies are, and those candidates (a
    warning names them when there are several).

    * One motion-corrected stack: its corrected movie. The raw series it was corrected from (its ``original``) is
      not a rival (only logged); any other raw series (TwoPhotonSeries, OnePhotonSeries) is, and is named in the
      warning.
    * Several stacks: MovieError listing them.
    * No stack: the only raw series, or the only one under ``acquisition/`` (the warning names the others).
    """
    stacks = [m for m in movies if m.corrected]
    raws = [m for m in movies if not m.corrected]
    if len(stacks) > 1:
        raise MovieError(f"{path}: {len(stacks)} motion-corrected stacks (CorrectedImageStack) in the file "
                         f"({_listing(stacks)}); choose one with var_name= (command line: --var-name), e.g. "
                         f"var_name='{stacks[0].name.split('/')[-1]}'. {_NWB_NAMING}")
    if stacks:
        stack = stacks[0]
        original = _nwb_original(f, stack, movies)
        if original is not None:
            logger.info("%s: read the motion-corrected stack '%s', not the raw %s '%s' it was corrected from "
                        "(var_name='%s' reads that)", path, stack.name, original.type, original.name, original.name)
        others = [m.label for m in raws if m != original]
        return stack, "movies", [stack.label, *others]
    acq = [m for m in raws if m.name.startswith("acquisition/")]
    if len(raws) > 1 and len(acq) == 1:
        return acq[0], _raw_types(raws), [m.name for m in raws]
    if len(raws) != 1:
        raise MovieError(f"{path}: {len(raws)} {_raw_types(raws)} in the file ({_listing(raws)}); choose one with "
                         "var_name= (command line: --var-name)" if raws else
                         f"{path}: no TwoPhotonSeries, no OnePhotonSeries and no motion-corrected stack "
                         "(CorrectedImageStack) in this NWB file")
    return raws[0], raws[0].type, [raws[0].name]


#: NeuroConv's mark in ``general/source_script`` (NeuroConv 0.4.10 to 0.10.0): "Created using NeuroConv v0.6.1".
_NEUROCONV_MARK = re.compile(r"^\s*Created using NeuroConv v(\d+)\.(\d+)")
#: NeuroConv's provenance record (NeuroConv >= 0.10.1): a first line "NeuroConv provenance record", then keys.
_NEUROCONV_RECORD = re.compile(r"^\s*NeuroConv provenance record\s*$.*?^neuroconv_version:\s*v?(\d+)\.(\d+)",
                               re.MULTILINE | re.DOTALL)
#: NWB GUIDE's mark (its conversions run NeuroConv): "Created using NWB GUIDE v1.0.6-beta".
_GUIDE_MARK = re.compile(r"^\s*Created using NWB GUIDE v(\d+)\.")
#: The newest NeuroConv (major, minor) whose imaging writer was read: every version up to it (and its ancestor
#: nwb-conversion-tools since roiextractors' 2021 change) stores a movie's frames and image masks transposed.
_NEUROCONV_CHECKED = (0, 10)
#: What the default reading (NWB's x as the row axis) means, and how to undo it, for log messages.
_ROWS_FIRST = ("NWB's (frame, x, y) read as (frames, rows, cols), x as the row axis, as CaImAn and Suite2p write "
               "it; if the movie looks transposed, transpose its frames: numpy.asarray(movie[:]).transpose(0, 2, 1)")


@dataclass(frozen=True)
class NwbAxes:
    """How an NWB file orders the two image axes of its raw series (``TwoPhotonSeries``, ``OnePhotonSeries``).

    Attributes
    ----------
    columns_first : bool
        True where the file was written by NeuroConv (or NWB GUIDE, which runs it), whose imaging writer stores
        each frame transposed, ``data`` (frames, width, height) = (frames, cols, rows), and each ``image_mask``
        (N, cols, rows) alike; its ``pixel_mask`` ``x`` is the row (roiextractors' order, written as it is). False:
        the default reading, ``data`` (frames, rows, cols), ``x`` the row axis (CaImAn, Suite2p, and files that do
        not say who wrote them).
    writer : str
        The writer ``general/source_script`` names ('NeuroConv v0.6', 'NWB GUIDE'), '' where it names none known.
    reason : str
        Why, for log messages.
    """

    columns_first: bool
    writer: str
    reason: str

    def transposes(self, corrected: bool) -> bool:
        """Whether a series is read transposed: a raw one of a columns-first file; never a motion-corrected stack
        (NeuroConv writes none, so its order is not known)."""
        return self.columns_first and not corrected


def _neuroconv_version(script: str) -> tuple[str, tuple[int, int] | None]:
    """The writer a ``source_script`` text names ('NeuroConv', 'NWB GUIDE' or '') and NeuroConv's (major, minor)
    (None for NWB GUIDE 1.x, whose conversions ran NeuroConv <= 0.10, and for other writers)."""
    for pattern in (_NEUROCONV_MARK, _NEUROCONV_RECORD):
        found = pattern.search(script)
        if found:
            return "NeuroConv", (int(found.group(1)), int(found.group(2)))
    found = _GUIDE_MARK.search(script)
    if found:
        return ("NWB GUIDE", None) if int(found.group(1)) <= 1 else ("NWB GUIDE (a version newer than 1)", None)
    return "", None


def nwb_axes(f) -> NwbAxes:
    """The axis order of the raw series of the open NWB (HDF5) file ``f``, from its ``general/source_script``.

    NeuroConv writes ``data`` = ``ImagingExtractor.get_series().transpose(0, 2, 1)``: roiextractors returns
    (frames, rows, cols) and NeuroConv stores NWB's documented (frame, width, height) (nwb-schema's
    ``data[time, width, height]``), so x is the column; its image masks are ``get_roi_image_masks().T`` (N, cols,
    rows). Every version since the first (0.1, 2022) does so; from 0.4.10 it marks its files in
    ``general/source_script``. CaImAn (``movie.save``) and Suite2p store (frames, rows, cols) and mark nothing.

    Parameters
    ----------
    f : h5py.File
        The open NWB file.

    Returns
    -------
    NwbAxes
        ``columns_first`` only for NeuroConv up to version :data:`_NEUROCONV_CHECKED` and NWB GUIDE 1.x; a newer
        NeuroConv keeps the default reading with a warning (its order was not checked).
    """
    import h5py

    node = f.get("general/source_script")
    script = _attr_str(node[()]) if isinstance(node, h5py.Dataset) and node.shape == () else ""
    writer, version = _neuroconv_version(script)
    line = script.strip().splitlines()[0][:80] if script.strip() else ""
    if version is not None:
        writer = f"{writer} v{version[0]}.{version[1]}"
    if writer == "NWB GUIDE" or (version is not None and version <= _NEUROCONV_CHECKED):
        return NwbAxes(True, writer, f"written by {writer} (general/source_script: '{line}'), whose imaging writer "
                                     "stores frames (frames, width, height) = (frames, cols, rows): read transposed")
    if writer:
        warnings.warn(f"{f.filename}: written by {writer} (general/source_script), newer than the versions whose "
                      f"axis order is known (NeuroConv <= {_NEUROCONV_CHECKED[0]}.{_NEUROCONV_CHECKED[1]} stores "
                      f"frames as (frames, cols, rows)); {_ROWS_FIRST}", UserWarning, stacklevel=3)
        return NwbAxes(False, writer, f"written by {writer}, a version whose axis order is not known: {_ROWS_FIRST}")
    return NwbAxes(False, "", f"no NeuroConv mark in general/source_script: {_ROWS_FIRST}")


class _ColumnsFirstReader(H5Reader):
    """An NWB series stored (frames, cols, rows), as NeuroConv writes it, read as (frames, rows, cols)."""

    def __init__(self, path: Path, dataset: str, stored_shape: tuple[int, int, int], dtype):
        super().__init__(path, dataset, (stored_shape[0], stored_shape[2], stored_shape[1]), dtype)

    def read(self, start, stop):
        try:
            data = np.asarray(self.dset[start:stop])
        except OSError as exc:
            raise MovieError(f"{self.path}: cannot read frames {start}..{stop - 1} of '{self.dataset}': {exc}") \
                from exc
        stored = (max(stop - start, 0), self.shape[2], self.shape[1])
        return np.ascontiguousarray(data.reshape(stored).transpose(0, 2, 1))


def open_nwb(path: Path, var_name: str | None) -> Reader:
    """The movie of an NWB file: the data of a ``TwoPhotonSeries``, a ``OnePhotonSeries`` (miniscope, widefield) or
    a motion-corrected stack's ``corrected`` ImageSeries (``CorrectedImageStack``).

    ``var_name`` names one by its path in the file or that path's last parts (a stack by its CorrectedImageStack's
    path: 'plane0', 'MotionCorrection/plane0' or 'processing/ophys/MotionCorrection/plane0', each optionally
    followed by '/corrected'); a whole path wins over the last parts of a longer one. Without ``var_name``: the
    corrected movie of the file's only motion-corrected stack (a UserWarning names the file's other raw series, if
    any, beside the raw one it was corrected from), a MovieError if there are several stacks; with none, the only
    raw series (TwoPhotonSeries or OnePhotonSeries), or the only one under ``acquisition/`` (with a warning naming
    the others).

    The frame rate is the series' ``rate`` or the median step of its ``timestamps``; a corrected series that
    records neither takes its ``original`` raw series' rate when that holds as many frames (or no data).

    Axis order (:func:`nwb_axes`, logged at INFO): a raw series of a file that NeuroConv (<= 0.10) or NWB GUIDE
    wrote, marked so in ``general/source_script``, is stored (frames, cols, rows) and read transposed into (frames,
    rows, cols); every other movie is read as stored, NWB's x as the row axis (CaImAn, Suite2p).
    """
    with _open_h5(path) as f:
        movies = _nwb_movies(f)
        if var_name is not None:
            movie = _nwb_by_name(path, movies, var_name)
        else:
            movie, what, candidates = _nwb_default(f, path, movies)
            _warn_other_movies(path, what, movie.name, candidates)
        group = _h5_group(f, movie.series)
        if group is None or "data" not in group:
            raise MovieError(f"{path}: {movie.kind} has no data" + ("" if group is not None else
                                                                    f" (no ImageSeries '{movie.series}')"))
        dset = group["data"]
        shape, dtype = dset.shape, dset.dtype
        if shape and shape[0] == 0 and "external_file" in group:
            raise MovieError(f"{path}: {movie.kind} stores its frames in external files "
                             f"({[_attr_str(x) for x in group['external_file'][:3]]}); open those instead")
        rate = _nwb_movie_rate(f, movie, group, shape[0] if shape else 0)
        axes = nwb_axes(f)
    shape = check_movie_shape_dtype(shape, dtype, f"{path}:{movie.series}")
    reader = _nwb_reader(path, movie, shape, np.dtype(dtype), axes)
    reader.frame_rate = rate
    return reader


def _nwb_reader(path: Path, movie: _NwbMovie, shape: tuple[int, int, int], dtype: np.dtype, axes: NwbAxes) -> Reader:
    """The reader of ``movie`` (stored ``shape``) in the axis order ``axes`` says, logged (INFO) with the reason. A
    motion-corrected stack is never NeuroConv's (it writes none): its order is not known and it is read as stored."""
    dataset = f"{movie.series}/data"
    if axes.transposes(movie.corrected):
        logger.info("%s: %s read as (frames, rows, cols) = %s: %s", path, movie.kind, (shape[0], shape[2], shape[1]),
                    axes.reason)
        return _ColumnsFirstReader(path, dataset, shape, dtype)
    if axes.columns_first:
        logger.info("%s: %s read as stored, (frames, rows, cols) = %s: the file was written by %s, but NeuroConv "
                    "writes no motion-corrected stack, so this one's axis order is not known; %s", path, movie.kind,
                    shape, axes.writer, _ROWS_FIRST)
    else:
        logger.info("%s: %s read as (frames, rows, cols) = %s: %s", path, movie.kind, shape, axes.reason)
    return H5Reader(path, dataset, shape, dtype)


def _nwb_movie_rate(f, movie: _NwbMovie, group, n_frames: int) -> float | None:
    """The frame rate of ``movie`` (its series ``group``, ``n_frames`` frames): its own (:func:`_nwb_frame_rate`), or
    for a corrected series without one, its ``original`` raw series' when that holds ``n_frames`` frames or
    none (external files), so that the times are those of the same frames."""
    rate = _nwb_frame_rate(group)
    if rate is not None or not movie.corrected:
        return rate
    original = _h5_group(f, f"{movie.name}/original")
    if original is None:
        return None
    held = original["data"].shape[0] if "data" in original and original["data"].shape else 0
    if held not in (0, n_frames):
        logger.info("%s: the corrected movie of '%s' records no frame rate, and its original holds %d frames, not "
                    "%d: its rate is not taken", f.filename, movie.name, held, n_frames)
        return None
    rate = _nwb_frame_rate(original)
    if rate is not None:
        logger.info("%s: the corrected movie of '%s' records no frame rate: %g Hz, its original's", f.filename,
                    movie.name, rate)
    return rate


def _nwb_frame_rate(group) -> float | None:
    """An NWB TimeSeries' rate (``starting_time``'s attribute) or the median step of its first timestamps."""
    if "starting_time" in group:
        return _positive(group["starting_time"].attrs.get("rate"))
    if "timestamps" in group and len(group["timestamps"]) > 1:
        step = _positive(np.median(np.diff(np.asarray(group["timestamps"][:1001], dtype=np.float64))))
        return None if step is None else 1.0 / step
    return None
