"""A second, deliberately simple family of synthetic movies: Gaussian blobs in white noise.

:func:`cellfie_caiman.simulate.simulate` draws movies that look like neurofinder recordings (ring somata with a
resting brightness, textured neuropil, vessels, shot noise). The shipped model was trained on those, so scoring it
on more of them says little about movies from other simulators. :func:`simulate_blobs` draws the kind of toy data
used to test CNMF implementations (CaImAn's own tests use data of this kind) so that detection can be checked
on a generative model it never saw:

* footprints are elliptical Gaussians, optionally with a narrower Gaussian subtracted (a dimmer centre), cut at
  ``exp(-2)`` of their peak and scaled to unit Euclidean norm; the most overlapping of ``1.5 N`` drawn neurons are
  dropped until N remain;
* neurons have no resting fluorescence: only their calcium shows them;
* spikes are Bernoulli with the same rate for every neuron; a fraction of the neurons stays silent for a random
  first part of the movie; calcium follows an AR(1) process with one spike adding 1;
* the background is a constant baseline with a smooth spatial variation and a slow temporal drift;
* the noise is white, Gaussian, the same everywhere (no shot noise).

The movie is ``movie[t] = sum_k footprints[k] * calcium[k, t] + background[0] * background_traces[0, t] + noise[t]``.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
from scipy.signal import lfilter

from .simulate import Simulation

__all__ = ["simulate_blobs"]


def _blob(center: np.ndarray, sigma: np.ndarray, dip: float, frame: tuple[int, int]) -> np.ndarray:
    """One footprint on the whole frame: a Gaussian minus ``dip`` times one 0.75 times as wide, cut at exp(-2)
    of its peak, unit Euclidean norm."""
    yy = (np.arange(frame[0]) - center[0])[:, None] / sigma[0]
    xx = (np.arange(frame[1]) - center[1])[None, :] / sigma[1]
    r2 = yy ** 2 + xx ** 2
    f = np.exp(-0.5 * r2)
    if dip > 0:
        f = np.maximum(f - dip * np.exp(-0.5 * r2 / 0.75 ** 2), 0.0)
    f[f < math.exp(-2) * f.max()] = 0.0
    return f / np.linalg.norm(f)


def _drop_overlapping(footprints, n: int) -> np.ndarray:
    """Indices of ``n`` footprints (M, pixels; dense or sparse) kept by dropping, one at a time, one of the two most
    overlapping (largest inner product) of those left."""
    overlap = footprints @ footprints.T
    overlap = overlap.toarray() if sp.issparse(overlap) else np.array(overlap, dtype=np.float64)
    np.fill_diagonal(overlap, 0.0)
    keep = np.ones(footprints.shape[0], bool)
    while keep.sum() > n:
        sub = np.where(np.outer(keep, keep), overlap, -1.0)
        i, j = np.unravel_index(np.argmax(sub), sub.shape)
        keep[max(i, j)] = False
    return np.flatnonzero(keep)


def simulate_blobs(n_frames: int, shape: tuple[int, int], n_neurons: int, *, seed: int | None, fs: float = 30.0,
                   diameter: float = 12.0, diameter_spread: float = 0.2, dip: tuple[float, float] | None = (0.2, 0.8),
                   rate: float = 0.5, decay_time: float = 1.0, late_start: float = 0.5, noise: float = 0.3,
                   baseline: float = 10.0, background: float = 0.03, drift: float = 0.01) -> Simulation:
    """Simulate a movie of Gaussian-blob neurons in white noise (see the module docstring).

    Parameters
    ----------
    n_frames : int
        Number of frames T.
    shape : (int, int)
        Frame size (rows, cols).
    n_neurons : int
        Number of neurons N.
    seed : int or None
        Seed of ``np.random.default_rng``; the same seed and arguments give the same movie.
    fs : float
        Frame rate in Hz.
    diameter : float
        Typical diameter in pixels of the plain Gaussians' masks: their standard deviation along each axis is
        uniform in ``diameter / 4 * (1 ± diameter_spread)`` (the cut at ``exp(-2)`` of the peak lies at 2 standard
        deviations). A dimmer centre (``dip``) lowers the peak and so widens the mask, by ~20 % on average.
    diameter_spread : float
        See ``diameter``.
    dip : (float, float) or None
        Range of the weight of the subtracted narrower Gaussian (a dimmer centre); None: plain Gaussians.
    rate : float
        Firing rate in Hz (Bernoulli per frame with probability ``rate / fs``).
    decay_time : float
        Decay time constant of the calcium in seconds.
    late_start : float
        Fraction of the neurons that are silent during a first part of the movie (uniform in 25-60 % of it).
    noise : float
        Standard deviation of the white Gaussian noise (ADU).
    baseline : float
        Mean background level (ADU).
    background : float
        Relative standard deviation of the background's smooth spatial variation (correlation length a quarter
        of the larger side).
    drift : float
        Relative standard deviation of the background's slow temporal drift (correlation time ~10 s).

    Returns
    -------
    Simulation
        ``masks`` are the footprints' supports; ``background`` has one component (the mean background image) and
        ``background_traces`` its drift (about 1); ``noise_sigma`` is ``noise``; ``g`` the AR(1) coefficient.

    Examples
    --------
    >>> sim = simulate_blobs(300, (64, 64), 8, seed=0)
    >>> sim.movie.shape, sim.masks.shape
    ((300, 64, 64), (8, 64, 64))
    """
    if n_frames < 1 or n_neurons < 1 or min(shape) < 8:
        raise ValueError(f"need n_frames >= 1, n_neurons >= 1 and a frame of at least 8 x 8 pixels, got "
                         f"n_frames={n_frames}, n_neurons={n_neurons}, shape={tuple(shape)}")
    if not (diameter > 0 and 0 <= diameter_spread < 1 and fs > 0 and decay_time > 0 and rate >= 0 and noise >= 0
            and 0 <= late_start <= 1):
        raise ValueError("simulate_blobs needs diameter > 0, 0 <= diameter_spread < 1, fs > 0, decay_time > 0, "
                         "rate >= 0, noise >= 0 and 0 <= late_start <= 1")
    rng = np.random.default_rng(seed)
    rows, cols = shape
    n_drawn = int(math.ceil(1.5 * n_neurons))
    margin = 0.25 * diameter
    centers = rng.uniform((margin, margin), (rows - 1 - margin, cols - 1 - margin), size=(n_drawn, 2))
    sigmas = diameter / 4 * rng.uniform(1 - diameter_spread, 1 + diameter_spread, size=(n_drawn, 2))
    dips = rng.uniform(*dip, size=n_drawn) if dip is not None else np.zeros(n_drawn)
    # sparse rows: 1.5 N dense frames of float64 would take 1.5 N x rows x cols x 8 bytes (1.2 GB for 400 on 512 x 512)
    drawn = sp.vstack([sp.csr_matrix(_blob(c, s, d, (rows, cols)).ravel())
                       for c, s, d in zip(centers, sigmas, dips, strict=True)]).tocsr()
    keep = _drop_overlapping(drawn, n_neurons)
    footprints, centers = drawn[keep].astype(np.float32).toarray().reshape(-1, rows, cols), centers[keep]

    spikes = (rng.random((n_neurons, n_frames)) < rate / fs).astype(np.float64)
    late = rng.random(n_neurons) < late_start
    silent_until = (rng.uniform(0.25, 0.6, n_neurons) * n_frames).astype(int)
    spikes[late[:, None] & (np.arange(n_frames)[None, :] < silent_until[:, None])] = 0.0
    g = math.exp(-1.0 / (decay_time * fs))
    calcium = lfilter([1.0], [1.0, -g], spikes, axis=1)

    scale = max(rows, cols) / 4
    field = ndi.gaussian_filter(rng.standard_normal((rows, cols)), scale, mode="wrap")
    field = (field - field.mean()) / max(field.std(), 1e-12)
    bg_image = (baseline * (1 + background * field)).astype(np.float32)
    trend = ndi.gaussian_filter1d(rng.standard_normal(n_frames), 10 * fs, mode="reflect")
    trend = 1 + drift * (trend - trend.mean()) / max(trend.std(), 1e-12) if n_frames > 1 else np.ones(1)

    flat = footprints.reshape(n_neurons, -1).astype(np.float64)  # once, not per block of frames
    movie = np.empty((n_frames, rows, cols), np.float32)
    for t0 in range(0, n_frames, 256):  # blocks of frames: bounded float64 temporaries
        t1 = min(t0 + 256, n_frames)
        block = (calcium[:, t0:t1].T @ flat).reshape(t1 - t0, rows, cols)
        block += bg_image[None] * trend[t0:t1, None, None]
        block += noise * rng.standard_normal(block.shape)
        movie[t0:t1] = block
    return Simulation(movie=movie, masks=footprints > 0, footprints=footprints, calcium=calcium, spikes=spikes,
                      background=bg_image[None], background_traces=trend[None].astype(np.float64),
                      noise_sigma=float(noise), centers=centers, fs=float(fs), decay_time=float(decay_time),
                      g=np.full((n_neurons, 1), g))
