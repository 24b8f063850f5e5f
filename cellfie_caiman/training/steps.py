"""One optimisation step of each network under TensorFlow or PyTorch, deterministic seeding, network copies."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from ..models import DetectionModel, new_model

logger = logging.getLogger(__name__)

_EPS = 1e-6


def _deterministic(seed: int) -> None:
    """Seed NumPy, Python and the Keras backend, and ask the backend for deterministic kernels."""
    from .._quiet_tf import import_keras

    keras = import_keras()

    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch"):
        raise RuntimeError(f"training runs on Keras' TensorFlow or PyTorch backend, not {backend!r} "
                           "(set KERAS_BACKEND=tensorflow or torch before importing keras)")
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        else:
            import torch

            # some CUDA kernels (upsampling's gradient) have no deterministic version: warn instead of failing
            torch.use_deterministic_algorithms(True, warn_only=True)
    except Exception:  # pragma: no cover - older TF or PyTorch
        logger.warning("deterministic kernels unavailable under %s; training is not bit-reproducible", backend)


def _train_steps(unet, inst, opt_u, opt_i):
    """One update of each network on a NumPy batch, for the running Keras backend; each returns the loss.

    U-Net loss: mean BCE of the pixel probability + 5 x mean BCE of the centre heat map. Instance loss: mean BCE of
    the score + BCE of the mask averaged over the windows centred on a neuron (``wm`` = 1), divided by their number
    + 1.
    """
    import keras

    if keras.backend.backend() == "torch":
        return _torch_steps(unet, inst, opt_u, opt_i)
    import tensorflow as tf

    def bce(y, p):
        p = tf.clip_by_value(p, _EPS, 1 - _EPS)
        return -(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))

    @tf.function
    def unet_graph(x, yp, yh):
        with tf.GradientTape() as tape:
            out = unet(x, training=True)
            loss = tf.reduce_mean(bce(yp, out[..., 0])) + 5.0 * tf.reduce_mean(bce(yh, out[..., 1]))
        grads = tape.gradient(loss, unet.trainable_variables)
        opt_u.apply_gradients(zip(grads, unet.trainable_variables, strict=False))
        return loss

    @tf.function
    def inst_graph(x, ym, ys, wm):
        with tf.GradientTape() as tape:
            m, s = inst(x, training=True)
            lm = tf.reduce_mean(bce(ym, m[..., 0]), axis=[1, 2])
            loss = tf.reduce_mean(bce(ys, s)) + tf.reduce_sum(lm * wm) / (tf.reduce_sum(wm) + 1.0)
        grads = tape.gradient(loss, inst.trainable_variables)
        opt_i.apply_gradients(zip(grads, inst.trainable_variables, strict=False))
        return loss

    def unet_step(*arrays):
        return float(unet_graph(*map(tf.constant, arrays)))

    def inst_step(*arrays):
        return float(inst_graph(*map(tf.constant, arrays)))

    return unet_step, inst_step


def _torch_steps(unet, inst, opt_u, opt_i):
    """:func:`_train_steps` under Keras 3's PyTorch backend (on the GPU when PyTorch sees one)."""
    import torch
    from keras import ops

    def bce(y, p):
        p = ops.clip(p, _EPS, 1 - _EPS)
        return -(y * ops.log(p) + (1 - y) * ops.log(1 - p))

    def update(net, opt, loss):
        net.zero_grad()
        loss.backward()
        variables = net.trainable_weights
        with torch.no_grad():
            opt.apply([v.value.grad for v in variables], variables)
        return float(loss.detach())

    def unet_step(x, yp, yh):
        x, yp, yh = map(ops.convert_to_tensor, (x, yp, yh))
        out = unet(x, training=True)
        return update(unet, opt_u, ops.mean(bce(yp, out[..., 0])) + 5.0 * ops.mean(bce(yh, out[..., 1])))

    def inst_step(x, ym, ys, wm):
        x, ym, ys, wm = map(ops.convert_to_tensor, (x, ym, ys, wm))
        m, s = inst(x, training=True)
        lm = ops.mean(bce(ym, m[..., 0]), axis=(1, 2))
        return update(inst, opt_i, ops.mean(bce(ys, s)) + ops.sum(lm * wm) / (ops.sum(wm) + 1.0))

    return unet_step, inst_step


def _input_layers(model: DetectionModel) -> set[tuple[str, str]]:
    """``(network, layer)`` names of the layers whose weights read the input images: those whose weights change
    shape when the model reads one more image (found on a copy built that way, whatever the channels' order)."""
    wider = new_model(dataclasses.replace(model.config, channels=(*model.config.channels, "max")))
    out = set()
    for name, net in wider.networks.items():
        source = {layer.name: layer for layer in model.networks[name].layers}
        for layer in net.layers:
            ours = source[layer.name].get_weights()
            if ours and any(a.shape != b.shape for a, b in zip(ours, layer.get_weights(), strict=True)):
                out.add((name, layer.name))
    return out


def _clone(model: DetectionModel, channels: Sequence[str] | None = None):
    """Fresh copies of a model's networks, optionally reading other input channels.

    With ``channels``, the weights that read the input images are remapped by channel name: a channel the model
    already read keeps its weights, a new one starts at zero (so the copy computes exactly what the model did
    until training teaches it to use the new images).
    """
    old = tuple(model.config.channels)
    new = tuple(channels) if channels is not None else old
    fresh = new_model(dataclasses.replace(model.config, channels=new))
    reads_images = _input_layers(model) if new != old else set()
    for name, net in fresh.networks.items():
        source = {layer.name: layer for layer in model.networks[name].layers}
        for layer in net.layers:
            src = source[layer.name].get_weights()
            if not src:
                continue
            if (name, layer.name) not in reads_images:
                layer.set_weights(src)
                continue
            # a kernel (kh, kw, offset + channels, filters) that reads the input images (after `offset` features)
            kernel = np.zeros_like(layer.get_weights()[0])
            offset = src[0].shape[2] - len(old)
            kernel[:, :, :offset] = src[0][:, :, :offset]
            for j, c in enumerate(new):
                if c in old:
                    kernel[:, :, offset + j] = src[0][:, :, offset + old.index(c)]
            layer.set_weights([kernel, *src[1:]])
    return fresh.unet, fresh.instance
