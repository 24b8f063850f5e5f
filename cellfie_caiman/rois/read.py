"""Reading ROI files: :func:`read_rois`, which picks the reader by the file name, :func:`file_extent`, and the
readers of the plain formats (neurofinder JSON, ImageJ ``.roi``/``.zip``, numpy arrays, Suite2p ``stat.npy``).
Other pipelines' result files (CaImAn HDF5, NWB) are read in :mod:`.results`."""
from __future__ import annotations

import json
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._memory import zeros_on_demand
from ..masks import put_in_box
from .checks import RoiError, _as_masks, _check_shape
from .results import _read_caiman_hdf5, _read_nwb
from .shapes import _imagej_spline, _oval_mask, masks_from_coordinates, polygon_mask

logger = logging.getLogger(__name__)


def read_rois(path: str | os.PathLike, shape: Sequence[int] | None = None, *, a_threshold: float | None = None,
              accepted_only: bool = True) -> np.ndarray:
    """Read ROIs as boolean masks.

    Parameters
    ----------
    path : str or path
        ``.json`` (neurofinder), ``.zip``/``.roi`` (ImageJ), ``.npy``/``.npz`` (masks or Ain), ``stat.npy``
        (Suite2p), ``.hdf5``/``.h5`` (CaImAn results), ``.nwb`` (PlaneSegmentation).
    shape : (rows, cols), optional
        Image size in pixels. Required for formats that do not store it (JSON, ImageJ, Ain, Suite2p without
        ops.npy; NWB ``pixel_mask`` without a single frame shape of its ``TwoPhotonSeries``, ``OnePhotonSeries`` and
        motion-corrected movies); for Suite2p it is used instead of
        ``ops.npy``; checked against the file's size for the others.
    a_threshold : float or None
        CaImAn HDF5 and weighted NWB masks: None, CaImAn's benchmark binarisation of a footprint (> 0.2 of its peak,
        connected to it, holes filled), so that a run's ``results.hdf5``, ``results.nwb`` and ``rois.json`` give the
        same masks; a number t: every pixel with weight > t * the component's maximum (0: the footprint's support).
    accepted_only : bool
        CaImAn HDF5: keep only ``idx_components`` when the file lists accepted components. NWB: keep only the rows
        whose ``keep`` column is true (CaImAn's ``save_NWB`` writes it from ``idx_components``) or whose
        ``iscell`` classification is 1 (Suite2p's NWB export), when the table has such a column.

    Returns
    -------
    bool array (N, rows, cols)

    Raises
    ------
    RoiError (a MovieError)
        Missing, unknown or malformed file, missing or inconsistent shape, coordinates outside the image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise RoiError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        masks = _read_json(path, shape)
    elif suffix in (".zip", ".roi"):
        masks = _read_imagej(path, shape)
    elif suffix == ".npy" and _is_suite2p_stat(path):
        masks = _read_suite2p(path, shape)
    elif suffix in (".npy", ".npz"):
        masks = _read_numpy(path, shape)
    elif suffix in (".hdf5", ".h5"):
        masks = _read_caiman_hdf5(path, shape, a_threshold, accepted_only)
    elif suffix == ".nwb":
        masks = _read_nwb(path, shape, a_threshold, accepted_only)
    else:
        raise RoiError(f"{path}: unknown ROI format '{path.suffix}' (supported: .json, .zip, .roi, .npy, .npz, "
                       f".hdf5/.h5, .nwb)")
    logger.info("read %d ROIs of shape %s from %s", len(masks), masks.shape[1:], path)
    return masks


def _read_json(path: Path, shape) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RoiError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "regions" in data:
        data = data["regions"]
    if not isinstance(data, list) or not all(isinstance(r, dict) and "coordinates" in r for r in data):
        raise RoiError(f"{path}: expected a neurofinder list of {{'coordinates': [[row, col], ...]}} regions (or a "
                       f"dict with 'regions')")
    return masks_from_coordinates([r["coordinates"] for r in data], _check_shape(shape, path), str(path))


def _roi_mask(roi, shape, name: str) -> np.ndarray:
    from roifile import ROI_OPTIONS, ROI_SUBTYPE, ROI_TYPE

    rt = roi.roitype
    if roi.multi_coordinates is not None and len(roi.multi_coordinates):
        mask = np.zeros(shape, bool)
        try:
            paths = roi.coordinates(multi=True)
        except NotImplementedError as exc:  # roifile does not flatten curved path segments
            raise RoiError(f"{name}: ImageJ composite ROI with curved segments is not supported ({exc}); convert "
                           f"it to a polygon in ImageJ first") from exc
        for coords in paths:  # shape ROI: sub-paths combined even-odd (holes)
            if len(coords) >= 3:
                mask ^= polygon_mask(coords[:, 0], coords[:, 1], shape)
        return mask
    if rt == ROI_TYPE.RECT:
        if roi.subpixelrect:
            left, top, width, height = roi.xd, roi.yd, roi.widthd, roi.heightd
        else:
            left, top, width, height = roi.left, roi.top, roi.right - roi.left, roi.bottom - roi.top
        x = np.array([left, left + width, left + width, left])
        y = np.array([top, top, top + height, top + height])
        return polygon_mask(x, y, shape)
    if rt == ROI_TYPE.OVAL:
        if roi.subpixelrect:
            return _oval_mask(roi.xd, roi.yd, roi.widthd, roi.heightd, shape)
        return _oval_mask(roi.left, roi.top, roi.right - roi.left, roi.bottom - roi.top, shape)
    area_types = (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)
    if rt in (ROI_TYPE.POLYLINE, ROI_TYPE.FREELINE):
        warnings.warn(f"{name}: ImageJ {ROI_TYPE(rt).name.lower()} ROI is a line; closed into a polygon",
                      UserWarning, stacklevel=4)
    elif rt not in area_types and not (rt == ROI_TYPE.FREEHAND and roi.subtype == ROI_SUBTYPE.ELLIPSE):
        raise RoiError(f"{name}: ImageJ ROI of type {ROI_TYPE(rt).name} has no area; cannot make a mask")
    coords = np.asarray(roi.coordinates(), float)
    if coords.ndim != 2 or len(coords) < 3:
        raise RoiError(f"{name}: ImageJ ROI has fewer than 3 vertices")
    if roi.options & ROI_OPTIONS.SPLINE_FIT:  # ImageJ keeps the control points and fits the spline when it reads them
        coords = _imagej_spline(coords, closed=rt not in (ROI_TYPE.POLYLINE, ROI_TYPE.FREELINE))
    return polygon_mask(coords[:, 0], coords[:, 1], shape)


def _imagej_rois(path: Path) -> list:
    """``(name, ImagejRoi)`` of each ROI of an ImageJ ``.roi`` file or RoiSet ``.zip``, in the file's order."""
    from roifile import ImagejRoi

    rois, names = [], []
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                # folders, and the AppleDouble files macOS adds to zips it makes (__MACOSX/..., ._name), are not ROIs
                names = [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")
                         and not n.rsplit("/", 1)[-1].startswith("._")]
                for name in names:
                    if name.lower().endswith(".roi"):
                        try:
                            rois.append((f"{path}:{name}", ImagejRoi.frombytes(zf.read(name))))
                        except ValueError as exc:
                            raise RoiError(f"{path}:{name}: not a readable ImageJ ROI ({exc})") from exc
        else:
            rois.append((str(path), ImagejRoi.frombytes(path.read_bytes())))
    except RoiError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise RoiError(f"{path}: not a readable ImageJ ROI file ({exc})") from exc
    if not rois and names:  # an empty RoiSet is fine; other files are not ROIs
        raise RoiError(f"{path}: no ImageJ .roi entry in this zip (it holds {', '.join(names[:3])}"
                       f"{', ...' if len(names) > 3 else ''}): not an ImageJ RoiSet")
    return rois


def _read_imagej(path: Path, shape) -> np.ndarray:
    shape = _check_shape(shape, path)
    rois = _imagej_rois(path)
    masks = zeros_on_demand((len(rois),) + shape, f"masks of {path}")
    for k, (name, roi) in enumerate(rois):
        mask = _roi_mask(roi, shape, name)
        if not mask.any() and (roi.left >= shape[1] or roi.top >= shape[0] or roi.right <= 0 or roi.bottom <= 0):
            raise RoiError(f"{name}: the ROI (x {roi.left}-{roi.right}, y {roi.top}-{roi.bottom}) lies outside the "
                           f"frame of {shape[0]} rows x {shape[1]} columns: wrong shape, or (width, height) given for "
                           f"(rows, cols)?")
        put_in_box(masks, k, mask)
    return masks


def file_extent(path: str | os.PathLike) -> tuple[int, int] | None:
    """Smallest frame (rows, cols) holding every ROI of a neurofinder JSON or ImageJ ROI file, which do not record
    the frame they were drawn on.

    Parameters
    ----------
    path : str or path
        ``.json``, ``.roi`` or ``.zip`` file.

    Returns
    -------
    (int, int) or None
        (rows, cols) in pixels; (1, 1) for a file without ROIs (also a JSON object without ``regions``); None for
        other suffixes and for JSON whose regions have no readable ``coordinates``.

    Raises
    ------
    OSError
        A JSON file that cannot be read (e.g. missing).
    RoiError
        An ImageJ file that is missing or cannot be read.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.json"
    >>> _ = p.write_text(json.dumps([{"coordinates": [[3, 4], [10, 2]]}]))
    >>> file_extent(p)
    (11, 5)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = data.get("regions", [])
            coords = [np.asarray(r["coordinates"], dtype=np.int64).reshape(-1, 2) for r in data]
        except (ValueError, KeyError, TypeError):
            return None
        if not coords:
            return (1, 1)
        allc = np.concatenate(coords)
        return int(allc[:, 0].max()) + 1, int(allc[:, 1].max()) + 1
    if suffix in (".roi", ".zip"):
        rois = [roi for _, roi in _imagej_rois(path)]
        if not rois:
            return (1, 1)
        return max(1, max(int(r.bottom) for r in rois)), max(1, max(int(r.right) for r in rois))
    return None


def _read_numpy(path: Path, shape) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "masks" in keys:
                    key = "masks"
                elif len(keys) == 1:
                    key = keys[0]
                else:
                    raise RoiError(f"{path}: no array 'masks' and {len(keys)} arrays ({', '.join(keys[:8])})")
                arr = z[key]
        else:
            arr = np.load(path, allow_pickle=False)
    except RoiError:
        raise
    except Exception as exc:
        raise RoiError(f"{path}: cannot read masks ({exc})") from exc
    return _as_masks(arr, shape, str(path))


def _is_suite2p_stat(path: Path) -> bool:
    if path.name == "stat.npy":
        return True
    try:  # a pickled object array of dicts with ypix/xpix
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(fh)
        return header[2] == np.dtype(object) and len(header[0]) == 1
    except Exception:
        return False


def _read_suite2p(path: Path, shape) -> np.ndarray:
    try:
        stat = np.load(path, allow_pickle=True)
    except Exception as exc:
        raise RoiError(f"{path}: cannot read Suite2p stat.npy ({exc})") from exc
    if stat.dtype != object or stat.ndim != 1 or not all(isinstance(s, dict) and "ypix" in s and "xpix" in s
                                                          for s in stat):
        raise RoiError(f"{path}: not a Suite2p stat.npy (an array of dicts with 'ypix' and 'xpix')")
    ops_path = path.with_name("ops.npy")
    if shape is None and ops_path.exists():
        ops = np.load(ops_path, allow_pickle=True).item()
        shape = (ops["Ly"], ops["Lx"])
    shape = _check_shape(shape, f"{path} (no ops.npy beside it)")
    keep = np.ones(len(stat), bool)
    iscell_path = path.with_name("iscell.npy")
    if iscell_path.exists():
        iscell = np.load(iscell_path, allow_pickle=False)
        if len(iscell) != len(stat):
            raise RoiError(f"{iscell_path}: {len(iscell)} rows, but {path} has {len(stat)} ROIs")
        keep = np.asarray(iscell).reshape(len(stat), -1)[:, 0] == 1
    regions = [np.stack([np.asarray(s["ypix"]), np.asarray(s["xpix"])], axis=1)
               for s, k in zip(stat, keep, strict=True) if k]
    return masks_from_coordinates(regions, shape, str(path))
