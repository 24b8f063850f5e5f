"""train(): fields and targets, augmentation geometry, a tiny deterministic training run, saved weights."""
from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np
import pytest

from cellfie_caiman.detection import _dihedral
from cellfie_caiman.masks import mask_diameter
from cellfie_caiman.models import ModelConfig, load_model
from cellfie_caiman.rois import write_rois
from cellfie_caiman.simulate import simulate
from cellfie_caiman.summary import summary_images
from cellfie_caiman.train import prepare_field, selection_scores, train
from cellfie_caiman.training.sampling import _instance_example

# The tiny trainings here (a few neurons, one or two epochs, a model of 8 px) draw these warnings by design; the tests
# about them assert them with pytest.warns (which records them whatever the filters say), so the suite's summary
# keeps only the warnings nobody expected.
pytestmark = [pytest.mark.filterwarnings("ignore:few annotated neurons"),
              pytest.mark.filterwarnings("ignore:best validation F1 is 0"),
              pytest.mark.filterwarnings("ignore:the annotated neurons of .* are not the model's size"),
              pytest.mark.filterwarnings(r"ignore:.*the movie has only \d+ frames")]

TINY = ModelConfig(depth=2, base_filters=4, instance_filters=4, window=16, train_diameter=8.0)
#: train() settings of the shortest runs (one epoch of two updates on small crops, unzoomed)
ONE_EPOCH = dict(epochs=1, steps_per_epoch=2, zooms=(1.0,), unet_batch=2, unet_crop=32, instance_batch=8,
                 progress=False, seed=1)


@pytest.fixture(scope="module")
def data():
    sim = simulate(120, (64, 64), 12, seed=3, fs=15.0, diameter=8.0)
    return summary_images(sim.movie, batch_frames=250), sim.masks


def test_mask_diameter_of_disks():
    yy, xx = np.mgrid[:50, :50]
    disks = np.array([(yy - 25) ** 2 + (xx - 25) ** 2 <= r**2 for r in (4, 5, 6)])
    assert mask_diameter(disks) == pytest.approx(10.0, rel=0.05)


def test_a_field_without_masks_has_empty_targets(data):
    """A field with no neuron (e.g. a simulated field given with an empty mask stack) is all background."""
    summary, _ = data
    f = prepare_field(summary, np.zeros((0, 64, 64), bool), TINY)
    assert f.centers.shape == (0, 2) and f.boxes == [] and not f.prob.any() and not f.heat.any()


def test_prepare_field_targets(data):
    summary, masks = data
    f = prepare_field(summary, masks, TINY, zoom=1.0, val_fraction=0.25)
    assert f.inputs.shape == (64, 64, len(TINY.channels))
    np.testing.assert_array_equal(f.prob, masks.any(0))
    assert f.train_rows == 48 and len(f.centers) == len(masks)
    # the heat map peaks (value ~1) at every mask centroid
    for r, c in f.centers:
        assert f.heat[int(round(r)), int(round(c))] > 0.75
    z = prepare_field(summary, masks, TINY, zoom=1.5)
    assert z.inputs.shape[:2] == (96, 96)
    assert z.prob.sum() == pytest.approx(1.5**2 * f.prob.sum(), rel=0.15)


@pytest.mark.parametrize("t", range(8))
def test_augmented_windows_stay_centred_on_their_neuron(data, t):
    summary, masks = data
    f = prepare_field(summary, masks, TINY, val_fraction=0.0)
    k = int(np.argmin(np.abs(f.centers - 32).sum(1)))
    r, c = (int(round(v)) for v in f.centers[k])
    x, m, score, weight = _instance_example(f, r, c, TINY, t, np.random.default_rng(0))
    assert score == 1.0 and weight == 1.0
    h = TINY.window // 2
    assert m[h, h] == 1.0, "window centre pixel must be the candidate centre under every transform"
    # the target mask is this neuron only, transformed like the window
    ref = np.zeros((64 + 32, 64 + 32), np.float32)
    ref[16:80, 16:80] = masks[k]
    r0, c0 = r - h + (t & 1), c - h + ((t >> 1) & 1)
    np.testing.assert_array_equal(m, _dihedral(ref[r0 + 16:r0 + 32, c0 + 16:c0 + 32], t))


def test_tiny_training_is_deterministic_and_saves_loadable_weights(data, tmp_path):
    summary, masks = data
    rois = tmp_path / "rois.json"
    write_rois(rois, masks)
    kwargs = dict(simulated=0, epochs=2, steps_per_epoch=3, config=TINY, zooms=(1.0,), unet_batch=2,
                  unet_crop=32, instance_batch=8, progress=False, seed=1)
    a = train([(summary, rois)], tmp_path / "a.npz", **kwargs)
    b = train([(summary, masks)], tmp_path / "b.npz", **kwargs)
    assert len(a.history) == 2 and {"val_f1", "unet_loss", "instance_loss"} <= set(a.history[0])
    assert 0 <= a.best_f1 <= 1
    loaded = load_model(a.path)
    assert loaded.config.train_diameter == TINY.train_diameter
    # the file records each epoch's score and when it ended, so one can see how much of the budget was needed
    record = loaded.config.training
    assert record["epoch_val_f1"] == [round(h["val_f1"], 4) for h in a.history]
    assert record["epoch_val_f1"][record["best_epoch"]] == record["val_f1"]
    assert 0 < record["epoch_minutes"][0] < record["epoch_minutes"][1] <= record["minutes"] + 0.05
    # and what trained it: trained from scratch, with this package and these libraries
    assert record["init_model"] is None and record["software"]["numpy"] == np.__version__
    import cellfie_caiman

    assert record["cellfie_caiman"] == cellfie_caiman.__version__
    # from which data, with which settings
    assert record["dataset_sources"] == [["<SummaryImages>", str(rois.resolve())]]
    assert (record["epochs"], record["steps_per_epoch"], record["zooms"], record["unet_crop"]) == (2, 3, [1.0], 32)
    for wa, wb, wl in zip(a.model.unet.get_weights(), b.model.unet.get_weights(), loaded.unet.get_weights(),
                          strict=True):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(wa, wl)


def test_train_needs_data():
    with pytest.raises(ValueError, match="at least one"):
        train([], None, simulated=0, progress=False)


def test_a_movie_without_signal_is_refused(data):
    """A constant (or all-NaN) movie has nothing to learn from: an error, not weights trained on noise."""
    _, masks = data
    with pytest.warns(Warning), pytest.raises(ValueError, match="dataset0: its summary images are constant"):
        train([(np.full((60, 64, 64), 3.0, np.float32), masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    # an all-NaN movie is refused when it is read (cellfie_caiman.io), before its summary images
    with pytest.raises(ValueError, match="no finite value in any of its 60 frames"):
        train([(np.full((60, 64, 64), np.nan, np.float32), masks)], None, simulated=0, config=TINY, **ONE_EPOCH)


def test_balanced_selection_weighs_each_real_strip_like_all_simulated_ones():
    # one real strip: 4 found, 4 false, 4 missed (F1 0.5); three simulated strips found perfectly (F1 1)
    counts = [(False, 4, 4, 4), (True, 30, 0, 0), (True, 30, 0, 0), (True, 30, 0, 0)]
    pooled = selection_scores(counts, "pooled")
    assert pooled["val_f1"] == pytest.approx(2 * 94 / (2 * 94 + 8))  # the simulated strips dominate
    balanced = selection_scores(counts, "balanced")
    assert balanced["val_f1"] == pytest.approx((0.5 + 1.0) / 2)
    assert balanced["val_f1_real"] == pytest.approx(0.5) and balanced["val_f1_simulated"] == pytest.approx(1.0)
    assert balanced["val_precision"] == pytest.approx(94 / 98) and balanced["val_recall"] == pytest.approx(94 / 98)
    with pytest.raises(ValueError, match="selection"):
        selection_scores(counts, "mean")


def test_simulated_variety_changes_the_fields_deterministically():
    from cellfie_caiman.train import simulated_datasets

    plain = simulated_datasets(1, seed=5, shape=(48, 48))
    a = simulated_datasets(1, seed=5, shape=(48, 48), variety=True)
    b = simulated_datasets(1, seed=5, shape=(48, 48), variety=True)
    np.testing.assert_array_equal(a[0][0].mean, b[0][0].mean)
    assert not np.array_equal(plain[0][0].mean, a[0][0].mean)


def test_no_simulated_field_shows_no_progress_bar(capsys):
    """Fine-tuning adds no simulated field by default: no empty 'simulating fields: 0it' bar among the real ones."""
    from cellfie_caiman.train import simulated_datasets

    assert simulated_datasets(0, seed=0, progress=True) == []
    assert "simulating fields" not in capsys.readouterr().err


def test_simulated_rates_set_how_active_the_fields_are():
    from cellfie_caiman.train import simulated_datasets

    (quiet, m_quiet), = simulated_datasets(1, seed=6, shape=(48, 48), rates=(0.005, 0.006))
    (busy, m_busy), = simulated_datasets(1, seed=6, shape=(48, 48), rates=(2.0, 3.0))
    np.testing.assert_array_equal(m_quiet, m_busy)  # the same layout: only the activity differs
    cells = m_quiet.any(0)
    assert quiet.std[cells].mean() < 0.7 * busy.std[cells].mean()


def assert_same_outputs(model, other, x, x_other, atol: float) -> None:
    """``model`` on inputs ``x`` and ``other`` on ``x_other`` (the same images in its channel order) give the same
    maps and the same instance masks and scores."""
    for a, b in zip(model.predict_maps(x), other.predict_maps(x_other), strict=True):
        np.testing.assert_allclose(a, b, atol=atol)
    for a, b in zip(model.predict_instances(x[None, :16, :16]), other.predict_instances(x_other[None, :16, :16]),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=atol)


def test_fine_tuning_with_a_new_channel_starts_from_the_same_output_and_trains(data, tmp_path):
    """New input channels start with zero weights: the copy computes exactly what the model did; training on movies
    then computes the new image (pnr_filtered) for the real and the simulated fields."""
    from cellfie_caiman.initialize import initialize, model_summary
    from cellfie_caiman.models import DetectionModel, stack_inputs
    from cellfie_caiman.training.steps import _clone

    summary, masks = data
    kwargs = ONE_EPOCH
    base = train([(summary, masks)], tmp_path / "base.npz", simulated=0, config=TINY, **kwargs).model
    channels = ("pnr_filtered",) + base.config.channels  # the new channel first: remapping is by name
    copy = DetectionModel(dataclasses.replace(base.config, channels=channels), *_clone(base, channels))
    movie = simulate(120, (64, 64), 12, seed=3, fs=15.0, diameter=8.0).movie
    full = summary_images(movie, batch_frames=250, filter_diameter=8.0)
    assert_same_outputs(base, copy, stack_inputs(full, base.config), stack_inputs(full, copy.config), atol=1e-6)

    tuned = train([(movie, masks)], tmp_path / "tuned.npz", simulated=1, simulated_shape=(48, 48),
                  init_model=base.save(tmp_path / "start.npz"), channels=channels, **kwargs).model
    assert tuned.config.channels == channels
    # fine-tuning starts at a smaller learning rate than training from scratch, unless told otherwise
    assert (base.config.training["learning_rate"], tuned.config.training["learning_rate"]) == (1e-3, 3e-4)
    # the weights it started from are named by their SHA-256
    import hashlib

    start = tuned.config.training["init_model"]
    assert start["file"] == str((tmp_path / "start.npz").resolve())
    assert start["sha256"] == hashlib.sha256((tmp_path / "start.npz").read_bytes()).hexdigest()
    loaded = load_model(tmp_path / "tuned.npz")
    assert loaded.config.channels == channels
    # initialize computes the filtered image itself from a movie, or takes it from model_summary
    s = model_summary(movie, model=loaded)
    np.testing.assert_allclose(s.pnr_filtered, full.pnr_filtered, rtol=1e-6)  # train_diameter 8 = the filter's
    np.testing.assert_array_equal(initialize(movie, model=loaded).masks, initialize(s, model=loaded).masks)
    with pytest.raises(ValueError, match="pnr_filtered"):
        initialize(summary, model=loaded)  # summary images without it
    with pytest.raises(ValueError, match="pnr_filtered"):
        train([(summary, masks)], None, simulated=0, init_model=loaded, progress=False)


def test_unknown_channel_is_a_clear_error(data):
    for channels in (("corr", "nope"), ("corr", "corr", "mean")):
        with pytest.raises(ValueError, match="channels must be distinct summary image names"):
            train([data], None, simulated=0, config=TINY, channels=channels, progress=False)


def test_fine_tuning_with_the_same_channels_in_another_order_remaps_their_weights_by_name(data):
    """As many channels as the model read, in another order: each input weight follows its image (an earlier
    version copied them by position when the shapes matched), so the copy computes what the model did."""
    from cellfie_caiman.models import DetectionModel, stack_inputs
    from cellfie_caiman.training.steps import _clone

    summary, masks = data
    base = train([(summary, masks)], None, simulated=0, config=TINY, **ONE_EPOCH).model
    channels = base.config.channels[::-1]
    copy = DetectionModel(dataclasses.replace(base.config, channels=channels), *_clone(base, channels))
    assert_same_outputs(base, copy, stack_inputs(summary, base.config), stack_inputs(summary, copy.config), atol=1e-5)


def test_fine_tuning_on_annotations_adds_no_simulated_field_unless_asked(data, tmp_path):
    summary, masks = data
    kwargs = ONE_EPOCH
    base = train([(summary, masks)], tmp_path / "base.npz", simulated=0, config=TINY, **kwargs)
    tuned = train([(summary, masks)], None, init_model=base.path, **kwargs)
    assert tuned.model.config.training["simulated"] == 0
    assert not any(name.startswith("simulated") for name in tuned.model.config.training["datasets"])
    mixed = train([(summary, masks)], None, init_model=base.path, simulated=1, simulated_shape=(48, 48), **kwargs)
    assert mixed.model.config.training["simulated"] == 1


def test_simulated_fields_made_beforehand_train_like_the_counted_ones(tmp_path):
    """Fields made with simulated_field (e.g. in parallel processes) and passed in give the same weights as asking
    train for that many; a field lacking an image the model reads is a clear error."""
    from cellfie_caiman.train import simulated_datasets, simulated_field

    kwargs = dict(ONE_EPOCH, config=TINY, simulated_shape=(48, 48))
    fields = [simulated_field(i, seed=ONE_EPOCH["seed"], shape=(48, 48)) for i in range(2)]
    listed = simulated_datasets(2, seed=ONE_EPOCH["seed"], shape=(48, 48))
    np.testing.assert_array_equal(fields[1][0].mean, listed[1][0].mean)
    counted = train([], None, simulated=2, **kwargs)
    given = train([], None, simulated=fields, **kwargs)
    assert given.model.config.training["simulated"] == 2
    for wa, wb in zip(counted.model.unet.get_weights(), given.model.unet.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="pnr_filtered"):
        train([], None, simulated=fields, channels=(*TINY.channels, "pnr_filtered"), **kwargs)


_TORCH_RUN = """
import sys
import numpy as np
import keras
assert keras.backend.backend() == "torch"
from cellfie_caiman.models import ModelConfig
from cellfie_caiman.train import simulated_field, train
config = ModelConfig(depth=2, base_filters=4, instance_filters=4, window=16, train_diameter=8.0)
fields = [simulated_field(i, seed=2, shape=(48, 48)) for i in range(2)]
res = train([], sys.argv[1], simulated=fields, config=config, epochs=3, steps_per_epoch=4, zooms=(1.0,), unet_batch=2,
            unet_crop=32, instance_batch=8, progress=False, seed=1)
import torch
assert not torch.are_deterministic_algorithms_enabled(), "train left PyTorch's deterministic algorithms on"
x = np.random.default_rng(0).normal(size=(40, 40, len(config.channels))).astype(np.float32)
np.savez(sys.argv[2], x=x, prob=res.model.predict_maps(x)[0], loss=[h["unet_loss"] for h in res.history])
"""


def test_training_under_the_pytorch_backend_gives_weights_that_tensorflow_reads_the_same(tmp_path):
    """Keras 3 with KERAS_BACKEND=torch (e.g. on a machine with a GPU and PyTorch but no TensorFlow GPU build)
    trains and saves the same kind of file: loaded here (TensorFlow), it predicts what it predicted there."""
    import importlib.util
    import os
    import subprocess
    import sys

    import keras

    if importlib.util.find_spec("torch") is None or int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("needs PyTorch and Keras 3")
    weights, out = tmp_path / "torch.npz", tmp_path / "out.npz"
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    subprocess.run([sys.executable, "-c", _TORCH_RUN, str(weights), str(out)], env=env, check=True, timeout=600)
    res = np.load(out)
    assert res["loss"][-1] < res["loss"][0]
    model = load_model(weights)
    np.testing.assert_allclose(model.predict_maps(res["x"])[0], res["prob"], atol=1e-4)


@pytest.mark.parametrize("shape", [(30, 45), (41, 29), (64, 64), (13, 90)])
def test_zoomed_masks_equal_a_whole_field_bilinear_resize(shape):
    """_zoom_masks works around each mask only; the reference resizes every whole mask with scikit-image."""
    from skimage.transform import resize

    from cellfie_caiman.training.fields import _zoom_masks

    rng = np.random.default_rng(sum(shape))
    yy, xx = np.mgrid[:37, :52]
    masks = [((yy - r) / a) ** 2 + ((xx - c) / b) ** 2 <= 1 for r, c, a, b in
             zip(rng.uniform(-2, 39, 12), rng.uniform(-2, 54, 12), rng.uniform(1, 6, 12), rng.uniform(1, 6, 12),
                 strict=True)]
    masks = np.array(masks + [np.zeros_like(masks[0]), rng.random((37, 52)) < 0.3])  # an empty and a ragged one
    ref = np.array([resize(m.astype(np.float32), shape, order=1, mode="constant", anti_aliasing=False) > 0.5
                    for m in masks])
    np.testing.assert_array_equal(_zoom_masks(masks, shape), ref)
    np.testing.assert_array_equal(_zoom_masks(masks, (37, 52)), masks)


def test_simulated_neuropil_varies_only_the_neuropil():
    from cellfie_caiman.train import simulated_field

    plain, m_plain = simulated_field(2, seed=9, shape=(48, 48))
    a, m_a = simulated_field(2, seed=9, shape=(48, 48), neuropil=True)
    b, _ = simulated_field(2, seed=9, shape=(48, 48), neuropil=True)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(m_plain, m_a)  # the same neurons: only the neuropil's strength was drawn
    assert not np.array_equal(plain.mean, a.mean)


def test_a_fraction_of_the_simulated_fields_gets_varied_neuropil():
    from cellfie_caiman.train import simulated_datasets

    plain = simulated_datasets(4, seed=9, shape=(40, 40))
    half = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5)
    same = [np.array_equal(a.mean, b.mean) for (a, _), (b, _) in zip(plain, half, strict=True)]
    assert same == [True, False, True, False]  # every other field
    with pytest.raises(ValueError, match="fraction"):
        simulated_datasets(1, seed=9, shape=(40, 40), neuropil=2.0)


def test_simulated_processes_change_only_the_neuropil_of_a_fraction_of_the_fields():
    from cellfie_caiman.train import simulated_datasets, simulated_field

    varied, m_varied = simulated_field(3, seed=9, shape=(48, 48), neuropil=True)
    meshed, m_meshed = simulated_field(3, seed=9, shape=(48, 48), neuropil=True, processes=True)
    np.testing.assert_array_equal(m_varied, m_meshed)  # the same neurons: the mesh is drawn last
    assert not np.array_equal(varied.mean, meshed.mean)
    plain = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5)
    mixed = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5, processes=0.5)
    same = [np.array_equal(a.mean, b.mean) for (a, _), (b, _) in zip(plain, mixed, strict=True)]
    assert same == [True, False, True, False]  # on the neuropil-varied fields
    with pytest.raises(ValueError, match="fraction"):
        simulated_datasets(1, seed=9, shape=(40, 40), processes=1.5)


def test_simulated_defocus_activates_out_of_focus_somata_of_a_fraction_of_the_fields():
    from cellfie_caiman.train import simulated_datasets, simulated_field

    still, m_still = simulated_field(2, seed=9, shape=(48, 48))
    active, m_active = simulated_field(2, seed=9, shape=(48, 48), defocus=True)
    np.testing.assert_array_equal(m_still, m_active)  # the same neurons: drawn last
    assert not np.array_equal(still.std, active.std)
    plain = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5)
    mixed = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5, defocus=0.5)
    same = [np.array_equal(a.std, b.std) for (a, _), (b, _) in zip(plain, mixed, strict=True)]
    assert same == [False, True, False, True]  # the even fields, whose neuropil is the default
    with pytest.raises(ValueError, match="fraction"):
        simulated_datasets(1, seed=9, shape=(40, 40), defocus=2.0)


def test_simulated_long_lengthens_only_the_movies_of_a_fraction_of_the_fields(caplog):
    import re

    from cellfie_caiman.train import simulated_datasets, simulated_field

    def frames():
        found = [int(n) for n in re.findall(r"simulated field \d+: .*, (\d+) frames", caplog.text)]
        caplog.clear()
        return found

    with caplog.at_level(logging.INFO, logger="cellfie_caiman.training.simulated"):
        short, m_short = simulated_field(2, seed=9, shape=(40, 40))
        n_short = frames()
        long, m_long = simulated_field(2, seed=9, shape=(40, 40), long=True)
        n_long = frames()
        simulated_datasets(8, seed=9, shape=(24, 24), long=0.5)
        mixed = frames()
    assert 100 <= n_short[0] < 600 and 600 <= n_long[0] < 2000
    np.testing.assert_array_equal(m_short, m_long)  # the same neurons: only the length was drawn apart
    assert not np.array_equal(short.mean, long.mean)
    assert sum(n >= 600 for n in mixed) == 4 and len(mixed) == 8
    with pytest.raises(ValueError, match="fraction"):
        simulated_datasets(1, seed=9, shape=(40, 40), long=1.5)


def test_a_fraction_of_the_simulated_fields_are_gaussian_blobs_with_only_spiking_neurons_outlined():
    from cellfie_caiman.summary import summary_images
    from cellfie_caiman.train import blob_field, blob_movie, simulated_datasets

    plain = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5)
    mixed = simulated_datasets(4, seed=9, shape=(40, 40), neuropil=0.5, blobs=0.5)
    same = [np.array_equal(a.mean, b.mean) for (a, _), (b, _) in zip(plain, mixed, strict=True)]
    assert same == [False, True, False, True]  # the even fields, apart from the neuropil-varied odd ones
    summary, masks = blob_field(0, seed=9, shape=(40, 40))
    np.testing.assert_array_equal(mixed[0][0].mean, summary.mean)
    # the masks are those of the movie's neurons that spike at least twice
    sim = blob_movie(0, seed=9, shape=(40, 40))
    np.testing.assert_array_equal(summary.mean, summary_images(sim.movie, batch_frames=250).mean)
    np.testing.assert_array_equal(masks, sim.masks[sim.spikes.sum(axis=1) >= 2])
    with pytest.raises(ValueError, match="fraction"):
        simulated_datasets(1, seed=9, shape=(40, 40), blobs=-0.1)


def test_crops_around_missed_neurons_contain_them(data):
    """missed_fraction=1: every crop holds the given neuron's centre (the heat target peaks there); at random places
    a 32-px crop of the 64-px field often does not."""
    from cellfie_caiman.training.sampling import _unet_batch

    summary, masks = data
    f = prepare_field(summary, masks, TINY, val_fraction=0.25)
    k = int(np.argmin(np.abs(f.centers - (20, 20)).sum(1)))
    only = f._replace(heat=np.zeros_like(f.heat))
    r, c = (int(round(v)) for v in f.centers[k])
    only.heat[r, c] = 1.0  # a single marked pixel: the crop holds it or not
    rng = np.random.default_rng(0)
    _, _, heat = _unet_batch([only], np.ones(1), 40, 32, rng, missed=[(0, *f.centers[k])], missed_fraction=1.0)
    assert (heat.max(axis=(1, 2)) == 1.0).all()
    _, _, heat = _unet_batch([only], np.ones(1), 40, 32, rng)
    assert (heat.max(axis=(1, 2)) == 1.0).mean() < 0.6


def test_missed_neurons_are_the_simulated_ones_without_a_candidate_near_them():
    """Naive reference: every training-row neuron of a simulated field, checked one by one against the candidates
    the model's maps give at the inference thresholds."""
    from cellfie_caiman.detection import PROB_THRESHOLD, find_candidates
    from cellfie_caiman.models import load_model
    from cellfie_caiman.train import simulated_field
    from cellfie_caiman.training.sampling import _hard_candidates

    model = load_model("default")
    cfg = model.config
    summary, masks = simulated_field(0, seed=5, shape=(96, 96), filter_diameter=cfg.train_diameter)
    f = prepare_field(summary, masks, cfg, val_fraction=0.2, name="simulated0")
    _, missed = _hard_candidates(model, [f, f], [True, False])
    prob, heat = model.predict_maps(f.inputs[:f.train_rows])
    cand = find_candidates(heat, prob, radius=max(1, int(round(cfg.train_diameter / 4))),
                           heat_threshold=cfg.center_threshold, prob_threshold=PROB_THRESHOLD)
    expected = []
    for r, c in f.centers:
        if r < f.train_rows and not any(np.hypot(r - a, c - b) <= 0.25 * cfg.train_diameter for a, b in cand):
            expected.append((0, r, c))
    assert sorted(missed) == sorted(expected)
    assert 0 < len(f.centers) and all(i == 0 for i, _, _ in missed)  # the field flagged False gives none
    # only those the soma-filtered input shows: its largest value within a quarter diameter of the centre
    pf = f.inputs[..., cfg.channels.index("pnr_filtered")]
    radius = max(1, int(round(cfg.train_diameter / 4)))
    def near_max(r, c):
        r, c = round(r), round(c)
        return pf[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1].max()

    shown = [(i, r, c) for i, r, c in expected if near_max(r, c) >= 1.0]
    _, visible = _hard_candidates(model, [f], [True], missed_signal=1.0)
    assert sorted(visible) == sorted(shown)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_missed_crops_outside_0_1_is_refused(data, bad):
    summary, masks = data
    with pytest.raises(ValueError, match="missed_crops"):
        train([(summary, masks)], None, simulated=0, config=TINY, missed_crops=bad, **ONE_EPOCH)


def test_missed_signal_without_the_filtered_image_is_a_clear_error(data):
    summary, masks = data
    with pytest.raises(ValueError, match="pnr_filtered"):
        train([(summary, masks)], None, simulated=0, config=TINY, missed_crops=0.5, missed_signal=2.0, **ONE_EPOCH)


@pytest.mark.parametrize("setting", [dict(epochs=0), dict(steps_per_epoch=0), dict(patience=0),
                                     dict(val_fraction=0.0), dict(val_fraction=1.0), dict(zooms=()),
                                     dict(zooms=(1.0, 0.0)), dict(unet_crop=100), dict(unet_batch=0),
                                     dict(instance_batch=0), dict(learning_rate=-1e-3),
                                     dict(learning_rate=float("nan")), dict(annotated_fraction=2.0),
                                     dict(max_minutes=0), dict(batch_frames=1), dict(simulated_rates=(1.0, 0.1)),
                                     dict(missed_crops=1.5), dict(selection="mean"), dict(zooms=(0.9, 1.1))])
def test_bad_settings_are_named_before_any_data_is_read(setting):
    """Each used to crash deep in NumPy or Keras (a division by zero, NaN probabilities, a shape error in the
    graph) or train silently on nonsense (a negative learning rate, no validation rows). Now a ValueError names the
    setting before the movies are opened (this one does not exist)."""
    name = next(iter(setting))
    with pytest.raises(ValueError, match=name):
        train([("missing-movie.tif", "missing-rois.json")], None, **{**ONE_EPOCH, **setting})


# ------------------------------------------------------------------------------------- partly annotated fields
@pytest.mark.parametrize("region, expected", [("0:32,:", (0, 32, 0, 64)), (" :,-20: ", (0, 64, 44, 64)),
                                              ("10:50,16:48", (10, 50, 16, 48)), ((slice(0, 32), slice(None)),
                                                                                   (0, 32, 0, 64))])
def test_parse_region_reads_numpy_slices(region, expected):
    from cellfie_caiman.training.fields import parse_region

    assert parse_region(region, (64, 64)) == expected


@pytest.mark.parametrize("region, message", [("0:32", "R0:R1,C0:C1"), ("a:b,:", "whole pixel"),
                                             ("0:8,:", "at least 16"), ("60:80,:", "at least 16"),
                                             ((slice(0, 32, 2), slice(None)), "pair of slices")])
def test_parse_region_refuses_what_is_not_a_region(region, message):
    from cellfie_caiman.training.fields import parse_region

    with pytest.raises(ValueError, match=message):
        parse_region(region, (64, 64))


def test_a_partly_annotated_field_is_trained_only_where_it_was_annotated(data):
    """With a region, the training field is that part of the summary images (computed on the whole field) with the
    masks that reach into it, cut at its edge; train records the region."""
    from cellfie_caiman.training.fields import _annotated

    summary, masks = data
    channels = ("corr", "pnr", "std", "mean", "median", "max")
    cut, cut_masks = _annotated(summary, masks, channels, None, 250, False, region="0:40,:")
    assert all(np.array_equal(getattr(cut, c), np.asarray(getattr(summary, c))[:40]) for c in channels)
    reaching = masks[:, :40].reshape(len(masks), -1).any(1)
    np.testing.assert_array_equal(cut_masks, masks[reaching, :40])
    assert 0 < len(cut_masks) < len(masks)
    res = train([(summary, masks, "0:40,:")], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert res.model.config.training["dataset_regions"] == ["0:40,:"]


def test_a_bad_region_fails_before_the_summary_images(data, monkeypatch):
    import cellfie_caiman.summary as summary_module

    def no_summary(*args, **kwargs):
        raise AssertionError("the summary images were computed")

    monkeypatch.setattr(summary_module, "summary_images", no_summary)
    sim_movie = simulate(100, (64, 64), 5, seed=2, diameter=8.0).movie
    with pytest.raises(ValueError, match="at least 16"):
        train([(sim_movie, data[1], "0:8,:")], None, simulated=0, config=TINY, **ONE_EPOCH)
    with pytest.raises(ValueError, match="got 4 items"):
        train([(sim_movie, data[1], "0:8,:", "more")], None, simulated=0, config=TINY, **ONE_EPOCH)
    # no ROI (at all, or in the region), in the second dataset: said before the first one's images are computed
    empty = np.zeros((0, 64, 64), bool)
    with pytest.raises(ValueError, match="dataset 1 .*no ROI, nothing to learn from"):
        train([(sim_movie, data[1]), (sim_movie, empty)], None, simulated=0, config=TINY, **ONE_EPOCH)
    corner = np.zeros((1, 64, 64), bool)
    corner[0, 60:, 60:] = True
    with pytest.raises(ValueError, match="dataset 0 .*no ROI in its region '0:32,0:32'"):
        train([(sim_movie, corner, "0:32,0:32")], None, simulated=0, config=TINY, **ONE_EPOCH)
    with pytest.raises(ValueError, match="list of \\(movie, rois\\) pairs"):
        train(("movie.tif", "rois.json"), None, simulated=0, config=TINY, **ONE_EPOCH)


def test_annotations_with_no_neuron_in_the_validation_strip_are_refused_before_training(data):
    """Every epoch would score F1 0 and the first would be kept: a ValueError says what to do; with simulated
    fields to score, a warning names the annotated field whose strip is empty."""
    summary, masks = data
    rows = np.array([np.argwhere(m)[:, 0].mean() for m in masks])
    top = masks[rows < 40]  # the validation strip is the bottom 20 % (rows 51-63)
    with pytest.raises(ValueError, match="no neuron lies in the validation strip of any field"):
        train([(summary, top)], None, simulated=0, config=TINY, **ONE_EPOCH)
    with pytest.warns(UserWarning, match="no annotated neuron in the validation strip .* of dataset0"):
        train([(summary, top)], None, simulated=1, simulated_shape=(48, 48), config=TINY, **ONE_EPOCH)


@pytest.mark.parametrize("setting, message", [(dict(simulated=-1), "simulated"),
                                              (dict(simulated_shape=(0, 0)), "simulated_shape"),
                                              (dict(simulated_shape=(100000, 100000)), "simulated_shape"),
                                              (dict(seed=-1), "seed")])
def test_simulated_fields_and_seed_are_checked_before_any_data_is_read(setting, message):
    with pytest.raises(ValueError, match=message):
        train([("missing-movie.tif", "missing-rois.json")], None, **{**ONE_EPOCH, **setting})


@pytest.mark.parametrize("name, error", [("w.txt", ValueError), ("", ValueError), ("a_file/w.npz", NotADirectoryError)])
def test_an_unwritable_weights_path_is_refused_before_training(tmp_path, name, error):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(error):
        train([("missing-movie.tif", "missing-rois.json")], tmp_path / name if name else tmp_path, **ONE_EPOCH)


def test_ctrl_c_keeps_and_saves_the_best_finished_epoch(data, tmp_path, interrupt_training_at):
    """Interrupted in its second epoch, training returns and saves the first epoch's weights: those of an
    uninterrupted one-epoch run with the same seed."""
    summary, masks = data
    kwargs = dict(simulated=0, config=TINY, **{**ONE_EPOCH, "epochs": 3})
    once = train([(summary, masks)], None, **{**kwargs, "epochs": 1})
    interrupt_training_at(ONE_EPOCH["steps_per_epoch"] + 2)  # the second update of epoch 1
    with pytest.warns(RuntimeWarning, match="interrupted during epoch 1: keeping epoch 0"):
        cut = train([(summary, masks)], tmp_path / "w.npz", **kwargs)
    assert cut.interrupted and not once.interrupted
    assert len(cut.history) == 1 and cut.best_epoch == 0 and cut.best_f1 == once.best_f1
    saved = load_model(cut.path)
    assert saved.config.training["interrupted"] is True and saved.config.training["epochs_run"] == 1
    for a, b in zip(saved.unet.get_weights() + saved.instance.get_weights(),
                    once.model.unet.get_weights() + once.model.instance.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_before_the_first_epoch_ends_interrupts_and_saves_nothing(data, tmp_path, interrupt_training_at):
    summary, masks = data
    interrupt_training_at(1)
    with pytest.raises(KeyboardInterrupt):
        train([(summary, masks)], tmp_path / "w.npz", simulated=0, config=TINY, **ONE_EPOCH)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ datasets as users give them
def test_datasets_given_as_zip_or_a_generator_are_all_used(data):
    """``zip(movies, rois)`` used to be used up by the first check: its datasets were silently dropped (training on
    the simulated fields alone, or a misleading error without them)."""
    summary, masks = data
    res = train(zip([summary], [masks], strict=True), None, simulated=0, config=TINY, **ONE_EPOCH)
    assert res.model.config.training["datasets"] == ["dataset0"]
    assert res.model.config.training["dataset_sources"] == [["<SummaryImages>", "<ndarray>"]]
    gen = train(((summary, masks.copy()) for _ in range(2)), None, simulated=0, config=TINY, **ONE_EPOCH)
    assert gen.model.config.training["datasets"] == ["dataset0", "dataset1"]


def test_annotations_only_in_the_validation_strip_are_refused(data):
    """With every annotated neuron in the held-out bottom rows the networks were taught only background, silently."""
    summary, masks = data
    rows = np.array([np.argwhere(m)[:, 0].mean() for m in masks])
    bottom = masks[rows > 54]  # the validation strip is the bottom 20 % (rows 51-63)
    assert len(bottom)
    with pytest.raises(ValueError, match="no neuron lies in the training rows of any field"):
        train([(summary, bottom)], None, simulated=0, config=TINY, **ONE_EPOCH)
    with pytest.warns(UserWarning, match="no annotated neuron in the training rows .* of dataset0"):
        train([(summary, bottom)], None, simulated=1, simulated_shape=(48, 48), config=TINY, **ONE_EPOCH)


@pytest.fixture(scope="module")
def movie_files(tmp_path_factory):
    """A short simulated movie as a TIFF file with its ROIs as neurofinder JSON."""
    import tifffile

    folder = tmp_path_factory.mktemp("movie")
    sim = simulate(120, (64, 64), 12, seed=3, fs=15.0, diameter=8.0)
    tifffile.imwrite(folder / "movie.tif", sim.movie.astype(np.float32))
    write_rois(folder / "rois.json", sim.masks)
    return folder / "movie.tif", folder / "rois.json", sim


def test_a_repeated_dataset_is_warned_about_and_an_opened_movie_recorded_by_its_path(movie_files, monkeypatch):
    """The same movie and ROIs twice (here once by a relative path) counted twice without a word; a movie opened
    with ``load_movie`` (as ``--var-name`` does) was recorded as ``<Movie>`` instead of its file."""
    from cellfie_caiman.io import load_movie

    movie, rois, _ = movie_files
    monkeypatch.chdir(movie.parent)
    with pytest.warns(UserWarning, match="dataset 1 repeats dataset 0"):
        res = train([(movie, rois), ("movie.tif", "rois.json")], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert len(res.model.config.training["datasets"]) == 2
    opened = train([(load_movie(movie), rois)], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert opened.model.config.training["dataset_sources"] == [[str(movie.resolve()), str(rois.resolve())]]


def test_the_weights_file_records_the_data_it_was_trained_on(movie_files, tmp_path):
    """The record names the files and what they held (a file rewritten since has another SHA-256), how many
    annotated neurons taught the networks and scored the epochs, and when."""
    import datetime
    import hashlib

    movie, rois, sim = movie_files
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    res = train([(movie, rois, "0:60,:")], tmp_path / "w.npz", simulated=0, config=TINY, **ONE_EPOCH)
    training = load_model(tmp_path / "w.npz").config.training
    (files,) = training["dataset_files"]
    assert files["movie"]["path"] == str(movie.resolve()) and files["movie"]["shape"] == [120, 64, 64]
    assert files["movie"]["sha256"] == hashlib.sha256(movie.read_bytes()).hexdigest()
    assert files["rois"] == {"path": str(rois.resolve()), "sha256": hashlib.sha256(rois.read_bytes()).hexdigest()}
    # neurons of the region 0:60 (its bottom 12 rows, 48:60, are the validation strip), by their centroids there
    cut = sim.masks[:, :60][sim.masks[:, :60].any(axis=(1, 2))]
    rows = np.array([np.argwhere(m)[:, 0].mean() for m in cut])
    assert training["dataset_neurons"] == [{"training": int(np.sum(rows < 48)), "validation": int(np.sum(rows >= 48))}]
    created = datetime.datetime.fromisoformat(training["created"])
    assert before <= created <= datetime.datetime.now(datetime.timezone.utc)
    assert res.model.config.training["dataset_files"] == training["dataset_files"]


def test_a_short_movie_is_warned_about(movie_files):
    _, _, sim = movie_files
    with pytest.warns(RuntimeWarning, match="dataset 0: the movie has only 40 frames"):
        train([(sim.movie[:40], sim.masks)], None, simulated=0, config=TINY, **ONE_EPOCH)


def test_masks_given_as_arrays_are_read_as_read_rois_reads_them(data, tmp_path):
    """Arrays of masks mean what the same array in a ``.npy`` file means to ``read_rois``: a pixel is in an ROI
    where its value is > 0 (a -1 background used to make every pixel a neuron), and CaImAn's ``A`` (rows*cols, N),
    also SciPy sparse, is read in its Fortran pixel order."""
    import scipy.sparse

    from cellfie_caiman.rois import read_rois
    from cellfie_caiman.training.fields import _as_masks

    _, masks = data
    shape = masks.shape[1:]
    labelled = np.where(masks, 1.0, -1.0)
    ain = masks.reshape(len(masks), -1, order="F").T.astype(np.float32)
    for array in (labelled, ain):
        np.save(tmp_path / "m.npy", array)
        expected = read_rois(tmp_path / "m.npy", shape=shape)
        np.testing.assert_array_equal(expected, masks)
        np.testing.assert_array_equal(_as_masks(array, shape), expected)
    np.testing.assert_array_equal(_as_masks(scipy.sparse.csc_matrix(ain), shape), masks)
    with pytest.raises(ValueError, match=r"masks must have shape \(N, 64, 64\)"):
        _as_masks(masks.transpose(0, 2, 1)[:, :, :60], shape)


@pytest.fixture(scope="module")
def oblong_field():
    """A simulated 64 x 48 movie (rows != columns) and its masks."""
    sim = simulate(120, (64, 48), 8, seed=4, fs=15.0, diameter=8.0)
    return sim.movie, sim.masks


def test_masks_with_rows_and_columns_swapped_are_named_so(oblong_field):
    from cellfie_caiman.training.fields import _as_masks

    _, masks = oblong_field
    with pytest.raises(ValueError, match=r"got \(8, 48, 64\); rows and columns swapped"):
        _as_masks(masks.transpose(0, 2, 1), (64, 48))


def test_an_ain_flattened_in_c_order_is_warned_about(oblong_field):
    """``masks.reshape(N, -1).T`` (C order) read as CaImAn's Fortran-order Ain scatters each neuron's rows over the
    field: trained on, it taught stripes (or failed on an empty validation strip) without saying why."""
    from cellfie_caiman.training.fields import checked_annotation

    movie, masks = oblong_field
    channels = ModelConfig().channels
    with pytest.warns(UserWarning, match=r"dataset 0 \(its masks\): 8 of 8 ROIs are in several pieces .* order='F'"):
        checked_annotation(movie, masks.reshape(len(masks), -1).T, channels, name="dataset 0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same masks in Fortran order: no warning
        _, read, _ = checked_annotation(movie, masks.reshape(len(masks), -1, order="F").T, channels)
    np.testing.assert_array_equal(read, masks)


# ---- the check that annotations line up with their movies (training.annotation_check) ----

@pytest.fixture(scope="module")
def square_fields():
    """Two simulated 64 x 64 movies (somata of ~10 px, which the shipped model finds well) and their masks."""
    sims = [simulate(120, (64, 64), 12, seed=seed, fs=15.0, diameter=10.0) for seed in (3, 4)]
    return [(s.movie, s.masks) for s in sims]


class _TrainingStarted(Exception):
    """Raised by the first U-Net batch: training has begun."""


@pytest.fixture
def stop_at_first_batch(monkeypatch):
    """Make ``train()`` stop with ``_TrainingStarted`` when it draws its first training batch."""
    import sys

    import cellfie_caiman.training.fit  # noqa: F401  (the epoch loop: it draws the batches)

    def first_batch(*args, **kwargs):
        raise _TrainingStarted

    monkeypatch.setattr(sys.modules["cellfie_caiman.training.fit"], "_unet_batch", first_batch)


@pytest.mark.parametrize("mistake, arrange", [("transposed", lambda m: m.transpose(0, 2, 1)),
                                              ("flipped up-down", lambda m: m[:, ::-1]),
                                              ("flipped left-right", lambda m: m[:, :, ::-1])])
def test_misaligned_annotations_are_warned_about_before_any_training_step(square_fields, stop_at_first_batch,
                                                                          mistake, arrange):
    movie, masks = square_fields[0]
    with pytest.warns(UserWarning, match=rf"dataset0: the shipped model's detections match its annotations {mistake} "
                      r"\(F1 0\.\d\d\) much better than its annotations as given \(F1 0\.\d\d\)") as record:
        with pytest.raises(_TrainingStarted):
            train([(movie, arrange(masks))], None, simulated=0, config=TINY, val_fraction=0.4, **ONE_EPOCH)
    message = next(str(w.message) for w in record if "shipped model" in str(w.message))
    assert "check_annotations=False" in message


def test_movies_paired_with_the_wrong_rois_are_warned_about(square_fields, stop_at_first_batch):
    (movie0, masks0), (movie1, masks1) = square_fields
    with pytest.warns(UserWarning, match="paired with the wrong ROIs") as record:
        with pytest.raises(_TrainingStarted):
            train([(movie0, masks1), (movie1, masks0)], None, simulated=0, config=TINY, **ONE_EPOCH)
    messages = [str(w.message) for w in record if "paired with the wrong ROIs" in str(w.message)]
    assert len(messages) == 2
    assert messages[0].startswith("dataset0: the shipped model's detections match dataset1's annotations (F1 0.")
    assert messages[1].startswith("dataset1: the shipped model's detections match dataset0's annotations (F1 0.")


def test_correctly_oriented_annotations_give_no_warning_and_their_check_is_recorded(square_fields):
    import warnings

    from cellfie_caiman.evaluate import match_rois
    from cellfie_caiman.initialize import initialize, model_summary

    movie, masks = square_fields[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train([(movie, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert not [w for w in caught if "shipped model" in str(w.message)]
    (checked,) = res.model.config.training["annotation_check"]
    # the recorded F1 is that of the shipped model's one-pass detections against the masks
    found = initialize(model_summary(movie), tta=False).masks
    assert checked["f1"] == pytest.approx(match_rois(masks, found).f1, abs=1e-3)
    assert checked["f1"] >= 0.5 and checked["suspect"] is None
    assert checked["unannotated"] == [] and checked["annotated_region"] is None
    assert set(checked["alternatives"]) == {"transposed", "flipped up-down", "flipped left-right"}


@pytest.fixture(scope="module")
def wide_field():
    """A simulated 128 x 128 movie with 36 somata of ~10 px (the shipped model finds them) and its masks."""
    sim = simulate(150, (128, 128), 36, seed=6, fs=15.0, diameter=10.0)
    return sim.movie, sim.masks


def _extent(masks: np.ndarray, axis: int) -> tuple[int, int]:
    """[first, last + 1) of the rows (axis 0) or columns (axis 1) that hold a pixel of ``masks``."""
    idx = np.flatnonzero(masks.any(0).any(1 - axis))
    return int(idx[0]), int(idx[-1]) + 1


def test_a_field_annotated_in_part_without_its_region_is_warned_about_with_the_region(wide_field,
                                                                                      stop_at_first_batch):
    """Only the left half outlined, no region given: the right half's neurons would be taught as background."""
    movie, masks = wide_field
    left = masks[masks[:, :, :64].any(axis=(1, 2))]
    c1 = _extent(left, 1)[1]
    assert c1 <= 80 and len(masks) - len(left) >= 10  # the right 48 columns hold neurons and no ROI
    region = f"0:128,0:{c1}"  # the ROIs' extent on the side left out
    with pytest.warns(UserWarning, match=rf"dataset0: no ROI in the right {128 - c1} columns \(rows 0:128, columns "
                      rf"{c1}:128\), where the shipped model finds \d+ neurons") as caught:
        with pytest.raises(_TrainingStarted):
            train([(movie, left)], None, simulated=0, config=TINY, **ONE_EPOCH)
    message = next(str(w.message) for w in caught if "no ROI in the" in str(w.message))
    assert f"--data MOVIE ROIS {region}" in message
    with warnings.catch_warnings(record=True) as given:  # the region it names: nothing left out any more
        warnings.simplefilter("always")
        with pytest.raises(_TrainingStarted):
            train([(movie, left, region)], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert not [w for w in given if "no ROI in the" in str(w.message)]


def test_the_region_named_for_a_field_annotated_in_part_is_in_movie_pixels(wide_field):
    """A region given (rows 32:128) whose left part alone was outlined: the band and the region the warning names
    are where they lie in the movie, not in the cut field; both are recorded."""
    movie, masks = wide_field
    left = masks[masks[:, 32:, :64].any(axis=(1, 2))]
    inside = left[:, 32:]
    c1 = _extent(inside, 1)[1]
    with pytest.warns(UserWarning, match=rf"columns {c1}:128\), where"):
        res = train([(movie, left, "32:128,:")], None, simulated=0, config=TINY, **ONE_EPOCH)
    (checked,) = res.model.config.training["annotation_check"]
    assert checked["annotated_region"] == f"32:128,0:{c1}"  # the rows of the region given, the ROIs' columns
    (band,) = checked["unannotated"]
    assert band["side"] == "right" and band["rows"] == [32, 128] and band["cols"] == [c1, 128]


def test_the_check_switched_off_runs_no_detection(square_fields, monkeypatch, stop_at_first_batch):
    import sys

    import cellfie_caiman.initialize  # noqa: F401  (the module: the package exports a function of that name)

    init_module = sys.modules["cellfie_caiman.initialize"]
    calls = []
    real = init_module.initialize

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(init_module, "initialize", counted)
    movie, masks = square_fields[0]
    with pytest.raises(_TrainingStarted):  # up to the first training batch: where the check would have run
        train([(movie, masks)], None, simulated=0, config=TINY, check_annotations=False, **ONE_EPOCH)
    assert calls == []
    with pytest.raises(_TrainingStarted):
        train([(movie, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert len(calls) == 1, "one detection per annotated field when the check is on"


def test_the_check_leaves_the_trained_weights_as_they_would_be_without_it(square_fields):
    """Building the shipped model for the check drew from the global random state that seeds the new networks."""
    movie, masks = square_fields[0]
    on = train([(movie, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    off = train([(movie, masks)], None, simulated=0, config=TINY, check_annotations=False, **ONE_EPOCH)
    for a, b in zip(on.model.unet.get_weights(), off.model.unet.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("f1, alternatives, chance, expected", [
    (0.3, {"transposed": 0.59}, 0.0, None),               # less than twice the F1 as given
    (0.3, {"transposed": 0.6, "flipped up-down": 0.1}, 0.0, "transposed"),
    (0.05, {"transposed": 0.19}, 0.0, None),              # below 0.2: no better than nothing
    (0.1, {"flipped up-down": 0.5}, 0.3, None),           # less than twice the chance level
    (0.1, {"flipped up-down": 0.6}, 0.3, "flipped up-down"),
    (0.5, {}, 0.0, None)])
def test_the_declared_rule_for_a_mistake(f1, alternatives, chance, expected):
    from cellfie_caiman.training.annotation_check import looks_wrong

    assert looks_wrong(f1, alternatives, chance) == expected


def test_check_annotations_must_be_a_bool(data):
    summary, masks = data
    with pytest.raises(ValueError, match="check_annotations must be True or False"):
        train([(summary, masks)], None, simulated=0, config=TINY, check_annotations="no", **ONE_EPOCH)


# ---- what train() leaves behind in the caller's process, and a run that finds nothing ----

def _caller_draws() -> tuple:
    """The next numbers of Python's, NumPy's and TensorFlow's global random sequences."""
    import random

    import tensorflow as tf

    return random.random(), np.random.random(), tf.random.uniform([3]).numpy().tolist()


def _seed_caller(seed: int) -> None:
    """Seed Python's, NumPy's and TensorFlow's global random sequences, as a user's script would."""
    import random

    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


@pytest.mark.parametrize("ending", ["returns", "Ctrl-C before the first epoch ends"])
def test_train_leaves_the_callers_random_sequences_and_tensorflow_settings_as_they_were(data, ending,
                                                                                      interrupt_training_at):
    """train() seeded Python, NumPy and TensorFlow and turned on TensorFlow's op determinism for good: the caller's
    random sequences restarted from train's seed, and later TensorFlow work ran slower or failed (an op that has no
    deterministic version, like fractional max pooling without a seed, raised). Also when training is cut short."""
    import tensorflow as tf

    summary, masks = data
    _seed_caller(7)
    expected = _caller_draws()  # what the caller's script draws next when nothing happens in between
    _seed_caller(7)
    if ending == "returns":
        train([(summary, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    else:
        interrupt_training_at(1)
        with pytest.raises(KeyboardInterrupt):
            train([(summary, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    assert _caller_draws() == expected
    pooled = tf.nn.fractional_max_pool(tf.ones((1, 8, 8, 1)), [1.0, 1.5, 1.5, 1.0])[0]
    assert pooled.shape == (1, 5, 5, 1)


def test_the_trained_weights_do_not_depend_on_the_callers_settings(data):
    """Trained with op determinism on and the global seeds set as an earlier train() left them (the old behaviour,
    kept as the caller's own settings: train puts them back as they were, on), or with neither: the same weights."""
    import random

    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # TF 2.15-2.21 have no public getter

    summary, masks = data
    assert not tf_config.is_op_determinism_enabled()
    random.seed(11)
    np.random.seed(11)
    fresh = train([(summary, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
    keras.utils.set_random_seed(ONE_EPOCH["seed"])
    tf.config.experimental.enable_op_determinism()
    try:
        old = train([(summary, masks)], None, simulated=0, config=TINY, **ONE_EPOCH)
        assert tf_config.is_op_determinism_enabled(), "the caller's own op determinism was turned off"
    finally:
        tf_config.disable_op_determinism()
    for a, b in zip(fresh.model.unet.get_weights() + fresh.model.instance.get_weights(),
                    old.model.unet.get_weights() + old.model.instance.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_whose_networks_find_nothing_warns_that_its_best_f1_is_0(data, tmp_path):
    """Two updates of tiny networks find no neuron in the validation strip in any epoch: the first epoch was saved
    and returned as the 'best' without a word."""
    summary, masks = data
    with pytest.warns(RuntimeWarning, match="best validation F1 is 0") as record:
        res = train([(summary, masks)], tmp_path / "w.npz", simulated=0, config=TINY, **{**ONE_EPOCH, "epochs": 2})
    assert [h["val_f1"] for h in res.history] == [0.0, 0.0] and [h["val_recall"] for h in res.history] == [0.0, 0.0]
    assert (res.best_f1, res.best_epoch) == (0.0, 0) and res.path.exists()
    message = next(str(w.message) for w in record if "best validation F1 is 0" in str(w.message))
    assert "after any of the 2 epochs run" in message and "returned and saved (epoch 0)" in message
    for hint in ("annotations line up with their movies", f"model's neuron diameter ({TINY.train_diameter:.1f} px)",
                 f"median diameter of the training masks {mask_diameter(masks):.1f} px", "more epochs"):
        assert hint in message


def test_a_run_that_finds_neurons_gives_no_f1_warning(square_fields):
    """Fine-tuning the shipped model, which finds these neurons from the first epoch on."""
    import warnings

    movie, masks = square_fields[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train([(movie, masks)], None, init_model="default", check_annotations=False, **ONE_EPOCH)
    assert res.best_f1 > 0.3
    assert not [w for w in caught if "F1 is 0" in str(w.message)]


def test_a_config_given_with_init_model_is_warned_about_as_ignored(square_fields, stop_at_first_batch):
    """Fine-tuning keeps init_model's architecture: a config given too was dropped without a word."""
    movie, masks = square_fields[0]
    shipped = load_model("default").config.train_diameter
    with pytest.warns(UserWarning, match=rf"config is ignored when fine-tuning init_model: .* \({shipped:g} px\)"):
        with pytest.raises(_TrainingStarted):
            train([(movie, masks)], None, init_model="default", config=TINY, check_annotations=False, **ONE_EPOCH)


@pytest.fixture(scope="module")
def large_neurons():
    """A simulated 96 x 96 movie of neurons of ~20 px (the shipped model's training size is ~12 px) and its masks."""
    sim = simulate(120, (96, 96), 8, seed=5, fs=15.0, diameter=20.0)
    return sim.movie, sim.masks


def _first_fields(monkeypatch) -> list:
    """Make ``train()`` stop at its first training batch and return the fields it would have trained on."""
    import sys

    import cellfie_caiman.training.fit  # noqa: F401  (the epoch loop: it draws the batches)

    seen = []

    def first_batch(fields, *args, **kwargs):
        seen.extend(fields)
        raise _TrainingStarted

    monkeypatch.setattr(sys.modules["cellfie_caiman.training.fit"], "_unet_batch", first_batch)
    return seen


def _field_diameter(field) -> float:
    """Median equivalent diameter (pixels) of a training field's target masks (its per-neuron crops)."""
    return float(np.median([2 * np.sqrt(np.count_nonzero(crop) / np.pi) for _, _, crop in field.boxes]))


@pytest.mark.parametrize("to_model", [False, True])
def test_scale_to_model_trains_on_the_neurons_at_the_models_size(large_neurons, monkeypatch, to_model):
    """Fine-tuning on neurons far from the model's size: at their own scale (warned about) or zoomed to the model's,
    as initialize(neuron_diameter=d) will show them."""
    movie, masks = large_neurons
    own = mask_diameter(masks)
    model_d = load_model("default").config.train_diameter
    fields = _first_fields(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_TrainingStarted):
            train([(movie, masks)], None, init_model="default", simulated=0, check_annotations=False,
                  scale_to_model=to_model, **ONE_EPOCH)
    said = [str(w.message) for w in caught if "not the model's size" in str(w.message)]
    field = next(f for f in fields if f.zoom == 1.0)
    if to_model:
        assert said == []
        assert abs(_field_diameter(field) / model_d - 1) < 0.1, (_field_diameter(field), model_d)
        assert field.inputs.shape[:2] == (round(96 * model_d / own),) * 2
    else:
        assert len(said) == 1 and f"dataset0 ({own:.1f} px)" in said[0] and "scale_to_model=True" in said[0]
        assert abs(_field_diameter(field) / own - 1) < 0.1 and field.inputs.shape[:2] == (96, 96)


def _size_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "not the model's size" in str(w.message)]


def test_fine_tuning_trains_neurons_far_from_the_models_size_at_its_scale_by_default(large_neurons, square_fields,
                                                                                     monkeypatch):
    """Fine-tuning (init_model) with scale_to_model left at None: the dataset of ~20 px neurons is zoomed to the
    model's size (measured: F1 0.908 -> 0.958 on such neurons, 0.308 -> 0.403 on neurofinder.01.01), the one of
    ~10 px neurons, within 0.8-1.25 times it, is trained as it is, and nothing is warned about. Before, both were
    trained at their own scale, with a warning about the first."""
    big, big_masks = large_neurons
    near, near_masks = square_fields[0]
    model_d = load_model("default").config.train_diameter
    assert not 0.8 <= mask_diameter(big_masks) / model_d <= 1.25
    assert 0.8 <= mask_diameter(near_masks) / model_d <= 1.25
    fields = _first_fields(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_TrainingStarted):
            train([(big, big_masks), (near, near_masks)], None, init_model="default", simulated=0,
                  check_annotations=False, **ONE_EPOCH)
    assert _size_warnings(caught) == []
    unzoomed = {f.name: f for f in fields if f.zoom == 1.0}
    assert abs(_field_diameter(unzoomed["dataset0"]) / model_d - 1) < 0.1
    assert unzoomed["dataset0"].inputs.shape[:2] == (round(96 * model_d / mask_diameter(big_masks)),) * 2
    assert unzoomed["dataset1"].inputs.shape[:2] == (64, 64)


def test_training_from_scratch_keeps_each_dataset_at_its_own_scale_by_default(large_neurons, square_fields,
                                                                              monkeypatch):
    """Without init_model the model's size is the data's (the median of its neurons): scale_to_model=None zooms
    nothing, as before, and names the dataset far from that size."""
    big, big_masks = large_neurons
    near, near_masks = square_fields[0]
    fields = _first_fields(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_TrainingStarted):
            train([(big, big_masks), (near, near_masks), square_fields[1]], None, simulated=0,
                  check_annotations=False, **ONE_EPOCH)
    unzoomed = {f.name: f.inputs.shape[:2] for f in fields if f.zoom == 1.0}
    assert unzoomed == {"dataset0": (96, 96), "dataset1": (64, 64), "dataset2": (64, 64)}
    (said,) = _size_warnings(caught)
    assert "dataset0" in said and "dataset1" not in said


def test_the_weights_record_which_datasets_were_trained_at_the_models_scale(large_neurons, square_fields):
    big, big_masks = large_neurons
    res = train([(big, big_masks), square_fields[0]], None, init_model="default", simulated=0,
                check_annotations=False, **ONE_EPOCH)
    assert res.model.config.training["scale_to_model"] == "auto"
    assert res.model.config.training["scaled_to_model"] == ["dataset0"]
    with pytest.raises(ValueError, match="scale_to_model must be True, False or None"):
        train([square_fields[0]], None, init_model="default", simulated=0, scale_to_model="yes", **ONE_EPOCH)


def test_a_region_trained_at_the_models_scale_is_checked_without_an_error(large_neurons, stop_at_first_batch):
    """scale_to_model with a region: the annotation check computes the shipped model's images itself (the training's
    soma filter is for the neurons' own size) and cuts them to the region; that cut failed on NumPy's reshape of
    an empty mask stack ('cannot reshape array of size 0')."""
    movie, masks = large_neurons
    with pytest.raises(_TrainingStarted):
        train([(movie, masks, "0:64,:")], None, init_model="default", simulated=0, scale_to_model=True, **ONE_EPOCH)


def test_scale_to_model_filters_each_dataset_for_its_own_neurons(large_neurons):
    """The soma-filtered image of a dataset trained at the model's scale is computed for its own neurons' diameter,
    as initialize(movie, neuron_diameter=d) computes it."""
    import sys

    import cellfie_caiman.training.datasets  # noqa: F401

    movie, masks = large_neurons
    channels = load_model("default").config.channels
    module = sys.modules["cellfie_caiman.training.datasets"]
    named, _, _, zoom = module._annotated_datasets([(movie, masks)], channels, 11.8, 250, False, own_filter=True)
    assert zoom == [True]
    expected = summary_images(movie, batch_frames=250, filter_diameter=mask_diameter(masks)).pnr_filtered
    np.testing.assert_array_equal(named[0][1].pnr_filtered, expected)
    named, _, _, zoom = module._annotated_datasets([(movie, masks)], channels, 11.8, 250, False, own_filter=False)
    assert zoom == [False]
    np.testing.assert_array_equal(named[0][1].pnr_filtered,
                                  summary_images(movie, batch_frames=250, filter_diameter=11.8).pnr_filtered)


def test_the_soma_filter_recorded_with_the_images_follows_them_when_training_cuts_and_zooms_them(movie_files):
    """Training zooms an annotated field to the model's neuron size (``scale_to_model``), its ``pnr_filtered``
    computed for the field's own neurons: the diameter recorded with the images is zoomed with them (the filter now
    fits the model's size), and cutting the field to its annotated region keeps it."""
    from cellfie_caiman.training.datasets import _annotated_scale
    from cellfie_caiman.training.fields import crop_region

    _, _, sim = movie_files  # somata of ~8 px
    summary = summary_images(sim.movie, batch_frames=250, filter_diameter=8.0)
    cut, _ = crop_region(summary, sim.masks, (0, 40, 0, 64))
    assert cut.filter_diameter == 8.0 and cut.pnr_filtered.shape == (40, 64)
    [(_, zoomed, masks)] = _annotated_scale([("dataset0", summary, sim.masks)], 1, [8.0], 12.0, [True])
    assert zoomed.pnr_filtered.shape == masks.shape[1:] == (96, 96)
    assert zoomed.filter_diameter == pytest.approx(12.0)


def test_the_check_reads_a_soma_filter_for_the_shipped_models_diameter_whatever_the_caller_says(square_fields,
                                                                                                 caplog):
    """Summary images record the diameter their pnr_filtered was computed for: training at each dataset's own
    scale (scale_to_model) passed None for it, and the check ran the shipped networks on images filtered for the
    dataset's neurons (20 px here) instead of the 11.8 px they read. The recorded diameter decides: the images are
    computed for the check from the movie, or, given as summary images, used with a logged warning."""
    from cellfie_caiman.initialize import model_summary
    from cellfie_caiman.models import model_config
    from cellfie_caiman.training.annotation_check import detection_summary

    movie, _ = square_fields[0]
    config = model_config("default")
    own = summary_images(movie, batch_frames=250, filter_diameter=20.0)
    expected = model_summary(movie)
    assert expected.filter_diameter == pytest.approx(config.train_diameter)
    for said in (None, config.train_diameter):  # unknown, or the training's diameter, which these images are not for
        got = detection_summary(own, movie, None, config, 250, said)
        assert got.filter_diameter == pytest.approx(config.train_diameter)
        np.testing.assert_allclose(got.pnr_filtered, expected.pnr_filtered, rtol=1e-5, atol=1e-6)
    with caplog.at_level(logging.WARNING, logger="cellfie_caiman.training.annotation_check"):
        assert detection_summary(own, own, None, config, 250, config.train_diameter) is own  # cannot be recomputed
    assert "pnr_filtered was computed for somata of 20 px" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cellfie_caiman.training.annotation_check"):
        assert detection_summary(expected, movie, None, config, 250, 20.0) is expected  # already right: kept
    assert not caplog.text


def test_summary_images_filtered_for_another_soma_size_are_warned_about_when_trained_on():
    """A dataset given as summary images whose pnr_filtered was computed for 5 px, trained where the filter is for
    11.78 px: the fields would teach the networks an image they never see at detection, so it is said."""
    from cellfie_caiman.training.fields import annotated_images

    sim = simulate(60, (48, 48), 4, seed=3, fs=15.0)
    wrong = summary_images(sim.movie, batch_frames=250, filter_diameter=5.0)
    with pytest.warns(RuntimeWarning, match=r"computed for somata of 5 px.*11\.78 px"):
        annotated_images(wrong, sim.masks, None, 11.78, 250, False)
    right = summary_images(sim.movie, batch_frames=250, filter_diameter=11.0)  # within 10 %: quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        summary, _ = annotated_images(right, sim.masks, None, 11.78, 250, False)
    assert summary is right


# ---- few annotated neurons: the epoch kept would be chosen on a handful of them ----

def _split_counts(masks: np.ndarray, val_fraction: float) -> tuple[int, int]:
    """Neurons (mask centroids) above the validation strip (the bottom ``val_fraction`` of the rows) and in it."""
    from scipy import ndimage

    rows = int(round(masks.shape[1] * (1 - val_fraction)))
    below = sum(ndimage.center_of_mass(m)[0] >= rows for m in masks)
    return len(masks) - below, below


def _thin(caught) -> list[str]:
    return [str(w.message) for w in caught if "few annotated neurons" in str(w.message)]


@pytest.mark.parametrize("val_fraction", [0.2, 0.5])
def test_few_annotated_neurons_are_warned_about_with_their_counts_before_training(data, stop_at_first_batch,
                                                                                 val_fraction):
    summary, masks = data  # 12 neurons
    n_train, n_val = _split_counts(masks, val_fraction)
    with pytest.warns(UserWarning, match=rf"few annotated neurons: {n_train} in the training rows and {n_val} in the "
                      rf"validation strips \(the bottom {val_fraction:.0%} of each field's rows\)") as record:
        with pytest.raises(_TrainingStarted):
            train([(summary, masks)], None, simulated=0, config=TINY, check_annotations=False,
                  val_fraction=val_fraction, **ONE_EPOCH)
    (message,) = _thin(record)
    assert "may not generalise" in message and "Annotate more neurons" in message and "val_fraction" in message


def test_the_few_neurons_warning_is_recorded_with_the_weights(data):
    summary, masks = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train([(summary, masks)], None, simulated=0, config=TINY, check_annotations=False,
                    **{**ONE_EPOCH, "steps_per_epoch": 1})
    (message,) = _thin(caught)
    assert res.model.config.training["thin_annotations"] == message


def test_enough_annotated_neurons_over_all_datasets_give_no_few_neurons_warning(stop_at_first_batch):
    """Two fields, each too thin alone, together above both thresholds: the neurons of all datasets count."""
    from cellfie_caiman.train import THIN_TRAINING_NEURONS, THIN_VALIDATION_NEURONS

    sims = [simulate(120, (128, 128), 60, seed=seed, fs=15.0, diameter=8.0) for seed in (5, 6)]
    counts = np.array([_split_counts(s.masks, 0.2) for s in sims])
    assert (counts[:, 1] < THIN_VALIDATION_NEURONS).all()
    assert counts.sum(0)[0] >= THIN_TRAINING_NEURONS and counts.sum(0)[1] >= THIN_VALIDATION_NEURONS, counts
    datasets = [(summary_images(s.movie, batch_frames=250), s.masks) for s in sims]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_TrainingStarted):
            train(datasets, None, simulated=0, config=TINY, check_annotations=False, **ONE_EPOCH)
    assert _thin(caught) == []
    with pytest.warns(UserWarning, match=rf"few annotated neurons: {counts[0, 0]} in the training rows and "
                      rf"{counts[0, 1]} in the validation strips"), pytest.raises(_TrainingStarted):
        train(datasets[:1], None, simulated=0, config=TINY, check_annotations=False, **ONE_EPOCH)


def test_simulated_fields_alone_give_no_few_neurons_warning(data, stop_at_first_batch):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_TrainingStarted):
            train([], None, simulated=[data], config=TINY, **ONE_EPOCH)
    assert _thin(caught) == []
