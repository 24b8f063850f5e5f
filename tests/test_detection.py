"""The networks' pass: rotations/flips, test-time augmentation of both networks, batching, one-pass mode."""
from __future__ import annotations

import numpy as np
import pytest

from cellfie_caiman.simulate import simulate


@pytest.fixture(scope="module")
def sim():
    return simulate(300, (128, 128), 40, seed=11, fs=15.0)


def _group(x, k, flip):
    """Independent enumeration of the 8 rotations/flips of the first two axes (np.rot90 and np.flip)."""
    return np.rot90(np.flip(x, 0) if flip else x, k, axes=(0, 1))


def _ungroup(x, k, flip):
    x = np.rot90(x, -k, axes=(0, 1))
    return np.flip(x, 0) if flip else x


def test_dihedral_transforms_are_the_eight_distinct_ones_and_invert():
    from cellfie_caiman.detection import _dihedral, _undo_dihedral

    x = np.arange(12.0).reshape(3, 4)
    ours = [_dihedral(x, t) for t in range(8)]
    for t in range(8):
        np.testing.assert_array_equal(_undo_dihedral(ours[t], t), x)
    ref = [_group(x, k, f) for k in range(4) for f in (False, True)]
    key = sorted(a.tobytes() + bytes(a.shape) for a in ours)
    assert key == sorted(a.tobytes() + bytes(a.shape) for a in ref)
    assert len(set(key)) == 8


@pytest.fixture(scope="module")
def field(sim):
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.models import load_model, stack_inputs

    model = load_model("default")
    return model, stack_inputs(model_summary(sim.movie[:, :64, :64], model=model), model.config)


def test_tta_maps_are_the_mean_over_rotations_and_flips(field):
    from cellfie_caiman.detection import predict_maps_tta

    model, x = field
    prob, heat = predict_maps_tta(model, x)
    ref = np.mean([_ungroup(np.stack(model.predict_maps(np.ascontiguousarray(_group(x, k, f))), -1), k, f)
                   for k in range(4) for f in (False, True)], axis=0)
    np.testing.assert_allclose(prob, ref[..., 0], atol=1e-5)
    np.testing.assert_allclose(heat, ref[..., 1], atol=1e-5)


@pytest.mark.parametrize("max_batch_pixels", [1, 3 * 64 * 40, 2**21])
def test_batched_tta_maps_match_one_field_at_a_time_on_a_non_square_field(field, max_batch_pixels):
    from cellfie_caiman.detection import predict_maps_tta

    model, x = field
    x = np.ascontiguousarray(x[:, :40])  # transposed orientations have another shape: batched separately
    prob, heat = predict_maps_tta(model, x, max_batch_pixels=max_batch_pixels)
    ref = np.mean([_ungroup(np.stack(model.predict_maps(np.ascontiguousarray(_group(x, k, f))), -1), k, f)
                   for k in range(4) for f in (False, True)], axis=0)
    np.testing.assert_allclose(prob, ref[..., 0], atol=1e-5)
    np.testing.assert_allclose(heat, ref[..., 1], atol=1e-5)


def test_instance_batches_match_one_window_at_a_time(field):
    """Splitting the windows into batches (the last one partial) must not change any output."""
    from cellfie_caiman.detection import extract_windows

    model, x = field
    rng = np.random.default_rng(3)
    centers = rng.integers(0, 64, size=(131, 2))
    windows = extract_windows(x, centers, model.config.window)
    masks, scores = model.predict_instances(windows, batch_size=64)
    ref = [model.predict_instances(windows[i:i + 1], batch_size=1) for i in range(len(windows))]
    np.testing.assert_allclose(masks, np.concatenate([m for m, _ in ref]), atol=1e-5)
    np.testing.assert_allclose(scores, np.concatenate([s for _, s in ref]), atol=1e-5)


def test_tta_instance_windows_stay_centred_on_the_candidate(field):
    """Reference: transform the whole field, cut the window centred on the image of the candidate, paste the
    predicted mask back into a field-sized canvas, undo the transform and cut the original window."""
    from cellfie_caiman.detection import extract_windows, predict_instances_tta

    model, x = field
    w, h = model.config.window, model.config.window // 2
    centers = np.array([[20, 31], [40, 25]])
    masks, scores = predict_instances_tta(model, x, centers)
    rows, cols = x.shape[:2]
    index = np.arange(rows * cols).reshape(rows, cols)
    ref_m, ref_s = np.zeros_like(masks, np.float64), np.zeros(len(centers))
    for k in range(4):
        for f in (False, True):
            moved = _group(index, k, f)
            xt = np.ascontiguousarray(_group(x, k, f))
            for i, (r, c) in enumerate(centers):
                rt, ct = np.argwhere(moved == index[r, c])[0]
                m, s = model.predict_instances(extract_windows(xt, np.array([[rt, ct]]), w))
                canvas = np.zeros((xt.shape[0] + w, xt.shape[1] + w))
                canvas[rt:rt + w, ct:ct + w] = m[0]  # canvas offset by h on each side
                back = _ungroup(canvas[h:h + xt.shape[0], h:h + xt.shape[1]], k, f)
                padded = np.pad(back, h)
                ref_m[i] += padded[r:r + w, c:c + w] / 8
                ref_s[i] += s[0] / 8
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)
    # the reference loses the pixels of a window that fall outside the field; compare inside it
    for i, (r, c) in enumerate(centers):
        inside = np.zeros((w, w), bool)
        inside[max(0, h - r):min(w, h + rows - r), max(0, h - c):min(w, h + cols - c)] = True
        np.testing.assert_allclose(masks[i][inside], ref_m[i][inside], atol=1e-5)


def test_tta_off_is_one_pass(field):
    from cellfie_caiman.detection import detect, extract_windows

    model, x = field
    det = detect(model, x, tta=False)
    prob, heat = model.predict_maps(x)
    np.testing.assert_allclose(det.prob, prob, atol=1e-6)  # not bit for bit: a GPU can round two calls differently
    _, scores = model.predict_instances(extract_windows(x, det.centers, model.config.window))
    np.testing.assert_allclose(det.scores, scores, atol=1e-6)


def test_tta_4_averages_both_networks_over_the_four_flips(field):
    """Reference: flip the whole field (np.flip), run each network, flip back; windows cut around the flipped
    image of each candidate centre."""
    from cellfie_caiman.detection import detect, extract_windows

    model, x = field
    det = detect(model, x, tta=4)
    rows, cols = x.shape[:2]
    flips = [(), (0,), (1,), (0, 1)]
    maps = [np.flip(np.stack(model.predict_maps(np.ascontiguousarray(np.flip(x, a))), -1), a) for a in flips]
    ref = np.mean(maps, axis=0)
    np.testing.assert_allclose(det.prob, ref[..., 0], atol=1e-5)
    np.testing.assert_allclose(det.heat, ref[..., 1], atol=1e-5)
    assert len(det.centers)
    scores = np.zeros(len(det.centers))
    for axes in flips:
        moved = det.centers.copy()
        for ax in axes:
            moved[:, ax] = (rows, cols)[ax] - 1 - moved[:, ax]
        _, s = model.predict_instances(extract_windows(np.ascontiguousarray(np.flip(x, axes)), moved,
                                                       model.config.window))
        scores += s / 4
    np.testing.assert_allclose(det.scores, scores, atol=1e-5)


@pytest.mark.parametrize("tta", [3, 16, 0.5, "8", None])
def test_tta_other_than_a_flag_or_1_2_4_8_orientations_is_refused(tta):
    from cellfie_caiman.detection import tta_orientations
    from cellfie_caiman.initialize import initialize

    with pytest.raises(ValueError, match="tta must be"):
        tta_orientations(tta)
    with pytest.raises(ValueError, match="tta must be"):
        initialize(np.zeros((4, 8, 8), np.float32), tta=tta)  # refused before any work
    assert [tta_orientations(t) for t in (True, False, 1, 2, 4, 8)] == [8, 1, 1, 2, 4, 8]


def test_progress_bar_counts_the_passes_and_leaves_the_detections_alone(field, capsys):
    from cellfie_caiman.detection import detect

    model, x = field
    quiet = detect(model, x)
    capsys.readouterr()
    shown = detect(model, x, progress=True)
    err = capsys.readouterr().err
    assert "networks" in err and "16/16" in err and f"candidates={len(shown.centers)}" in err
    np.testing.assert_array_equal(shown.centers, quiet.centers)
    np.testing.assert_array_equal(shown.scores, quiet.scores)
    detect(model, x, tta=False, progress=True)
    assert "2/2" in capsys.readouterr().err
    detect(model, x, tta=4, progress=True)
    assert "8/8" in capsys.readouterr().err
