"""Writing ROIs: :func:`write_rois` as neurofinder JSON or an ImageJ RoiSet of traced outlines, atomically."""
from __future__ import annotations

import json
import logging
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .._files import atomic_path
from ..masks import bounding_box
from .checks import RoiError
from .shapes import outline, polygon_mask

logger = logging.getLogger(__name__)


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
