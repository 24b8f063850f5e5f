"""Pictures of a run: contours over the correlation image, the probability map, traces, a segmentation GIF.

Every function draws on its own :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot state, no display
needed) and writes its file atomically (:func:`cellfie_caiman._files.atomic_path`), so an interrupted run never leaves
a half-written picture.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ._files import atomic_path
from .masks import bounding_box

if TYPE_CHECKING:
    from .io import Movie

logger = logging.getLogger(__name__)

_GT_COLOUR = "#ff4dff"
_REJECTED_COLOUR = "#ff4040"
#: Grey levels of the GIF (palette indices 0 .. _GREYS - 1), then its outline colour and its "unchanged" index
_GREYS = 32
_OUTLINE = _GREYS
_UNCHANGED = _GREYS + 1


def _figure(width_in: float, height_in: float, dpi: int = 110):
    """A figure on the Agg canvas (independent of pyplot and of the user's backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", bbox_inches="tight", pad_inches=0.05)
    logger.debug("wrote %s", path)  # a run's pictures are written in a staging folder: it logs them where they end
    return path


def _stretch(image: np.ndarray, low: float = 1.0, high: float = 99.7) -> tuple[float, float]:
    """Display limits from percentiles of the finite values (robust to a few hot pixels)."""
    finite = np.asarray(image, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(finite, [low, high])
    if not vmax > vmin:
        vmax = vmin + 1.0
    return float(vmin), float(vmax)


def mask_contours(masks: np.ndarray | Iterable[np.ndarray]) -> list[list[np.ndarray]]:
    """Outline of each mask as polygons in (x, y) = (col, row) pixel coordinates.

    Parameters
    ----------
    masks : ndarray, bool, shape (K, rows, cols), or an iterable of K 2-D masks

    Returns
    -------
    list of length K; item k is a list of (n, 2) arrays (x, y), one per closed outline of mask k, tracing the
    pixel edges at half-pixel offsets so that a one-pixel mask still has a visible outline.
    """
    from skimage.measure import find_contours

    out = []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        box = bounding_box(mask)
        if box is None:
            out.append([])
            continue
        r0, r1, c0, c1 = box
        crop = np.pad(mask[r0:r1, c0:c1], 1).astype(np.float32)
        polys = []
        for contour in find_contours(crop, 0.5):
            # contour is (row, col) in the padded crop: undo the pad and the crop, return (x, y)
            polys.append(np.column_stack([contour[:, 1] - 1 + c0, contour[:, 0] - 1 + r0]))
        out.append(polys)
    return out


def mask_outlines(masks: np.ndarray) -> np.ndarray:
    """Union of the one-pixel inner borders of the masks.

    Parameters
    ----------
    masks : ndarray, shape (K, rows, cols)
        Nonzero is in.

    Returns
    -------
    ndarray, bool, shape (rows, cols)
        The pixels of a mask that touch (4-connected) a pixel outside it or the image's edge.
    """
    masks = np.asarray(masks, dtype=bool)
    out = np.zeros(masks.shape[1:], bool)
    for m in masks:
        box = bounding_box(m)
        if box is None:
            continue
        r0, r1, c0, c1 = box
        crop = np.pad(m[r0:r1, c0:c1], 1)
        out[r0:r1, c0:c1] |= (crop & ~ndimage.binary_erosion(crop))[1:-1, 1:-1]
    return out


def _add_contours(ax, masks, colours, linewidth, linestyle="solid", label=None):
    from matplotlib.collections import LineCollection

    segments, seg_colours = [], []
    for polys, colour in zip(mask_contours(masks), colours, strict=True):
        for poly in polys:
            segments.append(poly)
            seg_colours.append(colour)
    if not segments:
        return None
    lc = LineCollection(segments, colors=seg_colours, linewidths=linewidth, linestyles=linestyle, label=label)
    ax.add_collection(lc)
    return lc


def plot_contours(
    background: np.ndarray,
    masks: np.ndarray,
    path: str | os.PathLike,
    *,
    scores: Sequence[float] | None = None,
    accepted: Sequence[bool] | None = None,
    gt_masks: np.ndarray | None = None,
    title: str | None = None,
    background_label: str = "correlation image",
    score_label: str = "detection score",
    score_range: tuple[float, float] | None = None,
) -> Path:
    """Contours of the ROIs over a summary image, coloured by score; ground truth and rejected ones distinguished.

    Parameters
    ----------
    background : ndarray, shape (rows, cols)
        Image shown in grey (the local correlation image), contrast-stretched between its 1st and 99.7th percentile.
    masks : ndarray, bool, shape (K, rows, cols)
        ROIs to outline.
    path : path
        Output picture (PNG; the format follows the suffix).
    scores : sequence of K floats, optional
        Colour of each outline (bright part of viridis; 0..1 when all scores lie in that range); None: one colour.
        NaN (no score) is drawn white; inf and -inf (an SNR off the scale) take the top and bottom colours.
    accepted : sequence of K bool, optional
        False marks a component rejected by quality control: drawn as a red outline.
    gt_masks : ndarray, bool, shape (N, rows, cols), optional
        Ground-truth ROIs, drawn as thin magenta dashed outlines under the others.
    title : str, optional
    background_label, score_label : str
        Texts of the legend entry of the background image and of the colour bar.
    score_range : (float, float), optional
        Scores mapped to the ends of the colour bar (default 0..1, or the scores' range if outside it; a single
        value outside it, from 0 to that value).

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    ValueError
        ``scores`` or ``accepted`` without one value per mask, or masks whose frames are not ``background``'s.
    """
    from matplotlib import colors
    from matplotlib.lines import Line2D

    background = np.asarray(background, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool).reshape((-1,) + background.shape)
    k = len(masks)
    accepted = np.ones(k, bool) if accepted is None else np.asarray(accepted, dtype=bool)
    if accepted.shape != (k,):
        raise ValueError(f"accepted has shape {accepted.shape}, expected ({k},) for {k} masks")
    rows, cols = background.shape
    width = 7.5
    height = max(3.0, width * rows / cols * 0.92)
    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    vmin, vmax = _stretch(background)
    ax.imshow(background, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    handles = [Line2D([], [], color="0.6", lw=0, marker="s", markersize=8, label=background_label)]
    linewidth = 1.2 if max(rows, cols) <= 300 else 0.8
    if gt_masks is not None and len(gt_masks):
        gt_masks = np.asarray(gt_masks, dtype=bool).reshape((-1,) + background.shape)
        _add_contours(ax, gt_masks, [_GT_COLOUR] * len(gt_masks), linewidth * 0.8, "dashed")
        handles.append(Line2D([], [], color=_GT_COLOUR, ls="--", lw=1, label=f"ground truth ({len(gt_masks)})"))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape != (k,):
            raise ValueError(f"scores has shape {scores.shape}, expected ({k},) for {k} masks")
        norm = colors.Normalize(*(score_range if score_range is not None else _colour_bar_range(scores)))
        cmap = _viridis()
        colour_of = [_score_colour(cmap, norm, s) for s in scores]
    else:
        norm = cmap = None
        colour_of = ["#ffd400"] * k
    good = np.flatnonzero(accepted)
    bad = np.flatnonzero(~accepted)
    if len(bad):  # views of the masks, not copies: (K, rows, cols) can be large
        _add_contours(ax, (masks[i] for i in bad), [_REJECTED_COLOUR] * len(bad), linewidth)
        handles.append(Line2D([], [], color=_REJECTED_COLOUR, lw=1.5, label=f"rejected ({len(bad)})"))
    _add_contours(ax, (masks[i] for i in good), [colour_of[i] for i in good], linewidth)
    label = "accepted" if len(bad) else "ROIs"
    handles.append(Line2D([], [], color=colour_of[good[0]] if len(good) else "#ffd400", lw=1.5,
                          label=f"{label} ({len(good)})"))
    if cmap is not None:
        from matplotlib.cm import ScalarMappable

        sm = ScalarMappable(norm=norm, cmap=cmap)
        sm.set_array([])
        cbar = fig.colorbar(sm, ax=ax, fraction=0.046 * min(1.0, rows / cols + 0.2), pad=0.02)
        cbar.set_label(score_label)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    below = 0.5 / (height * 0.85)  # half an inch under the axes (below the tick labels), whatever the aspect
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -below), ncol=len(handles), fontsize=8,
                    frameon=False, handlelength=1.8)
    leg.set_in_layout(True)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _colour_bar_range(scores: np.ndarray) -> tuple[float, float]:
    """The scores at the two ends of :func:`plot_contours`' colour bar: 0 and 1 when every finite score lies in
    0..1 (or none is finite), else their range; a range of one value (one score outside 0..1, or all equal)
    stretched to include 0, so that the bar has a width and the value sits at one of its ends.

    Examples
    --------
    >>> _colour_bar_range(np.array([0.2, 0.9]))
    (0.0, 1.0)
    >>> _colour_bar_range(np.array([3.0, np.inf, 12.0]))
    (3.0, 12.0)
    >>> _colour_bar_range(np.array([25.0]))
    (0.0, 25.0)
    """
    finite = np.asarray(scores, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1):
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return lo, hi


def _score_colour(cmap, norm, score: float) -> tuple[float, float, float, float]:
    """The RGBA colour of ``score``: white for NaN, the end colours of ``cmap`` for -inf and inf (and for finite
    scores beyond ``norm``'s range), else ``cmap(norm(score))``."""
    if np.isnan(score):
        return (1.0, 1.0, 1.0, 1.0)
    if np.isinf(score):
        return tuple(cmap(1.0 if score > 0 else 0.0))
    return tuple(cmap(float(np.clip(norm(score), 0.0, 1.0))))


def _trace_range(values: np.ndarray) -> tuple[float, float]:
    """The 1st and 99.9th percentile of the finite values of a trace (inf, -inf and NaN left out); ``(v, v + 1)``
    for a single finite value ``v``, ``(0, 1)`` for none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    if finite.size == 1:
        return float(finite[0]), float(finite[0]) + 1.0
    lo, hi = np.percentile(finite, [1, 99.9])
    return float(lo), float(hi)


def _viridis():
    """Viridis without its darkest third, so that every outline stands out on a dark image."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps["viridis"](np.linspace(0.3, 1.0, 256)), name="viridis_bright")


def plot_probability(
    prob_map: np.ndarray,
    path: str | os.PathLike,
    *,
    masks: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """The network's neuron-probability map (0..1, magma), with the detected ROIs outlined in cyan.

    Parameters
    ----------
    prob_map : ndarray, float, shape (rows, cols)
        Probability that a pixel belongs to a neuron.
    path : path
        Output picture.
    masks : ndarray, bool, shape (K, rows, cols), optional
        Detected ROIs to outline.
    title : str, optional

    Returns
    -------
    Path
        ``path``, written atomically.
    """
    prob_map = np.asarray(prob_map, dtype=np.float32)
    rows, cols = prob_map.shape
    width = 7.0
    fig = _figure(width, max(3.0, width * rows / cols * 0.92))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(prob_map, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
    if masks is not None and len(masks):
        masks = np.asarray(masks, dtype=bool).reshape((-1,) + prob_map.shape)
        _add_contours(ax, masks, ["#00d8ff"] * len(masks), 0.6 if max(rows, cols) > 300 else 1.0)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046 * min(1.0, rows / cols + 0.2), pad=0.02)
    cbar.set_label("P(neuron)")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    ax.set_title(title or "probability map", fontsize=10)
    return _save(fig, path)


def plot_traces(
    traces: np.ndarray,
    path: str | os.PathLike,
    *,
    fr: float,
    raw: np.ndarray | None = None,
    snr: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    n: int = 20,
    title: str | None = None,
) -> Path:
    """Stacked traces of the N components with the highest SNR (or the first N), each scaled to its own range.

    Parameters
    ----------
    traces : ndarray, shape (K, T)
        Denoised traces (CaImAn's ``C``), drawn in colour.
    path : path
        Output picture.
    fr : float
        Frame rate in Hz (time axis in seconds).
    raw : ndarray, shape (K, T), optional
        Raw traces (``C + YrA``), drawn in grey behind the denoised ones with the same scaling. Each trace is scaled
        to the range of its finite values; inf, -inf and NaN frames are left as gaps.
    snr : sequence of K floats, optional
        Ranking (highest first: inf before any finite value, NaN last) and label of each trace.
    labels : sequence of K str, optional
        Name of each trace (default ``ROI k``).
    n : int
        Most traces shown.
    title : str, optional
        Title (default: what is drawn, and how the traces were chosen); "(each scaled to its own range)" is added
        to it, since the picture has no amplitude axis.

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    ValueError
        ``raw`` or ``snr`` of the wrong shape, or ``fr`` not positive.
    """
    traces = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    k, t = traces.shape
    if raw is not None:
        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        if raw.shape != traces.shape:
            raise ValueError(f"raw traces have shape {raw.shape}, denoised {traces.shape}")
    if not fr > 0:
        raise ValueError(f"frame rate must be positive, got {fr}")
    if snr is not None:
        snr = np.asarray(snr, dtype=np.float64).reshape(-1)
        if snr.shape != (k,):
            raise ValueError(f"snr has shape {snr.shape}, expected ({k},)")
        order = np.argsort(-np.nan_to_num(snr, nan=-np.inf), kind="stable")[:n]
    else:
        order = np.arange(min(k, n))
    labels = [f"ROI {i}" for i in range(k)] if labels is None else list(labels)
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} traces")
    shown = len(order)
    fig = _figure(9.0, max(2.5, 0.42 * shown + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    time = np.arange(t) / fr
    colours = _viridis()(np.linspace(0.05, 0.85, max(shown, 1)))
    for row, i in enumerate(order):
        ref = raw[i] if raw is not None else traces[i]
        lo, hi = _trace_range(ref)
        scale = 0.9 / (hi - lo) if hi > lo else 1.0
        offset = shown - 1 - row
        if raw is not None:
            ax.plot(time, (raw[i] - lo) * scale + offset, color="0.7", lw=0.6)
        ax.plot(time, (traces[i] - lo) * scale + offset, color=colours[row], lw=0.9)
        text = labels[i] if snr is None else f"{labels[i]}  SNR {snr[i]:.1f}"
        ax.text(-0.01, offset + 0.3, text, transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=7)
    ax.set_yticks([])
    ax.set_xlim(time[0], time[-1] if t > 1 else 1.0 / fr)
    ax.set_ylim(-0.3, shown + 0.1)
    ax.set_xlabel("time (s)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    what = "denoised (colour) and raw (grey) traces" if raw is not None else "traces"
    ranked = f"{what}, top {shown} of {k}" + (" by SNR" if snr is not None else "")
    ax.set_title(f"{title or ranked} (each scaled to its own range)", fontsize=10)
    return _save(fig, path)


def _read_frames(movie, start: int, stop: int) -> np.ndarray:
    if hasattr(movie, "read"):
        return np.asarray(movie.read(start, stop), dtype=np.float32)
    return np.nan_to_num(np.asarray(movie[start:stop], dtype=np.float32))


def _frame_shape(movie) -> tuple[int, int]:
    shape = getattr(movie, "frame_shape", None)
    return tuple(int(s) for s in (shape if shape is not None else np.shape(movie)[1:]))


def _gif_frames(movie, start: int, n_out: int, window: int, sigma: float, down: int) -> np.ndarray:
    """Frames ``start ...`` as shown: running mean over ``window`` frames, Gaussian blur, ``down`` x ``down`` block
    means; float32 (n_out, rows // down, cols // down).

    Read and filtered a few frames at a time (about 64 MB of full frames), so that memory follows the shown size,
    not the movie's: each output frame depends only on its own ``window`` input frames, which are carried over from
    one block to the next.
    """
    rows, cols = _frame_shape(movie)
    r, c = (rows // down * down, cols // down * down) if down > 1 else (rows, cols)
    out = np.empty((n_out, r // down, c // down) if down > 1 else (n_out, rows, cols), np.float32)
    block = max(1, 2**24 // max(1, rows * cols))
    carried = np.empty((0, rows, cols), np.float32)
    pos, done = start, 0
    while done < n_out:
        n = min(block, n_out - done)
        new = _read_frames(movie, pos, pos + n + window - 1 - len(carried))
        pos += len(new)
        raw = np.concatenate([carried, new]) if len(carried) else np.array(new, dtype=np.float32)
        if window > 1:
            shown = raw[:n].copy()
            for k in range(1, window):
                shown += raw[k:k + n]
            shown /= np.float32(window)
            carried = raw[n:]
        else:
            shown = raw
        if sigma > 0:
            shown = ndimage.gaussian_filter(shown, (0, sigma, sigma))
        if down > 1:
            shown = shown[:, :r, :c].reshape(n, r // down, down, c // down, down).mean(axis=(2, 4))
        out[done:done + n] = shown
        done += n
    return out


def _redrawn(levels: np.ndarray, outline: np.ndarray, hold: float) -> np.ndarray:
    """Palette indices of GIF frames that redraw only what changed by more than ``hold`` grey levels.

    Parameters
    ----------
    levels : ndarray, float32, shape (n, rows, cols)
        The frames in grey levels, 0 .. ``_GREYS - 1``.
    outline : ndarray, bool, shape (rows, cols)
        Pixels drawn in the outline colour (``_OUTLINE``) in the first frame and never redrawn.
    hold : float
        A pixel is redrawn (rounded to its grey level) when its level moved more than this from the level shown;
        the others are ``_UNCHANGED``. What a viewer shows is then within ``hold`` levels of ``levels`` (within half
        a level where redrawn).

    Returns
    -------
    ndarray, uint8, shape (n, rows, cols)
        The first frame whole, then ``_UNCHANGED`` except where redrawn.
    """
    out = np.empty(levels.shape, np.uint8)
    if not len(levels):
        return out
    shown = np.rint(levels[0])
    out[0] = shown
    out[0][outline] = _OUTLINE
    inside = ~outline
    for k in range(1, len(levels)):
        redraw = np.abs(levels[k] - shown) > hold
        redraw &= inside
        shown[redraw] = np.rint(levels[k][redraw])
        out[k] = _UNCHANGED
        out[k][redraw] = shown[redraw]
    return out


def _gif_durations(n: int, fps: float) -> list[int]:
    """Durations in ms of ``n`` GIF frames at ``fps`` frames per second, each a whole number of centiseconds (the
    unit GIF stores; a viewer would truncate any rest): the differences of the frames' start times rounded to the
    centisecond, so that the first k frames last k / fps seconds to within 5 ms for every k (15 fps: 70, 70, 60 ms
    ...), where one rounded duration would drift (60 ms a frame: 16.7 fps)."""
    starts = np.rint(np.arange(n + 1) * (100.0 / fps)).astype(np.int64)
    return (np.diff(starts) * 10).tolist()


def save_gif(
    movie: Movie | np.ndarray,
    masks: np.ndarray,
    path: str | os.PathLike,
    *,
    n_frames: int = 200,
    start: int = 0,
    fps: float = 15.0,
    smooth: int = 3,
    spatial_sigma: float = 0.7,
    min_size: int = 128,
    max_size: int = 512,
    tolerance: float = 0.1,
) -> Path:
    """A stretch of the movie as an animated GIF, grey, with the ROI outlines drawn in yellow on every frame.

    Each frame after the first redraws only the pixels whose value moved more than ``tolerance`` of the display
    range away from what the GIF shows; the others keep it (GIF transparency over the frame before). The still
    background then costs almost nothing, while a neuron lighting up is redrawn: 200 frames of neurofinder.00.00-left
    (512 x 256) take 1.7 MB against 9.8 MB with every frame whole.

    Parameters
    ----------
    movie : Movie or ndarray, shape (T, rows, cols)
        A :class:`cellfie_caiman.io.Movie` (read with ``.read``) or an array.
    masks : ndarray, bool, shape (K, rows, cols)
        ROIs to outline.
    path : path
        Output ``.gif``.
    n_frames : int
        Frames shown (fewer if the movie is shorter).
    start : int
        First frame.
    fps : float
        Playback rate in frames per second: GIF stores durations in whole centiseconds, so at 15 fps the frames
        last 70, 70, 60, 70, 70, 60 ... ms, which add up to the right time (see :func:`_gif_durations`). Browsers
        play frames shorter than 20 ms for 100 ms, so above 50 fps a warning is given.
    smooth : int
        Running mean over this many frames (reduces shot noise; 1 = none).
    spatial_sigma : float
        Gaussian blur of each frame in pixels (0 = none): less shot noise, and a GIF several times smaller.
    min_size, max_size : int
        The longer side of the GIF is scaled up (by an integer factor, nearest neighbour) to at least ``min_size``
        pixels and down (by block averaging) to at most ``max_size``.
    tolerance : float
        Largest difference, as a fraction of the display range (in [0, 1)), between what a frame shows and the
        (smoothed) movie; 0: every frame whole, each pixel at the nearest of the 32 grey levels.

    Returns
    -------
    Path
        ``path``, written atomically.

    Raises
    ------
    ValueError
        ``fps`` not positive or ``tolerance`` outside [0, 1).
    """
    from PIL import Image

    if not fps > 0:
        raise ValueError(f"fps must be a positive number of frames per second, got {fps}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a fraction of the display range in [0, 1), got {tolerance}")
    if fps > 50:
        warnings.warn(f"a GIF at {fps:g} frames per second has frames shorter than 20 ms, which browsers play for "
                      "100 ms each: choose fps <= 50", stacklevel=2)
    n_total = len(movie)
    start = int(min(max(start, 0), max(n_total - 1, 0)))
    stop = int(min(n_total, start + max(1, n_frames) + max(smooth, 1) - 1))
    window = smooth if smooth > 1 and stop - start >= smooth else 1
    n_out = min(max(1, n_frames), stop - start - window + 1)
    rows, cols = _frame_shape(movie)
    masks = np.asarray(masks, dtype=bool).reshape((-1, rows, cols))
    outline = mask_outlines(masks)
    # shrink by block averaging, or grow by an integer nearest-neighbour factor
    down = int(np.ceil(max(rows, cols) / max_size))
    if down > 1:
        r, c = rows // down * down, cols // down * down
        outline = outline[:r, :c].reshape(r // down, down, c // down, down).any(axis=(1, 3))
    frames = _gif_frames(movie, start, n_out, window, spatial_sigma, down)
    longest = max(frames.shape[1:])
    up = max(1, int(np.ceil(min_size / longest)))
    while up > 1 and longest * up > max_size:
        up -= 1
    # display range from about a million values spread over the stretch (percentiles of all of it cost seconds)
    step = max(1, int(np.sqrt(frames.size / 1e6)))
    vmin, vmax = _stretch(frames[:: max(1, len(frames) // 20), ::step, ::step], 0.5, 99.8)
    # 32 grey levels: enough for a noisy movie, and LZW compresses the noise far better than with 256
    frames -= np.float32(vmin)
    frames *= np.float32((_GREYS - 1) / (vmax - vmin))
    np.clip(frames, 0, _GREYS - 1, out=frames)
    levels = _redrawn(frames, outline, tolerance * (_GREYS - 1))
    del frames
    if up > 1:
        levels = levels.repeat(up, axis=1).repeat(up, axis=2)
    palette = np.zeros((256, 3), np.uint8)
    palette[:_GREYS] = np.linspace(0, 255, _GREYS)[:, None].astype(np.uint8)
    palette[_OUTLINE] = (255, 212, 0)
    palette[_UNCHANGED] = (128, 128, 128)  # never drawn: transparent
    images = []
    for frame in levels:
        img = Image.frombytes("P", (frame.shape[1], frame.shape[0]), np.ascontiguousarray(frame).tobytes())
        img.putpalette(palette.ravel().tolist())
        images.append(img)
    path = Path(path)
    with atomic_path(path) as tmp:
        # disposal 1: each frame stays under the next, whose _UNCHANGED (transparent) pixels show it; Pillow
        # stores a frame identical to the one before (nothing redrawn) once, with the two durations added
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=_gif_durations(len(images), fps),
                       loop=0, optimize=False, transparency=_UNCHANGED, disposal=1)
    logger.debug("wrote %s (%d frames)", path, len(images))
    return path

