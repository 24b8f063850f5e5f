"""One optimisation step of each network under TensorFlow or PyTorch, deterministic seeding (undone afterwards),
network copies."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import logging
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..models import DetectionModel, new_model

logger = logging.getLogger(__name__)

_EPS = 1e-6


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seed NumPy, Python and the Keras backend and ask the backend for deterministic kernels, for the ``with``
    block only.

    Inside the block the same seed gives the same weights: ``keras.utils.set_random_seed(seed)`` (Python's
    ``random``, NumPy's global random state, TensorFlow's global seed whenever TensorFlow is installed, PyTorch's
    under the PyTorch backend, Keras' own global seed) and TensorFlow's op determinism (or PyTorch's deterministic
    algorithms, warning only: some CUDA kernels have no deterministic version). When the block ends, normally or
    by an exception (``KeyboardInterrupt`` too), every one of these is put back as it was: the caller's random
    sequences go on where they were, and later TensorFlow work is not slowed down or refused by op determinism
    (e.g. ``tf.nn.fractional_max_pool`` without a seed) unless it was on before.

    Raises
    ------
    RuntimeError
        Keras runs on another backend than TensorFlow or PyTorch (nothing is changed then).
    """
    from .._quiet_tf import import_keras

    keras = import_keras()
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch"):
        raise RuntimeError(f"training runs on Keras' TensorFlow or PyTorch backend, not {backend!r} "
                           "(set KERAS_BACKEND=tensorflow or torch before importing keras)")
    restorers = _global_state(backend)
    try:
        keras.utils.set_random_seed(seed)
        _deterministic_kernels(backend)
        yield
    finally:
        _restore(restorers)


def _restore(restorers: list[Callable[[], None]]) -> None:
    """Call each of ``restorers``, last first; one that fails is logged and the others still run (an error here
    must not hide the one that ended training)."""
    for restore in reversed(restorers):
        try:
            restore()
        except Exception as error:  # pragma: no cover - a library changed its private state
            logger.warning("could not put back global state changed for training: %r", error)


def _deterministic_kernels(backend: str) -> None:
    """Ask the Keras backend (``'tensorflow'`` or ``'torch'``) for deterministic kernels."""
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


def _global_state(backend: str) -> list[Callable[[], None]]:
    """Functions that each put back one piece of the global state :func:`_deterministic` changes, as it is now."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    restorers = [lambda: random.setstate(python_state), lambda: np.random.set_state(numpy_state)]
    restorers += _keras_seed_state()
    if backend == "tensorflow" or importlib.util.find_spec("tensorflow") is not None:
        restorers += _tensorflow_state()  # Keras 3 seeds TensorFlow whenever it is installed
    if backend == "torch":
        restorers += _torch_state()
    return restorers


def _keras_seed_state() -> list[Callable[[], None]]:
    """Put back Keras' own global seed: Keras 3's global seed and ``SeedGenerator``, or Keras 2's seed generator
    (private attributes: when a Keras version lacks them, nothing is restored and a debug message says so)."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:
        pass
    else:
        saved = {name: global_state.get_global_attribute(name) for name in (GLOBAL_RANDOM_SEED,
                                                                            GLOBAL_SEED_GENERATOR)}

        def restore_keras3() -> None:
            for name, value in saved.items():
                global_state.set_global_attribute(name, value)

        return [restore_keras3]
    try:  # Keras 2 (TensorFlow <= 2.15)
        from keras.src import backend as keras_backend

        local = keras_backend._SEED_GENERATOR
    except (ImportError, AttributeError):
        logger.debug("Keras' global seed generator not found: it is left as training set it")
        return []
    missing = object()
    generator = getattr(local, "generator", missing)

    def restore() -> None:
        if generator is missing:
            local.__dict__.pop("generator", None)
        else:
            local.generator = generator

    return [restore]


def _tensorflow_state() -> list[Callable[[], None]]:
    """Put back TensorFlow's op determinism and its global (eager) seed with the sequence of operation seeds it
    draws. TensorFlow (2.15 and 2.21 checked) has no public way to read either: the private
    ``is_op_determinism_enabled`` / ``disable_op_determinism`` and the eager context's seed are used, and where they
    are missing a warning says what stays changed."""
    import tensorflow as tf

    restorers = []
    try:
        from tensorflow.python.framework import config as tf_config

        if not tf_config.is_op_determinism_enabled():  # on before (or TF_DETERMINISTIC_OPS set): stays on
            restorers.append(tf_config.disable_op_determinism)
    except (ImportError, AttributeError):  # pragma: no cover - TensorFlow without these private functions
        logger.warning("cannot read TensorFlow's op determinism: it stays enabled after training")
    try:
        from tensorflow.python.eager import context

        seed, rng = context.global_seed(), copy.deepcopy(getattr(context.context(), "_rng", None))
    except (ImportError, AttributeError):  # pragma: no cover
        logger.warning("cannot read TensorFlow's global seed: it stays set to the training seed")
        return restorers

    def restore_seed() -> None:
        tf.random.set_seed(seed)  # also clears the kernels cached with the training seed
        context.context()._rng = rng  # the operation seeds go on where they were

    return [*restorers, restore_seed]


def _torch_state() -> list[Callable[[], None]]:
    """Put back PyTorch's deterministic-algorithms setting and its CPU random state (and the CUDA ones, when CUDA
    was in use before training)."""
    import torch

    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    def restore() -> None:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)

    return [restore]


def _train_steps(unet, inst, opt_u, opt_i):
    """One update of each network on a NumPy batch, for the running Keras backend; each returns the loss.

    U-Net loss: mean BCE of the pixel probability + 5 x mean BCE of the centre heat map. Instance loss: mean BCE of
    the score + the mask's BCE (each window's mean over its pixels) summed over the windows centred on a neuron
    (``wm`` = 1) and divided by their number + 1.
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
