"""initialize(): shapes, CaImAn's Fortran-order Ain, no kept duplicates, rescaling, bad input, and real detection."""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from cellfie_caiman.evaluate import match_rois
from cellfie_caiman.initialize import Initialization, initialize
from cellfie_caiman.models import load_model
from cellfie_caiman.simulate import simulate
from cellfie_caiman.summary import summary_images


@pytest.fixture(scope="module")
def sim():
    return simulate(300, (128, 128), 40, seed=11, fs=15.0)


@pytest.fixture(scope="module")
def result(sim) -> Initialization:
    return initialize(sim.movie)


def test_shapes_and_types(result, sim):
    rows, cols = sim.movie.shape[1:]
    k = len(result.masks)
    assert k > 0
    assert result.Ain.shape == (rows * cols, k) and result.Ain.dtype == bool
    assert result.masks.shape == (k, rows, cols) and result.masks.dtype == bool
    assert result.scores.shape == (k,) and result.centers.shape == (k, 2)
    assert result.prob_map.shape == (rows, cols) and result.prob_map.dtype == np.float32
    assert np.all(np.diff(result.scores) <= 0), "sorted by decreasing score"
    assert np.all(result.scores >= 0.5)
    assert result.masks.reshape(k, -1).any(1).all()


def test_ain_columns_are_masks_in_fortran_order(result, sim):
    rows, cols = sim.movie.shape[1:]
    for k in range(len(result.masks)):
        np.testing.assert_array_equal(result.Ain[:, k].reshape(rows, cols, order="F"), result.masks[k])
    # pixel p = i + j * rows, CaImAn's convention
    k, (i, j) = 0, np.argwhere(result.masks[0])[0]
    assert result.Ain[i + j * rows, k]


def test_finds_simulated_neurons(result, sim):
    res = match_rois(sim.masks, result.masks)
    assert res.f1 > 0.8, res


def test_one_pass_detection_finds_the_simulated_neurons_from_the_one_pass_maps(result, sim):
    """tta=False: the probability map is a single U-Net pass (not the mean over orientations) and the
    simulated neurons are still found."""
    from cellfie_caiman.models import load_model, stack_inputs

    quick = initialize(result.summary, tta=False)
    net = load_model("default")
    prob, _ = net.predict_maps(stack_inputs(result.summary, net.config))
    np.testing.assert_allclose(quick.prob_map, prob, atol=1e-6)
    assert not np.allclose(quick.prob_map, result.prob_map, atol=1e-3)
    assert match_rois(sim.masks, quick.masks).f1 > 0.75


def test_summary_input_gives_the_same_result(result):
    again = initialize(result.summary)
    np.testing.assert_array_equal(again.masks, result.masks)
    np.testing.assert_array_equal(again.scores, result.scores)


def test_no_kept_duplicates(result):
    m = result.masks.reshape(len(result.masks), -1).astype(np.float64)
    inter = m @ m.T
    area = m.sum(1)
    iou = inter / (area[:, None] + area[None] - inter)
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.5


def test_neuron_diameter_rescales_and_masks_come_back_on_the_original_grid():
    big = simulate(200, (192, 192), 20, seed=5, fs=15.0, diameter=24.0)
    d = 2 * np.sqrt(np.median(big.masks.sum((1, 2))) / np.pi)
    res = initialize(big.movie, neuron_diameter=d)
    assert res.masks.shape[1:] == (192, 192) and res.Ain.shape[0] == 192 * 192
    m = match_rois(big.masks, res.masks)
    assert m.f1 > 0.7, m
    # mask areas match the big neurons, not the model's training size
    assert np.median(res.masks.sum((1, 2))) > 0.5 * np.median(big.masks.sum((1, 2)))


def test_neurons_of_the_training_size_are_detected_at_the_model_scale(result, caplog):
    from cellfie_caiman.models import model_config

    train_d = model_config().train_diameter
    assert result.neuron_diameter == train_d
    with caplog.at_level(logging.INFO, logger="cellfie_caiman.initialize"), \
            pytest.warns(RuntimeWarning, match=f"computed for somata of {train_d:g} px"), \
            pytest.warns(RuntimeWarning, match="somata look larger"):  # the summary is for train_d, the somata 13 px
        assert initialize(result.summary, neuron_diameter=9.5).neuron_diameter == 9.5
    rows, cols = result.prob_map.shape  # the zoom is said, with the size of the field the networks see
    zoomed = f"{round(rows * train_d / 9.5)} x {round(cols * train_d / 9.5)} px"
    assert f"zoomed {train_d / 9.5:.2f}x to {zoomed}" in caplog.text


def test_neurons_far_larger_than_the_training_size_are_detected_again_at_their_size():
    """Without neuron_diameter, 20 px neurons (the model was trained at ~12 px) are first found as ~16 px masks, which
    is outside the accepted range: initialize detects again at the measured size, closer to the truth and with a
    better F1 than at the model's scale (measured on bigger fields in benchmarks/detection.py: 0.868 -> 0.929)."""
    from cellfie_caiman.masks import mask_diameter
    from cellfie_caiman.models import model_config

    train_d = model_config().train_diameter
    # 90 neurons: on 40 a single neuron moves F1 by 0.025 (session 12's model gains 0.025 there, 0.05 here)
    big = simulate(300, (384, 384), 90, seed=7, fs=15.0, diameter=18.0)
    summary = summary_images(big.movie, batch_frames=250, filter_diameter=train_d)
    auto = initialize(summary)
    with pytest.warns(RuntimeWarning, match="the somata look larger"):  # train_d given for larger somata: said
        fixed = initialize(summary, neuron_diameter=train_d)
    true_d = mask_diameter(big.masks)
    assert abs(auto.neuron_diameter - true_d) < 0.5 * abs(train_d - true_d)
    assert mask_diameter(auto.masks) > mask_diameter(fixed.masks) + 2
    assert match_rois(big.masks, auto.masks).f1 > match_rois(big.masks, fixed.masks).f1 + 0.03


def _disks(n: int, diameter: float, shape=(128, 128)) -> np.ndarray:
    """``n`` disjoint disks of ``diameter`` pixels on a grid, (n, rows, cols) bool."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    step = int(diameter) + 4
    centres = [(r, c) for r in range(step // 2, shape[0] - step // 2, step)
               for c in range(step // 2, shape[1] - step // 2, step)][:n]
    return np.array([(yy - r) ** 2 + (xx - c) ** 2 <= (diameter / 2) ** 2 for r, c in centres])


@pytest.mark.parametrize("n_again, kept", [(30, True), (12, False)])
def test_a_redetection_is_kept_only_if_the_networks_find_about_as_much(result, monkeypatch, n_again, kept):
    """The size check's decision, with the networks' passes replaced by fixed answers: the first pass (model scale)
    finds 30 masks of 0.6 x the training diameter, which asks for a re-detection at that size; a second pass that
    finds as many is kept, one that finds 12 (summed score 0.4 of the first) is not (on Gaussian-blob movies the
    session-7 model drew masks smaller than the blobs and found a third of them at the smaller size)."""
    import importlib

    from cellfie_caiman.models import model_config

    module = importlib.import_module("cellfie_caiman.initialize")
    train_d = model_config().train_diameter
    calls = []

    def fake_pass(net, images, summary, diameter, **settings):
        calls.append(diameter)
        masks = _disks(30 if len(calls) == 1 else n_again, 0.6 * train_d)
        return Initialization(masks.transpose(0, 2, 1).reshape(len(masks), -1).T, masks,
                              np.full(len(masks), 0.9, np.float32), np.zeros((len(masks), 2)),
                              np.zeros(masks.shape[1:], np.float32), summary, diameter)

    monkeypatch.setattr(module, "_detect_at", fake_pass)
    res = initialize(result.summary)
    assert calls[0] == train_d and calls[1] == pytest.approx(0.6 * train_d, rel=0.1)
    assert res.neuron_diameter == (calls[1] if kept else train_d)
    assert len(res.masks) == (n_again if kept else 30)


def test_constant_movie_gives_empty_result_with_warning():
    movie = np.full((100, 40, 30), 100.0, np.float32)  # 100 frames: no short-movie warning
    with pytest.warns(RuntimeWarning, match="constant") as record:
        res = initialize(movie)
    assert len(record) == 1, [str(w.message) for w in record]  # not also "no neuron found"
    assert res.Ain.shape == (1200, 0) and res.masks.shape == (0, 40, 30) and len(res.scores) == 0
    assert res.neuron_diameter == load_model("default").config.train_diameter


def test_all_nan_summary_gives_empty_result_with_warning(result):
    nan = result.summary._replace(corr=np.full_like(result.summary.corr, np.nan))
    with pytest.warns(RuntimeWarning, match="no finite value"):
        res = initialize(nan, neuron_diameter=11.0)  # within 10 % of the summary's soma filter
    assert res.Ain.shape == (nan.corr.size, 0) and res.neuron_diameter == 11.0


def test_no_neuron_found_is_said_with_the_diameter_to_check(result):
    """Neurons of ~12 px looked for at 60 px on a 128 x 128 field: nothing is found, and the warning says so; the
    neurons found at the model's scale say why."""
    with pytest.warns(RuntimeWarning, match="no neuron found for a soma diameter of 60 px.*check neuron_diameter"), \
            pytest.warns(RuntimeWarning, match="computed for somata of [0-9.]+ px"), \
            pytest.warns(RuntimeWarning, match="60 px, but no neuron was found there.*somata look smaller"):
        res = initialize(result.summary, neuron_diameter=60.0)
    assert res.masks.shape == (0, 128, 128) and res.neuron_diameter == 60.0 and res.prob_map.shape == (128, 128)


def test_summary_images_of_different_shapes_are_refused_by_name(result):
    cut = result.summary._replace(std=result.summary.std[:, :-3])
    with pytest.raises(ValueError, match=r"one shape.*std \(128, 125\)"):
        initialize(cut)


def test_some_nan_pixels_are_tolerated(result):
    s = result.summary
    corr = s.corr.copy()
    corr[:10, :10] = np.nan
    res = initialize(s._replace(corr=corr))
    assert np.isfinite(res.prob_map).all() and len(res.masks) > 0


def test_field_smaller_than_the_instance_window(sim):
    small = sim.movie[:, :30, :20]
    res = initialize(small)
    assert res.masks.shape[1:] == (30, 20) and res.Ain.shape == (600, len(res.masks))


def test_bad_model_and_diameter(sim, tmp_path):
    s = summary_images(sim.movie[:50, :32, :32])
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        initialize(s, model=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="neuron_diameter"):
        initialize(s, neuron_diameter=-3)


@pytest.mark.parametrize("setting", [dict(neuron_diameter=1.5), dict(neuron_diameter=40), dict(min_score=50),
                                     dict(prob_threshold=-0.1), dict(max_overlap=0)])
def test_settings_out_of_range_fail_before_any_work(sim, setting):
    """Thresholds are probabilities; a soma is at least 2 px across and no wider than the field. Each bad value
    is named in a ValueError, for a movie before its summary images are computed (here the movie is a path that
    does not exist: the movie's own error would come only later)."""
    name = next(iter(setting))
    with pytest.raises(ValueError, match=name):
        initialize(sim.movie[:50, :32, :32], **setting)
    if name != "neuron_diameter" or setting[name] < 2:
        with pytest.raises(ValueError, match=name):
            initialize("missing-movie.tif", **setting)


def test_a_diameter_larger_than_the_field_is_refused_before_the_summary_images(sim, monkeypatch):
    import cellfie_caiman.summary as summary_module

    def no_summary(*args, **kwargs):
        raise AssertionError("the summary images were computed")

    monkeypatch.setattr(summary_module, "summary_images", no_summary)
    with pytest.raises(ValueError, match=r"larger than the field \(32 x 32 px\)"):
        initialize(sim.movie[:50, :32, :32], neuron_diameter=40)


# ------------------------------------------------------------------------------------ test-time augmentation
def test_the_default_model_finds_neurons_under_strong_neuropil():
    """The shipped model was fine-tuned with simulated fields whose neuropil strength varies (the model before it
    saw only weak neuropil and scored 0.68 under strong neuropil in the benchmark). Under strong neuropil (texture
    contrast 0.5, activity 0.3) it still finds the simulated neurons."""
    from cellfie_caiman.initialize import model_summary

    sim = simulate(300, (192, 192), 60, seed=3, fs=15.0, neuropil_contrast=0.5, neuropil_activity=0.3)
    res = match_rois(sim.masks, initialize(model_summary(sim.movie)).masks)
    assert res.f1 > 0.85, res


def test_a_short_movie_is_warned_about_and_a_long_enough_one_is_not():
    from cellfie_caiman.initialize import SHORT_MOVIE_FRAMES, model_summary

    movie = simulate(SHORT_MOVIE_FRAMES, (48, 48), 4, seed=8).movie
    with pytest.warns(RuntimeWarning, match=f"only {SHORT_MOVIE_FRAMES - 1} frames"):
        model_summary(movie[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model_summary(movie)


# ------------------------------------------------------------------------------------ inputs a user may get wrong
class _Stop(Exception):
    """Raised in the place of the summary images: the checks before them are what is tested."""


def _stop_before_summary(monkeypatch):
    import cellfie_caiman.summary as summary_module

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(summary_module, "summary_images", stop)


@pytest.mark.parametrize("frames", [64, 128])
def test_a_movie_shaped_rows_cols_frames_is_warned_about(sim, monkeypatch, frames):
    """An array (rows, cols, frames) read as (frames, rows, cols) makes summary images across the field's rows: a
    silent wrong answer, unless its shape is pointed out (here a square field: as many "frames" as rows)."""
    _stop_before_summary(monkeypatch)
    transposed = np.moveaxis(sim.movie[:, :frames, :frames], 0, -1)  # (frames, frames, 300)
    with pytest.warns(RuntimeWarning, match=r"looks like \(rows, cols, frames\).*moveaxis"), pytest.raises(_Stop):
        initialize(transposed)
    with warnings.catch_warnings(), pytest.raises(_Stop):
        warnings.simplefilter("error", RuntimeWarning)
        initialize(sim.movie[:, :frames, :frames])  # (300, frames, frames): as it should be


def test_a_field_smaller_than_a_neuron_is_refused_by_initialize(sim):
    with pytest.raises(ValueError, match=r"field \(3 x 3 px\) is smaller than one neuron.*neuron_diameter"):
        initialize(sim.movie[:, :3, :3])


def test_summary_images_given_as_a_dict(result):
    images = result.summary._asdict()
    again = initialize(images)
    np.testing.assert_array_equal(again.masks, result.masks)
    np.testing.assert_array_equal(again.scores, result.scores)
    assert again.summary.corr is images["corr"]
    with pytest.warns(UserWarning, match=r"\['Cn'\] ignored"):
        initialize({**images, "Cn": images["corr"]}, tta=False)
    with pytest.raises(ValueError, match=r"\['pnr_filtered'\] are missing"):
        initialize({k: v for k, v in images.items() if k != "pnr_filtered"})


@pytest.mark.parametrize("dtype", [np.complex64, object])
def test_summary_images_that_are_not_real_numbers_are_refused(result, dtype):
    odd = result.summary._replace(corr=result.summary.corr.astype(dtype))
    with pytest.raises(ValueError, match=rf"real numbers.*corr \({np.dtype(dtype)}\)"):
        initialize(odd)


def test_the_diameter_of_an_empty_result_is_a_float(result):
    nan = result.summary._replace(corr=np.full_like(result.summary.corr, np.nan))
    with pytest.warns(RuntimeWarning, match="no finite value"):
        res = initialize(nan, neuron_diameter=11)  # within 10 % of the summary's soma filter
    assert type(res.neuron_diameter) is float


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_a_border_without_data_is_left_out_as_if_the_field_were_cut(sim, fill):
    """A motion-corrected movie's border (NaN, or zeros) holds no neuron: the networks see the part of the field
    with data, so the masks are those found in the summary images cut to that part (no mask drawn where there is no
    data, none lost next to the border to the edge between the two), and about those of the movie cut there."""
    border = 12
    movie = sim.movie.astype(np.float32)  # a copy
    movie[:, :, :border] = fill
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NaN fill is warned about by the reader
        res = initialize(movie)
    cut = initialize(type(res.summary)(*(im[:, border:] for im in res.summary)))
    assert len(cut.masks) > 0
    np.testing.assert_array_equal(res.masks[:, :, border:], cut.masks)
    assert not res.masks[:, :, :border].any() and not res.prob_map[:, :border].any()
    np.testing.assert_array_equal(res.scores, cut.scores)
    np.testing.assert_allclose(res.centers, cut.centers + [0, border])
    for k in range(len(res.masks)):
        np.testing.assert_array_equal(res.Ain[:, k], res.masks[k].flatten("F"))
    assert match_rois(initialize(sim.movie[:, :, border:]).masks, cut.masks).f1 > 0.9


def test_repr_is_short_and_the_tuple_is_unchanged():
    """The repr says K, the field, the diameter and each array's dtype and shape (not 100,000 numbers); fields,
    order, unpacking and equality stay those of the NamedTuple."""
    from cellfie_caiman.summary import SummaryImages

    rows, cols, k = 300, 200, 3
    masks = np.zeros((k, rows, cols), bool)
    for i in range(k):
        masks[i, 10 * i:10 * i + 5, 20:25] = True
    image = np.zeros((rows, cols), np.float32)
    fields = (masks.reshape(k, -1, order="F").T, masks, np.ones(k, np.float32), np.zeros((k, 2)), image,
              SummaryImages(*(image,) * 6), 12.0)
    init = Initialization(*fields)
    text = repr(init)
    assert len(text) < 500, text
    for part in ("K=3", "(300, 200)", "12.0", "Ain=bool (60000, 3)", "masks=bool (3, 300, 200)", "scores=float32 (3,)",
                 "centers=float64 (3, 2)", "prob_map=float32 (300, 200)", "corr"):
        assert part in text, (part, text)
    assert init._fields == ("Ain", "masks", "scores", "centers", "prob_map", "summary", "neuron_diameter")
    assert tuple(init) == fields and init[1] is masks
    Ain, *_, diameter = init
    assert Ain is fields[0] and diameter == 12.0
    assert init._replace(neuron_diameter=None).neuron_diameter is None


def _filter_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "pnr_filtered was computed for" in str(w.message)]


def test_summary_images_filtered_for_another_soma_size_are_warned_about(sim, result):
    """Summary images whose ``pnr_filtered`` was made for somata of 5 px were read silently by networks run for the
    model's 11.78 px (on simulated movies of 12 px somata F1 fell from 0.95 to 0.84-0.87 with the image filtered for
    4, 6 or 24 px): a ``RuntimeWarning`` names both diameters and how to compute the right images, pointing at the
    caller's line. Images that match (within 10 %), or that do not record their diameter, are taken as they are."""
    from cellfie_caiman.initialize import model_summary

    train_d = load_model("default").config.train_diameter
    assert result.summary.filter_diameter == pytest.approx(train_d)  # initialize(movie) computes them at that size
    small = summary_images(sim.movie, batch_frames=250, filter_diameter=5.0)
    expected = (rf"computed for somata of 5 px, but the networks are run for the model's training diameter "
                rf"\({train_d:g} px.*model_summary\(movie, neuron_diameter={train_d:g}\) or summary_images\(movie, "
                rf"batch_frames=250, filter_diameter={train_d:g}\), or give neuron_diameter=5")
    with pytest.warns(RuntimeWarning, match=expected) as record:
        initialize(small, tta=False)
    assert [w.filename for w in record if "pnr_filtered" in str(w.message)] == [__file__]
    for given in (lambda: model_summary(small), lambda: model_summary({**small._asdict(), "filter_diameter": 5.0})):
        with pytest.warns(RuntimeWarning, match=expected):
            given()
    with pytest.warns(RuntimeWarning, match=r"somata of 5 px, but the networks are run for neuron_diameter=8 px"):
        model_summary(small, neuron_diameter=8)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        initialize(result.summary, tta=False)
        model_summary(small, neuron_diameter=5.4)  # within 10 %
        model_summary(type(small)(*small))  # made from the images alone: the diameter is unknown
        model_summary(small._asdict())
    assert _filter_warnings(record) == []
    assert "filter_diameter=11.78" in repr(result)


@pytest.mark.parametrize("fill", [0.0, np.nan])
def test_a_blank_stripe_inside_the_field_gets_no_mask_and_costs_only_its_own_pixels(sim, result, fill):
    """Dead columns inside the field (a stitched or partly masked field: zeros, or NaN that the reader fills with a
    constant) drew a sharp edge or a flat band that the networks read as structure: masks reached into the stripe,
    some lay entirely in it, and neurons cut by it were missed (F1 0.82 against the neurons' parts with data). The
    networks now see the stripe filled from its sides and no mask covers it: the result is as good as the intact
    movie's masks cut to the pixels with data."""
    blank = np.zeros(sim.movie.shape[1:], bool)
    blank[:, 61:75] = True
    movie = sim.movie.astype(np.float32)  # a copy
    movie[:, blank] = fill
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NaN fill is warned about by the reader
        res = initialize(movie)
    assert len(res.masks) > 0 and not res.masks[:, blank].any() and not res.prob_map[blank].any()
    for k in range(len(res.masks)):
        np.testing.assert_array_equal(res.Ain[:, k], res.masks[k].flatten("F"))
    truth = sim.masks & ~blank  # what the movie shows of each neuron
    truth = truth[truth.sum(axis=(1, 2)) >= 10]
    intact = result.masks & ~blank
    intact = intact[intact.sum(axis=(1, 2)) >= 10]
    assert match_rois(truth, res.masks).f1 >= match_rois(truth, intact).f1 - 0.03


# ------------------------------------------------------------------------------------ a neuron_diameter that is wrong
def _size_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "measure" in str(w.message) and "neuron_diameter=" in str(w.message)]


@pytest.fixture(scope="module")
def true_diameter(sim) -> float:
    """The simulated somata's median diameter (pixels), from the ground-truth masks."""
    from cellfie_caiman.masks import mask_diameter

    return mask_diameter(sim.masks)


@pytest.mark.parametrize("factor, looks", [(0.5, "larger"), (2.0, "smaller")])
def test_a_neuron_diameter_far_from_the_somata_is_warned_about_and_kept(sim, true_diameter, factor, looks):
    """A neuron_diameter half or twice the somata's (a radius given for a diameter, microns for pixels) gave masks
    drawn at the wrong size without a word. The masks found there say so: a RuntimeWarning names the size given and
    the median diameter of the masks returned (movie pixels), and suggests a size on the somata's side of the one
    given. The user's choice stands: the result is the detection at the size given, not a re-detection."""
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.masks import mask_diameter

    given = round(factor * true_diameter, 1)
    summary = model_summary(sim.movie, neuron_diameter=given)  # filtered for that size: no other warning
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = initialize(summary, neuron_diameter=given)
    messages = _size_warnings(record)
    assert len(messages) == 1, [str(w.message) for w in record]
    assert [w.category for w in record if str(w.message) == messages[0]] == [RuntimeWarning]
    assert f"neuron_diameter={given:g} px" in messages[0]
    assert f"{mask_diameter(res.masks):.1f} px" in messages[0], messages[0]  # the median of the masks returned
    assert f"look {looks}" in messages[0] and "neuron_diameter=None" in messages[0]
    suggested = float(messages[0].split("try neuron_diameter=")[1].split()[0])
    assert (suggested > given) if looks == "larger" else (suggested < given)
    assert abs(np.log(suggested / true_diameter)) < abs(np.log(given / true_diameter))  # towards the somata's size
    assert res.neuron_diameter == given and len(res.masks) >= 10
    assert [w.filename for w in record if str(w.message) == messages[0]] == [__file__]  # the caller's line


def test_the_somata_size_given_is_not_warned_about(sim, true_diameter):
    from cellfie_caiman.initialize import model_summary

    summary = model_summary(sim.movie, neuron_diameter=true_diameter)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = initialize(summary, neuron_diameter=true_diameter)
    assert _size_warnings(record) == [] and len(res.masks) >= 10


_CHECK_LOG = "detecting once more at the model's scale"


@pytest.mark.parametrize("factor", [3.0, 4.0])
def test_a_neuron_diameter_far_too_large_is_warned_about_after_a_check_at_the_model_scale(sim, true_diameter, factor,
                                                                                         caplog):
    """Three or four times the somata's diameter (microns given for pixels on a coarse field) shrinks the field so
    much that the networks find fewer than 10 neurons, too few for the size check: the badly wrong result came
    without a word. One more detection at the model's own scale finds the neurons and measures them: a
    RuntimeWarning names the size given, how many were found there, and a size to try near the somata's. The result
    is still the detection at the size given."""
    from cellfie_caiman.initialize import AUTO_DIAMETER_MIN_MASKS, model_summary

    given = round(factor * true_diameter, 1)
    summary = model_summary(sim.movie, neuron_diameter=given)  # filtered for that size: no other warning
    with warnings.catch_warnings(record=True) as record, \
            caplog.at_level(logging.INFO, logger="cellfie_caiman.initialize"):
        warnings.simplefilter("always")
        res = initialize(summary, neuron_diameter=given)
    assert res.neuron_diameter == given and len(res.masks) < AUTO_DIAMETER_MIN_MASKS  # the case the old check skipped
    messages = _size_warnings(record)
    assert len(messages) == 1, [str(w.message) for w in record]
    assert _CHECK_LOG in caplog.text
    message = messages[0]
    assert [w.category for w in record if str(w.message) == message] == [RuntimeWarning]
    assert [w.filename for w in record if str(w.message) == message] == [__file__]  # the caller's line
    assert f"neuron_diameter={given:g} px, but" in message and "look smaller" in message
    found = "no neuron was found" if len(res.masks) == 0 else f"only {len(res.masks)} neuron"
    assert found in message and "neuron_diameter=None" in message
    suggested = float(message.split("try neuron_diameter=")[1].split()[0])
    assert abs(np.log(suggested / true_diameter)) < np.log(1.25), message  # near the somata's size


def test_a_sparse_field_at_its_somata_size_is_not_warned_about(caplog):
    """Five 19 px somata in a 160 x 160 field, given their size: fewer than 10 neurons, so the size is checked at
    the model's scale, where the networks cut them into many pieces of about the training size. The neurons found at
    the size given are of that size and sure: no size warning, and the result is the detection at that size."""
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.masks import mask_diameter

    sparse = simulate(300, (160, 160), 5, seed=113, fs=15.0, diameter=16.0)
    given = round(mask_diameter(sparse.masks), 1)
    summary = model_summary(sparse.movie, neuron_diameter=given)
    with warnings.catch_warnings(record=True) as record, \
            caplog.at_level(logging.INFO, logger="cellfie_caiman.initialize"):
        warnings.simplefilter("always")
        res = initialize(summary, neuron_diameter=given)
    assert _CHECK_LOG in caplog.text  # the check ran ...
    assert _size_warnings(record) == [], [str(w.message) for w in record]  # ... and said nothing
    assert res.neuron_diameter == given and match_rois(sparse.masks, res.masks).recall >= 0.8


def test_a_constant_movie_with_a_neuron_diameter_gets_no_check_at_the_model_scale(caplog):
    """No neuron in a constant movie at any size: the one warning is about the movie, and no time is spent on a
    second detection."""
    movie = np.full((100, 40, 30), 100.0, np.float32)
    with pytest.warns(RuntimeWarning, match="constant") as record, \
            caplog.at_level(logging.INFO, logger="cellfie_caiman.initialize"):
        res = initialize(movie, neuron_diameter=36.0)
    assert len(record) == 1, [str(w.message) for w in record]
    assert _CHECK_LOG not in caplog.text and res.masks.shape == (0, 40, 30)
