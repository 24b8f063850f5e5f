"""Refinement of seeded components by CNMF: CaImAn's (when installed) or our builtin implementation.

``refine(movie, init)`` returns an :class:`Estimates` with CaImAn's field names; ``Estimates.save`` writes CaImAn's
HDF5 layout, :func:`load_estimates` reads ours and CaImAn's files, ``Estimates.to_nwb`` writes NWB.
"""
from __future__ import annotations

import logging

import numpy as np

from .estimates import Estimates, load_estimates

logger = logging.getLogger(__name__)

__all__ = ["refine", "seeded_cnmf", "seed_index", "load_estimates", "Estimates", "caiman_available"]

_BACKENDS = ("auto", "builtin", "caiman")


def seeded_cnmf(*args, **kwargs):
    """CaImAn's seeded CNMF (a fitted ``caiman`` CNMF object); see ``cellfie_caiman.cnmf.caiman_adapter``."""
    from .caiman_adapter import seeded_cnmf as _seeded_cnmf

    return _seeded_cnmf(*args, **kwargs)


def seed_index(A, masks: np.ndarray) -> np.ndarray:
    """For each component, the seed it came from: the index into ``masks`` of the seed its footprint is most
    similar to (-1 for one that touches no seed).

    Parameters
    ----------
    A : scipy.sparse or ndarray (rows*cols, K')
        Footprints, Fortran pixel order (``Estimates.A``, CaImAn's ``estimates.A``).
    masks : ndarray of bool (K, rows, cols)
        The seeds (``Initialization.masks``).

    Returns
    -------
    ndarray of int (K',)

    See :func:`cellfie_caiman.cnmf.caiman_adapter.seed_index` (CaImAn not needed).
    """
    from .caiman_adapter import seed_index as _seed_index

    return _seed_index(A, masks)


def caiman_available() -> bool:
    """True when CaImAn can be imported (checked lazily, without importing it at package import)."""
    try:
        from .caiman_adapter import caiman_available as _available
    except ImportError:
        return False
    try:
        return bool(_available())
    except Exception:  # noqa: BLE001 - a broken CaImAn install counts as unavailable
        logger.debug("caiman_available() failed", exc_info=True)
        return False


def _settings(P, dims: tuple[int, int]):
    from .seeded import Settings

    r, q, d = P.refine, P.quality, P.data
    return Settings(p=int(r.p), nb=int(r.nb), merge_thr=float(r.merge_thr), n_iter=int(r.n_iter),
                    chunk_frames=r.chunk_frames, fr=float(d.fr), decay_time=float(d.decay_time),
                    min_SNR=float(q.min_SNR), SNR_lowest=float(q.SNR_lowest), rval_thr=float(q.rval_thr),
                    rval_lowest=float(q.rval_lowest))


def refine(movie, init, *, params=None, backend: str = "auto", progress: bool = False) -> Estimates:
    """Refine seeded components with CNMF and evaluate them.

    Parameters
    ----------
    movie : ndarray (T, rows, cols), ``cellfie_caiman.io.Movie`` or anything ``load_movie`` accepts
        (.mmap, .tif, .h5, .nwb, .npy, folder of TIFFs). Read chunk by chunk.
    init : Initialization, bool masks (K, rows, cols) or Ain (rows*cols, K) in Fortran pixel order
        The seeds. Ain flattened in C order instead is an error on a non-square field (its columns are scattered
        pieces in Fortran order), and a warning when most seeds are more coherent over time read in C order
        (on a square field the shape cannot tell). Seeds duplicating an earlier one (IoU >= 0.95) are dropped
        before either backend runs, empty seeds by each backend, and seeds whose pixels are all constant over
        time (a border zeroed by motion correction) by CaImAn's before its fit and by the builtin's first update
        (a warning names the duplicates and empty seeds; a constant seed the builtin drops is logged, and the
        warning that components were renumbered says the count changed).
    params : Params, dict of groups, or None
        Both backends use ``data.fr`` (None: the movie file's rate, else 30 Hz with a warning),
        ``data.decay_time``, ``refine.p``, ``refine.merge_thr`` and ``quality.*``, and ``refine.nb`` (but CaImAn's
        seeded CNMF fits at least one background component: ``nb=0`` needs ``backend='builtin'``; a warning
        says so). Only the builtin uses ``refine.n_iter`` and ``refine.chunk_frames``: CaImAn's seeded fit runs a
        fixed sequence of updates on its memmap. Neither backend's result depends on ``refine.gSig`` or
        ``data.neuron_diameter``: CaImAn gets them as ``init.gSig``, which its seeded path does not use; the
        builtin search region is the footprint dilated by 2 pixels.
    backend : {'auto', 'builtin', 'caiman'}
        'auto' uses CaImAn when importable, else the builtin seeded CNMF. CaImAn's own settings go through
        :func:`cellfie_caiman.cnmf.caiman_adapter.seeded_cnmf` (``caiman_params``).
    progress : bool
        Show progress bars.

    Returns
    -------
    Estimates
        CaImAn's field names and shapes (A unit-norm csc in Fortran pixel order, C with baseline, S, YrA, b, f, sn,
        g, bl, c1, neurons_sn, SNR_comp, r_values, idx_components, idx_components_bad, dims). As in CaImAn, seeds
        whose footprints overlap and whose traces correlate above ``refine.merge_thr`` are merged (the merged
        component goes last) and footprints that empty are removed: then component k is not seed k (a warning says
        so, with either backend; :func:`cellfie_caiman.cnmf.caiman_adapter.seed_index` maps components to seeds).
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    from ..params import Params

    P = Params.coerce(params).with_frame_rate(movie)  # the caller's params left alone
    if isinstance(movie, np.ndarray) and movie.ndim != 3:
        raise ValueError(f"movie must have shape (T, rows, cols), got {movie.shape}")
    from .caiman_adapter import _frame_shape  # (rows, cols) without reading frames; CaImAn not needed
    from .pixel_order import check_pixel_order

    dims = _frame_shape(movie)
    check_pixel_order(movie, init, dims)  # Ain flattened in C order: an error, or a warning on a square field
    init = distinct_seeds(init, dims)  # the same seeds for either backend
    if backend == "auto":
        backend = "caiman" if caiman_available() else "builtin"
        logger.info("refine backend: %s", backend)
    if backend == "caiman":
        return _refine_caiman(movie, init, P)  # seeded_cnmf applies quality.use_cnn, before any refit
    from ._data import MovieData
    from .seeded import run_cnmf
    from .seeds import seeds_to_A

    data = MovieData(movie)
    settings = _settings(P, data.dims)
    A0 = seeds_to_A(init, data.dims)
    est = run_cnmf(data, A0, settings, progress=progress)
    est.params = P.to_dict()
    from .scores import apply_scores

    apply_scores(est, init, est.dims, P.quality)
    return est


def distinct_seeds(init, dims: tuple[int, int]):
    """``init`` without the seeds that duplicate an earlier one (IoU >= 0.95; a warning names each), in the same
    form (Initialization, masks or Ain). Components are then numbered over the seeds that remain;
    :func:`cellfie_caiman.cnmf.caiman_adapter.seed_index` maps them to the seeds given."""
    from .seeds import duplicate_seeds, seed_matrix, take_seeds

    dup = duplicate_seeds(seed_matrix(init, dims))
    if not dup.any():
        return init
    logger.warning("%d duplicate seed(s) dropped: components are numbered over the %d remaining seeds",
                   int(dup.sum()), int((~dup).sum()))
    return take_seeds(init, ~dup)


def _refine_caiman(movie, init, P) -> Estimates:
    """Run CaImAn's seeded CNMF through the adapter and convert its estimates."""
    from .caiman_adapter import estimates_from_caiman
    from .caiman_adapter import seeded_cnmf as _seeded_cnmf

    return estimates_from_caiman(_seeded_cnmf(movie, init, params=P), P)
