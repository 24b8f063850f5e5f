"""Tests of ROI matching: hand-computed cases, a brute-force reference of CaImAn's rule, and the real data figure."""
from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse as sp

from cellfie_caiman.evaluate import MatchResult, match_rois, pool_matches

DATA = Path(__file__).parents[1].parent / "shared" / "data"


def _rect(shape, r0, r1, c0, c1):
    m = np.zeros(shape, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def _disc(shape, center, radius):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius ** 2


def _ain(masks):
    """CaImAn's Ain: (pixels, K) with Fortran-order pixels."""
    k, rows, cols = masks.shape
    return masks.transpose(1, 2, 0).reshape(rows * cols, k, order="F")


# ---------------------------------------------------------------------------------------------- hand-computed cases


def test_two_overlapping_squares_known_iou():
    shape = (40, 40)
    gt = _rect(shape, 10, 20, 10, 20)[None]
    # shifted by 5 columns: intersection 50, union 150, IoU 1/3, cost 2/3 < 0.7
    res = match_rois(gt, _rect(shape, 10, 20, 15, 25)[None])
    assert isinstance(res, MatchResult)
    assert res.cost[0, 0] == pytest.approx(2 / 3)
    assert (res.tp, res.fp, res.fn) == (1, 0, 0) and res.matched == [(0, 0)]
    assert res.precision == res.recall == res.f1 == 1.0
    # shifted by 6: intersection 40, union 160, IoU 0.25, cost 0.75 >= 0.7
    res = match_rois(gt, _rect(shape, 10, 20, 16, 26)[None])
    assert res.cost[0, 0] == pytest.approx(0.75)
    assert (res.tp, res.fp, res.fn) == (0, 1, 1) and res.matched == []
    assert res.precision == res.recall == res.f1 == 0.0


def test_centroid_gate_is_strict_at_min_dist():
    shape = (60, 60)
    gt = _rect(shape, 10, 40, 10, 40)[None]
    pred = _rect(shape, 16, 46, 18, 48)[None]  # centroid moved by (6, 8): exactly 10 px
    res = match_rois(gt, pred, min_dist=10)
    assert res.cost[0, 0] == 1.0 and res.tp == 0
    iou = (24 * 22) / (2 * 900 - 24 * 22)
    res = match_rois(gt, pred, min_dist=10.001)
    assert res.cost[0, 0] == pytest.approx(1 - iou) and res.tp == 1
    # no distance limit: every overlapping pair is a candidate, as with a gate wider than the field
    far = _rect(shape, 30, 60, 30, 60)[None]  # centroid 28 px away, IoU 100 / 1700
    assert match_rois(gt, far, min_dist=np.inf, thresh_cost=0.99).tp == 1
    np.testing.assert_array_equal(match_rois(gt, far, min_dist=np.inf).cost, match_rois(gt, far, min_dist=1e9).cost)
    assert match_rois(gt, far, min_dist=10, thresh_cost=0.99).tp == 0
    # the IoU rule has no centroid gate
    assert match_rois(gt, pred, rule="iou").tp == (1 if iou >= 0.5 else 0)


def test_thresh_cost_boundary_is_strict():
    shape = (30, 30)
    gt = _rect(shape, 10, 20, 10, 20)[None]  # 100 px
    inside30 = _rect(shape, 10, 13, 10, 20)[None]  # 30 px inside: IoU 0.3, cost 0.7
    res = match_rois(gt, inside30)
    assert res.cost[0, 0] == pytest.approx(0.7) and res.tp == 0
    assert match_rois(gt, inside30, thresh_cost=0.7000001).tp == 1
    inside31 = inside30.copy()
    inside31[0, 13, 10] = True  # IoU 0.31
    assert match_rois(gt, inside31).tp == 1


def test_iou_rule_threshold_is_inclusive_at_half():
    shape = (30, 30)
    gt = _rect(shape, 10, 20, 10, 20)[None]
    half = _rect(shape, 10, 15, 10, 20)[None]  # IoU exactly 0.5
    assert match_rois(gt, half, rule="iou").tp == 1
    less = half.copy()
    less[0, 14, 19] = False
    assert match_rois(gt, less, rule="iou").tp == 0
    assert match_rois(gt, less, rule="caiman").tp == 1  # IoU 0.49 > 0.3


def test_one_to_one_when_two_predictions_overlap_one_gt():
    shape = (40, 40)
    gt = _rect(shape, 10, 20, 10, 20)[None]
    good = _rect(shape, 10, 20, 12, 22)  # IoU 80/120
    worse = _rect(shape, 10, 20, 14, 24)  # IoU 60/140
    for rule in ("caiman", "iou"):
        res = match_rois(gt, np.stack([worse, good]), rule=rule)
        assert (res.tp, res.fp, res.fn) == (1, 1, 0)
        assert res.matched == [(0, 1)]
        assert res.precision == 0.5 and res.recall == 1.0 and res.f1 == pytest.approx(2 / 3)


def test_assignment_is_global_not_greedy():
    # gt0 overlaps p0 best, but p0 is gt1's only partner: the optimum pairs gt0-p1 and gt1-p0
    shape = (40, 60)
    gt0 = _rect(shape, 10, 20, 10, 20)
    gt1 = _rect(shape, 10, 20, 16, 26)
    p0 = _rect(shape, 10, 20, 13, 23)  # IoU 70/130 with gt0, 70/130 with gt1
    p1 = _rect(shape, 10, 20, 8, 18)  # IoU 80/120 with gt0, 20/180 with gt1
    res = match_rois(np.stack([gt0, gt1]), np.stack([p0, p1]))
    assert res.matched == [(0, 1), (1, 0)]


def test_empty_inputs_give_zeros_without_warnings():
    shape = (20, 20)
    masks = np.stack([_rect(shape, 2, 6, 2, 6), _rect(shape, 10, 15, 10, 15)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = match_rois(np.zeros((0, 20, 20), bool), masks)
        assert (res.tp, res.fp, res.fn, res.precision, res.recall, res.f1) == (0, 2, 0, 0.0, 0.0, 0.0)
        assert res.cost.shape == (0, 2)
        res = match_rois(masks, [])
        assert (res.tp, res.fp, res.fn, res.f1) == (0, 0, 2, 0.0)
        res = match_rois(np.zeros((0, 20, 20)), np.zeros((0, 20, 20)))
        assert (res.tp, res.fp, res.fn, res.f1) == (0, 0, 0, 0.0)
        # an empty mask inside a set never matches and raises no warning
        res = match_rois(np.concatenate([masks, np.zeros((1, 20, 20), bool)]), masks)
        assert (res.tp, res.fp, res.fn) == (2, 0, 1)


def test_bad_inputs_are_refused():
    masks = np.zeros((2, 10, 10), bool)
    with pytest.raises(ValueError, match="rule"):
        match_rois(masks, masks, rule="dice")
    with pytest.raises(ValueError, match="dims"):
        match_rois(masks, _ain(masks))
    with pytest.raises(ValueError, match="differ"):
        match_rois(masks, np.zeros((2, 10, 11), bool))
    with pytest.raises(ValueError, match="pixels"):
        match_rois(_ain(masks), _ain(masks), dims=(5, 21))
    for setting in (dict(thresh_cost=0), dict(thresh_cost=1.5), dict(min_dist=-1), dict(min_dist=-np.inf),
                    dict(min_dist=np.nan)):  # a cost is 1 - IoU
        with pytest.raises(ValueError, match=next(iter(setting))):
            match_rois(masks, masks, **setting)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_mask_values_are_refused(bad):
    """CaImAn refuses a NaN cost; a NaN pixel must not silently leave (or, inf, join) a mask."""
    masks = np.stack([_rect((20, 20), 2, 6, 2, 6), _rect((20, 20), 10, 15, 10, 15)]).astype(float)
    broken = masks.copy()
    broken[1, 12, 12] = bad
    for gt, pred, dims in [(masks, broken, None), (broken, masks, None), (_ain(masks), _ain(broken), (20, 20)),
                           (sp.csc_matrix(_ain(broken)), _ain(masks), (20, 20))]:
        with pytest.raises(ValueError, match="finite"):
            match_rois(gt, pred, dims=dims)


def test_non_numeric_masks_are_refused():
    masks = np.zeros((2, 10, 10), bool)
    for bad in (masks.astype(complex), masks.astype(str)):
        with pytest.raises(ValueError, match="masks_pred"):
            match_rois(masks, bad)


def test_list_of_masks_of_different_frame_shapes_is_a_clear_error():
    masks = [np.ones((10, 10), bool), np.ones((10, 11), bool)]
    with pytest.raises(ValueError, match=r"masks_gt.*\(10, 10\).*\(10, 11\)"):
        match_rois(masks, np.ones((1, 10, 10), bool))


@pytest.mark.parametrize("dims", [(-20, -20), (20.5, 20), (0, 400), (True, 400), (20,), (20, 20, 1)])
def test_bad_dims_are_refused(dims):
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:6, 2:6] = masks[1, 10:14, 10:14] = True
    with pytest.raises(ValueError, match="dims"):
        match_rois(_ain(masks), _ain(masks), dims=dims)


def test_empty_ain_of_the_wrong_size_is_refused():
    masks = np.zeros((2, 20, 20), bool)
    with pytest.raises(ValueError, match="pixels"):
        match_rois(np.zeros((100, 0)), masks, dims=(20, 20))
    # the right size is an empty set of that frame
    assert match_rois(np.zeros((400, 0)), masks, dims=(20, 20)).fp == 2


# ------------------------------------------------------------------------------------------- reference implementation


def _naive_caiman(gt, pred, thresh_cost=0.7, min_dist=10.0):
    """CaImAn's rule as documented, pair by pair, with an exhaustive search over assignments."""
    n_gt, n_pred = len(gt), len(pred)
    cost = np.ones((n_gt, n_pred))
    for i in range(n_gt):
        ci = np.array(ndi.center_of_mass(gt[i].astype(float)))
        for j in range(n_pred):
            cj = np.array(ndi.center_of_mass(pred[j].astype(float)))
            if np.linalg.norm(ci - cj) < min_dist:
                inter = np.logical_and(gt[i], pred[j]).sum()
                union = np.logical_or(gt[i], pred[j]).sum()
                cost[i, j] = 1 - inter / union
    # minimum-cost complete assignment of the smaller side
    best, best_tp = np.inf, 0
    if n_gt <= n_pred:
        for perm in itertools.permutations(range(n_pred), n_gt):
            c = cost[np.arange(n_gt), perm]
            if c.sum() < best - 1e-12:
                best, best_tp = c.sum(), int(np.sum(c < thresh_cost))
    else:
        for perm in itertools.permutations(range(n_gt), n_pred):
            c = cost[perm, np.arange(n_pred)]
            if c.sum() < best - 1e-12:
                best, best_tp = c.sum(), int(np.sum(c < thresh_cost))
    return cost, best, best_tp


def _random_sets(rng, shape=(48, 48)):
    n_gt = int(rng.integers(1, 6))
    centers = rng.uniform(6, shape[0] - 6, size=(n_gt, 2))
    radii = rng.uniform(3, 7, size=n_gt)
    gt = np.stack([_disc(shape, c, r) for c, r in zip(centers, radii, strict=True)])
    pred = []
    for c, r in zip(centers, radii, strict=True):
        if rng.uniform() < 0.75:  # a perturbed detection of this neuron
            pred.append(_disc(shape, c + rng.normal(scale=2.5, size=2), r * rng.uniform(0.7, 1.3)))
    for _ in range(int(rng.integers(0, 3))):  # spurious detections
        pred.append(_disc(shape, rng.uniform(4, shape[0] - 4, 2), rng.uniform(2, 6)))
    if not pred:
        pred.append(_disc(shape, (10, 10), 4))
    pred = np.stack(pred)[rng.permutation(len(pred))]
    return gt, pred


@pytest.mark.parametrize("seed", range(12))
def test_caiman_rule_matches_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    gt, pred = _random_sets(rng)
    cost_ref, total_ref, tp_ref = _naive_caiman(gt, pred)
    res = match_rois(gt, pred)
    np.testing.assert_allclose(res.cost, cost_ref, rtol=0, atol=1e-12)
    assert res.tp == tp_ref
    assert res.fp == len(pred) - tp_ref and res.fn == len(gt) - tp_ref
    assert sum(res.cost[i, j] for i, j in res.matched) <= total_ref + 1e-9
    assert res.f1 == pytest.approx(2 * tp_ref / (len(gt) + len(pred)))
    for i, j in res.matched:
        assert res.cost[i, j] < 0.7


@pytest.mark.parametrize("seed", range(4))
def test_mask_input_forms_agree(seed):
    rng = np.random.default_rng(100 + seed)
    gt, pred = _random_sets(rng, shape=(40, 56))
    ref = match_rois(gt, pred)
    dims = gt.shape[1:]
    weights = pred * rng.uniform(0.1, 2.0, size=pred.shape)  # float weights are binarised at > 0
    for g, p in [(_ain(gt), _ain(pred)), (sp.csc_matrix(_ain(gt)), sp.csc_matrix(_ain(pred).astype(float))),
                 (gt.astype(float), weights), (list(gt), _ain(weights))]:
        res = match_rois(g, p, dims=dims)
        assert res.matched == ref.matched
        np.testing.assert_array_equal(res.cost, ref.cost)


# ---------------------------------------------------------------------------------------------- real data


def _load_json_masks(path, shape):
    regions = json.loads(path.read_text())
    masks = np.zeros((len(regions), *shape), dtype=bool)
    for k, region in enumerate(regions):
        coords = np.asarray(region["coordinates"])
        masks[k, coords[:, 0], coords[:, 1]] = True
    return masks


def test_stneuronet_revision_scores_like_caiman_on_neurofinder_01_01():
    folder = DATA / "neurofinder.01.01"
    if not (folder / "regions_stneuronet.json").exists():
        pytest.skip(f"shared data not found in {folder}")
    gt = _load_json_masks(folder / "regions.json", (512, 512))
    pred = _load_json_masks(folder / "regions_stneuronet.json", (512, 512))
    res = match_rois(gt, pred)
    assert (res.tp, res.fp, res.fn) == (350, 2, 0)  # CaImAn's figure with float masks
    assert res.f1 == pytest.approx(0.99715, abs=5e-6)
    assert res.recall == 1.0 and res.precision == pytest.approx(350 / 352)


def test_identical_to_caiman_when_caiman_is_installed():
    """Only where CaImAn is importable (its own environment): same pairs and scores as its function on 0/1 floats."""
    rois = pytest.importorskip("caiman.base.rois")
    rng = np.random.default_rng(7)
    for seed in range(8):
        gt, pred = _random_sets(rng, shape=(64, 64))
        tp_gt, tp_pred, _, _, perf = rois.nf_match_neurons_in_binary_masks(gt.astype(float), pred.astype(float))
        res = match_rois(gt, pred)
        assert res.matched == sorted(zip(tp_gt.tolist(), tp_pred.tolist(), strict=True)), seed
        assert res.f1 == pytest.approx(perf["f1_score"], abs=1e-12)
        assert res.precision == pytest.approx(perf["precision"], abs=1e-12)
        assert res.recall == pytest.approx(perf["recall"], abs=1e-12)


def _results(counts):
    """MatchResults with the given (tp, fp, fn) per movie."""
    return [MatchResult(tp, fp, fn, 0.0, 0.0, 0.0, [], np.zeros((0, 0))) for tp, fp, fn in counts]


def test_pooled_counts_are_summed_then_scored():
    gt = np.array([_rect((30, 30), 2, 8, 2, 8), _rect((30, 30), 12, 18, 12, 18), _rect((30, 30), 20, 26, 2, 8)])
    spurious = _rect((30, 30), 20, 26, 20, 26)[None]
    results = [match_rois(gt, gt), match_rois(gt, np.concatenate([gt[:1], spurious]))]
    pooled = pool_matches(results)
    assert (pooled.tp, pooled.fp, pooled.fn) == (4, 1, 2)
    assert pooled.precision == pytest.approx(4 / 5) and pooled.recall == pytest.approx(4 / 6)
    assert pooled.f1 == pytest.approx(8 / 11) and pooled.n_movies == 2


def test_bootstrap_interval_agrees_with_a_naive_resampling_of_the_movies():
    rng = np.random.default_rng(5)
    counts = [(int(rng.integers(80, 110)), int(rng.integers(0, 12)), int(rng.integers(0, 15))) for _ in range(6)]
    pooled = pool_matches(_results(counts), confidence_level=0.8, n_resamples=20000, seed=1)
    # naive reference: draw 6 movies with replacement, sum their counts, score; 10th and 90th percentiles
    c = np.array(counts, float)
    f1 = []
    for _ in range(20000):
        tp, fp, fn = c[rng.integers(0, len(c), len(c))].sum(0)
        f1.append(2 * tp / (2 * tp + fp + fn))
    lo, hi = np.percentile(f1, [10, 90])
    assert pooled.f1_low == pytest.approx(lo, abs=0.003) and pooled.f1_high == pytest.approx(hi, abs=0.003)
    assert pooled.f1_low < pooled.f1 < pooled.f1_high
    again = pool_matches(_results(counts), confidence_level=0.8, n_resamples=20000, seed=1)
    assert (again.f1_low, again.f1_high) == (pooled.f1_low, pooled.f1_high)
    wider = pool_matches(_results(counts), confidence_level=0.95, n_resamples=20000, seed=1)
    assert wider.f1_low < pooled.f1_low and wider.f1_high > pooled.f1_high


def test_interval_of_one_movie_is_undefined_and_of_identical_movies_is_the_point():
    one = pool_matches(_results([(90, 5, 7)]))
    assert np.isnan(one.f1_low) and np.isnan(one.f1_high) and one.f1 == pytest.approx(180 / 192)
    same = pool_matches(_results([(90, 5, 7)] * 3))
    assert same.f1_low == same.f1_high == pytest.approx(180 / 192)


@pytest.mark.parametrize("kwargs", [dict(confidence_level=0.0), dict(confidence_level=1.0)])
def test_pool_matches_refuses_bad_input(kwargs):
    with pytest.raises(ValueError, match="confidence_level"):
        pool_matches(_results([(1, 0, 0), (2, 1, 0)]), **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        pool_matches([])
