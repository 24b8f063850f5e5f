"""ROI geometry: polygons, ovals and ImageJ splines rasterised into masks, pixel coordinates into masks, and
the outline of a mask traced along pixel edges."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._memory import zeros_on_demand
from ..masks import bounding_box
from .checks import RoiError, _check_shape


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
