"""cellfie_caiman: find neurons in two-photon movies with fully convolutional networks and seed CaImAn's CNMF.

The public API is imported lazily so that ``import cellfie_caiman`` stays fast (TensorFlow is only loaded when a
network is used).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_movie": "io",
    "save_memmap": "io",
    "load_memmap": "io",
    "summary_images": "summary",
    "simulate": "simulate",
    "read_rois": "rois",
    "write_rois": "rois",
    "match_rois": "evaluate",
    "initialize": "initialize",
    "train": "train",
    "refine": "cnmf",
    "seeded_cnmf": "cnmf",
    "load_estimates": "cnmf",
    "Params": "params",
    "run": "pipeline",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        module = importlib.import_module(f".{_API[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'cellfie_caiman' has no attribute {name!r}")


def __dir__():
    return __all__
