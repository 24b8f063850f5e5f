"""Keras network definitions, written with layers common to Keras 2 (TF 2.15) and Keras 3.

Every layer has an explicit, stable name: weights are stored and restored by layer name.
"""
from __future__ import annotations

import numpy as np

from .config import ModelConfig


def _keras():
    import keras  # Keras 2.15 (TF 2.15) and Keras 3 both import this way

    return keras


def _conv_block(x, filters: int, name: str, n: int = 2, folded: bool = False):
    """``n`` times: 3x3 convolution, batch normalisation, ReLU.

    ``folded``: the inference form, a 3x3 convolution with bias in place of convolution and batch normalisation
    (see :func:`fold_batchnorm`).
    """
    L = _keras().layers
    for i in range(n):
        x = L.Conv2D(filters, 3, padding="same", use_bias=folded, name=f"{name}_conv{i}")(x)
        if not folded:
            x = L.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = L.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(config: ModelConfig, folded: bool = False):
    """Region-proposal U-Net.

    Input (batch, rows, cols, channels) with rows and cols multiples of ``2**depth``; output (batch, rows, cols, 2):
    channel 0 is the probability that a pixel belongs to a neuron, channel 1 a heat map of neuron centres.
    ``folded`` builds the inference form without batch normalisation layers (see :func:`fold_batchnorm`).
    """
    keras = _keras()
    L = keras.layers
    inp = L.Input(shape=(None, None, len(config.channels)), name="unet_input")
    x = inp
    skips = []
    for level in range(config.depth):
        x = _conv_block(x, config.base_filters * 2**level, f"unet_enc{level}", folded=folded)
        skips.append(x)
        x = L.MaxPooling2D(2, name=f"unet_pool{level}")(x)
    x = _conv_block(x, config.base_filters * 2**config.depth, "unet_bottom", folded=folded)
    for level in reversed(range(config.depth)):
        x = L.UpSampling2D(2, name=f"unet_up{level}")(x)
        x = L.Concatenate(name=f"unet_cat{level}")([x, skips[level]])
        x = _conv_block(x, config.base_filters * 2**level, f"unet_dec{level}", folded=folded)
    out = L.Conv2D(2, 1, activation="sigmoid", name="unet_out")(x)
    return keras.Model(inp, out, name="unet")


def unet_reach(config: ModelConfig) -> int:
    """How far (pixels, a multiple of ``2**depth``) the U-Net's output at a pixel can depend on its input.

    A bound from :func:`build_unet`'s layers: at level ``l`` (scale ``s = 2**l``) the two 3x3 convolutions of the
    encoder and of the decoder reach ``2 s`` each, the pooling and the nearest-neighbour upsampling ``s`` each; the
    bottom block ``2 * 2**depth``. So ``6 (2**depth - 1) + 2**(depth + 1)`` (58 px at depth 3), rounded up to a
    multiple of ``2**depth`` so that tiles cut with this much context keep the pooling grid of the whole field.
    Tiles of a field with this context on every side give the whole field's output (``predict_maps_batch``).
    """
    m = 2**config.depth
    reach = 6 * (m - 1) + 2 * m
    return -(-reach // m) * m


def build_instance(config: ModelConfig, folded: bool = False):
    """Instance network on ``window x window`` subframes centred on candidate neuron centres.

    Works at half resolution internally (cheap enough to run on every candidate), with a full-resolution last
    layer for sharp edges. Outputs ``[mask, score]``: mask (batch, window, window, 1), the probability that each
    pixel belongs to the neuron centred in the window; score (batch, 1), the probability that a neuron is centred
    there. ``folded`` builds the inference form without batch normalisation layers (see :func:`fold_batchnorm`).
    """
    keras = _keras()
    L = keras.layers
    f = config.instance_filters
    inp = L.Input(shape=(config.window, config.window, len(config.channels)), name="inst_input")
    x = L.AveragePooling2D(2, name="inst_half")(inp)
    e0 = _conv_block(x, f, "inst_enc0", folded=folded)
    x = L.MaxPooling2D(2, name="inst_pool0")(e0)
    e1 = _conv_block(x, 2 * f, "inst_enc1", folded=folded)
    x = L.MaxPooling2D(2, name="inst_pool1")(e1)
    b = _conv_block(x, 4 * f, "inst_bottom", n=1, folded=folded)
    score = L.GlobalAveragePooling2D(name="inst_gap")(b)
    score = L.Dense(1, activation="sigmoid", name="inst_score")(score)
    x = L.UpSampling2D(2, name="inst_up1")(b)
    x = L.Concatenate(name="inst_cat1")([x, e1])
    x = _conv_block(x, 2 * f, "inst_dec1", n=1, folded=folded)
    x = L.UpSampling2D(2, name="inst_up0")(x)
    x = L.Concatenate(name="inst_cat0")([x, e0])
    x = _conv_block(x, f, "inst_dec0", n=1, folded=folded)
    x = L.UpSampling2D(2, interpolation="bilinear", name="inst_upfull")(x)
    x = L.Concatenate(name="inst_catfull")([x, inp])
    x = _conv_block(x, max(4, f // 2), "inst_full", n=1, folded=folded)
    mask = L.Conv2D(1, 1, activation="sigmoid", name="inst_mask")(x)
    return keras.Model(inp, [mask, score], name="instance")


def fold_batchnorm(net, config: ModelConfig):
    """A copy of ``net`` for inference, each batch normalisation folded into the convolution before it.

    In inference mode a batch normalisation is an affine map per channel, ``gamma * (y - mean) / sqrt(var + eps) +
    beta``, so the convolution before it (no bias) followed by it is one convolution with kernel ``k * s`` and bias
    ``beta - mean * s``, ``s = gamma / sqrt(var + eps)``. The copy computes the same outputs up to float32
    rounding (probabilities within ~1e-5) with one pass less over every feature map.

    Parameters
    ----------
    net : keras.Model
        A network built by :func:`build_unet` or :func:`build_instance` for ``config``.
    config : ModelConfig

    Returns
    -------
    keras.Model
        The folded copy (:func:`build_unet` / :func:`build_instance` with ``folded=True``); it holds the weights
        ``net`` had when this was called, and does not follow later changes to them.
    """
    twin = (build_unet if net.name == "unet" else build_instance)(config, folded=True)
    source = {layer.name: layer for layer in net.layers}
    for layer in twin.layers:
        weights = source[layer.name].get_weights()
        head, _, index = layer.name.rpartition("_conv")
        bn = source.get(f"{head}_bn{index}") if head and index.isdigit() else None
        if bn is not None:
            gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            weights = [(weights[0] * scale).astype(np.float32), (beta - mean * scale).astype(np.float32)]
        if weights:
            layer.set_weights(weights)
    return twin
