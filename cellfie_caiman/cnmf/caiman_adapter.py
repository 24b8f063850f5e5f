"""The one place that talks to CaImAn: seeded CNMF with our masks, and its results as our :class:`Estimates`.

CaImAn is optional and imported lazily. It is GPL-2 software that this module *calls*; none of its code is copied.
What CaImAn expects (see ``shared/reference/caiman-interop.md``):

* the seeds as a dense **boolean** ``Ain`` of shape (pixels, K) whose columns are masks flattened in Fortran order
  (float or sparse ``Ain`` without ``Cin`` fail inside CaImAn);
* ``rf=None`` (patch mode silently ignores ``Ain``) and ``only_init=False``;
* ``Estimates.evaluate_components`` only works on an ``np.memmap`` of shape (T, rows, cols) in CaImAn's C-order
  memmap layout, so in-memory movies are first written with :func:`cellfie_caiman.io.save_memmap`;
* no NaN or inf in that memmap (a memmap holding them is copied with them filled) and no seed whose pixels are all
  constant over time (dropped with a warning: CaImAn's spatial update fails on it with a bare IndexError).

Of our settings, CaImAn's seeded fit does not depend on ``refine.gSig``, ``data.neuron_diameter``,
``refine.n_iter`` or ``refine.chunk_frames``, and fits one background component when ``refine.nb`` is 0.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..masks import masks_to_ain

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "CaImAn is not installed (or the installed 'caiman' is not CaImAn: 'pip install caiman' gets an unrelated "
    "package). Install it with conda: `conda install -c conda-forge caiman` "
    "(see https://github.com/flatironinstitute/CaImAn). "
    "refine(..., backend='builtin') needs nothing extra and runs our own seeded CNMF instead."
)


@functools.lru_cache(maxsize=1)
def caiman_available() -> bool:
    """Whether the real CaImAn is installed, found without importing it (cached; CaImAn imports TensorFlow).

    Returns
    -------
    bool
        True when a ``caiman`` package with a ``caiman/source_extraction`` subpackage is installed.
    """
    try:
        spec = importlib.util.find_spec("caiman")
    except (ImportError, ValueError):  # a broken or partial 'caiman'
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    # look for the subpackage on disk: find_spec('caiman.source_extraction') would import caiman (and TensorFlow)
    return any((Path(loc) / "source_extraction" / "__init__.py").is_file() for loc in spec.submodule_search_locations)


def _require_caiman():
    """Import and return the ``caiman`` module, or raise an ImportError that says how to get it."""
    if not caiman_available():
        raise ImportError(INSTALL_HINT)
    try:
        import caiman
        from caiman.source_extraction.cnmf import cnmf  # noqa: F401 - checks the subpackage really imports
    except Exception as exc:  # noqa: BLE001 - e.g. binary incompatibility with NumPy: re-raised with advice
        raise ImportError(
            f"CaImAn is installed but failed to import ({type(exc).__name__}: {exc}). It needs numpy<2 and a "
            "matching TensorFlow; a conda environment made with `conda install -c conda-forge caiman` has them. "
            "refine(..., backend='builtin') needs nothing extra.") from exc
    return caiman


# ----------------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------------

def _seed_masks(init: Any, dims: tuple[int, int]) -> np.ndarray:
    """Seeds as bool masks (K, rows, cols) from an Initialization, bool masks (K, rows, cols) or Ain (pixels, K).

    Non-boolean seeds are binarised (``> 0``) with a warning: CaImAn cannot use soft footprints without traces.
    """
    if hasattr(init, "masks") and getattr(init, "masks", None) is not None:
        arr = np.asarray(init.masks)
        name = "init.masks"
    elif hasattr(init, "Ain"):
        arr = init.Ain
        name = "init.Ain"
    else:
        arr = init
        name = "init"
    if hasattr(arr, "toarray"):  # scipy sparse Ain
        arr = arr.toarray()
    arr = np.asarray(arr)
    rows, cols = dims
    if arr.ndim == 3:
        if arr.shape[1:] != (rows, cols):
            raise ValueError(f"{name}: masks have frame shape {arr.shape[1:]}, the movie has {(rows, cols)}")
        masks = arr
    elif arr.ndim == 2:
        if arr.shape[0] != rows * cols:
            hint = " (it looks transposed: expected (pixels, K))" if arr.shape[1] == rows * cols else ""
            raise ValueError(f"{name}: Ain has {arr.shape[0]} rows, expected rows*cols = {rows * cols} pixels "
                             f"for frames {dims}{hint}")
        masks = arr.T.reshape(arr.shape[1], cols, rows).transpose(0, 2, 1)  # column k is mask k flattened in F order
    else:
        raise ValueError(f"{name}: expected bool masks (K, rows, cols) or Ain (pixels, K), got shape {arr.shape}")
    if masks.dtype != bool:
        logger.warning("%s has dtype %s: binarising (> 0 -> True); CaImAn needs boolean seeds", name, masks.dtype)
        with np.errstate(invalid="ignore"):
            masks = masks > 0  # NaN and negative values are outside, as in the builtin backend
    if masks.shape[0] == 0:
        raise ValueError(f"{name}: no seeds (K = 0); nothing to refine")
    empty = ~masks.reshape(masks.shape[0], -1).any(axis=1)
    if empty.all():
        raise ValueError(f"{name}: all {masks.shape[0]} seeds are empty masks; nothing to refine")
    if empty.any():
        logger.warning("dropping %d empty seed(s): %s", empty.sum(), np.flatnonzero(empty).tolist()[:20])
    return masks


def _gsig(params, masks: np.ndarray) -> list[int]:
    """CaImAn's ``gSig`` (half-size of a neuron, px): refine.gSig, else half the neuron diameter, else from masks."""
    if params.refine.gSig is not None:
        return [int(v) for v in params.refine.gSig]
    return gsig_from(params.data.diameter_pixels(), masks.reshape(masks.shape[0], -1).sum(axis=1))


def gsig_from(diameter: float | None, areas: np.ndarray) -> list[int]:
    """CaImAn's ``gSig`` ([g, g], g half the neuron diameter in pixels) from the diameter, else from the median
    area of the neurons' masks (the diameter of a disc of that area); CaImAn's default [4, 4] when neither."""
    if diameter is None:
        if len(areas) == 0:
            return [4, 4]
        diameter = 2.0 * np.sqrt(np.median(areas) / np.pi)  # equivalent-disc diameter of the median mask
    g = max(1, int(round(diameter / 2.0)))
    return [g, g]


def caiman_params_dict(params: Any, dims: tuple[int, int], masks: np.ndarray,
                       n_processes: int = 1) -> dict[str, dict[str, Any]]:
    """The ``CNMFParams(params_dict=...)`` groups for a seeded run from our parameters.

    Parameters
    ----------
    params : Params, dict of groups or None
        Groups used: data (fr, decay_time, neuron_diameter), refine (p, nb, merge_thr, gSig), quality (min_SNR,
        SNR_lowest, rval_thr, rval_lowest). ``init.gSig`` (from refine.gSig or the neuron diameter) is filled in
        for completeness but does not change a seeded fit; ``init.nb`` = 0 still fits one background component;
        refine.n_iter and refine.chunk_frames (builtin backend only) have no CaImAn counterpart.
    dims : (rows, cols)
    masks : ndarray of bool (K, rows, cols)
        The seeds (their size gives ``gSig`` when neither ``refine.gSig`` nor a neuron diameter is set).
    n_processes : int

    Returns
    -------
    dict
        ``{group: {key: value}}`` in CaImAn's names.
    """
    from ..params import Params

    p = Params.coerce(params)
    order = int(p.refine.p)
    return {
        "data": {"dims": tuple(int(d) for d in dims), "fr": p.data.frame_rate(),
                 "decay_time": float(p.data.decay_time)},
        "patch": {"rf": None, "only_init": False, "n_processes": int(n_processes)},
        "preprocess": {"p": order},  # CNMF.fit restores temporal.p from preprocess.p before deconvolving
        "temporal": {"p": order},
        "init": {"K": int(masks.shape[0]), "gSig": _gsig(p, masks), "nb": int(p.refine.nb)},
        "merging": {"merge_thr": float(p.refine.merge_thr)},
        "quality": {"min_SNR": float(p.quality.min_SNR), "SNR_lowest": float(p.quality.SNR_lowest),
                    "rval_thr": float(p.quality.rval_thr), "rval_lowest": float(p.quality.rval_lowest),
                    "use_cnn": False},  # CaImAn's CNN weights are not part of its source; never assume them
    }


def _is_caiman_memmap(images: Any) -> bool:
    """True for the (T, rows, cols) view CaImAn builds from its own C-order memmap (``Yr.T`` reshaped in F order)."""
    return (isinstance(images, np.memmap) and images.ndim == 3 and images.dtype == np.float32
            and images.flags.f_contiguous and getattr(images, "filename", None) is not None)


#: bytes of the movie held at a time by the streaming checks of a memmap (non-finite values, constant pixels)
STREAM_BYTES = 64 * 2**20


def _pixel_major(imgs: np.ndarray) -> np.ndarray:
    """The (pixels, T) Fortran-pixel-order ``Yr`` behind a CaImAn memmap view (T, rows, cols), without a copy."""
    return np.reshape(imgs, (imgs.shape[0], -1), order="F").T


def _pixel_blocks(Yr: np.ndarray, pixels: np.ndarray | None = None):
    """Yield ``(pixel indices, float32 rows of Yr)`` over ``pixels`` (default all) in blocks of at most
    ``STREAM_BYTES``: one pass over the movie in bounded memory."""
    n = Yr.shape[0] if pixels is None else pixels.size
    step = max(1, STREAM_BYTES // (4 * max(1, Yr.shape[1])))
    for p0 in range(0, n, step):
        if pixels is None:
            idx = np.arange(p0, min(n, p0 + step))
            yield idx, np.asarray(Yr[p0:p0 + step], dtype=np.float32)
        else:
            idx = pixels[p0:p0 + step]
            yield idx, np.asarray(Yr[idx], dtype=np.float32)


def _all_finite(Yr: np.ndarray) -> bool:
    """Whether a (pixels, T) memmap holds no NaN or inf (read in blocks; stops at the first block with one)."""
    return all(np.isfinite(block).all() for _, block in _pixel_blocks(Yr))


def _caiman_images(images: Any, workdir: str | None):
    """Images as CaImAn wants them: ``(memmap (T, rows, cols), mmap path, temporary dir or None)``.

    A CaImAn memmap view is used as is; a C-order CaImAn memmap (path or Movie) is opened directly; anything else
    that :func:`cellfie_caiman.io.load_movie` accepts is streamed to a C-order memmap in ``workdir`` (a new
    temporary directory when None) by :func:`cellfie_caiman.io.save_memmap`, which fills NaN/inf values. A CaImAn
    memmap holding NaN or inf (CaImAn fails on them) is copied in the same way.
    """
    caiman = _require_caiman()
    from .. import io

    movie, nonfinite = None, None
    if _is_caiman_memmap(images):
        if _all_finite(_pixel_major(images)):
            return images, str(images.filename), None
        nonfinite = images.filename
    else:
        movie = io.load_movie(images)
        if movie.memmap_file is not None and movie.memmap_order == "C":  # already CaImAn's layout: no copy
            fname = str(movie.memmap_file)
            Yr, dims, T = caiman.load_memmap(fname)
            if _all_finite(Yr):
                return np.reshape(Yr.T, [T] + list(dims), order="F"), fname, None
            nonfinite = fname
    if nonfinite is not None:
        logger.info("%s holds NaN/inf values, which CaImAn cannot fit: a filled copy is written for it", nonfinite)
    tmpdir = None
    if workdir is None:
        tmpdir = workdir = tempfile.mkdtemp(prefix="cellfie_caiman_")
    fname = io.save_memmap(movie if movie is not None else io.load_movie(images), "cellfie_seeded", order="C",
                           directory=workdir)
    logger.info("wrote CaImAn memmap %s", fname)
    Yr, dims, T = caiman.load_memmap(fname)
    return np.reshape(Yr.T, [T] + list(dims), order="F"), fname, tmpdir


def live_seeds(imgs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Which seeds have a pixel whose value changes over time in a CaImAn memmap view (T, rows, cols).

    A seed whose pixels are all constant (a border zeroed by motion correction, a dead region) has no trace to fit:
    CaImAn's spatial update fails on it with a bare IndexError. Only the seeds' pixels are read, in one pass.

    Parameters
    ----------
    imgs : np.memmap (T, rows, cols), F-contiguous (CaImAn's view of a C-order memmap)
    masks : ndarray of bool (K, rows, cols)

    Returns
    -------
    ndarray of bool (K,)
    """
    ain = masks_to_ain(masks)  # (pixels, K), Fortran pixel order like Yr's rows
    pixels = np.flatnonzero(ain.any(axis=1))
    varies = np.zeros(ain.shape[0], dtype=bool)
    for idx, block in _pixel_blocks(_pixel_major(imgs), pixels):
        varies[idx] = block.max(axis=1) > block.min(axis=1)
    return (ain & varies[:, None]).any(axis=0)


def _frame_shape(images: Any) -> tuple[int, int]:
    """(rows, cols) of the movie without reading it."""
    if _is_caiman_memmap(images):
        return tuple(images.shape[1:])
    from .. import io

    return tuple(io.load_movie(images).frame_shape)


# ----------------------------------------------------------------------------------------------------------------
# seeded CNMF
# ----------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _global_numpy_seed(seed: int | None):
    """Seed NumPy's global RNG for the block and restore its previous state afterwards.

    CaImAn's seeded path draws from the global RNG: with ``nb > 1`` its background initialisation is
    ``sklearn NMF(init='nndsvda')`` with ``random_state=None`` (a randomized SVD), so two identical runs differ.
    """
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class _LogLines(io.TextIOBase):
    """A text stream that logs each complete line written to it at DEBUG level."""

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                logger.debug("%s%s", self._prefix, line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            logger.debug("%s%s", self._prefix, self._pending.rstrip())
        self._pending = ""


@contextlib.contextmanager
def _caiman_prints_to_log():
    """During the block, what CaImAn ``print``s (e.g. 'spatial support for each components given by the user')
    goes to our log at DEBUG level instead of stdout, where a run prints its summary. Our own messages go through
    logging (stderr) and progress bars write to stderr: neither is affected."""
    stream = _LogLines("CaImAn: ")
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()


def seeded_cnmf(images: Any, init: Any, params: Any = None, dview: Any = None, *, refit: bool = False,
                evaluate: bool = True, caiman_params: Mapping[str, Mapping[str, Any]] | None = None,
                workdir: str | None = None, seed: int | None = 0):
    """Run CaImAn's CNMF seeded with our masks and evaluate the components.

    Parameters
    ----------
    images : np.memmap, path, ndarray (T, rows, cols) or Movie
        The movie. A CaImAn memmap view (``np.reshape(Yr.T, [T] + dims, order='F')``) or a C-order CaImAn
        ``.mmap`` path is used directly; anything else is first written as a C-order CaImAn memmap (CaImAn's
        component evaluation needs one), in ``workdir`` or in a temporary directory that is removed afterwards.
    init : Initialization, ndarray of bool (K, rows, cols), or ndarray (rows*cols, K)
        The seeds. An Initialization's ``masks`` are used. Non-boolean seeds are binarised (``> 0``). Empty seeds
        and seeds whose pixels are all constant over time (no signal: CaImAn would fail on them) are dropped with
        a warning naming them.
    params : Params, dict of groups, or None
        Our parameters (groups data, refine, quality); see :func:`caiman_params_dict` for the ones CaImAn's seeded
        fit ignores (refine.gSig, data.neuron_diameter, refine.n_iter, refine.chunk_frames) and ``nb=0`` (one
        background component all the same, with a warning).
    dview : ipyparallel view or multiprocessing pool, optional
        CaImAn's parallel back end; None runs in this process.
    refit : bool
        Also run ``cnm.refit`` after the first fit and evaluation. CaImAn's refit keeps only the *accepted*
        components and re-runs CNMF from their (now soft, dilated) footprints, so footprints may grow beyond the
        seeds and rejected seeds disappear. Off by default, as in CaImAn's seeded-CNMF demo.
    evaluate : bool
        Run ``estimates.evaluate_components`` (SNR and spatial correlation; CaImAn's CNN is never used), filling
        ``idx_components``, ``idx_components_bad``, ``SNR_comp``, ``r_values``. With ``quality.use_cnn`` (the
        default) and an Initialization as ``init``, the networks' scores then take the CNN's place in CaImAn's
        decision (``cnn_preds``; :mod:`cellfie_caiman.cnmf.scores`), before any refit.
    caiman_params : dict of groups, optional
        CaImAn parameters applied last (``{'temporal': {'ITER': 3}}``). ``patch.rf`` must stay None. A
        ``temporal.p`` also sets ``preprocess.p`` (from which CaImAn's fit restores it) unless that is given too.
    workdir : str, optional
        Where to write the memmap of an in-memory movie; it is kept there. None: a temporary directory, removed
        when the fit is done.
    seed : int or None
        Seed of NumPy's global RNG during the fit (its previous state is restored afterwards). CaImAn's background
        initialisation with ``nb > 1`` is random (an NMF with a randomized SVD); the seed makes runs repeatable.
        None leaves the global RNG alone.

    Returns
    -------
    caiman.source_extraction.cnmf.cnmf.CNMF
        The fitted object. ``cnm.estimates`` holds A (csc, pixels x K', unit-norm F-order columns), C, S, YrA, b, f
        and the quality metrics. K' <= K: CaImAn drops components that become empty and merges overlapping ones
        whose traces correlate above ``merge_thr``; then component k is not seed k (a warning says so) and
        ``seed_index(cnm.estimates.A, masks)`` maps each component back to its seed. What CaImAn prints during
        the fit goes to the debug log (logger ``cellfie_caiman.cnmf.caiman_adapter``), not to stdout.

    Raises
    ------
    ImportError
        CaImAn is not installed (the message says how to install it, and that ``backend='builtin'`` needs nothing).
    ValueError
        Seeds that do not fit the movie, or no seed left to fit (none is non-empty, or all lie where the movie is
        constant over time).
    """
    _require_caiman()
    from caiman.source_extraction.cnmf import cnmf as cnmf_mod
    from caiman.source_extraction.cnmf.params import CNMFParams

    from ..params import Params

    params = Params.coerce(params).with_frame_rate(images)  # the caller's params left alone
    masks = _seed_masks(init, _frame_shape(images))  # check the seeds before writing any memmap
    imgs, fname, tmpdir = _caiman_images(images, workdir)
    try:
        used = masks[_seeds_to_fit(imgs, masks)]  # empty seeds and seeds on constant pixels dropped
        T, rows, cols = imgs.shape
        n_processes = 1
        if dview is not None:  # multiprocessing Pool or ipyparallel view
            n_processes = getattr(dview, "_processes", None) or (len(dview) if hasattr(dview, "__len__") else 1)
        groups = _with_caiman_params(caiman_params_dict(params, (rows, cols), used, n_processes=n_processes),
                                     caiman_params)
        logger.info("seeded CNMF: %d seeds, movie %s, gSig %s, p %d, nb %d", used.shape[0], imgs.shape,
                    groups["init"]["gSig"], groups["temporal"]["p"], groups["init"]["nb"])
        with _caiman_prints_to_log():
            opts = CNMFParams(params_dict=groups)
            cnm = cnmf_mod.CNMF(n_processes, params=opts, dview=dview, Ain=masks_to_ain(used))
            with _global_numpy_seed(seed):
                cnm.fit(imgs)
                if evaluate or refit:
                    cnm.estimates.evaluate_components(imgs, cnm.params, dview=dview)
                    _use_scores(cnm.estimates, init, (rows, cols), params)
                if refit:
                    cnm = cnm.refit(imgs, dview=dview)
                    if evaluate:
                        cnm.estimates.evaluate_components(imgs, cnm.params, dview=dview)
                        _use_scores(cnm.estimates, init, (rows, cols), params)
        from .seeds import remap_message

        merged = getattr(cnm.estimates, "merged_ROIs", None)
        remapped = remap_message(masks.shape[0], cnm.estimates.A.shape[1], 0 if merged is None else len(merged))
        if remapped:
            logger.warning(remapped)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if tmpdir is not None:
        cnm.mmap_file = None  # the temporary memmap is gone
    return cnm


def _seeds_to_fit(imgs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Which seeds CaImAn can fit (bool (K,)): not empty (:func:`_seed_masks` has warned about those) and with a
    pixel that changes over time (:func:`live_seeds`; the others are named in a warning). ValueError when none."""
    nonempty = masks.reshape(masks.shape[0], -1).any(axis=1)
    fit = nonempty & live_seeds(imgs, masks)
    if not fit.any():
        raise ValueError(f"none of the {int(nonempty.sum())} non-empty seeds has a pixel that changes over time "
                         "(the movie is constant there, e.g. a border zeroed by motion correction); nothing to refine")
    dead = nonempty & ~fit
    if dead.any():
        logger.warning("dropping %d seed(s) whose pixels are constant over time (no signal to fit, e.g. a border "
                       "zeroed by motion correction): %s", int(dead.sum()), np.flatnonzero(dead).tolist()[:20])
    return fit


def _with_caiman_params(groups: dict[str, dict[str, Any]], caiman_params: Mapping[str, Mapping[str, Any]] | None
                        ) -> dict[str, dict[str, Any]]:
    """``groups`` updated with the caller's ``caiman_params``, checked for what a seeded run can honour.

    A ``temporal.p`` also sets ``preprocess.p`` (CaImAn's fit restores ``temporal.p`` from it) unless
    ``caiman_params`` sets that too; ``patch.rf`` must stay None; ``init.nb`` = 0 gets a warning (CaImAn's seeded
    start always fits one background component).
    """
    caiman_params = caiman_params or {}
    for group, values in caiman_params.items():
        groups.setdefault(group, {}).update(values)
    if "p" in caiman_params.get("temporal", {}) and "p" not in caiman_params.get("preprocess", {}):
        groups["preprocess"]["p"] = groups["temporal"]["p"]
    if groups["patch"].get("rf") is not None:
        raise ValueError("caiman_params: patch.rf must be None for seeded CNMF (CaImAn ignores Ain with patches)")
    if groups["init"].get("nb", 1) < 1:
        logger.warning("CaImAn's seeded CNMF fits at least one background component: refine.nb=0 gives nb=1 here; "
                       "nb=0 needs backend='builtin'")
    return groups


def _use_scores(estimates, init, dims: tuple[int, int], params) -> None:
    """``quality.use_cnn``: CaImAn's decision again with the networks' scores as its ``cnn_preds``, in place."""
    from ..params import Params
    from .scores import apply_scores

    apply_scores(estimates, init, dims, Params.coerce(params).quality)


def seed_index(A: Any, masks: np.ndarray) -> np.ndarray:
    """For each footprint, the seed it is most similar to (cosine similarity of footprint and mask).

    The cosine ``a . m / (||a|| ||m||)`` rather than the share of ``a`` inside ``m`` tells apart overlapping seeds:
    a footprint centred on one of two overlapping masks lies mostly inside both.

    Parameters
    ----------
    A : scipy.sparse or ndarray (rows*cols, K')
        Footprints, Fortran pixel order (CaImAn's ``estimates.A``).
    masks : ndarray of bool (K, rows, cols)
        The seeds.

    Returns
    -------
    ndarray of int (K',)
        Index into ``masks``; -1 for a footprint that touches no seed.
    """
    import scipy.sparse

    ain = scipy.sparse.csc_matrix(masks_to_ain(masks), dtype=np.float64)
    A = scipy.sparse.csc_matrix(A, dtype=np.float64)
    if A.shape[0] != ain.shape[0]:
        raise ValueError(f"A has {A.shape[0]} pixels, the masks {ain.shape[0]}")
    if A.shape[1] == 0:
        return np.zeros(0, dtype=int)
    overlap = (ain.T @ A).toarray()  # (K, K'): sum of a over each mask
    a_norm = np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())
    m_norm = np.sqrt(np.asarray(ain.sum(axis=0)).ravel())
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = overlap / np.outer(m_norm, a_norm)
    cos = np.nan_to_num(cos, nan=0.0, posinf=0.0)
    idx = np.argmax(cos, axis=0).astype(int)
    idx[cos.max(axis=0) <= 0] = -1
    return idx


# ----------------------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------------------

_ARRAY_FIELDS = ("C", "S", "YrA", "f", "b", "sn", "g", "F_dff", "idx_components", "idx_components_bad",
                 "SNR_comp", "r_values", "cnn_preds")
_OBJECT_FIELDS = ("bl", "c1", "neurons_sn", "lam")  # object arrays in CaImAn; float64 here


def _as_float_array(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray([np.nan if v is None else float(v) for v in np.ravel(np.asarray(values, dtype=object))])


def _ar_coefficients(g: Any) -> np.ndarray:
    """AR coefficients as a float (K, p) array from CaImAn's per-trace list/object array (p = 0 gives (K, 0))."""
    rows = [np.atleast_1d(np.asarray(x if x is not None else [], dtype=np.float64)).ravel() for x in g]
    p = max((r.size for r in rows), default=0)
    out = np.full((len(rows), p), np.nan)
    for k, r in enumerate(rows):
        out[k, : r.size] = r
    return out


def caiman_fields(cnm: Any) -> dict[str, Any]:
    """CaImAn's estimates as plain arrays, under CaImAn's field names.

    Parameters
    ----------
    cnm : CNMF or caiman Estimates

    Returns
    -------
    dict
        ``A`` (scipy csc, pixels x K), ``C``, ``S``, ``YrA`` (K x T), ``b`` (pixels x nb), ``f`` (nb x T), ``sn``,
        ``g``, ``bl``, ``c1``, ``neurons_sn``, ``lam`` (float64, NaN where CaImAn has None), quality metrics,
        ``dims``; only the fields CaImAn has set.
    """
    import scipy.sparse

    est = getattr(cnm, "estimates", cnm)
    out: dict[str, Any] = {}
    if est.A is not None:
        out["A"] = scipy.sparse.csc_matrix(est.A)
    for name in _ARRAY_FIELDS:
        value = getattr(est, name, None)
        if value is None:
            continue
        if scipy.sparse.issparse(value):
            value = value.toarray()
        if name == "g":  # CaImAn: an object array (K,) of per-trace AR coefficient arrays
            value = _ar_coefficients(value)
        value = np.asarray(value)
        if name == "cnn_preds" and value.size == 0:  # CaImAn's placeholder when the CNN was not used
            continue
        out[name] = value
    for name in _OBJECT_FIELDS:
        value = _as_float_array(getattr(est, name, None))
        if value is not None:
            out[name] = value
    dims = getattr(est, "dims", None) or getattr(cnm, "dims", None)
    if dims is not None:
        out["dims"] = tuple(int(d) for d in dims)
    return out


def estimates_from_caiman(cnm: Any, params: Any = None):
    """Our :class:`cellfie_caiman.cnmf.estimates.Estimates` from a fitted CaImAn CNMF (or its ``estimates``).

    Parameters
    ----------
    cnm : caiman CNMF or caiman Estimates
    params : Params, dict of groups, or None
        Our parameters, recorded in the result (``Estimates.params``) when given.

    Returns
    -------
    cellfie_caiman.cnmf.estimates.Estimates
        The fields of :func:`caiman_fields` that our Estimates has (CaImAn's names and shapes).
    """
    import inspect

    from .estimates import Estimates

    fields = caiman_fields(cnm)
    if params is not None:
        from ..params import Params

        fields["params"] = Params.coerce(params).to_dict()
    accepted = inspect.signature(Estimates).parameters
    dropped = sorted(set(fields) - set(accepted))
    if dropped:
        logger.debug("CaImAn fields not kept in Estimates: %s", dropped)
    return Estimates(**{k: v for k, v in fields.items() if k in accepted})
