"""Opening NWB movies: a ``TwoPhotonSeries``, a ``OnePhotonSeries`` or a motion-corrected stack's ``corrected``
series, in the axis order its writer used (NeuroConv's files are stored transposed: :func:`nwb_axes`), with its frame
rate. The header is read and checked, and the matching reader returned (no frames are read here)."""
from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import positive_or_none
from .errors import MovieError, check_movie_shape_dtype
from .hdf5 import _attr_str, _h5_group, _open_h5, _warn_other_movies
from .readers import H5Reader, Reader

logger = logging.getLogger(__name__)


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
        return positive_or_none(group["starting_time"].attrs.get("rate"))
    if "timestamps" in group and len(group["timestamps"]) > 1:
        step = positive_or_none(np.median(np.diff(np.asarray(group["timestamps"][:1001], dtype=np.float64))))
        return None if step is None else 1.0 / step
    return None
