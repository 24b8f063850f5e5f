"""cellfie_caiman: find neurons in two-photon movies with fully convolutional networks and seed CaImAn's CNMF.

The public API is imported lazily so that ``import cellfie_caiman`` stays fast (TensorFlow is only loaded when a
network is used).
"""
from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_API = {
    "load_movie": "io",
    "save_memmap": "io",
    "load_memmap": "io",
    "summary_images": "summary",
    "simulate": "simulate",
    "simulate_blobs": "simulate_blobs",
    "read_rois": "rois",
    "write_rois": "rois",
    "match_rois": "evaluate",
    "pool_matches": "evaluate",
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


class _Package(types.ModuleType):
    """The package module. Four API functions share their module's name (``initialize``, ``simulate``,
    ``simulate_blobs``, ``train``); importing such a module (from anywhere) makes Python bind it on the package,
    which would hide the function: ``cellfie_caiman.simulate(...)`` would work once and then find the module. The
    function is bound instead (the module stays reachable as ``sys.modules['cellfie_caiman.simulate']``)."""

    def __setattr__(self, name: str, value) -> None:
        if _API.get(name) == name and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
