"""Read and write regions of interest (ROIs) as boolean masks (N, rows, cols).

Readers (``read_rois``, chosen by file name):

* neurofinder JSON (``*.json``): a list of ``{"coordinates": [[row, col], ...]}`` or the submission dict
  ``{"dataset": ..., "regions": [...]}``. The file has no image size: pass ``shape``.
* ImageJ ROIs (``*.zip`` RoiSet or a single ``*.roi``, read with roifile). ImageJ's own geometry is followed:
  vertices are on pixel corners and a pixel belongs to the ROI when its centre lies inside the outline, so a
  polygon with vertices x = 3..8, y = 2..6 covers columns 3..7 and rows 2..5. (CaImAn's ``nf_read_roi_zip``
  subtracts 1 from every vertex and also keeps the pixels on the outline, giving rows 1..5 and columns 2..7: its
  masks are shifted by -1 px and one pixel larger.) Polygon, freehand, traced, rectangle, oval and composite
  (shape) ROIs are areas; polylines are closed into polygons with a warning; lines and points are errors.
  "Fit Spline" selections (control points and the SPLINE_FIT flag) are the spline ImageJ fits when it reads them
  (the same masks as ImageJ 1.x on the shapes compared). Polygons are filled by ImageJ's rule
  (:func:`polygon_mask`: the same masks as ImageJ 1.x on 52 integer, half-pixel and sub-pixel polygons, where
  pixel centres lying exactly on an edge are counted as ImageJ counts them). Known differences: rounded-rectangle
  corners are square, and sub-pixel rectangles and ovals keep their exact geometry (ImageJ rounds them to whole
  pixels). The files have no image size: pass ``shape``; parts outside the image are clipped (as in ImageJ), a ROI
  wholly outside it is an error.
* ``.npy`` / ``.npz`` masks (N, rows, cols) (npz: key ``masks`` or the only array), or ``Ain`` (rows*cols, N) in
  CaImAn's Fortran pixel order when ``shape`` is given. Non-boolean arrays are binarised at > 0.
* CaImAn HDF5 results (``.hdf5``/``.h5`` with ``/estimates/A``, a CSC group ``data, indices, indptr, shape``;
  pixel p = i + j*rows; dims from ``/dims``), binarised as CaImAn's benchmark protocol does (pixels above 0.2 of
  the footprint's peak, the connected part that holds it, holes filled:
  :func:`cellfie_caiman.masks.footprints_to_masks`, as cellfie-caiman's own ``rois.json``), or with ``a_threshold``
  mask = A[:, k] > ``a_threshold`` * max(A[:, k]) (0: the footprint's support). Only the accepted components
  (``/estimates/idx_components``) are kept when the file lists them, unless ``accepted_only=False``.
* Suite2p ``stat.npy`` (``ypix``, ``xpix`` of every ROI, overlapping pixels included) and, when ``iscell.npy``
  is beside it, only the ROIs with ``iscell[:, 0] == 1``. The shape comes from ``ops.npy`` (``Ly``, ``Lx``) beside
  it, else ``shape``. (``stat.npy`` is a pickle: only read files you trust.)
* NWB ``PlaneSegmentation`` (``.nwb``): ``image_mask`` (N, x, y) or ``pixel_mask`` (x, y, weight), read as (rows,
  cols) like the movie (NWB's x is our row axis). Files that NeuroConv (<= 0.10) or NWB GUIDE wrote, marked so in
  ``general/source_script``, store image masks (N, cols, rows) like their movies: both are read transposed; their
  ``pixel_mask`` x is the row already (roiextractors' order), in the frame shape of the movie as it is read
  (:func:`cellfie_caiman.io.nwb.nwb_axes`; the order used is logged at INFO). Weighted masks (footprints)
  binarised as CaImAn HDF5 results are, binary ones taken as they are. The background components that
  CaImAn's layout stores as rows of the same table (those of the ``Background_Fluorescence_Response`` series) are
  not ROIs and are left out; with a ``keep`` column (CaImAn) or an ``iscell`` column (Suite2p: classification,
  probability) only the kept rows or the cells are read, unless ``accepted_only=False``. Files written by
  CaImAn's ``Estimates.save_NWB`` (processing module described as "contains caiman estimates ...") hold each
  footprint's column of ``A``, in CaImAn's column-major pixel order, reshaped row-major into the image: those
  images are put back in place (a square field would otherwise come back transposed, any other one scrambled).

Writers (``write_rois``): neurofinder JSON (``.json``) and ImageJ RoiSet (``.zip``), written atomically. The
ImageJ outline of a mask is traced along pixel edges (as ImageJ's wand does), so reading it back gives the same
mask exactly, unless the mask has holes (filled) or several separate pieces (only the largest is written); a
warning says when that happens.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._files import atomic_path
from ._memory import zeros_on_demand
from .io import MovieError
from .masks import bounding_box, footprints_to_masks, put_in_box

logger = logging.getLogger(__name__)

__all__ = ["RoiError", "read_rois", "write_rois", "masks_from_coordinates", "outline", "polygon_mask", "file_extent"]


class RoiError(MovieError):
    """An ROI file that cannot be read or written; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------------------------
# rasterising ROI outlines and coordinates
# ----------------------------------------------------------------------------------------------------------------

def _check_shape(shape, path) -> tuple[int, int]:
    if shape is None:
        raise RoiError(f"{path}: this ROI format does not store the image size; pass shape=(rows, cols)")
    try:
        given = tuple(shape)
        shape = tuple(int(s) for s in given)
    except (TypeError, ValueError):
        raise RoiError(f"{path}: shape must be (rows, cols), got {shape!r}") from None
    if any(s != g for s, g in zip(shape, given, strict=True)):
        raise RoiError(f"{path}: shape must be whole numbers of pixels (rows, cols), got {given}")
    if len(shape) != 2 or min(shape) < 1:
        raise RoiError(f"{path}: shape must be two positive integers (rows, cols), got {shape}")
    return shape


def polygon_mask(x: np.ndarray, y: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Rasterise a polygon in ImageJ coordinates as ImageJ's ``PolygonFiller`` does: pixel (r, c) is in when its
    centre (c + 0.5, r + 0.5) is inside (even-odd rule), a centre exactly on an edge counting as inside on the
    polygon's right-hand edges of a row and outside on its left-hand ones.

    Each row's centre line meets the non-horizontal edges (an edge spans the rows from its lower end's y, rounded,
    to its upper end's, exclusive); the pixels from each even crossing to the next odd one are filled, each bound
    rounded half up, a crossing nudged right by 1e-8 as ImageJ does.

    Parameters
    ----------
    x, y : array (n,)
        Vertex coordinates in pixels; x along columns, y along rows; (0, 0) is the top-left corner of pixel (0, 0).
    shape : (rows, cols)

    Returns
    -------
    bool array (rows, cols); parts outside the image are clipped.

    Examples
    --------
    >>> polygon_mask([3, 8, 8, 3], [2, 2, 6, 6], (8, 10))[1:7, 2:9].astype(int)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0, 0]])
    """
    rows, cols = (int(v) for v in shape)
    mask = np.zeros((rows, cols), bool)
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if len(x) < 3:
        return mask
    xa, ya, xb, yb = x, y, np.roll(x, -1), np.roll(y, -1)
    low = ya <= yb  # each edge from its lower end (smaller y) up
    xl, yl = np.where(low, xa, xb), np.where(low, ya, yb)
    xh, yh = np.where(low, xb, xa), np.where(low, yb, ya)
    first, last = np.floor(yl + 0.5), np.floor(yh + 0.5)  # Java's Math.round; the same for whole coordinates
    edge = first < last
    if not edge.any():
        return mask
    xl, yl, xh, yh, first, last = (v[edge] for v in (xl, yl, xh, yh, first, last))
    slope = (xh - xl) / (yh - yl)
    y0, y1 = int(max(0.0, first.min())), int(min(float(rows), last.max()))
    if y1 <= y0:
        return mask
    r = np.arange(y0, y1, dtype=np.float64)[:, None]
    crossing = xl + (r - yl + 0.5) * slope + 1e-8  # (rows of the span, edges)
    crossing[(r < first) | (r >= last)] = np.inf  # inactive edges sort last
    crossing.sort(axis=1)
    n_active = np.isfinite(crossing).sum(axis=1)
    bounds = np.clip(np.floor(np.where(np.isfinite(crossing), crossing, 0.0) + 0.5), 0, cols).astype(np.int64)
    pair = np.arange(crossing.shape[1] // 2)
    start, stop = bounds[:, 0::2][:, :len(pair)], bounds[:, 1::2][:, :len(pair)]
    used = 2 * pair[None, :] + 1 < n_active[:, None]
    diff = np.zeros((y1 - y0, cols + 1), np.int32)
    rr = np.broadcast_to(np.arange(y1 - y0)[:, None], used.shape)
    np.add.at(diff, (rr[used], start[used]), 1)
    np.add.at(diff, (rr[used], stop[used]), -1)
    mask[y0:y1] = np.cumsum(diff[:, :cols], axis=1) > 0
    return mask


def _oval_mask(left: float, top: float, width: float, height: float, shape) -> np.ndarray:
    """Pixels whose centre lies inside the ellipse inscribed in the box (ImageJ's oval ROI)."""
    rows, cols = shape
    a, b = width / 2.0, height / 2.0
    if a <= 0 or b <= 0:
        return np.zeros(shape, bool)
    cy, cx = top + b, left + a
    r = (np.arange(rows) + 0.5 - cy)[:, None] / b
    c = (np.arange(cols) + 0.5 - cx)[None, :] / a
    return r ** 2 + c ** 2 <= 1.0


def masks_from_coordinates(regions: Sequence[Sequence[Sequence[int]]], shape: Sequence[int],
                           source: str = "<regions>") -> np.ndarray:
    """Masks from lists of [row, col] pixel coordinates (neurofinder's ``coordinates``).

    Parameters
    ----------
    regions : sequence of N sequences of [row, col]
        Pixel coordinates of each ROI: integers, or floats with whole values; an empty region gives an empty mask.
    shape : (rows, cols)
        Image size in pixels.
    source : str
        Names the input in error messages.

    Returns
    -------
    ndarray, bool, shape (N, rows, cols)

    Raises
    ------
    RoiError
        A bad ``shape``, coordinates that are not [row, col] pairs or not whole numbers, or pixels outside
        ``shape``.

    Examples
    --------
    >>> masks_from_coordinates([[[0, 1], [2, 1]], []], (3, 2)).astype(int).tolist()
    [[[0, 1], [0, 0], [0, 1]], [[0, 0], [0, 0], [0, 0]]]
    """
    shape = _check_shape(shape, source)
    masks = zeros_on_demand((len(regions),) + shape, f"masks of {source}")
    for k, coords in enumerate(regions):
        try:
            arr = np.asarray(coords)
        except ValueError:  # ragged: some coordinate is not a pair
            raise RoiError(f"{source}: region {k} coordinates must be a list of [row, col] pairs") from None
        if arr.size == 0:
            continue
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iuf":
            raise RoiError(f"{source}: region {k} coordinates must be a list of [row, col] pairs")
        if arr.dtype.kind == "f":
            if not np.all(arr == np.round(arr)):
                raise RoiError(f"{source}: region {k} has non-integer pixel coordinates")
            arr = arr.astype(np.int64)
        if arr.min() < 0 or arr[:, 0].max() >= shape[0] or arr[:, 1].max() >= shape[1]:
            raise RoiError(f"{source}: region {k} has pixels outside the image of shape {shape} (rows {arr[:, 0].min()}"
                           f"..{arr[:, 0].max()}, cols {arr[:, 1].min()}..{arr[:, 1].max()}); wrong shape, or "
                           f"[col, row] order?")
        masks[k][tuple(arr.T)] = True
    return masks


# ----------------------------------------------------------------------------------------------------------------
# readers
# ----------------------------------------------------------------------------------------------------------------

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


#: Points ImageJ's SplineFitter adds at each end of a closed curve, continuing it periodically.
_SPLINE_EXTEND = 7


def _imagej_spline(points: np.ndarray, closed: bool) -> np.ndarray:
    """The curve ImageJ draws for a "Fit Spline" selection (``PolygonRoi.fitSpline``) through ``points`` (n, 2).

    As ImageJ does: x and y are natural cubic splines of a node parameter that grows by the square root of each
    segment's length; a closed curve goes back to its first point and is continued periodically by up to 7 nodes
    at each end; the splines are evaluated at ``max(100, perimeter / 2)`` evenly spaced parameter values.
    """
    from scipy.interpolate import CubicSpline

    nodes = np.vstack([points, points[:1]]) if closed else points
    steps = np.maximum(np.sqrt(np.hypot(*np.diff(nodes, axis=0).T)), 1e-3)
    t = np.concatenate([[0.0], np.cumsum(steps)])
    length = float(np.hypot(*np.diff(nodes, axis=0).T).sum())
    n_eval = max(100, int(length / 2.0))
    if closed:
        n = len(nodes)
        k = min(_SPLINE_EXTEND, n - 1)
        before = t[n - 1 - k:n - 1] - t[-1]  # the last k nodes before the closing one, shifted back by a period
        after = t[1:k + 1] + t[-1]
        t_ext = np.concatenate([before, t, after])
        xy_ext = np.vstack([nodes[n - 1 - k:n - 1], nodes, nodes[1:k + 1]])
    else:
        t_ext, xy_ext = t, nodes
    curve = CubicSpline(t_ext, xy_ext, axis=0, bc_type="natural")
    return curve(np.linspace(0.0, t[-1], n_eval))


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


def _as_masks(arr: np.ndarray, shape, source: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise RoiError(f"{source}: masks must be numeric or boolean, not {arr.dtype}")
    if arr.ndim == 3:
        if shape is not None and tuple(arr.shape[1:]) != _check_shape(shape, source):
            raise RoiError(f"{source}: masks have frame shape {arr.shape[1:]}, but shape={tuple(shape)} was given")
        return np.asarray(arr > 0)
    if arr.ndim == 2:
        shape = _check_shape(shape, f"{source} (2-D array read as Ain (rows*cols, N))")
        if arr.shape[0] != shape[0] * shape[1]:
            raise RoiError(f"{source}: a 2-D array is read as Ain (rows*cols, N), but it has {arr.shape[0]} rows "
                           f"and shape={shape} has {shape[0] * shape[1]} pixels")
        return np.asarray(arr > 0).T.reshape((arr.shape[1], shape[1], shape[0])).transpose(0, 2, 1)
    raise RoiError(f"{source}: expected masks (N, rows, cols) or Ain (rows*cols, N), got shape {arr.shape}")


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

    from .io.nwb import nwb_axes

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


# ----------------------------------------------------------------------------------------------------------------
# outline tracing and writers
# ----------------------------------------------------------------------------------------------------------------

def _trace_loops(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines of a mask along pixel edges, as (n, 2) integer (x, y) corner coordinates.

    Every edge between an inside and an outside pixel is directed so that the inside lies on its right (clockwise
    around a pixel on screen); the edges are then chained into loops. Where two pixels touch only at a corner the
    chain continues into the other pixel, so diagonally touching pixels share one outline (8-connectivity).
    Outer outlines run clockwise (positive shoelace area with y pointing down), holes anticlockwise.
    """
    m = np.pad(np.asarray(mask, bool), 1)
    r, c = np.nonzero(m)
    edges: dict[tuple[int, int], list[tuple[tuple[int, int], tuple[int, int]]]] = {}

    def add(start, end, owner):
        edges.setdefault(start, []).append((end, owner))

    for rr, cc in zip(r.tolist(), c.tolist(), strict=True):
        x, y = cc - 1, rr - 1  # corner coordinates in the unpadded image
        owner = (rr, cc)
        if not m[rr - 1, cc]:
            add((x, y), (x + 1, y), owner)          # top, left to right
        if not m[rr, cc + 1]:
            add((x + 1, y), (x + 1, y + 1), owner)  # right, downwards
        if not m[rr + 1, cc]:
            add((x + 1, y + 1), (x, y + 1), owner)  # bottom, right to left
        if not m[rr, cc - 1]:
            add((x, y + 1), (x, y), owner)          # left, upwards
    loops = []
    while edges:
        # start at a vertex with a single way out (never a corner shared by diagonal pixels)
        start = next((v for v, outs in edges.items() if len(outs) == 1), next(iter(edges)))
        end, owner = edges[start].pop()
        if not edges[start]:
            del edges[start]
        loop = [start]
        vertex = end
        while vertex != start:
            loop.append(vertex)
            outs = edges[vertex]
            pick = 0
            if len(outs) > 1:  # a corner shared by two diagonal pixels: continue into the other pixel
                pick = next((k for k, (_, o) in enumerate(outs) if o != owner), 0)
            end, owner = outs.pop(pick)
            if not outs:
                del edges[vertex]
            vertex = end
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def _shoelace(loop: np.ndarray) -> float:
    x, y = loop[:, 0].astype(float), loop[:, 1].astype(float)
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _drop_collinear(loop: np.ndarray) -> np.ndarray:
    prev, nxt = np.roll(loop, 1, axis=0), np.roll(loop, -1, axis=0)
    cross = (loop[:, 0] - prev[:, 0]) * (nxt[:, 1] - loop[:, 1]) - (loop[:, 1] - prev[:, 1]) * (nxt[:, 0] - loop[:, 0])
    keep = cross != 0
    return loop[keep] if keep.sum() >= 3 else loop


def outline(mask: np.ndarray) -> np.ndarray:
    """The outer outline of a mask's largest piece as polygon vertices on pixel corners.

    ``polygon_mask(*outline(mask).T, mask.shape)`` gives the mask back when it is one piece without holes.

    Parameters
    ----------
    mask : ndarray, shape (rows, cols)
        Nonzero is in.

    Returns
    -------
    ndarray, int64, shape (n, 2)
        (x, y) = (col, row) corner coordinates in pixels, clockwise on screen; (0, 2) for an empty mask.
    """
    mask = np.asarray(mask, bool)
    box = bounding_box(mask)
    if box is None:
        return np.zeros((0, 2), np.int64)
    r0, r1, c0, c1 = box  # traced in the box: the padded copy is the box's size, not the field's
    loops = [lp for lp in _trace_loops(mask[r0:r1, c0:c1]) if _shoelace(lp) > 0]
    return _drop_collinear(max(loops, key=_shoelace)) + np.array([c0, r0], np.int64)


def write_rois(path: str | os.PathLike, masks: np.ndarray) -> None:
    """Write masks (N, rows, cols) as neurofinder JSON (``.json``) or an ImageJ RoiSet (``.zip``), atomically.

    JSON: a list of ``{"id": k, "coordinates": [[row, col], ...]}`` (exact). ImageJ: one traced polygon ROI per
    mask named ``{k+1:04d}.roi``; exact for masks that are one piece without holes (a ``UserWarning`` says
    otherwise). Empty masks are written as empty regions (JSON) or are an error (ImageJ, which cannot hold an empty
    ROI).

    Parameters
    ----------
    path : str or path
        Output file, ``.json`` or ``.zip``.
    masks : ndarray, shape (N, rows, cols) or (rows, cols)
        Boolean masks (other dtypes: values > 0 are in); a single 2-D mask is written as one ROI.

    Raises
    ------
    RoiError
        Masks that are not 2-D or 3-D, an unknown suffix, or an empty mask written as ImageJ ROIs.
    """
    path = Path(path)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise RoiError(f"{path}: masks must be (N, rows, cols), got shape {masks.shape}")
    if masks.dtype != bool:
        masks = masks > 0
    suffix = path.suffix.lower()
    if suffix == ".json":
        regions = [{"id": k, "coordinates": _coordinates(mk)} for k, mk in enumerate(masks)]
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(regions))
    elif suffix == ".zip":
        _write_imagej(path, masks)
    else:
        raise RoiError(f"{path}: unknown ROI output format '{path.suffix}' (use .json or .zip)")
    logger.debug("wrote %d ROIs to %s", len(masks), path)  # a run writes in a staging folder: it logs where they end


def _coordinates(mask: np.ndarray) -> list[list[int]]:
    """[row, col] of a 2-D mask's pixels in C order (``np.argwhere``), found in its bounding box."""
    box = bounding_box(mask)
    if box is None:
        return []
    r0, r1, c0, c1 = box
    return (np.argwhere(mask[r0:r1, c0:c1]) + [r0, c0]).tolist()


def _write_imagej(path: Path, masks: np.ndarray) -> None:
    from roifile import ROI_TYPE, ImagejRoi

    rois, changed = [], []
    for k, mk in enumerate(masks):
        pts = outline(mk)
        if not len(pts):
            raise RoiError(f"{path}: mask {k} is empty; ImageJ ROIs cannot be empty")
        roi = ImagejRoi.frompoints(pts.astype(np.int32), name=f"{k + 1:04d}")
        roi.roitype = ROI_TYPE.TRACED
        rois.append(roi)
        # the traced polygon lies in the mask's bounding box, so the two can differ only there
        r0, r1, c0, c1 = bounding_box(mk)
        back = polygon_mask(pts[:, 0] - c0, pts[:, 1] - r0, (r1 - r0, c1 - c0))
        if not np.array_equal(back, mk[r0:r1, c0:c1]):
            changed.append((k, int((back != mk[r0:r1, c0:c1]).sum())))
    if changed:
        warnings.warn(f"{path}: {len(changed)} masks have holes or several pieces; their ImageJ outlines differ "
                      f"from the masks (mask index, pixels): {changed[:10]}", UserWarning, stacklevel=3)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for roi in rois:
                zf.writestr(f"{roi.name}.roi", roi.tobytes())
