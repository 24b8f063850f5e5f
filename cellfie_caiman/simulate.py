"""Synthetic two-photon calcium-imaging movies with known ground truth.

:func:`simulate` draws a field of view that looks like a neurofinder recording closely enough to train and test
neuron detectors on: ring-shaped somata (GCaMP fills the cytoplasm, the nucleus is dimmer) of varied size,
ellipticity and resting brightness (some brighter, many darker than the neuropil around them), overlapping
neighbours, a textured and weakly active neuropil that the somata displace (with dark blood vessels, blurred
out-of-focus somata, optionally firing, and small active puncta that are not neurons; optionally partly a mesh of
thin processes whose dark gaps are not somata either), a low-rank drifting background,
bursty Poisson spiking turned into calcium by an AR(1) or AR(2) process, optional bleaching, and
Poisson-Gaussian noise.

The movie is an exact sum of its parts plus noise::

    movie[t] = bleaching[t] * sum_k footprints[k] * calcium[k, t]
               + sum_j background[j] * background_traces[j, t] + noise[t],    bleaching = background_traces[0]

with ``calcium[k] = AR filter of spikes[k]`` (``c_t = sum_i g[k, i] c_{t-1-i} + s_t``, zero before the first
frame). ``background`` holds ``nb + 3`` components:

* ``background[0]``: the resting image (dark offset, neuropil displaced by the somata, and every soma's resting
  fluorescence); its trace is the bleaching curve (1 at the first frame).
* ``background[1]``: the neuropil (ADU, also part of ``background[0]``); its trace is the neuropil's weak relative
  fluctuation (about zero mean, follows the population's activity, never below -0.5).
* ``background[2]``: small bright puncta (dendrite and axon cross-sections, also part of ``background[0]``); its
  trace is their own calcium activity (relative to their resting brightness).
* ``background[3:nb + 3]``: ``nb`` smooth fields whose traces drift slowly around 1.
* ``background[nb + 3:]``: only with ``out_of_focus_activity > 0``, one image per out-of-focus soma (its resting
  brightness is part of ``background[0]`` and ``background[1]``); its trace is its own relative activity.

Bleaching is the indicator's (GCaMP's): fluorescence is proportional to the unbleached indicator, so the bleaching
curve scales the neurons' transients as well as every background trace (resting image, neuropil, puncta, drifting
fields, out-of-focus somata), and dF/F is what it would be without bleaching. ``calcium`` and ``spikes`` are the
indicator-free truth (not bleached); the neurons' fluorescence in the movie is ``footprints * calcium`` times the
bleaching curve ``background_traces[0]`` (all ones with ``bleach=0``). The dark ``offset`` is part of
``background[0]``, so it bleaches with it (not physical: leave ``offset=0`` where that matters).

Units are photo-electrons times ``gain`` (ADU). The noise of pixel value ``x`` has variance
``gain * x + read_noise**2``.
"""
from __future__ import annotations

import logging
import math
import numbers
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
from scipy.signal import lfilter
from scipy.special import expit
from tqdm import tqdm

from ._checks import frame_shape, number

logger = logging.getLogger(__name__)

__all__ = ["Simulation", "simulate", "ar_coefficients"]


class Simulation(NamedTuple):
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    movie : ndarray, float32, (T, rows, cols)
        The noisy movie in ADU. Its size is ``4 * T * rows * cols`` bytes (500 x 512 x 512: 0.5 GB).
    masks : ndarray, bool, (N, rows, cols)
        What a human would outline: ``footprint > mask_threshold * max(footprint)`` with holes filled.
    footprints : ndarray, float32, (N, rows, cols)
        Spatial footprints in ADU per unit of calcium (the peak is the response to one spike at the brightest
        pixel). Dense: ``4 * N * rows * cols`` bytes (300 neurons of 512 x 512: 315 MB).
    calcium : ndarray, float64, (N, T)
        Calcium traces in spike units; ``calcium[k]`` is ``spikes[k]`` filtered by the AR process ``g[k]``. The
        indicator-free truth: in :func:`simulate`'s movies with ``bleach > 0`` the neurons' fluorescence is
        ``footprints * calcium * background_traces[0]`` (the bleaching curve), so their dF/F is kept.
    spikes : ndarray, float64, (N, T)
        Number of spikes of each neuron in each frame (whole numbers).
    background : ndarray, float32, (nb + 3, rows, cols)
        Spatial background components (see the module docstring for their order; one more per out-of-focus
        soma when they are active).
    background_traces : ndarray, float64, (nb + 3, T)
        Their temporal traces.
    noise_sigma : float
        Root-mean-square noise standard deviation over the movie, ``sqrt(gain * mean(clean) + read_noise**2)``.
    centers : ndarray, float64, (N, 2)
        Soma centres (row, col) in pixels.
    fs : float
        Frame rate in Hz.
    decay_time : float
        Decay time constant of the calcium transients in seconds.
    g : ndarray, float64, (N, p)
        AR coefficients of each neuron.
    """

    movie: np.ndarray
    masks: np.ndarray
    footprints: np.ndarray
    calcium: np.ndarray
    spikes: np.ndarray
    background: np.ndarray
    background_traces: np.ndarray
    noise_sigma: float
    centers: np.ndarray
    fs: float
    decay_time: float
    g: np.ndarray


def ar_coefficients(decay_time: float, fs: float, p: int = 1, rise_time: float = 0.05) -> np.ndarray:
    """AR coefficients of a calcium transient.

    Parameters
    ----------
    decay_time : float
        Decay time constant in seconds.
    fs : float
        Frame rate in Hz.
    p : int
        1: instantaneous rise, ``g = [exp(-1 / (decay_time * fs))]``. 2: a rise with time constant
        ``rise_time``, ``g = [d + r, -d * r]`` with ``d``, ``r`` the decay and rise factors per frame.
    rise_time : float
        Rise time constant in seconds (only for ``p = 2``).

    Returns
    -------
    ndarray, float64, (p,)
    """
    number(decay_time, "decay_time (s)", low=0, low_open=True)
    number(fs, "fs (Hz)", low=0, low_open=True)
    d = math.exp(-1.0 / (decay_time * fs))
    if p == 1:
        return np.array([d])
    if p == 2:
        if not (isinstance(rise_time, numbers.Real) and 0 < rise_time < decay_time):
            raise ValueError(f"rise_time must be in (0, decay_time={decay_time}), got {rise_time}")
        r = math.exp(-1.0 / (rise_time * fs))
        return np.array([d + r, -d * r])
    raise ValueError(f"p must be 1 or 2, got {p}")


# ----------------------------------------------------------------------------------------------------------------
# spatial parts


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A smooth random field with zero mean and unit standard deviation; ``scale`` is its correlation length (px).

    Large scales are drawn on a coarse grid and interpolated, so that they cost no more than small ones.
    """
    rows, cols = shape
    step = max(int(scale // 2), 1)
    coarse = (rows // step + 6, cols // step + 6)
    field = ndi.gaussian_filter(rng.standard_normal(coarse), sigma=scale / step, mode="wrap")
    if step > 1:
        field = ndi.zoom(field, step, order=3)
    field = field[3 * step: 3 * step + rows, 3 * step: 3 * step + cols]
    field = field - field.mean()
    sd = field.std()
    return field / sd if sd > 0 else field


def _place_centers(rng: np.random.Generator, shape: tuple[int, int], diameters: np.ndarray,
                   min_distance: float) -> np.ndarray:
    """Centres (row, col) at least ``min_distance * mean(d_i, d_j)`` apart, inside the frame.

    Raises ValueError when the neurons do not fit.
    """
    rows, cols = shape
    n = len(diameters)
    if n > _max_disjoint(shape, diameters, min_distance):
        raise ValueError(f"cannot place {n} neurons of diameter ~{np.mean(diameters):.1f} px at least "
                         f"{min_distance} diameters apart in a {rows}x{cols} frame (they cannot fit); use fewer "
                         "neurons, a smaller diameter or a smaller min_distance")
    centers = np.empty((n, 2))
    placed = 0
    tries = 0
    max_tries = 200 * n + 1000
    while placed < n:
        if tries > max_tries:
            raise ValueError(f"cannot place {n} neurons of diameter ~{np.mean(diameters):.1f} px at least "
                             f"{min_distance} diameters apart in a {rows}x{cols} frame; use fewer neurons, a smaller "
                             "diameter or a smaller min_distance")
        batch = 256
        cand = rng.uniform(size=(batch, 2))
        for c in cand:
            tries += 1
            d = diameters[placed]
            margin = 0.25 * d
            pos = np.array([margin + c[0] * (rows - 1 - 2 * margin), margin + c[1] * (cols - 1 - 2 * margin)])
            if placed:
                dist = np.hypot(*(centers[:placed] - pos).T)
                if np.any(dist < min_distance * 0.5 * (diameters[:placed] + d)):
                    continue
            centers[placed] = pos
            placed += 1
            if placed == n:
                break
    return centers


def _max_disjoint(shape: tuple[int, int], diameters: np.ndarray, min_distance: float) -> float:
    """An upper bound on how many centres fit: discs of radius ``min_distance * min(diameters) / 2`` around them
    are disjoint and lie in the frame grown by that radius, so their total area is at most its area."""
    if len(diameters) == 0 or min_distance <= 0:
        return math.inf
    r = 0.5 * min_distance * float(np.min(diameters))
    return (shape[0] - 1 + 2 * r) * (shape[1] - 1 + 2 * r) / (math.pi * r * r)


class _Cell(NamedTuple):
    rows: np.ndarray  # flat pixel indices are rows * cols + cols
    cols: np.ndarray
    shape: np.ndarray  # ring profile, peak 1
    soma: np.ndarray  # filled soft ellipse, peak 1


def _draw_cell(rng: np.random.Generator, center: np.ndarray, diameter: float, frame: tuple[int, int],
               ellipticity: tuple[float, float], nucleus_size: tuple[float, float],
               nucleus_dim: tuple[float, float], edge: float, texture: float, filled: bool = False) -> _Cell:
    """One soma: a soft-edged ellipse with a dimmer, slightly off-centre nucleus, cut to the frame.

    A ``filled`` soma (GCaMP in the nucleus too, typical of over-expressing cells) has a nucleus as bright as or
    brighter than its cytoplasm.
    """
    radius = 0.5 * diameter
    q = rng.uniform(*ellipticity)  # minor / major axis
    a, b = radius / math.sqrt(q), radius * math.sqrt(q)
    theta = rng.uniform(0, math.pi)
    h = int(math.ceil(a + 4 * edge + 1))
    r0, c0 = int(round(center[0])), int(round(center[1]))
    rr = np.arange(max(r0 - h, 0), min(r0 + h + 1, frame[0]))
    cc = np.arange(max(c0 - h, 0), min(c0 + h + 1, frame[1]))
    dy = rr[:, None] - center[0]
    dx = cc[None, :] - center[1]
    ct, st = math.cos(theta), math.sin(theta)
    u = ct * dy + st * dx
    v = -st * dy + ct * dx
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    soma = expit((1.0 - rho) * radius / edge)
    # nucleus: smaller, rounder, displaced a little from the centre
    fn = rng.uniform(*nucleus_size)
    off = rng.normal(scale=0.1 * radius, size=2)
    qn = math.sqrt(q)
    an, bn = fn * radius / math.sqrt(qn), fn * radius * math.sqrt(qn)
    un = ct * (dy - off[0]) + st * (dx - off[1])
    vn = -st * (dy - off[0]) + ct * (dx - off[1])
    rhon = np.sqrt((un / an) ** 2 + (vn / bn) ** 2)
    nucleus = expit((1.0 - rhon) * fn * radius / edge)
    dim = rng.uniform(-0.4, 0.0) if filled else rng.uniform(*nucleus_dim)
    shape = soma * (1.0 - dim * nucleus)
    if texture > 0:
        tex = ndi.gaussian_filter(rng.standard_normal(shape.shape), 1.0)
        tex /= max(tex.std(), 1e-12)
        shape = shape * np.clip(1.0 + texture * tex, 0.2, None)
    keep = soma > 1e-3
    shape = np.where(keep, shape, 0.0)
    soma = np.where(keep, soma, 0.0)
    peak = shape.max()
    if peak > 0:
        shape = shape / peak
    ii, jj = np.nonzero(keep)
    return _Cell(rr[ii], cc[jj], shape[ii, jj], soma[ii, jj])


def _vessels(rng: np.random.Generator, shape: tuple[int, int], count: int, diameter: float) -> np.ndarray:
    """Darkening (rows, cols) in [0, 1) of ``count`` blood vessels: smooth random curves 0.4-1.2 diameters wide."""
    rows, cols = shape
    out = np.zeros(shape)
    for _ in range(count):
        width = rng.uniform(0.4, 1.2) * diameter
        depth = rng.uniform(0.5, 0.9)
        n_steps = int(rng.uniform(0.5, 1.5) * max(rows, cols))
        theta = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(scale=0.03, size=n_steps))
        start = rng.uniform((0, 0), (rows, cols))
        path = np.round(start + np.cumsum(np.stack([np.sin(theta), np.cos(theta)], axis=1), axis=0)).astype(int)
        inside = (path[:, 0] >= 0) & (path[:, 0] < rows) & (path[:, 1] >= 0) & (path[:, 1] < cols)
        if not inside.any():
            continue
        off_line = np.ones(shape, dtype=bool)
        off_line[path[inside, 0], path[inside, 1]] = False
        dist = ndi.distance_transform_edt(off_line)
        out = np.maximum(out, depth * expit((0.5 * width - dist) / 1.0))
    return out


def _puncta(rng: np.random.Generator, shape: tuple[int, int], count: int) -> np.ndarray:
    """(rows, cols) small bright blobs (dendrite and axon cross-sections): Gaussians of sigma 0.8 or 1.4 px with
    peaks 0.5-2."""
    out = np.zeros(shape)
    for sigma, n in zip((0.8, 1.4), (count - count // 2, count // 2), strict=True):
        img = np.zeros(shape)
        idx = (rng.integers(0, shape[0], n), rng.integers(0, shape[1], n))
        np.add.at(img, idx, rng.uniform(0.5, 2.0, n))
        out += ndi.gaussian_filter(img, sigma) * (2 * math.pi * sigma ** 2)
    return out


def _processes(rng: np.random.Generator, shape: tuple[int, int], diameter: float) -> np.ndarray:
    """(rows, cols) mesh of thin processes, mean 1: smooth random curves 0.5-4 diameters long, about 1 px wide,
    of log-normal brightness, one per 20-80 pixels of the field (drawn); the gaps between them are dark."""
    rows, cols = shape
    n = max(1, int(rows * cols / rng.uniform(20.0, 80.0)))
    n_steps = np.round(rng.uniform(0.5, 4.0, n) * diameter).astype(int)
    longest = int(n_steps.max())
    theta = rng.uniform(0, 2 * math.pi, (n, 1)) + np.cumsum(rng.normal(scale=0.3, size=(n, longest)), axis=1)
    start = rng.uniform((0, 0), (rows, cols), (n, 2))
    path = start[:, None, :] + np.cumsum(np.stack([np.sin(theta), np.cos(theta)], axis=2), axis=1)
    brightness = np.exp(0.5 * rng.standard_normal(n))
    r, c = np.round(path[..., 0]).astype(int), np.round(path[..., 1]).astype(int)
    use = (np.arange(longest)[None, :] < n_steps[:, None]) & (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    mesh = np.zeros(shape)
    np.add.at(mesh, (r[use], c[use]), np.broadcast_to(brightness[:, None], use.shape)[use])
    mesh = ndi.gaussian_filter(mesh, 0.7)
    return mesh / max(mesh.mean(), 1e-12)


def _neuropil_map(rng: np.random.Generator, shape: tuple[int, int], contrast: float, n_vessels: int,
                  n_blurred: int, n_puncta: int, diameter: float,
                  cell_args: dict, processes: float = 0.0, blurred_edge: tuple[float, float] = (2.0, 4.0)
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
    """Relative neuropil brightness (mean about 1) before the somata displace it, the local smooth level, the
    puncta alone, and each out-of-focus soma alone (sparse, (n_blurred, rows * cols); part of the first).

    Fine and medium-scale texture on a smooth illumination, dark vessels, out-of-focus somata (blurred, dim)
    and bright puncta. A fraction ``processes`` of the texture's brightness is instead carried by a mesh of thin
    processes (drawn last, so the other parts do not change with it).
    """
    rows, cols = shape
    illumination = np.clip(1.0 + 0.2 * _smooth_field(rng, shape, max(rows, cols) / 3.0), 0.3, None)
    tex = _smooth_field(rng, shape, 1.2) + 0.4 * _smooth_field(rng, shape, 6.0)
    tex /= max(tex.std(), 1e-12)
    dark = _vessels(rng, shape, n_vessels, diameter)
    texture = np.clip(1.0 + contrast * tex, 0.1, None)
    rel = illumination * texture * (1.0 - dark)
    lit = illumination * (1.0 - dark)  # the neuropil's level where vessels do not darken it
    # each out-of-focus soma's pixels and brightness, one sparse row each
    owner, pixels, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    if n_blurred:
        blurred = np.zeros(rows * cols)
        diam = diameter * rng.uniform(0.75, 1.25, n_blurred)
        for k in range(n_blurred):
            cell = _draw_cell(rng, rng.uniform((0, 0), (rows - 1, cols - 1)), diam[k], shape,
                              edge=rng.uniform(*blurred_edge), **cell_args)
            idx, value = cell.rows * cols + cell.cols, rng.uniform(0.1, 0.4) * cell.shape
            blurred[idx] += value
            owner.append(np.full(len(idx), k))
            pixels.append(idx)
            values.append(value * illumination.ravel()[idx])
        rel = rel + illumination * blurred.reshape(shape)
    blurred_cells = sp.csr_matrix((np.concatenate(values), (np.concatenate(owner), np.concatenate(pixels))),
                                  shape=(n_blurred, rows * cols))
    dots = illumination * _puncta(rng, shape, n_puncta) if n_puncta else np.zeros(shape)
    if processes > 0:
        rel = rel + lit * processes * (_processes(rng, shape, diameter) - texture)
    return rel + dots, lit, dots, blurred_cells


# ----------------------------------------------------------------------------------------------------------------
# temporal parts


def _smooth_noise(rng: np.random.Generator, n: int, length: int, sigma_frames: float) -> np.ndarray:
    """(n, length) Gaussian noise low-passed with a Gaussian of ``sigma_frames``, with unit variance.

    The variance is normalised with the filter's gain, not the sample's, so that short series are not inflated.
    """
    x = rng.standard_normal((n, length))
    if sigma_frames > 0.5:
        radius = int(4 * sigma_frames + 0.5)
        w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
        w /= w.sum()
        x = ndi.gaussian_filter1d(x, sigma_frames, axis=1, mode="reflect") / math.sqrt(np.sum(w ** 2))
    return x


def _bursty_spikes(rng: np.random.Generator, rates: np.ndarray, shared: np.ndarray, fs: float, burstiness: float,
                   synchrony: float) -> np.ndarray:
    """(n, T) Poisson spike counts at ``rates`` (Hz) modulated by slow (~1 s) log-normal noise, a fraction
    ``synchrony`` of whose variance is the ``shared`` (1, T) series."""
    own = _smooth_noise(rng, len(rates), shared.shape[1], fs * 1.0)
    z = math.sqrt(synchrony) * shared + math.sqrt(1.0 - synchrony) * own
    modulation = np.exp(burstiness * z - 0.5 * burstiness ** 2)
    return rng.poisson(rates[:, None] / fs * modulation).astype(np.float64)


def _ar_filter(spikes: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Calcium from spikes: ``c_t = sum_i g[k, i] c_{t-1-i} + s_t`` per neuron (rows of ``spikes``)."""
    out = np.empty_like(spikes)
    # neurons with the same coefficients are filtered together
    _, inverse = np.unique(g, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    for u in np.unique(inverse):
        idx = np.flatnonzero(inverse == u)
        out[idx] = lfilter([1.0], np.concatenate([[1.0], -g[idx[0]]]), spikes[idx], axis=1)
    return out


def _kernel_peak(g: np.ndarray, n: int = 2000) -> float:
    """Peak of the calcium response to one spike."""
    imp = np.zeros(n)
    imp[0] = 1.0
    return float(lfilter([1.0], np.concatenate([[1.0], -g]), imp).max())


def _interval(value, name: str, *, low: float, high: float | None = None, low_open: bool = False,
              high_open: bool = False) -> tuple[float, float]:
    """A range ``(lo, hi)`` with ``lo <= hi``, both finite and within the bounds, else ``ValueError`` naming it."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a range (lo, hi), got {value!r}") from None
    number(lo, f"{name}[0]", low=low, high=high, low_open=low_open, high_open=high_open)
    number(hi, f"{name}[1]", low=low, high=high, low_open=low_open, high_open=high_open)
    if lo > hi:
        raise ValueError(f"{name} must be a range (lo, hi) with lo <= hi, got {value!r}")
    return float(lo), float(hi)


def _check_args(a: dict) -> None:
    """``ValueError`` naming the first argument of :func:`simulate` (given as a dict) that is out of range."""
    number(a["n_frames"], "n_frames", low=1, integer=True)
    number(a["n_neurons"], "n_neurons", low=0, integer=True)
    seed = a["seed"]
    if seed is not None and not (isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_))
                                 and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    positive = ("fs", "decay_time", "rise_time", "edge", "photons", "gain")
    non_negative = ("min_distance", "texture", "rate", "rate_sigma", "burstiness", "neuropil_contrast",
                    "neuropil_activity", "vessels", "out_of_focus", "out_of_focus_activity", "puncta",
                    "puncta_activity", "background_strength", "background_drift", "read_noise")
    for name in positive:
        number(a[name], name, low=0, low_open=True)
    for name in non_negative:
        number(a[name], name, low=0)
    number(a["diameter"], "diameter (pixels)", low=1)
    number(a["p"], "p", low=1, high=2, integer=True)
    number(a["nb"], "nb", low=0, integer=True)
    number(a["offset"], "offset (ADU)")
    for name in ("diameter_spread", "occlusion", "bleach", "mask_threshold"):
        number(a[name], name, low=0, high=1, high_open=True)
    for name in ("filled", "synchrony", "neuropil_processes"):
        number(a[name], name, low=0, high=1)
    _interval(a["ellipticity"], "ellipticity", low=0, high=1, low_open=True)
    _interval(a["nucleus_size"], "nucleus_size", low=0, high=1, low_open=True)
    _interval(a["nucleus_dim"], "nucleus_dim", low=0, high=1)
    _interval(a["cell_brightness"], "cell_brightness", low=0, low_open=True)
    _interval(a["spike_amplitude"], "spike_amplitude", low=0)
    _interval(a["rate_range"], "rate_range", low=0)
    _interval(a["out_of_focus_edge"], "out_of_focus_edge", low=0, low_open=True)
    number(a["block_frames"], "block_frames", low=1, integer=True, optional=True)


# ----------------------------------------------------------------------------------------------------------------


def simulate(n_frames: int, shape: tuple[int, int], n_neurons: int, *, seed: int | None,
             fs: float = 30.0, decay_time: float = 0.4, p: int = 1, rise_time: float = 0.05,
             diameter: float = 12.0, diameter_spread: float = 0.25, ellipticity: tuple[float, float] = (0.65, 1.0),
             min_distance: float = 0.6, nucleus_size: tuple[float, float] = (0.45, 0.65),
             nucleus_dim: tuple[float, float] = (0.3, 0.7), edge: float = 0.7, texture: float = 0.1,
             filled: float = 0.1, photons: float = 3.0, cell_brightness: tuple[float, float] = (0.2, 1.5),
             occlusion: float = 0.6,
             spike_amplitude: tuple[float, float] = (0.3, 1.2), rate: float = 0.3, rate_sigma: float = 1.0,
             rate_range: tuple[float, float] = (0.005, 5.0), burstiness: float = 1.0, synchrony: float = 0.1,
             neuropil_contrast: float = 0.15, neuropil_activity: float = 0.05, neuropil_processes: float = 0.0,
             vessels: float = 1.0,
             out_of_focus: float = 0.5, out_of_focus_activity: float = 0.0,
             out_of_focus_edge: tuple[float, float] = (2.0, 4.0), puncta: float = 0.5,
             puncta_activity: float = 2.0, nb: int = 2,
             background_strength: float = 0.3, background_drift: float = 0.1, bleach: float = 0.0,
             gain: float = 1.0, read_noise: float = 1.0, offset: float = 0.0, exact_poisson: bool = False,
             mask_threshold: float = 0.2, block_frames: int | None = None, progress: bool = False) -> Simulation:
    """Simulate a two-photon calcium-imaging movie with its ground truth.

    Parameters
    ----------
    n_frames : int
        Number of frames T.
    shape : (int, int)
        Frame size (rows, cols).
    n_neurons : int
        Number of somata N.
    seed : int or None
        Seed of ``np.random.default_rng``; the same seed and arguments give the same simulation. The layout
        (positions, shapes, brightness) depends only on the seed, ``shape`` and the spatial arguments, not on
        ``n_frames``.
    fs : float
        Frame rate in Hz.
    decay_time : float
        Decay time constant of the transients in seconds; ``g = exp(-1 / (decay_time * fs))`` for ``p = 1``.
    p : int
        Order of the AR process (1 or 2).
    rise_time : float
        Rise time constant in seconds for ``p = 2``.
    diameter : float
        Mean soma diameter in pixels.
    diameter_spread : float
        Diameters are uniform in ``diameter * (1 ± diameter_spread)``.
    ellipticity : (float, float)
        Range of the minor/major axis ratio; the orientation is uniform.
    min_distance : float
        Minimum centre distance in units of the two somata's mean diameter (0.6 allows partial overlap).
    nucleus_size : (float, float)
        Range of the nucleus radius as a fraction of the soma radius.
    nucleus_dim : (float, float)
        Range of how much dimmer the nucleus is than the cytoplasm (0: not dimmer, 1: dark).
    edge : float
        Width of the soft soma edge in pixels.
    texture : float
        Relative amplitude of the fine texture inside each soma.
    filled : float
        Fraction of somata whose nucleus is not dimmer (GCaMP-filled, over-expressing cells); they are also twice
        as bright at rest.
    photons : float
        Mean neuropil brightness in photo-electrons per pixel per frame: it sets the shot noise, so the SNR grows
        like ``sqrt(photons)``.
    cell_brightness : (float, float)
        Log-uniform range of each soma's resting fluorescence relative to the local neuropil (values below
        ``1 - occlusion`` give somata darker than their surround).
    occlusion : float
        Fraction of the neuropil that a soma displaces (0..1).
    spike_amplitude : (float, float)
        Uniform range of the fluorescence added by one spike at the soma's brightest pixel, relative to the mean
        neuropil brightness.
    rate : float
        Median firing rate in Hz; rates are lognormal with log-standard deviation ``rate_sigma`` and clipped
        to ``rate_range``.
    rate_sigma : float
        Spread of the lognormal rates.
    rate_range : (float, float)
        Lowest and highest rates in Hz.
    burstiness : float
        Log-standard deviation of a slow (~1 s) modulation of each neuron's rate (0: homogeneous Poisson).
    synchrony : float
        Fraction of the rate modulation's variance shared by all neurons (0..1).
    neuropil_contrast : float
        Relative standard deviation of the neuropil's spatial texture.
    neuropil_activity : float
        Relative amplitude of the neuropil's fluctuations (it follows the population activity).
    neuropil_processes : float
        Fraction (0..1) of the neuropil's brightness carried by a mesh of thin processes (smooth curves about
        1 px wide, 0.5-4 soma diameters long) instead of the smooth texture: the gaps between them are dark
        patches of all sizes that are not somata. The somata and their activity do not depend on it.
    vessels : float
        Mean number of dark blood vessels per 256 x 256 pixels.
    out_of_focus : float
        Out-of-focus somata (blurred, dim, part of the neuropil, not in the ground truth) per neuron.
    out_of_focus_activity : float
        Fluorescence change per spike of each out-of-focus soma, relative to its resting brightness (0: they
        are static parts of the neuropil). When positive, each fires on its own (rates drawn like the neurons',
        the same slow modulation and synchrony, drawn after everything else so that the rest of the simulation
        does not change) and is one more background component.
    out_of_focus_edge : (float, float)
        Range of the out-of-focus somata's soft-edge widths in pixels (the neurons' is ``edge``): how blurred they
        are.
    puncta : float
        Small bright blobs (dendrite cross-sections, not in the ground truth) per neuron.
    puncta_activity : float
        Relative fluorescence change of the puncta per spike (they fire together at the median ``rate``).
    nb : int
        Number of slowly drifting smooth background fields (the background has ``nb + 3`` components).
    background_strength : float
        Mean brightness of each drifting field relative to the neuropil.
    background_drift : float
        Relative standard deviation of the drifting fields' traces (time scale ~20 s).
    bleach : float
        Fraction of the indicator bleached by the last frame (exponential; 0: none): the resting fluorescence and
        the neurons' transients both lose it (dF/F kept). The returned ``calcium`` and ``spikes`` are not bleached;
        the curve is ``background_traces[0]``.
    gain : float
        ADU per photo-electron.
    read_noise : float
        Standard deviation of the additive Gaussian read noise in ADU.
    offset : float
        Constant dark offset in ADU.
    exact_poisson : bool
        Draw exact Poisson photon counts (about 8 times slower). Otherwise the shot noise is Gaussian with the
        same variance, ``gain * value``, which differs only at very low photon counts.
    mask_threshold : float
        ``masks = footprint > mask_threshold * max(footprint)`` (holes filled).
    block_frames : int or None
        Frames generated at a time (bounds the temporary memory); None: about 32 MB per block.
    progress : bool
        Show a progress bar over the blocks of frames.

    Returns
    -------
    Simulation

    Raises
    ------
    ValueError
        Naming the first argument that is out of range (NaN, infinite, negative where it must not be, a fraction
        beyond 0..1, a range with lo > hi, a fractional count), or when the neurons do not fit in the frame.
    """
    _check_args(dict(locals()))
    rows, cols = frame_shape(shape, "shape")
    n_frames, n_neurons, nb, p = int(n_frames), int(n_neurons), int(nb), int(p)
    block_frames = None if block_frames is None else int(block_frames)
    g1 = ar_coefficients(decay_time, fs, p, rise_time)
    ss = np.random.SeedSequence(seed)
    rng_space, rng_time, rng_noise = (np.random.default_rng(s) for s in ss.spawn(3))
    level = photons * gain  # mean neuropil brightness in ADU
    n_pix = rows * cols

    # --- somata -------------------------------------------------------------------------------------------------
    diameters = diameter * rng_space.uniform(1 - diameter_spread, 1 + diameter_spread, n_neurons)
    centers = _place_centers(rng_space, (rows, cols), diameters, min_distance)
    is_filled = rng_space.uniform(size=n_neurons) < filled
    cell_args = dict(ellipticity=ellipticity, nucleus_size=nucleus_size, nucleus_dim=nucleus_dim, texture=texture)
    cells = [_draw_cell(rng_space, centers[k], diameters[k], (rows, cols), edge=edge, filled=is_filled[k],
                        **cell_args) for k in range(n_neurons)]
    amp = level * rng_space.uniform(*spike_amplitude, n_neurons) / _kernel_peak(g1)
    rest = np.exp(rng_space.uniform(*np.log(cell_brightness), n_neurons)) * np.where(is_filled, 2.0, 1.0)
    lens = np.array([len(c.rows) for c in cells], dtype=np.int64)
    row_idx = np.repeat(np.arange(n_neurons), lens)
    pix = np.concatenate([c.rows * cols + c.cols for c in cells]) if n_neurons else np.zeros(0, np.int64)
    shp = np.concatenate([c.shape for c in cells]) if n_neurons else np.zeros(0)
    soma = np.concatenate([c.soma for c in cells]) if n_neurons else np.zeros(0)
    values = (shp * np.repeat(amp, lens)).astype(np.float32)
    A = sp.csr_matrix((values, (row_idx, pix)), shape=(n_neurons, n_pix))

    # --- static image: neuropil displaced by somata, plus the somata's resting fluorescence -----------------------
    area = rows * cols / 256.0 ** 2
    n_vessels = int(rng_space.poisson(vessels * area))
    rel, local_level, dots, blurred_cells = _neuropil_map(rng_space, (rows, cols), neuropil_contrast, n_vessels,
                                           int(round(out_of_focus * n_neurons)), int(round(puncta * n_neurons)),
                                           diameter, cell_args, neuropil_processes, out_of_focus_edge)
    log_keep = np.zeros(n_pix)
    np.add.at(log_keep, pix, np.log1p(-occlusion * soma))
    neuropil = level * rel * np.exp(log_keep).reshape(rows, cols)
    # each soma's resting fluorescence is relative to the local (smooth) neuropil level at its centre
    ci = np.clip(np.round(centers).astype(int), 0, [rows - 1, cols - 1])
    resting = np.zeros(n_pix)
    np.add.at(resting, pix, shp * np.repeat(rest * level * local_level[ci[:, 0], ci[:, 1]], lens))
    resting = resting.reshape(rows, cols) + neuropil + offset

    drifting = [np.clip(1.0 + 0.5 * _smooth_field(rng_space, (rows, cols), max(rows, cols) / 4.0), 0.0, None)
                * background_strength * level for _ in range(nb)]
    background = np.stack([resting, neuropil, level * dots] + drifting).astype(np.float32)

    # --- spikes and calcium ---------------------------------------------------------------------------------------
    rates = np.clip(rate * np.exp(rate_sigma * rng_time.standard_normal(n_neurons)), *rate_range)
    shared = _smooth_noise(rng_time, 1, n_frames, fs * 1.0)
    spikes = _bursty_spikes(rng_time, rates, shared, fs, burstiness, synchrony)
    g = np.tile(g1, (n_neurons, 1))
    calcium = _ar_filter(spikes, g)

    # --- background traces ---------------------------------------------------------------------------------------
    background_traces = _background_traces(rng_time, calcium, g1, fs=fs, nb=nb, bleach=bleach,
                                           neuropil_activity=neuropil_activity, background_drift=background_drift,
                                           rate=rate, burstiness=burstiness, puncta_activity=puncta_activity)
    bleach_trace = background_traces[0]
    # active out-of-focus somata: sparse images (displaced by the in-focus somata like the neuropil) and traces
    oof_images = sp.csr_matrix((0, n_pix), dtype=np.float32)
    if out_of_focus_activity > 0 and blurred_cells.shape[0]:
        n_oof = blurred_cells.shape[0]
        oof_rates = np.clip(rate * np.exp(rate_sigma * rng_time.standard_normal(n_oof)), *rate_range)
        oof_spikes = _bursty_spikes(rng_time, oof_rates, shared, fs, burstiness, synchrony)
        oof_calcium = _ar_filter(oof_spikes, np.tile(g1, (n_oof, 1))) / _kernel_peak(g1)
        oof_images = sp.csr_matrix(blurred_cells.multiply((level * np.exp(log_keep))[None, :]), dtype=np.float32)
        background_traces = np.vstack([background_traces, bleach_trace * out_of_focus_activity * oof_calcium])

    # --- the movie, block by block ---------------------------------------------------------------------------------
    # the indicator bleaches: the neurons' transients shrink with the resting fluorescence (exactly 1 without bleach)
    fluorescence = calcium * bleach_trace[None, :]
    movie, sum_clean = _render(background.reshape(-1, n_pix), background_traces, oof_images, A, fluorescence,
                               rng_noise, gain=gain, read_noise=read_noise, exact_poisson=exact_poisson,
                               block_frames=block_frames, progress=progress)
    movie = movie.reshape(n_frames, rows, cols)
    noise_sigma = math.sqrt(gain * sum_clean / (n_frames * n_pix) + read_noise ** 2)
    logger.debug("simulated %d frames of %dx%d with %d neurons (%d spikes), noise sigma %.3g", n_frames, rows, cols,
                 n_neurons, int(spikes.sum()), noise_sigma)

    # --- dense ground truth ------------------------------------------------------------------------------------------
    # scattered into untouched zero pages: far faster than densifying the sparse matrix
    footprints = np.zeros((n_neurons, rows, cols), dtype=np.float32)
    footprints.reshape(n_neurons, n_pix)[row_idx, pix] = values
    masks = _masks_of_cells(cells, (rows, cols), mask_threshold)
    if oof_images.shape[0]:
        background = np.concatenate([background, oof_images.toarray().reshape(-1, rows, cols)])
    return Simulation(movie=movie, masks=masks, footprints=footprints, calcium=calcium, spikes=spikes,
                      background=background, background_traces=background_traces, noise_sigma=noise_sigma,
                      centers=centers, fs=float(fs), decay_time=float(decay_time), g=g)


def _background_traces(rng_time: np.random.Generator, calcium: np.ndarray, g1: np.ndarray, *, fs: float, nb: int,
                       bleach: float, neuropil_activity: float, background_drift: float, rate: float,
                       burstiness: float, puncta_activity: float) -> np.ndarray:
    """Traces (nb + 3, T) of the background components: bleaching of the resting image, the neuropil's relative
    fluctuation (following the population activity of ``calcium`` (N, T), and slower noise), the puncta's
    transients and the ``nb`` drifting fields."""
    n_neurons, n_frames = calcium.shape
    t = np.arange(n_frames)
    bleach_trace = (1.0 - bleach) ** (t / max(n_frames - 1, 1))
    pop = calcium.mean(axis=0) if n_neurons else np.zeros(n_frames)
    pop = ndi.gaussian_filter1d(pop, fs * 0.5) if n_frames > 1 else pop
    pop = (pop - pop.mean()) / (pop.std() if pop.std() > 0 else 1.0) if n_frames > 1 else pop * 0.0
    slow = _smooth_noise(rng_time, 1, n_frames, fs * 2.0)[0]
    # relative neuropil fluctuation, bounded so that the neuropil never drops below half its resting value
    np_trace = bleach_trace * np.clip(neuropil_activity * (0.7 * pop + 0.3 * slow), -0.5, None)
    drift_traces = bleach_trace * np.clip(1.0 + background_drift * _smooth_noise(rng_time, nb, n_frames, fs * 20.0),
                                          0.0, None)
    # the puncta (dendrites, axons) are active too: their own spikes, relative transients of puncta_activity
    dot_spikes = rng_time.poisson(rate / fs * np.exp(burstiness * _smooth_noise(rng_time, 1, n_frames, fs)[0]
                                                     - 0.5 * burstiness ** 2))
    dot_calcium = _ar_filter(dot_spikes[None].astype(float), g1[None])[0] / _kernel_peak(g1)
    dot_trace = bleach_trace * puncta_activity * dot_calcium
    return np.vstack([bleach_trace, np_trace, dot_trace, drift_traces.reshape(nb, n_frames)])


def _render(bg_flat: np.ndarray, background_traces: np.ndarray, oof_images, A, calcium: np.ndarray,
            rng_noise: np.random.Generator, *, gain: float, read_noise: float, exact_poisson: bool,
            block_frames: int | None, progress: bool) -> tuple[np.ndarray, float]:
    """The noisy movie (T, pixels) float32, block by block, and the sum of its noiseless values.

    Noiseless frames: the dense background images ``bg_flat`` (n_dense, pixels) times the first n_dense
    ``background_traces``, the sparse out-of-focus somata ``oof_images`` (n_oof, pixels) times the rest, and the
    neurons' footprints ``A`` (N, pixels) times ``calcium`` (N, T); negative values clipped to 0. Then shot noise
    (``gain`` ADU per photo-electron: Poisson, or a Gaussian of the same variance) and Gaussian read noise.
    """
    n_dense, n_pix = bg_flat.shape
    n_frames = background_traces.shape[1]
    if block_frames is None:
        block_frames = max(1, int(8e6 // n_pix))
    flat = np.empty((n_frames, n_pix), dtype=np.float32)
    oof_t = oof_images.T.tocsr()
    At = A.T.tocsr()
    sum_clean = 0.0
    for t0 in tqdm(range(0, n_frames, block_frames), desc="simulating frames", unit="block", disable=not progress):
        t1 = min(t0 + block_frames, n_frames)
        clean = background_traces[:n_dense, t0:t1].T.astype(np.float32) @ bg_flat
        if oof_t.shape[1]:
            clean += (oof_t @ background_traces[n_dense:, t0:t1].astype(np.float32)).T
        if A.shape[0]:
            clean += (At @ calcium[:, t0:t1].astype(np.float32)).T
        np.maximum(clean, 0.0, out=clean)
        sum_clean += float(clean.sum(dtype=np.float64))
        if exact_poisson:
            noisy = gain * rng_noise.poisson(clean / gain).astype(np.float32)
            if read_noise > 0:
                noisy += read_noise * rng_noise.standard_normal(clean.shape, dtype=np.float32)
        else:  # shot and read noise together: one Gaussian with variance gain * clean + read_noise**2
            sd = clean * np.float32(gain)
            sd += np.float32(read_noise ** 2)
            np.sqrt(sd, out=sd)
            noisy = rng_noise.standard_normal(clean.shape, dtype=np.float32)
            noisy *= sd
            noisy += clean
        flat[t0:t1] = noisy
    return flat, sum_clean


def _masks_of_cells(cells: list, shape: tuple[int, int], mask_threshold: float) -> np.ndarray:
    """Ground-truth masks (N, rows, cols) bool: each cell's footprint above ``mask_threshold`` of its peak, holes
    filled."""
    masks = np.zeros((len(cells),) + tuple(shape), dtype=bool)
    for k, cell in enumerate(cells):
        r0, c0 = cell.rows.min(), cell.cols.min()
        patch = np.zeros((cell.rows.max() - r0 + 1, cell.cols.max() - c0 + 1))
        patch[cell.rows - r0, cell.cols - c0] = cell.shape
        masks[k, r0:r0 + patch.shape[0], c0:c0 + patch.shape[1]] = ndi.binary_fill_holes(
            patch > mask_threshold * patch.max())
    return masks
