"""cellfie_caiman: find neurons in two-photon movies with fully convolutional networks and seed CaImAn's CNMF.

The public API is imported lazily so that ``import cellfie_caiman`` stays fast (TensorFlow is only loaded when a
network is used).

Importing the package sets ``TF_ENABLE_ONEDNN_OPTS=1`` unless that variable is already set: TensorFlow turns on its
oneDNN kernels by default only on CPUs with AVX-512 VNNI or AMX, and on the others (AMD EPYC and Ryzen, Intel
without AVX-512) runs convolutions with kernels built for AVX without FMA. On a 2-core AMD EPYC the networks ran
about 1.7 times as fast with oneDNN (detection) and 1.5-1.7 times (training updates), with the same masks
(``benchmarks/onednn.py``). TensorFlow 2.21 reads the variable when it is imported (2.15 when it first runs), so
this works when ``cellfie_caiman`` is imported first, and applies to all TensorFlow work in the process; when
TensorFlow was set up before and runs without oneDNN, a RuntimeWarning says so when the networks first run. An
explicit setting is kept: ``TF_ENABLE_ONEDNN_OPTS=0`` before the import turns oneDNN off.
"""
from __future__ import annotations

import importlib
import os
import sys
import types

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
