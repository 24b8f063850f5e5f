"""From a movie (or its summary images) to neuron masks ready to seed CNMF.

Steps: summary images -> (optional zoom to the model's neuron size) -> normalised inputs -> region-proposal U-Net
(neuron probability and centre heat map) -> candidate centres (local maxima of the heat map) -> instance network
on a subframe around each candidate (mask + score) -> keep by score -> map masks back to the original grid ->
remove duplicates.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ._checks import MIN_DIAMETER, number
from .detection import PROB_THRESHOLD, Detections, detect, tta_orientations
from .instances import LocalMasks, dedup_local, dedup_masks, place_windows
from .masks import bounding_box, mask_diameter

logger = logging.getLogger(__name__)

#: With ``neuron_diameter=None``, the masks found at the model's scale must have a median diameter within these
#: factors of its ``train_diameter`` (symmetric in log scale); otherwise the neurons are re-detected at their size
#: (see :func:`initialize`). Chosen on simulated movies of 5 neuron sizes (seeds 31-33, not the benchmark's).
AUTO_DIAMETER_RANGE = (0.8, 1.25)
#: A re-detection at another size is kept only if its summed instance score is at least this fraction of the
#: previous pass's: the size is wrong when the networks find far fewer or far less certain neurons there (on
#: simulated movies, right sizes gave 0.71-2.9, wrong ones 0.37-0.61).
AUTO_DIAMETER_KEEP = 0.7
#: At most this many re-detections, each at the median diameter of the masks of the previous pass, until it changes
#: by less than 10 %; the estimate needs at least ``AUTO_DIAMETER_MIN_MASKS`` masks.
AUTO_DIAMETER_PASSES = 2
AUTO_DIAMETER_MIN_MASKS = 10
#: Movies of fewer frames get a warning: their activity images (correlation, PNR, max) are noisy and the networks
#: miss neurons that did not fire (simulated 192 x 192 movies at 15 Hz, 2 seeds: detection F1 0.92-0.94 with 400
#: frames, 0.88 with 160, 0.79-0.80 with 80, 0.64 with 40, 0.24-0.34 with 10).
SHORT_MOVIE_FRAMES = 100
#: Summary images whose ``pnr_filtered`` was computed for a soma diameter more than this fraction away from the
#: diameter the networks are run for are warned about (as the annotation check of training allows): on simulated
#: movies of 12 px somata (3 seeds) detection F1 fell from 0.95 to 0.84-0.87 with the image filtered for 4, 6 or 24 px.
FILTER_DIAMETER_TOLERANCE = 0.1
#: With ``neuron_diameter`` given, :func:`initialize` warns (and still returns the detection at that size) when the
#: neurons found there, measured at the model's scale (their diameters divided by the one given), are clearly of
#: another size: the median diameter of their masks above the upper bound (the somata are larger: the networks cut
#: them into pieces of about the training size), or the median diameter of the regions of the neuron-probability
#: map (``prob_map > GIVEN_DIAMETER_PROB``) that hold their centres below the lower bound (the somata are smaller:
#: the masks lean towards the training size, these regions follow the somata).
#: Measured with the diameter given = the true (annotated) median diameter x 0.5, 0.67, 0.8, 1, 1.25, 1.5 and 2, on 21
#: movies: simulated somata of 8, 9, 12 and 17 px (300 frames of 128-192 px, seeds 41-43), 7 more of 12-14 px
#: (strong neuropil, rare firing, 12 neurons, 100 frames, processes, dense packing, the tests' movie), and
#: neurofinder.00.00-left (9.2 px) and 01.01 (15.3 px). At the true size masks 0.91-1.04, regions 0.98-1.32: no
#: warning. x0.5: masks 1.23-1.43, x2: regions 0.53-0.79: warned on all 21; x0.67 on 16, x1.5 on 18, x0.8 (masks up
#: to 1.18) and x1.25 (regions from 0.81) on none. The masks alone cannot tell x2 (0.62-0.87) from x1.
#: With fewer than ``AUTO_DIAMETER_MIN_MASKS`` masks at the size given (x3: 9 of the 21 movies, x4: all), the rule is
#: applied to a detection at the model's scale (:func:`_warn_about_size_at_model_scale`): warned at x3 on 20 of 21
#: (12 by the rule at the size given), at x4 on 19 (not neurofinder.01.01, whose 6-9 masks at x3 and x4 are of the
#: size given, nor a simulated movie with 1 mask of 0.82 times it), at x1 on none, nor on 24 sparse simulated fields
#: (4-8 somata of 6-32 px) at their size. x0.25 and x0.33 (the field zoomed up: hundreds of pieces) are warned about
#: by the rule at the size given.
GIVEN_DIAMETER_RANGE = (0.8, 1.2)
GIVEN_DIAMETER_PROB = 0.5

# detect, Detections and dedup_masks are documented here too (they live in .detection and .instances)
__all__ = ["Initialization", "initialize", "model_summary", "detect", "Detections", "dedup_masks"]


class Initialization(NamedTuple):
    """Neurons found by :func:`initialize`.

    Attributes
    ----------
    Ain : ndarray, bool, (rows * cols, K)
        Column k is ``masks[k]`` flattened in Fortran order (pixel ``i + j * rows``), as CaImAn's ``CNMF(Ain=...)``
        expects.
    masks : ndarray, bool, (K, rows, cols)
        One mask per neuron, sorted by decreasing score.
    scores : ndarray, float32, (K,)
        Instance network's probability that a neuron is centred at ``centers[k]``.
    centers : ndarray, float64, (K, 2)
        Candidate centre (row, col) of each neuron, original pixel grid: where the instance network was centred
        (the point ``scores`` are about), an estimate of the soma's centre. It may lie outside ``masks[k]``: when
        the mask's part at the centre was not kept (its largest part was), or in pixels without data (a blank
        stripe through the neuron, which its mask does not cover).
    prob_map : ndarray, float32, (rows, cols)
        Region-proposal probability that each pixel belongs to a neuron.
    summary : SummaryImages
        The summary images the networks saw (original grid).
    neuron_diameter : float or None
        Soma diameter (pixels) the networks were run for: the one given, the estimated one when ``initialize`` had
        to rescale, or the model's ``train_diameter`` (no zoom).
    """

    Ain: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    centers: np.ndarray
    prob_map: np.ndarray
    summary: Any
    neuron_diameter: float | None = None

    def __repr__(self) -> str:
        """Short: K, the field (rows, cols), the diameter, and each array's dtype and shape (not its values)."""
        k = np.shape(self.masks)[0] if np.ndim(self.masks) == 3 else None
        field = tuple(np.shape(self.prob_map))
        arrays = ", ".join(f"{name}={_describe(getattr(self, name))}"
                           for name in ("Ain", "masks", "scores", "centers", "prob_map", "summary"))
        return f"Initialization(K={k}, field={field}, neuron_diameter={self.neuron_diameter!r}, {arrays})"


def _describe(value: Any) -> str:
    """``'float32 (rows, cols)'`` for an array; for a NamedTuple of arrays (SummaryImages), its fields that are set
    and their common dtype and shape; the repr of anything else."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{value.dtype} {tuple(value.shape)}"
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        present = [name for name in value._fields if getattr(value, name) is not None]
        kinds = {_describe(getattr(value, name)) for name in present}
        kind = f": {kinds.pop()}" if len(kinds) == 1 else ""
        diameter = getattr(value, "filter_diameter", None)
        kind += "" if diameter is None else f", filter_diameter={diameter:g}"
        return f"{type(value).__name__}({', '.join(present)}{kind})"
    return repr(value)


def model_summary(movie, *, model="default", neuron_diameter: float | None = None, batch_frames: int | None = 250,
                  progress: bool = False):
    """The summary images a detection model reads, computed from a movie.

    :func:`cellfie_caiman.summary.summary_images` with ``filter_diameter`` set when the model reads
    ``pnr_filtered`` (to ``neuron_diameter``, or the model's ``train_diameter`` when it is None), so that
    ``initialize(model_summary(movie, ...), ...)`` equals ``initialize(movie, ...)`` with the same arguments.
    Summary images given instead of a movie are checked and returned as they are (warned about as
    :func:`initialize` warns).

    Parameters
    ----------
    movie : anything :func:`cellfie_caiman.io.load_movie` reads
    model : str, path or DetectionModel
    neuron_diameter : float, optional
        Soma diameter in pixels.
    batch_frames : int or None
    progress : bool

    Returns
    -------
    SummaryImages
    """
    from .models import model_config

    cfg = model_config(model)  # no TensorFlow needed for the summary images
    return _as_summary(movie, cfg, neuron_diameter, batch_frames, progress)


def check_detection_settings(min_score: float, prob_threshold: float, max_overlap: float, tta: bool | int) -> None:
    """``ValueError`` naming the first of :func:`initialize`'s detection settings out of its range (the score and
    probability thresholds in [0, 1], ``max_overlap`` in (0, 1], ``tta`` one of :func:`tta_orientations`'s)."""
    tta_orientations(tta)
    number(min_score, "min_score", low=0, high=1)
    number(prob_threshold, "prob_threshold", low=0, high=1)
    number(max_overlap, "max_overlap", low=0, high=1, low_open=True)


def _check_diameter(neuron_diameter: float | None, shape: tuple[int, int] | None = None) -> None:
    """``ValueError`` unless ``neuron_diameter`` is None or a number of pixels from ``MIN_DIAMETER`` to the longer
    side of the field (of ``shape``, when given)."""
    if neuron_diameter is None:
        return
    number(neuron_diameter, "neuron_diameter (pixels)", low=MIN_DIAMETER)
    if shape is not None and neuron_diameter > max(shape):
        raise ValueError(f"neuron_diameter ({neuron_diameter:g} px) is larger than the field ({shape[0]} x "
                         f"{shape[1]} px): give the soma diameter in pixels")


def _as_summary(movie_or_summary, cfg, neuron_diameter: float | None, batch_frames, progress):
    """The summary images the model ``cfg`` reads: given ones (a SummaryImages or a mapping of them, checked), or
    computed from the movie (the soma filter for ``neuron_diameter``, or the model's ``train_diameter`` when None).
    ``neuron_diameter`` is checked against the field before any work."""
    from .models.preprocess import check_images, is_summary

    if isinstance(movie_or_summary, Mapping):
        movie_or_summary = _summary_from_mapping(movie_or_summary)
    if is_summary(movie_or_summary):
        check_images(movie_or_summary, cfg.channels, "pass the movie, or compute them with summary_images(movie, "
                     "batch_frames=..., filter_diameter=<soma diameter in pixels>)")
        _check_diameter(neuron_diameter, np.shape(getattr(movie_or_summary, cfg.channels[0])))
        if "pnr_filtered" in cfg.channels:
            _warn_about_filter(getattr(movie_or_summary, "filter_diameter", None),
                               cfg.train_diameter if neuron_diameter is None else float(neuron_diameter),
                               neuron_diameter is None)
        return movie_or_summary
    from .io import load_movie
    from .summary import summary_images

    movie = load_movie(movie_or_summary)  # lazy: headers only
    _check_diameter(neuron_diameter, movie.frame_shape)
    diameter = cfg.train_diameter if neuron_diameter is None else float(neuron_diameter)
    if max(movie.frame_shape) < diameter:
        raise ValueError(f"the field ({movie.frame_shape[0]} x {movie.frame_shape[1]} px) is smaller than one neuron "
                         f"of the model's size ({diameter:g} px): give neuron_diameter (pixels) if the somata are "
                         f"smaller, or a movie of shape (frames, rows, cols)")
    _warn_about_frames(movie.n_frames, movie.frame_shape)
    return summary_images(movie, batch_frames=batch_frames, progress=progress,
                          filter_diameter=diameter if "pnr_filtered" in cfg.channels else None)


def filtered_for_another_size(filter_diameter: float | None, diameter: float | None) -> bool:
    """Whether a ``pnr_filtered`` computed for somata of ``filter_diameter`` pixels is more than
    ``FILTER_DIAMETER_TOLERANCE`` away from ``diameter`` (False when either is None: unknown)."""
    return (filter_diameter is not None and diameter is not None
            and abs(filter_diameter / diameter - 1) > FILTER_DIAMETER_TOLERANCE)


def _warn_about_filter(filter_diameter: float | None, diameter: float, model_scale: bool) -> None:
    """A ``RuntimeWarning`` when the ``pnr_filtered`` image given was computed for somata of ``filter_diameter``
    pixels, more than ``FILTER_DIAMETER_TOLERANCE`` away from the ``diameter`` the networks will be run for (the
    model's ``train_diameter`` when ``model_scale``); nothing when ``filter_diameter`` is None (unknown)."""
    if not filtered_for_another_size(filter_diameter, diameter):
        return
    run_for = (f"the model's training diameter ({diameter:g} px; no neuron_diameter given)" if model_scale
               else f"neuron_diameter={diameter:g} px")
    warnings.warn(f"the summary images' pnr_filtered was computed for somata of {filter_diameter:g} px, but the "
                  f"networks are run for {run_for}: they read an image filtered for another soma size and find fewer "
                  f"neurons. Compute the images for that size, model_summary(movie, neuron_diameter={diameter:g}) or "
                  f"summary_images(movie, batch_frames=250, filter_diameter={diameter:g}), or give "
                  f"neuron_diameter={filter_diameter:g} if that is the soma size", RuntimeWarning, stacklevel=4)


def _summary_from_mapping(images: Mapping):
    """A :class:`cellfie_caiman.summary.SummaryImages` from a mapping of its field names to images (and, optionally,
    ``filter_diameter``, the soma diameter in pixels ``pnr_filtered`` was computed for); absent fields are None
    (:func:`check_images` then names those the model needs); other keys are ignored with a warning."""
    from .summary import SummaryImages

    unknown = sorted(str(k) for k in images if k not in (*SummaryImages._fields, "filter_diameter"))
    if unknown:
        warnings.warn(f"summary images {unknown} ignored: the models read {list(SummaryImages._fields)}",
                      UserWarning, stacklevel=4)
    return SummaryImages(**{name: images.get(name) for name in SummaryImages._fields},
                         filter_diameter=images.get("filter_diameter"))


def _warn_about_frames(n_frames: int, frame_shape: tuple[int, int]) -> None:
    """Warn about a movie too short for its summary images, or one whose shape looks like (rows, cols, frames):
    more "columns" than frames and rows, with as many frames as rows (a square field) or few frames."""
    rows, cols = frame_shape
    transposed = cols > max(n_frames, rows) and (n_frames == rows or n_frames < SHORT_MOVIE_FRAMES)
    hint = (f"; the shape ({n_frames}, {rows}, {cols}) looks like (rows, cols, frames): movies are (frames, rows, "
            f"cols), pass numpy.moveaxis(movie, -1, 0) if so" if transposed else "")
    if n_frames < SHORT_MOVIE_FRAMES:
        warnings.warn(f"the movie has only {n_frames} frames: its summary images are noisy and neurons that did "
                      f"not fire will be missed (detection F1 on simulated 15 Hz movies: 0.64 with 40 frames, 0.8 "
                      f"with 80, 0.93 with 400); give the whole recording{hint}", RuntimeWarning, stacklevel=4)
    elif transposed:
        warnings.warn(f"the movie has {n_frames} frames of {rows} x {cols} px{hint}", RuntimeWarning, stacklevel=4)


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize on the pixel-area convention (edges of the field aligned), anti-aliased when shrinking."""
    from skimage.transform import resize

    if image.shape == tuple(shape):
        return image
    return resize(image.astype(np.float32), shape, order=1, mode="reflect", preserve_range=True,
                  anti_aliasing=shape[0] < image.shape[0]).astype(np.float32)


def _empty(shape, summary, prob=None, diameter: float | None = None) -> Initialization:
    rows, cols = shape
    prob = np.zeros(shape, np.float32) if prob is None else prob
    return Initialization(np.zeros((rows * cols, 0), bool), np.zeros((0, rows, cols), bool), np.zeros(0, np.float32),
                          np.zeros((0, 2)), prob, summary, diameter)


def initialize(movie_or_summary, *, model="default", neuron_diameter: float | None = None, min_score: float = 0.5,
               prob_threshold: float = PROB_THRESHOLD, max_overlap: float = 0.5, batch_frames: int | None = 250,
               tta: bool | int = True, progress: bool = False) -> Initialization:
    """Find neurons with the detection networks.

    Parameters
    ----------
    movie_or_summary : movie or SummaryImages
        Anything :func:`cellfie_caiman.io.load_movie` reads (array (T, rows, cols), path, CaImAn memmap name; a
        shape that looks like (rows, cols, T) is warned about), or precomputed
        :class:`cellfie_caiman.summary.SummaryImages` (or a dict of its fields) with the images the model reads
        (``model.config.channels``; the shipped model also reads ``pnr_filtered``: compute them with
        ``summary_images(movie, batch_frames=250, filter_diameter=d)``, ``d`` the soma diameter in pixels, or
        ``model.config.train_diameter`` when ``neuron_diameter`` is not given). Images whose recorded
        ``filter_diameter`` is more than ``FILTER_DIAMETER_TOLERANCE`` (10 %) away from that diameter are warned
        about (``RuntimeWarning``); images that do not record it (made by hand, a dict without a
        ``filter_diameter`` key, or ``SummaryImages`` built from the images alone) are taken as they are.
    model : str, path or DetectionModel
        Shipped model name (see :func:`cellfie_caiman.models.list_models`) or a ``.npz`` weight file.
    neuron_diameter : float, optional
        Typical soma diameter in pixels, from 2 to the field's longer side. The images are zoomed by
        ``model.config.train_diameter / neuron_diameter`` so neurons have the size the model was trained on; masks come
        back on the original grid. The result is the detection at that size, but when the neurons found there are
        clearly not of that size (``GIVEN_DIAMETER_RANGE``: the median diameter of their masks above 1.2 times it, or
        that of the neuron-probability regions holding their centres below 0.8 times it; on 21 movies never at the
        annotated size, always at half or twice it) a ``RuntimeWarning`` names the size they measure
        (movie pixels) and what to try. That needs ``AUTO_DIAMETER_MIN_MASKS`` (10) masks: with fewer (a size three
        or more times too large shrinks the field until the networks find almost nothing), and signal in the
        images, the same images are detected once more at the model's scale (no zoom; logged at info level, the
        time of one more detection), and if the neurons found there break the same rule, while the few found at the
        size given (if any) are not of that size either and less certain (a sparse field of large somata, found well
        at their size, is not warned about), a ``RuntimeWarning`` names their size. Either way the result is the
        detection at the size given. On 21 movies: warned at 3 times the annotated size on 20, at 4 times on 19.
        None (size unknown): detect at the model's scale (no zoom); if the masks found there
        have a median diameter outside ``AUTO_DIAMETER_RANGE`` (0.8-1.25) times ``train_diameter`` (the neurons are
        smaller or larger than those the model was trained on), detect again at that diameter, and once more if the new
        masks measure more than 10 % differently (the summary images are not recomputed). A re-detection is kept only if
        the networks are about as sure of it (summed instance score at least ``AUTO_DIAMETER_KEEP``, 0.7, times the
        previous pass's): masks that are merely drawn smaller than the annotation would have it must not shrink the
        zoom. The diameter used is returned (``neuron_diameter``). Neurons more than ~2x the training size are cut into
        pieces of about that size, which this check may not notice: give their diameter.
    min_score : float
        Keep instances whose score is at least this (0..1; lower finds more, less certain neurons).
    prob_threshold : float
        Candidate centres need at least this region-proposal probability.
    max_overlap : float
        Two kept masks with IoU above this (or one more than 80 % inside the other) are one neuron: the
        higher-scored is kept.
    batch_frames : int or None
        Frames per batch for the max image of :func:`cellfie_caiman.summary.summary_images` (the models were
        trained with 250).
    tta : bool or int
        Average both networks' outputs over the 8 rotations and flips of the field and of each subframe
        (test-time augmentation; True, the default, and the setting of every figure in the model card). 4: over
        the four flips only, 1.7 times as fast on a 512 x 512 field on 2 CPU cores and about as accurate on the
        shipped model's validation data (F1 0.969 against 0.967 on five simulated movies, 0.956 against 0.959 on
        five others, 0.555 against 0.548 on the real excerpts' held-out strips). False (or 1): one pass of each
        network, for quick looks: 3.4 times as fast, less accurate (0.963 and 0.512; model card, "Speed and
        portability").
    progress : bool
        Progress bars while computing summary images and over the networks' passes (one bar per detection pass).

    Returns
    -------
    Initialization
        Empty (K = 0, ``Ain`` of shape (pixels, 0)) with a ``RuntimeWarning`` when the images carry no signal or
        the networks find no neuron. Edge rows and columns without data (a motion-corrected movie's NaN or zero
        border: no temporal variation, or no finite value) are left out of the networks' field: no mask there,
        ``prob_map`` 0. Pixels without data inside the field (the dead columns of a stitched field, a masked
        patch) are shown to the networks filled from the nearest pixels with data, so that their edge does not look
        like structure; masks are cut to the pixels with data (a mask left smaller than a tenth of a soma is
        dropped), and ``prob_map`` is 0 there.

    Raises
    ------
    ValueError
        A setting out of its range, a field smaller than one neuron, summary images that are missing, not 2-D, of
        different shapes or not real numbers, or a model file that cannot be read (``FileNotFoundError`` when it
        does not exist). Movies that cannot be read raise :class:`cellfie_caiman.io.MovieError`.
    """
    from .models import load_model

    check_detection_settings(min_score, prob_threshold, max_overlap, tta)  # bad values fail here, before any work
    _check_diameter(neuron_diameter)
    net = load_model(model)
    cfg = net.config
    summary = _as_summary(movie_or_summary, cfg, neuron_diameter, batch_frames, progress)
    images = _checked_images(summary, cfg.channels)
    shape = images[cfg.channels[0]].shape
    bad = [name for name, im in images.items() if not np.isfinite(im).any()]
    if bad:
        warnings.warn(f"summary images {bad} have no finite value; no neuron can be found", RuntimeWarning,
                      stacklevel=2)
        return _empty(shape, summary, diameter=cfg.train_diameter if neuron_diameter is None
                      else float(neuron_diameter))

    has_data = _has_data(images, summary)
    box = _data_box(has_data)
    if box[:2] != (0, shape[0]) or box[2:] != (0, shape[1]):
        logger.info("rows %d:%d and columns %d:%d hold the movie's data (the others are constant or not finite): "
                    "detecting there", *box)
        images = {name: im[box[0]:box[1], box[2]:box[3]] for name, im in images.items()}
        has_data = has_data[box[0]:box[1], box[2]:box[3]]
    data = None
    if has_data.any() and not has_data.all():  # a blank stripe or patch inside the field (stitched, masked)
        logger.info("%d pixels inside the field hold no data (constant or not finite): the networks see them filled "
                    "from the nearest pixels with data, and no mask covers them", int((~has_data).sum()))
        images, data = _fill_blank(images, has_data), has_data
    settings = dict(min_score=min_score, prob_threshold=prob_threshold, max_overlap=max_overlap, tta=tta,
                    progress=progress, box=box, data=data)
    if neuron_diameter is not None:
        result = _detect_at(net, images, summary, float(neuron_diameter), **settings)
        if len(result.masks) >= AUTO_DIAMETER_MIN_MASKS:
            _warn_about_size(result)  # the user's choice stands: said, not changed
        elif _worth_a_check_at_model_scale(result, cfg.train_diameter):
            logger.info("only %d neurons found for a diameter of %.1f px: detecting once more at the model's scale "
                        "(%.1f px, no zoom) to check that size", len(result.masks), result.neuron_diameter,
                        cfg.train_diameter)
            _warn_about_size_at_model_scale(result, _detect_at(net, images, summary, cfg.train_diameter, **settings))
        return _warn_if_empty(result, min_score)
    result = _detect_at(net, images, summary, cfg.train_diameter, **settings)
    for k in range(AUTO_DIAMETER_PASSES):
        if len(result.masks) < AUTO_DIAMETER_MIN_MASKS:
            break
        used, found = result.neuron_diameter, mask_diameter(result.masks)
        low, high = AUTO_DIAMETER_RANGE if k == 0 else (0.9, 1.1)
        if low <= found / used <= high:
            break
        logger.info("the neurons found for a diameter of %.1f px measure %.1f px: detecting them again at that size",
                    used, found)
        again = _detect_at(net, images, summary, found, **settings)
        if len(again.masks) < AUTO_DIAMETER_MIN_MASKS:  # nothing to go on at that size: keep what was found
            break
        kept = float(again.scores.sum()) / max(float(result.scores.sum()), 1e-12)
        if kept < AUTO_DIAMETER_KEEP:
            logger.info("at %.1f px the networks find less (summed score %.2f times that at %.1f px): keeping %.1f px",
                        found, kept, used, used)
            break
        logger.info("summed score at %.1f px: %.2f times that at %.1f px", found, kept, used)
        result = again
    return _warn_if_empty(result, min_score)


def _warn_if_empty(result: Initialization, min_score: float) -> Initialization:
    """``result``, with a warning that says what to check when the networks ran and found no neuron (an empty or
    constant movie was already warned about, and has an all-zero ``prob_map``)."""
    if len(result.masks) == 0 and result.prob_map.any():
        warnings.warn(f"no neuron found for a soma diameter of {result.neuron_diameter:g} px (highest neuron "
                      f"probability {float(result.prob_map.max()):.2f}): check neuron_diameter (pixels) and the movie; "
                      f"a lower min_score ({min_score:g}) keeps less certain neurons", RuntimeWarning, stacklevel=3)
    return result


def region_diameter(prob_map: np.ndarray, centers: np.ndarray, threshold: float = GIVEN_DIAMETER_PROB) -> float:
    """Median diameter (pixels, ``2 * sqrt(area / pi)``) of the connected regions of ``prob_map > threshold`` that
    hold at least one of ``centers``.

    Parameters
    ----------
    prob_map : ndarray, float, (rows, cols)
        Neuron probability of each pixel (:attr:`Initialization.prob_map`).
    centers : ndarray, float, (K, 2)
        Neuron centres (row, col) in pixels; those outside the field are moved to its edge.
    threshold : float
        Probability above which a pixel belongs to a region (4-connected).

    Returns
    -------
    float
        Pixels; NaN when no centre lies in a region.
    """
    from scipy import ndimage

    labels, _ = ndimage.label(np.asarray(prob_map) > threshold)
    centers = np.round(np.asarray(centers, np.float64).reshape(-1, 2)).astype(int)
    rows = np.clip(centers[:, 0], 0, labels.shape[0] - 1)
    cols = np.clip(centers[:, 1], 0, labels.shape[1] - 1)
    held = np.unique(labels[rows, cols])
    held = held[held > 0]
    if not held.size:
        return float("nan")
    return float(2 * np.sqrt(np.median(np.bincount(labels.ravel())[held]) / np.pi))


#: What to try besides another size, the end of both size warnings.
_ESTIMATE_HINT = ("neuron_diameter=None (cellfie-caiman: no --diameter, and neither data.neuron_diameter nor "
                  "data.pixel_size in the parameter file) to let initialize estimate it")


def _size_mismatch(found: Initialization, given: float) -> tuple[str, float, float] | None:
    """``(looks, masks, regions)`` when the neurons of ``found`` are clearly not of ``given`` pixels
    (``GIVEN_DIAMETER_RANGE``): ``looks`` is ``"larger"`` when the median diameter of their masks (``masks``, pixels)
    is more than its upper bound times ``given``, ``"smaller"`` when that of the neuron-probability regions holding
    their centres (``regions``, pixels) is less than its lower bound times it; None when neither (or with fewer
    than ``AUTO_DIAMETER_MIN_MASKS`` masks: too few to measure)."""
    if len(found.masks) < AUTO_DIAMETER_MIN_MASKS:
        return None
    masks = mask_diameter(found.masks)
    regions = region_diameter(found.prob_map, found.centers)
    low, high = GIVEN_DIAMETER_RANGE
    if masks > high * given:
        return "larger", masks, regions
    if regions < low * given:
        return "smaller", masks, regions
    return None


def _warn_about_size(result: Initialization) -> None:
    """A ``RuntimeWarning`` when the neurons found for the ``neuron_diameter`` given (``result.neuron_diameter``) do
    not have that size (:func:`_size_mismatch`): the median diameter of their masks is more than its upper bound
    times the size given (the somata are larger), or that of the probability regions holding their centres is less
    than its lower bound times it (smaller). Nothing with fewer than ``AUTO_DIAMETER_MIN_MASKS`` masks."""
    given = float(result.neuron_diameter)
    mismatch = _size_mismatch(result, given)
    if mismatch is None:
        return
    looks, masks, regions = mismatch
    n = len(result.masks)
    if looks == "larger":
        found = masks
        measured = f"the {n} masks found there measure {masks:.1f} px across (median), {masks / given:.2f} times that"
        why = "the networks cut them into pieces"
    else:
        found = regions
        measured = (f"the neuron-probability regions of the {n} neurons found there measure {regions:.1f} px across "
                    f"(median), {regions / given:.2f} times that (their masks {masks:.1f} px)")
        why = "the networks merge or miss them and draw masks too large"
    bound = "or more" if looks == "larger" else "or less"
    warnings.warn(f"neuron_diameter={given:g} px, but {measured}: the somata look {looks}, and {why}. The result is "
                  f"kept for {given:g} px as asked; try neuron_diameter={found:.1f} {bound} (pixels; what is found at "
                  f"a wrong size leans towards that size), or {_ESTIMATE_HINT}", RuntimeWarning, stacklevel=3)


def _worth_a_check_at_model_scale(result: Initialization, train_diameter: float) -> bool:
    """Whether :func:`initialize`, given ``neuron_diameter`` (``result.neuron_diameter``) and finding too few masks
    for :func:`_warn_about_size` (a size far too large shrinks the field until the networks find almost nothing),
    detects once more at the model's scale to check that size: when the networks ran on signal (``prob_map`` not all
    zero: a constant movie was warned about already) and the size given is outside ``GIVEN_DIAMETER_RANGE`` times
    ``train_diameter`` (nearer, the model's scale would measure the same)."""
    low, high = GIVEN_DIAMETER_RANGE
    ratio = float(result.neuron_diameter) / train_diameter
    return bool(result.prob_map.any()) and not low <= ratio <= high


def _few_masks_agree(result: Initialization, at_model: Initialization, looks: str) -> bool:
    """Whether the few masks of ``result`` (found for the size given) side with ``at_model`` (found at the model's
    scale, where the neurons look ``looks`` than that size): there are none, or they too are clearly not of the
    size given (``GIVEN_DIAMETER_RANGE``: smaller, the median diameter of their masks or of the probability regions
    holding their centres below its lower bound times the size, or no centre in such a region; larger, that of their
    masks above its upper bound) and the networks are less sure of them (mean score) than of those at the model's
    scale.

    Few large neurons in a sparse field, found well at their size, are cut into many pieces at the model's scale:
    their own masks, of the size given and sure, keep them from a warning. Simulated sparse fields (4-9 somata of
    16-35 px, 24 fields with 4-9 masks at their size): the smaller of the two diameters 0.88-1.11 times the size,
    mean score up to 0.16 above the model scale's or, on one field, 0.06 below; three or four times the somata's
    size given (simulated, 1-9 masks there): 0.30-0.77 or no centre in a region, mostly 0.07-0.26 below."""
    if len(result.masks) == 0:
        return True
    given = float(result.neuron_diameter)
    low, high = GIVEN_DIAMETER_RANGE
    masks = mask_diameter(result.masks) / given
    if looks == "smaller":
        regions = region_diameter(result.prob_map, result.centers) / given
        off = masks < low or not regions >= low  # NaN: no centre in a region of probability above 0.5
    else:
        off = masks > high
    return off and float(result.scores.mean()) < float(at_model.scores.mean())


def _warn_about_size_at_model_scale(result: Initialization, at_model: Initialization) -> None:
    """A ``RuntimeWarning`` when ``result``, the few neurons found for the ``neuron_diameter`` given, comes with
    ``at_model``, a detection of the same images at the model's scale (``at_model.neuron_diameter`` is its
    ``train_diameter``), that finds at least ``AUTO_DIAMETER_MIN_MASKS`` neurons clearly not of the size given
    (:func:`_size_mismatch`, the rule of :func:`_warn_about_size`), and the few masks found at the size given do not
    contradict it (:func:`_few_masks_agree`). It names the median diameter of the masks found at the model's
    scale (movie pixels) as the size to try: masks found there lean towards ``train_diameter``, so the somata are
    that size, or further from it when it is more than ``AUTO_DIAMETER_RANGE`` away."""
    given, model_d = float(result.neuron_diameter), float(at_model.neuron_diameter)
    mismatch = _size_mismatch(at_model, given)
    if mismatch is None or not _few_masks_agree(result, at_model, mismatch[0]):
        return
    looks, masks, regions = mismatch
    n = len(result.masks)
    few = ("no neuron was found there" if n == 0 else
           f"only {n} {'neuron was' if n == 1 else 'neurons were'} found there (masks {mask_diameter(result.masks):.1f}"
           f" px across, median; mean score {float(result.scores.mean()):.2f})")
    if looks == "larger":
        measured = f"masks measure {masks:.1f} px across (median), {masks / given:.2f} times {given:g} px"
        zoom = f"zoomed {model_d / given:.2f}x for the networks, the neurons too large for them to find"
    else:
        measured = (f"neuron-probability regions measure {regions:.1f} px across (median), {regions / given:.2f} "
                    f"times {given:g} px (their masks {masks:.1f} px)")
        zoom = f"shrunk {model_d / given:.2f}x for the networks, the neurons too small for them to find"
    low, high = AUTO_DIAMETER_RANGE
    bound = "" if low <= masks / model_d <= high else (" or less" if masks < model_d else " or more")
    warnings.warn(f"neuron_diameter={given:g} px, but {few}; at the model's own scale (somata of {model_d:.1f} px, no "
                  f"zoom) the networks find {len(at_model.masks)} neurons (mean score "
                  f"{float(at_model.scores.mean()):.2f}), whose {measured}: the somata look {looks}, and at "
                  f"{given:g} px the field is {zoom}. The result is kept for {given:g} px as asked; try "
                  f"neuron_diameter={masks:.1f}{bound} (pixels, the median of the masks found at the model's scale, "
                  f"which lean towards its {model_d:.1f} px), or {_ESTIMATE_HINT}", RuntimeWarning, stacklevel=3)


def _checked_images(summary, channels) -> dict[str, np.ndarray]:
    """The images ``channels`` of ``summary`` as arrays; ``ValueError`` unless they are 2-D, of one shape and real
    numbers."""
    images = {name: np.asarray(getattr(summary, name)) for name in channels}
    shape = images[channels[0]].shape
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"summary images must be 2-D (rows, cols), got shape {shape}")
    if any(im.shape != shape for im in images.values()):
        raise ValueError("the summary images must all have one shape, got "
                         + ", ".join(f"{name} {im.shape}" for name, im in images.items()))
    odd = [f"{name} ({im.dtype})" for name, im in images.items() if im.dtype.kind not in "biuf"]
    if odd:
        raise ValueError(f"summary images must be real numbers (integer or float), got {', '.join(odd)}")
    return images


def _has_data(images: dict[str, np.ndarray], summary) -> np.ndarray:
    """Bool (rows, cols): the pixels of the field that hold data.

    A pixel has no data when no image read is finite there, or when the movie's temporal standard deviation
    (``summary.std``, when it has one of the field's shape) is 0 or not finite there: a recorded pixel always
    fluctuates (a movie's NaN or zero border after motion correction, the dead columns of a stitched field, the
    masked part of a field have none).
    """
    shape = next(iter(images.values())).shape
    has_data = np.zeros(shape, bool)
    for im in images.values():
        has_data |= np.isfinite(im)
    std = getattr(summary, "std", None)
    if std is not None and np.shape(std) == shape:
        std = np.asarray(std, np.float64)
        has_data &= np.isfinite(std) & (std > 0)
    return has_data


def _data_box(has_data: np.ndarray) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: the rows and columns of the field that hold data (``has_data``, from
    :func:`_has_data`), inside the edge rows and columns that have none; the whole field when no pixel has data."""
    box = bounding_box(has_data)
    return (0, has_data.shape[0], 0, has_data.shape[1]) if box is None else box


def _fill_blank(images: dict[str, np.ndarray], has_data: np.ndarray) -> dict[str, np.ndarray]:
    """``images`` with each pixel without data (``~has_data``, some pixels have data) set to the value of the nearest
    pixel with data: a blank stripe or patch then continues the field around it instead of drawing a sharp edge
    (zeros) or a flat band (a constant fill) that the networks would read as structure. Float32 copies."""
    from scipy import ndimage

    _, (rows, cols) = ndimage.distance_transform_edt(~has_data, return_indices=True)
    return {name: np.asarray(im, np.float32)[rows, cols] for name, im in images.items()}


def _clip_to_data(local: LocalMasks, index: np.ndarray, centers: np.ndarray, data: np.ndarray,
                  min_area: float) -> tuple[LocalMasks, np.ndarray, np.ndarray]:
    """Placed masks (``local`` with their ``index`` and ``centers``, as :func:`place_windows` returns them) cut to
    the pixels with data (``data``, bool, the field of ``local``); those left smaller than ``min_area`` pixels are
    dropped. The centres stay the candidates' (where the instance network was centred, the soma's centre within a
    few pixels on simulated movies), even in the cut-off part: the cut mask's centroid lies off the soma's centre
    towards the side with data."""
    keep, crops, boxes = [], [], []
    for k, (crop, (r0, r1, c0, c1)) in enumerate(zip(local.crops, local.boxes, strict=True)):
        cut = crop & data[r0:r1, c0:c1]
        if cut.sum() >= max(min_area, 1):
            a, b, c, d = bounding_box(cut)
            keep.append(k)
            crops.append(cut[a:b, c:d])
            boxes.append((r0 + a, r0 + b, c0 + c, c0 + d))
    return (LocalMasks(crops, np.array(boxes, int).reshape(-1, 4), local.shape), index[keep],
            centers[keep].reshape(-1, 2))


def _detect_at(net, images: dict, summary, diameter: float, *, min_score: float, prob_threshold: float,
               max_overlap: float, tta: bool | int, progress: bool = False,
               box: tuple[int, int, int, int] | None = None, data: np.ndarray | None = None) -> Initialization:
    """:func:`initialize` for somata of ``diameter`` pixels: images zoomed by ``train_diameter / diameter``.

    ``images`` cover rows ``box[0]:box[1]`` and columns ``box[2]:box[3]`` of the field of ``summary`` (the whole
    field when ``box`` is None); the result is on the whole field, with no mask and zero probability outside.
    ``data`` (bool, the shape of ``images``; None: every pixel): the pixels with data, the only ones masks may cover
    and the only ones with a nonzero probability.
    """
    from .models import stack_inputs

    cfg = net.config
    shape = images[cfg.channels[0]].shape
    r0, r1, c0, c1 = (0, shape[0], 0, shape[1]) if box is None else box
    field = shape if box is None else np.shape(getattr(summary, cfg.channels[0]))
    ratio = cfg.train_diameter / diameter
    scaled_shape = (max(1, int(round(shape[0] * ratio))), max(1, int(round(shape[1] * ratio))))
    if ratio != 1.0:  # the networks' time and memory grow with the zoomed field's pixels
        logger.info("neurons of %.1f px: the %d x %d px field is zoomed %.2fx to %d x %d px for the networks (model "
                    "trained at %.1f px)", diameter, *shape, ratio, *scaled_shape, cfg.train_diameter)
    scaled = {name: _resize(np.where(np.isfinite(im), im, np.nan).astype(np.float32), scaled_shape)
              if ratio != 1.0 else im for name, im in images.items()}
    inputs = stack_inputs(scaled, cfg)
    if not inputs.any():
        warnings.warn("the summary images are constant (empty or constant movie?); no neuron can be found",
                      RuntimeWarning, stacklevel=3)
        return _empty(field, summary, diameter=diameter)

    det = detect(net, inputs, prob_threshold=prob_threshold, tta=tta, progress=progress)
    keep = det.scores >= min_score
    min_area = 0.1 * np.pi * (cfg.train_diameter / 2) ** 2 / ratio**2
    local, index, centers = place_windows(det, keep, shape, scaled_shape, cfg.window, min_area)
    if data is not None:
        local, index, centers = _clip_to_data(local, index, centers, data, min_area)
    local = LocalMasks(local.crops, local.boxes + np.array([r0, r0, c0, c0]), tuple(field))
    centers = centers + np.array([r0, c0], np.float64)
    scores = det.scores[index]
    order = dedup_local(local, scores, max_overlap=max_overlap)
    masks, ain = local.dense(order), local.ain(order)
    scores, centers = scores[order].astype(np.float32), centers[order]
    prob = np.zeros(field, np.float32)
    prob[r0:r1, c0:c1] = _resize(det.prob, shape) if data is None else np.where(data, _resize(det.prob, shape), 0)
    logger.info("%d candidates, %d kept, %d after removing duplicates", len(det.scores), int(keep.sum()), len(order))
    if len(masks) == 0:
        return _empty(field, summary, prob, diameter)
    return Initialization(ain, masks, scores, centers, prob, summary, diameter)
