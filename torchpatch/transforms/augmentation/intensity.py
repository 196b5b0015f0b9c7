"""Intensity transforms where TorchIO 1.x groups them (``tio.transforms.augmentation.intensity``).

A re-export of :mod:`~torchpatch.transforms.augmentation`'s modules: the random
transforms and their deterministic twins. Nothing in the package imports this
module (the implementations live in :mod:`.voxelwise`, :mod:`.artifacts`,
:mod:`.deterministic_intensity`, :mod:`.kspace`, :mod:`.ghosting`,
:mod:`.motion` and :mod:`.labels_to_image`).

Example:
    >>> from torchpatch.transforms.augmentation.intensity import RandomNoise
    >>> RandomNoise(std=(0, 0.1)).std
    (0.0, 0.1)
"""

from __future__ import annotations

from .artifacts import RandomBiasField, RandomSwap
from .deterministic_intensity import BiasField, Blur, Gamma, Noise, Swap
from .ghosting import Ghosting, RandomGhosting
from .kspace import RandomSpike, Spike
from .labels_to_image import LabelsToImage, RandomLabelsToImage
from .motion import Motion, RandomMotion
from .voxelwise import IntensityRandomTransform, RandomBlur, RandomGamma, RandomNoise, as_float

__all__ = [
    "BiasField",
    "Blur",
    "Gamma",
    "Ghosting",
    "IntensityRandomTransform",
    "LabelsToImage",
    "Motion",
    "Noise",
    "RandomBiasField",
    "RandomBlur",
    "RandomGamma",
    "RandomGhosting",
    "RandomLabelsToImage",
    "RandomMotion",
    "RandomNoise",
    "RandomSpike",
    "RandomSwap",
    "Spike",
    "Swap",
    "as_float",
]
