"""refine() end to end: simulated ground truth, streaming from files, bad input, HDF5 and NWB files."""
from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest
import scipy.sparse

import cellfie_caiman
from cellfie_caiman.cnmf import Estimates, load_estimates, refine
from cellfie_caiman.evaluate import match_rois
from cellfie_caiman.simulate import simulate

PARAMS = {"data": {"fr": 30.0, "decay_time": 0.4}, "refine": {"p": 1, "nb": 2, "chunk_frames": 200}}


@pytest.fixture(scope="module")
def sim():
    return simulate(600, (64, 64), 10, seed=3)


@pytest.fixture(scope="module")
def est(sim):
    return refine(sim.movie, sim.masks, params=PARAMS, backend="builtin")


def matched_traces(est: Estimates, sim):
    """For each true neuron, the component whose footprint overlaps it most."""
    Ft = sim.footprints.transpose(0, 2, 1).reshape(len(sim.masks), -1)
    best = np.asarray((scipy.sparse.csr_matrix(Ft) @ est.A).toarray()).argmax(1)
    return best


def test_recovers_simulated_traces_and_footprints(sim, est):
    assert est.A.shape == (64 * 64, 10) and scipy.sparse.isspmatrix_csc(est.A)
    np.testing.assert_allclose(np.sqrt(est.A.multiply(est.A).sum(0)), 1, rtol=1e-6)
    best = matched_traces(est, sim)
    assert len(set(best.tolist())) == 10
    active = sim.spikes.sum(1) > 0
    corr = [np.corrcoef(est.C[best[i]], sim.calcium[i])[0, 1] for i in np.where(active)[0]]
    assert np.median(corr) > 0.95
    assert match_rois(sim.masks, est.masks()).f1 >= 0.9
    T = sim.movie.shape[0]
    for name, shape in [("C", (10, T)), ("S", (10, T)), ("YrA", (10, T)), ("b", (4096, 2)), ("f", (2, T)),
                        ("sn", (4096,)), ("g", (10, 1)), ("bl", (10,)), ("c1", (10,)), ("neurons_sn", (10,)),
                        ("SNR_comp", (10,)), ("r_values", (10,))]:
        v = getattr(est, name)
        assert v.shape == shape, name
        assert np.all(np.isfinite(v)), name
    assert np.all(est.S >= 0)
    # C includes the baseline: its minimum is close to bl (within the initial decay)
    assert np.all(est.C.min(1) >= est.bl - 1e-6)
    assert sorted(np.concatenate([est.idx_components, est.idx_components_bad]).tolist()) == list(range(10))
    # the strongly active neurons are accepted
    strong = [best[i] for i in range(10) if sim.spikes[i].sum() > 20]
    assert set(strong) <= set(est.idx_components.tolist())


def test_r_values_match_naive_definition(sim, est):
    from cellfie_caiman.cnmf.quality import select_frames

    frames = select_frames(est.A, est.C, 30.0)
    Yr = sim.movie.transpose(2, 1, 0).reshape(-1, sim.movie.shape[0]).astype(np.float64)
    for k in range(est.A.shape[1]):
        a = est.A[:, k].toarray().ravel()
        px = a > 0
        if frames[k] is None:
            assert est.r_values[k] == 0
            continue
        m = Yr[px][:, frames[k]].mean(1)
        assert np.isclose(est.r_values[k], np.corrcoef(m, a[px])[0, 1], atol=1e-6)


def test_streaming_from_memmap_and_chunk_size_do_not_change_the_result(sim, est, tmp_path):
    from cellfie_caiman.io import save_memmap

    fname = save_memmap(sim.movie, str(tmp_path / "sim"), directory=str(tmp_path))
    params = {**PARAMS, "refine": {**PARAMS["refine"], "chunk_frames": 37}}
    est2 = refine(fname, sim.masks, params=params, backend="builtin")
    np.testing.assert_allclose(est2.sn, est.sn, rtol=1e-4)
    assert est2.A.shape == est.A.shape
    np.testing.assert_allclose(est2.C, est.C, rtol=1e-3, atol=1e-3 * np.abs(est.C).max())


def test_two_overlapping_half_seeds_of_one_neuron_are_merged_and_touching_ones_kept_apart(caplog):
    """Merging needs overlapping footprints (CaImAn's merge_components); the seeds' first spatial update stays
    within each seed, as CaImAn's does with boolean seeds, so two halves that only touch stay two components (real
    CaImAn 1.12.1 on this movie: 2 components, as here)."""
    sim = simulate(500, (40, 40), 1, seed=5, rate=2.0)
    mask = sim.masks[0]
    cols = np.where(mask.any(0))[0]
    mid = (cols.min() + cols.max()) // 2
    params = {"data": {"fr": 30.0}, "refine": {"merge_thr": 0.8}}
    left, right = mask.copy(), mask.copy()
    left[:, mid + 3:] = False
    right[:, :mid - 1] = False  # 4 columns shared
    with caplog.at_level(logging.WARNING, logger="cellfie_caiman"):
        e = refine(sim.movie, np.stack([left, right]), params=params, backend="builtin")
    assert e.A.shape[1] == 1
    assert "2 seeds gave 1 component (1 group of overlapping seeds merged" in caplog.text  # k is not seed k: said
    assert np.corrcoef(e.C[0], sim.calcium[0])[0, 1] > 0.9
    assert match_rois(sim.masks, e.masks()).f1 == 1
    left[:, mid + 1:] = False
    right[:, :mid + 1] = False  # touching, not overlapping
    e = refine(sim.movie, np.stack([left, right]), params=params, backend="builtin")
    assert e.A.shape[1] == 2
    assert all(np.corrcoef(c, sim.calcium[0])[0, 1] > 0.9 for c in e.C)


def test_footprints_stay_within_one_dilation_of_their_seeds_as_in_caiman():
    """CaImAn's first spatial update of boolean seeds fits only the pixels of each seed, the second the seed's
    support dilated by a radius-2 diamond: no footprint reaches beyond one such dilation of its seed (on a field
    that is not square, so that a transposition would show)."""
    from scipy import ndimage

    sim = simulate(600, (48, 64), 10, seed=4)
    e = refine(sim.movie, sim.masks, params={**PARAMS, "refine": {**PARAMS["refine"], "merge_thr": 1.0}},
               backend="builtin")
    assert e.A.shape[1] == len(sim.masks)  # no merge, no drop: component k is seed k
    diamond = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), 2)
    for k, seed in enumerate(sim.masks):
        support = e.A[:, k].toarray().reshape(seed.shape, order="F") > 0
        assert not (support & ~ndimage.binary_dilation(seed, diamond)).any(), k
    assert np.all(e.S[:, 0] == 0)  # frame 0 holds the initial calcium (c1), never a spike


def test_package_level_refine_is_callable(sim):
    small = sim.movie[:200, :32, :32]
    masks = sim.masks[:, :32, :32]
    masks = masks[masks.sum((1, 2)) > 20]
    e = cellfie_caiman.refine(small, masks, backend="builtin")
    assert e.A.shape[1] == len(masks)
    from cellfie_caiman import cnmf  # importing the subpackage must not shadow the function

    assert cellfie_caiman.refine is cnmf.refine


# ------------------------------------------------------------------------------------------------- bad input
def test_wrong_number_of_pixels_names_expected_and_got(sim):
    with pytest.raises(ValueError, match=r"4000 pixels.*expected 4096"):
        refine(sim.movie, np.zeros((4000, 3), bool), backend="builtin")
    with pytest.raises(ValueError, match=r"\(60, 64\).*\(64, 64\)"):
        refine(sim.movie, np.zeros((3, 60, 64), bool), backend="builtin")
    with pytest.raises(ValueError, match="backend"):
        refine(sim.movie, sim.masks, backend="matlab")


def test_movies_too_short_for_a_noise_estimate_are_refused_before_any_work(sim):
    from cellfie_caiman.cnmf.noise import MIN_FRAMES, psd_noise

    with pytest.raises(ValueError):  # the reason: the noise estimate itself cannot be made
        psd_noise(sim.movie[:MIN_FRAMES - 1].reshape(MIN_FRAMES - 1, -1).T)
    short = f"refinement needs a movie of at least {MIN_FRAMES} frames.*got {MIN_FRAMES - 1}"
    with pytest.raises(ValueError, match=short):
        refine(sim.movie[:MIN_FRAMES - 1], sim.masks, backend="builtin")
    e = refine(sim.movie[:MIN_FRAMES], sim.masks[:2], params={"refine": {"p": 0}}, backend="builtin")
    assert e.C.shape == (2, MIN_FRAMES) and np.isfinite(e.C).all()


def test_empty_and_duplicate_seeds_are_dropped_with_warnings(sim, caplog):
    masks = np.concatenate([sim.masks[:3], np.zeros((1, 64, 64), bool), sim.masks[1:2]])
    with caplog.at_level(logging.WARNING):
        e = refine(sim.movie[:300], masks, backend="builtin")
    text = caplog.text
    assert "empty seed" in text and "duplicates seed 1" in text
    assert e.A.shape[1] == 3


def test_duplicate_seeds_of_an_initialization_are_dropped_with_their_scores(sim):
    from cellfie_caiman.initialize import Initialization
    from cellfie_caiman.masks import masks_to_ain

    def initialization(masks, scores):
        return Initialization(Ain=masks_to_ain(masks), masks=masks, scores=np.asarray(scores, np.float32),
                              centers=np.zeros((len(masks), 2)), prob_map=None, summary=None)

    scores = np.linspace(0.95, 0.3, len(sim.masks))
    distinct = initialization(sim.masks, scores)
    doubled = initialization(np.concatenate([sim.masks, sim.masks[[2]]]), np.r_[scores, 0.05])
    params = {**PARAMS, "quality": {"use_cnn": True}}
    expected = refine(sim.movie[:300], distinct, params=params, backend="builtin")
    e = refine(sim.movie[:300], doubled, params=params, backend="builtin")
    np.testing.assert_array_equal(e.A.toarray(), expected.A.toarray())
    np.testing.assert_array_equal(e.cnn_preds, expected.cnn_preds)  # the scores of the seeds kept
    np.testing.assert_array_equal(e.idx_components, expected.idx_components)


def test_nan_frames_and_constant_pixels_give_finite_results(sim):
    movie = sim.movie[:300].copy()
    movie[10, 5:9, 5:9] = np.nan
    movie[:, 0, :] = 100.0  # constant row: sn = 0
    with pytest.warns(Warning):
        e = refine(movie, sim.masks, backend="builtin")
    assert np.all(e.sn.reshape(64, 64, order="F")[0] == 0)
    for name in ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "SNR_comp", "r_values"):
        assert np.all(np.isfinite(getattr(e, name))), name
    assert np.all(np.isfinite(e.A.data))


def test_seed_that_sees_no_signal_gives_finite_output():
    rng = np.random.default_rng(0)
    movie = rng.normal(10, 1, (200, 24, 24)).astype(np.float32)
    masks = np.zeros((1, 24, 24), bool)
    masks[0, 8:14, 8:14] = True
    e = refine(movie, masks, backend="builtin")
    for name in ("C", "S", "YrA", "SNR_comp", "r_values"):
        assert np.all(np.isfinite(getattr(e, name))), name
    assert e.A.shape[1] in (0, 1)


# ------------------------------------------------------------------------------------------------------ files
def test_hdf5_round_trip_and_caiman_layout(est, tmp_path):
    path = est.save(tmp_path / "results.hdf5")
    back = load_estimates(path)
    assert (back.A != est.A).nnz == 0 and back.A.shape == est.A.shape
    for name in ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "SNR_comp", "r_values",
                 "idx_components", "idx_components_bad"):
        np.testing.assert_array_equal(getattr(back, name), getattr(est, name), err_msg=name)
    assert back.dims == (64, 64) and back.cnn_preds is None and back.params == est.params
    with h5py.File(path, "r") as h5:
        assert set(h5["estimates/A"]) == {"data", "indices", "indptr", "shape"}
        assert h5["estimates/A/shape"][()].tolist() == [4096, 10]
        assert h5["estimates/cnn_preds"][()] == b"NoneType"
        assert h5["dims"][()].tolist() == [64, 64]
        assert h5["dview"][()] == b"NoneType"
        assert h5["mmap_file"][()] == b"NoneType"  # no movie named: CaImAn's None
        assert h5["params/data/fr"][()] == 30.0
        assert h5["params/init/nb"][()] == 2
        assert h5["params/quality/min_SNR"][()] == 2.5
        # no gSig was set: the one CaImAn would use for these neurons (half the diameter of a disc of the median
        # binarised footprint's area), not 'NoneType', which CaImAn's own functions cannot use
        areas = [int(np.sum(col > 0.2 * col.max())) for col in est.A.T.toarray()]
        g = max(1, round(np.sqrt(np.median(areas) / np.pi)))
        assert h5["params/init/gSig"][()].tolist() == [g, g]


def test_the_movie_is_named_as_caiman_names_it(est, tmp_path):
    """CaImAn (>= 1.9.9) writes its strings as attributes and reads them back as str; a string dataset comes back
    as bytes, which ``caiman.load_memmap(cnm.mmap_file)`` refuses."""
    path = est.save(tmp_path / "results.hdf5", mmap_file=tmp_path / "Yr_d1_64_d2_64_d3_1_order_C_frames_10.mmap")
    with h5py.File(path, "r") as h5:
        assert "mmap_file" not in h5
        assert h5.attrs["mmap_file"] == str(tmp_path / "Yr_d1_64_d2_64_d3_1_order_C_frames_10.mmap")
        assert isinstance(h5.attrs["mmap_file"], str)


def test_load_estimates_reads_caiman_string_floats(est, tmp_path):
    path = tmp_path / "caiman_like.hdf5"
    est.save(path)
    with h5py.File(path, "r+") as h5:  # what CaImAn's save writes for its object arrays
        for name in ("bl", "c1", "neurons_sn"):
            vals = h5[f"estimates/{name}"][()]
            del h5[f"estimates/{name}"]
            h5[f"estimates/{name}"] = np.array([str(v) for v in vals]).astype("|S32")
    back = load_estimates(path)
    np.testing.assert_allclose(back.bl, est.bl, rtol=1e-6)
    assert back.neurons_sn.dtype == np.float64
    with pytest.raises(ValueError, match="hdf5"):
        est.save(tmp_path / "results.mat")
    with pytest.raises(FileNotFoundError):
        load_estimates(tmp_path / "missing.hdf5")


def test_nwb_written_and_read_back(est, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    path = est.to_nwb(tmp_path / "out.nwb", fr=30.0)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        ps = ophys["ImageSegmentation"]["PlaneSegmentation"]
        masks = np.asarray(ps["image_mask"].data[:])
        assert masks.shape == (12, 64, 64)  # 10 components + 2 background images
        np.testing.assert_allclose(masks[:10], est.footprints(), rtol=1e-6)
        rrs = ophys["Fluorescence"]["RoiResponseSeries"]
        np.testing.assert_allclose(rrs.data[:], est.C.T)
        np.testing.assert_allclose(ophys["Fluorescence"]["Deconvolved"].data[:], est.S.T)
        np.testing.assert_allclose(ophys["residuals"].data[:], est.YrA.T)
        keep = np.asarray(ps["keep"].data[:10])
        assert np.array_equal(np.where(keep)[0], est.idx_components)
        np.testing.assert_array_equal(ps["snr"].data[:10], est.SNR_comp)
        np.testing.assert_array_equal(ps["r"].data[:10], est.r_values)
        # the background images have no quality metrics: NaN (as CaImAn's save_NWB), not a value such as 0
        assert np.isnan(ps["snr"].data[10:]).all() and np.isnan(ps["r"].data[10:]).all()
        assert "SummaryImages" not in ophys.data_interfaces  # no correlation image given
    import dataclasses

    cn = np.random.default_rng(0).random(est.dims).astype(np.float32)
    path = dataclasses.replace(est, Cn=cn).to_nwb(tmp_path / "with_cn.nwb", fr=30.0)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        images = io.read().processing["ophys"]["SummaryImages"]
        np.testing.assert_array_equal(images["local_correlations"].data[:], cn)


def test_nwb_external_movie_gives_frame_times_that_old_readers_can_open(est, tmp_path):
    """The external TwoPhotonSeries: its frame times as timestamps (frame / fr), no scalar ``num_samples`` dataset
    (an unsigned scalar: hdmf 3, as in CaImAn 1.12's pynwb 2.8 environments, fails to open the whole file)."""
    pytest.importorskip("pynwb")
    path = est.to_nwb(tmp_path / "out.nwb", fr=7.5, raw_data_file="movie.tif")
    with h5py.File(path, "r") as h5:
        series = h5["acquisition/TwoPhotonSeries"]
        assert "num_samples" not in series
        unsigned_scalars = []
        h5.visititems(lambda name, obj: unsigned_scalars.append(name) if isinstance(obj, h5py.Dataset)
                      and obj.shape == () and obj.dtype.kind == "u" else None)
        assert unsigned_scalars == []
        np.testing.assert_allclose(series["timestamps"][:], np.arange(est.C.shape[1]) / 7.5)
        assert [x.decode() if isinstance(x, bytes) else x for x in series["external_file"][:]] == ["movie.tif"]
        assert "dataset" not in series.attrs["description"]
    # a movie inside an HDF5 / NWB file: which dataset it is, said
    path = est.to_nwb(tmp_path / "out2.nwb", fr=7.5, raw_data_file="rec.nwb",
                      raw_data_dataset="processing/ophys/MotionCorrection/plane0/corrected/data")
    with h5py.File(path, "r") as h5:
        assert h5["acquisition/TwoPhotonSeries"].attrs["description"] == (
            "the movie, in its external file (dataset 'processing/ophys/MotionCorrection/plane0/corrected/data' in it)")


def test_nwb_series_and_device_are_described(est, tmp_path):
    """Every time series and the device say what they hold (not pynwb's placeholder 'no description')."""
    pynwb = pytest.importorskip("pynwb")
    path = est.to_nwb(tmp_path / "out.nwb", fr=30.0)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        series = [nwb.acquisition["TwoPhotonSeries"], ophys["residuals"],
                  *ophys["Fluorescence"].roi_response_series.values()]
        assert len(series) == 5  # C, S and f, the residuals and the movie
        for s in series:
            assert s.description and s.description != "no description", s.name
        assert nwb.devices["imaging_device"].description


def test_nwb_subject_is_written_when_given(est, tmp_path):
    """DANDI needs a subject: given as a dict of pynwb Subject's arguments (or a Subject), it is in the file."""
    pynwb = pytest.importorskip("pynwb")
    animal = {"subject_id": "m1", "species": "Mus musculus", "sex": "F", "age": "P90D"}
    path = est.to_nwb(tmp_path / "with.nwb", fr=30.0, subject=animal)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        subject = io.read().subject
        assert {k: getattr(subject, k) for k in animal} == animal
    with pynwb.NWBHDF5IO(str(est.to_nwb(tmp_path / "without.nwb", fr=30.0)), "r") as io:
        assert io.read().subject is None
    with pytest.raises(TypeError, match="subject must be"):
        est.to_nwb(tmp_path / "bad.nwb", fr=30.0, subject="m1")
    assert not (tmp_path / "bad.nwb").exists()


def test_nwb_results_read_back_as_rois_without_the_background(est, tmp_path):
    """read_rois on our NWB file: the accepted footprints (or all with accepted_only=False), never
    the background images that CaImAn's layout keeps in the same table."""
    pytest.importorskip("pynwb")
    from cellfie_caiman.rois import read_rois

    assert 0 < len(est.idx_components) < est.n_components  # the test needs rejected components and a background
    assert est.b.shape[1] == 2
    path = est.to_nwb(tmp_path / "out.nwb", fr=30.0)
    support = est.A.toarray().T.reshape((-1, est.dims[1], est.dims[0])).transpose(0, 2, 1) > 0
    np.testing.assert_array_equal(read_rois(path, a_threshold=0), support[est.idx_components])
    np.testing.assert_array_equal(read_rois(path, a_threshold=0, accepted_only=False), support)
    # the same masks as from the HDF5 results, a reader of its own (by default both binarise as CaImAn's benchmark)
    est.save(tmp_path / "out.hdf5")
    np.testing.assert_array_equal(read_rois(path), read_rois(tmp_path / "out.hdf5"))
    np.testing.assert_array_equal(read_rois(path, a_threshold=0), read_rois(tmp_path / "out.hdf5", a_threshold=0))


def _peak_resident_bytes_since_reset() -> int | None:
    """VmHWM after resetting it (Linux >= 4.0: writing 5 to /proc/self/clear_refs); None where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def test_nwb_image_masks_are_written_and_read_in_the_memory_of_their_pixels(tmp_path):
    """400 footprints of 1024 x 1024 are 1.7 GB as dense float32 image masks: writing them must not hold them all,
    and the file must hold what they hold (compressed chunks, read back equal to the footprints)."""
    pynwb = pytest.importorskip("pynwb")
    if _peak_resident_bytes_since_reset() is None:
        pytest.skip("the peak of resident memory cannot be reset here")
    rows, cols, K, T = 1024, 1024, 400, 50
    rng = np.random.default_rng(0)
    pixels, comps = [], []
    for k in range(K):
        r, c = rng.integers(0, rows - 8), rng.integers(0, cols - 8)
        rr, cc = np.mgrid[r:r + 8, c:c + 8]
        pixels.append((rr + rows * cc).ravel())  # Fortran order
        comps.append(np.full(64, k))
    A = scipy.sparse.csc_matrix((rng.random(64 * K), (np.concatenate(pixels), np.concatenate(comps))),
                                shape=(rows * cols, K))
    est = Estimates(A=A, C=rng.random((K, T)), S=rng.random((K, T)), YrA=rng.random((K, T)),
                    b=rng.random((rows * cols, 1)), f=rng.random((1, T)), dims=(rows, cols),
                    idx_components=np.arange(0, K, 2))
    from pynwb.ophys import PlaneSegmentation  # noqa: F401  (imports take memory too: before the measurement)
    before = _peak_resident_bytes_since_reset()
    path = est.to_nwb(tmp_path / "big.nwb", fr=30.0)
    grown = _peak_resident_bytes_since_reset() - before
    assert grown < 100e6, f"writing the NWB file took {grown / 1e6:.0f} MB more at its peak"
    assert path.stat().st_size < 20e6  # HDF5 stores the chunks that the footprints touch, and the background
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        ps = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        data = ps["image_mask"].data
        assert data.shape == (K + 1, rows, cols)
        for k in (0, 137, K - 1):
            np.testing.assert_array_equal(data[k], A[:, k].toarray().astype(np.float32).reshape((rows, cols),
                                                                                                 order="F"))
        np.testing.assert_allclose(data[K], est.b[:, 0].reshape((rows, cols), order="F").astype(np.float32))
        assert np.array_equal(np.flatnonzero(ps["keep"].data[:]), est.idx_components)
    # and read back as ROIs (1024 x 1024 x 400 bool: 420 MB dense) in the memory of their pixels
    from cellfie_caiman.rois import read_rois

    before = _peak_resident_bytes_since_reset()
    masks = read_rois(path, accepted_only=False, a_threshold=0)  # the supports
    grown = _peak_resident_bytes_since_reset() - before
    assert grown < 100e6, f"reading the ROIs took {grown / 1e6:.0f} MB more at its peak"
    assert masks.shape == (K, rows, cols)
    for k in (0, 137, K - 1):
        np.testing.assert_array_equal(masks[k], A[:, k].toarray().reshape((rows, cols), order="F") > 0)


@pytest.mark.parametrize("n_background", [0, 2])
def test_nwb_of_a_result_without_components(tmp_path, n_background):
    pynwb = pytest.importorskip("pynwb")
    est = Estimates(A=scipy.sparse.csc_matrix((64 * 48, 0)), C=np.zeros((0, 20)), dims=(64, 48),
                    b=np.ones((64 * 48, n_background)) if n_background else None,
                    f=np.ones((n_background, 20)) if n_background else None)
    path = est.to_nwb(tmp_path / "empty.nwb", fr=30.0)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        ps = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        assert ps["image_mask"].data.shape == (n_background, 64, 48)
        assert "keep" not in ps.colnames  # as CaImAn: no 'keep' column before components are evaluated
        assert np.isnan(ps["snr"].data[:]).all() and np.isnan(ps["r"].data[:]).all()
    from cellfie_caiman.rois import read_rois

    assert read_rois(path).shape == (0, 64, 48)  # the background images are not ROIs


def test_quality_control_with_the_networks_scores(sim):
    """quality.use_cnn: each component gets the score of the detection overlapping it most as cnn_preds, and
    CaImAn's decision with it; plain masks (no scores) are evaluated as without."""
    from cellfie_caiman.initialize import initialize

    init = initialize(sim.movie)
    params = {"data": {"fr": 30.0, "decay_time": 0.4}, "refine": {"p": 1, "nb": 2}}
    plain = refine(sim.movie, init, params={**params, "quality": {"use_cnn": False}}, backend="builtin")
    scored = refine(sim.movie, init, params=params, backend="builtin")  # use_cnn is the default
    np.testing.assert_array_equal(scored.A.toarray(), plain.A.toarray())  # the same CNMF, another decision
    assert plain.cnn_preds is None
    support = scored.A.toarray().T.reshape((-1, *scored.dims[::-1])).transpose(0, 2, 1) > 0
    seeds = np.asarray(init.masks, bool)
    for k, comp in enumerate(support):  # naive: the detection with the largest IoU
        ious = [(comp & s).sum() / (comp | s).sum() for s in seeds]
        assert scored.cnn_preds[k] == (init.scores[int(np.argmax(ious))] if max(ious) > 0 else 0.0)
    good = [k for k in range(len(support)) if (scored.r_values[k] >= 0.8 or scored.SNR_comp[k] > 2.5
                                                 or scored.cnn_preds[k] >= 0.9)
            and scored.r_values[k] > -1 and scored.SNR_comp[k] > 0.5 and scored.cnn_preds[k] > 0.1]
    assert scored.idx_components.tolist() == good
    assert scored.idx_components.tolist() != plain.idx_components.tolist()  # the scores changed the decision
    masks_only = refine(sim.movie, seeds, params=params, backend="builtin")
    assert masks_only.cnn_preds is None
    np.testing.assert_array_equal(masks_only.idx_components, plain.idx_components)


def test_all_seeds_empty_gives_an_empty_result_with_background(sim, caplog):
    with caplog.at_level(logging.WARNING):
        e = refine(sim.movie[:200], np.zeros((2, 64, 64), bool), backend="builtin")
    assert "empty seed" in caplog.text
    assert e.A.shape == (4096, 0) and e.C.shape == (0, 200) and e.f.shape == (2, 200)
    assert e.idx_components.size == 0 and np.all(np.isfinite(e.b))


def test_real_data_seeded_with_manual_rois_keeps_them():
    from pathlib import Path

    from cellfie_caiman.rois import read_rois

    data = Path(__file__).parents[1].parent / "shared" / "data" / "neurofinder.01.01"
    if not (data / "movie.tif").exists():
        pytest.skip(f"real data not found at {data}")
    masks = read_rois(data / "regions.json", shape=(512, 512))
    e = refine(str(data / "movie.tif"), masks, params={"data": {"fr": 7.5, "decay_time": 0.4}}, backend="builtin")
    assert e.A.shape[1] >= 0.95 * len(masks)
    assert match_rois(masks, e.masks()).f1 > 0.9
    for name in ("C", "S", "YrA", "b", "f", "sn", "SNR_comp", "r_values"):
        assert np.all(np.isfinite(getattr(e, name))), name


def test_the_notice_that_components_are_renumbered_reads_well_on_the_command_line():
    """It says what happened in words, where a run's files keep seeds and components apart, and names the Python
    helper by its public name (which maps components to seeds as said)."""
    from cellfie_caiman.cnmf import seed_index
    from cellfie_caiman.cnmf.seeds import remap_message

    assert remap_message(4, 4, 0) is None
    msg = remap_message(5, 3, 1)
    assert msg.startswith("5 seeds gave 3 components (1 group of overlapping seeds merged")
    assert "masks.npz" in msg and "detected_masks" in msg and "all_masks" in msg
    assert "in Python, cellfie_caiman.cnmf.seed_index(A, masks)" in msg and "caiman_adapter" not in msg
    assert remap_message(3, 1, 2).startswith("3 seeds gave 1 component (2 groups of")
    masks = np.zeros((3, 10, 10), bool)
    masks[0, :3, :3] = masks[1, 5:, 5:] = masks[2, 0, 9] = True
    A = scipy.sparse.csc_matrix(np.stack([masks[1].ravel(order="F"), masks[0].ravel(order="F")], axis=1) * 0.5)
    np.testing.assert_array_equal(seed_index(A, masks), [1, 0])


def test_nwb_of_params_without_a_frame_rate_uses_the_documented_default(est, tmp_path):
    """``fr`` None in the parameters (never set, as ``Params()`` leaves it) means the documented 30 Hz, in the NWB
    file and in the HDF5 parameters CaImAn reads (it was a TypeError, and 'NoneType' for CaImAn)."""
    import dataclasses

    pynwb = pytest.importorskip("pynwb")
    params = {**est.params, "data": {**(est.params or {}).get("data", {}), "fr": None}}
    unset = dataclasses.replace(est, params=params)
    with pynwb.NWBHDF5IO(str(unset.to_nwb(tmp_path / "out.nwb")), "r") as io:
        assert io.read().processing["ophys"]["Fluorescence"]["RoiResponseSeries"].rate == 30.0
    with h5py.File(unset.save(tmp_path / "out.hdf5"), "r") as h5:
        assert h5["params/data/fr"][()] == 30.0


def test_footprints_of_estimates_without_footprints_is_a_clear_error():
    from cellfie_caiman.cnmf import Estimates

    with pytest.raises(ValueError, match="no footprints"):
        Estimates().footprints()


def _ain(masks: np.ndarray, order: str) -> np.ndarray:
    """(pixels, K) from masks (K, rows, cols), each flattened in ``order``."""
    return np.stack([m.ravel(order=order) for m in masks], axis=1)


def test_ain_flattened_in_c_order_on_a_non_square_field_is_an_error():
    """Same pixel count, so no shape check catches it: before, every seed emptied (0 components, no error)."""
    s = simulate(200, (48, 64), 8, seed=2)
    with pytest.raises(ValueError, match="C \\(row-major\\) order"):
        refine(s.movie, _ain(s.masks, "C"), params=PARAMS, backend="builtin")


def test_ain_flattened_in_c_order_on_a_square_field_warns_and_fortran_order_does_not():
    """On a square field C order is the transposed seed: the fit gave plausible wrong components silently."""
    s = simulate(300, (64, 64), 10, seed=1)
    with pytest.warns(UserWarning, match="C \\(row-major\\) order"):
        refine(s.movie, _ain(s.masks, "C"), params=PARAMS, backend="builtin")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        e = refine(s.movie, scipy.sparse.csc_matrix(_ain(s.masks, "F")), params=PARAMS, backend="builtin")
    assert match_rois(s.masks, e.masks()).f1 >= 0.9


def test_nwb_experimenter_lab_and_institution_are_written(est, tmp_path):
    """NWB's best practice (and DANDI) want the experimenter, lab and institution: read back with pynwb, and
    nwbinspector no longer reports them missing (nor anything new)."""
    pynwb = pytest.importorskip("pynwb")
    people = {"experimenter": ["Doe, Jane", "Roe, Richard"], "lab": "Smith lab", "institution": "University of Oslo",
              "experiment_description": "orientation tuning in V1", "keywords": ["two-photon", "V1"]}
    with_people = est.to_nwb(tmp_path / "with.nwb", fr=30.0, raw_data_file=str(tmp_path / "with.nwb"), **people)
    with pynwb.NWBHDF5IO(str(with_people), "r") as io:
        nwb = io.read()
        assert list(nwb.experimenter) == people["experimenter"] and list(nwb.keywords) == people["keywords"]
        assert (nwb.lab, nwb.institution, nwb.experiment_description) == (
            people["lab"], people["institution"], people["experiment_description"])
    without = est.to_nwb(tmp_path / "without.nwb", fr=30.0, raw_data_file=str(tmp_path / "without.nwb"))
    with pynwb.NWBHDF5IO(str(without), "r") as io:
        nwb = io.read()
        assert nwb.experimenter is None and nwb.lab is None and nwb.institution is None
    inspector = pytest.importorskip("nwbinspector")

    def checks(path):
        return {m.check_function_name for m in inspector.inspect_nwbfile(nwbfile_path=str(path))}

    missing = {"check_experimenter_exists", "check_institution", "check_experiment_description", "check_keywords"}
    before, after = checks(without), checks(with_people)
    assert missing <= before
    assert after == before - missing


@pytest.mark.parametrize("data, g", [({"neuron_diameter": 14}, 7), ({"pixel_size": 0.5, "soma_diameter_um": 9.0}, 9),
                                     ({"pixel_size": 2.0}, 3), ({"neuron_diameter": 10, "pixel_size": 0.5}, 5),
                                     ({"pixel_size": 0, "soma_diameter_um": None, "neuron_diameter": None}, None)])
def test_caiman_gsig_in_the_results_file_is_half_the_run_s_soma_diameter(est, tmp_path, data, g):
    """results.hdf5's init/gSig without refine.gSig: half the soma diameter as a run works it out (neuron_diameter,
    else soma_diameter_um (12 microns by default) / pixel_size), else from the footprints' areas."""
    import dataclasses

    if g is None:  # nothing usable given: the median binarised footprint's equivalent disc, as with no data at all
        areas = [int(np.sum(col > 0.2 * col.max())) for col in est.A.T.toarray()]
        g = max(1, round(np.sqrt(np.median(areas) / np.pi)))
    path = dataclasses.replace(est, params={"data": data, "refine": {}}).save(tmp_path / "results.hdf5")
    with h5py.File(path, "r") as h5:
        assert h5["params/init/gSig"][()].tolist() == [g, g]


def test_ar2_refinement_of_a_gcamp6s_movie_meets_the_noise_constraint_and_tracks_the_truth():
    """p = 2 (decay 1.2 s, rise 0.15 s at 15 Hz): each deconvolved trace leaves a residual of sn^2 T, as CaImAn's
    constrained_foopsi asks, and follows the true calcium. Before, the AR(2) solver left 1.4-1.6 sn^2 T and the
    median correlation with the truth was 0.954 (0.985 now, CaImAn's own CNMF 0.98 on similar movies)."""
    sim = simulate(600, (64, 64), 10, seed=3, fs=15.0, decay_time=1.2, p=2, rise_time=0.15)
    params = {"data": {"fr": 15.0, "decay_time": 1.2}, "refine": {"p": 2, "nb": 2, "chunk_frames": 200}}
    est = refine(sim.movie, sim.masks, params=params, backend="builtin")
    assert est.g.shape == (10, 2)
    T = sim.movie.shape[0]
    rss = np.sum(est.YrA ** 2, axis=1) / (est.neurons_sn.astype(float) ** 2 * T)
    assert 0.95 < np.median(rss) < 1.05, rss
    best = matched_traces(est, sim)
    active = np.flatnonzero(sim.spikes.sum(1) > 0)
    corr = [np.corrcoef(est.C[best[i]], sim.calcium[i])[0, 1] for i in active]
    assert np.median(corr) > 0.975, corr


def test_traces_of_neurons_that_overlap_active_puncta_follow_their_calcium():
    """Seeded with the true masks (p = 2, nb = 2), every active neuron's C follows its true calcium. Two weak
    neurons (4 and 9 spikes) that hold active puncta gave -0.15 and 0.13: the starting background was an NMF of
    1000 sampled pixels stopped after 20 sweeps, two traces of noise, so the neurons took the puncta's activity
    (CaImAn's own CNMF: 0.79 and 0.32; now 0.79 and 0.95)."""
    sim = simulate(1000, (64, 64), 10, seed=3, fs=15.0, decay_time=1.2, p=2, rise_time=0.15)
    params = {"data": {"fr": 15.0, "decay_time": 1.2}, "refine": {"p": 2, "nb": 2}}
    est = refine(sim.movie, sim.masks, params=params, backend="builtin")
    best = matched_traces(est, sim)
    assert len(set(best.tolist())) == 10
    active = np.flatnonzero(sim.spikes.sum(1) > 0)
    corr = np.array([np.corrcoef(est.C[best[i]], sim.calcium[i])[0, 1] for i in active])
    assert corr.min() > 0.6, corr.round(2)
    assert np.median(corr) > 0.975, corr.round(2)


def _non_finite_estimates() -> Estimates:
    """3 components on a 32 x 32 field over 50 frames with CaImAn's non-finite values: an SNR of inf (a transient
    over ~116 noise sigmas), NaN r_values and cnn_preds, a NaN in C and an inf in YrA."""
    rows = cols = 32
    K, T = 3, 50
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:rows, :cols]
    A = np.stack([np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 8.0).ravel(order="F")
                  for r, c in [(8, 8), (16, 24), (24, 10)]], axis=1)
    A[A < 0.05] = 0
    A /= np.linalg.norm(A, axis=0)
    C, YrA = rng.random((K, T)), rng.normal(0, 0.1, (K, T))
    C[2, 5], YrA[1, 7] = np.nan, np.inf
    return Estimates(A=scipy.sparse.csc_matrix(A), C=C, S=rng.random((K, T)), YrA=YrA,
                     b=np.full((rows * cols, 1), 1 / 32), f=np.ones((1, T)), sn=np.ones(rows * cols, np.float32),
                     g=np.full((K, 1), 0.9), bl=np.zeros(K), c1=np.zeros(K), neurons_sn=np.ones(K), lam=np.zeros(K),
                     SNR_comp=np.array([np.inf, 3.0, np.nan]), r_values=np.array([0.9, np.nan, 0.5]),
                     cnn_preds=np.array([0.8, np.nan, 0.0]), idx_components=np.array([0, 1]),
                     idx_components_bad=np.array([2]), Cn=rng.random((rows, cols)), dims=(rows, cols),
                     params={"data": {"fr": 10.0}}, provenance={"movie": {"fr": float("nan")}, "k": 3})


def test_non_finite_metrics_and_traces_are_kept_in_hdf5_and_nwb_and_the_json_in_them_stays_json(tmp_path):
    import json

    est = _non_finite_estimates()
    back = load_estimates(est.save(tmp_path / "results.hdf5"))
    for name in ("SNR_comp", "r_values", "cnn_preds", "C", "S", "YrA"):
        np.testing.assert_array_equal(getattr(back, name), getattr(est, name), err_msg=name)  # NaN == NaN here
    with h5py.File(tmp_path / "results.hdf5", "r") as h5:
        text = h5.attrs["cellfie_provenance"]
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the provenance JSON")) == {
        "movie": {"fr": None}, "k": 3}
    pynwb = pytest.importorskip("pynwb")
    est.to_nwb(tmp_path / "results.nwb", fr=10.0)
    with pynwb.NWBHDF5IO(str(tmp_path / "results.nwb"), "r") as io:
        ophys = io.read().processing["ophys"]
        seg = ophys["ImageSegmentation"]["PlaneSegmentation"]
        np.testing.assert_array_equal(seg["snr"].data[:3], est.SNR_comp)
        np.testing.assert_array_equal(seg["r"].data[:3], est.r_values)
        np.testing.assert_array_equal(seg["cnn"].data[:], np.r_[est.cnn_preds, np.nan])  # background: NaN
        np.testing.assert_array_equal(ophys["Fluorescence"]["RoiResponseSeries"].data[:].T, est.C)
        np.testing.assert_array_equal(ophys["residuals"].data[:].T, est.YrA)
