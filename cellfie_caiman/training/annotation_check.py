"""Check, before training, that each dataset's annotations line up with its movie.

Annotations transposed relative to the movie (masks made with (x, y) swapped), flipped, or paired with the wrong
movie train without an error and give a worse model. A brightness test cannot tell (many annotated somata are
darker than their surround), but the shipped model can: its detections on the field (one pass, no test-time
augmentation) are matched (:func:`cellfie_caiman.evaluate.match_rois`, CaImAn's rule) against the annotations as
given and against the plausible mistakes: the annotations transposed (square fields), flipped up-down, flipped
left-right, and the annotations of every other dataset of the same shape.

The rule (:func:`looks_wrong`): a mistake is reported when its F1 is at least ``MIN_F1`` (0.2) and at least
``MIN_RATIO`` (2) times both the F1 of the annotations as given and the chance level: the mean F1 of the
annotations shifted (circularly) by half the field, which keeps their number and sizes but not their places, so
that chance matches in a dense field, or detections poor enough to match anything as little as the annotations
(a preparation unlike the shipped model's), give no alarm. Measured with the shipped model (one pass): correctly
annotated real fields (neurofinder.01.01, neurofinder.00.00-left and 256 x 256 crops of them) score F1 0.60 to 0.76
as given, 0.04 to 0.23 for the mistakes and 0.07 to 0.19 by chance; the same annotations transposed, flipped or
swapped score 0.05 to 0.18 as given against 0.60 to 0.74 for the mistake that undoes them. Simulated 96 to 128 px
fields score 0.87 to 1.0 as given and at most 0.42 for the mistakes.

The same detections show a field annotated only in part without its ``region`` (:func:`unannotated_edges`): an
edge band of the field without any ROI, at least ``UNANNOTATED_DEPTH`` (3) median ROI diameters deep, where the
shipped model finds at least ``UNANNOTATED_MIN`` (5) neurons, at least ``UNANNOTATED_DENSITY`` (0.5) times as
densely as in the rest of the field. Measured (one pass): the complete annotations of neurofinder.01.01,
neurofinder.00.00-left, their 256 x 256 crops and four simulated 128-160 px fields leave bands of at most 2.3
diameters with at most 5 detections; their top halves, left halves and top 85 % leave bands of 3.7 to 27 diameters
holding 11 to 201 detections, 0.71 to 1.42 times as dense as elsewhere.
"""
from __future__ import annotations

import contextlib
import logging
import random
import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

#: A mistake must match the shipped model's detections with at least this F1 ...
MIN_F1 = 0.2
#: ... and at least this many times the F1 of the annotations as given to be reported.
MIN_RATIO = 2.0
#: The model whose detections the annotations are checked against.
CHECK_MODEL = "default"
#: An edge band of a field without any ROI is reported as perhaps left unannotated (:func:`unannotated_edges`) when
#: it is at least this many median ROI diameters deep ...
UNANNOTATED_DEPTH = 3.0
#: ... the shipped model finds at least this many neurons in it ...
UNANNOTATED_MIN = 5
#: ... and finds them at least this many times as densely as in the rest of the field.
UNANNOTATED_DENSITY = 0.5

#: What each mistake says about the annotations (the other datasets' annotations are described where found).
_MEANING = {"transposed": "transposed ((x, y) swapped) relative to the movie",
            "flipped up-down": "flipped up-down (rows reversed) relative to the movie",
            "flipped left-right": "flipped left-right (columns reversed) relative to the movie"}


class AnnotationCheck(NamedTuple):
    """How well the shipped model's detections match one dataset's annotations, as given and as plausible mistakes.

    Attributes
    ----------
    name : str
        The dataset (``'dataset0'``, ...).
    f1 : float
        F1 (CaImAn's rule) of the detections against the annotations as given.
    alternatives : dict of str to float
        F1 against each mistake: ``'transposed'`` (square fields), ``'flipped up-down'``, ``'flipped left-right'``,
        ``"datasetJ's annotations"`` (fields of the same shape).
    chance : float
        Mean F1 against the annotations shifted by half the field (rows, columns, both): what unrelated masks of
        the same number and sizes score.
    detected : int
        Number of neurons the shipped model found.
    suspect : str or None
        The mistake that matches clearly better than the annotations as given (:func:`looks_wrong`), if any.
    unannotated : tuple of dict
        The edge bands of the field that hold no ROI but many of the shipped model's detections
        (:func:`unannotated_edges`; movie coordinates); empty when there is none.
    annotated_region : str or None
        With ``unannotated``, the part of the field the ROIs span (``'R0:R1,C0:C1'``, movie coordinates): the
        region to give if only that part was annotated.
    """

    name: str
    f1: float
    alternatives: dict
    chance: float
    detected: int
    suspect: str | None
    unannotated: tuple = ()
    annotated_region: str | None = None

    def record(self) -> dict:
        """The check as JSON-ready numbers (F1 rounded to 3 decimals), for the weights file's training record."""
        return {"dataset": self.name, "f1": round(self.f1, 3), "chance": round(self.chance, 3),
                "detected": self.detected, "suspect": self.suspect,
                "alternatives": {k: round(v, 3) for k, v in self.alternatives.items()},
                "unannotated": [dict(band) for band in self.unannotated], "annotated_region": self.annotated_region}


def mistakes(masks: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plausible mistakes of ``masks`` (N, rows, cols): transposed (when rows == cols), flipped up-down and
    left-right, and each of ``others`` (other datasets' masks, by name) that has the same field shape."""
    out = {}
    if masks.shape[1] == masks.shape[2]:
        out["transposed"] = masks.transpose(0, 2, 1)
    out["flipped up-down"] = masks[:, ::-1, :]
    out["flipped left-right"] = masks[:, :, ::-1]
    for name, m in others.items():
        if m.shape[1:] == masks.shape[1:]:
            out[f"{name}'s annotations"] = m
    return out


def shifted(masks: np.ndarray) -> list[np.ndarray]:
    """``masks`` (N, rows, cols) shifted circularly by half the field down, right, and both: the same number and
    sizes of masks in unrelated places (their F1 is the chance level)."""
    rows, cols = masks.shape[1:]
    return [np.roll(masks, shift, axis=(1, 2)) for shift in ((rows // 2, 0), (0, cols // 2), (rows // 2, cols // 2))]


def looks_wrong(f1: float, alternatives: dict[str, float], chance: float = 0.0) -> str | None:
    """The best-matching mistake when it matches clearly better than the annotations as given: its F1 >= ``MIN_F1``
    and >= ``MIN_RATIO`` times both ``f1`` (as given) and ``chance`` (of unrelated masks, :func:`shifted`); else
    None."""
    if not alternatives:
        return None
    best = max(alternatives, key=alternatives.get)
    score = alternatives[best]
    return best if score >= MIN_F1 and score >= MIN_RATIO * max(f1, chance) else None


def unannotated_edges(masks: np.ndarray, found: np.ndarray,
                      offset: tuple[int, int] = (0, 0)) -> tuple[tuple[dict, ...], str | None]:
    """The edge bands of a field that its ROIs leave out although the shipped model finds neurons there: signs of
    a field annotated only in part.

    For each side, the band between the field's edge and the nearest ROI pixel is reported when it is at least
    :data:`UNANNOTATED_DEPTH` median ROI diameters deep and holds the centroids of at least :data:`UNANNOTATED_MIN`
    detections, at least :data:`UNANNOTATED_DENSITY` times as densely (per pixel) as the rest of the field.

    Parameters
    ----------
    masks : bool (N, rows, cols)
        The ROIs (at least one non-empty).
    found : bool (M, rows, cols)
        The shipped model's detections on the same field.
    offset : (int, int)
        Row and column of the field's first pixel in the movie (the annotated region's corner), added to every
        coordinate returned.

    Returns
    -------
    bands : tuple of dict
        ``side`` ('top', 'bottom', 'left', 'right'), ``rows`` and ``cols`` ([start, stop), movie pixels),
        ``detected`` (detections there), ``density_ratio`` (their density over that of the rest of the field).
    region : str or None
        When bands are reported, ``'R0:R1,C0:C1'``: the part of the field (movie pixels) that the ROIs span on the
        reported sides, the region to give if only that part was annotated.
    """
    from ..masks import mask_diameter

    rows, cols = masks.shape[1:]
    union = np.asarray(masks, bool).any(axis=0)
    rr, cc = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    centres = np.array([np.argwhere(m).mean(axis=0) for m in found]).reshape(-1, 2)
    # side: (rows [start, stop), cols [start, stop)) of the band between the edge and the nearest ROI pixel
    spans = {"top": ((0, rr[0]), (0, cols)), "bottom": ((rr[-1] + 1, rows), (0, cols)),
             "left": ((0, rows), (0, cc[0])), "right": ((0, rows), (cc[-1] + 1, cols))}
    min_depth = UNANNOTATED_DEPTH * mask_diameter(masks)
    bands, kept = [], {"top": 0, "bottom": rows, "left": 0, "right": cols}
    for side, ((r0, r1), (c0, c1)) in spans.items():
        depth = (r1 - r0) if side in ("top", "bottom") else (c1 - c0)
        inside = ((centres[:, 0] >= r0 - 0.5) & (centres[:, 0] < r1 - 0.5) & (centres[:, 1] >= c0 - 0.5)
                  & (centres[:, 1] < c1 - 0.5))
        n_band, n_rest = int(inside.sum()), int((~inside).sum())
        area = (r1 - r0) * (c1 - c0)
        if depth < min_depth or n_band < UNANNOTATED_MIN:
            continue
        ratio = (n_band / area) / (n_rest / (rows * cols - area)) if n_rest else float("inf")
        if ratio < UNANNOTATED_DENSITY:
            continue
        bands.append({"side": side, "rows": [int(r0 + offset[0]), int(r1 + offset[0])],
                      "cols": [int(c0 + offset[1]), int(c1 + offset[1])], "detected": n_band,
                      "density_ratio": round(float(ratio), 2) if np.isfinite(ratio) else None})
        kept[side] = {"top": r1, "bottom": r0, "left": c1, "right": c0}[side]
    if not bands:
        return (), None
    region = (f"{kept['top'] + offset[0]}:{kept['bottom'] + offset[0]},"
              f"{kept['left'] + offset[1]}:{kept['right'] + offset[1]}")
    return tuple(bands), region


def check_field(name: str, summary, masks: np.ndarray, others: dict[str, np.ndarray], model,
                progress: bool = False, offset: tuple[int, int] = (0, 0)) -> AnnotationCheck:
    """Match the shipped model's detections on one field (``summary``, with the images ``model`` reads) against its
    ``masks`` (N, rows, cols) and their :func:`mistakes`, and look for edges of the field left unannotated
    (:func:`unannotated_edges`; ``offset``: the field's corner in the movie, row and column).

    One detection pass (``initialize(summary, tta=False)``, the neuron size estimated by the model, as
    ``initialize`` does without ``neuron_diameter``); its warnings (e.g. no neuron found) are not repeated.
    """
    from ..evaluate import match_rois
    from ..initialize import initialize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = initialize(summary, model=model, tta=False, progress=progress).masks
    f1 = match_rois(masks, found).f1
    alternatives = {k: match_rois(m, found).f1 for k, m in mistakes(masks, others).items()}
    chance = float(np.mean([match_rois(m, found).f1 for m in shifted(masks)]))
    bands, region = unannotated_edges(masks, found, offset)
    return AnnotationCheck(name, f1, alternatives, chance, len(found), looks_wrong(f1, alternatives, chance), bands,
                           region)


def detection_summary(summary, opened, bounds, config, batch_frames: int | None, filter_diameter: float | None,
                      progress: bool = False):
    """The summary images of a dataset as the shipped model (of ``config``) reads them, or None when they cannot be
    had.

    ``summary`` (the training's, cut to the annotated region) when it holds every image the model reads and its
    soma-filtered image, if the model reads it, was computed at the model's ``train_diameter`` (within 10 %): for the
    diameter ``summary`` records (its ``filter_diameter``), else for ``filter_diameter`` (the diameter training
    used; None: unknown, and the image is taken as it is). Else the images are computed from the movie ``opened``
    (:func:`cellfie_caiman.initialize.model_summary`) and cut to ``bounds``. A dataset given as summary images
    (``opened``) cannot be recomputed: its images are returned as they are, with a logged warning when their
    soma filter is for another diameter, or None when they lack an image the model reads.
    """
    from ..initialize import filtered_for_another_size
    from ..models.preprocess import is_summary
    from .fields import crop_region

    channels = config.channels
    have = all(getattr(summary, c, None) is not None for c in channels)
    filtered_for = _filtered_for(summary, filter_diameter)
    filtered_ok = ("pnr_filtered" not in channels
                   or not filtered_for_another_size(filtered_for, config.train_diameter))
    if have and not filtered_ok and is_summary(opened):
        logger.warning("annotation check: the summary images' pnr_filtered was computed for somata of %g px, the "
                       "shipped model reads it for %g px: the check finds fewer neurons (pass the movie to have it "
                       "computed for the check)", filtered_for, config.train_diameter)
    if have and (filtered_ok or is_summary(opened)):
        return summary
    if is_summary(opened):
        return None
    from ..initialize import model_summary

    with warnings.catch_warnings():  # a short movie was already warned about when its images were computed
        warnings.simplefilter("ignore")
        images = model_summary(opened, model=CHECK_MODEL, batch_frames=batch_frames, progress=progress)
    if bounds is None:
        return images
    return crop_region(images, np.zeros((0,) + np.asarray(images.mean).shape, bool), bounds)[0]


def _filtered_for(summary, filter_diameter: float | None) -> float | None:
    """The soma diameter (pixels) that the ``pnr_filtered`` of ``summary`` was computed for: the one it records
    (:class:`cellfie_caiman.summary.SummaryImages`'s ``filter_diameter``), else ``filter_diameter`` (what the caller
    computed it with; None: unknown)."""
    recorded = getattr(summary, "filter_diameter", None)
    return filter_diameter if recorded is None else float(recorded)


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Leave Python's and NumPy's global random states as they were: building the shipped model's networks draws
    their initialisers' seeds from them, which would change the weights that ``train`` then initialises from its
    seed."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def check_annotations(named: list[tuple[str, Any, np.ndarray]], sources: list[tuple[Any, Any]], *,
                      batch_frames: int | None, filter_diameter: float | None,
                      progress: bool = False) -> list[AnnotationCheck]:
    """Check every annotated dataset against the shipped model's detections; a ``UserWarning`` for each one whose
    annotations look transposed, flipped or swapped with another dataset's (see the module's rule).

    Parameters
    ----------
    named : list of (name, SummaryImages, masks (N, rows, cols) bool)
        The annotated datasets as training reads them (cut to their regions).
    sources : list of (movie or SummaryImages, bounds or None)
        What each was given as (opened), and its region (row0, row1, col0, col1), to compute the shipped model's
        summary images when training's lack some.
    batch_frames : int or None
    filter_diameter : float or None
        Soma diameter (pixels) of the training's ``pnr_filtered`` image (None: not computed, or unknown), for the
        summary images that do not record theirs (:func:`detection_summary`).
    progress : bool

    Returns
    -------
    list of AnnotationCheck
        One per dataset that could be checked (those given as summary images without the shipped model's images
        are skipped, with a logged warning).
    """
    with _global_rng_kept():
        return _check_all(named, sources, batch_frames, filter_diameter, progress)


def _check_all(named: list, sources: list, batch_frames: int | None, filter_diameter: float | None,
               progress: bool) -> list[AnnotationCheck]:
    """:func:`check_annotations` itself."""
    from ..models import load_model, model_config

    config = model_config(CHECK_MODEL)  # the networks are built only when a field can be checked
    masks = {name: m for name, _, m in named}
    results = []
    for (name, summary, m), (opened, bounds) in zip(named, sources, strict=True):
        images = detection_summary(summary, opened, bounds, config, batch_frames, filter_diameter, progress)
        if images is None:
            logger.warning("%s: annotation check skipped: its summary images lack some the shipped model reads %s",
                           name, list(config.channels))
            continue
        model = load_model(CHECK_MODEL)
        others = {k: v for k, v in masks.items() if k != name}
        offset = (0, 0) if bounds is None else (bounds[0], bounds[2])
        result = check_field(name, images, m, others, model, progress, offset)
        logger.info("annotation check: %s", result.record())
        if result.suspect is not None:
            warnings.warn(warning_text(result), UserWarning, stacklevel=5)
        if result.unannotated:
            warnings.warn(unannotated_text(result), UserWarning, stacklevel=5)
        results.append(result)
    return results


def unannotated_text(result: AnnotationCheck) -> str:
    """What the warning for a field with edges left unannotated says: where, how many neurons the shipped model
    finds there, and the region to give."""
    where = " nor in the ".join(f"{_band_size(b)} (rows {b['rows'][0]}:{b['rows'][1]}, columns "
                                f"{b['cols'][0]}:{b['cols'][1]}), where the shipped model finds {b['detected']} "
                                "neurons" for b in result.unannotated)
    region = result.annotated_region
    return (f"{result.name}: no ROI in the {where}. If only part of the field "
            f"was annotated, give that part as the dataset's region (e.g. {region!r}, the ROIs' extent: "
            f"train([(movie, rois, {region!r})]) or --data MOVIE ROIS {region}); else the neurons nobody outlined "
            "there are learnt as background. If none of them is a neuron, ignore this warning")


def warning_text(result: AnnotationCheck) -> str:
    """What the warning for a suspect dataset says: the dataset, both F1 values, what looks wrong, what to do."""
    suspect = result.suspect
    if suspect in _MEANING:
        what, wrong = f"its annotations {suspect}", f"its annotations look {_MEANING[suspect]}"
    else:
        what = suspect
        wrong = (f"its movie looks paired with the wrong ROIs ({suspect} fit it better): check the order of the "
                 "movies and ROI files")
    return (f"{result.name}: the shipped model's detections match {what} (F1 {result.alternatives[suspect]:.2f}) "
            f"much better than its annotations as given (F1 {result.f1:.2f}): {wrong}. Training on them would "
            "teach wrong neurons; fix the annotations, or pass check_annotations=False if they are right")


def _band_size(band: dict) -> str:
    """``'bottom 64 rows'``, ``'right 50 columns'``: a band of :func:`unannotated_edges` in words."""
    across_rows = band["side"] in ("top", "bottom")
    (a, b) = band["rows"] if across_rows else band["cols"]
    return f"{band['side']} {b - a} {'rows' if across_rows else 'columns'}"
