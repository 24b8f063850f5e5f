"""The result of a refinement, with CaImAn's field names and shapes, and its HDF5 and NWB files.

The HDF5 layout is CaImAn's (reference section 7) so that ``caiman.source_extraction.cnmf.cnmf.load_CNMF`` reads it:
root datasets ``dims``, ``skip_refinement``, ``remove_very_bad_comps``, ``dview`` ('NoneType'); ``/estimates/<field>``
(sparse ``A`` as a group ``data/indices/indptr/shape`` in CSC, None as the string 'NoneType');
``/params/<group>/<key>`` with CaImAn's group names (strings as group attributes).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from .._files import atomic_path

logger = logging.getLogger(__name__)

_ARRAY_FIELDS = ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "lam", "SNR_comp", "r_values",
                 "cnn_preds", "idx_components", "idx_components_bad", "Cn")
_STRING_FLOATS = ("bl", "c1", "neurons_sn", "lam")


@dataclass
class Estimates:
    """Spatial footprints, traces and quality metrics of K components in a (rows, cols) field of view over T frames.

    Attributes
    ----------
    A : scipy.sparse.csc_matrix (rows*cols, K) float64
        Footprints, pixels in Fortran order (pixel p = i + j*rows), unit L2 norm per column.
    C : ndarray (K, T)
        Denoised calcium traces including the baseline ``bl`` (units: fluorescence x ||a_k||).
    S : ndarray (K, T)
        Deconvolved activity.
    YrA : ndarray (K, T)
        Residual traces; ``C + YrA`` is the raw (noisy) trace of each component.
    b : ndarray (rows*cols, nb)
        Spatial background, unit-norm columns, Fortran pixel order.
    f : ndarray (nb, T)
        Temporal background.
    sn : ndarray (rows*cols,) float32
        Per-pixel noise standard deviation (Fortran order).
    g : ndarray (K, p)
        AR coefficients of each trace.
    bl, c1, neurons_sn, lam : ndarray (K,)
        Baseline, initial calcium value, trace noise and sparsity penalty of each trace.
    SNR_comp, r_values : ndarray (K,)
        Quality metrics (CaImAn's definitions). From CaImAn, ``SNR_comp`` may be inf and ``r_values`` NaN; the
        files keep them (:meth:`save`, :meth:`to_nwb`).
    cnn_preds : ndarray (K,) or None
        With ``quality.use_cnn``: the detection score of the seed mask that overlaps each component most (IoU; 0
        when none), in the place of CaImAn's CNN classifier.
    idx_components, idx_components_bad : ndarray of int
        Accepted / rejected component indices.
    Cn : ndarray (rows, cols) or None
        Local correlation image of the movie.
    dims : tuple (rows, cols)
    params : dict or None
        The cellfie parameters used (``Params.to_dict()``).
    provenance : dict or None
        What produced the estimates (:func:`cellfie_caiman.provenance.provenance`), set by ``run``.
    """

    A: scipy.sparse.csc_matrix | None = None
    C: np.ndarray | None = None
    S: np.ndarray | None = None
    YrA: np.ndarray | None = None
    b: np.ndarray | None = None
    f: np.ndarray | None = None
    sn: np.ndarray | None = None
    g: np.ndarray | None = None
    bl: np.ndarray | None = None
    c1: np.ndarray | None = None
    neurons_sn: np.ndarray | None = None
    lam: np.ndarray | None = None
    SNR_comp: np.ndarray | None = None
    r_values: np.ndarray | None = None
    cnn_preds: np.ndarray | None = None
    idx_components: np.ndarray | None = None
    idx_components_bad: np.ndarray | None = None
    Cn: np.ndarray | None = None
    dims: tuple[int, int] | None = None
    params: dict[str, Any] | None = field(default=None, repr=False)
    provenance: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def R(self) -> np.ndarray | None:
        """Alias of ``YrA`` (CaImAn's name for the residuals)."""
        return self.YrA

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return 0 if self.A is None else int(self.A.shape[1])

    def masks(self, threshold: float = 0.2) -> np.ndarray:
        """Binary masks: pixels at or above ``threshold`` times each footprint's maximum.

        Every such pixel is kept, connected to the peak or not: this is not the benchmark binarisation of
        ``rois.json`` and :func:`cellfie_caiman.rois.read_rois` (:func:`cellfie_caiman.masks.footprints_to_masks`).

        Parameters
        ----------
        threshold : float
            Fraction of each footprint's maximum (0..1).

        Returns
        -------
        ndarray, bool, shape (K, rows, cols)
            A footprint without a positive value gives an empty mask.

        Raises
        ------
        ValueError
            If ``A`` or ``dims`` is not set.
        """
        if self.A is None or self.dims is None:
            raise ValueError("Estimates has no footprints (A) or dims")
        A = self.A.tocsc()
        K = A.shape[1]
        out = np.zeros((K,) + tuple(self.dims), dtype=bool)
        for k in range(K):
            col = A[:, k].toarray().ravel()
            if col.max() > 0:
                out[k] = (col >= threshold * col.max()).reshape(self.dims, order="F")
        return out

    def footprints(self) -> np.ndarray:
        """Dense footprints, ndarray float32 of shape (K, rows, cols) (needs ``A`` and ``dims``: ``ValueError``
        otherwise)."""
        if self.A is None or self.dims is None:
            raise ValueError("Estimates has no footprints (A) or dims")
        A = self.A.astype(np.float32).toarray()  # never a float64 dense copy: K x pixels x 8 bytes
        return A.T.reshape((-1, self.dims[1], self.dims[0])).transpose(0, 2, 1)

    # ----------------------------------------------------------------------------------------------------- HDF5
    def save(self, path: str | os.PathLike, *, mmap_file: str | os.PathLike | None = None) -> Path:
        """Write CaImAn's HDF5 layout (readable by ``caiman...cnmf.load_CNMF`` and :func:`load_estimates`).

        The file is written atomically. Non-finite values are kept as they are (HDF5 stores inf and NaN: CaImAn's
        ``SNR_comp`` is inf for a transient over ~116 noise sigmas, its ``r_values`` NaN for a flat footprint); in
        the JSON of the ``cellfie_params`` and ``cellfie_provenance`` attributes they are ``null`` (strict JSON).

        Parameters
        ----------
        path : str or path
            Output file, ending in ``.hdf5`` or ``.h5``.
        mmap_file : str or path, optional
            The movie the estimates come from, stored as CaImAn's ``mmap_file`` (CaImAn's ``refit`` needs the
            entry; None is stored as CaImAn's 'NoneType').

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        ValueError
            If ``path`` does not end in ``.hdf5`` or ``.h5``.
        """
        import h5py

        from ..outputs import json_text

        path = Path(path)
        if path.suffix.lower() not in (".hdf5", ".h5"):
            raise ValueError(f"results file must end in .hdf5 or .h5 (CaImAn's load_CNMF needs it), got {path}")
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as h5:
                dims = np.asarray(self.dims if self.dims is not None else (), dtype=np.int64)
                h5["dims"] = dims
                h5["skip_refinement"] = False
                h5["remove_very_bad_comps"] = False
                h5["dview"] = "NoneType"
                if mmap_file is None:
                    h5["mmap_file"] = "NoneType"
                else:  # a string: an attribute, as CaImAn (>= 1.9.9) writes them and reads them back as str
                    h5.attrs["mmap_file"] = os.fspath(mmap_file)
                h5.attrs["producer"] = "cellfie_caiman"
                if self.params is not None:  # strict JSON, as provenance.json: no Infinity / NaN
                    h5.attrs["cellfie_params"] = json_text(self.params)
                if self.provenance is not None:
                    h5.attrs["cellfie_provenance"] = json_text(self.provenance)
                est = h5.create_group("estimates")
                _write_sparse(est, "A", self.A)
                for name in _ARRAY_FIELDS:
                    value = getattr(self, name)
                    if value is None:
                        est[name] = "NoneType"
                    else:
                        est[name] = np.asarray(value)
                est["R"] = "NoneType" if self.YrA is None else np.asarray(self.YrA)
                est["dims"] = dims
                _write_caiman_params(h5.create_group("params"), self)
        return path

    # ------------------------------------------------------------------------------------------------------ NWB
    def to_nwb(self, path: str | os.PathLike, *, fr: float | None = None, session_description: str = "cellfie_caiman",
               identifier: str | None = None, session_start_time: datetime.datetime | None = None,
               indicator: str = "GCaMP",
               location: str = "unknown", excitation_lambda: float = 920.0, emission_lambda: float = 510.0,
               raw_data_file: str | os.PathLike | None = None, raw_data_dataset: str | None = None,
               subject: Any = None,
               experimenter: str | list[str] | None = None, lab: str | None = None, institution: str | None = None,
               experiment_description: str | None = None, keywords: list[str] | None = None,
               relative_to: str | os.PathLike | None = None) -> Path:
        """Write the footprints and traces to an NWB file (pynwb; install the ``nwb`` extra).

        Layout (as CaImAn's ``save_NWB``): processing module ``ophys`` with ``ImageSegmentation/PlaneSegmentation``
        (``image_mask`` (K + nb, rows, cols): the footprints, then the background images; columns ``r``, ``snr``
        (NaN on the background rows, as CaImAn writes them, and where the components were not evaluated), ``cnn``
        when ``cnn_preds`` is set (NaN on the background rows) and, when ``idx_components`` is set, ``keep``),
        ``Fluorescence`` holding the ``RoiResponseSeries`` (C), ``Deconvolved`` (S) and
        ``Background_Fluorescence_Response`` (f, its rows the background images), a ``residuals`` TimeSeries (YrA),
        the correlation image ``Cn`` (when set) as ``SummaryImages/local_correlations``, and an external
        ``TwoPhotonSeries`` acquisition naming ``raw_data_file`` by a path relative to the NWB file's folder.
        Written atomically.

        The external ``TwoPhotonSeries`` gives its frame times as ``timestamps`` (frame / ``fr``), not as a rate:
        pynwb >= 4 requires ``num_samples`` beside a rate, a scalar unsigned dataset that older readers (pynwb 2.x
        with hdmf 3, as in CaImAn 1.12's environments) cannot read, so the whole file would fail to open there.

        Each ``image_mask`` is the footprint as a (rows, cols) image, as NWB defines it and other NWB tools read it.
        CaImAn's ``save_NWB`` stores instead each column of ``A`` (column-major pixel order) reshaped row-major,
        and its ``load_CNMF`` undoes that: it reads this file's traces exactly, but its ``A`` gets each footprint's
        pixels in row-major order (on a square field, the transposed footprints). To reload results in CaImAn use
        ``results.hdf5`` (:meth:`save`); :func:`cellfie_caiman.rois.read_rois` reads both kinds of NWB file.

        The ``image_mask`` images (float32, one per component and per background component) are written piece by
        piece, each footprint as its bounding box, in compressed chunks that HDF5 stores only where a footprint or
        a background image is: memory and file size follow the footprints' pixels, not K x rows x cols.

        Parameters
        ----------
        path : str or Path, ending in .nwb
        fr : float, optional
            Frame rate in Hz (default: ``params['data']['fr']``, or 30 when ``params`` has no ``fr`` entry).
        session_description : str
            NWB ``session_description``.
        identifier : str, optional
            NWB ``identifier`` (default: a random UUID, hex).
        session_start_time : datetime.datetime, optional
            Timezone-aware start of the recording session (default: now, UTC, i.e. the time of writing: give the
            recording's, as ``cellfie-caiman run --nwb`` does for an NWB movie).
        indicator, location : str
            Of the NWB ``ImagingPlane``.
        excitation_lambda, emission_lambda : float
            Wavelengths in nm (two-photon excitation, and the optical channel's emission).
        raw_data_file : str or Path, optional
            The movie's file, named by the external ``TwoPhotonSeries`` ("unknown" when None). An absolute path is
            written relative to ``relative_to`` (NWB's and DANDI's best practice: the results and the movie can then
            be moved or shared together), or as it is, with a logged warning, where no relative path leads there
            (Windows: another drive); a relative path is written as given, i.e. taken as relative to the folder
            the NWB file is read from, as NWB reads it (not to the working folder).
        raw_data_dataset : str, optional
            Where the movie is inside ``raw_data_file`` (an HDF5 dataset or an NWB series' ``data``, e.g.
            ``processing/ophys/MotionCorrection/plane0/corrected/data``), named in the series' description.
        relative_to : str or Path, optional
            The folder the NWB file will be read from, that an absolute ``raw_data_file`` is written relative to
            (default: the folder of ``path``; give it when the file is written elsewhere and moved there later).
        subject : pynwb.file.Subject or dict, optional
            The animal (a dict holds ``Subject``'s arguments, e.g. ``subject_id``, ``species``, ``sex``, ``age``).
            DANDI requires one; without it the file has no ``/general/subject``.
        experimenter : str or list of str, optional
            Who recorded the session, each name ``'Last, First'`` (NWB's and DANDI's form).
        lab, institution : str, optional
            Where the session was recorded.
        experiment_description : str, optional
            What the experiment was about.
        keywords : list of str, optional
            Terms to search the file by.
        Without them the file has none of these (NWB's best practice, and nwbinspector, want the first four).

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        ValueError
            If ``path`` does not end in ``.nwb``, or ``A``, ``C`` or ``dims`` is not set.
        TypeError
            If ``subject`` is neither a ``pynwb.file.Subject`` nor a dict of its arguments.
        ImportError
            If pynwb is not installed.
        """
        from .nwb_writer import write_nwb

        return write_nwb(self, path, fr=fr, session_description=session_description, identifier=identifier,
                         session_start_time=session_start_time, indicator=indicator, location=location,
                         excitation_lambda=excitation_lambda, emission_lambda=emission_lambda,
                         raw_data_file=raw_data_file, raw_data_dataset=raw_data_dataset, subject=subject,
                         experimenter=experimenter, lab=lab, institution=institution,
                         experiment_description=experiment_description, keywords=keywords, relative_to=relative_to)




def _write_sparse(group, name: str, A) -> None:
    if A is None:
        group[name] = "NoneType"
        return
    A = scipy.sparse.csc_matrix(A)
    sub = group.create_group(name)
    sub["data"] = A.data
    sub["indices"] = A.indices
    sub["indptr"] = A.indptr
    sub["shape"] = np.asarray(A.shape, dtype=np.int64)


def _write_caiman_params(group, est: Estimates) -> None:
    """Write the parameters under CaImAn's group and key names (only keys CaImAn knows)."""
    p = est.params or {}
    data, refine, quality = p.get("data") or {}, p.get("refine") or {}, p.get("quality") or {}
    groups: dict[str, dict[str, Any]] = {
        "data": {"dims": est.dims, "fr": data.get("fr") or 30.0, "decay_time": data.get("decay_time", 0.4)},
        "init": {"nb": refine.get("nb", 1), "gSig": refine.get("gSig") or _gsig_of(est, data)},
        "patch": {"rf": None, "only_init": False},
        "temporal": {"p": refine.get("p", 1)},
        "merging": {"merge_thr": refine.get("merge_thr", 0.8)},
        "quality": {"min_SNR": quality.get("min_SNR", 2.5), "SNR_lowest": quality.get("SNR_lowest", 0.5),
                    "rval_thr": quality.get("rval_thr", 0.8), "rval_lowest": quality.get("rval_lowest", -1.0),
                    "use_cnn": False},
    }
    for gname, values in groups.items():
        g = group.create_group(gname)
        for key, value in values.items():
            if value is None:
                g[key] = "NoneType"
            elif isinstance(value, str):
                g.attrs[key] = value
            else:
                g[key] = np.asarray(value)


def _gsig_of(est: Estimates, data: dict) -> list[int]:
    """The ``gSig`` CaImAn would use for these components when none was set: half the neuron diameter given in
    ``data`` (pixels, or microns with a pixel size), else from the footprints' areas (pixels above 0.2 of each
    footprint's peak, the benchmark binarisation). CaImAn's own functions need a value; 'NoneType' breaks them.

    The diameter is :meth:`cellfie_caiman.params.DataParams.diameter_pixels`'s (the rule of a run), from the
    settings ``data`` gives; a pixel size or soma size of 0 or None counts as not given."""
    import scipy.sparse

    from ..masks import FOOTPRINT_THRESHOLD
    from ..params import DataParams
    from .caiman_adapter import gsig_from

    given = {k: data[k] for k in ("pixel_size", "soma_diameter_um") if data.get(k)}
    if data.get("neuron_diameter") is not None:
        given["neuron_diameter"] = data["neuron_diameter"]
    diameter = DataParams(**given).diameter_pixels()
    areas = np.zeros(0)
    if diameter is None and est.A is not None and est.A.shape[1]:
        A = scipy.sparse.csc_matrix(est.A)
        areas = np.array([np.sum(col > FOOTPRINT_THRESHOLD * col.max()) if col.size else 0
                          for col in np.split(A.data, A.indptr[1:-1])])
    return gsig_from(diameter, areas)


def load_estimates(path: str | os.PathLike) -> Estimates:
    """Read an :class:`Estimates` from a results file written by :meth:`Estimates.save` or CaImAn's ``cnm.save``.

    CaImAn's quirks are undone: ``bl``, ``c1``, ``neurons_sn`` and ``lam`` stored as byte strings become floats,
    'NoneType' becomes None, ``dims`` a tuple.

    Parameters
    ----------
    path : str or path
        An HDF5 results file (``results.hdf5`` of a run, or CaImAn's).

    Returns
    -------
    Estimates
        With ``params`` and ``provenance`` when the file was written by cellfie_caiman.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not an HDF5 file or has no ``/estimates`` group.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file not found: {path}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not an HDF5 file: {exc}") from exc
    with h5:
        if "estimates" not in h5:
            raise ValueError(f"{path} has no /estimates group: not a CaImAn/cellfie results file")
        est = h5["estimates"]
        values: dict[str, Any] = {}
        for name in [f.name for f in dataclasses.fields(Estimates)]:
            if name in ("params", "A") or name not in est:
                continue
            values[name] = _read_value(est[name], name)
        if "A" in est:
            item = est["A"]
            if isinstance(item, h5py.Group):
                values["A"] = scipy.sparse.csc_matrix((item["data"][()], item["indices"][()], item["indptr"][()]),
                                                      shape=tuple(int(s) for s in item["shape"][()]))
        dims = values.get("dims")
        if dims is None and "dims" in h5:
            dims = _read_value(h5["dims"], "dims")
        values["dims"] = tuple(int(d) for d in dims) if dims is not None and len(dims) else None
        if "cellfie_params" in h5.attrs:
            values["params"] = json.loads(h5.attrs["cellfie_params"])
        if "cellfie_provenance" in h5.attrs:
            values["provenance"] = json.loads(h5.attrs["cellfie_provenance"])
    return Estimates(**values)


def _read_value(item, name: str):
    val = item[()]
    if isinstance(val, (bytes, str)) and (val == b"NoneType" or val == "NoneType"):
        return None
    if name in _STRING_FLOATS and isinstance(val, np.ndarray) and val.dtype.kind in "SOU":
        return np.array([float(v) for v in val])
    if name in ("idx_components", "idx_components_bad") and isinstance(val, np.ndarray):
        return val.astype(np.int64)
    return val
