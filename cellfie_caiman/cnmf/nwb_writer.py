"""CNMF estimates written as an NWB file, in the layout of CaImAn's ``save_NWB`` (see :meth:`Estimates.to_nwb
<cellfie_caiman.cnmf.estimates.Estimates.to_nwb>`, which documents the layout): the session, the imaging plane,
the movie as an external acquisition, the ROI table (footprints and background images), the traces, the
correlation image.
"""
from __future__ import annotations

import datetime
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from .._files import atomic_path

logger = logging.getLogger(__name__)


def write_nwb(est, path: str | os.PathLike, *, fr: float | None, session_description: str, identifier: str | None,
              session_start_time: datetime.datetime | None, indicator: str, location: str, excitation_lambda: float,
              emission_lambda: float, raw_data_file: str | os.PathLike | None, raw_data_dataset: str | None,
              subject: Any, experimenter: str | list[str] | None, lab: str | None, institution: str | None,
              experiment_description: str | None, keywords: list[str] | None,
              relative_to: str | os.PathLike | None) -> Path:
    """Write ``est`` (:class:`~cellfie_caiman.cnmf.estimates.Estimates`) to ``path``: what
    :meth:`Estimates.to_nwb <cellfie_caiman.cnmf.estimates.Estimates.to_nwb>` does (its signature holds the
    defaults, every one passed here; its docstring documents the arguments, the layout and the errors)."""
    try:
        import pynwb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("writing NWB needs pynwb: pip install 'cellfie-caiman[nwb]'") from exc

    path = Path(path)
    if path.suffix.lower() != ".nwb":
        raise ValueError(f"NWB file name must end in .nwb, got {path}")
    if est.A is None or est.C is None or est.dims is None:
        raise ValueError("Estimates needs A, C and dims to be written to NWB")
    if fr is None:
        fr = float(((est.params or {}).get("data") or {}).get("fr") or 30.0)  # None when never set
    if session_start_time is None:
        session_start_time = datetime.datetime.now(datetime.timezone.utc)
    nwb = pynwb.NWBFile(session_description=session_description, identifier=identifier or uuid.uuid4().hex,
                        session_start_time=session_start_time, subject=_nwb_subject(subject),
                        experimenter=experimenter, lab=lab, institution=institution,
                        experiment_description=experiment_description,
                        keywords=None if keywords is None else list(keywords))
    plane = _imaging_plane(nwb, float(fr), indicator, location, excitation_lambda, emission_lambda)
    external = _external_file(raw_data_file, path.parent if relative_to is None else relative_to)
    _add_movie(nwb, plane, int(np.shape(est.C)[1]), float(fr), external, raw_data_dataset)
    mod = nwb.create_processing_module(name="ophys", description="cellfie_caiman estimates")
    nb = est.b.shape[1] if est.b is not None and est.f is not None else 0
    ps = _add_rois(mod, est, plane, nb)
    _add_traces(mod, est, ps, nb, float(fr))
    _add_correlation_image(mod, est)
    with atomic_path(path) as tmp:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
    return path


def _imaging_plane(nwb, fr: float, indicator: str, location: str, excitation_lambda: float,
                   emission_lambda: float):
    """The file's device, optical channel and ``ImagingPlane`` (imaged at ``fr`` Hz)."""
    from pynwb.ophys import OpticalChannel

    device = nwb.create_device(name="imaging_device", description="the microscope that recorded the movie")
    channel = OpticalChannel(name="OpticalChannel", description="main optical channel",
                             emission_lambda=emission_lambda)
    return nwb.create_imaging_plane(name="ImagingPlane", optical_channel=channel, description="imaging plane",
                                    device=device, excitation_lambda=excitation_lambda, imaging_rate=fr,
                                    indicator=indicator, location=location)


def _add_movie(nwb, plane, n_frames: int, fr: float, external: str, dataset: str | None) -> None:
    """The movie as an external ``TwoPhotonSeries`` acquisition: CaImAn's NWB reader needs it (it takes the
    movie's file name from it). Frame times as timestamps, not a rate (see ``to_nwb``: pynwb 2 reads them)."""
    from pynwb.ophys import TwoPhotonSeries

    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", imaging_plane=plane, external_file=[external],
                                        format="external", timestamps=np.arange(n_frames) / fr, starting_frame=[0],
                                        description="the movie, in its external file" + (
                                            f" (dataset '{dataset}' in it)" if dataset else "")))


def _per_row(values, K: int, nb: int) -> np.ndarray:
    """A component metric (K,) for the K + nb rows: NaN where it is not defined, on the background rows (as
    CaImAn's save_NWB writes them) and everywhere when the components were not evaluated (``values`` None)."""
    out = np.full(K + nb, np.nan)
    if values is not None:
        out[:K] = np.asarray(values, dtype=float)
    return out


def _add_rois(mod, est, plane, nb: int):
    """The ROI table (``ImageSegmentation/PlaneSegmentation``): the K footprints, then the ``nb`` background
    images, with CaImAn's columns ``r``, ``snr``, ``cnn`` (when scored) and ``keep`` (when evaluated)."""
    from hdmf.common import VectorData
    from pynwb.ophys import ImageSegmentation, PlaneSegmentation

    seg = ImageSegmentation()
    mod.add(seg)
    K = est.n_components
    columns = [VectorData(name="image_mask", description="Image masks for each ROI",
                          data=_image_mask_data(est.A, est.b if nb else None, est.dims)),
               VectorData(name="r", description="space correlation (r_values)", data=_per_row(est.r_values, K, nb)),
               VectorData(name="snr", description="signal to noise ratio (SNR_comp)",
                          data=_per_row(est.SNR_comp, K, nb))]
    if est.cnn_preds is not None:  # as CaImAn: a 'cnn' column (its load_CNMF reads it back as cnn_preds)
        columns.append(VectorData(name="cnn", description="classifier score (cnn_preds)",
                                  data=_per_row(est.cnn_preds, K, nb)))
    if est.idx_components is not None:  # as CaImAn: a 'keep' column only once components were evaluated
        keep = np.zeros(K + nb, dtype=bool)
        keep[np.asarray(est.idx_components, dtype=int)] = True
        columns.append(VectorData(name="keep", description="in idx_components", data=keep))
    ps = PlaneSegmentation(name="PlaneSegmentation", description="CNMF_ROIs", imaging_plane=plane,
                           id=list(range(K + nb)), columns=columns)
    seg.add_plane_segmentation(ps)
    return ps


def _add_traces(mod, est, ps, nb: int, fr: float) -> None:
    """``Fluorescence`` (C as ``RoiResponseSeries``, S as ``Deconvolved``, f as
    ``Background_Fluorescence_Response``, each on its rows of ``ps``) and the ``residuals`` (YrA)."""
    import pynwb
    from pynwb.ophys import Fluorescence, RoiResponseSeries

    fl = Fluorescence()
    mod.add(fl)
    K = est.n_components
    rois = ps.create_roi_table_region(description="all ROIs", region=list(range(K)))
    fl.add_roi_response_series(RoiResponseSeries(name="RoiResponseSeries", data=np.asarray(est.C).T, rois=rois,
                                                 unit="a.u.", rate=fr, description=_NWB_DESCRIPTIONS["C"]))
    if est.S is not None:
        fl.add_roi_response_series(RoiResponseSeries(name="Deconvolved", data=np.asarray(est.S).T, rois=rois,
                                                     unit="a.u.", rate=fr, description=_NWB_DESCRIPTIONS["S"]))
    if nb:
        brois = ps.create_roi_table_region(description="background", region=list(range(K, K + nb)))
        fl.add_roi_response_series(RoiResponseSeries(name="Background_Fluorescence_Response",
                                                     data=np.asarray(est.f).T, rois=brois, unit="a.u.", rate=fr,
                                                     description=_NWB_DESCRIPTIONS["f"]))
    if est.YrA is not None:
        mod.add(pynwb.base.TimeSeries(name="residuals", data=np.asarray(est.YrA).T, unit="a.u.", rate=fr,
                                      description=_NWB_DESCRIPTIONS["YrA"]))


def _add_correlation_image(mod, est) -> None:
    """The correlation image ``Cn`` (when set, of the field's shape) as ``SummaryImages/local_correlations``."""
    import pynwb

    if est.Cn is None or np.shape(est.Cn) != tuple(est.dims):
        return
    # not named 'summary_images': CaImAn 1.12's load_CNMF tests `'Cn' in` a container of that name, which pynwb
    # answers by indexing it with integers, and the whole file fails to load
    images = pynwb.base.Images(name=NWB_SUMMARY_IMAGES, description="summary images of the movie")
    images.add_image(pynwb.image.GrayscaleImage(name="local_correlations", data=np.asarray(est.Cn, dtype=np.float32),
                                                description="local correlation image (Cn), (rows, cols)"))
    mod.add(images)


#: Name of the NWB ``Images`` container of the correlation image (``ophys/SummaryImages/local_correlations``).
NWB_SUMMARY_IMAGES = "SummaryImages"
#: chunks of the NWB ``image_mask`` dataset: one image, 64 x 64 pixels (16 kB)
_MASK_CHUNK = 64


def _external_file(raw_data_file: str | os.PathLike | None, folder: str | os.PathLike) -> str:
    """The path an NWB ``external_file`` names the movie ``raw_data_file`` by, read from ``folder``.

    Parameters
    ----------
    raw_data_file : str, Path or None
        The movie's file. Absolute: made relative to ``folder`` (both with their folders' symbolic links resolved,
        so that ``..`` leads where it says; '/' between the parts on every system), or kept absolute, with a
        logged warning, where no relative path exists (Windows: another drive). Relative: kept as it is (already
        relative to ``folder``). None or empty: ``"unknown"``.
    folder : str or Path
        The folder of the NWB file (once in its place).

    Returns
    -------
    str
    """
    if not raw_data_file:
        return "unknown"
    raw = os.fspath(raw_data_file)
    if not os.path.isabs(raw):
        return raw
    movie = os.path.join(os.path.realpath(os.path.dirname(raw)), os.path.basename(raw))  # the movie keeps its name
    try:
        return Path(os.path.relpath(movie, os.path.realpath(folder))).as_posix()
    except ValueError:  # Windows: the movie and the NWB file on different drives
        logger.warning("the NWB file names its movie %s by its absolute path: no relative path leads there from %s "
                       "(another drive); moved, the NWB file will not find the movie", raw, folder)
        return raw


def _image_mask_data(A, background, dims: tuple[int, int]):
    """The NWB ``image_mask`` column's data: the footprints, then the background images, written piece by piece.

    Each footprint is written as its bounding box only; HDF5 never stores the chunks outside them (they read as the
    fill value, 0). Chunks of one image and 64 x 64 pixels, gzip level 1. Memory: one piece at a time.

    Parameters
    ----------
    A : sparse (rows*cols, K)
        Footprints, pixels in Fortran order.
    background : ndarray (rows*cols, nb) or None
        Background images, pixels in Fortran order.
    dims : (rows, cols)
    """
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

    A = scipy.sparse.csc_matrix(A)
    if not A.has_canonical_format:  # one entry per pixel, on a copy (the caller's matrix stays as it is)
        A = A.copy()
        A.sum_duplicates()
    rows, cols = dims
    K = A.shape[1]
    nb = 0 if background is None else background.shape[1]
    shape = (K + nb, rows, cols)
    if shape[0] == 0:  # no ROI at all: an empty dataset (chunks cannot be empty)
        return np.zeros(shape, np.float32)

    def pieces():
        for k in range(K):
            pix, values = A.indices[A.indptr[k]:A.indptr[k + 1]], A.data[A.indptr[k]:A.indptr[k + 1]]
            if not pix.size:
                continue
            r, c = pix % rows, pix // rows
            r0, c0 = r.min(), c.min()
            box = np.zeros((1, r.max() - r0 + 1, c.max() - c0 + 1), np.float32)
            box[0, r - r0, c - c0] = values
            yield DataChunk(box, np.s_[k:k + 1, r0:r0 + box.shape[1], c0:c0 + box.shape[2]])
        for m in range(nb):
            image = np.asarray(background[:, m], dtype=np.float32).reshape((1, rows, cols), order="F")
            yield DataChunk(image, np.s_[K + m:K + m + 1, :rows, :cols])

    class ImageMasks(AbstractDataChunkIterator):
        def __init__(self):
            self._pieces = pieces()

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._pieces)

        def __len__(self):
            return shape[0]

        def recommended_chunk_shape(self):
            return (1, min(rows, _MASK_CHUNK), min(cols, _MASK_CHUNK))

        def recommended_data_shape(self):
            return shape

        @property
        def dtype(self):
            return np.dtype(np.float32)

        @property
        def maxshape(self):
            return shape

    return H5DataIO(ImageMasks(), chunks=(1, min(rows, _MASK_CHUNK), min(cols, _MASK_CHUNK)), compression="gzip",
                    compression_opts=1)


#: descriptions of the NWB time series, by the Estimates field they hold (NWB's default is a placeholder)
_NWB_DESCRIPTIONS = {
    "C": "denoised calcium traces (CNMF's C), one column per ROI of PlaneSegmentation, arbitrary units",
    "S": "deconvolved activity (CNMF's S, OASIS), one column per ROI, arbitrary units",
    "f": "temporal background components (CNMF's f), one column per background image of PlaneSegmentation",
    "YrA": "residual traces (CNMF's YrA): RoiResponseSeries + residuals is the raw trace of each ROI",
}


def _nwb_subject(subject: Any):
    """``subject`` as a ``pynwb.file.Subject`` (None stays None; a dict holds its arguments)."""
    from pynwb.file import Subject

    if subject is None or isinstance(subject, Subject):
        return subject
    if isinstance(subject, dict):
        return Subject(**subject)
    raise TypeError(f"subject must be a pynwb.file.Subject or a dict of its arguments, got {type(subject).__name__}")
