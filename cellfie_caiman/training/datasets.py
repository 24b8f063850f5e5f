"""The annotated datasets given to :func:`cellfie_caiman.train.train`: the list read once, what each was read from
(recorded with the weights), repeated datasets, their summary images and masks cut to their regions (checked first),
the scale each is trained at, and every dataset prepared as a training field at every zoom."""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..masks import mask_diameter
from .annotation_check import check_annotations as annotation_check
from .fields import annotated_images, checked_annotation, masks_in, prepare_field

logger = logging.getLogger(__name__)


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
    from ..io import Movie, load_movie
    from ..models.preprocess import is_summary
    from ..provenance import _movie_record, file_sha256

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


def _source_name(source) -> str:
    """A dataset's movie or ROIs as the weights file records them: an absolute path (that of an opened movie file
    too), or the kind of object."""
    from ..io import Movie

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
    from ..summary import SummaryImages
    from .fields import _zoom_image, _zoom_masks, zoomed_shape

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
