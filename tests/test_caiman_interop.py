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


def _synthetic(T=400, shape=(48, 40), n=8, seed=0, fr=30.0, decay=0.4, noise=0.25, radius=3.5):
    """Small movie with well separated Gaussian neurons: (movie (T,r,c) f32, masks (n,r,c) bool, calcium (n,T))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centers: list[np.ndarray] = []
    while len(centers) < n:
        c = rng.uniform(radius + 2, np.array(shape) - radius - 2)
        if all(np.hypot(*(c - d)) > 2 * radius + 2 for d in centers):
            centers.append(c)
    cen = np.array(centers)
    d2 = (yy[None] - cen[:, 0, None, None]) ** 2 + (xx[None] - cen[:, 1, None, None]) ** 2
    masks = d2 <= radius**2
    footprints = np.exp(-d2 / (2 * (radius / 1.5) ** 2)) * masks
    g = np.exp(-1 / (fr * decay))
    spikes = (rng.random((n, T)) < 0.03) * rng.uniform(0.5, 1.5, (n, T))
    calcium = np.zeros((n, T))
    for t in range(T):
        calcium[:, t] = spikes[:, t] + (g * calcium[:, t - 1] if t else 0.0)
    background = 1.0 + 0.3 * np.cos(np.pi * xx / shape[1])
    movie = (np.einsum("nt,nij->tij", calcium, footprints) + background[None]
             + noise * rng.standard_normal((T,) + shape))
    return movie.astype(np.float32), masks, calcium


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
    movie, masks, _ = _synthetic(T=20, n=2)
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

@pytest.fixture(scope="module")
def seeded(cm, tmp_path_factory):
    movie, masks, calcium = _synthetic()
    cnm = caiman_adapter.seeded_cnmf(movie, masks, {"refine": {"p": 1, "nb": 1}})
    return movie, masks, calcium, cnm


def test_seeded_cnmf_returns_fitted_cnmf_matching_truth(seeded):
    from caiman.source_extraction.cnmf.cnmf import CNMF

    movie, masks, calcium, cnm = seeded
    est = cnm.estimates
    assert isinstance(cnm, CNMF)
    T, rows, cols = movie.shape
    assert est.A.shape == (rows * cols, masks.shape[0]) and est.C.shape == (masks.shape[0], T)
    # each component comes from a distinct seed and its trace follows that neuron's calcium
    np.testing.assert_array_equal(np.sort(est.seed_index), np.arange(masks.shape[0]))
    corr = [np.corrcoef(est.C[k], calcium[j])[0, 1] for k, j in enumerate(est.seed_index)]
    assert min(corr) > 0.9, corr
    # the footprint's peak lies inside its seed
    A = est.A.toarray()
    for k, j in enumerate(est.seed_index):
        peak = np.argmax(A[:, k])
        assert masks[j, peak % rows, peak // rows]
    # components evaluated with CaImAn's SNR / spatial-correlation tests (no CNN)
    assert cnm.params.get("quality", "use_cnn") is False
    assert len(est.SNR_comp) == len(est.r_values) == masks.shape[0]
    assert len(est.idx_components) + len(est.idx_components_bad) == masks.shape[0]
    assert cnm.params.get("patch", "rf") is None and cnm.params.get("patch", "only_init") is False


def test_seeded_cnmf_accepts_ain_and_caiman_memmap(seeded, tmp_path):
    import caiman

    from cellfie_caiman.io import save_memmap

    movie, masks, calcium, cnm0 = seeded
    fname = save_memmap(movie, "seeded", directory=tmp_path)
    Yr, dims, T = caiman.load_memmap(fname)
    images = np.reshape(Yr.T, [T] + list(dims), order="F")
    cnm = caiman_adapter.seeded_cnmf(images, masks_to_ain(masks), {"refine": {"p": 1, "nb": 1}}, evaluate=False)
    assert cnm.mmap_file == fname  # used in place, not copied
    # same data, same seeds, same parameters: the same result as from the in-memory movie
    np.testing.assert_allclose(cnm.estimates.C, cnm0.estimates.C, rtol=1e-4, atol=1e-4 * np.abs(cnm0.estimates.C).max())


def test_seeded_cnmf_rejects_bad_seeds(cm):
    movie, masks, _ = _synthetic(T=30, n=2)
    with pytest.raises(ValueError, match="frame shape"):
        caiman_adapter.seeded_cnmf(movie, masks[:, :-1])
    empty = masks.copy()
    empty[1] = False
    with pytest.raises(ValueError, match=r"\[1\]"):
        caiman_adapter.seeded_cnmf(movie, empty)
