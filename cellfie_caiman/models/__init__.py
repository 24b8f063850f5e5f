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

import collections
import dataclasses
import functools
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ._store import assign_weights, read_config, save_weights
from .config import DEFAULT_CHANNELS, ModelConfig
from .preprocess import normalize_image, stack_inputs

__all__ = ["DetectionModel", "ModelConfig", "DEFAULT_CHANNELS", "list_models", "load_model", "model_config",
           "model_file", "new_model", "stack_inputs", "normalize_image", "WEIGHTS_DIR"]

#: Fields of more pixels than this go through the U-Net in overlapping tiles (see DetectionModel.predict_maps_batch).
TILE_ABOVE = 2**20
#: Output side (pixels) of those tiles; each also reads networks.unet_reach (64 px at depth 3) around it. Of sides
#: 256-1024, 384 and 512 were the fastest on a 2048 x 2048 field on 2 CPU cores (4.5-4.7 s per orientation; 256:
#: 6.1 s, 768: 5.8 s, 1024: 9.0 s).
TILE = 512
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
        into the convolution before it and the decoders' upsampling folded into transposed convolutions
        (:func:`networks.fold_batchnorm`; the same outputs within float32 rounding, ~25 % faster on 2 CPU cores),
        made at the first prediction: changing a frozen model's weights afterwards does not change
        its predictions. To fine-tune, pass it to :func:`cellfie_caiman.train` as ``init_model`` (which copies it).
    """

    config: ModelConfig
    unet: Any
    instance: Any
    source: str = ""
    frozen: bool = False
    _graphs: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def networks(self) -> dict[str, Any]:
        """``{'unet': self.unet, 'instance': self.instance}``."""
        return {"unet": self.unet, "instance": self.instance}

    def _compiled(self, name: str):
        """The network ``name`` ('unet' or 'instance') in inference mode, as a function of a float32 batch.

        Under TensorFlow (Keras 2 or Keras 3's TensorFlow backend) a graph function, traced once per model (~0.3-0.5
        s for the U-Net, ~0.2 s for the instance network, any batch and field size), then ~25 % faster than eager
        calls; under Keras 3's other backends (PyTorch, JAX) the network's ``predict_on_batch`` (with PyTorch in
        IEEE float32: on a GPU its convolutions default to TF32, ~1e-3 off, see ``_precision.py``). It reads the
        networks' current weights, or for a frozen model those of its folded copy; outputs convert to NumPy arrays
        with ``np.asarray``.
        """
        if name not in self._graphs:
            from .._quiet_tf import import_keras

            keras = import_keras()

            net = self.networks[name]
            if self.frozen:
                from .networks import fold_batchnorm

                net = fold_batchnorm(net, self.config)
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                _warn_if_onednn_missed(tf)
                channels = len(self.config.channels)
                w = self.config.window if name == "instance" else None
                spec = tf.TensorSpec([None, w, w, channels], tf.float32)
                self._graphs[name] = tf.function(lambda x: net(x, training=False), input_signature=[spec])
            elif keras.backend.backend() == "torch":  # full float32 on a GPU too, not TF32 (see _precision.py)
                from ._precision import in_ieee_float32

                self._graphs[name] = in_ieee_float32(net.predict_on_batch)
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

    def predict_maps_batch(self, batch: np.ndarray, *, tile_above: int = TILE_ABOVE, tile: int = TILE,
                           max_batch_pixels: int = 2**21) -> tuple[np.ndarray, np.ndarray]:
        """Run the U-Net on a batch of normalised fields of the same size.

        Fields of up to ``tile_above`` pixels go through in one call. Larger ones are cut into tiles of ``tile`` x
        ``tile`` output pixels, each with :func:`networks.unet_reach` pixels of the field around it as context, run
        in batches of at most ``max_batch_pixels`` pixels and put back together: the same maps as in one piece
        (within float32 rounding), in bounded memory. On 2 CPU cores with oneDNN, one U-Net call on a 1520 x 1520
        field did not finish in 80 s (1536 x 1536: not in 5 minutes), while 1488 x 1488 took 3.6 s.

        Parameters
        ----------
        batch : ndarray (n, rows, cols, channels) float32
        tile_above : int
            Fields with more pixels than this are tiled.
        tile : int
            Output side of a tile (rounded down to a multiple of ``2**depth``).
        max_batch_pixels : int
            Most input pixels per call when tiling.

        Returns
        -------
        prob, centers : ndarray (n, rows, cols) float32
        """
        _, rows, cols, _ = batch.shape
        if rows * cols > tile_above:
            return self._predict_maps_tiled(batch, tile, max_batch_pixels)
        return self._predict_maps_whole(batch)

    def _predict_maps_tiled(self, batch: np.ndarray, tile: int, max_batch_pixels: int):
        """The U-Net on overlapping windows of one shape, each trusted ``unet_reach`` pixels away from its inner edges.

        The field is first padded to the pooling multiple as one call would pad it; windows of ``tile + 2 reach``
        pixels start at multiples of that multiple, the last one at the far edge, so all have the same shape and
        run in full batches.
        """
        from .networks import unet_reach

        n, rows, cols, _ = batch.shape
        m = 2**self.config.depth
        tile = max(m, tile // m * m)
        margin = unet_reach(self.config)
        pr, pc = (-rows) % m, (-cols) % m
        x = np.pad(batch, ((0, 0), (0, pr), (0, pc), (0, 0)), mode="constant") if (pr or pc) else batch
        spans_r = _window_spans(rows + pr, tile + 2 * margin, margin)
        spans_c = _window_spans(cols + pc, tile + 2 * margin, margin)
        windows = [(i, r, c) for i in range(n) for r in spans_r for c in spans_c]
        h, w = spans_r[0][1] - spans_r[0][0], spans_c[0][1] - spans_c[0][0]
        out = np.empty((n, rows + pr, cols + pc, 2), np.float32)
        per_call = max(1, max_batch_pixels // (h * w))
        for start in range(0, len(windows), per_call):
            part = windows[start:start + per_call]
            y = np.asarray(self._compiled("unet")(np.ascontiguousarray(
                np.stack([x[i, r[0]:r[1], c[0]:c[1]] for i, r, c in part]), dtype=np.float32)))
            for k, (i, (r0, _, a, b), (c0, _, d, e)) in enumerate(part):
                out[i, a:b, d:e] = y[k, a - r0:b - r0, d - c0:e - c0]
        return out[:, :rows, :cols, 0].copy(), out[:, :rows, :cols, 1].copy()

    def _predict_maps_whole(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One U-Net call on ``batch`` (n, rows, cols, channels), padded to the pooling multiple and cropped back."""
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
        """Write the weights and config to ``path`` (.npz), atomically.

        Parameters
        ----------
        path : str or path
            Output weight file; :func:`load_model` reads it.

        Returns
        -------
        Path
            ``path``.
        """
        return save_weights(path, self.config, self.networks)


@functools.lru_cache(maxsize=1)
def _warn_if_onednn_missed(tf) -> bool:
    """Warn once per process (returns whether it did) when TensorFlow runs without its oneDNN kernels on the CPU
    though ``TF_ENABLE_ONEDNN_OPTS`` was not set to 0: TensorFlow was then imported (and configured) before
    ``cellfie_caiman``, which asks for oneDNN at import (see the package docstring), and the networks run about 1.7
    times slower on CPUs without AVX-512 VNNI (``benchmarks/onednn.py``). Nothing is said on a GPU or where
    TensorFlow cannot tell."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false", "off"):
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port

        if _pywrap_util_port.IsMklEnabled() or tf.config.list_physical_devices("GPU"):
            return False
    except (ImportError, AttributeError):  # a TensorFlow that does not say
        return False
    import warnings

    warnings.warn("TensorFlow runs without its oneDNN kernels: it was imported before cellfie_caiman, which turns "
                  "them on when it is imported first; the networks run about 1.7 times slower on this CPU. Import "
                  "cellfie_caiman before TensorFlow (and before packages that import it), or set "
                  "TF_ENABLE_ONEDNN_OPTS=1 in the environment (0 turns this message off)", RuntimeWarning,
                  stacklevel=4)
    return True


def _window_spans(size: int, window: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Windows of ``min(window, size)`` along an axis of ``size`` pixels, and the part of each to keep.

    Returns ``(start, stop, keep_start, keep_stop)`` per window: consecutive windows overlap by ``2 * margin``; each
    keeps what lies ``margin`` inside its edges, or up to the axis' ends for the first and last. ``size``,
    ``window`` and ``margin`` are multiples of the pooling size, so every window starts on the pooling grid.
    """
    if window >= size:
        return [(0, size, 0, size)]
    starts = list(range(0, size - window, window - 2 * margin)) + [size - window]
    return [(s, s + window, 0 if s == 0 else s + margin, size if s + window == size else s + window - margin)
            for s in starts]


def new_model(config: ModelConfig | None = None) -> DetectionModel:
    """Freshly initialised (untrained) networks for ``config`` (default architecture if None).

    Parameters
    ----------
    config : ModelConfig, optional

    Returns
    -------
    DetectionModel
        Not frozen, ``source`` ''.
    """
    from .networks import build_instance, build_unet

    config = config or ModelConfig()
    return DetectionModel(config, build_unet(config), build_instance(config))


def list_models() -> list[str]:
    """Names of the shipped models (files ``<name>.npz`` in :data:`WEIGHTS_DIR`), sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.npz"))


def model_file(name_or_path: str | os.PathLike) -> Path:
    """The weight file of a shipped model's name (see :func:`list_models`) or of a path, resolved.

    Parameters
    ----------
    name_or_path : str or path
        A name from :func:`list_models`, or a path (``~`` expanded) to a ``.npz`` file.

    Returns
    -------
    Path
        Absolute path of the weight file.

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    ValueError
        An unknown name, or a folder.
    TypeError
        ``name_or_path`` of another type.

    Examples
    --------
    >>> model_file("default").name
    'default.npz'
    """
    return _resolve(name_or_path)


def _resolve(name_or_path: str | os.PathLike) -> Path:
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model must be the name of a shipped model ({', '.join(list_models())}), a path to a .npz "
                        f"weight file or a DetectionModel, got {type(name_or_path).__name__} {name_or_path!r}")
    text = os.fspath(name_or_path)
    if text in list_models():
        return WEIGHTS_DIR / f"{text}.npz"
    path = Path(text).expanduser()
    if path.suffix == ".npz" or os.sep in text or path.exists():
        if path.is_dir():
            raise ValueError(f"model {text!r} is a folder: give the .npz weight file in it")
        if not path.is_file():
            raise FileNotFoundError(f"model file {text!r} does not exist")
        return path.resolve()
    raise ValueError(f"unknown model {text!r}: give a path to a .npz weight file or one of {list_models()}")


#: Frozen models loaded from files, keyed on (path, SHA-256 of the file's bytes), the most recently used last.
_MODEL_CACHE: collections.OrderedDict[tuple[str, str], DetectionModel] = collections.OrderedDict()
_MODEL_CACHE_SIZE = 4
_MODEL_CACHE_LOCK = threading.Lock()


def _load_cached(path: Path) -> DetectionModel:
    """The frozen model of weight file ``path``, from the cache while the file's content is unchanged.

    The key is the SHA-256 of the file's bytes (a few milliseconds for a weight file of a few MB), not its
    modification time: a file rewritten within the file system's timestamp resolution (2 s on FAT/exFAT, 1 s on
    some network file systems), or given back its old time, is never served stale. The model is built from the
    very bytes hashed.

    Parameters
    ----------
    path : Path
        An existing ``.npz`` weight file (resolved by :func:`_resolve`).

    Returns
    -------
    DetectionModel
        Frozen, shared by every caller that loads the same content from the same path.
    """
    content = path.read_bytes()
    key = (str(path), hashlib.sha256(content).hexdigest())
    with _MODEL_CACHE_LOCK:
        if key in _MODEL_CACHE:
            _MODEL_CACHE.move_to_end(key)
            return _MODEL_CACHE[key]
    config, arrays = read_config(path, content)
    model = new_model(config)
    assign_weights(str(path), model.networks, arrays)
    model.source = str(path)
    model.frozen = True
    with _MODEL_CACHE_LOCK:
        model = _MODEL_CACHE.setdefault(key, model)  # another thread may have loaded it meanwhile
        _MODEL_CACHE.move_to_end(key)
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    return model


def model_config(name_or_path: str | os.PathLike | DetectionModel = "default") -> ModelConfig:
    """The configuration of a model (name or path as for :func:`load_model`) without building its networks.

    Cheap: reads the file with NumPy, imports no TensorFlow. Same errors as :func:`load_model` for missing or
    foreign files.

    Parameters
    ----------
    name_or_path : str, path or DetectionModel
        A DetectionModel gives its own ``config``.

    Returns
    -------
    ModelConfig
    """
    if isinstance(name_or_path, DetectionModel):
        return name_or_path.config
    return read_config(_resolve(name_or_path))[0]


def load_model(name_or_path: str | os.PathLike | DetectionModel = "default") -> DetectionModel:
    """Load a shipped model by name (see :func:`list_models`) or a weight file by path.

    A model loaded from a file is frozen (see :class:`DetectionModel`): for inference, cached and shared between
    callers.

    Parameters
    ----------
    name_or_path : str, path or DetectionModel
        A name from :func:`list_models` or a ``.npz`` weight file; a DetectionModel is returned as it is (frozen or
        not).

    Returns
    -------
    DetectionModel

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    TypeError
        ``name_or_path`` of another type.
    ValueError
        Unknown name, unreadable file, or weights that do not fit the architecture (the message names the file
        and the layer).
    """
    if isinstance(name_or_path, DetectionModel):
        return name_or_path
    path = _resolve(name_or_path)
    return _load_cached(path)
