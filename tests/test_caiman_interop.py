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

from cellfie_caiman.refine import caiman_adapter
from cellfie_caiman.refine.caiman_adapter import caiman_available, masks_to_ain, seed_index

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


def test_seed_index_follows_footprint_energy():
    masks = np.zeros((3, 10, 10), bool)
    masks[0, :4, :4] = masks[1, 5:, 5:] = masks[2, :4, 6:] = True
    a = np.zeros((100, 3))
    a[:, 0] = masks_to_ain(masks[[1]])[:, 0] * 2.0  # footprint on seed 1
    a[:, 1] = masks_to_ain(masks[[0]])[:, 0]         # on seed 0, plus a little outside
    a[99, 1] = 0.5
    a[:, 2] = 0.0
    a[5 + 0 * 10, 2] = 1.0                            # pixel (5, 0): in no seed
    np.testing.assert_array_equal(seed_index(a, masks), [1, 0, -1])


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
    np.testing.assert_array_equal(np.sort(est.seed_index), np.arange(n))
    corr = np.array([np.corrcoef(est.C[k], sim.calcium[j])[0, 1] for k, j in enumerate(est.seed_index)])
    active = sim.spikes[est.seed_index].sum(axis=1) >= 3  # a single transient is too little to judge a trace by
    assert active.sum() >= 7 and corr[active].min() > 0.9 and np.median(corr) > 0.95, corr
    # the footprint's peak lies inside its seed
    A = est.A.toarray()
    for k, j in enumerate(est.seed_index):
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


def test_seeded_cnmf_rejects_bad_seeds(cm):
    sim = _simulation()
    with pytest.raises(ValueError, match="frame shape"):
        caiman_adapter.seeded_cnmf(sim.movie, sim.masks[:, :-1])
    empty = sim.masks.copy()
    empty[1] = False
    with pytest.raises(ValueError, match=r"\[1\]"):
        caiman_adapter.seeded_cnmf(sim.movie, empty)
