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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._checks import number
from .masks import mask_diameter
from .models import DetectionModel, ModelConfig
from .models.preprocess import check_images
from .training.datasets import SCALE_WARN_RANGE as SCALE_WARN_RANGE
from .training.datasets import (
    _annotated_datasets,
    _annotated_scale,
    _dataset_files,
    _dataset_list,
    _scale_rule,
    _source_name,
    _training_fields,
)
from .training.fields import Field, _as_masks, prepare_field
from .training.fit import _fit, _starting_model, _warn_nothing_found
from .training.neuron_counts import THIN_TRAINING_NEURONS as THIN_TRAINING_NEURONS
from .training.neuron_counts import THIN_VALIDATION_NEURONS as THIN_VALIDATION_NEURONS
from .training.neuron_counts import _check_training_rows, _check_validation_strips, _neuron_counts, _warn_if_thin
from .training.settings import _channels, _check_settings, check_weights_path
from .training.simulated import blob_field, blob_movie, neuron_density, simulated_datasets, simulated_field
from .training.steps import _deterministic
from .training.validation import detect_masks, selection_scores, validate

logger = logging.getLogger(__name__)

# the training fields, simulated fields and validation scores are documented here too (they live in .training);
# SCALE_WARN_RANGE and THIN_*_NEURONS, which train()'s docstring names, are imported `as name` to stay here too
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
