"""Train the detection networks on annotated movies and simulated ones.

Every training field (a movie's summary images plus its manual masks) is normalised once, at a few zoom factors
(the scale augmentation). Each epoch runs ``steps_per_epoch`` updates of the region-proposal U-Net on random crops
and of the instance network on subframes centred near true neuron centres, on the U-Net's current candidate
centres (hard negatives) and at random places; crops get random 90-degree rotations, flips, per-channel gain and
noise. A held-out strip at the bottom of every field (``val_fraction`` of its rows) is never trained on: after each
epoch the whole detector runs there and the weights with the best detection F1 (``match_rois``) are kept; training
stops after ``patience`` epochs without improvement, after ``epochs``, or after ``max_minutes``.

The updates run on TensorFlow (Keras 2, or Keras 3's default backend) or on PyTorch (Keras 3 with
``KERAS_BACKEND=torch`` set before Keras is imported, e.g. on a GPU machine without TensorFlow); the weight files
are the same either way.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._checks import number
from .masks import mask_diameter
from .models import DetectionModel, ModelConfig, new_model
from .models.preprocess import check_images
from .training.annotation_check import check_annotations as annotation_check
from .training.fields import Field, _as_masks, annotated_images, checked_annotation, masks_in, prepare_field
from .training.sampling import _hard_candidates, _instance_batch, _unet_batch
from .training.simulated import blob_field, blob_movie, neuron_density, simulated_datasets, simulated_field
from .training.steps import _clone, _deterministic, _train_steps
from .training.validation import check_selection, detect_masks, selection_scores, validate

logger = logging.getLogger(__name__)

# the training fields, simulated fields and validation scores are documented here too (they live in .training)
__all__ = ["train", "TrainResult", "prepare_field", "Field", "mask_diameter", "simulated_datasets",
           "simulated_field", "blob_field", "blob_movie", "neuron_density", "validate", "selection_scores",
           "detect_masks"]


class TrainResult(NamedTuple):
    """Outcome of :func:`train`.

    Attributes
    ----------
    model : DetectionModel
        The networks with the best validation weights; ``model.config.training`` records how they were trained
        (settings, data sources with the movies' shapes and the files' SHA-256, each dataset's neurons in its
        training rows and validation strip and the warning when they were few (``thin_annotations``), the
        annotation check, software versions, when, each epoch's score).
    path : Path or None
        Where they were saved (None when ``out_path`` was None).
    history : list of dict
        One per whole epoch run: epoch (from 0), unet_loss and instance_loss (mean training losses of its updates),
        val_f1 (the selection score), val_f1_pooled, val_f1_balanced, val_precision, val_recall (see
        :func:`validate`; val_f1_real and val_f1_simulated are NaN when there is no such field), seconds (the
        epoch's updates and validation), minutes (since :func:`train` started, field preparation included).
    best_epoch : int
        The epoch (from 0) whose weights were kept: the first with the highest val_f1.
    best_f1 : float
        Its val_f1 (0..1). 0 means that in no epoch did any detection match a neuron of the validation strips (a
        ``RuntimeWarning`` says so): the weights found nothing there and should not be used as they are.
    interrupted : bool
        Training was stopped by Ctrl-C (``KeyboardInterrupt``) after ``len(history)`` whole epochs: the weights are
        those of the best of them (saved to ``path``), the epoch under way was dropped.
    """

    model: DetectionModel
    path: Path | None
    history: list
    best_epoch: int
    best_f1: float
    interrupted: bool = False


def train(datasets: Iterable[tuple[Any, ...]] | None = (), out_path: str | os.PathLike | None = None, *,
          simulated: int | Sequence[tuple[Any, Any]] | None = None, simulated_shape: tuple[int, int] = (256, 256),
          epochs: int = 60, steps_per_epoch: int = 100, patience: int = 8, seed: int = 0,
          config: ModelConfig | None = None, init_model=None, val_fraction: float = 0.2,
          zooms: Sequence[float] = (0.7, 0.85, 1.0, 1.15, 1.3),
          unet_batch: int = 6, unet_crop: int = 128, instance_batch: int = 48, learning_rate: float | None = None,
          annotated_fraction: float | None = 0.5, max_minutes: float | None = None, batch_frames: int = 250,
          simulated_variety: bool = False, simulated_rates: tuple[float, float] = (0.05, 1.0),
          simulated_neuropil: float = 0.0, simulated_blobs: float = 0.0, simulated_processes: float = 0.0,
          simulated_defocus: float = 0.0, simulated_long: float = 0.0, selection: str = "pooled",
          channels: Sequence[str] | None = None,
          missed_crops: float = 0.0, missed_signal: float | None = None, check_annotations: bool = True,
          scale_to_model: bool | None = None, progress: bool = True, record: dict | None = None) -> TrainResult:
    """Train a detection model on annotated movies plus simulated ones.

    Parameters
    ----------
    datasets : iterable of (movie_or_summary, rois) or (movie_or_summary, rois, region)
        Read once, so ``zip(movies, rois, strict=True)`` works (``strict``: lists of different lengths are an error,
        not silently cut). ``movie_or_summary``: anything :func:`cellfie_caiman.io.load_movie` reads, or
        SummaryImages. ``rois``: a file :func:`cellfie_caiman.rois.read_rois` reads, or an array read the same way:
        masks (N, rows, cols) or CaImAn's ``Ain`` / ``A`` (rows*cols, N, dense or SciPy sparse), a pixel belonging
        to an ROI where its value is > 0. A movie shorter than 100 frames gets a ``RuntimeWarning``, a repeated
        dataset a ``UserWarning``. Neurons must lie both above and in the validation strip (see ``val_fraction``)
        of some field: ``ValueError`` otherwise. ``region``: when only
        part of the field was annotated, that part (``'R0:R1,C0:C1'``, e.g. ``'0:256,:'`` for the top 256 rows,
        or ``numpy.s_[0:256, :]``; :func:`cellfie_caiman.training.fields.parse_region`). Training and validation
        then use only that part: elsewhere, the neurons nobody outlined would be taught as background.
    out_path : path, optional
        Where to save the best weights (.npz, in an existing folder; checked before training), atomically,
        replacing any file there.
    simulated : int or sequence of (SummaryImages, masks), optional
        Number of simulated fields added to the training data (see :func:`simulated_datasets`), or the fields
        themselves (made beforehand, e.g. with :func:`simulated_field` in parallel processes; they must include the
        images the model reads). None: 0 when fine-tuning ``init_model`` on annotated ``datasets`` (measured: the
        annotations of the new preparation alone adapt the model better than mixed with simulated fields), else 8.
    simulated_shape : (int, int)
        Their size in pixels (32 to 2048 a side).
    simulated_variety : bool
        Also randomise cell brightness, occlusion, vessels, puncta and spike amplitudes of the simulated fields.
    simulated_neuropil : float
        Fraction of the simulated fields (evenly spread) whose neuropil strength is randomised too (see
        :func:`simulated_field`).
    simulated_blobs : float
        Fraction of the simulated fields (evenly spread) drawn instead as Gaussian blobs in white noise
        (:func:`blob_field`): neurons seen only through their activity.
    simulated_processes : float
        Fraction of the simulated fields (evenly spread like the neuropil ones) whose neuropil is partly a mesh
        of thin processes: dark gaps that are not somata.
    simulated_defocus : float
        Fraction of the simulated fields (evenly spread like the blob ones) whose out-of-focus somata are active:
        flickering blurred blobs that are not neurons.
    simulated_long : float
        Fraction of the simulated fields (spread at random) that last 600-2000 frames instead of 100-600, as real
        recordings often do: their summary images pool more batches and show quieter neurons.
    simulated_rates : (float, float)
        Range (Hz) of the simulated fields' median firing rates (log-uniform); lower rates give quieter fields,
        whose neurons are seen mostly by their shape.
    epochs, steps_per_epoch, patience : int
        At most ``epochs`` epochs of ``steps_per_epoch`` updates of each network; stop after ``patience`` epochs
        without a better validation F1.
    seed : int
        Seeds the sampling, the simulated fields and the new networks' weights: during the call NumPy's, Python's
        and the Keras backend's global random states (TensorFlow, or PyTorch with ``KERAS_BACKEND=torch`` on Keras
        3) are seeded with it and the backend's deterministic kernels are on (TensorFlow's op determinism), so the
        same call gives the same weights (PyTorch on a GPU: nearly, some of its CUDA kernels are not
        deterministic). When ``train`` returns or raises, these global random states and TensorFlow's op
        determinism (PyTorch's deterministic algorithms) are put back as they were before the call.
    config : ModelConfig, optional
        Architecture of new networks. None, or a config equal to ``ModelConfig()`` but for its channels:
        ``ModelConfig()`` with ``train_diameter`` the median neuron diameter of the training masks (annotated and
        simulated); a config with any other setting changed is used as it is, its ``train_diameter`` too. Ignored
        when fine-tuning ``init_model``, whose architecture is kept (a ``UserWarning`` says so).
    init_model : str, path or DetectionModel, optional
        Start from these weights (fine-tuning) instead of random ones.
    channels : sequence of str, optional
        Summary images the model reads (fields of :class:`cellfie_caiman.summary.SummaryImages`). Default: those of
        ``init_model``, else of ``config``. Fine-tuning with more channels than ``init_model`` starts the new
        channels' input weights at zero.
    val_fraction : float
        Fraction of every field's rows (at the bottom) held out for validation and early stopping. A
        ``UserWarning`` before training says when the annotated datasets together hold fewer than
        :data:`THIN_TRAINING_NEURONS` (60) neurons above their strips or :data:`THIN_VALIDATION_NEURONS` (20) in
        them: the epoch kept is then chosen on a handful of neurons (recorded in ``config.training``:
        ``thin_annotations``).
    zooms : sequence of float
        Scale augmentation: every field is used zoomed by these factors; must include 1.0 (validation and the hard
        examples use the unzoomed fields).
    unet_batch, unet_crop, instance_batch : int
        Batch sizes and U-Net crop side (pixels, multiple of ``2**depth``).
    learning_rate : float, optional
        Adam learning rate (halved when validation F1 stalls for 3 epochs). None: 1e-3 from scratch, 3e-4 when
        fine-tuning ``init_model`` (a large first step would undo what the model knows).
    annotated_fraction : float or None
        Fraction of the training crops drawn from ``datasets`` rather than simulated fields (None: in proportion
        to their areas). Real fields are few but are what the model must learn to read.
    selection : {'pooled', 'balanced'}
        Validation score that picks the best epoch (see :func:`validate`).
    missed_crops : float
        Fraction of the U-Net crops (0..1) cut around simulated neurons that the current model misses (no candidate
        centre near them at the inference thresholds; found again after every epoch): hard positives. Only the
        simulated fields' neurons, whose ground truth is exact, are used. 0: none (all crops at random places).
    missed_signal : float, optional
        With ``missed_crops``, only the missed neurons that the soma-filtered image shows: its normalised input
        (local standard deviations) reaches this value near their centre. Needs ``pnr_filtered`` among the channels.
    max_minutes : float, optional
        Stop after the epoch that passes this wall-clock budget (minutes since the call started: reading the movies,
        summary images, the annotation check and the simulated fields count too).
        Ctrl-C (``KeyboardInterrupt``) also stops training once an epoch has finished: the best epoch so far is kept,
        saved and returned (``interrupted`` True, a ``RuntimeWarning`` says so; the epoch under way is dropped).
        Before the first epoch ends it interrupts as usual and nothing is saved.
    batch_frames : int or None
        Frames per batch of the summary images computed from movies (see
        :func:`cellfie_caiman.summary.summary_images`).
    check_annotations : bool
        Before training, check that each annotated dataset's ROIs line up with its movie
        (:mod:`cellfie_caiman.training.annotation_check`): the shipped model's detections on the field (one pass
        without test-time augmentation, on the summary images training computed when they hold those the shipped
        model reads, else on its own computed from the movie) are matched (:func:`match_rois`, CaImAn's rule)
        against the ROIs as given and against the ROIs transposed (square fields), flipped up-down, flipped
        left-right, and the other datasets' ROIs (fields of the same shape). When one of these mistakes matches
        with F1 >= 0.2 and >= 2 times both the F1 of the ROIs as given and the chance level (the ROIs shifted by
        half the field), a ``UserWarning`` names the dataset, both F1 values and what looks wrong; training goes on.
        A ``UserWarning`` also names an edge band of a field (its region) without any ROI where the shipped model
        finds neurons (at least 3 ROI diameters deep, 5 detections, half as dense as elsewhere:
        :func:`cellfie_caiman.training.annotation_check.unannotated_edges`), and the region the ROIs span: a field
        annotated only in part, whose ``region`` was not given. The F1 values and such bands are recorded in
        ``config.training`` (``annotation_check``). Datasets given as summary images
        without the shipped model's images are skipped (logged). False: no check, no detection.
    scale_to_model : bool or None
        True: zoom each annotated dataset so that its median neuron diameter (:func:`mask_diameter`) is the model's
        ``train_diameter`` before training (the ``zooms`` augmentation on top), its ``pnr_filtered`` computed for
        its own neuron diameter: the images the model then learns from are those ``initialize(movie,
        neuron_diameter=d)`` gives it. False (the recipe of the shipped weights): each dataset at its own scale, and
        a ``UserWarning`` names those whose neurons are outside :data:`SCALE_WARN_RANGE` (0.8-1.25) times
        ``train_diameter``. None (default): when fine-tuning ``init_model``, True for the datasets whose neurons are
        outside that range and False for the others (logged; recorded in ``config.training['scaled_to_model']``);
        when training from scratch, False. Fine-tuned from the shipped model (``train_diameter`` 11.8 px): on
        simulated neurons of 20 px F1 0.908 at their own scale, 0.958 at the model's (with ``neuron_diameter``;
        0.870 and 0.936 without); on simulated masks of 9.3 px 0.904 and 0.919 (0.904, 0.911); on 12 px the same
        (``benchmarks/fine_tune_scale.py``); on the bottom half of neurofinder.01.01 (15 px), a leave-one-out model
        fine-tuned on the top half 0.308 and 0.403 (0.281, 0.381); on neurofinder.00.00-left (9.1 px) 0.554 both
        (0.564 both) (models/HISTORY.md, session 28). Detect with a model trained at its scale giving
        ``neuron_diameter`` (the neurons' size in the movie). Simulated fields are used as they are.
    progress : bool
        tqdm progress bars.
    record : dict, optional
        Stored in ``config.training`` (e.g. the command that was run); the keys ``train`` records itself take
        precedence.

    Returns
    -------
    TrainResult
        The best epoch's networks (also when every epoch scored F1 0: a ``RuntimeWarning`` then names what to
        check), their file and the history of the epochs.
    """
    datasets = _dataset_list(datasets)
    if out_path is not None:
        check_weights_path(out_path)
    if isinstance(simulated, (int, np.integer)):
        number(simulated, "simulated (number of simulated fields)", low=0, integer=True)
    if len(simulated_shape) != 2:
        raise ValueError(f"simulated_shape must be (rows, cols), got {simulated_shape!r}")
    for side in simulated_shape:
        number(side, "simulated_shape (pixels)", low=32, high=2048, integer=True)
    number(seed, "seed", low=0, high=2**32 - 1, integer=True)
    if not isinstance(check_annotations, (bool, np.bool_)):
        raise ValueError(f"check_annotations must be True or False, got {check_annotations!r}")
    if scale_to_model is not None and not isinstance(scale_to_model, (bool, np.bool_)):
        raise ValueError(f"scale_to_model must be True, False or None (automatic), got {scale_to_model!r}")
    _check_settings(epochs=epochs, steps_per_epoch=steps_per_epoch, patience=patience, val_fraction=val_fraction,
                    zooms=zooms, unet_batch=unet_batch, unet_crop=unet_crop, instance_batch=instance_batch,
                    learning_rate=learning_rate, annotated_fraction=annotated_fraction, max_minutes=max_minutes,
                    batch_frames=batch_frames, simulated_rates=simulated_rates, selection=selection,
                    missed_crops=missed_crops, missed_signal=missed_signal, depth=(config or ModelConfig()).depth)

    from .models import load_model

    t_start = time.monotonic()
    with _deterministic(seed):  # seeds and op determinism for training only: put back as they were afterwards
        rng = np.random.default_rng(seed)

        # fine-tuning defaults: a smaller first step, and the new annotations alone (see the docstring)
        if learning_rate is None:
            learning_rate = 1e-3 if init_model is None else 3e-4
        if simulated is None:
            simulated = 0 if datasets and init_model is not None else 8
        if not datasets and not simulated:
            raise ValueError("train needs at least one annotated dataset or simulated > 0")
        start = load_model(init_model) if init_model is not None else None
        if start is not None and config is not None:
            warnings.warn("config is ignored when fine-tuning init_model: the networks keep its architecture and "
                          f"train_diameter ({start.config.train_diameter:g} px)", UserWarning, stacklevel=2)
        channels = _channels(channels, start, config, missed_signal)
        # pnr_filtered is computed at the training diameter (ModelConfig's default 12 px when training from scratch)
        filter_diameter = None
        if "pnr_filtered" in channels:
            filter_diameter = (start.config if start is not None else config or ModelConfig()).train_diameter
        named, regions, checks, to_model = _annotated_datasets(
            datasets, channels, filter_diameter, batch_frames, progress, check_annotations,
            own_filter=_scale_rule(scale_to_model, start))
        n_annotated = len(named)
        files = _dataset_files(datasets)  # before training: the data as they were read
        if isinstance(simulated, (int, np.integer)):
            if simulated < 0:
                raise ValueError(f"simulated must be >= 0, got {simulated}")
            made = simulated_datasets(int(simulated), seed=seed, shape=simulated_shape, progress=progress,
                                      variety=simulated_variety, rates=simulated_rates, filter_diameter=filter_diameter,
                                      neuropil=simulated_neuropil, blobs=simulated_blobs,
                                      processes=simulated_processes, defocus=simulated_defocus,
                                      long=simulated_long)
        else:
            made = []
            for s, m in simulated:
                check_images(s, channels, "simulated fields given as summary images need them")
                made.append((s, _as_masks(m, np.asarray(getattr(s, channels[0])).shape)))
            simulated = len(made)
        named += [(f"simulated{i}", s, m) for i, (s, m) in enumerate(made)]
        diameters = [mask_diameter(m) for _, _, m in named]
        model = _starting_model(start, config, channels, diameters)
        named = _annotated_scale(named, n_annotated, diameters, model.config.train_diameter, to_model)
        fields, weights = _training_fields(named, model.config, zooms, val_fraction, annotated_fraction, progress)
        _check_validation_strips(fields, val_fraction)
        _check_training_rows(fields, val_fraction)
        neurons = _neuron_counts(fields, [name for name, _, _ in named[:n_annotated]])
        thin = _warn_if_thin(neurons, val_fraction, simulated=len(named) > n_annotated)
        logger.info("%d fields (%d datasets x %d zooms), neuron diameters %s", len(fields), len(named), len(zooms),
                    np.round(diameters, 1))

        history, best_f1, best_epoch, interrupted = _fit(
            model, fields, weights, rng, learning_rate=learning_rate, epochs=epochs, steps_per_epoch=steps_per_epoch,
            patience=patience, unet_batch=unet_batch, unet_crop=unet_crop, instance_batch=instance_batch,
            missed_crops=missed_crops, missed_signal=missed_signal, selection=selection, max_minutes=max_minutes,
            t_start=t_start, progress=progress)
    if best_f1 <= 0:
        _warn_nothing_found(history, best_epoch, diameters, model.config.train_diameter, val_fraction, out_path)
    from . import __version__
    from .provenance import provenance, software_versions

    info = dict(record or {})
    info.update({"cellfie_caiman": __version__, "software": software_versions(),
                 # the weights fine-tuned (file and SHA-256), or None when trained from scratch
                 "init_model": provenance(model=start)["model"] if start is not None else None,
                 "best_epoch": best_epoch, "val_f1": round(best_f1, 4), "epochs_run": len(history), "seed": seed,
                 "interrupted": interrupted,
                 "selection": selection, "learning_rate": learning_rate, "simulated": simulated,
                 "annotated_fraction": annotated_fraction, "simulated_variety": simulated_variety,
                 "simulated_neuropil": simulated_neuropil, "simulated_blobs": simulated_blobs,
                 "simulated_processes": simulated_processes, "simulated_defocus": simulated_defocus,
                 "simulated_long": simulated_long,
                 "missed_crops": missed_crops, "missed_signal": missed_signal,
                 "scale_to_model": "auto" if scale_to_model is None else bool(scale_to_model),
                 "scaled_to_model": [name for (name, _, _), z in zip(named, to_model, strict=False) if z],
                 "simulated_rates": list(simulated_rates),
                 "datasets": [n for n, _, _ in named], "dataset_regions": regions,
                 # the shipped model's F1 against each dataset's ROIs as given and as plausible mistakes
                 "annotation_check": [c.record() for c in checks] if check_annotations else None,
                 # what each dataset was given as: movie and ROI file paths (absolute), or the kind of object
                 "dataset_sources": [[_source_name(x) for x in entry[:2]] for entry in datasets],
                 # ... and what those files held: the movie's shape and SHA-256, the ROI file's SHA-256
                 "dataset_files": files,
                 # the annotated neurons each dataset taught (training rows) and scored epochs with (validation strip)
                 "dataset_neurons": neurons,
                 # the warning that they were too few to train on and to choose the epoch by (None: enough)
                 "thin_annotations": thin,
                 "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "epochs": epochs, "steps_per_epoch": steps_per_epoch, "patience": patience,
                 "max_minutes": max_minutes, "val_fraction": val_fraction, "zooms": [float(z) for z in zooms],
                 "simulated_shape": [int(v) for v in simulated_shape], "batch_frames": batch_frames,
                 "unet_batch": unet_batch, "unet_crop": unet_crop, "instance_batch": instance_batch,
                 "neuron_diameters": [round(d, 2) for d in diameters],
                 "minutes": round((time.monotonic() - t_start) / 60, 1),
                 # when each epoch ended (minutes since the start, field preparation included) and its score: how
                 # much of the budget the best epoch needed
                 "epoch_minutes": [round(r["minutes"], 3) for r in history],
                 "epoch_val_f1": [round(r["val_f1"], 4) for r in history]})
    model = DetectionModel(dataclasses.replace(model.config, training=info), model.unet, model.instance)
    path = model.save(out_path) if out_path is not None else None
    return TrainResult(model, path, history, best_epoch, best_f1, interrupted)


def _dataset_list(datasets) -> list:
    """``datasets`` as a list, read once: a generator or ``zip(movies, rois)`` would otherwise be used up by the
    first check and its datasets silently dropped. ``ValueError`` for a lone path (a pair needs its own list)."""
    if datasets is None:
        return []
    if isinstance(datasets, (str, bytes, os.PathLike)) or not np.iterable(datasets):
        raise ValueError("datasets must be a list of (movie, rois) pairs, e.g. [('movie.tif', 'rois.json')]; got "
                         f"{type(datasets).__name__} {datasets!r}"[:300])
    return list(datasets)


def _dataset_files(datasets: list) -> list[dict]:
    """What each annotated dataset was read from, for the weights file's record: ``movie`` (the record of
    :func:`cellfie_caiman.provenance.provenance`: source, shape (frames, rows, cols), dtype and, for a file, its
    absolute path, size, SHA-256 and modification time; summary images: their kind) and ``rois`` (an ROI file's
    absolute path and SHA-256, or the kind of object)."""
    from .io import Movie, load_movie
    from .models.preprocess import is_summary
    from .provenance import _movie_record, file_sha256

    out = []
    for entry in datasets:
        movie, rois = entry[:2]
        if is_summary(movie):
            movie_record = {"source": f"<{type(movie).__name__}>"}
        else:
            movie_record = _movie_record(movie if isinstance(movie, Movie) else load_movie(movie))
        if isinstance(rois, (str, os.PathLike)):
            path = Path(rois).expanduser().resolve()
            rois_record = {"path": str(path), "sha256": file_sha256(path) if path.is_file() else None}
        else:
            rois_record = {"source": f"<{type(rois).__name__}>"}
        out.append({"movie": movie_record, "rois": rois_record})
    return out


def _neuron_counts(fields: list, names: list[str]) -> list[dict[str, int]]:
    """For each dataset of ``names``, the neurons (mask centroids, unzoomed field) in its training rows and in its
    validation strip."""
    unzoomed = {f.name: f for f in fields if f.zoom == 1.0}
    return [_row_counts(unzoomed[name]) for name in names]


def _row_counts(field) -> dict[str, int]:
    """The neurons (mask centroids) of one field in its training rows and in its validation strip below them."""
    below = int(np.sum(field.centers[:, 0] >= field.train_rows)) if len(field.centers) else 0
    return {"training": len(field.centers) - below, "validation": below}


def _source_name(source) -> str:
    """A dataset's movie or ROIs as the weights file records them: an absolute path (that of an opened movie file
    too), or the kind of object."""
    from .io import Movie

    if isinstance(source, Movie) and not source.source.startswith("<"):
        source = source.source
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source).expanduser().resolve())
    return f"<{type(source).__name__}>"


def _source_key(source):
    """What identifies a dataset's movie or ROIs when looking for repeats: its resolved path, or the object."""
    name = _source_name(source)
    return id(source) if name.startswith("<") else name


def _warn_about_repeats(datasets: Sequence) -> None:
    """A ``UserWarning`` for each dataset that repeats an earlier one (the same movie, ROIs and region): it would
    count twice in training and in the validation score, most likely a copy-and-paste slip."""
    seen: dict = {}
    for i, entry in enumerate(datasets):
        key = (*(_source_key(x) for x in entry[:2]), None if len(entry) < 3 else str(entry[2]))
        if key in seen:
            warnings.warn(f"dataset {i} repeats dataset {seen[key]} (the same movie, ROIs and region): it counts "
                          "twice in training and in the validation score", UserWarning, stacklevel=4)
        else:
            seen[key] = i


def check_weights_path(path: str | os.PathLike) -> Path:
    """``path`` as a weights file that can be written (a ``.npz`` name in an existing, writable folder); checked
    before training, so that an unwritable path does not lose a run."""
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        raise ValueError(f"{path}: the weights file must end in .npz")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give the weights file's name")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{path}: {folder} is not a folder; create it first")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{path}: cannot write into {folder}")
    return path


def _channels(channels, start, config, missed_signal) -> tuple[str, ...]:
    """The summary images the model reads: ``channels``, else those of the weights fine-tuned (``start``) or of
    ``config``; each must be a :class:`SummaryImages` field."""
    from .summary import SummaryImages

    if channels is None:
        channels = start.config.channels if start is not None else (config or ModelConfig()).channels
    channels = tuple(channels)
    unknown = [c for c in channels if c not in SummaryImages._fields]
    if unknown or not channels or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct summary image names {SummaryImages._fields}, got "
                         f"{list(channels)}")
    if missed_signal is not None and "pnr_filtered" not in channels:
        raise ValueError("missed_signal reads the pnr_filtered image, which is not among the channels "
                         f"{list(channels)}")
    return channels


def _annotated_datasets(datasets, channels, filter_diameter, batch_frames, progress, check: bool = False,
                        own_filter: bool | Callable[[float], bool] = False) -> tuple[list, list, list, list]:
    """``[(name, summary, masks)]`` of the annotated datasets (cut to their regions), the regions as given (None:
    the whole field), when ``check`` the :class:`AnnotationCheck` of each (a ``UserWarning`` for those whose
    ROIs look transposed, flipped or swapped: :func:`cellfie_caiman.training.annotation_check.check_annotations`),
    and for each whether it is to be trained at the model's scale (``own_filter``: a bool for all, or a function
    of the dataset's median neuron diameter in its annotated region, pixels: :func:`_scale_rule`).
    ``pnr_filtered`` (when ``filter_diameter`` is not None) is computed for ``filter_diameter``, or for each
    dataset's own median neuron diameter where ``own_filter`` says so."""
    if any(isinstance(entry, (str, os.PathLike)) for entry in datasets):
        raise ValueError("datasets must be a list of (movie, rois) pairs, e.g. [('movie.tif', 'rois.json')]; got a "
                         "path among them (one pair needs its own list)")
    lengths = sorted({len(entry) for entry in datasets} - {2, 3})
    if lengths:
        raise ValueError(f"each dataset must be (movie, rois) or (movie, rois, region), got {lengths[0]} items")
    _warn_about_repeats(datasets)
    checked, regions = [], []
    for i, entry in enumerate(datasets):  # every dataset checked before any summary image is computed
        source, rois, region = (*entry, None)[:3]
        checked.append((f"dataset{i}", checked_annotation(source, rois, channels, region, f"dataset {i}")))
        regions.append(None if region is None else str(region))
    own = [_own_diameter(*c[1:]) for _, c in checked]
    to_model = [bool(own_filter(d) if callable(own_filter) else own_filter) for d in own]
    filters = [d if z and filter_diameter is not None else filter_diameter for d, z in zip(own, to_model, strict=True)]
    named = [(name, *annotated_images(*c, d, batch_frames, progress)) for (name, c), d in zip(checked, filters,
                                                                                               strict=True)]
    for name, summary, _ in named:
        if all(np.ptp(np.nan_to_num(np.asarray(getattr(summary, c)))) == 0 for c in channels):
            raise ValueError(f"{name}: its summary images are constant (an empty, constant or all-NaN movie?): "
                             "nothing to learn from")
    checks = []
    if check and named:
        checks = annotation_check(named, [(c[0], c[2]) for _, c in checked], batch_frames=batch_frames,
                                  # own filter: the check reads the diameter the images record (recomputed at the
                                  # model's size from the movie when they differ)
                                  filter_diameter=None if any(to_model) else filter_diameter, progress=progress)
    return named, regions, checks, to_model


def _own_diameter(masks: np.ndarray, bounds) -> float:
    """Median equivalent diameter (pixels) of the masks in the annotated region ``bounds`` (None: all of them)."""
    return mask_diameter(masks if bounds is None else masks_in(masks, bounds))


#: Annotated neurons outside these multiples of the model's ``train_diameter`` are warned about when training at
#: their own scale (the automatic diameter's range in :func:`cellfie_caiman.initialize`).
SCALE_WARN_RANGE = (0.8, 1.25)


def _scale_rule(scale_to_model: bool | None, start) -> bool | Callable[[float], bool]:
    """Which annotated datasets :func:`train` trains at the model's scale: ``scale_to_model`` when it is a bool;
    for None, when fine-tuning ``start`` (a model), those whose median neuron diameter (pixels) is outside
    :data:`SCALE_WARN_RANGE` times its ``train_diameter``, and none when training from scratch (``start`` None)."""
    if scale_to_model is not None:
        return bool(scale_to_model)
    if start is None:
        return False
    low, high = SCALE_WARN_RANGE
    model_diameter = start.config.train_diameter
    return lambda diameter: not low <= diameter / model_diameter <= high


def _annotated_scale(named: list, n_annotated: int, diameters: list, train_diameter: float,
                     to_model: Sequence[bool]) -> list:
    """``named`` with those of its first ``n_annotated`` datasets (the annotated ones) that ``to_model`` marks
    zoomed by ``train_diameter`` / their median neuron diameter (a recorded ``filter_diameter`` is zoomed with
    them); the others as they are, with a ``UserWarning`` naming those whose neurons are outside
    :data:`SCALE_WARN_RANGE` times ``train_diameter``."""
    from .summary import SummaryImages
    from .training.fields import _zoom_image, _zoom_masks, zoomed_shape

    low, high = SCALE_WARN_RANGE
    off = [f"{name} ({d:.1f} px)" for (name, _, _), d, z in zip(named[:n_annotated], diameters, to_model, strict=False)
           if not z and not low <= d / train_diameter <= high]
    if off:
        warnings.warn(f"the annotated neurons of {', '.join(off)} are not the model's size ({train_diameter:.1f} "
                      "px): trained at their own scale, the model learns another size than initialize shows it; "
                      "scale_to_model=True (--scale-to-model) trains them at the model's scale", UserWarning,
                      stacklevel=3)
    out = list(named)
    for i in range(n_annotated):
        if not to_model[i]:
            continue
        name, summary, masks = named[i]
        zoom = train_diameter / diameters[i]
        shape = zoomed_shape(masks.shape[1:], zoom)
        logger.info("%s: neurons of %.1f px zoomed %.2fx to the model's %.1f px (%d x %d px): detect with the "
                    "model giving neuron_diameter=%.1f", name, diameters[i], zoom, train_diameter, *shape, diameters[i])
        images = {f: None if getattr(summary, f) is None else _zoom_image(getattr(summary, f), shape)
                  for f in SummaryImages._fields}
        filtered_for = getattr(summary, "filter_diameter", None)  # the soma filter zoomed with the image
        out[i] = (name, SummaryImages(**images, filter_diameter=None if filtered_for is None else filtered_for * zoom),
                  _zoom_masks(np.asarray(masks, bool), shape))
    return out


def _check_validation_strips(fields: list, val_fraction: float) -> None:
    """``ValueError`` when no validation strip holds a neuron (every epoch would score F1 0 and the first one would
    be kept); a warning for each annotated dataset whose strip holds none (it then counts for nothing)."""
    counts = {f.name: _row_counts(f)["validation"] for f in fields
              if f.zoom == 1.0 and f.train_rows < f.inputs.shape[0]}
    _require_neurons(counts, "validation strip", f"the bottom {val_fraction:.0%} of its rows",
                     "early stopping would have nothing to score", "its fit is not scored when the best epoch is "
                     "chosen")


def _check_training_rows(fields: list, val_fraction: float) -> None:
    """``ValueError`` when no neuron lies in the training rows of any field (the networks would be taught that
    everything is background); a warning for each annotated dataset whose training rows hold none."""
    counts = {f.name: _row_counts(f)["training"] for f in fields if f.zoom == 1.0}
    _require_neurons(counts, "training rows", f"the top {1 - val_fraction:.0%} of its rows, above the validation "
                     "strip", "the networks would learn that everything is background", "it teaches only background")


#: Fewest annotated neurons, over all annotated datasets, in the training rows (:data:`THIN_TRAINING_NEURONS`) and in
#: the validation strips together (:data:`THIN_VALIDATION_NEURONS`) that train without a warning. The model card
#: advises a hundred or more annotated neurons: about 80 above and 20 in the strips at ``val_fraction`` 0.2. With n
#: validation neurons at a true precision and recall of 0.8 (hits ~ Binomial(n, 0.8), false positives ~ Poisson) the
#: measured F1 has a standard deviation of about 0.07 at n = 20 (0.10 at 10, 0.24 at 2) and one neuron moves it by
#: 0.03 (0.06 at 10, 0.33 at 2), so an epoch truly 0.10 worse is kept in up to 15 % of choices (25 % at 10, about
#: half at 2): below 20 the best-epoch choice is largely noise. In the model
#: card's fine-tuning runs 74 and 144 neurons in the training rows (the top halves of the neurofinder excerpts) helped
#: every time, 37 and 51 (their top quarters) only sometimes; the whole excerpts have 170 and 277 (35 and 73 in
#: their strips).
THIN_TRAINING_NEURONS = 60
THIN_VALIDATION_NEURONS = 20


def _warn_if_thin(neurons: list[dict[str, int]], val_fraction: float, simulated: bool) -> str | None:
    """A ``UserWarning`` (its message returned, else None) when the annotated datasets hold fewer than
    :data:`THIN_TRAINING_NEURONS` neurons in their training rows or fewer than :data:`THIN_VALIDATION_NEURONS` in
    their validation strips, all datasets together: the model learns the preparation from a few neurons and the
    epoch kept is chosen on a few. ``neurons``: each annotated dataset's counts (:func:`_neuron_counts`; none when
    only simulated fields are used: no warning); ``simulated``: simulated fields are trained on too."""
    if not neurons:
        return None
    n_train = sum(c["training"] for c in neurons)
    n_val = sum(c["validation"] for c in neurons)
    if n_train >= THIN_TRAINING_NEURONS and n_val >= THIN_VALIDATION_NEURONS:
        return None
    datasets = "dataset" if len(neurons) == 1 else f"{len(neurons)} datasets"
    chosen = (f"the epoch kept is chosen on the F1 of {n_val} of your neurons"
              + (" (and the simulated fields' strips)" if simulated else ""))
    message = (f"few annotated neurons: {n_train} in the training rows and {n_val} in the validation strips (the "
               f"bottom {val_fraction:.0%} of each field's rows) of the annotated {datasets}, fewer than the "
               f"{THIN_TRAINING_NEURONS} and {THIN_VALIDATION_NEURONS} it takes to trust the fit: {chosen}, and the "
               "model may not generalise beyond the few it learnt from. Annotate more neurons (a hundred or more, "
               "spread over the field, both above and in the strip), pass a larger val_fraction (--val-fraction) "
               "when the strip holds too few, or add more annotated fields")
    warnings.warn(message, UserWarning, stacklevel=3)
    return message


def _require_neurons(counts: dict[str, int], part: str, rows: str, if_none: str, if_empty: str) -> None:
    """``ValueError`` (saying ``if_none``) when no field holds a neuron in its ``part`` (``rows`` says which rows);
    a ``UserWarning`` (saying ``if_empty``) naming each annotated dataset whose ``part`` holds none. ``counts``: the
    neurons in that part, by field name."""
    if not any(counts.values()):
        raise ValueError(f"no neuron lies in the {part} of any field ({rows}): {if_none}. Annotate neurons there, "
                         "give the annotated part of a field as its region, or add simulated fields")
    empty = [name for name, n in counts.items() if n == 0 and not name.startswith("simulated")]
    if empty:
        warnings.warn(f"no annotated neuron in the {part} ({rows}) of {', '.join(empty)}: {if_empty}", UserWarning,
                      stacklevel=4)


def _starting_model(start, config, channels, diameters) -> DetectionModel:
    """The networks training starts from: a copy of ``start`` (fine-tuning; weights of a new channel zero), or new
    ones from ``config``, whose default ``train_diameter`` becomes the median neuron diameter of the data."""
    if start is not None:
        return DetectionModel(dataclasses.replace(start.config, channels=channels), *_clone(start, channels),
                              source="")
    config = dataclasses.replace(config or ModelConfig(), channels=channels)
    if dataclasses.replace(config, channels=ModelConfig().channels) == ModelConfig():
        config = dataclasses.replace(config, train_diameter=round(float(np.nanmedian(diameters)), 2))
    return new_model(config)


def _training_fields(named, config, zooms, val_fraction, annotated_fraction, progress) -> tuple[list, np.ndarray]:
    """Every dataset prepared at every zoom, and the probability of drawing a crop from each field: in proportion
    to its training area, the annotated fields together getting ``annotated_fraction`` when there are both kinds."""
    from tqdm.auto import tqdm

    fields = []
    for name, s, m in tqdm(named, desc="preparing fields", disable=not progress):
        for z in zooms:
            fields.append(prepare_field(s, m, config, zoom=z, val_fraction=val_fraction, name=name))
    area = np.array([f.train_rows * f.inputs.shape[1] for f in fields], np.float64)
    annotated = np.array([not f.name.startswith("simulated") for f in fields])
    weights = area / area.sum()
    if annotated_fraction is not None and annotated.any() and (~annotated).any():
        weights[annotated] *= annotated_fraction / weights[annotated].sum()
        weights[~annotated] *= (1 - annotated_fraction) / weights[~annotated].sum()
    return fields, weights


def _fit(model: DetectionModel, fields: list, weights: np.ndarray, rng: np.random.Generator, *, learning_rate: float,
         epochs: int, steps_per_epoch: int, patience: int, unet_batch: int, unet_crop: int, instance_batch: int,
         missed_crops: float, missed_signal: float | None, selection: str, max_minutes: float | None,
         t_start: float, progress: bool) -> tuple[list, float, int, bool]:
    """The epochs: updates of both networks, then validation; the best epoch's weights are left in ``model``.

    The learning rate halves after every 3 epochs without a better validation score; training stops after
    ``patience`` of them, after ``epochs``, after the epoch that passes ``max_minutes`` since ``t_start``, or at a
    ``KeyboardInterrupt`` once an epoch has been scored (before that the interrupt propagates).

    Returns
    -------
    history : list of dict (one per whole epoch), best_f1 : float, best_epoch : int, interrupted : bool
    """
    import keras
    from tqdm.auto import tqdm

    config = model.config
    unet, inst = model.unet, model.instance
    opt_u = keras.optimizers.Adam(learning_rate)
    opt_i = keras.optimizers.Adam(learning_rate)
    unet_step, inst_step = _train_steps(unet, inst, opt_u, opt_i)

    history: list[dict] = []
    best = (-1.0, -1, None)
    stale = 0
    hard: list = []
    missed: list = []
    simulated_field_flags = [f.name.startswith("simulated") for f in fields]
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    interrupted = False
    try:
        for epoch in bar:
            t0 = time.monotonic()
            lu = li = 0.0
            for _ in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", leave=False, disable=not progress):
                x, yp, yh = _unet_batch(fields, weights, unet_batch, unet_crop, rng, missed, missed_crops)
                lu += unet_step(x, yp, yh)
                x, ym, ys, wm = _instance_batch(fields, weights, hard, instance_batch, config, rng)
                li += inst_step(x, ym, ys, wm)
            hard, missed = _hard_candidates(model, fields, simulated_field_flags if missed_crops > 0 else None,
                                            missed_signal)
            if missed_crops > 0:
                logger.info("%d simulated neurons without a candidate centre", len(missed))
            val = validate(model, fields, selection)
            now = time.monotonic()
            row = {"epoch": epoch, "unet_loss": lu / steps_per_epoch, "instance_loss": li / steps_per_epoch, **val,
                   "seconds": now - t0, "minutes": (now - t_start) / 60}
            improved = val["val_f1"] > best[0]
            if improved:
                best = (val["val_f1"], epoch, {k: [w.copy() for w in net.get_weights()] for k, net in
                                               model.networks.items()})
            history.append(row)  # after `best`: an interrupt leaves every epoch in `history` compared with it
            logger.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
            shown = {"f1": f"{val['val_f1']:.3f}", "best": f"{best[0]:.3f}"}
            if max_minutes is not None:  # the bar's own estimate runs to `epochs`, which a budget usually cuts short
                shown["budget_left"] = f"{max(0.0, max_minutes - row['minutes']):.1f} min"
            bar.set_postfix(shown)
            if improved:
                stale = 0
            else:
                stale += 1
                if stale % 3 == 0:
                    for opt in (opt_u, opt_i):
                        opt.learning_rate.assign(float(np.asarray(opt.learning_rate)) * 0.5)
                if stale >= patience:
                    break
            if max_minutes is not None and (time.monotonic() - t_start) / 60 > max_minutes:
                logger.info("stopping: %.1f min budget spent", max_minutes)
                break
    except KeyboardInterrupt:
        if best[2] is None:  # no epoch scored yet: nothing to keep
            raise
        interrupted = True
        bar.close()
        warnings.warn(f"training interrupted during epoch {len(history)}: keeping epoch {best[1]} (validation F1 "
                      f"{best[0]:.3f}), the best of the {len(history)} finished", RuntimeWarning, stacklevel=3)
    finally:  # an early stop or an error leaves the loop over the bar: close it now, not when it is collected
        bar.close()
    for k, net in model.networks.items():
        net.set_weights(best[2][k])
    return history, best[0], best[1], interrupted


def _warn_nothing_found(history: list, best_epoch: int, diameters: list, train_diameter: float,
                        val_fraction: float, out_path: str | os.PathLike | None) -> None:
    """A ``RuntimeWarning`` when the best validation F1 is 0: in no epoch did a detection match a neuron of the
    validation strips, and the weights kept (those of ``best_epoch``, the first scored) find nothing there."""
    kept = "returned and saved" if out_path is not None else "returned"
    epochs = "the one epoch run" if len(history) == 1 else f"any of the {len(history)} epochs run"
    warnings.warn(f"best validation F1 is 0: none of the networks' detections matched a neuron of the validation "
                  f"strips (the bottom {val_fraction:.0%} of every field's rows) after {epochs}, so the weights "
                  f"{kept} (epoch {best_epoch}) find nothing there either. Check that the annotations line "
                  "up with their movies (same orientation, same field; check_annotations), that the model's neuron "
                  f"diameter ({train_diameter:.1f} px) suits the neurons (median diameter of the "
                  f"training masks {float(np.nanmedian(diameters)):.1f} px), and train for longer (more epochs, "
                  "steps_per_epoch or max_minutes)", RuntimeWarning, stacklevel=3)


def _check_settings(*, epochs, steps_per_epoch, patience, val_fraction, zooms, unet_batch, unet_crop, instance_batch,
                    learning_rate, annotated_fraction, max_minutes, batch_frames, simulated_rates, selection,
                    missed_crops, missed_signal, depth: int) -> None:
    """:func:`train`'s settings, each a ``ValueError`` naming it when out of range, before any data is prepared (the
    simulated fields' fractions are checked by :func:`simulated_datasets`, which alone reads them)."""
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("patience", patience),
                        ("unet_batch", unet_batch), ("instance_batch", instance_batch)):
        number(value, name, low=1, integer=True)
    number(val_fraction, "val_fraction", low=0, high=1, low_open=True, high_open=True)
    if isinstance(zooms, (str, bytes)) or not np.iterable(zooms) or len(zooms) == 0:
        raise ValueError(f"zooms must be a non-empty sequence of scale factors, got {zooms!r}")
    for z in zooms:
        number(z, "each of zooms", low=0, low_open=True)
    if not any(z == 1.0 for z in zooms):
        raise ValueError(f"zooms must include 1.0: validation and the hard examples use the unzoomed fields, got "
                         f"{list(zooms)}")
    m = 2**depth
    number(unet_crop, "unet_crop", low=m, integer=True)
    if unet_crop % m:
        raise ValueError(f"unet_crop must be a multiple of {m} (the U-Net pools {depth} times), got {unet_crop}")
    number(learning_rate, "learning_rate", low=0, low_open=True, optional=True)
    number(annotated_fraction, "annotated_fraction", low=0, high=1, optional=True)
    number(max_minutes, "max_minutes", low=0, low_open=True, optional=True)
    number(batch_frames, "batch_frames", low=2, integer=True, optional=True)
    number(missed_crops, "missed_crops", low=0, high=1)
    number(missed_signal, "missed_signal", optional=True)
    if len(simulated_rates) != 2:
        raise ValueError(f"simulated_rates must be (low, high) in Hz, got {simulated_rates!r}")
    low = number(simulated_rates[0], "simulated_rates[0] (Hz)", low=0, low_open=True)
    number(simulated_rates[1], "simulated_rates[1] (Hz)", low=low)
    check_selection(selection)
