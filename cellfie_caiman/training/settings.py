"""The settings of :func:`cellfie_caiman.train.train` checked before any data is read: the weights file's path, the
ranges of its numbers, and the summary images the model reads (``channels``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._checks import number
from ..models import ModelConfig
from .validation import check_selection


def check_weights_path(path: str | os.PathLike) -> Path:
    """``path`` as a weights file that can be written (a ``.npz`` name in an existing, writable folder); checked
    before training, so that an unwritable path does not lose a run."""
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        raise ValueError(f"{path}: the weights file must end in .npz")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give the weights file's name")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{path}: {folder} is not a folder; create it first")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{path}: cannot write into {folder}")
    return path


def _channels(channels, start, config, missed_signal) -> tuple[str, ...]:
    """The summary images the model reads: ``channels``, else those of the weights fine-tuned (``start``) or of
    ``config``; each must be a :class:`SummaryImages` field."""
    from ..summary import SummaryImages

    if channels is None:
        channels = start.config.channels if start is not None else (config or ModelConfig()).channels
    channels = tuple(channels)
    unknown = [c for c in channels if c not in SummaryImages._fields]
    if unknown or not channels or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct summary image names {SummaryImages._fields}, got "
                         f"{list(channels)}")
    if missed_signal is not None and "pnr_filtered" not in channels:
        raise ValueError("missed_signal reads the pnr_filtered image, which is not among the channels "
                         f"{list(channels)}")
    return channels


def _check_settings(*, epochs, steps_per_epoch, patience, val_fraction, zooms, unet_batch, unet_crop, instance_batch,
                    learning_rate, annotated_fraction, max_minutes, batch_frames, simulated_rates, selection,
                    missed_crops, missed_signal, depth: int) -> None:
    """:func:`train`'s settings, each a ``ValueError`` naming it when out of range, before any data is prepared (the
    simulated fields' fractions are checked by :func:`simulated_datasets`, which alone reads them)."""
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("patience", patience),
                        ("unet_batch", unet_batch), ("instance_batch", instance_batch)):
        number(value, name, low=1, integer=True)
    number(val_fraction, "val_fraction", low=0, high=1, low_open=True, high_open=True)
    if isinstance(zooms, (str, bytes)) or not np.iterable(zooms) or len(zooms) == 0:
        raise ValueError(f"zooms must be a non-empty sequence of scale factors, got {zooms!r}")
    for z in zooms:
        number(z, "each of zooms", low=0, low_open=True)
    if not any(z == 1.0 for z in zooms):
        raise ValueError(f"zooms must include 1.0: validation and the hard examples use the unzoomed fields, got "
                         f"{list(zooms)}")
    m = 2**depth
    number(unet_crop, "unet_crop", low=m, integer=True)
    if unet_crop % m:
        raise ValueError(f"unet_crop must be a multiple of {m} (the U-Net pools {depth} times), got {unet_crop}")
    number(learning_rate, "learning_rate", low=0, low_open=True, optional=True)
    number(annotated_fraction, "annotated_fraction", low=0, high=1, optional=True)
    number(max_minutes, "max_minutes", low=0, low_open=True, optional=True)
    number(batch_frames, "batch_frames", low=2, integer=True, optional=True)
    number(missed_crops, "missed_crops", low=0, high=1)
    number(missed_signal, "missed_signal", optional=True)
    if len(simulated_rates) != 2:
        raise ValueError(f"simulated_rates must be (low, high) in Hz, got {simulated_rates!r}")
    low = number(simulated_rates[0], "simulated_rates[0] (Hz)", low=0, low_open=True)
    number(simulated_rates[1], "simulated_rates[1] (Hz)", low=low)
    check_selection(selection)
