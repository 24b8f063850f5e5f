"""masks: sparse rows, bounding boxes, best overlaps, and CNMF footprints binarised as CaImAn's protocol does."""
import numpy as np
import pytest
import scipy.sparse as sp

from cellfie_caiman.masks import footprints_to_masks


def _f_order(footprints):
    """(K, rows, cols) -> (rows*cols, K) with pixel i + j*rows (CaImAn's layout), computed pixel by pixel."""
    k, rows, cols = footprints.shape
    A = np.zeros((rows * cols, k))
    for i in range(rows):
        for j in range(cols):
            A[i + j * rows] = footprints[:, i, j]
    return A


def test_footprints_to_masks_keeps_peak_component_above_threshold():
    rows, cols = 30, 40
    yy, xx = np.mgrid[:rows, :cols]
    blob = np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / (2 * 3.0**2))
    far = 0.5 * np.exp(-((yy - 22) ** 2 + (xx - 32) ** 2) / (2 * 1.5**2))  # separate, above 0.2 of the peak
    ring = (np.hypot(yy - 15, xx - 20) <= 5) & (np.hypot(yy - 15, xx - 20) > 2)  # a hole in the middle
    fps = np.stack([blob + far, ring * 1.0, np.zeros((rows, cols))])
    masks = footprints_to_masks(sp.csc_matrix(_f_order(fps)), (rows, cols), thr=0.2)
    assert masks.shape == (3, rows, cols) and masks.dtype == bool
    # naive expectation: the blob's pixels above 0.2 of its peak (the far blob is excluded: not connected)
    np.testing.assert_array_equal(masks[0], blob > 0.2)
    np.testing.assert_array_equal(masks[1], np.hypot(yy - 15, xx - 20) <= 5)  # hole filled
    assert not masks[2].any()
    # dense input gives the same
    np.testing.assert_array_equal(footprints_to_masks(_f_order(fps), (rows, cols)), masks)


def test_footprints_to_masks_checks_dims():
    with pytest.raises(ValueError, match="pixels"):
        footprints_to_masks(np.zeros((10, 2)), (4, 4))


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sparse_rows_is_scipys_conversion(order, kind):
    import scipy.sparse

    from cellfie_caiman.masks import sparse_rows

    rng = np.random.default_rng(7)
    a = rng.random((37, 53)) < 0.05
    if kind == "float":
        a = np.where(a, rng.normal(size=a.shape), 0.0)
        a[3, 4], a[10, 52] = np.nan, -2.5
    a = np.asarray(a, order=order)
    got = sparse_rows(a, np.float32)
    ref = scipy.sparse.csr_matrix(a, dtype=np.float32)
    assert isinstance(got, scipy.sparse.csr_matrix) and got.dtype == np.float32 and got.shape == a.shape
    assert got.has_sorted_indices or (got.indices == np.sort(got.indices)).all()
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.data, ref.data)  # NaN in the same place


def test_sparse_rows_of_empty_and_bad_shapes():
    from cellfie_caiman.masks import sparse_rows

    assert sparse_rows(np.zeros((0, 5), bool)).shape == (0, 5)
    assert sparse_rows(np.zeros((4, 0), bool)).shape == (4, 0)
    assert sparse_rows(np.zeros((3, 4), bool)).nnz == 0
    with pytest.raises(ValueError, match="2-D"):
        sparse_rows(np.zeros((2, 3, 4), bool))


def test_bounding_box_against_nonzero():
    from cellfie_caiman.masks import bounding_box

    rng = np.random.default_rng(3)
    for _ in range(20):
        m = np.zeros((30, 41), bool)
        m[tuple(rng.integers(0, (30, 41), (rng.integers(1, 6), 2)).T)] = True
        r, c = np.nonzero(m)
        assert bounding_box(m) == (r.min(), r.max() + 1, c.min(), c.max() + 1)
    assert bounding_box(np.zeros((4, 4), bool)) is None


def test_best_overlap_is_the_naive_search():
    from cellfie_caiman.masks import best_overlap

    rng = np.random.default_rng(5)
    a = rng.random((30, 200)) < 0.05
    b = rng.random((25, 200)) < 0.05
    b[3] = b[7]  # a tie: the first of the two wins
    a[1] = b[7]
    a[0] = False
    a[0, 199] = True
    b[:, 199] = False  # a row that overlaps none
    which, iou = best_overlap(a, b)
    for i in range(len(a)):
        ious = np.array([(a[i] & m).sum() / max((a[i] | m).sum(), 1) for m in b])
        if ious.max() == 0:
            assert which[i] == -1 and iou[i] == 0
        else:
            assert which[i] == int(np.argmax(ious)) and iou[i] == pytest.approx(ious.max())
    assert which[1] == 3 and which[0] == -1 and (which >= 0).sum() > 20  # the tie, no overlap, and the others
    with pytest.raises(ValueError, match="200 and 100 pixels"):
        best_overlap(a, b[:, :100])
