"""Reading the ROIs of other pipelines' result files: CaImAn's HDF5 results (``/estimates/A``) and NWB
``PlaneSegmentation`` tables (image or pixel masks, binary or weighted), each footprint binarised as CaImAn's
benchmark protocol does unless a threshold is given."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .._memory import zeros_on_demand
from ..masks import footprints_to_masks, put_in_box
from .checks import RoiError, _as_masks, _check_shape
from .shapes import masks_from_coordinates

logger = logging.getLogger(__name__)


def _h5_file(path: Path):
    import h5py
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise RoiError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _read_caiman_hdf5(path: Path, shape, a_threshold: float, accepted_only: bool) -> np.ndarray:
    import h5py
    import scipy.sparse

    with _h5_file(path) as f:
        if "estimates/A" not in f:
            raise RoiError(f"{path}: no /estimates/A (not a CaImAn results file)")
        grp = f["estimates/A"]
        if not isinstance(grp, h5py.Group) or not all(k in grp for k in ("data", "indices", "indptr", "shape")):
            raise RoiError(f"{path}: /estimates/A is not a sparse group with data, indices, indptr, shape")
        d, K = (int(v) for v in grp["shape"][()])
        A = scipy.sparse.csc_matrix((grp["data"][()], grp["indices"][()], grp["indptr"][()]), shape=(d, K))
        dims = None
        for key in ("dims", "estimates/dims"):
            if key in f and isinstance(f[key], h5py.Dataset) and f[key].dtype.kind in "iuf":
                dims = tuple(int(v) for v in np.ravel(f[key][()]))
                break
        idx = None
        if accepted_only and "estimates/idx_components" in f:
            val = f["estimates/idx_components"][()]
            if isinstance(val, np.ndarray) and val.dtype.kind in "iu":
                idx = val.ravel().astype(np.int64)
    if dims is None:
        dims = _check_shape(shape, f"{path} (no /dims)")
    elif shape is not None and tuple(dims) != _check_shape(shape, path):
        raise RoiError(f"{path}: file dims {dims} differ from shape={tuple(shape)}")
    if len(dims) != 2 or dims[0] * dims[1] != d:
        raise RoiError(f"{path}: dims {dims} do not match A's {d} pixels (only 2-D fields are supported)")
    if idx is not None:
        if idx.size and (idx.min() < 0 or idx.max() >= A.shape[1]):
            raise RoiError(f"{path}: /estimates/idx_components names components {idx.min()}..{idx.max()}, but A has "
                           f"{A.shape[1]}; read all of them with accepted_only=False")
        A = A[:, idx]
    A = A.tocsc()
    if a_threshold is None:
        return footprints_to_masks(A, dims)
    col_max = np.asarray(A.max(axis=0).todense()).ravel() if A.shape[1] else np.zeros(0)
    masks = zeros_on_demand((A.shape[1], dims[0], dims[1]), f"masks of {path}")
    for k in range(A.shape[1]):
        lo, hi = A.indptr[k], A.indptr[k + 1]
        vals, pix = A.data[lo:hi], A.indices[lo:hi]
        pix = pix[vals > max(a_threshold * col_max[k], 0.0)]
        masks[k, pix % dims[0], pix // dims[0]] = True  # p = i + j*d1
    return masks


def _read_nwb(path: Path, shape, a_threshold: float | None, accepted_only: bool) -> np.ndarray:
    import h5py

    from ..io.nwb import nwb_axes

    with _h5_file(path) as f:
        axes = nwb_axes(f)  # NeuroConv's files: movies and image masks stored (cols, rows)
        found = {}
        planes = []
        backgrounds = []

        def visit(name, obj):
            kind = obj.attrs.get("neurodata_type", b"")
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind == "PlaneSegmentation":
                found[name] = obj
            elif kind in ("TwoPhotonSeries", "OnePhotonSeries", "CorrectedImageStack"):  # corrected: may be cropped
                data = obj.get("corrected/data" if kind == "CorrectedImageStack" else "data")
                if isinstance(data, h5py.Dataset) and data.ndim == 3 and min(data.shape[1:]) > 0:  # not external
                    frame = tuple(data.shape[1:])  # as load_movie reads it (NeuroConv's raw series transposed)
                    planes.append(frame[::-1] if axes.transposes(kind == "CorrectedImageStack") else frame)
            elif kind == "RoiResponseSeries" and name.split("/")[-1] == "Background_Fluorescence_Response":
                backgrounds.append(obj)

        f.visititems(visit)
        if len(found) != 1:
            raise RoiError(f"{path}: {len(found)} PlaneSegmentation tables ({', '.join(found) or 'none'}); "
                           f"expected exactly one")
        name, ps = next(iter(found.items()))
        source = f"{path}:{name}"
        if "image_mask" in ps and isinstance(ps["image_mask"], h5py.Dataset):
            rows = _nwb_roi_rows(ps, len(ps["image_mask"]), backgrounds, accepted_only, source)
            caiman = _written_by_caiman(ps)
            if caiman:
                logger.info("%s: written by CaImAn's save_NWB: image masks put back from its pixel order", source)
            if axes.columns_first:
                logger.info("%s: image masks read as (N, rows, cols) from the stored (N, cols, rows), as the file's "
                            "movie: %s", source, axes.reason)
            return _read_image_masks(ps["image_mask"], rows, shape, f"{source}/image_mask", a_threshold, caiman,
                                     axes.columns_first)
        if "pixel_mask" in ps and "pixel_mask_index" in ps:
            pm = ps["pixel_mask"][()]
            ends = ps["pixel_mask_index"][()].astype(np.int64)
            if shape is None and len(set(planes)) == 1:
                shape = planes[0]
            shape = _check_shape(shape, f"{source} (pixel_mask without a movie of one frame shape: "
                                        f"{sorted(set(planes)) or 'no TwoPhotonSeries or OnePhotonSeries'})")
            if axes.columns_first:
                logger.info("%s: pixel_mask x read as the row, y as the column (NeuroConv writes roiextractors' "
                            "(row, col, weight) as it is), in frames of %s (rows, cols) as the movie is read: %s",
                            source, shape, axes.reason)
            starts = np.concatenate([[0], ends[:-1]])
            rows = _nwb_roi_rows(ps, len(ends), backgrounds, accepted_only, source)
            regions = [_pixel_mask_region(pm["x"][a:b], pm["y"][a:b], pm["weight"][a:b], shape, a_threshold)
                       for a, b in zip(starts[rows], ends[rows], strict=True)]
            return masks_from_coordinates(regions, shape, f"{source}/pixel_mask")
        raise RoiError(f"{path}: PlaneSegmentation '{name}' has neither image_mask nor pixel_mask")


def _nwb_roi_rows(ps, n: int, backgrounds: list, accepted_only: bool, source: str) -> np.ndarray:
    """The rows of a PlaneSegmentation table that are ROIs: not those of a ``Background_Fluorescence_Response``
    series (CaImAn's layout keeps its background components in the same table) and, with ``accepted_only`` and a
    ``keep`` column (CaImAn) or an ``iscell`` column (Suite2p), only the kept ones."""
    roi = np.ones(n, bool)
    for series in backgrounds:
        region = series.get("rois")
        table = region.attrs.get("table") if region is not None else None
        if region is None or (table is not None and series.file[table].name != ps.name):
            continue  # another table's rows
        idx = np.asarray(region[()], dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise RoiError(f"{source}: background rows {idx.min()}-{idx.max()} outside the table's {n} rows")
        roi[idx] = False
    if accepted_only and "keep" in ps:  # CaImAn: in idx_components
        keep = np.asarray(ps["keep"][()]).astype(bool)
        if keep.shape != (n,):
            raise RoiError(f"{source}: column 'keep' has {keep.size} values for {n} rows")
        roi &= keep
    if accepted_only and "iscell" in ps:  # Suite2p: (N, 2) classification and probability, or (N,)
        iscell = np.asarray(ps["iscell"][()], dtype=np.float64)
        if iscell.ndim == 2:
            iscell = iscell[:, 0]
        if iscell.shape != (n,):
            raise RoiError(f"{source}: column 'iscell' has {iscell.shape[0] if iscell.ndim else 0} rows for {n}")
        roi &= iscell > 0.5
    return np.flatnonzero(roi)


def _is_binary(weights: np.ndarray) -> bool:
    """Whether an ROI's weights are a plain mask (every weight 0 or the one largest value)."""
    return weights.size == 0 or bool(np.all((weights == 0) | (weights == weights.max())))


def _kept_pixels(pixels: np.ndarray, weights: np.ndarray, shape: tuple[int, int],
                 a_threshold: float | None) -> np.ndarray:
    """The flat Fortran-order pixels (``i + j * rows``) of one ROI, given as ``weights`` at ``pixels``, that belong
    to its mask: a binary ROI as it is; weighted ones (footprints) as CaImAn's benchmark protocol binarises them
    (``a_threshold`` None: :func:`cellfie_caiman.masks.footprints_to_masks`) or above ``a_threshold`` times their
    largest weight."""
    import scipy.sparse

    weights = np.asarray(weights, dtype=np.float64)
    if _is_binary(weights):
        return pixels[weights > 0]
    if a_threshold is not None:
        return pixels[weights > a_threshold * weights.max()]
    keep = weights > 0
    A = scipy.sparse.csc_matrix((weights[keep], (pixels[keep], np.zeros(int(keep.sum()), np.int64))),
                                shape=(shape[0] * shape[1], 1))
    return np.flatnonzero(footprints_to_masks(A, shape)[0].ravel(order="F"))


def _binarize_image(weights: np.ndarray, a_threshold: float | None) -> np.ndarray:
    """One ROI's weights (x, y) as a mask (:func:`_kept_pixels`)."""
    weights = np.asarray(weights)
    if _is_binary(weights):  # the common case, without flattening the image
        return weights > 0
    mask = np.zeros(weights.shape, bool)
    kept = _kept_pixels(np.arange(weights.size), weights.ravel(order="F"), weights.shape, a_threshold)
    mask[kept % weights.shape[0], kept // weights.shape[0]] = True
    return mask


def _pixel_mask_region(x: np.ndarray, y: np.ndarray, weights: np.ndarray, shape: tuple[int, int],
                       a_threshold: float | None) -> np.ndarray:
    """The (x, y) pixels of one NWB ``pixel_mask`` ROI that belong to its mask (:func:`_kept_pixels`)."""
    x, y, weights = np.asarray(x, np.int64), np.asarray(y, np.int64), np.asarray(weights, np.float64)
    if not ((x >= 0) & (x < shape[0]) & (y >= 0) & (y < shape[1])).all():
        return np.stack([x, y], axis=1)[weights > 0]  # masks_from_coordinates says what is outside the image
    kept = _kept_pixels(x + y * shape[0], weights, shape, a_threshold)
    return np.stack([kept % shape[0], kept // shape[0]], axis=1)


def _written_by_caiman(ps) -> bool:
    """Whether the PlaneSegmentation group ``ps`` was written by CaImAn's ``Estimates.save_NWB``, whose processing
    module (``ophys``, ``ophys1``, ...) it describes as "contains caiman estimates for the main imaging plane"."""
    module = ps.parent.parent  # PlaneSegmentation -> ImageSegmentation -> ProcessingModule
    description = module.attrs.get("description", b"") if module is not None else b""
    description = description.decode() if isinstance(description, bytes) else str(description)
    return description.startswith("contains caiman estimates")


def _read_image_masks(dset, rows: np.ndarray, shape, source: str, a_threshold: float | None = None,
                      caiman_order: bool = False, transposed: bool = False) -> np.ndarray:
    """Rows ``rows`` of an NWB ``image_mask`` dataset (N, x, y), binarised (:func:`_binarize_image`), read one image
    at a time into a stack whose memory is taken only where the masks are. ``caiman_order``: each stored image is
    a column of CaImAn's ``A`` (pixel ``r + c * rows``) reshaped row-major, as CaImAn's ``save_NWB`` writes it.
    ``transposed``: the images are stored (N, cols, rows), as NeuroConv writes them (and CaImAn, appending its
    results to NeuroConv's file, from the movie as stored), and are read as (N, rows, cols)."""
    if dset.ndim != 3:
        return _as_masks(dset[()][rows], shape, source)  # the error for a malformed dataset
    if dset.dtype.kind not in "biuf":
        raise RoiError(f"{source}: masks must be numeric or boolean, not {dset.dtype}")
    frame = tuple(dset.shape[1:])[::-1] if transposed else tuple(dset.shape[1:])
    if shape is not None and frame != _check_shape(shape, source):
        stored = " (rows, cols; stored transposed)" if transposed else ""
        raise RoiError(f"{source}: masks have frame shape {frame}{stored}, but shape={tuple(shape)} was given")
    masks = zeros_on_demand((len(rows), *frame), f"masks of {source}")
    for j, k in enumerate(rows):
        image = dset[k]
        if caiman_order:
            image = image.reshape(-1).reshape(image.shape, order="F")
        if transposed:
            image = image.T
        put_in_box(masks, j, _binarize_image(image, a_threshold))
    return masks
