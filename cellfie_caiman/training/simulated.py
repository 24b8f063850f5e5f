"""Simulated training fields: varied movies of the package's simulators, as summary images and masks."""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def neuron_density(diameter: float) -> float:
    """Neurons per pixel of the simulated training fields (before their 0.6-2x random factor) for somata of
    ``diameter`` pixels: neurofinder fields hold about 0.0015 per pixel with ~12 px neurons, and the number that
    fits scales with the inverse of the soma area."""
    return 0.0013 * (12.0 / diameter) ** 2


def _evenly(fraction: float, n: int, name: str) -> list[bool]:
    """Which of ``n`` fields get a property given to ``fraction`` of them, evenly spread (0.5: every other one)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {fraction}")
    return [int((i + 1) * fraction) > int(i * fraction) for i in range(n)]


def simulated_datasets(n: int, *, seed: int, shape=(256, 256), progress: bool = False,
                       variety: bool = False, filter_diameter: float | None = None,
                       rates: tuple[float, float] = (0.05, 1.0), neuropil: float = 0.0, blobs: float = 0.0,
                       processes: float = 0.0, defocus: float = 0.0, long: float = 0.0) -> list:
    """``n`` varied simulated fields as (SummaryImages, masks) pairs: :func:`simulated_field` ``0 .. n - 1``.

    ``neuropil``: fraction of the fields (evenly spread: 0.5 is every other one) whose neuropil strength varies.
    ``blobs``: fraction of the fields (evenly spread, offset from the neuropil ones) drawn instead by
    :func:`cellfie_caiman.simulate_blobs.simulate_blobs` (:func:`blob_field`).
    ``processes``: fraction of the fields (evenly spread like the neuropil ones: with ``neuropil`` 0.5 they are
    among those) whose neuropil is partly a mesh of thin processes.
    ``defocus``: fraction of the fields (evenly spread from the other end, like the blob ones: with 0.5 the even
    ones, whose neuropil is the default) whose out-of-focus somata are active.
    ``long``: fraction of the fields (spread at random, the same for every ``seed``) that last 600-2000 frames
    instead of 100-600 (blob fields keep their 200-2000).
    """
    from tqdm.auto import tqdm

    varied = _evenly(neuropil, n, "neuropil")
    is_blob = _evenly(blobs, n, "blobs")[::-1]  # from the other end: with both at 0.5, the even fields
    meshed = _evenly(processes, n, "processes")
    active_oof = _evenly(defocus, n, "defocus")[::-1]
    lasting = np.array(_evenly(long, n, "long"))[np.random.default_rng(13).permutation(n)]  # any kind of field

    def field(i):
        if is_blob[i]:
            return blob_field(i, seed=seed, shape=shape, filter_diameter=filter_diameter)
        return simulated_field(i, seed=seed, shape=shape, variety=variety, filter_diameter=filter_diameter,
                               rates=rates, neuropil=varied[i], processes=meshed[i], defocus=active_oof[i],
                               long=bool(lasting[i]))

    return [field(i) for i in tqdm(range(n), desc="simulating fields", disable=not progress or n == 0)]


def simulated_field(i: int, *, seed: int, shape=(256, 256), variety: bool = False,
                    filter_diameter: float | None = None, rates: tuple[float, float] = (0.05, 1.0),
                    neuropil: bool = False, processes: bool = False, defocus: bool = False,
                    long: bool = False) -> tuple:
    """Simulated training field number ``i`` of series ``seed`` as a (SummaryImages, masks (N, rows, cols)) pair.

    Neuron size, density, brightness, activity, frame rate, length and noise vary from field to field, drawn from
    a generator seeded by ``(seed, i)``; the movie's seed is ``seed * 1000 + i``. With ``variety`` the range of
    cell brightness, occlusion (dark nuclei/holes), blood vessels, bright puncta and spike amplitudes vary too. With
    ``filter_diameter`` (pixels) the summary images include ``pnr_filtered`` computed with it. ``rates``: range
    (Hz) of the fields' median firing rates, drawn log-uniformly. With ``neuropil`` the neuropil's spatial
    contrast (0.1-0.6, default 0.15) and activity (0.03-0.4, default 0.05) vary too, log-uniformly (drawn after
    everything else: the other parameters of field ``i`` stay the same). With ``processes`` 20-90 % of the
    neuropil's brightness is a mesh of thin processes whose dark gaps are not somata (``neuropil_processes``,
    drawn last). With ``defocus`` the out-of-focus somata (0.3-1.2 per neuron) are active, 0.5-3 times their
    resting brightness per spike (``out_of_focus_activity``; drawn after that), and blurrier (soft edges of 3-6 px
    instead of 2-4, far from the neurons' 0.7): blobs that flicker but are not neurons. With ``long`` the movie
    lasts 600-2000 frames instead of 100-600 (drawn apart: nothing else changes). Fields are independent of
    each other, so a series can be made in parallel processes.
    """
    from ..simulate import simulate
    from ..summary import summary_images

    rng = np.random.default_rng([seed, i, 7])
    diameter = rng.uniform(7.0, 13.0)
    n_neurons = max(5, int(rng.uniform(0.6, 2.0) * neuron_density(diameter) * shape[0] * shape[1]))
    fs = float(rng.choice([7.5, 15.0, 30.0]))
    n_frames = int(rng.integers(100, 600))  # drawn even when long, so the draws after it stay the same
    if long:
        n_frames = int(np.random.default_rng([seed, i, 13]).integers(600, 2000))
    extra = {}
    if variety:
        lo = rng.uniform(0.05, 0.4)
        amp = rng.uniform(0.15, 0.6)
        extra = dict(cell_brightness=(lo, lo + rng.uniform(0.5, 2.0)), occlusion=float(rng.uniform(0.2, 0.9)),
                     vessels=float(rng.uniform(0.0, 2.0)), puncta=float(rng.uniform(0.0, 1.5)),
                     spike_amplitude=(amp, amp + rng.uniform(0.3, 1.5)))
    photons = float(np.exp(rng.uniform(np.log(3), np.log(40))))
    rate = float(np.exp(rng.uniform(np.log(rates[0]), np.log(rates[1]))))
    if neuropil:
        extra.update(neuropil_contrast=float(np.exp(rng.uniform(np.log(0.1), np.log(0.6)))),
                     neuropil_activity=float(np.exp(rng.uniform(np.log(0.03), np.log(0.4)))))
    if processes:
        extra.update(neuropil_processes=float(rng.uniform(0.2, 0.9)))
    if defocus:
        extra.update(out_of_focus=float(rng.uniform(0.3, 1.2)), out_of_focus_activity=float(rng.uniform(0.5, 3.0)),
                     out_of_focus_edge=(3.0, 6.0))
    sim = simulate(n_frames, shape, n_neurons, seed=seed * 1000 + i, fs=fs, diameter=diameter, photons=photons,
                   rate=rate, **extra)
    logger.info("simulated field %d: %d neurons, diameter %.1f, %d frames", i, len(sim.masks), diameter, n_frames)
    return summary_images(sim.movie, batch_frames=250, filter_diameter=filter_diameter), sim.masks


def blob_field(i: int, *, seed: int, shape=(256, 256), filter_diameter: float | None = None) -> tuple:
    """Training field number ``i`` of series ``seed`` drawn by :func:`cellfie_caiman.simulate_blobs.simulate_blobs`.

    Gaussian-blob neurons with no resting fluorescence in white noise: the only cue is their activity, which keeps
    the networks from relying on the resting contrast that :func:`simulated_field`'s somata nearly always have
    (:func:`blob_movie` draws the movie). Neurons that spike fewer than twice are left out of the masks (nothing
    shows them). Returns a (SummaryImages, masks) pair as :func:`simulated_field` does.
    """
    from ..summary import summary_images

    sim = blob_movie(i, seed=seed, shape=shape)
    seen = sim.spikes.sum(axis=1) >= 2
    logger.info("blob field %d: %d neurons (%d spiking), %d frames", i, len(sim.masks), seen.sum(), len(sim.movie))
    return summary_images(sim.movie, batch_frames=250, filter_diameter=filter_diameter), sim.masks[seen]


def blob_movie(i: int, *, seed: int, shape=(256, 256)):
    """The :func:`cellfie_caiman.simulate_blobs.simulate_blobs` movie of :func:`blob_field` ``i`` (a Simulation).

    Size, density, frame rate, length, firing rate, decay, noise, background variation and the dimmer centres
    vary from field to field, drawn from a generator seeded by ``(seed, i, 11)``; the movie's seed is
    ``seed * 1000 + i``.
    """
    from ..simulate_blobs import simulate_blobs

    rng = np.random.default_rng([seed, i, 11])
    diameter = rng.uniform(7.0, 13.0)
    n_neurons = max(5, int(rng.uniform(0.6, 2.0) * neuron_density(diameter) * shape[0] * shape[1]))
    fs = float(rng.choice([7.5, 15.0, 30.0]))
    n_frames = int(rng.integers(200, 2000))
    log_uniform = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # noqa: E731
    return simulate_blobs(n_frames, shape, n_neurons, seed=seed * 1000 + i, fs=fs, diameter=diameter,
                          rate=log_uniform(0.1, 2.0), decay_time=log_uniform(0.3, 1.5), noise=log_uniform(0.1, 0.5),
                          background=rng.uniform(0.0, 0.06), dip=None if rng.random() < 0.3 else (0.2, 0.8))
