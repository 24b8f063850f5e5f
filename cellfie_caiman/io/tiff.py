"""Opening TIFF movies: multi-page TIFF files (ImageJ, OME-TIFF, ScanImage, tifffile's own) and folders of
single-frame TIFFs. The header is read and checked (positions, axes, truncation, one numbered sequence of frame
files), the frame rate taken from the metadata, and the matching reader returned (no frames are read here)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .._checks import positive_or_none
from .errors import MovieError, check_movie_shape_dtype
from .readers import FolderReader, MappedFileReader, Reader, TiffPagesReader, open_frame_file

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
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


def _tiff_frame_rate(tf) -> float | None:
    """Frames per second from a TIFF's ImageJ metadata (``finterval`` in its time unit ``tunit``, or ``fps``) or
    a single-plane ScanImage recording's ``scanFrameRate``; None when neither says, or when ImageJ's time unit is
    not one of :data:`_TIME_UNITS` (metadata that cannot be parsed counts as none)."""
    try:
        imagej = tf.imagej_metadata or {}
        interval = positive_or_none(imagej.get("finterval"))
        if interval is not None:
            unit = str(imagej.get("tunit") or "sec")
            seconds = _TIME_UNITS.get(unit.strip().lower())
            if seconds is None:
                logger.warning("%s: ImageJ frame interval %g in an unknown time unit %r: frame rate not taken from "
                               "the file (give it as data.fr / --fr)", tf.filename, interval, unit)
                return None
            return 1.0 / (interval * seconds)
        if positive_or_none(imagej.get("fps")) is not None:
            return positive_or_none(imagej.get("fps"))
        if tf.is_scanimage and _scanimage_planes(tf) <= 1:
            frame_data = (tf.scanimage_metadata or {}).get("FrameData", {})
            return positive_or_none(frame_data.get("SI.hRoiManager.scanFrameRate"))
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
