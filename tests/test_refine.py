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


def test_two_half_seeds_of_one_neuron_are_merged():
    sim = simulate(500, (40, 40), 1, seed=5, rate=2.0)
    mask = sim.masks[0]
    cols = np.where(mask.any(0))[0]
    mid = (cols.min() + cols.max()) // 2
    left, right = mask.copy(), mask.copy()
    left[:, mid + 1:] = False
    right[:, :mid + 1] = False
    e = refine(sim.movie, np.stack([left, right]), params={"refine": {"merge_thr": 0.8}}, backend="builtin")
    assert e.A.shape[1] == 1
    assert np.corrcoef(e.C[0], sim.calcium[0])[0, 1] > 0.9
    assert match_rois(sim.masks, e.masks()).f1 == 1


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


def test_empty_and_duplicate_seeds_are_dropped_with_warnings(sim, caplog):
    masks = np.concatenate([sim.masks[:3], np.zeros((1, 64, 64), bool), sim.masks[1:2]])
    with caplog.at_level(logging.WARNING):
        e = refine(sim.movie[:300], masks, backend="builtin")
    text = caplog.text
    assert "empty seed" in text and "duplicates seed 1" in text
    assert e.A.shape[1] == 3


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
        assert h5["params/data/fr"][()] == 30.0
        assert h5["params/init/nb"][()] == 2
        assert h5["params/quality/min_SNR"][()] == 2.5


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


def test_nwb_that_would_not_fit_in_memory_is_refused_before_writing(est, tmp_path, monkeypatch):
    pytest.importorskip("pynwb")
    from cellfie_caiman import _memory

    need = 8 * est.A.shape[0] * est.A.shape[1]  # dense float32 image masks, made and stacked once more
    monkeypatch.setattr(_memory, "available_memory", lambda: need // 2)
    with pytest.raises(MemoryError, match=r"out.nwb: the NWB file's dense image masks .* need about"):
        est.to_nwb(tmp_path / "out.nwb", fr=30.0)
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(_memory, "available_memory", lambda: 2 * need)
    assert est.to_nwb(tmp_path / "out.nwb", fr=30.0).is_file()


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
