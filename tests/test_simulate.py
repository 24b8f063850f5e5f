"""Tests of the simulator against its own generative model, computed independently here."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from cellfie_caiman.simulate import Simulation, ar_coefficients, simulate


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(400, (96, 80), 25, seed=3)


def _clean(s: Simulation) -> np.ndarray:
    """The noiseless movie rebuilt from the returned components with plain NumPy (the neurons' calcium dimmed by
    the bleaching curve ``background_traces[0]``)."""
    t = s.calcium.shape[1]
    neurons = np.einsum("krc,kt->trc", s.footprints.astype(np.float64), s.calcium * s.background_traces[0])
    bg = np.einsum("jrc,jt->trc", s.background.astype(np.float64), s.background_traces)
    assert neurons.shape[0] == t
    return neurons + bg


def test_shapes_and_dtypes(sim):
    n, t, rows, cols = 25, 400, 96, 80
    assert sim.movie.shape == (t, rows, cols) and sim.movie.dtype == np.float32
    assert sim.masks.shape == (n, rows, cols) and sim.masks.dtype == bool
    assert sim.footprints.shape == (n, rows, cols) and sim.footprints.dtype == np.float32
    assert sim.calcium.shape == (n, t) and sim.calcium.dtype == np.float64
    assert sim.spikes.shape == (n, t) and sim.spikes.dtype == np.float64
    nb = sim.background.shape[0]
    assert nb == 2 + 3 and sim.background.dtype == np.float32 and sim.background.shape[1:] == (rows, cols)
    assert sim.background_traces.shape == (nb, t)
    assert sim.centers.shape == (n, 2)
    assert sim.g.shape == (n, 1)
    assert isinstance(sim.noise_sigma, float) and sim.noise_sigma > 0
    assert sim.fs == 30.0 and sim.decay_time == 0.4
    assert np.all(np.isfinite(sim.movie))


def test_deterministic_given_seed(sim):
    again = simulate(400, (96, 80), 25, seed=3)
    for a, b in zip(sim, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = simulate(400, (96, 80), 25, seed=4)
    assert not np.array_equal(other.movie, sim.movie)
    assert not np.array_equal(other.masks, sim.masks)


def test_layout_does_not_depend_on_movie_length(sim):
    short = simulate(30, (96, 80), 25, seed=3)
    np.testing.assert_array_equal(short.masks, sim.masks)
    np.testing.assert_array_equal(short.centers, sim.centers)
    np.testing.assert_array_equal(short.footprints, sim.footprints)


def test_masks_are_solid_somata_around_their_centres(sim):
    areas = sim.masks.sum(axis=(1, 2))
    d = 12.0
    # diameters within +-25 % of 12 px, a little soft edge: areas between the smallest and largest discs
    assert np.all(areas >= 0.5 * math.pi * (0.75 * d / 2) ** 2)
    assert np.all(areas <= 1.6 * math.pi * (1.25 * d / 2) ** 2)
    for k in range(len(areas)):
        r, c = np.round(sim.centers[k]).astype(int)
        assert sim.masks[k, r, c], "the centre (nucleus) belongs to the mask"
        m = sim.masks[k]
        assert ndi.label(m)[1] == 1, "one connected piece"
        assert np.array_equal(ndi.binary_fill_holes(m), m), "no holes"
        fp = sim.footprints[k]
        np.testing.assert_array_equal(m, ndi.binary_fill_holes(fp > 0.2 * fp.max()))


def _centre_to_peak(s: Simulation) -> np.ndarray:
    r, c = np.round(s.centers).astype(int).T
    return s.footprints[np.arange(len(r)), r, c] / s.footprints.max(axis=(1, 2))


def test_nucleus_is_dimmer_except_in_filled_cells():
    ring = simulate(5, (64, 64), 12, seed=11, filled=0.0)
    assert np.all(_centre_to_peak(ring) < 0.95)
    full = simulate(5, (64, 64), 12, seed=11, filled=1.0)  # same cells, but GCaMP in the nucleus
    np.testing.assert_array_equal(full.centers, ring.centers)
    assert np.all(_centre_to_peak(full) > _centre_to_peak(ring))
    assert np.median(_centre_to_peak(full)) > 0.8


def test_centres_respect_minimum_distance(sim):
    dist = np.hypot(*(sim.centers[:, None, :] - sim.centers[None, :, :]).transpose(2, 0, 1))
    dist[np.diag_indices_from(dist)] = np.inf
    assert dist.min() >= 0.6 * 0.75 * 12.0


def test_dense_fields_have_overlapping_neighbours():
    s = simulate(2, (64, 64), 30, seed=12)
    flat = s.masks.reshape(len(s.masks), -1).astype(int)
    shared = flat @ flat.T
    np.fill_diagonal(shared, 0)
    assert shared.max() > 0


def test_calcium_obeys_ar1_driven_by_spikes(sim):
    g = math.exp(-1 / (0.4 * 30.0))
    np.testing.assert_allclose(sim.g, g)
    c, s = sim.calcium, sim.spikes
    np.testing.assert_allclose(c[:, 0], s[:, 0])
    np.testing.assert_allclose(c[:, 1:] - g * c[:, :-1], s[:, 1:], atol=1e-9)
    assert np.array_equal(s, np.round(s)) and s.min() >= 0


def test_calcium_obeys_ar2_with_rise():
    s = simulate(300, (40, 40), 4, seed=1, p=2, decay_time=0.5, rise_time=0.05, fs=20.0)
    d, r = math.exp(-1 / (0.5 * 20)), math.exp(-1 / (0.05 * 20))
    np.testing.assert_allclose(s.g, np.tile([d + r, -d * r], (4, 1)))
    c, sp = s.calcium, s.spikes
    np.testing.assert_allclose(c[:, 2:] - (d + r) * c[:, 1:-1] + d * r * c[:, :-2], sp[:, 2:], atol=1e-9)
    np.testing.assert_allclose(ar_coefficients(0.5, 20.0, 2, 0.05), [d + r, -d * r])


def test_movie_is_components_plus_poisson_gaussian_noise(sim):
    clean = _clean(sim)
    resid = sim.movie - clean
    gain, read = 1.0, 1.0
    z = resid / np.sqrt(gain * clean + read ** 2)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert abs(resid.std() / sim.noise_sigma - 1.0) < 0.02
    # noise is white in time
    lag1 = np.mean(resid[1:] * resid[:-1]) / resid.var()
    assert abs(lag1) < 0.01


def test_exact_poisson_counts():
    s = simulate(50, (32, 32), 3, seed=2, exact_poisson=True, gain=2.5, read_noise=0.0)
    counts = s.movie / 2.5
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    clean = _clean(s)
    z = (s.movie - clean) / np.sqrt(2.5 * clean)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_spike_rates_follow_the_rate_arguments():
    fs, t = 30.0, 30000  # 1000 s
    # homogeneous Poisson at one rate: the pooled count is within 5 standard errors of rate * duration
    s = simulate(t, (24, 24), 6, seed=5, rate=0.5, rate_sigma=0.0, burstiness=0.0, fs=fs, min_distance=0.2,
                 diameter=6)
    expected = 0.5 * t / fs * 6
    assert abs(s.spikes.sum() - expected) < 5 * math.sqrt(expected)
    # rates clipped into rate_range, even with a very wide lognormal spread
    s = simulate(t, (24, 24), 6, seed=6, rate=1.0, rate_sigma=5.0, rate_range=(0.2, 0.4), burstiness=0.0,
                 fs=fs, min_distance=0.2, diameter=6)
    counts = s.spikes.sum(axis=1)
    lo, hi = 0.2 * t / fs, 0.4 * t / fs
    assert np.all(counts > lo - 5 * math.sqrt(lo)) and np.all(counts < hi + 5 * math.sqrt(hi))


def test_default_rates_are_varied_with_some_nearly_silent():
    s = simulate(3000, (128, 128), 60, seed=7)
    rates = s.spikes.sum(axis=1) / (3000 / 30.0)
    assert rates.min() < 0.1 and rates.max() > 1.0


def test_somata_brighter_and_darker_than_their_surround():
    s = simulate(100, (128, 128), 50, seed=8)
    mean = s.movie.mean(axis=0)
    anywhere = s.masks.any(axis=0)
    ratios = []
    for m in s.masks:
        ring = ndi.binary_dilation(m, iterations=6) & ~ndi.binary_dilation(m, iterations=3) & ~anywhere
        if ring.sum() > 10:
            ratios.append(mean[m].mean() / mean[ring].mean())
    ratios = np.array(ratios)
    assert np.mean(ratios < 1.0) > 0.1
    assert np.mean(ratios > 1.1) > 0.1


def test_neuropil_processes_leave_dark_gaps_and_keep_the_neurons():
    kw = dict(n_frames=60, shape=(128, 128), n_neurons=30, seed=12)
    smooth, meshed = simulate(**kw), simulate(**kw, neuropil_processes=0.8)
    for name in ("masks", "footprints", "calcium", "centers"):
        np.testing.assert_array_equal(getattr(smooth, name), getattr(meshed, name))
    # away from somata and vessels' edges, the smooth neuropil rarely falls below half its local level; the mesh's
    # gaps do often
    outside = ~ndi.binary_dilation(smooth.masks.any(axis=0), iterations=3)

    def dark_fraction(s):
        npil = s.background[1].astype(np.float64)
        local = ndi.gaussian_filter(npil, 8.0)
        return np.mean((npil < 0.5 * local)[outside])

    assert dark_fraction(smooth) < 0.05
    assert dark_fraction(meshed) > 0.2
    # the movie is still its parts plus noise
    resid = meshed.movie - _clean(meshed)
    assert abs(resid.std() / meshed.noise_sigma - 1.0) < 0.02
    with pytest.raises(ValueError, match="neuropil_processes"):
        simulate(5, (20, 20), 1, seed=0, neuropil_processes=1.5)


def test_active_out_of_focus_somata_fire_outside_the_neurons():
    kw = dict(n_frames=300, shape=(128, 128), n_neurons=30, seed=13, out_of_focus=1.0)
    still, active = simulate(**kw), simulate(**kw, out_of_focus_activity=1.5)
    for name in ("masks", "footprints", "calcium", "spikes", "centers"):
        np.testing.assert_array_equal(getattr(still, name), getattr(active, name))
    np.testing.assert_array_equal(still.background, active.background[:5])
    extra, traces = active.background[5:].astype(np.float64), active.background_traces[5:]
    assert len(extra) == 30 and len(traces) == 30
    # each extra component is one blurred blob, mostly outside the in-focus somata, and it spikes: its trace
    # rises in steps and decays, never below zero
    assert np.all(extra.reshape(30, -1).max(axis=1) > 0)
    assert np.all(traces >= 0) and np.mean(traces.max(axis=1) > 0.5) > 0.5
    inside = active.masks.any(axis=0)
    assert (extra[:, inside].sum() / extra.sum()) < 0.5
    # the noiseless movie fluctuates more where they lie, and the movie is still its parts plus noise
    clean_still, clean_active = _clean(still), _clean(active)
    hot = (extra.sum(axis=0) > 0.3 * extra.sum(axis=0).max()) & ~inside
    assert clean_active.std(axis=0)[hot].mean() > 1.5 * clean_still.std(axis=0)[hot].mean()
    resid = active.movie - clean_active
    assert abs(resid.std() / active.noise_sigma - 1.0) < 0.02
    # blurrier out-of-focus somata: a smaller share of each one's area near its peak
    def sharpness(sim):
        imgs = sim.background[5:].reshape(30, -1)
        peak = imgs.max(axis=1, keepdims=True)
        return np.mean((imgs > 0.8 * peak).sum(axis=1) / (imgs > 0.1 * peak).sum(axis=1))

    soft = simulate(**kw, out_of_focus_activity=1.5, out_of_focus_edge=(5.0, 6.0))
    assert sharpness(soft) < 0.8 * sharpness(active)
    with pytest.raises(ValueError, match="out_of_focus_activity"):
        simulate(5, (20, 20), 1, seed=0, out_of_focus_activity=-1.0)
    for setting in (dict(diameter=0.0), dict(rate=-1.0)):  # each crashed inside NumPy before
        with pytest.raises(ValueError, match=next(iter(setting))):
            simulate(5, (20, 20), 1, seed=0, **setting)
    with pytest.raises(ValueError, match="out_of_focus_edge"):
        simulate(5, (20, 20), 1, seed=0, out_of_focus_edge=(0.0, 2.0))


def test_bleaching_and_background_traces():
    s = simulate(200, (32, 32), 2, seed=9, bleach=0.2, nb=1)
    assert s.background.shape[0] == 4
    np.testing.assert_allclose(s.background_traces[0, [0, -1]], [1.0, 0.8])
    assert np.all(np.diff(s.background_traces[0]) < 0)
    mean_trace = s.movie.mean(axis=(1, 2))
    assert mean_trace[-20:].mean() < 0.9 * mean_trace[:20].mean()
    # the movie is still its parts (the neurons' calcium times the bleaching curve) plus noise
    resid = s.movie - _clean(s)
    assert abs(resid.std() / s.noise_sigma - 1.0) < 0.03


def test_bleaching_dims_the_transients_like_the_resting_fluorescence():
    """A bleached indicator (GCaMP) loses resting fluorescence and transients together: a neuron's fluorescence is
    proportional to its unbleached indicator, so dF shrinks by the bleaching curve and dF/F is what it is without
    bleaching. The returned calcium and spikes stay the indicator-free truth."""
    n_frames, b = 300, 0.5
    kw = dict(n_frames=n_frames, shape=(40, 40), n_neurons=1, seed=21, rate=2.0, photons=1e9, read_noise=0.0,
              neuropil_activity=0.0, puncta_activity=0.0, background_drift=0.0)
    curve = (1.0 - b) ** (np.arange(n_frames) / (n_frames - 1))  # exponential, loses b by the last frame

    def at_peak(s: Simulation) -> np.ndarray:
        r, c = np.unravel_index(np.argmax(s.footprints[0]), s.footprints[0].shape)
        return s.movie[:, r, c].astype(np.float64)

    fluor, fluor0 = at_peak(simulate(**kw, bleach=b)), at_peak(simulate(**kw))
    rest_sim = simulate(**kw, bleach=b, spike_amplitude=(0.0, 0.0))  # the same field, silent neurons
    rest, rest0 = at_peak(rest_sim), at_peak(simulate(**kw, spike_amplitude=(0.0, 0.0)))
    truth = simulate(**kw, bleach=b)
    np.testing.assert_array_equal(truth.calcium, simulate(**kw).calcium)
    np.testing.assert_array_equal(truth.spikes, simulate(**kw).spikes)
    np.testing.assert_allclose(rest / rest0, curve, rtol=1e-3)  # the resting fluorescence bleaches
    active = truth.calcium[0] > 0.5
    assert active[: n_frames // 4].any() and active[-n_frames // 4:].any()
    # dF of the same calcium: full at the start, (1 - b) of it at the end, the bleaching curve in between
    df, df0 = fluor - rest, fluor0 - rest0
    np.testing.assert_allclose(df[active] / df0[active], curve[active], rtol=1e-3)
    # dF/F is kept
    np.testing.assert_allclose(df[active] / rest[active], df0[active] / rest0[active], rtol=1e-3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="cannot place"):
        simulate(5, (20, 20), 50, seed=0)
    with pytest.raises(ValueError, match="p must be"):
        simulate(5, (20, 20), 1, seed=0, p=3)
    with pytest.raises(ValueError):
        simulate(0, (20, 20), 1, seed=0)


_NAN = float("nan")


@pytest.mark.parametrize("name, value", [
    ("n_frames", 2.5), ("n_frames", _NAN), ("n_frames", "10"), ("n_frames", True),
    ("shape", (32.5, 32)), ("shape", (32,)), ("shape", 32), ("shape", (32, 32, 3)),
    ("n_neurons", 2.5), ("n_neurons", _NAN), ("seed", -1), ("seed", 1.5), ("seed", _NAN),
    ("fs", _NAN), ("fs", float("inf")), ("decay_time", _NAN), ("decay_time", float("inf")), ("p", 1.5),
    ("diameter_spread", 1.0), ("diameter_spread", -0.5), ("diameter_spread", _NAN),
    ("ellipticity", (0.0, 1.0)), ("ellipticity", (1.0, 0.5)), ("ellipticity", (0.5, 2.0)), ("ellipticity", (_NAN, 1)),
    ("min_distance", -1), ("min_distance", _NAN),
    ("nucleus_size", (0.0, 0.0)), ("nucleus_size", (-1, 0.5)), ("nucleus_size", (1.5, 2.0)),
    ("nucleus_dim", (1.5, 2.0)), ("nucleus_dim", (-2, -1)), ("nucleus_dim", (_NAN, 0.5)),
    ("edge", 0), ("edge", -1), ("edge", _NAN), ("texture", -1), ("texture", _NAN),
    ("filled", _NAN), ("filled", -1), ("filled", 2),
    ("photons", _NAN), ("photons", float("inf")),
    ("cell_brightness", (0, 1)), ("cell_brightness", (-1, 1)), ("cell_brightness", (2, 1)),
    ("spike_amplitude", (-1, 0)), ("spike_amplitude", (_NAN, 1)),
    ("rate_sigma", _NAN), ("rate_sigma", -1), ("rate_range", (1, 0.1)), ("rate_range", (-1, 1)),
    ("rate_range", (_NAN, 1)), ("burstiness", _NAN), ("burstiness", -1),
    ("neuropil_contrast", _NAN), ("neuropil_contrast", -1), ("neuropil_activity", _NAN),
    ("neuropil_activity", -1), ("vessels", _NAN), ("vessels", -1),
    ("out_of_focus", _NAN), ("out_of_focus", -1), ("puncta", _NAN), ("puncta", -1),
    ("puncta_activity", _NAN), ("puncta_activity", -1), ("nb", 1.5), ("nb", _NAN),
    ("background_strength", _NAN), ("background_strength", -1), ("background_drift", _NAN),
    ("background_drift", -1), ("gain", _NAN), ("gain", float("inf")), ("read_noise", _NAN),
    ("offset", _NAN), ("offset", float("inf")),
    ("mask_threshold", _NAN), ("mask_threshold", 1), ("mask_threshold", -1),
    ("block_frames", 0), ("block_frames", -1), ("block_frames", 2.5),
])
def test_every_bad_argument_is_a_clear_error_naming_it(name, value):
    """Never a NaN movie, a truncated size, empty masks or a crash deep inside NumPy: a ValueError naming it."""
    with pytest.raises(ValueError, match=name):
        simulate(**{"n_frames": 10, "shape": (32, 32), "n_neurons": 2, "seed": 0, name: value})


@pytest.mark.parametrize("name, value", [("decay_time", _NAN), ("fs", float("inf")), ("p", 1.5)])
def test_ar_coefficients_refuses_bad_arguments(name, value):
    with pytest.raises(ValueError, match=name):
        ar_coefficients(**{"decay_time": 0.4, "fs": 30.0, "p": 1, name: value})


def test_whole_number_floats_and_numpy_ints_are_accepted():
    a = simulate(np.int64(10), (np.int64(32), 32.0), 2.0, seed=np.uint32(5), nb=np.int8(1))
    b = simulate(10, (32, 32), 2, seed=5, nb=1)
    np.testing.assert_array_equal(a.movie, b.movie)


def test_impossible_crowding_is_refused_at_once():
    """Far more somata than fit (disjoint discs of radius min_distance * diameter / 2): no minutes of retries."""
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="cannot place"):
        simulate(5, (32, 32), 100_000, seed=0)
    assert time.perf_counter() - t0 < 5.0
