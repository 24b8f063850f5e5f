"""Summary images against naive NumPy definitions written here, independently of the streaming implementation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellfie_caiman.summary import SummaryImages, batch_bounds, local_correlation, noise_frames, summary_images

DATA = Path(__file__).parents[1].parent / "shared" / "data"
OFFSETS8 = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
OFFSETS4 = [(-1, 0), (1, 0), (0, -1), (0, 1)]
#: The per-pixel images (pnr_filtered, optional, is tested in test_filtered.py).
PIXEL_IMAGES = ("corr", "pnr", "std", "mean", "median", "max")


# ---------------------------------------------------------------------------------------------------------------
# Naive references


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two time series; 0 when either is constant (CaImAn's FFT definition)."""
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return 0.0 if den == 0 else float((x * y).sum() / den)


def naive_corr(movie: np.ndarray, offsets=OFFSETS8, pairs=None) -> np.ndarray:
    """Per pixel: mean over in-bounds neighbours of the Pearson correlation (one np loop per pixel and neighbour).

    ``pairs(i, j)`` may return the list of pixel pairs to average instead (for CaImAn's quirk).
    """
    y = movie.astype(np.float64)
    _, rows, cols = y.shape
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            if pairs is None:
                plist = [((i, j), (i + di, j + dj)) for di, dj in offsets
                         if 0 <= i + di < rows and 0 <= j + dj < cols]
            else:
                plist = pairs(i, j)
            out[i, j] = np.mean([pearson(y[:, a, b], y[:, c, d]) for (a, b), (c, d) in plist])
    return out


def naive_corr_fast(movie: np.ndarray) -> np.ndarray:
    """Same definition as naive_corr, vectorised over pixels for larger movies: explicit per-offset Pearson."""
    y = movie.astype(np.float64)
    _, rows, cols = y.shape
    c = y - y.mean(axis=0)
    norm = np.sqrt((c * c).sum(axis=0))
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    for di, dj in OFFSETS8:
        i0, i1 = max(0, -di), rows - max(0, di)
        j0, j1 = max(0, -dj), cols - max(0, dj)
        a = c[:, i0:i1, j0:j1]
        b = c[:, i0 + di:i1 + di, j0 + dj:j1 + dj]
        den = norm[i0:i1, j0:j1] * norm[i0 + di:i1 + di, j0 + dj:j1 + dj]
        num = (a * b).sum(axis=0)
        total[i0:i1, j0:j1] += np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        count[i0:i1, j0:j1] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)  # a 1 x 1 frame has no neighbour


def naive_noise(movie: np.ndarray) -> np.ndarray:
    """CaImAn's get_noise_fft(noise_method='mean') written from its description, per pixel with np.fft."""
    y = movie.astype(np.float64)
    T = y.shape[0]
    if T > 3072:
        y = np.concatenate([y[1:1025], y[T // 2 - 512:T // 2 + 512], y[T - 1024:]])
        T = y.shape[0]
    freqs = np.fft.rfftfreq(T)
    band = (freqs > 0.25) & (freqs <= 0.5)
    out = np.zeros(y.shape[1:])
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            psd = 2 * np.abs(np.fft.rfft(y[:, i, j])[band]) ** 2 / T
            out[i, j] = np.sqrt(np.mean(psd / 2))
    return out


def naive_images(movie: np.ndarray) -> dict[str, np.ndarray]:
    y = movie.astype(np.float64)
    sigma = naive_noise(movie)
    peak = (y - y.mean(axis=0)).max(axis=0)
    pnr = np.divide(peak, sigma, out=np.zeros_like(peak), where=sigma > 0)
    return {"corr": naive_corr_fast(movie), "pnr": np.maximum(pnr, 0), "std": np.std(y, axis=0),
            "mean": np.mean(y, axis=0), "median": np.median(movie, axis=0), "max": np.max(movie, axis=0)}


def assert_images(result: SummaryImages, expected: dict[str, np.ndarray], scale: float) -> None:
    for name in PIXEL_IMAGES:
        got = getattr(result, name)
        assert got.dtype == np.float32 and got.shape == expected[name].shape, name
        assert np.isfinite(got).all(), name
        if name in ("corr",):
            np.testing.assert_allclose(got, expected[name], atol=2e-6, err_msg=name)
        elif name == "pnr":
            np.testing.assert_allclose(got, expected[name], rtol=2e-5, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_allclose(got, expected[name], rtol=1e-6, atol=1e-6 * scale, err_msg=name)


def structured_movie(T=120, rows=13, cols=11, seed=0) -> np.ndarray:
    """Noise + two correlated blobs with transients + a slow drift, float32 with an offset like raw data."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    ii, jj = np.mgrid[:rows, :cols]
    movie = 100 + 0.01 * t[:, None, None] + rng.normal(0, 1, (T, rows, cols))
    for ci, cj, phase in ((3, 3, 0), (8, 7, 40)):
        blob = np.exp(-((ii - ci) ** 2 + (jj - cj) ** 2) / 4.0)
        trace = np.maximum(0, np.sin((t + phase) / 7.0)) ** 4 * 5
        movie += trace[:, None, None] * blob
    return movie.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Whole-image definitions


def test_matches_naive_definitions_on_structured_movie():
    movie = structured_movie()
    result = summary_images(movie)
    expected = naive_images(movie)
    expected["corr"] = naive_corr(movie)  # the slow, per-pixel np loop for this small movie
    assert_images(result, expected, scale=100)


def test_matches_naive_definitions_on_odd_length_random_movie():
    rng = np.random.default_rng(1)
    movie = rng.gamma(2.0, 3.0, size=(77, 9, 14)).astype(np.float32)
    assert_images(summary_images(movie), naive_images(movie), scale=10)


def test_real_data_crop():
    path = DATA / "neurofinder.01.01" / "movie.tif"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    import tifffile

    movie = tifffile.imread(path)[:, 200:264, 230:294]
    assert movie.shape == (101, 64, 64)
    result = summary_images(movie)
    expected = naive_images(movie)
    assert_images(result, expected, scale=float(movie.max()))
    # neurons are there: some pixels correlate strongly with their neighbours, and PNR has a spread
    assert result.corr.max() > 0.5 and result.pnr.max() > 2 * np.median(result.pnr)


def test_long_movie_noise_uses_caiman_frame_subset():
    rng = np.random.default_rng(2)
    T = 3100
    movie = rng.normal(10, 1, (T, 3, 4)).astype(np.float32)
    movie[:1500] *= 3  # unequal noise along the movie, so the subset matters
    result = summary_images(movie)
    sigma = naive_noise(movie)
    peak = movie.max(axis=0) - movie.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(result.pnr, peak / sigma, rtol=1e-5)
    idx = noise_frames(T)
    assert idx.size == 3072 and idx[0] == 1 and idx[1023] == 1024 and idx[1024] == T // 2 - 512
    assert idx[-1] == T - 1 and np.array_equal(noise_frames(100), np.arange(100))


@pytest.mark.parametrize("dtype, offset, noise", [(np.float32, 6e4, 0.5), (np.int16, -32000, 1.0),
                                                   (np.float32, 1e5, 0.05)])
def test_pnr_does_not_depend_on_a_large_baseline(dtype, offset, noise):
    """Raw counts far from zero with little noise (uint16/int16 offsets): the float32 FFT of the noise step must not
    lose the noise to the round-off of the baseline (the expectation is computed in float64)."""
    rng = np.random.default_rng(18)
    movie = (offset + rng.normal(0, noise, (300, 6, 7))).astype(dtype)
    expected = naive_images(movie.astype(np.float32))
    np.testing.assert_allclose(summary_images(movie).pnr, expected["pnr"], rtol=2e-5)
    np.testing.assert_allclose(summary_images(movie, batch_frames=100).pnr,
                               np.max([naive_images(movie[a:a + 100].astype(np.float32))["pnr"]
                                       for a in (0, 100, 200)], axis=0), rtol=2e-5)


@pytest.mark.parametrize("T", [801, 802, 1203])
def test_median_of_long_series(T):
    """Short series are sorted and long ones partitioned for the median: both must equal np.median."""
    rng = np.random.default_rng(T)
    movie = rng.normal(50, 3, (T, 3, 4)).astype(np.float32)
    movie[:, 0, 0] = np.round(movie[:, 0, 0])  # ties
    np.testing.assert_allclose(summary_images(movie).median, np.median(movie, axis=0), rtol=1e-7)
    per_batch = [np.median(movie[a:b], axis=0) for a, b in batch_bounds(T, 400)]
    np.testing.assert_allclose(summary_images(movie, batch_frames=400).median, np.max(per_batch, axis=0), rtol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# Batches


def test_batch_bounds():
    assert batch_bounds(1000, None) == [(0, 1000)]
    assert batch_bounds(1000, 250) == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    assert batch_bounds(1124, 250)[-1] == (750, 1124)      # remainder 124 < 125: merged
    assert batch_bounds(1125, 250)[-1] == (1000, 1125)     # remainder 125: own batch
    assert batch_bounds(100, 250) == [(0, 100)]
    for T in (1, 7, 249, 250, 251, 999, 1001):
        b = batch_bounds(T, 250)
        assert b[0][0] == 0 and b[-1][1] == T and all(s1 == e0 for (_, e0), (s1, _) in zip(b, b[1:], strict=False))
    with pytest.raises(ValueError, match="batch_frames"):
        batch_bounds(100, 0)


def test_no_batch_has_a_single_frame():
    """A 1-frame batch has no variation (std, corr, noise 0; its 'mean' is one raw frame): a remainder of one frame
    joins the previous batch even when it is half of batch_frames (batch_frames=2, odd T)."""
    for T in range(2, 40):
        for bf in range(2, 12):
            b = batch_bounds(T, bf)
            assert b[0][0] == 0 and b[-1][1] == T, (T, bf)
            assert min(stop - start for start, stop in b) >= 2, (T, bf, b)
    assert batch_bounds(5, 2) == [(0, 2), (2, 5)]
    movie = structured_movie(T=7, rows=6, cols=5, seed=17)
    per_batch = [naive_images(movie[a:b]) for a, b in [(0, 2), (2, 4), (4, 7)]]
    expected = {name: np.max([p[name] for p in per_batch], axis=0) for name in PIXEL_IMAGES}
    assert_images(summary_images(movie, batch_frames=2), expected, scale=100)


def test_batches_give_max_over_naive_batch_images():
    movie = structured_movie(T=130, rows=8, cols=9, seed=3)
    result = summary_images(movie, batch_frames=40)
    batches = [movie[0:40], movie[40:80], movie[80:130]]  # remainder 10 < 20 merged into the last batch
    per_batch = [naive_images(b) for b in batches]
    expected = {name: np.max([p[name] for p in per_batch], axis=0) for name in PIXEL_IMAGES}
    assert_images(result, expected, scale=100)
    # and it differs from the single-batch images (the test would not notice a batch_frames that is ignored)
    assert not np.allclose(result.corr, summary_images(movie).corr)


# ---------------------------------------------------------------------------------------------------------------
# Special cases


def test_constant_pixels_and_border_neighbour_counts():
    rng = np.random.default_rng(4)
    T, rows, cols = 50, 7, 8
    signal = rng.normal(size=T)
    movie = np.empty((T, rows, cols), np.float32)
    movie[:] = (signal[:, None, None] * rng.uniform(1, 2, (rows, cols)) + rng.uniform(0, 5, (rows, cols)))
    for i, j in ((0, 0), (0, 4), (rows - 2, cols - 2)):
        movie[:, i, j] = 3.0  # constant pixels
    s = summary_images(movie, filter_diameter=4.0)
    for field in s:
        assert np.isfinite(field).all()
    corr = s.corr
    assert corr[0, 0] == 0 and corr[0, 4] == 0 and corr[rows - 2, cols - 2] == 0
    assert s.pnr[0, 0] == 0 and s.std[0, 0] == 0
    # every other pair correlates perfectly, so corr = (neighbours - constant neighbours) / neighbours
    np.testing.assert_allclose(corr[0, 1], 4 / 5, atol=1e-6)        # edge: 5 neighbours, 1 constant
    np.testing.assert_allclose(corr[1, 0], 4 / 5, atol=1e-6)        # edge: 5 neighbours, 1 constant
    np.testing.assert_allclose(corr[1, 1], 7 / 8, atol=1e-6)        # inside: 8 neighbours, 1 constant
    np.testing.assert_allclose(corr[rows - 1, cols - 1], 2 / 3, atol=1e-6)  # corner: 3 neighbours, 1 constant
    np.testing.assert_allclose(corr[0, cols - 1], 1, atol=1e-6)     # corner, no constant neighbour
    four = local_correlation(movie, eight_neighbours=False)
    np.testing.assert_allclose(four[rows - 1, cols - 1], 1, atol=1e-6)  # the diagonal is not a 4-neighbour
    np.testing.assert_allclose(four[0, 3], 2 / 3, atol=1e-6)            # edge: 3 neighbours, (0, 4) constant
    np.testing.assert_allclose(four[0, 1], 1 / 3 * 2, atol=1e-6)        # (0, 0) constant


def test_chunk_size_independence():
    movie = structured_movie(T=60, rows=10, cols=12, seed=5)
    whole = summary_images(movie)
    for chunk in (7, 1, 59):
        chunked = summary_images(movie, chunk_frames=chunk)
        for name in PIXEL_IMAGES:
            np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-6, atol=1e-7,
                                       err_msg=f"{name} chunk_frames={chunk}")
    batched = summary_images(movie, batch_frames=20, filter_diameter=5.0)
    batched7 = summary_images(movie, batch_frames=20, chunk_frames=7, filter_diameter=5.0)
    for a, b in zip(batched, batched7, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_file_input_equals_array_input(tmp_path):
    movie = structured_movie(T=40, rows=6, cols=7, seed=6)
    np.save(tmp_path / "movie.npy", movie)
    from_file = summary_images(str(tmp_path / "movie.npy"))
    from_array = summary_images(movie)
    for a, b in zip(from_file, from_array, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# local_correlation


def test_local_correlation_four_and_eight_neighbours():
    movie = structured_movie(T=50, rows=6, cols=9, seed=7)
    np.testing.assert_allclose(local_correlation(movie), naive_corr(movie), atol=2e-6)
    np.testing.assert_allclose(local_correlation(movie, eight_neighbours=False), naive_corr(movie, OFFSETS4),
                               atol=2e-6)


def test_local_correlation_caiman_quirk():
    movie = structured_movie(T=50, rows=6, cols=7, seed=8)
    rows, cols = movie.shape[1:]

    def quirk_pairs(i, j):
        """Reference §2: CaImAn's local_correlations swaps two diagonal terms."""
        pairs = []
        for di, dj in OFFSETS8:
            if not (0 <= i + di < rows and 0 <= j + dj < cols):
                continue
            if (di, dj) == (-1, -1):
                pairs.append(((i, j - 1), (i - 1, j)))
            elif (di, dj) == (1, -1):
                pairs.append(((i, j - 1), (i + 1, j)))
            else:
                pairs.append(((i, j), (i + di, j + dj)))
        return pairs

    quirk = local_correlation(movie, caiman_quirk=True)
    np.testing.assert_allclose(quirk, naive_corr(movie, pairs=quirk_pairs), atol=2e-6)
    assert np.abs(quirk - local_correlation(movie)).max() > 1e-3


# ---------------------------------------------------------------------------------------------------------------
# Arguments


def test_bad_arguments():
    movie = structured_movie(T=10, rows=4, cols=4)
    with pytest.raises(ValueError, match="backend"):
        summary_images(movie, backend="opencv")
    with pytest.raises(ValueError, match="chunk_frames"):
        summary_images(movie, chunk_frames=0)


def test_caiman_backend():
    movie = structured_movie(T=60, rows=8, cols=9, seed=9)
    try:
        import caiman  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="backend='builtin'"):
            summary_images(movie, backend="caiman")
        return
    from caiman.summary_images import correlation_pnr, local_correlations

    ours = summary_images(movie, batch_frames=30)
    theirs = summary_images(movie, batch_frames=30, backend="caiman")
    for name in PIXEL_IMAGES:
        np.testing.assert_allclose(getattr(theirs, name), getattr(ours, name), rtol=1e-5, atol=1e-5, err_msg=name)
    _, pnr = correlation_pnr(movie.copy(), gSig=None, swap_dim=False)
    np.testing.assert_allclose(summary_images(movie).pnr, pnr, rtol=1e-4)  # CaImAn computes in float32
    np.testing.assert_allclose(local_correlation(movie, caiman_quirk=True),
                               local_correlations(movie.copy(), swap_dim=False), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# CaImAn memmaps are read in place (pixel-major); the result must not depend on the layout


@pytest.mark.parametrize("chunk_frames, sub_lines", [(None, None), (None, 1), (None, 2), (50, None), (7, None)])
def test_caiman_memmap_equals_array(tmp_path, monkeypatch, chunk_frames, sub_lines):
    """Read by blocks of columns with all frames (several lines or one line per block, processed in cache-sized
    sub-blocks of 1, 2 or all lines), or batch by batch through the memory map when that does not fit
    chunk_frames."""
    from cellfie_caiman import summary
    from cellfie_caiman.io import save_memmap

    if sub_lines is not None:  # sub-blocks of this many lines for the longest batch (90 frames x 11 rows)
        monkeypatch.setattr(summary, "_SUB_BYTES", sub_lines * 11 * 90 * 4)

    movie = structured_movie(T=90, rows=11, cols=9, seed=10)
    fname = save_memmap(movie, base_name="Yr", order="C", directory=tmp_path)
    for batch in (None, 40):
        from_file = summary_images(fname, batch_frames=batch, chunk_frames=chunk_frames)
        from_array = summary_images(movie, batch_frames=batch)
        for name in PIXEL_IMAGES:
            np.testing.assert_allclose(getattr(from_file, name), getattr(from_array, name), rtol=1e-6, atol=1e-6,
                                       err_msg=f"{name} batch_frames={batch}")
    np.testing.assert_allclose(local_correlation(fname, caiman_quirk=True),
                               local_correlation(movie, caiman_quirk=True), atol=1e-6)
    assert_images(summary_images(fname), naive_images(movie), scale=100)


@pytest.mark.parametrize("order", ["C", "F"])
def test_caiman_yr_saved_as_npy_equals_array(tmp_path, order):
    """CaImAn's Yr (pixels, T) saved with np.save under a memmap name: its data start after the .npy header, and
    the in-place reading of pixel-major files must start there too."""
    movie = structured_movie(T=50, rows=11, cols=9, seed=15)
    T, rows, cols = movie.shape
    yr = np.stack([frame.flatten(order="F") for frame in movie], axis=1)  # (pixels, T), p = i + j*rows
    fname = tmp_path / f"Yr_d1_{rows}_d2_{cols}_d3_1_order_{order}_frames_{T}.npy"
    np.save(fname, np.asfortranarray(yr) if order == "F" else yr)
    from_file, from_array = summary_images(str(fname)), summary_images(movie)
    for name in PIXEL_IMAGES:
        np.testing.assert_allclose(getattr(from_file, name), getattr(from_array, name), rtol=1e-6, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(local_correlation(fname), local_correlation(movie), atol=1e-6)


def test_memmap_with_upper_case_suffix(tmp_path):
    """load_movie takes 'Yr_..._frames_T.MMAP' (suffixes are case-insensitive): so do load_memmap and summary_images."""
    from cellfie_caiman.io import load_memmap, save_memmap

    movie = structured_movie(T=40, rows=7, cols=6, seed=16)
    fname = Path(save_memmap(movie, base_name="Yr", order="C", directory=tmp_path))
    upper = fname.rename(fname.with_suffix(".MMAP"))
    yr, dims, T = load_memmap(upper)
    np.testing.assert_array_equal(np.reshape(yr.T, (T,) + dims, order="F"), movie)
    result, expected = summary_images(upper), summary_images(movie)
    for name in PIXEL_IMAGES:
        np.testing.assert_allclose(getattr(result, name), getattr(expected, name), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("source", ["memmap", "array", "array-chunked"])
def test_nan_is_filled_like_the_reader(tmp_path, source):
    """Raw data are used where finite; NaN/inf make the batch be read through Movie.read, which fills them."""
    from cellfie_caiman.io import load_movie, save_memmap

    movie = structured_movie(T=50, rows=8, cols=7, seed=11)
    movie[10:13, 5, 0] = np.nan
    movie[30, 2, 3] = np.inf
    with pytest.warns(Warning):
        filled = load_movie(movie).to_array()
    assert np.isfinite(filled).all()
    if source == "memmap":
        with pytest.warns(Warning):
            src = save_memmap(movie, base_name="Yr", order="C", directory=tmp_path)
        # save_memmap fills too: put the NaN back into the file
        from cellfie_caiman.io import load_memmap

        yr, _, _ = load_memmap(src, mode="r+")
        yr[5, 10:13] = np.nan  # pixel (5, 0) is p = 5 + 0 * rows
        yr.flush()
        del yr
    else:
        src = movie
    with pytest.warns(Warning):
        result = summary_images(src, chunk_frames=7 if source == "array-chunked" else None, filter_diameter=4.0)
    assert all(np.isfinite(image).all() for image in result)
    # the memmap holds the writer's fill except where NaN were put back: read back, those get the same fill
    assert_images(result, naive_images(filled), scale=100)


def test_a_nan_border_adds_no_structure():
    """Columns that are NaN in every frame (CaImAn's motion correction with border_nan) are constant once filled:
    zero correlation, deviation and peak there, and the pixels next to them see a constant neighbour."""
    movie = structured_movie(T=60, rows=9, cols=10, seed=12)
    movie[:, :, :3] = np.nan
    with pytest.warns(Warning):
        s = summary_images(movie)
    for image in (s.corr, s.std, s.pnr):
        np.testing.assert_array_equal(image[:, :3], 0)
    constant = movie.copy()
    constant[:, :, :3] = 3.0  # any constant: the images of the rest of the field do not depend on it
    reference = summary_images(constant)
    for name in ("corr", "std", "pnr"):
        np.testing.assert_allclose(getattr(s, name)[:, 3:], getattr(reference, name)[:, 3:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [">f4", "float16", "int16", "float64"])
def test_other_dtypes(dtype):
    movie = structured_movie(T=40, rows=5, cols=6, seed=14)
    converted = movie.astype(dtype)
    expected = naive_images(converted.astype(np.float32))
    assert_images(summary_images(converted), expected, scale=100)
    assert_images(summary_images(converted, chunk_frames=9), expected, scale=100)


def test_integer_movie(tmp_path):
    """uint16 data (as in TIFF files) are read raw and converted exactly."""
    rng = np.random.default_rng(12)
    movie = rng.poisson(300, (60, 9, 10)).astype(np.uint16)
    result = summary_images(movie)
    assert_images(result, naive_images(movie.astype(np.float32)), scale=400)
    for a, b in zip(summary_images(movie, chunk_frames=11, batch_frames=25, filter_diameter=4.0), summary_images(
            movie.astype(np.float32), batch_frames=25, filter_diameter=4.0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (2, 2)])
def test_tiny_frames(tmp_path, shape):
    from cellfie_caiman.io import save_memmap

    movie = structured_movie(T=30, rows=6, cols=6, seed=13)[:, :shape[0], :shape[1]].copy()
    expected = naive_images(movie)
    if movie.shape[1] * movie.shape[2] > 1:
        expected["corr"] = naive_corr(movie)
    fname = save_memmap(movie, base_name="Yr", order="C", directory=tmp_path)
    for src in (movie, fname):
        assert_images(summary_images(src), expected, scale=100)


def test_the_soma_diameter_of_pnr_filtered_is_recorded_beside_the_images():
    """``pnr_filtered`` is made for one soma size, which nothing recorded: images filtered for 5 px somata were read
    silently by networks run for 12 px ones. The diameter now travels with the images (copies, ``_replace``,
    pickling); the tuple still holds the images only, so code that iterates over them is unchanged."""
    import copy
    import pickle

    movie = structured_movie(T=40, rows=12, cols=12, seed=3)
    images = summary_images(movie, filter_diameter=4.0)
    assert images.filter_diameter == 4.0 and summary_images(movie).filter_diameter is None
    assert images._fields == ("corr", "pnr", "std", "mean", "median", "max", "pnr_filtered")
    assert len(images) == 7 and all(isinstance(im, np.ndarray) for im in images)
    assert set(images._asdict()) == set(images._fields)
    for same in (images._replace(corr=images.mean), pickle.loads(pickle.dumps(images)), copy.deepcopy(images)):
        assert same.filter_diameter == 4.0
    assert images._replace(filter_diameter=6).filter_diameter == 6.0
    assert SummaryImages(*images).filter_diameter is None  # built from the images alone: unknown
    assert SummaryImages(*images, filter_diameter=np.array(4.0)).filter_diameter == 4.0  # as np.load returns it
    assert repr(images).endswith("filter_diameter=4)")
    for bad in (-1, 0, np.nan, "4"):
        with pytest.raises(ValueError, match="filter_diameter"):
            SummaryImages(*images, filter_diameter=bad)
