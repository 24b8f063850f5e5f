"""Instance windows to masks: placement on the field, crops, and duplicate removal against naive references."""
from __future__ import annotations

import numpy as np
import pytest

from cellfie_caiman.instances import dedup_masks


def _disk(shape, center, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def test_dedup_keeps_best_of_overlapping_instances():
    shape = (40, 60)
    a = _disk(shape, (20, 20), 6)
    b = _disk(shape, (20, 21), 6)       # near copy of a (IoU ~0.8)
    c = _disk(shape, (20, 20), 3)       # inside a
    d = _disk(shape, (20, 40), 6)       # separate
    e = _disk(shape, (20, 29), 6)       # touches a (IoU small): a different neuron
    masks = np.array([a, b, c, d, e])
    scores = np.array([0.7, 0.9, 0.95, 0.6, 0.8])
    kept = dedup_masks(masks, scores, max_overlap=0.5)
    assert kept.tolist() == [2, 4, 3]
    # a lower max_overlap also removes neighbours that overlap a little
    assert dedup_masks(masks, scores, max_overlap=0.005).tolist() == [2, 3]  # e and c share one pixel


def _naive_dedup(masks, scores, max_overlap, containment):
    """Pairwise IoU and containment over whole fields, best score first (reference for dedup_masks)."""
    kept = []
    for i in sorted(range(len(masks)), key=lambda i: -scores[i]):
        a = masks[i].sum()
        if a == 0:
            continue
        dup = False
        for j in kept:
            inter = (masks[i] & masks[j]).sum()
            b = masks[j].sum()
            dup |= inter / (a + b - inter) > max_overlap or max(inter / a, inter / b) > containment
        if not dup:
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dedup_matches_a_naive_pairwise_reference_on_random_overlapping_masks(seed):
    from cellfie_caiman.instances import CONTAINMENT

    rng = np.random.default_rng(seed)
    shape = (50, 70)
    masks = np.array([_disk(shape, rng.uniform(-3, 53, 2) * [1, 1.4], rng.uniform(2, 8)) & (rng.random(shape) < 0.9)
                      for _ in range(60)] + [np.zeros(shape, bool)])
    scores = rng.random(len(masks))
    for max_overlap in (0.1, 0.3, 0.5):
        expected = _naive_dedup(masks, scores, max_overlap, CONTAINMENT)
        assert dedup_masks(masks, scores, max_overlap=max_overlap).tolist() == expected
    assert 5 < len(expected) < 60  # overlaps both kept and removed some


def test_local_masks_round_trip_dense_masks():
    from cellfie_caiman.instances import LocalMasks

    rng = np.random.default_rng(4)
    masks = rng.random((6, 20, 30)) < 0.05
    masks[2] = False
    local = LocalMasks.from_dense(masks)
    assert [c.shape for c in local.crops][2] == (0, 0)
    assert all(c.shape == (b[1] - b[0], b[3] - b[2]) for c, b in zip(local.crops, local.boxes, strict=True))
    np.testing.assert_array_equal(local.dense(), masks)
    np.testing.assert_array_equal(local.dense([4, 0]), masks[[4, 0]])
    ain = local.ain([4, 0, 2])
    assert ain.shape == (20 * 30, 3) and ain.dtype == bool and ain.flags.f_contiguous
    for k, i in enumerate([4, 0, 2]):
        np.testing.assert_array_equal(ain[:, k], masks[i].flatten("F"))


def test_windows_on_the_model_grid_are_placed_as_interpolation_at_whole_pixels_places_them():
    """Without zoom the window pixels are copied; with a zoom of exactly 1 + 1e-9 they are interpolated."""
    from cellfie_caiman.detection import Detections
    from cellfie_caiman.instances import place_windows

    rng = np.random.default_rng(3)
    w, shape = 16, (40, 44)
    centers = np.array([[20, 22], [3, 5], [38, 42], [0, 43]])  # inside, and windows overhanging every edge
    windows = np.zeros((4, w, w), np.float32)
    for k in range(4):
        windows[k] = 0.9 * _disk((w, w), (w // 2 + rng.integers(-1, 2), w // 2), 5) + 0.1 * rng.random((w, w))
    det = Detections(windows, np.ones(4, np.float32), centers, np.zeros(shape), np.zeros(shape))
    keep = np.ones(4, bool)
    copied, i1, c1 = place_windows(det, keep, shape, shape, w, 3)
    nearly = (shape[0] * (1 + 1e-12), shape[1] * (1 + 1e-12))
    interpolated, i2, c2 = place_windows(det, keep, shape, nearly, w, 3)
    assert i1.tolist() == i2.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(copied.dense(), interpolated.dense())
    for k, (r, c) in enumerate(centers):  # each mask is its window's disk, cut at the field's edge
        full = np.zeros((shape[0] + 2 * w, shape[1] + 2 * w), bool)
        full[r + w - w // 2:r + w + w // 2, c + w - w // 2:c + w + w // 2] = windows[k] > 0.5
        np.testing.assert_array_equal(copied.dense()[k], full[w:-w, w:-w])
