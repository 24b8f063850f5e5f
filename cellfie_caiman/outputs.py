"""The files of a run, each written atomically: what :func:`cellfie_caiman.pipeline.run` and the command line
write, and the helpers that write them. A run writes its files in a hidden folder (:func:`staged`) and moves them
into the output folder together at the end (:func:`publish`): an interrupted run never leaves a mix of two runs.

Outputs in ``out_dir`` (see :data:`OUTPUT_FILES`):

``results.hdf5``
    CaImAn's layout (``Estimates.save``): ``caiman.source_extraction.cnmf.cnmf.load_CNMF`` reads it. Holds every
    component (accepted or not: ``estimates/idx_components``), the correlation image as ``Cn``, and the record of
    ``provenance.json`` as the root attribute ``cellfie_provenance`` (JSON).
``rois.json``
    The accepted ROIs in the neurofinder format (``{"coordinates": [[row, col], ...]}``); without refinement, the
    detected ones.
``masks.npz``
    ``masks`` (K, rows, cols) bool: the ROIs of ``rois.json`` in the same order; ``component`` (K,) their column in
    ``results.hdf5``'s ``A``; ``all_masks`` and ``accepted``: every refined component and whether it passed
    quality control; ``detected_masks``, ``detection_scores``, ``detected_centers``: the networks' output before
    refinement, ``detection_diameter`` the soma diameter (pixels) they were run for; ``prob_map`` and ``corr``
    (rows, cols).
``traces.csv``
    One row per frame: ``frame``, ``time_s`` and one column ``roi_<k>`` per ROI of ``rois.json`` holding its
    denoised trace (CaImAn's ``C``; the raw trace ``C + YrA`` is in ``results.hdf5``).
``params.json``
    The parameters of the run (:class:`cellfie_caiman.params.Params`).
``provenance.json``
    What produced the results (:func:`cellfie_caiman.provenance.provenance`): this package's version, the model's
    weight file and its SHA-256, the library versions, the movie's path, shape, size and SHA-256, the parameters,
    the time and command line.
``results.nwb``
    Optional (``params.output.nwb``): the footprints and traces, with the session and subject of ``params.nwb`` and
    of an NWB movie (:func:`nwb_session`).
``contours.png``, ``probability.png``, ``traces.png``, ``segmentation.gif``
    Pictures (``params.output.pictures``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_path
from .params import NWBParams, Params

logger = logging.getLogger(__name__)

__all__ = ["OUTPUT_FILES", "prepare_out_dir", "write_summary_images", "write_traces_csv"]

#: Every file :func:`cellfie_caiman.pipeline.run` may write, by role.
OUTPUT_FILES = {
    "results": "results.hdf5",
    "rois": "rois.json",
    "masks": "masks.npz",
    "traces": "traces.csv",
    "params": "params.json",
    "provenance": "provenance.json",
    "nwb": "results.nwb",
    "contours": "contours.png",
    "probability": "probability.png",
    "traces_picture": "traces.png",
    "gif": "segmentation.gif",
}


def prepare_out_dir(out_dir: str | os.PathLike, overwrite: bool, create: bool = True,
                    option: str = "overwrite=True") -> Path:
    """Create ``out_dir``, or refuse an existing non-empty one unless ``overwrite``.

    The one rule for output folders: :func:`cellfie_caiman.pipeline.run` applies it, and the command line before
    it imports TensorFlow, so that a refusal comes at once.

    Parameters
    ----------
    out_dir : path
    overwrite : bool
        Accept a non-empty folder.
    create : bool
        False: only check, so that a command can refuse before its work and create the folder only when it has
        something to write (a failure in between then leaves no empty folder behind).
    option : str
        How the caller's user asks to overwrite, named in the error (``'--overwrite'`` on the command line).

    Returns
    -------
    Path
        ``out_dir``, user expanded.

    Raises
    ------
    FileExistsError
        ``out_dir`` is a file, or a non-empty folder and ``overwrite`` is False.
    NotADirectoryError
        A part of the path above ``out_dir`` is a file.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: output folder is not empty; use {option} to replace its results")
    above = next((p for p in out.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise NotADirectoryError(f"{out}: cannot create the output folder, {above} is a file")
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def _best_overlap_scores(masks: np.ndarray, seeds: np.ndarray, seed_scores: np.ndarray) -> np.ndarray:
    """For each mask, the score of the seed it overlaps most (IoU); NaN when it overlaps none."""
    from .masks import best_overlap, sparse_rows

    out = np.full(len(masks), np.nan)
    if len(masks) == 0 or len(seeds) == 0:
        return out
    which, _ = best_overlap(sparse_rows(masks.reshape(len(masks), -1)), sparse_rows(seeds.reshape(len(seeds), -1)))
    out[which >= 0] = np.asarray(seed_scores, dtype=np.float64)[which[which >= 0]]
    return out


def write_traces_csv(path: str | os.PathLike, traces: np.ndarray, fr: float, names: list[str] | None = None) -> Path:
    """Write traces (K, T) as CSV: ``frame``, ``time_s`` (frame / fr) and one column per trace."""
    traces = np.asarray(traces, dtype=np.float64).reshape(-1, np.shape(traces)[-1] if np.ndim(traces) else 0)
    k, t = traces.shape
    names = names or [f"roi_{i}" for i in range(k)]
    table = np.column_stack([np.arange(t), np.arange(t) / float(fr), traces.T])
    path = Path(path)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=",".join(["frame", "time_s", *names]), comments="",
                   fmt=["%d", "%.6f"] + ["%.7g"] * k)
    return path


def write_summary_images(summary, out_dir: str | os.PathLike, *, pictures: bool = True,
                         batch_frames: int | None = None) -> dict[str, Path]:
    """Write each summary image as a float32 TIFF (``<name>.tif``) and, with ``pictures``, a PNG (``<name>.png``).

    Parameters
    ----------
    summary : SummaryImages
        (corr, pnr, std, mean, median, max), each (rows, cols).
    out_dir : path
        Folder (created if needed).
    batch_frames : int or None
        The ``batch_frames`` the images were computed with: the TIFF metadata and the PNG titles say that each image
        is the maximum over batches of that many frames (None: the whole movie).

    Returns
    -------
    dict of name -> path of every file written.

    Notes
    -----
    The files are written in a hidden folder and moved into ``out_dir`` together at the end; summary images of an
    earlier call that this one did not write (a PNG, an optional image) are then removed, so that the folder never
    holds a mix of two movies' images. Other files in ``out_dir`` are left alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with staged(out) as stage:
        written = _write_summary_files(summary, stage, pictures=pictures, batch_frames=batch_frames)
        files = {}
        for name, path in written.items():
            os.replace(path, out / name)
            files[name] = out / name
    for name in _summary_file_names(summary) - set(files):
        if (out / name).is_file():
            (out / name).unlink()
            logger.info("removed stale %s from an earlier run", out / name)
    return files


def _summary_file_names(summary) -> set[str]:
    """Every file name :func:`write_summary_images` may write, for any summary image."""
    names = set(summary._fields) | set(_SUMMARY_TITLES)
    return {f"{name}.{ext}" for name in names for ext in ("tif", "png")}


def _write_summary_files(summary, folder: Path, *, pictures: bool, batch_frames: int | None) -> dict[str, Path]:
    """The TIFF (and, with ``pictures``, PNG) of each computed summary image in ``folder``; returns them by name.
    ``pnr_filtered``'s TIFF metadata (``filter_diameter_px``) and PNG title say the soma diameter it was computed
    for, when ``summary`` records it (``SummaryImages.filter_diameter``)."""
    import tifffile

    files = {}
    over = "the whole movie" if batch_frames is None else f"maximum over {batch_frames}-frame batches"
    filtered_for = getattr(summary, "filter_diameter", None)
    for name, image in zip(summary._fields, summary, strict=True):
        if image is None:  # an optional image that was not computed
            continue
        image = np.asarray(image, dtype=np.float32)
        metadata = {"summary_image": name, "over": over}
        soma = ""
        if name == "pnr_filtered" and filtered_for is not None:
            metadata["filter_diameter_px"] = float(filtered_for)
            soma = f" for somata of {filtered_for:g} px"
        with atomic_path(folder / f"{name}.tif") as tmp:
            tifffile.imwrite(tmp, image, photometric="minisblack", metadata=metadata)
        files[f"{name}.tif"] = folder / f"{name}.tif"
        if pictures:
            title = f"{_SUMMARY_TITLES.get(name, name)} image{soma}" + ("" if batch_frames is None else f" ({over})")
            files[f"{name}.png"] = _summary_png(image, title, folder / f"{name}.png",
                                                _SUMMARY_UNITS.get(name, "movie units"))
    return files


_SUMMARY_TITLES = {"corr": "local correlation", "pnr": "peak-to-noise ratio",
                   "pnr_filtered": "peak-to-noise ratio of the soma-filtered movie", "std": "standard deviation",
                   "mean": "mean", "median": "median", "max": "maximum"}

#: What the values of each summary image are: the label of its colour bar.
_SUMMARY_UNITS = {"corr": "correlation with the 8 neighbours (unitless)",
                  "pnr": "peak / noise (unitless)",
                  "pnr_filtered": "peak / noise (unitless)",
                  "std": "standard deviation (movie units)",
                  "mean": "fluorescence (movie units)",
                  "median": "fluorescence (movie units)",
                  "max": "fluorescence (movie units)"}


def _summary_png(image: np.ndarray, title: str, path: Path, unit: str) -> Path:
    """One summary image in grey with its colour bar labelled ``unit``, written to ``path``.

    Parameters
    ----------
    image : ndarray, float, shape (rows, cols)
    title : str
        Title above the image.
    path : Path
        Output picture (PNG).
    unit : str
        Label of the colour bar: what the values are and their unit.
    """
    from . import report

    rows, cols = image.shape
    fig = report._figure(6.0, max(2.5, 6.0 * rows / cols * 0.9))
    ax = fig.add_subplot(1, 1, 1)
    vmin, vmax = report._stretch(image)
    im = ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046 * min(1.0, rows / cols + 0.2), pad=0.02)
    cbar.set_label(unit)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    return report._save(fig, path)


def write_npz(path: Path, **arrays) -> Path:
    """``np.savez_compressed``'s format (``np.load`` reads it), at the fastest deflate level.

    The mask stacks are dense (K, rows, cols) and almost all zeros: on a 1280 x 1280 field with 1297 masks, level 1
    wrote the file in 13 s (35 MB) against 30 s (17 MB) at ``savez_compressed``'s level 6.
    """
    import zipfile

    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, value in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return path


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A hidden folder in ``out`` for a run to write its files into before :func:`publish` moves them to ``out``.

    The folder goes when the block ends, with anything left in it: a run that fails or is interrupted before
    :func:`publish` leaves ``out`` with the files it had, never a mix of an earlier run's files and this one's.
    """
    stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(out: Path, files: dict[str, Path]) -> dict[str, Path]:
    """Move the files of a run (by role, written in a :func:`staged` folder) into ``out``, each replacing an earlier
    one of its name in one rename, then remove the earlier run's outputs this run did not write; returns the files
    by role at their place in ``out``."""
    moved = {}
    for role, path in files.items():
        moved[role] = out / Path(path).name
        os.replace(path, moved[role])
        logger.info("wrote %s", moved[role])
    remove_stale(out, moved)
    return moved


def remove_stale(out: Path, written: dict[str, Path]) -> None:
    """Remove our own outputs of an earlier run that this run did not write (they would no longer match)."""
    for role, name in OUTPUT_FILES.items():
        if role not in written and (out / name).is_file():
            (out / name).unlink()
            logger.info("removed stale %s from an earlier run", out / name)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (inf, -inf, NaN) in it, at any depth, replaced by None.

    Python's ``json`` writes them as ``Infinity`` and ``NaN``, which are not JSON: strict parsers (JavaScript, jq,
    R's jsonlite, Go) refuse the whole file. None is written as ``null``, JSON's "no value".

    Parameters
    ----------
    value : any JSON-ready value
        Dicts, lists and tuples are copied (tuples as lists); other values are returned as they are.

    Returns
    -------
    any
    """
    if isinstance(value, float):  # numpy's float64 included
        return value if np.isfinite(value) else None
    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def json_text(record: Any, indent: int | None = None) -> str:
    """``record`` as strict JSON text: non-finite floats as ``null`` (:func:`json_safe`), never ``Infinity`` or
    ``NaN``."""
    import json

    return json.dumps(json_safe(record), indent=indent, allow_nan=False)


def write_json(path: Path, record: dict) -> Path:
    """``record`` as indented, strict JSON at ``path``, atomically: inf, -inf and NaN are written as ``null``
    (:func:`json_safe`)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json_text(record, indent=2) + "\n")
    return path


def nwb_session_of(source: Path | None, dataset: str | None = None) -> dict[str, Any]:
    """The session of the NWB movie file ``source``, for the results' NWB file: ``session_start_time`` (the
    recording's, where results.nwb would otherwise say when it was written), ``subject`` (a dict of
    ``pynwb.file.Subject``'s arguments) where the file has one, the :data:`NWB_PEOPLE` it names (``experimenter``
    and ``keywords`` as lists of text) and the movie's imaging plane's ``indicator``,
    ``location``, ``excitation_lambda`` and (one optical channel) ``emission_lambda`` (nm): the keyword arguments of
    :meth:`Estimates.to_nwb`. ``{}`` for other files or None.

    The imaging plane is the file's only one, or the one of the series whose data were read (``dataset``, its path
    in the file, e.g. ``acquisition/TwoPhotonSeries/data``; a motion-corrected stack's ``corrected`` series takes
    its ``original``'s plane); with several planes and no ``dataset``, none (not a guess).

    A file pynwb cannot read gives ``{}`` and a warning (the movie itself may still have been read, with h5py).
    """
    if source is None or Path(source).suffix.lower() != ".nwb":
        return {}
    try:
        import pynwb
    except ImportError:  # Estimates.to_nwb says what to install
        return {}
    try:
        plane_name = _imaging_plane_of(Path(source), dataset) if dataset else None
        with pynwb.NWBHDF5IO(str(source), "r") as io:
            nwb = io.read()
            session: dict[str, Any] = {"session_start_time": nwb.session_start_time, **_people_of(nwb)}
            if nwb.subject is not None:
                session["subject"] = dict(nwb.subject.fields)
            if plane_name not in nwb.imaging_planes and len(nwb.imaging_planes) == 1:
                plane_name = next(iter(nwb.imaging_planes))  # the movie's plane, unambiguous
            if plane_name in nwb.imaging_planes:  # not the writer's placeholders
                plane = nwb.imaging_planes[plane_name]
                session.update(indicator=plane.indicator, location=plane.location,
                               excitation_lambda=float(plane.excitation_lambda))
                if len(plane.optical_channel) == 1:
                    session["emission_lambda"] = float(plane.optical_channel[0].emission_lambda)
    except Exception as exc:  # noqa: BLE001 - metadata only: the results are written without it
        warnings.warn(f"{source}: pynwb cannot read its session ({exc}); results.nwb gets no subject and the time "
                      "of writing as session_start_time", stacklevel=2)
        return {}
    return session


def _imaging_plane_of(path: Path, dataset: str) -> str | None:
    """The name of the imaging plane (``general/optophysiology/<name>``) that the series holding ``dataset`` links
    to (for a CorrectedImageStack's ``corrected`` series: its ``original``'s), None where there is none."""
    import h5py

    from .io.hdf5 import _h5_group  # None for a link that leads nowhere

    series = dataset.strip("/").rsplit("/", 1)[0]
    with h5py.File(path, "r") as f:
        links = [f"{series}/imaging_plane"]
        if series.endswith("/corrected"):
            links.append(f"{series.rsplit('/', 1)[0]}/original/imaging_plane")
        planes = _h5_group(f, "general/optophysiology")
        for target in (_h5_group(f, link) for link in links):
            if target is not None and planes is not None:
                return next((name for name, group in planes.items() if group == target), None)
    return None


def _people_of(nwb) -> dict[str, Any]:
    """The :data:`NWB_PEOPLE` an open ``pynwb.NWBFile`` names (lists of text for ``experimenter`` and ``keywords``)."""
    people: dict[str, Any] = {}
    for name in NWB_PEOPLE:
        value = getattr(nwb, name, None)
        if value is None or (not isinstance(value, str) and len(value) == 0):
            continue
        if name in ("experimenter", "keywords"):
            value = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(np.asarray(value, object))]
        people[name] = value
    return people


#: What DANDI requires of an NWB file's subject (``age`` or ``date_of_birth``).
DANDI_SUBJECT = ("subject_id", "species", "sex", "age")
#: Who recorded an NWB session, where, and what for: NWB's best practice wants the first three.
NWB_PEOPLE = ("experimenter", "lab", "institution", "experiment_description", "keywords")
#: A name as NWB and DANDI want it: ``'Last, First'`` (DANDI's pattern, dandischema's ``NAME_PATTERN``).
_NAME = re.compile(r"^([\w\s\-\.']+),\s+([\w\s\-\.']+)$")


def nwb_session(settings: NWBParams, source: str | os.PathLike | None, dataset: str | None = None) -> dict[str, Any]:
    """The session of ``results.nwb``: the keyword arguments of :meth:`Estimates.to_nwb` that ``settings`` (the
    ``nwb`` parameters) give, the NWB movie ``source``'s own (:func:`nwb_session_of`) for those they leave None.
    The subject is merged field by field. A ``UserWarning`` names the fields DANDI requires that the subject lacks
    (:data:`DANDI_SUBJECT`), and the settings that give them.

    Parameters
    ----------
    settings : NWBParams
    source : path or None
        The movie file.
    dataset : str or None
        Path in ``source`` of the data read (:func:`movie_dataset`): whose imaging plane to describe.

    Returns
    -------
    dict
        ``subject`` (a dict of ``pynwb.file.Subject``'s arguments), ``session_start_time`` (datetime),
        ``session_description``, :data:`NWB_PEOPLE` (``experimenter`` and ``keywords`` lists of text),
        ``indicator``, ``location``, ``excitation_lambda``, ``emission_lambda`` (nm): those known. A
        ``UserWarning`` also names each experimenter not written ``'Last, First'`` (NWB's and DANDI's form).
    """
    session = nwb_session_of(None if source is None else Path(source), dataset)
    given = settings.session()
    subject = {**session.pop("subject", {}), **given.pop("subject", {})}
    replaced = sorted(k for k in given if k in session and session[k] != given[k])
    if replaced:
        logger.info("results.nwb: %s as the parameters say, not as the movie file records", ", ".join(replaced))
    session.update(given)
    if subject:
        session["subject"] = subject
    _announce_missing_subject(subject)
    _announce_odd_names(session.get("experimenter", []))
    return session


def _announce_odd_names(experimenters: list[str]) -> None:
    """Warn naming the experimenters not written ``'Last, First'``: DANDI's form, which a YAML flow list such as
    ``[Doe, Jane]`` (two names) breaks."""
    odd = [name for name in experimenters if not _NAME.match(name)]
    if odd:
        warnings.warn(f"results.nwb: experimenter {', '.join(repr(n) for n in odd)} not written 'Last, First' as NWB "
                      "and DANDI want it (nwb.experimenter: a list of names, in YAML ['Doe, Jane'] with quotes)",
                      UserWarning, stacklevel=3)


def _announce_missing_subject(subject: dict[str, Any]) -> None:
    """Warn when ``subject`` lacks a field DANDI requires, naming the ``nwb`` settings that give it."""
    missing = [k for k in DANDI_SUBJECT if not subject.get(k) and not (k == "age" and subject.get("date_of_birth"))]
    if not missing:
        return
    what = "results.nwb gets no subject" if not subject else f"results.nwb's subject has no {', '.join(missing)}"
    warnings.warn(f"{what}, which DANDI refuses: set {', '.join('nwb.' + k for k in missing)} in the parameter file "
                  "(--params)", UserWarning, stacklevel=3)


def movie_file(movie) -> Path | None:
    """The absolute path of the file ``movie`` (a :class:`cellfie_caiman.io.Movie`) was read from; None for an
    array."""
    source = Path(str(movie.source))
    return source.resolve() if source.exists() else None


def movie_dataset(movie) -> str | None:
    """The path of the dataset that ``movie`` (a :class:`cellfie_caiman.io.Movie`) reads in its HDF5 or NWB file;
    None for other sources."""
    dataset = getattr(getattr(movie, "_reader", None), "dataset", None)
    return dataset if isinstance(dataset, str) else None


def save_results(out: Path, params: Params, movie, init, summary, est, all_masks, final, accepted, accepted_idx, *,
                 session: dict[str, Any] | None = None, published: Path | None = None):
    """The result files of a run in ``out`` (:data:`OUTPUT_FILES`: results, traces, NWB, rois, masks, params); returns
    them by role. ``est`` None (no refinement): only rois, masks and params. ``session``: ``results.nwb``'s session
    (:func:`nwb_session`; None: worked out here). ``published``: the folder the files end up in when ``out`` is a
    :func:`staged` folder (None: ``out``); ``results.nwb`` names the movie file by its path relative to it."""
    from .rois import write_rois

    files: dict[str, Path] = {}
    source = movie_file(movie)
    if est is not None:
        with atomic_path(out / OUTPUT_FILES["results"]) as tmp:
            est.save(str(tmp), mmap_file=source)
        files["results"] = out / OUTPUT_FILES["results"]
        traces = np.asarray(est.C)[accepted_idx] if len(accepted_idx) else np.zeros((0, movie.n_frames))
        files["traces"] = write_traces_csv(out / OUTPUT_FILES["traces"], traces, params.data.fr)
        if params.output.nwb:
            session = nwb_session(params.nwb, source, movie_dataset(movie)) if session is None else session
            with atomic_path(out / OUTPUT_FILES["nwb"]) as tmp:
                est.to_nwb(str(tmp), fr=params.data.fr, raw_data_file=str(source) if source else None,
                           raw_data_dataset=movie_dataset(movie), relative_to=published or out, **session)
            files["nwb"] = out / OUTPUT_FILES["nwb"]
    with atomic_path(out / OUTPUT_FILES["rois"]) as tmp:
        write_rois(tmp, final)
    files["rois"] = out / OUTPUT_FILES["rois"]
    files["masks"] = write_npz(
        out / OUTPUT_FILES["masks"], masks=final, component=np.asarray(accepted_idx, dtype=np.int64),
        all_masks=all_masks, accepted=accepted, detected_masks=np.asarray(init.masks, dtype=bool),
        detection_scores=np.asarray(init.scores, dtype=np.float64),
        detected_centers=np.asarray(init.centers, dtype=np.float64),
        detection_diameter=np.float64(np.nan if init.neuron_diameter is None else init.neuron_diameter),
        prob_map=np.asarray(init.prob_map, dtype=np.float32), corr=np.asarray(summary.corr, dtype=np.float32))
    with atomic_path(out / OUTPUT_FILES["params"]) as tmp:
        params.save(tmp)
    files["params"] = out / OUTPUT_FILES["params"]
    return files


def save_pictures(out: Path, params: Params, movie, init, summary, est, all_masks, final, accepted, accepted_idx,
                   gt_masks, progress: bool = False):
    """The pictures of a run in ``out`` (contours, probability map, traces, GIF); returns them by role."""
    from tqdm.auto import tqdm

    from . import report

    detected = np.asarray(init.masks, dtype=bool).reshape((-1,) + tuple(movie.frame_shape))
    cnn = None if est is None else getattr(est, "cnn_preds", None)
    if cnn is not None and len(cnn) == len(all_masks):  # the scores quality control used (0: no detection overlaps)
        scores = np.where(np.asarray(cnn, dtype=np.float64) > 0, cnn, np.nan)
    else:
        scores = _best_overlap_scores(all_masks, detected, np.asarray(init.scores))
    if est is None:
        title = f"{len(detected)} neurons detected"
    else:
        title = f"{int(accepted.sum())} accepted of {len(all_masks)} refined components ({len(detected)} detected)"
    lo = float(params.detection.min_score)
    score_range = (lo, 1.0) if 0.0 <= lo < 0.95 else None  # scores below min_score were dropped: use the colours
    jobs = {
        "contours": lambda path: report.plot_contours(summary.corr, all_masks, path, scores=scores, accepted=accepted,
                                                      gt_masks=gt_masks, title=title, score_range=score_range),
        "probability": lambda path: report.plot_probability(init.prob_map, path, masks=detected,
                                                            title=f"neuron probability ({len(detected)} detected)"),
    }
    if est is not None and len(all_masks):
        # the accepted components, named as in traces.csv; if none passed quality control, the rejected ones
        shown = accepted_idx if len(accepted_idx) else np.arange(len(all_masks))
        labels = ([f"roi_{i}" for i in range(len(shown))] if len(accepted_idx)
                  else [f"component {k} (rejected)" for k in shown])
        C = np.asarray(est.C)[shown]
        yra = getattr(est, "YrA", None)
        raw = None if yra is None else C + np.asarray(yra)[shown]
        snr = getattr(est, "SNR_comp", None)
        snr = None if snr is None else np.asarray(snr, dtype=np.float64)[shown]
        what = None if len(accepted_idx) else "no component passed quality control: the rejected ones"
        jobs["traces_picture"] = lambda path: report.plot_traces(C, path, fr=params.data.fr, raw=raw, snr=snr,
                                                                 labels=labels, title=what)
    jobs["gif"] = lambda path: report.save_gif(movie, final, path, n_frames=params.output.gif_frames,
                                               fps=min(30.0, max(5.0, params.data.fr)))
    files: dict[str, Path] = {}
    for role, job in tqdm(jobs.items(), desc="pictures", unit="picture", disable=not progress):
        files[role] = job(out / OUTPUT_FILES[role])
    return files
