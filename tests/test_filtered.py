"""Soma-filtered peak-to-noise image against direct definitions written here, and on a faint simulated neuron."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cellfie_caiman.filtered import filtered_pnr, soma_filter
from cellfie_caiman.io import save_memmap
from cellfie_caiman.summary import batch_bounds, summary_images


def naive_filter(frame: np.ndarray, diameter: float) -> np.ndarray:
    """Difference of two sampled Gaussians, real-space convolution with mirrored edges (scipy.ndimage)."""
    x = frame.astype(np.float64)
    return (ndimage.gaussian_filter(x, diameter / 5, mode="reflect", truncate=10)
            - ndimage.gaussian_filter(x, diameter / 1.5, mode="reflect", truncate=10))


def naive_pnr(movie: np.ndarray, diameter: float, batch_frames=None) -> np.ndarray:
    """The module docstring's formula, frame by frame and batch by batch, in float64."""
    f = np.stack([naive_filter(x, diameter) for x in movie])
    out = np.zeros(movie.shape[1:])
    for a, b in batch_bounds(len(movie), batch_frames):
        y = f[a:b]
        noise = np.sqrt(np.sum(np.diff(y, axis=0) ** 2, axis=0) / (2 * (len(y) - 1)))
        out = np.maximum(out, np.maximum(y.max(0) - y.mean(0), 0) / noise)
    return out


@pytest.mark.parametrize("diameter", [6.0, 12.0, 20.0])
def test_soma_filter_matches_real_space_difference_of_gaussians(diameter):
    rng = np.random.default_rng(1)
    frame = (rng.normal(0, 1, (60, 50)) + 5).astype(np.float32)
    ref = naive_filter(frame, diameter)
    out = soma_filter(frame, diameter)
    assert out.shape == frame.shape and out.dtype == np.float32
    # continuous vs sampled Gaussians differ by ~1e-3 of the signal; the edges are mirrored in both
    np.testing.assert_allclose(out, ref, atol=2e-3 * np.abs(ref).max())
    stack = soma_filter(np.stack([frame, 2 * frame]), diameter)
    np.testing.assert_allclose(stack[1], 2 * out, rtol=1e-4, atol=1e-5)


def test_soma_filter_peaks_at_a_soma_and_ignores_a_constant():
    yy, xx = np.mgrid[:64, :64]
    disk = (((yy - 30) ** 2 + (xx - 36) ** 2) <= 36).astype(np.float32)
    out = soma_filter(100 + disk, 12.0)
    assert np.unravel_index(out.argmax(), out.shape) == (30, 36)
    assert np.abs(soma_filter(np.full((40, 40), 100.0), 12.0)).max() < 1e-3


@pytest.mark.parametrize("batch_frames", [None, 40])
def test_filtered_pnr_matches_the_definition(batch_frames):
    rng = np.random.default_rng(2)
    movie = rng.normal(50, 2, (100, 36, 40)).astype(np.float32)
    movie[30:35, 10:18, 12:20] += 3.0
    ref = naive_pnr(movie, 10.0, batch_frames)
    out = filtered_pnr(movie, 10.0, batch_frames=batch_frames)
    assert out.shape == (36, 40) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=5e-3, atol=5e-3)
    # reading in small chunks (a chunk boundary inside every batch) changes nothing
    np.testing.assert_allclose(filtered_pnr(movie, 10.0, batch_frames=batch_frames, chunk_frames=7), out,
                               rtol=1e-5, atol=1e-5)


def test_filtered_pnr_from_a_caiman_memmap_and_in_summary_images(tmp_path):
    rng = np.random.default_rng(3)
    movie = rng.normal(10, 1, (60, 24, 28)).astype(np.float32)
    direct = filtered_pnr(movie, 8.0, batch_frames=25)
    fname = save_memmap(movie, str(tmp_path / "mov"), order="C")
    np.testing.assert_allclose(filtered_pnr(fname, 8.0, batch_frames=25), direct, rtol=1e-5, atol=1e-5)
    s = summary_images(movie, batch_frames=25, filter_diameter=8.0)
    np.testing.assert_allclose(s.pnr_filtered, direct, rtol=1e-6)
    assert summary_images(movie, batch_frames=25).pnr_filtered is None


def test_filtered_pnr_reveals_a_faint_neuron_the_pixel_pnr_misses():
    """One soma with three faint transients (1.2 noise sigma per pixel at their peak): lost in the per-pixel PNR,
    clear after the soma filter, while the static bright blob beside it (an inactive out-of-focus cell) stays at
    the noise level."""
    rng = np.random.default_rng(4)
    t, rows, cols = 300, 64, 64
    yy, xx = np.mgrid[:rows, :cols]
    soma = (((yy - 20) ** 2 + (xx - 20) ** 2) <= 36).astype(np.float32)
    blob = np.exp(-((yy - 44) ** 2 + (xx - 44) ** 2) / (2 * 4.0**2)).astype(np.float32)
    trace = np.zeros(t, np.float32)
    for s in (50, 140, 230):
        trace[s:s + 12] += 1.2 * np.exp(-np.arange(12) / 4.0)
    movie = rng.normal(100, 1, (t, rows, cols)).astype(np.float32) + 20 * blob + trace[:, None, None] * soma
    s = summary_images(movie, filter_diameter=12.0)
    background = np.ones((rows, cols), bool)
    background[10:31, 10:31] = False
    background[34:55, 34:55] = False
    # per-pixel PNR: the soma is within the background's range
    assert s.pnr[soma > 0].mean() < np.percentile(s.pnr[background], 99)
    # filtered: the soma centre is far above everything else, the static blob is not
    f = s.pnr_filtered
    assert f[20, 20] > 1.3 * np.percentile(f[background], 99.9)
    assert f[40:49, 40:49].max() < np.percentile(f[background], 99.9)


@pytest.mark.parametrize("offset", [3e4, 1e6])
def test_filtered_pnr_does_not_depend_on_the_baseline(offset):
    """A unitless ratio of a band-passed movie: a large baseline (or a hot pixel) must not zero it. A quiet
    movie far from zero, like raw uint16 counts of a dim field: noise 0.5 on a baseline of ``offset``."""
    rng = np.random.default_rng(5)
    movie = rng.normal(0, 0.5, (80, 32, 36))
    movie[20:26, 8:16, 10:18] += 1.0
    shifted = (movie + offset).astype(np.float32)
    shifted[:, 30, 2] += 10 * offset  # a hot pixel
    out = filtered_pnr(shifted, 10.0)
    np.testing.assert_allclose(out, naive_pnr(shifted.astype(np.float64), 10.0), rtol=5e-3, atol=5e-3)
    assert np.median(out) > 1


def test_filtered_pnr_degenerate_inputs():
    assert not filtered_pnr(np.full((20, 16, 16), 7.0, np.float32), 6.0).any()  # constant: 0, not NaN/inf
    with pytest.raises(ValueError, match="diameter"):
        filtered_pnr(np.zeros((5, 8, 8), np.float32), 0.0)
    for bad in (float("nan"), "12", True, 1.5, 1e6):  # not a number, below 2 px, beyond the field: before any work
        with pytest.raises(ValueError, match="filter_diameter"):
            summary_images(np.zeros((5, 8, 8), np.float32), filter_diameter=bad)
    with pytest.raises(ValueError, match="frames"):
        soma_filter(np.zeros(5), 6.0)


def test_filtered_pnr_batches_of_two_frames_on_an_odd_movie():
    """batch_frames=2 on 5 frames: no 1-frame batch, whose noise (0 / 0) made the whole image NaN."""
    movie = np.random.default_rng(6).normal(50, 2, (5, 36, 40)).astype(np.float32)
    out = filtered_pnr(movie, 10.0, batch_frames=2)
    assert np.isfinite(out).all()
    expected = np.maximum(naive_pnr(movie[:2], 10.0), naive_pnr(movie[2:], 10.0))  # batches (0, 2) and (2, 5)
    np.testing.assert_allclose(out, expected, rtol=5e-3, atol=5e-3)  # sampled vs continuous Gaussians
    assert np.isfinite(summary_images(movie, batch_frames=2, filter_diameter=10.0).pnr_filtered).all()


def test_read_ahead_yields_every_range_in_order_and_passes_errors_on():
    from cellfie_caiman.filtered import _read_ahead

    ranges = [(0, 3), (3, 5), (5, 9)]
    got = list(_read_ahead(lambda a, b: np.arange(a, b), ranges))
    assert [g.tolist() for g in got] == [list(range(a, b)) for a, b in ranges]
    assert list(_read_ahead(lambda a, b: np.arange(a, b), [])) == []

    def failing(a, b):
        if a == 3:
            raise OSError("disk gone")
        return np.arange(a, b)

    with pytest.raises(OSError, match="disk gone"):
        list(_read_ahead(failing, ranges))
