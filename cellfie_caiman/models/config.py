"""Configuration of a detection model: everything needed to rebuild its networks and preprocess its inputs."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

#: Summary images the shipped models read, in channel order (fields of ``cellfie_caiman.summary.SummaryImages``).
DEFAULT_CHANNELS = ("corr", "pnr", "std", "mean", "median", "max")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture, input normalisation and training scale of a detection model.

    Parameters
    ----------
    channels : tuple of str
        Summary images stacked as input channels, in order.
    depth : int
        Number of 2x2 poolings of the region-proposal U-Net (fields are padded to a multiple of ``2**depth``).
    base_filters : int
        Filters of the U-Net's first level (doubled at each level).
    instance_filters : int
        Filters of the instance network's first level.
    window : int
        Side of the square subframe (pixels, at the model's scale) seen by the instance network; even.
    train_diameter : float
        Typical neuron diameter (pixels) of the training data after rescaling. ``initialize(neuron_diameter=d)``
        zooms the input by ``train_diameter / d``.
    highpass_sigma : float
        Width (pixels) of the Gaussian whose blur is subtracted from every input image, and over which the local
        contrast used for normalisation is measured.
    clip : float
        Normalised inputs are clipped to ``[-clip, clip]``.
    center_sigma : float
        Width (pixels) of the Gaussian blobs of the centre heat map the U-Net learns to output.
    center_threshold : float
        Minimum centre heat-map value of a candidate centre.
    training : dict
        Free-form record of how the weights were made (command, data, figures).
    """

    channels: tuple = DEFAULT_CHANNELS
    depth: int = 3
    base_filters: int = 16
    instance_filters: int = 16
    window: int = 48
    train_diameter: float = 12.0
    highpass_sigma: float = 18.0
    clip: float = 8.0
    center_sigma: float = 2.0
    center_threshold: float = 0.1
    training: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.window % 4 or self.window < 16:
            raise ValueError(f"ModelConfig.window must be a multiple of 4 and >= 16, got {self.window}")
        if self.depth < 1 or self.base_filters < 1 or self.instance_filters < 1:
            raise ValueError("ModelConfig depth, base_filters and instance_filters must be positive")
        if self.train_diameter <= 0 or self.highpass_sigma <= 0:
            raise ValueError("ModelConfig train_diameter and highpass_sigma must be positive")

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """Rebuild from :meth:`to_json` output; unknown keys raise ``ValueError`` naming them."""
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model configuration keys {unknown} (written by a newer version?)")
        return cls(**data)
