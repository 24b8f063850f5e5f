"""Detection model registry, weight files, architecture and input normalisation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cellfie_caiman.models import (
    DetectionModel,
    ModelConfig,
    list_models,
    load_model,
    new_model,
    normalize_image,
    stack_inputs,
)
from cellfie_caiman.models._precision import ieee_float32

SMALL = ModelConfig(depth=2, base_filters=4, instance_filters=4, window=16)


@pytest.fixture(scope="module")
def small_model() -> DetectionModel:
    model = new_model(SMALL)
    # give BatchNormalization non-trivial statistics so a lost weight would change predictions
    rng = np.random.default_rng(0)
    for net in model.networks.values():
        net.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in net.get_weights()])
    return model


def test_shipped_default_model_is_listed_and_loads():
    assert "default" in list_models()
    model = load_model("default")
    assert isinstance(model.config, ModelConfig)
    assert model.config.training.get("command"), "the shipped model must record the command that trained it"


def test_weights_round_trip_gives_identical_weights_and_predictions(small_model, tmp_path):
    path = small_model.save(tmp_path / "m.npz")
    loaded = load_model(path)
    assert loaded.config == small_model.config
    for name, net in small_model.networks.items():
        for a, b in zip(net.get_weights(), loaded.networks[name].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    # the loaded model predicts through its folded copies; a live model on the same networks does not
    live = DetectionModel(loaded.config, loaded.unet, loaded.instance)
    assert loaded.frozen and not live.frozen and not small_model.frozen
    x = np.random.default_rng(1).normal(size=(40, 24, len(SMALL.channels))).astype(np.float32)
    for a, b in zip(small_model.predict_maps(x), live.predict_maps(x), strict=True):
        np.testing.assert_array_equal(a, b)
    w = np.random.default_rng(2).normal(size=(5, 16, 16, len(SMALL.channels))).astype(np.float32)
    for a, b in zip(small_model.predict_instances(w), live.predict_instances(w), strict=True):
        np.testing.assert_array_equal(a, b)


def _naive_conv_bn_relu(x, kernel, gamma, beta, mean, var, eps):
    """3x3 'same' convolution (no bias), batch normalisation in inference mode and ReLU, in float64 loops."""
    rows, cols, _ = x.shape
    padded = np.pad(x.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    y = np.zeros((rows, cols, kernel.shape[3]))
    for dr in range(3):
        for dc in range(3):
            y += padded[dr:dr + rows, dc:dc + cols] @ kernel[dr, dc].astype(np.float64)
    y = (y - mean) / np.sqrt(var + eps) * gamma + beta
    return np.maximum(y, 0)


def test_folded_first_block_matches_naive_convolution_and_batchnorm(small_model):
    """The folded U-Net's first convolution equals convolution + batch normalisation + ReLU done by hand."""
    import keras

    from cellfie_caiman.models.networks import fold_batchnorm

    folded = fold_batchnorm(small_model.unet, SMALL)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = np.random.default_rng(3).normal(size=(1, 12, 10, len(SMALL.channels))).astype(np.float32)
    first = keras.Model(folded.input, folded.get_layer("unet_enc0_relu0").output)
    bn = small_model.unet.get_layer("unet_enc0_bn0")
    expected = _naive_conv_bn_relu(x[0], small_model.unet.get_layer("unet_enc0_conv0").get_weights()[0],
                                   *bn.get_weights(), bn.epsilon)
    with ieee_float32():  # PyTorch on a GPU would otherwise use TF32
        got = first.predict_on_batch(x)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("net, level", [("unet", "unet_dec0"), ("unet", "unet_dec1"), ("instance", "inst_dec0")])
def test_inference_decoder_step_matches_naive_upsampling_concatenation_and_convolution(small_model, net, level):
    """The inference form's first decoder convolution (a transposed convolution of the coarse map plus a convolution
    of the skip) equals nearest 2x upsampling, concatenation, convolution, batch normalisation and ReLU by hand."""
    import keras

    from cellfie_caiman.models.networks import fold_batchnorm

    trained = small_model.networks[net]
    folded = fold_batchnorm(trained, SMALL)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in trained.layers)
    assert isinstance(folded.get_layer(f"{level}_upconv"), keras.layers.Conv2DTranspose)
    shape = (1, 16, 20) if net == "unet" else (1, 16, 16)
    x = np.random.default_rng(6).normal(size=shape + (len(SMALL.channels),)).astype(np.float32)
    coarse_and_skip = keras.Model(trained.input, [trained.get_layer(level.replace("_dec", "_up")).input,
                                                  trained.get_layer(level.replace("_dec", "_cat")).input[1]])
    with ieee_float32():  # PyTorch on a GPU would otherwise use TF32
        coarse, skip = coarse_and_skip.predict_on_batch(x)
        got = keras.Model(folded.input, folded.get_layer(f"{level}_relu0").output).predict_on_batch(x)[0]
    up = coarse[0].repeat(2, axis=0).repeat(2, axis=1)
    assert up.shape[:2] == skip.shape[1:3]
    bn = trained.get_layer(f"{level}_bn0")
    expected = _naive_conv_bn_relu(np.concatenate([up, skip[0]], axis=-1),
                                   trained.get_layer(f"{level}_conv0").get_weights()[0], *bn.get_weights(), bn.epsilon)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_ieee_float32_turns_pytorch_tf32_off_in_the_block_and_restores_the_settings_after_an_error():
    """Inference under PyTorch runs in this block: no TF32 convolutions or matrix products on a GPU."""
    torch = pytest.importorskip("torch")
    new_api = hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision")

    def flags():
        if new_api:
            return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
        return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32

    before = flags()
    with pytest.raises(KeyError), ieee_float32():
        assert flags() == (("ieee", "ieee") if new_api else (False, False))
        raise KeyError
    assert flags() == before


def test_frozen_model_predicts_as_the_live_networks(small_model, tmp_path):
    """Folding changes float32 rounding only: probabilities, heat maps, masks and scores within 1e-5."""
    loaded = load_model(small_model.save(tmp_path / "f.npz"))
    x = np.random.default_rng(4).normal(size=(2, 40, 24, len(SMALL.channels))).astype(np.float32)
    for a, b in zip(small_model.predict_maps_batch(x), loaded.predict_maps_batch(x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    w = np.random.default_rng(5).normal(size=(7, 16, 16, len(SMALL.channels))).astype(np.float32)
    for a, b in zip(small_model.predict_instances(w), loaded.predict_instances(w), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_unet_accepts_any_field_size(small_model):
    x = np.zeros((37, 53, len(SMALL.channels)), np.float32)
    prob, heat = small_model.predict_maps(x)
    assert prob.shape == heat.shape == (37, 53)
    assert np.all((prob >= 0) & (prob <= 1))


@pytest.mark.parametrize("name", ["small", "default"])
def test_tiled_unet_gives_the_maps_of_the_whole_field(small_model, name):
    """Tiles with networks.unet_reach of context reproduce the one-call maps, at field edges that are not multiples
    of the pooling size too; tiles without the context would not."""
    from scipy import ndimage

    model = small_model if name == "small" else load_model("default")
    rng = np.random.default_rng(1)
    x = ndimage.gaussian_filter(rng.normal(size=(2, 203, 141, len(model.config.channels))), (0, 2, 2, 0))
    x = (3 * x).astype(np.float32)
    whole = model.predict_maps_batch(x)
    tiled = model.predict_maps_batch(x, tile_above=0, tile=48)
    np.testing.assert_allclose(tiled[0], whole[0], atol=1e-5)
    np.testing.assert_allclose(tiled[1], whole[1], atol=1e-5)
    alone, _ = model.predict_maps_batch(x[:, 48:96, 48:96])  # one inner tile without its context
    assert np.abs(alone - whole[0][:, 48:96, 48:96]).max() > 1e-3


def test_missing_model_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load_model(tmp_path / "nothere.npz")
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        load_model("no-such-model")


def test_weights_from_another_architecture_name_file_and_layer(small_model, tmp_path):
    path = small_model.save(tmp_path / "small.npz")
    data = dict(np.load(path))
    data["__config__"] = np.array(dataclasses.replace(SMALL, base_filters=8).to_json())
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, **data)
    with pytest.raises(ValueError, match=r"foreign\.npz.*layer unet/unet_enc0_conv0"):
        load_model(foreign)
    data["__config__"] = np.array(dataclasses.replace(SMALL, depth=3).to_json())
    deeper = tmp_path / "deeper.npz"
    np.savez(deeper, **data)
    with pytest.raises(ValueError, match=r"deeper\.npz.*layer"):
        load_model(deeper)


def test_not_a_model_file(tmp_path):
    junk = tmp_path / "junk.npz"
    np.savez(junk, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a cellfie_caiman model"):
        load_model(junk)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.npz' is not a .npz weight file") as err:
        load_model(text)
    assert "pickle" not in str(err.value)
    with pytest.raises(ValueError, match="is a folder"):
        load_model(tmp_path)
    for bad in (None, 3):
        with pytest.raises(TypeError, match="model must be the name of a shipped model.*default"):
            load_model(bad)


def test_config_json_round_trip_and_unknown_key():
    cfg = dataclasses.replace(SMALL, training={"command": "x"})
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown model configuration keys"):
        ModelConfig.from_json('{"depth": 2, "colour": 1}')
    with pytest.raises(ValueError, match="window"):
        ModelConfig(window=30)


def test_normalisation_removes_gain_offset_and_slow_background():
    rng = np.random.default_rng(3)
    img = rng.normal(size=(64, 80))
    ramp = np.linspace(0, 50, 80)[None, :] * np.ones((64, 1))
    a = normalize_image(img, 10.0, 8.0)
    b = normalize_image(3.0 * img + 100.0, 10.0, 8.0)
    np.testing.assert_allclose(a, b, atol=1e-4)
    c = normalize_image(img + ramp, 10.0, 8.0)  # a linear ramp is removed by subtracting a Gaussian blur
    assert np.corrcoef(a[10:-10, 10:-10].ravel(), c[10:-10, 10:-10].ravel())[0, 1] > 0.95
    assert np.all(normalize_image(np.full((20, 20), 7.0), 5.0, 8.0) == 0)
    nan = img.copy()
    nan[5, 5] = np.nan
    out = normalize_image(nan, 10.0, 8.0)
    assert np.isfinite(out).all() and np.abs(out).max() <= 8.0


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (40, 40), (54, 55), (109, 300), (256, 512)])
@pytest.mark.parametrize("sigma", [2.0, 18.0])
def test_blur_is_scipys_truncated_gaussian_with_reflecting_edges(shape, sigma):
    """The FFT blur against SciPy's direct filter, on fields smaller and larger than the kernel's reach
    (54 px at 18 px: the mirror image is repeated) and with a large offset (rounding relative to the range)."""
    from scipy import ndimage

    from cellfie_caiman.models.preprocess import _blur

    img = np.random.default_rng(sum(shape)).normal(size=shape) * 10.0 + 1e4
    ref = ndimage.gaussian_filter(img, sigma, mode="reflect", truncate=3.0)
    np.testing.assert_allclose(_blur(img, sigma), ref, rtol=0, atol=1e-11 * 1e4)


def test_stack_inputs_channel_order():
    rng = np.random.default_rng(4)
    images = {name: rng.normal(size=(30, 30)) for name in SMALL.channels}
    x = stack_inputs(images, SMALL)
    assert x.shape == (30, 30, len(SMALL.channels)) and x.dtype == np.float32
    for i, name in enumerate(SMALL.channels):
        np.testing.assert_array_equal(x[..., i], normalize_image(images[name], SMALL.highpass_sigma, SMALL.clip))


def test_model_config_reads_the_configuration_without_tensorflow(tmp_path):
    import subprocess
    import sys

    from cellfie_caiman.models import model_config

    assert model_config("default") == load_model("default").config
    code = ("import sys; from cellfie_caiman.models import model_config; c = model_config('default'); "
            "print(c.channels[-1], 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [load_model("default").config.channels[-1], "False"]
    with pytest.raises(FileNotFoundError):
        model_config(tmp_path / "missing.npz")


def _write_npz_in_place(path, arrays: dict) -> None:
    """Overwrite ``path`` in place (same inode), uncompressed: equal array shapes give an equal file size."""
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(0)
        np.savez(fh, **arrays)


def test_a_weight_file_overwritten_within_the_timestamp_resolution_is_not_served_stale(small_model, tmp_path):
    """FAT/exFAT keep 2 s timestamps: a file rewritten with the same size and modification time is reloaded."""
    import os

    from cellfie_caiman.models._store import read_config

    small_model.save(tmp_path / "src.npz")
    with np.load(tmp_path / "src.npz", allow_pickle=False) as data:
        arrays_a = {k: data[k] for k in data.files}
    arrays_b = {k: (v + np.asarray(0.5, v.dtype) if v.dtype.kind == "f" else v) for k, v in arrays_a.items()}
    path = tmp_path / "m.npz"
    _write_npz_in_place(path, arrays_a)
    stat_a = path.stat()
    model_a = load_model(path)
    _write_npz_in_place(path, arrays_b)
    os.utime(path, ns=(stat_a.st_atime_ns, stat_a.st_mtime_ns))
    stat_b = path.stat()
    assert (stat_b.st_size, stat_b.st_mtime_ns, stat_b.st_ino) == (stat_a.st_size, stat_a.st_mtime_ns, stat_a.st_ino)
    model_b = load_model(path)
    expected = read_config(path)[1]
    assert model_b is not model_a
    for name, net in model_b.networks.items():
        for layer in net.layers:
            for i, w in enumerate(layer.get_weights()):
                np.testing.assert_array_equal(w, expected[f"{name}/{layer.name}/{i}"])
    assert load_model(path) is model_b  # an unchanged file is still served from the cache
