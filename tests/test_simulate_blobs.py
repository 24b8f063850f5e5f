"""The Gaussian-blob simulator: its parts add up to the movie, the noise and shapes are what was asked for."""
import numpy as np
import pytest

from cellfie_caiman.masks import mask_diameter
from cellfie_caiman.simulate_blobs import simulate_blobs


@pytest.fixture(scope="module")
def sim():
    return simulate_blobs(600, (96, 80), 20, seed=3, fs=30.0, noise=0.3, diameter=12.0)


def test_shapes_and_types(sim):
    assert sim.movie.shape == (600, 96, 80) and sim.movie.dtype == np.float32
    assert sim.masks.shape == sim.footprints.shape == (20, 96, 80) and sim.masks.dtype == bool
    assert sim.calcium.shape == sim.spikes.shape == (20, 600)
    assert sim.background.shape == (1, 96, 80) and sim.background_traces.shape == (1, 600)
    assert sim.centers.shape == (20, 2) and sim.g.shape == (20, 1)


def test_movie_is_the_sum_of_its_parts_plus_white_noise_of_the_given_sd(sim):
    clean = np.einsum("kt,kij->tij", sim.calcium, sim.footprints.astype(np.float64))
    clean += sim.background[0][None] * sim.background_traces[0][:, None, None]
    residual = sim.movie - clean
    assert abs(residual.mean()) < 0.01
    assert residual.std() == pytest.approx(0.3, rel=0.02)
    # white: neighbouring pixels and consecutive frames uncorrelated
    assert abs(np.corrcoef(residual[:, :, :-1].ravel(), residual[:, :, 1:].ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(residual[:-1].ravel(), residual[1:].ravel())[0, 1]) < 0.02


def test_calcium_is_ar1_of_the_spikes(sim):
    g = sim.g[0, 0]
    assert g == pytest.approx(np.exp(-1 / (1.0 * 30.0)))
    c = sim.calcium
    np.testing.assert_allclose(c[:, 1:], g * c[:, :-1] + sim.spikes[:, 1:], atol=1e-9)
    assert set(np.unique(sim.spikes)) <= {0.0, 1.0}


def test_footprints_are_unit_norm_with_masks_their_support_of_about_the_given_diameter(sim):
    f = sim.footprints.reshape(20, -1).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(sim.masks, sim.footprints > 0)
    # with a dimmer centre the peak is lower, so the cut at exp(-2) of it lies further out than for plain Gaussians
    plain = simulate_blobs(10, (96, 80), 20, seed=3, diameter=12.0, dip=None)
    assert mask_diameter(sim.masks) > 1.05 * mask_diameter(plain.masks)
    # plain Gaussians: the cut lies at 2 standard deviations, so the masks' diameter is about 4 sigma = diameter
    assert mask_diameter(plain.masks) == pytest.approx(12.0, rel=0.1)
    for k in range(20):  # each centre lies inside its own mask
        r, c = np.round(sim.centers[k]).astype(int)
        assert sim.masks[k, r, c]


def test_late_starting_neurons_are_silent_for_the_first_quarter():
    late = simulate_blobs(400, (48, 48), 6, seed=1, late_start=1.0, rate=5.0)
    assert late.spikes[:, :100].sum() == 0
    assert late.spikes[:, 240:].sum(axis=1).min() > 0  # at 5 Hz every neuron fires after 60 % of the movie
    early = simulate_blobs(400, (48, 48), 6, seed=1, late_start=0.0, rate=5.0)
    assert early.spikes[:, 1:100].sum(axis=1).min() > 0


def test_same_seed_same_movie_other_seed_other_movie():
    a = simulate_blobs(50, (40, 40), 4, seed=5)
    b = simulate_blobs(50, (40, 40), 4, seed=5)
    c = simulate_blobs(50, (40, 40), 4, seed=6)
    np.testing.assert_array_equal(a.movie, b.movie)
    assert not np.array_equal(a.movie, c.movie)


def test_the_most_overlapping_neurons_are_dropped():
    from cellfie_caiman.simulate_blobs import _drop_overlapping

    # four unit vectors: 0 and 2 nearly the same, 1 and 3 overlapping a little, nothing else shared
    f = np.array([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0], [0.99, 0, 0.14, 0, 0], [0, 0.2, 0, 0.98, 0]])
    assert list(_drop_overlapping(f, 3)) == [0, 1, 3]
    assert list(_drop_overlapping(f, 2)) == [0, 1]
    assert list(_drop_overlapping(f, 4)) == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs", [dict(n_frames=0), dict(n_neurons=0), dict(shape=(4, 40)), dict(diameter=-1.0),
                                    dict(noise=-0.1), dict(late_start=1.5)])
def test_bad_arguments_raise(kwargs):
    args = dict(n_frames=10, shape=(40, 40), n_neurons=3)
    args.update(kwargs)
    with pytest.raises(ValueError):
        simulate_blobs(args.pop("n_frames"), args.pop("shape"), args.pop("n_neurons"), seed=0, **args)
