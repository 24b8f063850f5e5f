"""Operations on stacks of boolean masks (K, rows, cols): size, CaImAn's ``Ain`` layout, bounding boxes,
memory-light copies, sparse rows and best overlaps. Reading and writing ROI files is :mod:`cellfie_caiman.rois`."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    import numpy.typing as npt
    import scipy.sparse

from ._memory import zeros_on_demand

__all__ = ["mask_diameter", "masks_to_ain", "bounding_box", "take_masks", "sparse_rows", "best_overlap",
           "footprints_to_masks"]


def mask_diameter(masks: np.ndarray) -> float:
    """Typical neuron diameter in pixels: ``2 * sqrt(median area / pi)`` of the non-empty masks.

    Parameters
    ----------
    masks : ndarray, shape (N, rows, cols)
        Boolean masks (area: pixel count); for other dtypes the area is the sum of a mask's values.

    Returns
    -------
    float
        Pixels; NaN when no mask is non-empty.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :40]
    >>> round(mask_diameter(np.array([(yy - 20) ** 2 + (xx - 20) ** 2 <= 36])), 1)
    12.0
    """
    masks = np.asarray(masks)
    if masks.dtype == bool:  # counted mask by mask: 7x as fast as a sum over the stack (300 masks of 512 x 512)
        areas = np.array([np.count_nonzero(m) for m in masks], dtype=np.int64)
    else:
        areas = masks.reshape(len(masks), -1).sum(1)
    areas = areas[areas > 0]
    return float(2 * np.sqrt(np.median(areas) / np.pi)) if areas.size else float("nan")


def masks_to_ain(masks: np.ndarray) -> np.ndarray:
    """CaImAn's seeding matrix (``Ain``) from masks.

    Parameters
    ----------
    masks : ndarray of bool, shape (K, rows, cols)

    Returns
    -------
    ndarray of bool, shape (rows*cols, K), Fortran-ordered
        Column k is ``masks[k].flatten('F')`` (pixel index ``i + j*rows``).
    """
    masks = np.asarray(masks, dtype=bool)
    k = masks.shape[0]
    return np.asfortranarray(masks.transpose(0, 2, 1).reshape(k, -1).T)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(r0, r1, c0, c1)``: the rows ``r0:r1`` and columns ``c0:c1`` holding a 2-D mask's pixels; None if it has
    none. From ``any()`` along each axis, far cheaper than ``nonzero()`` on a large field.

    Parameters
    ----------
    mask : ndarray, shape (rows, cols)
        Nonzero is in.

    Returns
    -------
    (int, int, int, int) or None

    Examples
    --------
    >>> m = np.zeros((5, 6), bool); m[1, 2] = m[3, 4] = True
    >>> bounding_box(m)
    (1, 4, 2, 5)
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def take_masks(masks: np.ndarray, index: Sequence[int] | np.ndarray) -> np.ndarray:
    """``masks[index]`` as a new bool array that takes memory for the masks' pixels, not for the whole stack.

    A fancy-indexed copy of a (K, rows, cols) stack writes every byte of it: 600 masks of a 1280 x 1280 field
    take 1 GB of resident memory. Here only the rows between each mask's first and last pixel are copied, into
    :func:`cellfie_caiman._memory.zeros_on_demand` memory.

    Parameters
    ----------
    masks : ndarray, shape (K, rows, cols)
        Binary masks (nonzero is in).
    index : sequence of int
        Which masks, in order (repeats and negative indices as in NumPy).

    Returns
    -------
    ndarray of bool, shape (len(index), rows, cols)

    Raises
    ------
    ValueError
        If ``masks`` is not 3-D.
    IndexError
        If an index is out of range.

    Examples
    --------
    >>> m = np.zeros((3, 4, 4), bool); m[0, 1, 1] = m[2, 3, 0] = True
    >>> take_masks(m, [2, 0]).nonzero()
    (array([0, 1]), array([3, 1]), array([0, 1]))
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"expected masks (K, rows, cols), got shape {masks.shape}")
    index = np.asarray(index, dtype=np.intp).reshape(-1)
    if index.size and (index.max() >= len(masks) or index.min() < -len(masks)):
        raise IndexError(f"mask index out of range for {len(masks)} masks: {index.min()}..{index.max()}")
    out = zeros_on_demand((len(index),) + masks.shape[1:], "masks")
    for j, k in enumerate(index):
        put_in_box(out, j, masks[k] if masks.dtype == bool else masks[k] != 0)
    return out


def put_in_box(stack: np.ndarray, k: int, mask: np.ndarray) -> None:
    """Write a 2-D bool mask into the zeroed ``stack[k]`` through its bounding box only, so that the stack's other
    pages stay untouched (see :func:`cellfie_caiman._memory.zeros_on_demand`)."""
    box = bounding_box(mask)
    if box is not None:
        r0, r1, c0, c1 = box
        stack[k, r0:r1, c0:c1] = mask[r0:r1, c0:c1]


def sparse_rows(a: np.ndarray, dtype: npt.DTypeLike = np.float64) -> scipy.sparse.csr_matrix:
    """A 2-D array (n, m) as a ``scipy.sparse.csr_matrix`` of ``dtype``, read once in its own memory order.

    The same matrix as ``scipy.sparse.csr_matrix(a, dtype=dtype)`` (non-zero entries, NaN included), made from one
    ``np.flatnonzero`` pass instead of a two-dimensional ``nonzero``: for 1300 masks of 1280 x 1280 pixels, 0.4 s
    against 6.7 s, and against 15.5 s for a Fortran-ordered array such as ``Ain``, which is read through its
    transpose.

    Parameters
    ----------
    a : ndarray, shape (n, m)
    dtype : dtype
        Of the matrix's values.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, m)

    Raises
    ------
    ValueError
        If ``a`` is not 2-D.

    Examples
    --------
    >>> m = np.zeros((2, 5), bool); m[0, 1] = m[1, 4] = True
    >>> sparse_rows(m).indices.tolist(), sparse_rows(m).indptr.tolist()
    ([1, 4], [0, 1, 2])
    """
    import scipy.sparse

    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {a.shape}")
    if a.size == 0:
        return scipy.sparse.csr_matrix(a.shape, dtype=dtype)
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        return sparse_rows(a.T, dtype).T.tocsr()
    flat = np.ascontiguousarray(a).reshape(-1)
    idx = np.flatnonzero(flat)
    rows, cols = np.divmod(idx, a.shape[1])
    indptr = np.zeros(a.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
    return scipy.sparse.csr_matrix((flat[idx].astype(dtype), cols, indptr), shape=a.shape)


def best_overlap(a: np.ndarray | scipy.sparse.spmatrix, b: np.ndarray | scipy.sparse.spmatrix
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``, the row of ``b`` whose support overlaps it most, by intersection over union.

    Parameters
    ----------
    a, b : sparse matrices or 2-D arrays, (n, pixels) and (m, pixels)
        Masks as rows, pixels in the same order in both; entries > 0 are the supports.

    Returns
    -------
    which : ndarray (n,) int
        The row of ``b`` with the largest IoU (the first such row on ties); -1 where no row overlaps.
    iou : ndarray (n,) float
        That IoU; 0 where no row overlaps.

    Raises
    ------
    ValueError
        If ``a`` and ``b`` have different numbers of pixels.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 0], [0, 0, 0, 1]]); b = np.array([[0, 1, 1, 0], [1, 1, 1, 0]])
    >>> which, iou = best_overlap(a, b)
    >>> which.tolist(), iou.round(3).tolist()
    ([1, -1], [0.667, 0.0])
    """
    import scipy.sparse

    def support(x):
        x = scipy.sparse.csr_matrix(x) if scipy.sparse.issparse(x) else sparse_rows(np.asarray(x))
        return (x > 0).astype(np.float64).tocsr()

    sa, sb = support(a), support(b)
    if sa.shape[1] != sb.shape[1]:
        raise ValueError(f"masks of {sa.shape[1]} and {sb.shape[1]} pixels cannot be compared")
    which = np.full(sa.shape[0], -1)
    best = np.zeros(sa.shape[0])
    inter = (sa @ sb.T).tocoo()
    if inter.nnz:
        size_a, size_b = np.asarray(sa.sum(1)).ravel(), np.asarray(sb.sum(1)).ravel()
        iou = inter.data / (size_a[inter.row] + size_b[inter.col] - inter.data)
        # by row, then IoU descending, then the lower index of b first: the first entry of each row wins
        order = np.lexsort((inter.col, -iou, inter.row))
        rows = inter.row[order]
        first = np.r_[True, rows[1:] != rows[:-1]]
        which[rows[first]] = inter.col[order][first]
        best[rows[first]] = iou[order][first]
    return which, best


#: Fraction of a footprint's peak above which CaImAn's benchmark protocol counts a pixel as part of the neuron.
FOOTPRINT_THRESHOLD = 0.2


def footprints_to_masks(A: np.ndarray | scipy.sparse.spmatrix, dims: tuple[int, int],
                        thr: float = FOOTPRINT_THRESHOLD) -> np.ndarray:
    """Binary ROIs from CNMF footprints: pixels above ``thr`` times the footprint's peak, connected to the peak.

    This is the binarisation of CaImAn's benchmark protocol (``threshold_spatial_components(maxthr=0.2)``, then
    the connected part (8-connected) of the footprint that holds its maximum), with holes filled.

    Parameters
    ----------
    A : scipy.sparse matrix or ndarray, shape (rows*cols, K)
        Footprints, one per column, pixels in Fortran order (pixel ``i + j*rows``), as in CaImAn.
    dims : (int, int)
        (rows, cols).
    thr : float
        Fraction of each footprint's maximum.

    Returns
    -------
    ndarray, bool, shape (K, rows, cols)
        A footprint without a positive value gives an empty mask.

    Raises
    ------
    ValueError
        If ``A`` has not ``rows * cols`` rows.
    """
    import scipy.sparse as sp

    rows, cols = (int(d) for d in dims)
    A = sp.csc_matrix(A)
    if A.shape[0] != rows * cols:
        raise ValueError(f"footprints have {A.shape[0]} pixels, dims {dims} have {rows * cols}")
    masks = zeros_on_demand((A.shape[1], rows, cols), "masks of the footprints")
    for k in range(A.shape[1]):
        lo, hi = A.indptr[k], A.indptr[k + 1]
        idx, val = A.indices[lo:hi], A.data[lo:hi]
        if idx.size == 0 or not np.any(val > 0):
            continue
        keep = val > thr * val.max()
        r, c = idx[keep] % rows, idx[keep] // rows
        r0, c0 = r.min(), c.min()
        box = np.zeros((r.max() - r0 + 1, c.max() - c0 + 1), dtype=bool)
        box[r - r0, c - c0] = True
        labels, _ = ndimage.label(box, structure=np.ones((3, 3)))
        peak = np.argmax(val)
        peak_label = labels[idx[peak] % rows - r0, idx[peak] // rows - c0]
        box = ndimage.binary_fill_holes(labels == peak_label)
        masks[k, r0:r0 + box.shape[0], c0:c0 + box.shape[1]] = box
    return masks
