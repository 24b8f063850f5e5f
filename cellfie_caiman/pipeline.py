"""The whole run: load -> summary images -> networks -> seeded CNMF -> evaluation -> results and pictures.

:func:`run` is what ``cellfie-caiman run`` calls. Every output file is written atomically (a crash or Ctrl-C never
leaves a half-written result) and an existing non-empty output folder is only written into with ``overwrite=True``.

Outputs in ``out_dir``: :mod:`cellfie_caiman.outputs` (:data:`~cellfie_caiman.outputs.OUTPUT_FILES`).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_path
from .masks import footprints_to_masks, take_masks
from .outputs import (
    OUTPUT_FILES,
    movie_dataset,
    movie_file,
    nwb_session,
    prepare_out_dir,
    publish,
    save_pictures,
    save_results,
    staged,
    write_json,
)
from .params import Params
from .provenance import provenance

logger = logging.getLogger(__name__)

__all__ = ["RunResult", "run", "example", "evaluate_files", "as_params"]


#: Order and names of the steps timed in :attr:`RunResult.timings`.
STEPS = ("load", "summary", "detect", "refine", "evaluate", "save", "pictures")


@dataclass
class RunResult:
    """What a run found, how long it took and how well it scored.

    Attributes
    ----------
    out_dir : Path
        Folder holding the results.
    source : str
        The movie.
    shape : (int, int, int)
        (frames, rows, cols).
    backend : str
        Refinement backend that ran (``'caiman'``, ``'builtin'``) or ``'none'``.
    n_detected : int
        Neurons found by the networks.
    n_components : int or None
        Components after refinement (None when refinement was skipped).
    n_accepted : int
        Components that passed quality control (the detected ones when refinement was skipped): the ROIs written.
    timings : dict of str -> float
        Seconds per step (see :data:`STEPS`), in order.
    scores : dict of str -> dict of str -> MatchResult
        With ground truth: ``scores[stage][rule]`` for stage ``'detected'`` (before refinement) and ``'refined'``
        (accepted components), rule ``'caiman'`` and ``'iou'``.
    n_gt : int or None
        Number of ground-truth ROIs.
    files : dict of str -> Path
        Files written, by role (keys of :data:`OUTPUT_FILES`).
    cpu_timings : dict of str -> float
        CPU seconds per step, summed over the process's threads (child processes, e.g. CaImAn's workers, not
        included): on a shared machine, less sensitive to other load than ``timings``.
    estimates : Estimates or None
        The refined components (CaImAn's field names), None when refinement was skipped.
    initialization : Initialization or None
        The networks' output (masks, scores, prob_map, Ain, summary images).
    n_accepted_by_score : int or None
        Of the accepted components, those that passed quality control on the networks' score alone (neither their
        trace's SNR nor their space correlation did: little activity in this recording); None without scores.
    """

    out_dir: Path
    source: str
    shape: tuple[int, int, int]
    backend: str
    n_detected: int
    n_components: int | None
    n_accepted: int
    timings: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_gt: int | None = None
    files: dict[str, Path] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    estimates: Any = field(default=None, repr=False)
    initialization: Any = field(default=None, repr=False)
    n_accepted_by_score: int | None = None

    @property
    def total_time(self) -> float:
        """Seconds for the whole run."""
        return float(sum(self.timings.values()))

    def f1(self, stage: str = "refined", rule: str = "caiman") -> float | None:
        """F1 score against the ground truth (None without ground truth or for a stage that did not run)."""
        try:
            return float(self.scores[stage][rule].f1)
        except KeyError:
            return None

    def summary(self) -> str:
        """A few lines for people: what was found, how well, how fast, where it is."""
        t, r, c = self.shape
        lines = [f"movie: {self.source} ({t} frames of {r}x{c})"]
        diameter = getattr(self.initialization, "neuron_diameter", None)
        if diameter is not None:
            lines.append(f"detected for somata of {diameter:.1f} px")
        if self.n_components is None:
            lines.append(f"neurons: {self.n_detected} detected (refinement skipped)")
        else:
            by_score = (f" ({self.n_accepted_by_score} on the networks' score alone: little activity here)"
                        if self.n_accepted_by_score else "")
            lines.append(f"neurons: {self.n_detected} detected, {self.n_components} after refinement ({self.backend}),"
                         f" {self.n_accepted} accepted{by_score}")
        if self.scores:
            head = f"against {self.n_gt} ground-truth ROIs:"
            lines.append(f"{head:<38}TP    FP    FN  precision  recall     F1")
            for stage, by_rule in self.scores.items():
                for rule, m in by_rule.items():
                    name = f"{stage} ({_RULE_NAMES.get(rule, rule)})"
                    lines.append(f"  {name:<34}{m.tp:>4}  {m.fp:>4}  {m.fn:>4}  {m.precision:9.3f}  {m.recall:6.3f}"
                                 f"  {m.f1:5.3f}")
        steps = ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items())
        lines.append(f"time (s): {steps}; total {self.total_time:.1f}")
        lines.append(f"results in {self.out_dir}")
        return "\n".join(lines)

    __str__ = summary


_RULE_NAMES = {"caiman": "CaImAn rule", "iou": "IoU>=0.5 rule"}


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------

#: A :class:`Params` from a Params, a dict of groups, a JSON/YAML file path, or None (the defaults).
as_params = Params.coerce


class _Timer:
    """Times named steps (wall clock, and CPU time of all the process's threads) into dicts and logs each."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        logger.info("%s ...", name)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
        logger.info("%s done in %.2f s (CPU %.2f s)", name, self.timings[name], self.cpu[name])


def _field(est, name: str, default=None):
    value = getattr(est, name, default)
    return default if value is None else value


def _accepted_index(est, n_components: int) -> np.ndarray:
    """Indices of accepted components: ``idx_components`` when quality control ran, else all."""
    idx = getattr(est, "idx_components", None)
    if idx is None:
        return np.arange(n_components)
    return np.asarray(idx, dtype=int).reshape(-1)


def _check_model(model: Any) -> Any:
    """``detection.model`` as params.json records it: a shipped model's name as it is, a weight file's path made
    absolute (so that params.json runs from any folder); a loaded model as it is. Raises (``ValueError`` for an unknown
    name, ``FileNotFoundError`` for a missing file) before the movie is read, when it names no weights."""
    from .models import DetectionModel, list_models, model_file

    if isinstance(model, DetectionModel):
        return model
    path = model_file(model)
    return model if os.fspath(model) in list_models() else str(path)


def _resolve_backend(backend: str) -> str:
    """The backend that ``refine.backend`` (checked by ``Params.coerce``) names on this machine.

    Raises ImportError (saying how to install CaImAn, or to use the builtin backend) for ``'caiman'`` without
    CaImAn, before any work is done.
    """
    from .cnmf.caiman_adapter import INSTALL_HINT, caiman_available

    if backend == "caiman" and not caiman_available():
        raise ImportError(f"refine.backend is 'caiman': {INSTALL_HINT} (On the command line: --backend builtin.)")
    if backend != "auto":
        return backend
    return "caiman" if caiman_available() else "builtin"


# ----------------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------------

RULES = ("caiman", "iou")


def score(gt_masks: np.ndarray, pred_masks: np.ndarray) -> dict[str, Any]:
    """Match predicted ROIs to ground truth with both rules: ``{'caiman': MatchResult, 'iou': MatchResult}``."""
    from .evaluate import match_rois

    dims = tuple(gt_masks.shape[1:])
    return {rule: match_rois(gt_masks, pred_masks, rule=rule, dims=dims) for rule in RULES}


def evaluate_files(pred: str | os.PathLike, gt: str | os.PathLike,
                   shape: tuple[int, int] | None = None) -> dict[str, Any]:
    """Score an ROI file against a ground-truth ROI file with both rules.

    Parameters
    ----------
    pred, gt : path
        ROI files in any format :func:`cellfie_caiman.rois.read_rois` reads.
    shape : (rows, cols), optional
        Frame shape. When omitted it is taken from whichever file records it (mask arrays, CaImAn HDF5, NWB; two
        files that record different frames are an error), else from the extent of the ROIs of the files that do not
        (neurofinder JSON, ImageJ; the largest of them): every ROI is read whole, so the scores do not depend on the
        frame size.

    Returns
    -------
    dict ``{'caiman': MatchResult, 'iou': MatchResult}``.
    """
    from .rois import file_extent, read_rois

    paths = [Path(pred), Path(gt)]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such ROI file")
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        masks = [np.asarray(read_rois(p, shape), dtype=bool) for p in paths]
    else:
        masks = [None, None]
        for k, p in enumerate(paths):
            with contextlib.suppress(ValueError):  # formats without a frame size need one
                masks[k] = np.asarray(read_rois(p, None), dtype=bool)
        recorded = [m.shape[1:] for m in masks if m is not None]
        if len(recorded) == 2 and recorded[0] != recorded[1]:
            raise ValueError(f"{pred} records frames of {recorded[0]}, {gt} of {recorded[1]}: ROIs of different "
                             "fields cannot be scored against each other")
        extents = [e for p, m in zip(paths, masks, strict=True) if m is None and (e := file_extent(p))]
        if any(m is None for m in masks) and not (recorded or extents):
            missing = next(p for p, m in zip(paths, masks, strict=True) if m is None)
            raise ValueError(f"{missing}: this ROI file does not record the frame size; give --shape ROWS COLS")
        # the frame a file records, else the extent of the ROIs of both files (every ROI read whole)
        common = recorded[0] if recorded else (max(e[0] for e in extents), max(e[1] for e in extents))
        for k, p in enumerate(paths):
            if masks[k] is None:
                masks[k] = np.asarray(read_rois(p, common), dtype=bool)
    if masks[0].shape[1:] != masks[1].shape[1:]:
        raise ValueError(f"{pred} gives masks of {masks[0].shape[1:]}, {gt} of {masks[1].shape[1:]}")
    return score(masks[1], masks[0])


# ----------------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------------

def run(source, out_dir: str | os.PathLike, params: Params | dict | str | os.PathLike | None = None, *,
        gt: str | os.PathLike | np.ndarray | None = None, overwrite: bool = False,
        progress: bool = True) -> RunResult:
    """Find neurons in a movie, extract their traces, and write results and pictures to ``out_dir``.

    Steps: :func:`cellfie_caiman.io.load_movie` -> :func:`cellfie_caiman.summary.summary_images` ->
    :func:`cellfie_caiman.initialize.initialize` (the networks) -> :func:`cellfie_caiman.cnmf.refine` (seeded
    CNMF and quality control; skipped with ``params.refine.backend == 'none'``) -> scoring against ``gt`` with
    :func:`cellfie_caiman.evaluate.match_rois` (CaImAn's rule and the IoU rule, before and after refinement) ->
    outputs (module docstring).

    Parameters
    ----------
    source : path, ndarray (T, rows, cols) or Movie
        Anything :func:`cellfie_caiman.io.load_movie` opens.
    out_dir : path
        Output folder; created if needed.
    params : Params, dict of groups, path of a JSON/YAML file, or None (defaults)
    gt : path or ndarray (N, rows, cols) bool, optional
        Ground-truth ROIs (any format :func:`cellfie_caiman.rois.read_rois` reads).
    overwrite : bool
        Write into an existing non-empty ``out_dir`` (our files in it are replaced; others are left alone). The
        files are written in a hidden folder inside ``out_dir`` and moved into place together at the end: a run
        that fails or is interrupted leaves the earlier run's files as they were.
    progress : bool
        Show progress bars.

    Returns
    -------
    RunResult
        Counts, seconds per step, scores and the files written (``result.summary()`` says them for people).

    Raises
    ------
    cellfie_caiman.io.MovieError
        The movie cannot be read.
    FileExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    FileNotFoundError, ValueError
        Missing ground-truth file, bad parameters.
    ImportError
        ``backend='caiman'`` without CaImAn (raised at once, before the movie is read).

    Warns
    -----
    UserWarning
        Before the movie is read: ``data.neuron_diameter`` and ``data.pixel_size`` disagree (the diameter is used).
        Before the summary images: no frame rate is given or recorded (30 Hz is assumed); with ``output.nwb``, the
        subject of ``results.nwb`` lacks what DANDI requires (:func:`cellfie_caiman.outputs.nwb_session`).
    """
    from .io import load_movie

    params = copy.deepcopy(as_params(params))  # checked; a copy: never change the caller's object
    params.whole_numbers_as_int()  # a Params set by hand may hold gif_frames=20.0: a count from here on
    params.detection.model = _check_model(params.detection.model)
    backend = _resolve_backend(params.refine.backend)
    params.refine.backend = backend  # params.json records what ran ('auto' could mean another backend elsewhere)
    timer = _Timer()
    with timer("load"):
        # refused before anything is read or said about the movie; created when there is something to write
        out = prepare_out_dir(out_dir, overwrite, create=False)
        diameter = params.data.diameter_pixels(warn=True)  # said once, before the movie is read
        movie = load_movie(source, var_name=params.data.var_name)
        gt_masks = _load_gt(gt, movie.frame_shape)
        # params.json records the rate used; detection alone does not depend on it (only the GIF's speed)
        params.data.fr = params.data.frame_rate(movie, warn=backend != "none")
        # results.nwb's session: what it lacks for DANDI is said now, not after the work
        session = (nwb_session(params.nwb, movie_file(movie), movie_dataset(movie))
                   if params.output.nwb and backend != "none" else None)
    logger.info("movie %s: %d frames of %dx%d", movie.source, *movie.shape)

    from .initialize import initialize, model_summary

    det = params.detection
    with timer("summary"):
        summary = model_summary(movie, model=det.model, neuron_diameter=diameter,
                                batch_frames=params.summary.batch_frames, progress=progress)
    with timer("detect"):
        init = initialize(summary, model=det.model, neuron_diameter=diameter,
                          min_score=det.min_score, prob_threshold=det.prob_threshold, max_overlap=det.max_overlap,
                          tta=det.tta, progress=progress)
    detected = np.asarray(init.masks, dtype=bool).reshape((-1,) + tuple(movie.frame_shape))
    logger.info("detected %d neurons", len(detected))

    est = None
    if backend != "none" and len(detected) == 0:
        logger.warning("no neuron detected: refinement skipped")
        backend = "none"
    if backend != "none":
        from .cnmf import refine

        with timer("refine"):
            est = refine(movie, init, params=params, backend=backend, progress=progress)
            if getattr(est, "Cn", None) is None:
                with contextlib.suppress(AttributeError):
                    est.Cn = np.asarray(summary.corr)
            all_masks = footprints_to_masks(est.A, movie.frame_shape)
        accepted_idx = _accepted_index(est, all_masks.shape[0])
    else:
        all_masks = detected
        accepted_idx = np.arange(len(detected))
    accepted = np.zeros(len(all_masks), bool)
    accepted[accepted_idx] = True
    every = np.array_equal(accepted_idx, np.arange(len(all_masks)))
    final = all_masks if every else take_masks(all_masks, accepted_idx)  # not a dense copy: the field may be large

    scores = {}
    if gt_masks is not None:
        with timer("evaluate"):
            scores["detected"] = score(gt_masks, detected)
            if est is not None:
                scores["refined"] = score(gt_masks, final)

    out.mkdir(parents=True, exist_ok=True)
    with staged(out) as stage:  # the earlier run's files stay until all of this run's are written
        with timer("save"):
            record = provenance(model=det.model, movie=movie, backend=backend, params=params)
            if est is not None:
                est.provenance = record  # results.hdf5 carries it too (a root attribute, which CaImAn ignores)
            files = save_results(stage, params, movie, init, summary, est, all_masks, final, accepted, accepted_idx,
                                 session=session, published=out)
            files["provenance"] = write_json(stage / OUTPUT_FILES["provenance"], record)
        if params.output.pictures:
            with timer("pictures"):
                files.update(save_pictures(stage, params, movie, init, summary, est, all_masks, final, accepted,
                                            accepted_idx, gt_masks, progress))
        files = publish(out, files)

    result = RunResult(out_dir=out, source=movie.source, shape=tuple(int(s) for s in movie.shape), backend=backend,
                       n_detected=len(detected), n_components=None if est is None else len(all_masks),
                       n_accepted=len(final), timings=timer.timings, scores=scores,
                       n_gt=None if gt_masks is None else len(gt_masks), files=files, cpu_timings=timer.cpu,
                       estimates=est, initialization=init,
                       n_accepted_by_score=_accepted_by_score(est, accepted, params))
    # one line: the command line prints the whole summary on stdout, and result.summary() gives it in Python
    logger.info("run finished in %.1f s: %d neurons accepted; results in %s", result.total_time, result.n_accepted,
                out)
    return result


def _accepted_by_score(est, accepted: np.ndarray, params: Params) -> int | None:
    """Accepted components that CaImAn's rule without the scores rejects (accepted on the score alone)."""
    if est is None or getattr(est, "cnn_preds", None) is None or est.SNR_comp is None or est.r_values is None:
        return None
    from .cnmf.quality import accept

    q = params.quality
    without, _ = accept(np.asarray(est.SNR_comp), np.asarray(est.r_values), q.min_SNR, q.SNR_lowest, q.rval_thr,
                        q.rval_lowest)
    return int(np.count_nonzero(accepted) - np.count_nonzero(accepted[without]))


def _load_gt(gt, frame_shape) -> np.ndarray | None:
    if gt is None:
        return None
    if isinstance(gt, np.ndarray):
        masks = gt.astype(bool)
    else:
        from .rois import read_rois

        if not Path(gt).exists():
            raise FileNotFoundError(f"{gt}: no such ground-truth ROI file")
        masks = np.asarray(read_rois(gt, tuple(frame_shape)), dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != tuple(frame_shape):
        raise ValueError(f"ground-truth ROIs have shape {masks.shape}, expected (N, {frame_shape[0]}, "
                         f"{frame_shape[1]}) to match the movie")
    return masks


# ----------------------------------------------------------------------------------------------------------------
# the example
# ----------------------------------------------------------------------------------------------------------------

def example(out_dir: str | os.PathLike, *, n_frames: int = 1000, shape: tuple[int, int] = (128, 128),
            n_neurons: int = 40, seed: int = 0, params: Params | dict | str | os.PathLike | None = None,
            movie_format: str = "mmap", overwrite: bool = False, progress: bool = True) -> RunResult:
    """Simulate a movie with known neurons, save it, and run everything on it with its ground truth (offline).

    Writes ``out_dir/data/`` (the movie as a CaImAn memmap, or TIFF with ``movie_format='tif'``, and the true ROIs
    as ``true_rois.json``), then :func:`run` into ``out_dir``.

    Parameters
    ----------
    out_dir : path
    n_frames, shape, n_neurons, seed
        Size of the simulation (:func:`cellfie_caiman.simulate.simulate`), reproducible given ``seed``.
    params : optional
        Run parameters; the data group (frame rate, decay time, neuron diameter) is set from the simulation.
    movie_format : {'mmap', 'tif'}
    overwrite, progress
        As in :func:`run`.
    """
    from .io import save_memmap
    from .rois import write_rois
    from .simulate import simulate

    if movie_format not in ("mmap", "tif"):
        raise ValueError(f"movie_format must be 'mmap' or 'tif', got {movie_format!r}")
    params = copy.deepcopy(as_params(params))
    out = prepare_out_dir(out_dir, overwrite, create=False)  # refused before the simulation, created after it
    diameter = 12.0
    logger.info("simulating %d frames of %dx%d with %d neurons (seed %d)", n_frames, *shape, n_neurons, seed)
    # neurons firing about once a second on average: a short example still has transients in most of them
    sim = simulate(n_frames, tuple(shape), n_neurons, seed=seed, diameter=diameter, rate=1.0)
    out.mkdir(parents=True, exist_ok=True)
    params.data.fr = float(sim.fs)
    params.data.decay_time = float(sim.decay_time)
    params.data.neuron_diameter = diameter
    params.data.pixel_size = None
    data = out / "data"
    data.mkdir(exist_ok=True)
    for old in list(data.glob("example_*.mmap")) + list(data.glob("example.tif")):
        old.unlink()
    if movie_format == "mmap":
        movie_path = Path(save_memmap(sim.movie, base_name="example", directory=data))
    else:
        import tifffile

        movie_path = data / "example.tif"
        with atomic_path(movie_path) as tmp:
            tifffile.imwrite(tmp, sim.movie, photometric="minisblack")
    gt_path = data / "true_rois.json"
    with atomic_path(gt_path) as tmp:
        write_rois(tmp, sim.masks)
    logger.info("wrote the movie %s and %d true ROIs to %s", movie_path.name, len(sim.masks), gt_path)
    return run(movie_path, out, params, gt=gt_path, overwrite=True, progress=progress)
