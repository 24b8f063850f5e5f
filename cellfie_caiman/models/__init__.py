"""Detection networks: architectures, shipped weights and a small registry.

>>> from cellfie_caiman.models import list_models, load_model
>>> 'default' in list_models()
True

A model is a region-proposal U-Net (per-pixel neuron probability and a neuron-centre heat map, from normalised
summary images) plus an instance network (mask and score of the neuron centred in a subframe). Weights are
``.npz`` files of arrays keyed by layer name, with the :class:`ModelConfig` stored as JSON inside, so the same
file loads under Keras 2 (TF 2.15, CaImAn's environment) and Keras 3. See ``MODEL_CARD.md`` for the shipped model.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._store import assign_weights, read_config, save_weights
from .config import DEFAULT_CHANNELS, ModelConfig
from .preprocess import normalize_image, stack_inputs

__all__ = ["DetectionModel", "ModelConfig", "DEFAULT_CHANNELS", "list_models", "load_model", "model_config",
           "new_model", "stack_inputs", "normalize_image", "WEIGHTS_DIR"]

#: Folder of the shipped weight files; a file ``<name>.npz`` here is the model called ``name``.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclasses.dataclass
class DetectionModel:
    """A configured pair of networks.

    Attributes
    ----------
    config : ModelConfig
    unet : keras.Model
        Region proposal; see :func:`networks.build_unet`.
    instance : keras.Model
        Per-candidate mask and score; see :func:`networks.build_instance`.
    source : str
        File the weights came from ('' for a new model).
    frozen : bool
        True for the models :func:`load_model` returns: for inference only, and shared between its callers (it
        caches them). Their predictions run through copies of the networks with each batch normalisation folded
        into the convolution before it (:func:`networks.fold_batchnorm`; the same outputs within float32 rounding,
        ~10-20 % faster), made at the first prediction: changing a frozen model's weights afterwards does not change
        its predictions. To fine-tune, pass it to :func:`cellfie_caiman.train` as ``init_model`` (which copies it).
    """

    config: ModelConfig
    unet: Any
    instance: Any
    source: str = ""
    frozen: bool = False
    _graphs: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def networks(self) -> dict:
        return {"unet": self.unet, "instance": self.instance}

    def _compiled(self, name: str):
        """The network ``name`` ('unet' or 'instance') in inference mode, as a function of a float32 batch.

        Under TensorFlow (Keras 2 or Keras 3's TensorFlow backend) a graph function, traced once per model (~0.3-0.5
        s for the U-Net, ~0.2 s for the instance network, any batch and field size), then ~25 % faster than eager
        calls; under Keras 3's other backends (PyTorch, JAX) the network's ``predict_on_batch``. It reads the
        networks' current weights, or for a frozen model those of its folded copy; outputs convert to NumPy arrays
        with ``np.asarray``.
        """
        if name not in self._graphs:
            import keras

            net = self.networks[name]
            if self.frozen:
                from .networks import fold_batchnorm

                net = fold_batchnorm(net, self.config)
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                channels = len(self.config.channels)
                w = self.config.window if name == "instance" else None
                spec = tf.TensorSpec([None, w, w, channels], tf.float32)
                self._graphs[name] = tf.function(lambda x: net(x, training=False), input_signature=[spec])
            else:
                self._graphs[name] = net.predict_on_batch
        return self._graphs[name]

    def predict_maps(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the U-Net on one normalised field of any size.

        Parameters
        ----------
        inputs : ndarray (rows, cols, channels) float32
            Output of :func:`stack_inputs`.

        Returns
        -------
        prob, centers : ndarray (rows, cols) float32
            Probability of belonging to a neuron, and neuron-centre heat map.
        """
        prob, heat = self.predict_maps_batch(inputs[None])
        return prob[0], heat[0]

    def predict_maps_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the U-Net on a batch of normalised fields of the same size in one call.

        Parameters
        ----------
        batch : ndarray (n, rows, cols, channels) float32

        Returns
        -------
        prob, centers : ndarray (n, rows, cols) float32
        """
        _, rows, cols, _ = batch.shape
        m = 2**self.config.depth
        pr, pc = (-rows) % m, (-cols) % m
        x = np.pad(batch, ((0, 0), (0, pr), (0, pc), (0, 0)), mode="constant") if (pr or pc) else batch
        out = np.asarray(self._compiled("unet")(np.ascontiguousarray(x, dtype=np.float32)))[:, :rows, :cols]
        return out[..., 0].astype(np.float32), out[..., 1].astype(np.float32)

    def predict_instances(self, patches: np.ndarray, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Run the instance network on subframes.

        Parameters
        ----------
        patches : ndarray (n, window, window, channels) float32
        batch_size : int
            Windows per call (bounded memory; on 2 CPU cores 128 was within 7 % of the fastest of 64-512).

        Returns
        -------
        masks : ndarray (n, window, window) float32
            Per-pixel probability of belonging to the neuron centred in the subframe.
        scores : ndarray (n,) float32
            Probability that a neuron is centred in the subframe.
        """
        w = self.config.window
        if len(patches) == 0:
            return np.zeros((0, w, w), np.float32), np.zeros(0, np.float32)
        masks, scores = [], []
        for start in range(0, len(patches), batch_size):
            m, s = self._compiled("instance")(np.ascontiguousarray(patches[start:start + batch_size], np.float32))
            masks.append(np.asarray(m)[..., 0])
            scores.append(np.asarray(s)[:, 0])
        return np.concatenate(masks).astype(np.float32), np.concatenate(scores).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights and config to ``path`` (.npz), atomically."""
        return save_weights(path, self.config, self.networks)


def new_model(config: ModelConfig | None = None) -> DetectionModel:
    """Freshly initialised (untrained) networks for ``config`` (default architecture if None)."""
    from .networks import build_instance, build_unet

    config = config or ModelConfig()
    return DetectionModel(config, build_unet(config), build_instance(config))


def list_models() -> list[str]:
    """Names of the shipped models (files ``<name>.npz`` in :data:`WEIGHTS_DIR`), sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.npz"))


def _resolve(name_or_path: str | os.PathLike) -> Path:
    text = os.fspath(name_or_path)
    if text in list_models():
        return WEIGHTS_DIR / f"{text}.npz"
    path = Path(text).expanduser()
    if path.suffix == ".npz" or os.sep in text or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"model file {text!r} does not exist")
        return path.resolve()
    raise ValueError(f"unknown model {text!r}: give a path to a .npz weight file or one of {list_models()}")


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> DetectionModel:
    config, arrays = read_config(path)
    model = new_model(config)
    assign_weights(path, model.networks, arrays)
    model.source = path
    model.frozen = True
    return model


def model_config(name_or_path: str | os.PathLike | DetectionModel = "default") -> ModelConfig:
    """The configuration of a model (name or path as for :func:`load_model`) without building its networks.

    Cheap: reads the file with NumPy, imports no TensorFlow. Same errors as :func:`load_model` for missing or
    foreign files.
    """
    if isinstance(name_or_path, DetectionModel):
        return name_or_path.config
    return read_config(_resolve(name_or_path))[0]


def load_model(name_or_path: str | os.PathLike | DetectionModel = "default") -> DetectionModel:
    """Load a shipped model by name (see :func:`list_models`) or a weight file by path.

    The model is frozen (see :class:`DetectionModel`): for inference, cached and shared between callers.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown name, unreadable file, or weights that do not fit the architecture (the message names the file
        and the layer).
    """
    if isinstance(name_or_path, DetectionModel):
        return name_or_path
    path = _resolve(name_or_path)
    return _load_cached(str(path), path.stat().st_mtime)
