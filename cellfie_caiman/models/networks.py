"""Keras network definitions, written with layers common to Keras 2 (TF 2.15) and Keras 3.

Every layer has an explicit, stable name: weights are stored and restored by layer name.
"""
from __future__ import annotations

import numpy as np

from .config import ModelConfig


def _keras():
    from .._quiet_tf import import_keras  # Keras 2.15 (TF 2.15) and Keras 3 both import this way

    return import_keras()


def _conv_block(x, filters: int, name: str, n: int = 2, folded: bool = False, first: int = 0):
    """``n`` times: 3x3 convolution, batch normalisation, ReLU (layers numbered from ``first``).

    ``folded``: the inference form, a 3x3 convolution with bias in place of convolution and batch normalisation
    (see :func:`fold_batchnorm`).
    """
    L = _keras().layers
    for i in range(first, first + n):
        x = L.Conv2D(filters, 3, padding="same", use_bias=folded, name=f"{name}_conv{i}")(x)
        if not folded:
            x = L.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = L.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _up_block(x, skip, filters: int, name: str, n: int, folded: bool, up_name: str, cat_name: str,
              interpolation: str = "nearest"):
    """Upsample ``x`` 2x (layer ``up_name``), concatenate ``skip`` (``cat_name``), then :func:`_conv_block` ``name``.

    The inference form (``folded``) of a nearest-neighbour block computes the same in fewer operations: a 3x3
    convolution of the upsampled ``x`` is a transposed convolution of ``x`` itself (4x4 kernel, stride 2: each output
    pixel reads 2x2 pixels of ``x`` instead of 3x3 upsampled ones, and the upsampled map is never made), and a
    convolution of a concatenation is the sum of one convolution per part. Its weights: :func:`fold_batchnorm`.
    """
    L = _keras().layers
    if not folded or interpolation != "nearest":
        x = L.UpSampling2D(2, interpolation=interpolation, name=up_name)(x)
        x = L.Concatenate(name=cat_name)([x, skip])
        return _conv_block(x, filters, name, n=n, folded=folded)
    up = L.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name=f"{name}_upconv")(x)
    x = L.Conv2D(filters, 3, padding="same", use_bias=True, name=f"{name}_conv0")(skip)
    x = L.Add(name=f"{name}_add")([up, x])
    x = L.Activation("relu", name=f"{name}_relu0")(x)
    return _conv_block(x, filters, name, n=n - 1, folded=True, first=1)


def build_unet(config: ModelConfig, folded: bool = False):
    """Region-proposal U-Net.

    Input (batch, rows, cols, channels) with rows and cols multiples of ``2**depth``; output (batch, rows, cols, 2):
    channel 0 is the probability that a pixel belongs to a neuron, channel 1 a heat map of neuron centres.
    ``folded`` builds the inference form: no batch normalisation layers, and nearest-neighbour decoders as
    transposed convolutions (see :func:`fold_batchnorm`).
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
        x = _up_block(x, skips[level], config.base_filters * 2**level, f"unet_dec{level}", 2, folded,
                      f"unet_up{level}", f"unet_cat{level}")
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
    there. ``folded`` builds the inference form: no batch normalisation layers, and nearest-neighbour decoders as
    transposed convolutions (see :func:`fold_batchnorm`).
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
    x = _up_block(b, e1, 2 * f, "inst_dec1", 1, folded, "inst_up1", "inst_cat1")
    x = _up_block(x, e0, f, "inst_dec0", 1, folded, "inst_up0", "inst_cat0")
    x = _up_block(x, inp, max(4, f // 2), "inst_full", 1, folded, "inst_upfull", "inst_catfull", "bilinear")
    mask = L.Conv2D(1, 1, activation="sigmoid", name="inst_mask")(x)
    return keras.Model(inp, [mask, score], name="instance")


def fold_batchnorm(net, config: ModelConfig):
    """A copy of ``net`` for inference: batch normalisation folded in, nearest-neighbour decoders without upsampling.

    In inference mode a batch normalisation is an affine map per channel, ``gamma * (y - mean) / sqrt(var + eps) +
    beta``, so the convolution before it (no bias) followed by it is one convolution with kernel ``k * s`` and bias
    ``beta - mean * s``, ``s = gamma / sqrt(var + eps)``. The first convolution after each nearest-neighbour
    upsampling and concatenation becomes a transposed convolution of the coarse map plus a convolution of the skip
    (:func:`_up_block`, :func:`_transposed_kernel`): 4 instead of 9 multiply-adds per output pixel and input
    channel of the coarse part. The copy computes the same outputs up to float32 rounding (probabilities within
    ~1e-6 for the shipped weights) with less arithmetic and one pass less over every feature map.

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
        head, _, index = layer.name.rpartition("_conv")
        if layer.name.endswith("_upconv"):  # the upsampled part of a nearest-neighbour decoder's first convolution
            head = layer.name[:-len("_upconv")]
            kernel, _ = _folded_conv(source, head, "0")
            up_channels = kernel.shape[2] - _in_channels(twin.get_layer(f"{head}_conv0"))
            layer.set_weights([_transposed_kernel(kernel[:, :, :up_channels])])
        elif head and index.isdigit():
            kernel, bias = _folded_conv(source, head, index)
            kernel = kernel[:, :, kernel.shape[2] - _in_channels(layer):]  # the skip's part when split (above)
            layer.set_weights([w.astype(np.float32) for w in ([kernel, bias] if layer.use_bias else [kernel])])
        elif layer.name in source and (weights := source[layer.name].get_weights()):
            layer.set_weights(weights)
    return twin


def _in_channels(conv) -> int:
    return int(conv.kernel.shape[2])


def _folded_conv(source: dict, head: str, index: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Kernel and bias of convolution ``{head}_conv{index}`` of the trained network with the batch normalisation
    after it folded in (float64); bias None where it has neither."""
    weights = source[f"{head}_conv{index}"].get_weights()
    kernel = np.asarray(weights[0], np.float64)
    bn = source.get(f"{head}_bn{index}")
    if bn is None:
        return kernel, (np.asarray(weights[1], np.float64) if len(weights) > 1 else None)
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(var + bn.epsilon)
    return kernel * scale, beta - mean * scale


def _transposed_kernel(kernel: np.ndarray) -> np.ndarray:
    """The (4, 4, out, in) kernel of a stride-2 transposed convolution ('same') equal to the 3x3 convolution
    ``kernel`` (3, 3, in, out) of the nearest-neighbour 2x upsampling of its input, float32.

    Along each axis, output pixel ``2m`` of that convolution reads upsampled pixels ``2m - 1, 2m, 2m + 1`` with its
    taps 0, 1, 2, i.e. input pixels ``m - 1`` (tap 0) and ``m`` (taps 1 and 2); output ``2m + 1`` reads input pixels
    ``m`` (taps 0 and 1) and ``m + 1`` (tap 2). A 'same' transposed convolution of size 4 and stride 2 adds input
    pixel ``i`` times its tap ``k`` to output ``2i + k - 1``: its taps 3 and 1 reach even outputs from inputs ``m - 1``
    and ``m``, its taps 2 and 0 odd outputs from ``m`` and ``m + 1``. Zero padding matches too: the upsampled map's
    zero border is the input's.
    """
    taps = {0: (2,), 1: (1, 2), 2: (0, 1), 3: (0,)}  # transposed tap -> the 3x3 taps it sums, along each axis
    out = np.zeros((4, 4) + kernel.shape[2:], np.float64)
    for i, rows in taps.items():
        for j, cols in taps.items():
            out[i, j] = sum(kernel[r, c] for r in rows for c in cols)
    return out.transpose(0, 1, 3, 2).astype(np.float32)
