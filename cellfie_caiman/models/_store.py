"""Weight files: one ``.npz`` of arrays keyed ``<network>/<layer>/<index>`` plus the config as JSON."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from .._files import atomic_path
from .config import ModelConfig

_CONFIG_KEY = "__config__"
_FORMAT_KEY = "__format__"
_FORMAT = "cellfie_caiman-model-1"


def save_weights(path: str | os.PathLike, config: ModelConfig, networks: dict) -> Path:
    """Write ``networks`` ({'unet': model, 'instance': model}) and ``config`` to ``path`` (.npz), atomically."""
    arrays = {_CONFIG_KEY: np.array(config.to_json()), _FORMAT_KEY: np.array(_FORMAT)}
    for net_name, model in networks.items():
        for layer in model.layers:
            for i, w in enumerate(layer.get_weights()):
                arrays[f"{net_name}/{layer.name}/{i}"] = np.asarray(w)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


def read_config(path: str | os.PathLike, content: bytes | None = None) -> tuple[ModelConfig, dict]:
    """Read the config and the weight arrays of a model file; clear errors for missing or foreign files.

    Parameters
    ----------
    path : str or path
        The ``.npz`` weight file (named in the error messages).
    content : bytes, optional
        The file's bytes, already read (the model cache reads them once to hash them): parsed instead of reading
        ``path`` again, so the weights returned are those of the bytes hashed.

    Returns
    -------
    config : ModelConfig
    arrays : dict of str to numpy.ndarray
        The weight arrays keyed ``<network>/<layer>/<index>``.
    """
    path = Path(path)
    if content is None and not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    source = path if content is None else io.BytesIO(content)
    if not zipfile.is_zipfile(source):  # np.load would read it as a pickle, and its error talks of allow_pickle
        raise ValueError(f"model file {str(path)!r} is not a .npz weight file (not a zip archive): give a file "
                         "written by cellfie_caiman.train or DetectionModel.save")
    try:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        with np.load(source, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip/npz errors come in many types
        raise ValueError(f"model file {str(path)!r} is not a readable .npz weight file: {exc}") from exc
    if _CONFIG_KEY not in arrays or str(arrays.get(_FORMAT_KEY, "")) != _FORMAT:
        raise ValueError(f"model file {str(path)!r} is not a cellfie_caiman model (no {_FORMAT} config)")
    try:
        config = ModelConfig.from_json(str(arrays.pop(_CONFIG_KEY)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model file {str(path)!r} has an invalid configuration: {exc}") from exc
    arrays.pop(_FORMAT_KEY)
    return config, arrays


def assign_weights(path, networks: dict, arrays: dict) -> None:
    """Set every layer's weights from ``arrays``; ValueError naming the file and layer on any mismatch."""
    used = set()
    for net_name, model in networks.items():
        for layer in model.layers:
            current = layer.get_weights()
            if not current:
                continue
            new = []
            for i, w in enumerate(current):
                key = f"{net_name}/{layer.name}/{i}"
                if key not in arrays:
                    raise ValueError(f"model file {str(path)!r} has no weights for layer {net_name}/{layer.name} "
                                     "(file from another architecture?)")
                if arrays[key].shape != w.shape:
                    raise ValueError(f"model file {str(path)!r}: layer {net_name}/{layer.name} weight {i} has shape "
                                     f"{arrays[key].shape}, the architecture expects {w.shape}")
                new.append(arrays[key])
                used.add(key)
            layer.set_weights(new)
    extra = sorted(set(arrays) - used)
    if extra:
        raise ValueError(f"model file {str(path)!r} has weights for layers this architecture lacks, e.g. {extra[0]} "
                         "(file from another architecture?)")
