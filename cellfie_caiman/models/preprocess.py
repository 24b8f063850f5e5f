"""Input preprocessing shared by training and inference: stack summary images, high-pass, normalise."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from .config import ModelConfig


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflecting edges (truncated at 3 sigma for speed)."""
    return ndimage.gaussian_filter(image, sigma, mode="reflect", truncate=3.0)


def normalize_image(image: np.ndarray, sigma: float, clip: float) -> np.ndarray:
    """High-pass one image and divide by its local contrast.

    ``(x - G*x) / max(sqrt(G*(x - G*x)**2), floor)`` with ``G`` a Gaussian of width ``sigma`` and ``floor`` half
    the median local contrast: removes slow background and vignetting, and makes the result independent of gain and
    offset. NaN/inf become the image median. A constant
    image gives zeros.

    Parameters
    ----------
    image : ndarray (rows, cols)
    sigma : float
        Gaussian width in pixels.
    clip : float
        Output clipped to ``[-clip, clip]``.

    Returns
    -------
    ndarray (rows, cols) float32
    """
    x = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.all():
        fill = np.median(x[finite]) if finite.any() else 0.0
        x = np.where(finite, x, fill)
    high = x - _blur(x, sigma)
    local_var = _blur(high * high, sigma)
    local_std = np.sqrt(local_var)
    if local_std.max() <= 1e-9 * (np.abs(x).max() + 1e-30) or local_std.max() < 1e-12:
        return np.zeros(x.shape, np.float32)
    # the floor stops dim, featureless regions (e.g. a dark band at the field's edge) from being blown up to noise
    floor = 0.5 * np.median(local_std) + 1e-12
    out = high / np.maximum(local_std, floor)
    return np.clip(out, -clip, clip).astype(np.float32)


#: The images every SummaryImages holds (``pnr_filtered`` is optional).
SUMMARY_FIELDS = ("corr", "pnr", "std", "mean", "median", "max")


def is_summary(obj) -> bool:
    """Whether ``obj`` is a set of summary images (a SummaryImages or alike) rather than a movie."""
    return all(hasattr(obj, f) for f in SUMMARY_FIELDS)


def check_images(summary, channels, advice: str) -> None:
    """Raise ``ValueError`` (ending with ``advice``) if ``summary`` (SummaryImages or mapping) lacks (absent or
    None) any of the images named in ``channels``."""
    get = summary.get if isinstance(summary, dict) else lambda k: getattr(summary, k, None)
    missing = [name for name in channels if get(name) is None]
    if missing:
        raise ValueError(f"the model reads the summary images {list(channels)}, but {missing} are missing: {advice}")


def stack_inputs(summary, config: ModelConfig) -> np.ndarray:
    """Normalised network input from summary images.

    Parameters
    ----------
    summary : SummaryImages or mapping
        Needs the fields named in ``config.channels``, each (rows, cols).
    config : ModelConfig

    Returns
    -------
    ndarray (rows, cols, channels) float32
    """
    get = summary.get if isinstance(summary, dict) else lambda k: getattr(summary, k)

    def one(name):
        return normalize_image(get(name), config.highpass_sigma, config.clip)

    # SciPy's filters release the GIL: one thread per core halves this step (the same numbers as a plain loop)
    with ThreadPoolExecutor(max(1, min(len(config.channels), os.cpu_count() or 1))) as pool:
        images = list(pool.map(one, config.channels))
    return np.stack(images, axis=-1)
