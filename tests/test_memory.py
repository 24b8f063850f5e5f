"""Arrays whose memory is taken on demand (cellfie_caiman._memory)."""
import os

import numpy as np
import pytest


@pytest.mark.parametrize("shape", [(3, 5, 7), (40, 512, 512)])  # np.zeros, and (10 MB) a private memory map
def test_zeros_on_demand_is_a_writable_zero_array_that_survives_pickling(shape):
    import pickle

    from cellfie_caiman._memory import zeros_on_demand

    a = zeros_on_demand(shape, "masks")
    assert a.shape == shape and a.dtype == bool and a.flags.writeable and a.flags.c_contiguous and not a.any()
    a[1, 2:4, 3:5] = True
    expected = np.zeros(shape, bool)
    expected[1, 2:4, 3:5] = True
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)), expected)
    view = a[1]
    del a  # a view keeps the memory alive
    assert view[2:4, 3:5].all() and view.sum() == 4


def test_memory_the_system_cannot_give_is_a_clear_memory_error():
    from cellfie_caiman._memory import available_memory, zeros_on_demand

    with pytest.raises(MemoryError, match=r"the masks, a dense bool array of shape \(4096, 2097152, 2097152\)"):
        zeros_on_demand((4096, 2**21, 2**21), "masks")  # 2**54 bytes
    free = available_memory()
    assert free is None or free > 0


def _resident_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _stack(n: int, side: int) -> np.ndarray:
    """n masks of side x side, a 10 x 10 box each, built as the package builds them."""
    from cellfie_caiman._memory import zeros_on_demand

    masks = zeros_on_demand((n, side, side), "masks")
    for k in range(n):
        r, c = (k * 37) % (side - 10), (k * 91) % (side - 10)
        masks[k, r:r + 10, c:c + 10] = True
    return masks


def _builders():
    import scipy.sparse as sp

    from cellfie_caiman.masks import footprints_to_masks, take_masks
    from cellfie_caiman.rois import masks_from_coordinates

    def from_coordinates(masks):
        return masks_from_coordinates([np.argwhere(m) for m in masks], masks.shape[1:])

    def from_footprints(masks):  # CaImAn's A: (pixels, K), Fortran pixel order
        flat = [np.flatnonzero(m.T) for m in masks]
        a = sp.csc_matrix((np.ones(sum(map(len, flat))), np.concatenate(flat),
                           np.r_[0, np.cumsum([len(f) for f in flat])]), shape=(masks[0].size, len(masks)))
        return footprints_to_masks(a, masks.shape[1:])

    return {"masks_from_coordinates": from_coordinates, "footprints_to_masks": from_footprints,
            "take_masks": lambda masks: take_masks(masks, np.arange(len(masks))[::-1])}


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="resident memory read from /proc")
@pytest.mark.parametrize("builder", ["masks_from_coordinates", "footprints_to_masks", "take_masks"])
def test_mask_stacks_of_a_large_field_take_memory_for_their_pixels_only(builder):
    masks = _stack(200, 1024)  # 210 MB as a dense stack, 20,000 pixels in all
    build = _builders()[builder]  # imports first: they take memory too
    before = _resident_bytes()
    out = build(masks)
    grown = _resident_bytes() - before
    order = slice(None, None, -1) if builder == "take_masks" else slice(None)
    np.testing.assert_array_equal(out, masks[order])
    assert grown < 20e6, f"{builder}: resident memory grew by {grown / 1e6:.0f} MB for 200 small masks"
