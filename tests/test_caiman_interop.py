"""Interoperability with the real CaImAn (1.12): files, summary images, matching, results, seeded CNMF.

CaImAn is not a dependency and CI has none: every test that needs it is skipped, with the reason, where it is
absent. To run them, use an environment with CaImAn and cellfie_caiman installed, e.g.::

    /work/caiman-env/bin/python -m pytest -q tests/test_caiman_interop.py

The tests that check how we behave *without* CaImAn run everywhere.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from cellfie_caiman.cnmf import caiman_adapter
from cellfie_caiman.cnmf.caiman_adapter import caiman_available, masks_to_ain, seed_index

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # CaImAn imports TensorFlow

NO_CAIMAN = ("CaImAn is not installed (optional; CI has none): these interop tests need the real CaImAn, "
             "e.g. `conda install -c conda-forge caiman`")


@pytest.fixture(scope="module")
def cm():
    """The real CaImAn module, or skip."""
    if not caiman_available():
        pytest.skip(NO_CAIMAN)
    return pytest.importorskip("caiman", reason=NO_CAIMAN)


@pytest.fixture()
def caiman_temp(tmp_path, monkeypatch):
    """Keep CaImAn's own temporary files (memmaps, hdf5) inside the test's tmp dir."""
    d = tmp_path / "caiman_temp"
    d.mkdir()
    monkeypatch.setenv("CAIMAN_TEMP", str(d))
    return d


def _simulation():
    """A small simulated movie with its ground truth (10 neurons, all of which spike)."""
    from cellfie_caiman.simulate import simulate

    return simulate(500, (64, 64), 10, seed=1)


# ------------------------------------------------------------------------------------------------------------
# without CaImAn (run everywhere)
# ------------------------------------------------------------------------------------------------------------

@pytest.fixture()
def fresh_cache():
    caiman_available.cache_clear()
    yield
    caiman_available.cache_clear()


def test_missing_caiman_raises_import_error_with_install_hint(monkeypatch, fresh_cache):
    monkeypatch.setitem(sys.modules, "caiman", None)  # importlib treats this as "not installed"
    assert caiman_available() is False
    movie = np.random.default_rng(0).random((20, 8, 8), dtype=np.float32)
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :3, :3] = masks[1, 4:, 4:] = True
    with pytest.raises(ImportError) as info:
        caiman_adapter.seeded_cnmf(movie, masks)
    msg = str(info.value)
    assert "conda install -c conda-forge caiman" in msg
    assert "backend='builtin'" in msg


def test_unrelated_package_named_caiman_is_not_caiman(tmp_path, monkeypatch, fresh_cache):
    # 'pip install caiman' installs an unrelated package of that name: no source_extraction subpackage
    fake = tmp_path / "caiman"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('the fake caiman must not be imported')\n")
    for name in [m for m in sys.modules if m == "caiman" or m.startswith("caiman.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert caiman_available() is False
    with pytest.raises(ImportError, match="conda install"):
        caiman_adapter.seeded_cnmf(np.zeros((5, 4, 4), np.float32), np.ones((1, 4, 4), bool))


def test_broken_caiman_install_says_so(tmp_path, monkeypatch, fresh_cache):
    # a CaImAn whose import fails (e.g. built against numpy 1 and run with numpy 2): the message says it is there
    fake = tmp_path / "caiman"
    (fake / "source_extraction").mkdir(parents=True)
    (fake / "__init__.py").write_text("raise AttributeError('_ARRAY_API not found')\n")
    (fake / "source_extraction" / "__init__.py").write_text("")
    for name in [m for m in sys.modules if m == "caiman" or m.startswith("caiman.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert caiman_available() is True
    with pytest.raises(ImportError, match=r"installed but failed to import \(AttributeError: _ARRAY_API"):
        caiman_adapter.seeded_cnmf(np.zeros((5, 4, 4), np.float32), np.ones((1, 4, 4), bool))


def test_masks_to_ain_is_fortran_flattened_bool():
    rng = np.random.default_rng(1)
    masks = rng.random((5, 7, 6)) > 0.6
    ain = masks_to_ain(masks)
    assert ain.dtype == bool and ain.shape == (42, 5) and ain.flags.f_contiguous
    for k in range(5):
        np.testing.assert_array_equal(ain[:, k], masks[k].flatten(order="F"))
        # CaImAn's pixel index p = i + j*rows
        i, j = 3, 4
        assert ain[i + j * 7, k] == masks[k, i, j]


def test_seed_index_maps_footprints_to_seeds():
    masks = np.zeros((4, 12, 12), bool)
    masks[0, :4, :4] = masks[1, 5:, 5:] = masks[2, :4, 7:] = True
    masks[3, 4:10, 3:9] = True  # overlaps seed 1 a lot
    a = np.zeros((144, 4))
    a[:, 0] = masks_to_ain(masks[[1]])[:, 0] * 2.0  # exactly seed 1 (which is also mostly inside seed 3)
    a[:, 1] = masks_to_ain(masks[[0]])[:, 0]         # seed 0, plus a little outside
    a[143, 1] = 0.5
    a[5 + 0 * 12, 2] = 1.0                            # pixel (5, 0): in no seed
    a[:, 3] = masks_to_ain(masks[[3]])[:, 0]         # exactly seed 3
    np.testing.assert_array_equal(seed_index(a, masks), [1, 0, -1, 3])
    import scipy.sparse

    np.testing.assert_array_equal(seed_index(scipy.sparse.csc_matrix(a), masks), [1, 0, -1, 3])
    # footprints made by blurring randomly placed discs map back to their discs
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:50, :50]
    centres = rng.uniform(5, 45, (15, 2))
    discs = np.array([(yy - r) ** 2 + (xx - c) ** 2 <= 16 for r, c in centres])
    foot = np.array([np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 18.0) for r, c in centres])
    foot[foot < 0.05] = 0
    order = rng.permutation(15)
    A = foot[order].transpose(0, 2, 1).reshape(15, -1).T
    np.testing.assert_array_equal(seed_index(A, discs), order)


def test_caiman_params_from_ours():
    from cellfie_caiman.cnmf.caiman_adapter import caiman_params_dict
    from cellfie_caiman.params import Params

    masks = np.zeros((3, 40, 40), bool)
    yy, xx = np.mgrid[:40, :40]
    for k, (r, c) in enumerate([(10, 10), (20, 30), (30, 12)]):
        masks[k] = (yy - r) ** 2 + (xx - c) ** 2 <= 4.5**2  # discs of ~64 px: diameter ~9 px
    P = Params.from_dict({"data": {"fr": 7.5, "decay_time": 1.0}, "refine": {"p": 2, "nb": 3, "merge_thr": 0.9},
                          "quality": {"min_SNR": 3.0, "rval_thr": 0.7, "SNR_lowest": 0.2, "rval_lowest": -0.5}})
    g = caiman_params_dict(P, (40, 40), masks)
    assert g["data"] == {"dims": (40, 40), "fr": 7.5, "decay_time": 1.0}
    assert g["patch"]["rf"] is None and g["patch"]["only_init"] is False  # seeded: no patches, full refinement
    assert g["preprocess"]["p"] == g["temporal"]["p"] == 2  # CNMF.fit restores temporal.p from preprocess.p
    assert g["init"]["nb"] == 3 and g["init"]["K"] == 3 and g["merging"]["merge_thr"] == 0.9
    area = masks[0].sum()
    assert g["init"]["gSig"] == [round(np.sqrt(area / np.pi))] * 2  # radius of the median seed's disc
    assert g["quality"] == {"min_SNR": 3.0, "SNR_lowest": 0.2, "rval_thr": 0.7, "rval_lowest": -0.5,
                            "use_cnn": False}
    # gSig given explicitly, or from the neuron diameter; a plain dict of groups works too
    assert caiman_params_dict({"refine": {"gSig": [3, 4]}}, (40, 40), masks)["init"]["gSig"] == [3, 4]
    assert caiman_params_dict({"data": {"neuron_diameter": 14}}, (40, 40), masks)["init"]["gSig"] == [7, 7]
    with pytest.raises(ValueError, match="unknown parameter"):
        caiman_params_dict({"refine": {"bogus": 1}}, (40, 40), masks)


# ------------------------------------------------------------------------------------------------------------
# io: our memmaps and CaImAn's
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
def test_our_memmap_is_read_by_caiman(cm, tmp_path, order):
    from caiman.mmapping import load_memmap as caiman_load_memmap

    from cellfie_caiman.io import save_memmap

    rng = np.random.default_rng(2)
    movie = rng.standard_normal((23, 9, 7)).astype(np.float32)
    fname = save_memmap(movie, "interop", order=order, directory=tmp_path)
    Yr, dims, T = caiman_load_memmap(fname)
    assert tuple(dims) == (9, 7) and T == 23
    np.testing.assert_array_equal(np.reshape(Yr.T, [T] + list(dims), order="F"), movie)
    np.testing.assert_array_equal(np.asarray(cm.load(fname)), movie)


def test_adapter_uses_c_memmaps_in_place_and_copies_the_rest(cm, tmp_path):
    import shutil

    from cellfie_caiman.io import load_movie, save_memmap

    movie = np.random.default_rng(6).standard_normal((15, 6, 5)).astype(np.float32)
    fname_c = save_memmap(movie, "c", order="C", directory=tmp_path)
    for source in (fname_c, load_movie(fname_c)):
        imgs, fname, tmpdir = caiman_adapter._caiman_images(source, None)
        assert (fname, tmpdir) == (fname_c, None) and isinstance(imgs, np.memmap)
        np.testing.assert_array_equal(imgs, movie)
    for source in (save_memmap(movie, "f", order="F", directory=tmp_path), movie):  # CNMF needs order C
        imgs, fname, tmpdir = caiman_adapter._caiman_images(source, None)
        assert tmpdir is not None and fname.startswith(tmpdir) and "_order_C_" in fname
        np.testing.assert_array_equal(imgs, movie)
        del imgs
        shutil.rmtree(tmpdir)


def test_caiman_memmap_is_read_by_us(cm, caiman_temp):
    from cellfie_caiman.io import load_memmap, load_movie

    rng = np.random.default_rng(3)
    movie = rng.standard_normal((17, 8, 11)).astype(np.float32)
    fname = cm.save_memmap([movie], base_name="theirs", order="C")  # CaImAn adds 1e-4 to the data
    expected = np.asarray(cm.load(fname))
    np.testing.assert_allclose(expected, movie + 1e-4, atol=1e-6)
    np.testing.assert_array_equal(load_movie(fname).to_array(), expected)
    yr, dims, T = load_memmap(fname)
    yr_c, dims_c, T_c = cm.load_memmap(fname)
    assert (tuple(dims), T) == (tuple(dims_c), T_c)
    np.testing.assert_array_equal(np.asarray(yr), np.asarray(yr_c))


# ------------------------------------------------------------------------------------------------------------
# seeded CNMF through the adapter
# ------------------------------------------------------------------------------------------------------------

PARAMS = {"data": {"fr": 30.0, "decay_time": 0.4}, "refine": {"p": 1, "nb": 2}}


@pytest.fixture(scope="module")
def seeded(cm):
    sim = _simulation()
    cnm = caiman_adapter.seeded_cnmf(sim.movie, sim.masks, PARAMS)
    return sim, cnm


def test_seeded_cnmf_returns_fitted_cnmf_matching_truth(seeded):
    from caiman.source_extraction.cnmf.cnmf import CNMF

    sim, cnm = seeded
    est = cnm.estimates
    assert isinstance(cnm, CNMF)
    T, rows, cols = sim.movie.shape
    n = sim.masks.shape[0]
    assert est.A.shape == (rows * cols, n) and est.C.shape == (n, T)
    # each component comes from a distinct seed and its trace follows that neuron's calcium
    seeds = seed_index(est.A, sim.masks)
    np.testing.assert_array_equal(np.sort(seeds), np.arange(n))
    corr = np.array([np.corrcoef(est.C[k], sim.calcium[j])[0, 1] for k, j in enumerate(seeds)])
    active = sim.spikes[seeds].sum(axis=1) >= 3  # a single transient is too little to judge a trace by
    assert active.sum() >= 7 and corr[active].min() > 0.9 and np.median(corr) > 0.95, corr
    # the footprint's peak lies inside its seed
    A = est.A.toarray()
    for k, j in enumerate(seeds):
        peak = np.argmax(A[:, k])
        assert sim.masks[j, peak % rows, peak // rows]
    # components evaluated with CaImAn's SNR / spatial-correlation tests (no CNN)
    assert cnm.params.get("quality", "use_cnn") is False
    assert len(est.SNR_comp) == len(est.r_values) == n
    assert len(est.idx_components) + len(est.idx_components_bad) == n
    assert cnm.params.get("patch", "rf") is None and cnm.params.get("patch", "only_init") is False
    assert cnm.params.get("init", "nb") == 2 and cnm.params.get("temporal", "p") == 1


def test_seeded_cnmf_is_repeatable_and_leaves_global_rng_alone(seeded, tmp_path):
    import caiman

    from cellfie_caiman.io import save_memmap

    sim, cnm0 = seeded
    fname = save_memmap(sim.movie, "seeded", directory=tmp_path)
    Yr, dims, T = caiman.load_memmap(fname)
    images = np.reshape(Yr.T, [T] + list(dims), order="F")
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    cnm = caiman_adapter.seeded_cnmf(images, masks_to_ain(sim.masks), PARAMS, evaluate=False)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert cnm.mmap_file == fname  # CaImAn's memmap is used in place, not copied
    # same data, seeds and parameters (nb=2: CaImAn's background init is random unless seeded): same result
    np.testing.assert_array_equal(cnm.estimates.C, cnm0.estimates.C)
    np.testing.assert_array_equal(cnm.estimates.A.toarray(), cnm0.estimates.A.toarray())


def test_refine_caiman_backend_from_network_initialization(cm):
    from cellfie_caiman.cnmf import Estimates, refine
    from cellfie_caiman.initialize import initialize
    from cellfie_caiman.models import list_models

    if "default" not in list_models():
        pytest.skip("no shipped 'default' detection model in this checkout")
    sim = _simulation()
    movie = sim.movie[:250]
    init = initialize(movie, neuron_diameter=12)
    assert len(init.masks) > 0
    est = refine(movie, init, params=PARAMS, backend="caiman")
    assert isinstance(est, Estimates)
    assert est.A.shape == (movie.shape[1] * movie.shape[2], est.C.shape[0]) and est.C.shape[1] == len(movie)
    assert 0 < est.A.shape[1] <= len(init.masks)
    seeds = seed_index(est.A, init.masks)
    assert np.all(seeds >= 0) and len(set(seeds.tolist())) == len(seeds)  # one component per seed, none made up
    assert est.params["refine"]["nb"] == 2 and len(est.SNR_comp) == est.A.shape[1]
    # quality control: CaImAn's own decision, given the networks' scores as its CNN predictions
    from caiman.components_evaluation import select_components_from_metrics

    assert len(est.cnn_preds) == est.A.shape[1] and np.all((est.cnn_preds >= 0) & (est.cnn_preds <= 1))
    good, bad, _ = select_components_from_metrics(est.A, est.dims, [6, 6], est.r_values, est.SNR_comp,
                                                  thresh_cnn_min=0.9, thresh_cnn_lowest=0.1, use_cnn=True,
                                                  predictions=est.cnn_preds)
    np.testing.assert_array_equal(est.idx_components, np.sort(good))
    np.testing.assert_array_equal(est.idx_components_bad, np.sort(bad))
    # the README's lines for a CaImAn script: the scores as cnn_preds, then CaImAn's filter_components
    from cellfie_caiman.cnmf.scores import component_scores

    no_scores = {**PARAMS, "quality": {"use_cnn": False}}
    cnm = caiman_adapter.seeded_cnmf(movie, init, no_scores)
    assert cnm.estimates.A.shape == est.A.shape
    cnm.estimates.cnn_preds = component_scores(cnm.estimates.A, init, est.dims)
    images = movie  # filter_components reads only the frame shape when the metrics are there
    cnm.estimates.filter_components(images, cnm.params, new_dict={"use_cnn": True, "min_cnn_thr": 0.9,
                                                                  "cnn_lowest": 0.1})
    np.testing.assert_array_equal(np.sort(cnm.estimates.idx_components), est.idx_components)


def test_seeded_cnmf_checks_seeds(cm, caplog):
    sim = _simulation()
    with pytest.raises(ValueError, match="frame shape"):
        caiman_adapter.seeded_cnmf(sim.movie, sim.masks[:, :-1])
    with pytest.raises(ValueError, match="transposed"):
        caiman_adapter.seeded_cnmf(sim.movie, masks_to_ain(sim.masks).T)
    with pytest.raises(ValueError, match="empty"):
        caiman_adapter.seeded_cnmf(sim.movie, np.zeros_like(sim.masks))
    # an empty seed is dropped with a warning (as the builtin backend does); the others keep their indices
    seeds = sim.masks[:4].astype(np.float32)
    seeds[1] = 0
    with caplog.at_level("WARNING", logger=caiman_adapter.__name__):
        cnm = caiman_adapter.seeded_cnmf(sim.movie[:200], seeds, PARAMS, evaluate=False)
    assert "empty seed" in caplog.text and "binarising" in caplog.text
    np.testing.assert_array_equal(np.sort(seed_index(cnm.estimates.A, seeds > 0)), [0, 2, 3])


SMALL = {"data": {"fr": 30.0, "decay_time": 0.4}, "quality": {"use_cnn": False}}


@pytest.fixture(scope="module")
def small_sim(cm):
    from cellfie_caiman.simulate import simulate

    return simulate(300, (48, 56), 8, seed=2)


@pytest.fixture(scope="module")
def small_fit(small_sim):
    """CaImAn's seeded CNMF on the small simulation's true masks, through refine()."""
    from cellfie_caiman.cnmf import refine

    return refine(small_sim.movie, small_sim.masks, params=SMALL, backend="caiman")


def _assert_same_fit(est, expected):
    np.testing.assert_allclose(est.A.toarray(), expected.A.toarray(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(est.C, expected.C, rtol=1e-4, atol=1e-4 * np.abs(expected.C).max())


def test_refine_drops_duplicate_seeds_for_caiman_as_for_builtin(small_sim, small_fit, caplog):
    from cellfie_caiman.cnmf import refine

    seeds = np.concatenate([small_sim.masks, small_sim.masks[[1, 4]]])  # seeds 8 and 9 repeat seeds 1 and 4
    with caplog.at_level("WARNING"):
        est = refine(small_sim.movie, seeds, params=SMALL, backend="caiman")
    assert "seed 8 duplicates seed 1" in caplog.text and "seed 9 duplicates seed 4" in caplog.text
    _assert_same_fit(est, small_fit)  # CaImAn on the distinct seeds
    np.testing.assert_array_equal(seed_index(est.A, seeds), seed_index(small_fit.A, small_sim.masks))


def test_caiman_backend_warns_when_component_k_is_not_seed_k(small_sim, caplog):
    sim = small_sim
    # a second neuron overlapping neuron 6 (the most active), 4 pixels to its right, with the same activity:
    # CaImAn merges the two and puts the merged component last
    twin = np.roll(sim.footprints[6], 4, axis=1)
    movie = sim.movie + sim.calcium[6].astype(np.float32)[:, None, None] * twin
    seeds = np.concatenate([sim.masks[:7], np.roll(sim.masks[6], 4, axis=1)[None], sim.masks[7:]])
    with caplog.at_level("WARNING"):
        cnm = caiman_adapter.seeded_cnmf(movie, seeds, SMALL, evaluate=False)
    assert len(cnm.estimates.merged_ROIs) == 1 and cnm.estimates.A.shape[1] == len(seeds) - 1  # CaImAn's account
    assert seed_index(cnm.estimates.A, seeds)[6] != 6
    assert f"{len(seeds)} seeds gave {cnm.estimates.A.shape[1]} components" in caplog.text
    assert "component k is no longer seed k" in caplog.text


def test_caimans_prints_go_to_the_debug_log_not_to_stdout(small_sim, capsys, caplog):
    """CaImAn prints 'spatial support for each components given by the user' during a seeded fit: our run's
    stdout (its summary) must not carry it; the debug log does."""
    with caplog.at_level("DEBUG", logger="cellfie_caiman"):
        caiman_adapter.seeded_cnmf(small_sim.movie, small_sim.masks, SMALL, evaluate=False)
    assert "spatial support" not in capsys.readouterr().out
    assert any("spatial support" in r.getMessage() and r.levelname == "DEBUG" for r in caplog.records)
    print("our own line")  # stdout itself is left as it was
    assert capsys.readouterr().out == "our own line\n"


def test_caiman_backend_warns_that_nb0_fits_one_background(small_sim, caplog):
    with caplog.at_level("WARNING"):
        cnm = caiman_adapter.seeded_cnmf(small_sim.movie, small_sim.masks, {**SMALL, "refine": {"nb": 0}},
                                         evaluate=False)
    assert cnm.estimates.b.shape[1] == 1  # what CaImAn makes of nb=0
    assert "nb=0 needs backend='builtin'" in caplog.text


def test_caiman_params_temporal_p_is_applied(small_sim):
    cnm = caiman_adapter.seeded_cnmf(small_sim.movie, small_sim.masks, SMALL, evaluate=False,
                                     caiman_params={"temporal": {"p": 2}})
    assert cnm.params.temporal["p"] == 2 and cnm.params.preprocess["p"] == 2
    assert all(np.ravel(g).size == 2 for g in cnm.estimates.g)  # AR(2) coefficients for every trace


def test_caiman_backend_drops_seeds_on_constant_pixels(small_sim, caplog):
    from cellfie_caiman.cnmf import refine

    movie = small_sim.movie.copy()
    movie[:, :4] = 0  # a border zeroed by motion correction
    live = small_sim.masks & (np.arange(movie.shape[1]) >= 4)[None, :, None]
    live = live[live.any(axis=(1, 2))]
    dead = np.zeros(movie.shape[1:], bool)
    dead[:4, 20:26] = True
    seeds = np.concatenate([live[:2], dead[None], live[2:]])
    with caplog.at_level("WARNING"):
        est = refine(movie, seeds, params=SMALL, backend="caiman")
    assert "constant over time" in caplog.text and "motion correction): [2]" in caplog.text
    assert 2 not in seed_index(est.A, seeds).tolist()
    _assert_same_fit(est, refine(movie, live, params=SMALL, backend="caiman"))  # CaImAn without the dead seed
    with pytest.raises(ValueError, match="changes over time"):
        refine(movie, dead[None], params=SMALL, backend="caiman")


def test_caiman_backend_fills_nan_in_a_caiman_memmap(small_sim, tmp_path):
    from cellfie_caiman.cnmf import refine

    movie = small_sim.movie.copy()
    movie[50:60, :, :3] = np.nan  # a border strip motion correction left undefined in a few frames
    T, rows, cols = movie.shape
    fname = tmp_path / f"nan_d1_{rows}_d2_{cols}_d3_1_order_C_frames_{T}.mmap"
    Yr = np.memmap(fname, np.float32, "w+", shape=(rows * cols, T), order="C")  # Yr[i + j * rows, t]
    Yr[:] = movie.transpose(0, 2, 1).reshape(T, -1).T
    Yr.flush()
    del Yr
    raw = fname.read_bytes()
    est = refine(str(fname), small_sim.masks, params=SMALL, backend="caiman")
    _assert_same_fit(est, refine(movie, small_sim.masks, params=SMALL, backend="caiman"))  # NaN filled, as here
    assert fname.read_bytes() == raw  # the file is left as it was


# ------------------------------------------------------------------------------------------------------------
# summary images
# ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_movie():
    """A simulated movie with real structure plus a constant corner and a few isolated spikes (edge cases)."""
    from cellfie_caiman.simulate import simulate

    movie = simulate(300, (40, 36), 6, seed=4).movie.copy()
    movie[:, :3, :3] = 7.0  # constant pixels: correlation 0 by both definitions
    return movie


def test_local_correlation_equals_caiman_fft(cm, small_movie):
    from caiman.summary_images import local_correlations_fft

    from cellfie_caiman.summary import local_correlation, summary_images

    y = small_movie
    expected = local_correlations_fft(y.copy(), swap_dim=False)
    np.testing.assert_allclose(summary_images(y, backend="builtin").corr, expected, atol=1e-5)
    expected4 = local_correlations_fft(y.copy(), eight_neighbours=False, swap_dim=False)
    np.testing.assert_allclose(local_correlation(y, eight_neighbours=False), expected4, atol=1e-5)


def test_caiman_quirk_equals_caiman_local_correlations(cm, small_movie):
    from cellfie_caiman.summary import local_correlation

    y = small_movie[:, 3:, 3:]  # CaImAn's version gives NaN on constant pixels
    expected = cm.local_correlations(y.copy(), eight_neighbours=True, swap_dim=False)
    np.testing.assert_allclose(local_correlation(y, caiman_quirk=True), expected, atol=1e-5)


def test_builtin_summary_equals_caiman_backend(cm, small_movie):
    from cellfie_caiman.summary import summary_images

    ours = summary_images(small_movie, batch_frames=120, backend="builtin")
    theirs = summary_images(small_movie, batch_frames=120, backend="caiman")  # CaImAn's own kernels per batch
    for name in ("corr", "std", "mean", "median", "max"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-5, atol=1e-5, err_msg=name)
    # PNR divides by CaImAn's get_noise_fft noise: float32 PSD sums, so a looser relative tolerance. The constant
    # corner (noise 0) is left out: 0 for the builtin, NaN from the 'caiman' backend (reported to its owner)
    varying = small_movie.std(axis=0) > 0
    np.testing.assert_allclose(ours.pnr[varying], theirs.pnr[varying], rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------------------------------------
# ROI matching
# ------------------------------------------------------------------------------------------------------------

def _caiman_match(gt, pred, **kw):
    from caiman.base.rois import nf_match_neurons_in_binary_masks

    # CaImAn needs 0/1 *floats*: boolean masks score every pair as no overlap (reference, section 5)
    tp_gt, tp_comp, fn_gt, fp_comp, perf = nf_match_neurons_in_binary_masks(
        gt.astype(np.float64), pred.astype(np.float64), **kw)
    return sorted(zip(np.asarray(tp_gt).tolist(), np.asarray(tp_comp).tolist(), strict=True)), perf


def _check_match_equal(gt, pred, **kw):
    from cellfie_caiman.evaluate import match_rois

    pairs, perf = _caiman_match(gt, pred, **kw)
    ours = match_rois(gt, pred, rule="caiman", **kw)
    assert sorted(map(tuple, ours.matched)) == pairs
    assert (ours.tp, ours.fp, ours.fn) == (len(pairs), pred.shape[0] - len(pairs), gt.shape[0] - len(pairs))
    for ours_name, theirs_name in (("precision", "precision"), ("recall", "recall"), ("f1", "f1_score")):
        assert getattr(ours, ours_name) == pytest.approx(perf[theirs_name]), ours_name
    return ours


def test_match_rois_equals_caiman_on_simulated_masks(cm):
    from scipy import ndimage

    from cellfie_caiman.simulate import simulate

    gt = simulate(1, (96, 96), 25, seed=5).masks
    rng = np.random.default_rng(5)
    pred = [ndimage.shift(m.astype(float), rng.integers(-4, 5, 2), order=0) > 0.5 for m in gt[3:]]  # 3 missed
    pred += [np.roll(gt[0], 40, axis=1)]  # a false positive
    pred = np.array(pred)
    for kw in ({}, {"thresh_cost": 0.8, "min_dist": 10}, {"thresh_cost": 0.5, "min_dist": 5}):
        res = _check_match_equal(gt, pred, **kw)
        assert 0 < res.tp < gt.shape[0]


@pytest.mark.slow
def test_match_rois_equals_caiman_on_neurofinder(cm):
    import json
    from pathlib import Path

    data = Path(__file__).parents[1].parent / "shared" / "data" / "neurofinder.01.01"
    if not (data / "regions_stneuronet.json").exists():
        pytest.skip(f"real data not found in {data}")

    def masks(name):
        regions = json.loads((data / name).read_text())
        out = np.zeros((len(regions), 512, 512), bool)
        for k, r in enumerate(regions):
            out[(k,) + tuple(np.array(r["coordinates"]).T)] = True
        return out

    res = _check_match_equal(masks("regions.json"), masks("regions_stneuronet.json"))
    assert (res.tp, res.fp, res.fn) == (350, 2, 0)  # the figure in the reference, section 5


def _grow_up_left(m):
    """Masks (N, rows, cols) plus their copies shifted one pixel up, left, and up-left."""
    up = np.zeros_like(m)
    up[:, :-1] = m[:, 1:]
    out = m | up
    left = np.zeros_like(out)
    left[:, :, :-1] = out[:, :, 1:]
    return out | left


def test_our_imagej_zip_is_read_by_caiman(cm, tmp_path):
    from caiman.base.rois import nf_read_roi_zip

    from cellfie_caiman.rois import write_rois
    from cellfie_caiman.simulate import simulate

    masks = simulate(1, (64, 64), 12, seed=3).masks
    path = tmp_path / "rois.zip"
    write_rois(path, masks)
    theirs = nf_read_roi_zip(str(path), (64, 64)) > 0
    assert theirs.shape == masks.shape
    # CaImAn fills the outline polygon with its vertices shifted by -1 px (reference, bug 6): each ROI comes back
    # as ours plus at most one pixel row above and one column to the left -- the same ROIs for matching
    assert np.all(theirs >= masks) and np.all(theirs <= _grow_up_left(masks))
    _check_match_equal(masks, theirs)


def test_caiman_results_file_gives_rois(seeded, tmp_path):
    from cellfie_caiman.rois import read_rois

    sim, cnm = seeded
    path = str(tmp_path / "cnm.hdf5")
    cnm.save(path)
    rows, cols = sim.movie.shape[1:]
    A = cnm.estimates.A.toarray()
    idx = cnm.estimates.idx_components
    expected = (A > 0).T.reshape(-1, cols, rows).transpose(0, 2, 1)
    np.testing.assert_array_equal(read_rois(path, accepted_only=False, a_threshold=0), expected)
    np.testing.assert_array_equal(read_rois(path, a_threshold=0), expected[idx])
    # by default binarised as the pipeline binarises footprints for rois.json (CaImAn's benchmark protocol)
    from cellfie_caiman.masks import footprints_to_masks

    np.testing.assert_array_equal(read_rois(path), footprints_to_masks(cnm.estimates.A[:, idx], (rows, cols)))
    # thresholded as CaImAn's threshold_spatial_components(thr_method='max') keeps pixels: a > thr * max(a)
    expected20 = (A > 0.2 * A.max(axis=0)).T.reshape(-1, cols, rows).transpose(0, 2, 1)
    np.testing.assert_array_equal(read_rois(path, a_threshold=0.2, accepted_only=False), expected20)


# ------------------------------------------------------------------------------------------------------------
# results files: our Estimates and CaImAn's CNMF
# ------------------------------------------------------------------------------------------------------------

_FIELDS = ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "lam", "SNR_comp", "r_values",
           "idx_components", "idx_components_bad")


def _assert_same_estimates(ours, theirs):
    """Our Estimates against a CaImAn Estimates: every field, CaImAn's string-typed scalars converted."""
    np.testing.assert_array_equal(ours.A.toarray(), theirs.A.toarray())
    for name in _FIELDS:
        a, b = getattr(ours, name), getattr(theirs, name)
        if a is None:
            assert b is None, name
            continue
        if name == "g":  # CaImAn: an object array of per-trace coefficient arrays
            b = np.array([np.atleast_1d(np.asarray(x, dtype=float)) for x in b])
        b = np.asarray([float(x) for x in np.ravel(b)]).reshape(np.shape(b)) if np.asarray(b).dtype.kind in "OS" \
            else np.asarray(b)
        np.testing.assert_array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), err_msg=name)


def test_estimates_from_caiman_keeps_every_field(seeded):
    sim, cnm = seeded
    est = caiman_adapter.estimates_from_caiman(cnm, PARAMS)
    _assert_same_estimates(est, cnm.estimates)
    assert tuple(est.dims) == sim.movie.shape[1:]
    assert est.params["refine"]["nb"] == 2


def test_our_estimates_file_is_read_by_caiman(seeded, tmp_path):
    from caiman.source_extraction.cnmf.cnmf import load_CNMF

    sim, cnm = seeded
    est = caiman_adapter.estimates_from_caiman(cnm, PARAMS)
    path = est.save(tmp_path / "ours.hdf5")
    loaded = load_CNMF(str(path))
    _assert_same_estimates(est, loaded.estimates)
    assert tuple(loaded.dims) == sim.movie.shape[1:]
    assert loaded.params.get("data", "fr") == 30.0


def test_caiman_file_is_read_by_us(seeded, tmp_path):
    from cellfie_caiman.cnmf import load_estimates

    sim, cnm = seeded
    path = str(tmp_path / "theirs.hdf5")
    cnm.save(path)
    est = load_estimates(path)
    _assert_same_estimates(est, cnm.estimates)
    assert tuple(est.dims) == sim.movie.shape[1:]


def test_builtin_refine_file_is_read_by_caiman(cm, tmp_path):
    from caiman.source_extraction.cnmf.cnmf import load_CNMF

    from cellfie_caiman.cnmf import refine

    sim = _simulation()
    est = refine(sim.movie, sim.masks, params=PARAMS, backend="builtin")
    path = est.save(tmp_path / "builtin.hdf5")
    loaded = load_CNMF(str(path))
    _assert_same_estimates(est, loaded.estimates)
    # and CaImAn's own methods work on it
    loaded.estimates.threshold_spatial_components(maxthr=0.2)
    assert loaded.estimates.A_thr.shape == est.A.shape


def test_caiman_refits_our_results_on_the_movie_they_name(cm, tmp_path, caiman_temp):
    """load_CNMF then refit, CaImAn's usual second pass, needs the file's mmap_file entry."""
    from caiman.source_extraction.cnmf.cnmf import load_CNMF

    from cellfie_caiman.cnmf import refine
    from cellfie_caiman.io import load_movie, save_memmap

    sim = _simulation()
    fname = save_memmap(sim.movie, "refit", order="C", directory=tmp_path)
    est = refine(sim.movie, sim.masks, params=PARAMS, backend="builtin")
    loaded = load_CNMF(str(est.save(tmp_path / "builtin.hdf5", mmap_file=fname)))
    assert loaded.mmap_file == str(fname)  # a str, as CaImAn's own files give it back (cm.load_memmap needs one)
    assert cm.load_memmap(loaded.mmap_file)[1] == sim.movie.shape[1:]
    images = np.asarray(load_movie(fname)[:])
    again = loaded.refit(images)
    assert again.estimates.A.shape[1] == len(est.idx_components)  # refit starts from the accepted components


def test_our_nwb_is_read_by_caiman(cm, tmp_path):
    pytest.importorskip("pynwb", reason="writing NWB needs pynwb")
    import dataclasses

    from caiman.source_extraction.cnmf.cnmf import load_CNMF

    from cellfie_caiman.cnmf import refine

    sim = _simulation()
    est = refine(sim.movie[:200], sim.masks, params=PARAMS, backend="builtin")
    # with a correlation image, as `cellfie-caiman run --nwb` writes it (a container CaImAn trips on if it is
    # named 'summary_images')
    est = dataclasses.replace(est, Cn=sim.movie[:200].std(0).astype(np.float32))
    path = est.to_nwb(tmp_path / "ours.nwb", fr=30.0)
    loaded = load_CNMF(str(path)).estimates
    np.testing.assert_allclose(loaded.C, est.C, rtol=1e-6)
    np.testing.assert_allclose(loaded.YrA, est.YrA, rtol=1e-6)
    np.testing.assert_allclose(loaded.f, est.f, rtol=1e-6)
    # Our image_mask[k] is footprint k as a (rows, cols) image (NWB's convention). CaImAn's NWB reader ravels it
    # in C order into A, whose columns CaImAn otherwise treats as Fortran-ordered (its save_NWB writes the mirror
    # image of that, so CaImAn-to-CaImAn round trips work): CaImAn's A is our footprints, pixel-reordered.
    rows, cols = sim.movie.shape[1:]
    ours = est.A.toarray().T.reshape(-1, cols, rows).transpose(0, 2, 1)  # (K, rows, cols)
    np.testing.assert_allclose(loaded.A.toarray(), ours.reshape(len(ours), -1).T, rtol=1e-6, atol=1e-9)


def test_caimans_nwb_is_read_with_its_footprints_in_place(cm, tmp_path):
    """CaImAn's save_NWB stores each footprint as its column of A (Fortran pixel order) reshaped in C order; on a
    field that is not square read_rois must put the pixels back, not return scrambled masks."""
    pytest.importorskip("pynwb", reason="CaImAn's save_NWB needs pynwb")
    from datetime import datetime, timezone

    import scipy.sparse as sp
    from caiman.source_extraction.cnmf.estimates import Estimates

    from cellfie_caiman.rois import read_rois

    rows, cols = 40, 56
    yy, xx = np.mgrid[:rows, :cols]
    centres = [(8, 10), (20, 45), (31, 22), (12, 33)]
    masks = np.array([(yy - r) ** 2 + ((xx - c) / 1.5) ** 2 <= 16 for r, c in centres])
    weights = masks * np.linspace(1.0, 2.0, masks[0].size).reshape(rows, cols)  # weighted footprints
    A = sp.csc_matrix(weights.reshape(len(masks), -1, order="F").T)  # CaImAn's A: Fortran pixel order
    T = 30
    est = Estimates(A=A, C=np.ones((len(masks), T)), b=np.ones((rows * cols, 1)), f=np.ones((1, T)),
                    dims=(rows, cols))
    est.YrA = np.zeros((len(masks), T))
    est.r_values, est.SNR_comp = np.ones(len(masks)), np.ones(len(masks))
    est.idx_components = np.array([0, 1, 3])
    path = tmp_path / "caiman.nwb"
    try:
        est.save_NWB(str(path), session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    except AttributeError as exc:  # NWBFile.modules, gone in pynwb 3
        pytest.skip(f"CaImAn's save_NWB does not run with this pynwb (needs pynwb < 3): {exc}")
    np.testing.assert_array_equal(read_rois(path, a_threshold=0), masks[est.idx_components])
    np.testing.assert_array_equal(read_rois(path, a_threshold=0, accepted_only=False), masks)


def test_nwb_quality_columns_are_caimans(cm, tmp_path):
    """The PlaneSegmentation's r, snr, cnn and keep columns, background rows included, as CaImAn's save_NWB writes
    them for the same estimates (the background rows' metrics NaN), and load_CNMF reads them back."""
    pynwb = pytest.importorskip("pynwb", reason="writing NWB needs pynwb")
    from datetime import datetime, timezone

    import scipy.sparse as sp
    from caiman.source_extraction.cnmf.estimates import Estimates as CaimanEstimates

    from cellfie_caiman.cnmf import Estimates

    rows, cols, K, T, nb = 20, 24, 3, 15, 2
    rng = np.random.default_rng(3)
    A = sp.csc_matrix(rng.random((rows * cols, K)) * (rng.random((rows * cols, K)) < 0.1))
    b, C, f = rng.random((rows * cols, nb)), rng.random((K, T)), rng.random((nb, T))
    r_values, snr, keep = np.array([0.9, -0.2, np.nan]), np.array([4.0, 0.3, np.inf]), np.array([0, 2])
    cnn = np.array([0.95, 0.2, 0.6])
    theirs = CaimanEstimates(A=A, C=C, b=b, f=f, dims=(rows, cols))
    theirs.YrA, theirs.r_values, theirs.SNR_comp, theirs.idx_components = np.zeros((K, T)), r_values, snr, keep
    theirs.cnn_preds = cnn
    try:
        theirs.save_NWB(str(tmp_path / "caiman.nwb"), imaging_rate=10.0,
                        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    except AttributeError as exc:  # NWBFile.modules, gone in pynwb 3
        pytest.skip(f"CaImAn's save_NWB does not run with this pynwb (needs pynwb < 3): {exc}")
    ours = Estimates(A=A, C=C, b=b, f=f, YrA=np.zeros((K, T)), r_values=r_values, SNR_comp=snr, cnn_preds=cnn,
                     idx_components=keep, dims=(rows, cols)).to_nwb(tmp_path / "ours.nwb", fr=10.0)
    columns = {}
    for name, path in (("caiman", tmp_path / "caiman.nwb"), ("ours", ours)):
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            ps = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
            columns[name] = {c: np.asarray(ps[c].data[:]) for c in ("r", "snr", "cnn", "keep")}
    for c in ("r", "snr", "cnn", "keep"):
        assert len(columns["ours"][c]) == K + nb
        np.testing.assert_array_equal(columns["ours"][c], columns["caiman"][c], err_msg=c)
    from caiman.source_extraction.cnmf.cnmf import load_CNMF

    loaded = load_CNMF(str(ours)).estimates
    for name, value in (("r_values", r_values), ("SNR_comp", snr), ("cnn_preds", cnn), ("idx_components", keep)):
        np.testing.assert_array_equal(np.asarray(getattr(loaded, name)), value, err_msg=name)


# ------------------------------------------------------------------------------------------------------------
# component evaluation: the builtin's SNR_comp, r_values and decision against CaImAn's on identical inputs
# ------------------------------------------------------------------------------------------------------------

def _evaluation_inputs(fr, decay_time, T):
    """A movie and estimates with the cases users hit: the true footprints and calcium plus noise as YrA, then a
    component that never fires, one whose trace is constant, one of very high SNR, one with flat tops and one whose
    C and YrA are 0 (on footprints of the first ones, so that they overlap them)."""
    from cellfie_caiman.simulate import simulate

    sim = simulate(T, (64, 64), 8, seed=2, fs=fr, decay_time=decay_time)
    rng = np.random.default_rng(0)
    n, rows, cols = sim.footprints.shape
    A = sim.footprints.transpose(1, 2, 0).reshape(rows * cols, n, order="F").astype(np.float64)
    C, YrA = sim.calcium.copy(), rng.normal(0, 0.3, (n, T))
    n = int(np.ceil(fr * decay_time))
    huge = np.zeros(T)  # two boxes of N frames, 5000 noise sigmas high
    huge[T // 3:T // 3 + n] = huge[2 * T // 3:2 * T // 3 + n] = 5.0
    A = np.hstack([A, A[:, :5]])
    C = np.vstack([C, np.zeros(T), np.full(T, 2.0), huge, np.minimum(C[3], 0.5 * C[3].max()), np.zeros(T)])
    YrA = np.vstack([YrA, rng.normal(0, 0.3, T), np.zeros(T), rng.normal(0, 1e-3, T), YrA[3], np.zeros(T)])
    b = sim.background[:2].transpose(1, 2, 0).reshape(rows * cols, 2, order="F").astype(np.float64)
    return sim.movie, A, C, b, sim.background_traces[:2], YrA


@pytest.mark.parametrize("fr, decay_time, T", [(30.0, 0.4, 300), (7.5, 1.0, 100)])
def test_builtin_evaluation_equals_caimans(cm, caiman_temp, fr, decay_time, T):
    """Same movie, A, C, b, f, YrA: SNR_comp, r_values and the accepted components equal those of CaImAn's
    Estimates.evaluate_components (use_cnn False) and filter_components (use_cnn True with given cnn_preds).

    Tolerances: SNR_comp is the same float64 arithmetic (measured difference 0; rtol 1e-6 leaves room for summation
    order); r_values 1e-5, because CaImAn averages the float32 movie in float32 (measured 1e-7). Where CaImAn's
    SNR_comp is not a measure of the trace (quality.snr_comp): +inf for the very high SNR, where ours is finite
    (> 38.6, the same decision); and the constant traces, ours 0: CaImAn's NaN (stored as 0) for the constant one,
    but for the all-zero one a value computed from the rounding errors of its neighbours' baselines, which may
    accept it.
    With more than 50 components the r_values may differ: CaImAn evaluates a memmap movie in groups of 50 and only
    drops the frames of overlapping neighbours within a group (quality.select_frames uses all of them).
    """
    import scipy.sparse
    from caiman.source_extraction.cnmf.estimates import Estimates
    from caiman.source_extraction.cnmf.params import CNMFParams

    from cellfie_caiman.cnmf import quality
    from cellfie_caiman.cnmf._data import MovieData
    from cellfie_caiman.cnmf.seeded import Settings, evaluate

    movie, A, C, b, f, YrA = _evaluation_inputs(fr, decay_time, T)
    Yr, dims, T_ = cm.load_memmap(cm.save_memmap([movie], base_name="evalq_", order="C"))
    images = np.reshape(Yr.T, [T_] + list(dims), order="F")  # a memmap: what evaluate_components needs (bug 3)
    q = {"min_SNR": 2.5, "SNR_lowest": 0.5, "rval_thr": 0.8, "rval_lowest": -1.0}
    ours = evaluate(MovieData(np.asarray(images)), scipy.sparse.csc_matrix(A), C, YrA,
                    Settings(fr=fr, decay_time=decay_time, **q))

    est = Estimates(A=scipy.sparse.csc_matrix(A), C=C.copy(), b=b, f=f, dims=dims)
    est.YrA = YrA.copy()
    params = CNMFParams(params_dict={"data": {"fr": fr, "decay_time": decay_time, "dims": dims},
                                     "quality": dict(q, use_cnn=False)})
    est.evaluate_components(images, params)
    snr = np.asarray(est.SNR_comp, dtype=np.float64)
    K = A.shape[1]
    huge, flat = np.arange(K) == 10, np.isin(np.arange(K), [9, 12])
    assert np.isinf(snr[10]) and snr[9] == 0  # the cases are covered (CaImAn: +inf; NaN stored as 0)
    assert np.all(ours.SNR_comp[huge] > 38.6) and np.all(ours.SNR_comp[flat] == 0)
    same = ~huge & ~flat
    np.testing.assert_allclose(ours.SNR_comp[same], snr[same], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.r_values, est.r_values, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ours.idx_components, np.setdiff1d(est.idx_components, [12]))
    assert 0 < len(ours.idx_components) < K

    cnn = np.random.default_rng(1).uniform(0, 1, A.shape[1])
    est.cnn_preds = cnn
    est.filter_components(images, params, new_dict={"use_cnn": True, "min_cnn_thr": 0.7, "cnn_lowest": 0.2})
    good, bad = quality.accept(ours.SNR_comp, ours.r_values, cnn=cnn, min_cnn_thr=0.7, cnn_lowest=0.2, **q)
    np.testing.assert_array_equal(good, np.setdiff1d(est.idx_components, [12]))
    np.testing.assert_array_equal(bad, np.setdiff1d(np.arange(K), good))


def test_accept_equals_caimans_select_components_at_the_thresholds(cm):
    """Identical metrics, values exactly at each threshold (and NaN, inf): the same decision with and without
    cnn_preds."""
    from caiman.components_evaluation import select_components_from_metrics

    from cellfie_caiman.cnmf import quality

    th = {"min_SNR": 2.0, "SNR_lowest": 0.5, "rval_thr": 0.85, "rval_lowest": -0.5, "min_cnn_thr": 0.9,
          "cnn_lowest": 0.1}
    values = {"snr": [0.0, 0.5, 0.50001, 1.0, 2.0, 2.00001, np.inf, np.nan],
              "r": [-1.0, -0.5, -0.49999, 0.0, 0.85, 0.84999, 1.0, np.nan],
              "cnn": [0.0, 0.1, 0.10001, 0.5, 0.9, 0.89999, 1.0, np.nan]}
    snr, r, cnn = (np.array(v).ravel() for v in np.meshgrid(values["snr"], values["r"], values["cnn"]))
    for use_cnn in (False, True):
        good, bad, _ = select_components_from_metrics(
            None, (8, 8), [4, 4], r, snr, r_values_min=th["rval_thr"], r_values_lowest=th["rval_lowest"],
            min_SNR=th["min_SNR"], min_SNR_reject=th["SNR_lowest"], thresh_cnn_min=th["min_cnn_thr"],
            thresh_cnn_lowest=th["cnn_lowest"], use_cnn=use_cnn, predictions=cnn if use_cnn else None)
        ours = quality.accept(snr, r, th["min_SNR"], th["SNR_lowest"], th["rval_thr"], th["rval_lowest"],
                              cnn=cnn if use_cnn else None, min_cnn_thr=th["min_cnn_thr"],
                              cnn_lowest=th["cnn_lowest"])
        np.testing.assert_array_equal(ours[0], good)
        np.testing.assert_array_equal(ours[1], bad)
