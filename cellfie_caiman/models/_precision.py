"""Full float32 precision for the networks under Keras 3's PyTorch backend on a GPU.

PyTorch lets cuDNN compute float32 convolutions in TF32 (a 10-bit mantissa) by default on NVIDIA GPUs since
Ampere. The networks' probability maps then differ from the CPU's by up to ~1e-3 (measured on an H200, session 15),
enough to move a mask's edge or a score across its threshold. Inference runs inside :func:`ieee_float32`, so the
same weights give the same masks on every device, within float32 rounding.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator


def _precision_settings() -> list[tuple[object, str, object]]:
    """(object, attribute, value for IEEE float32) of PyTorch's convolution and matrix-product precision flags."""
    import torch

    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # PyTorch >= 2.9; the allow_tf32 flags are deprecated
        return [(conv, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Within the block, PyTorch computes float32 convolutions and matrix products in IEEE float32 (no TF32).

    The flags are global to the process: the previous settings come back when the block ends, also on an error.
    Without PyTorch installed this does nothing.

    Examples
    --------
    >>> with ieee_float32():
    ...     pass
    """
    try:
        settings = _precision_settings()
    except ImportError:
        yield
        return
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in settings]
    try:
        for obj, attr, value in settings:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)


def in_ieee_float32(fn: Callable) -> Callable:
    """``fn`` run inside :func:`ieee_float32` at each call."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with ieee_float32():
            return fn(*args, **kwargs)
    return run
