"""Intensity preprocessing where TorchIO 1.x groups it (``tio.transforms.preprocessing.intensity``).

Example:
    >>> from torchpatch.transforms.preprocessing.intensity import Clamp
    >>> Clamp(0, 1)
    Clamp(out_min=0, out_max=1)
"""

from __future__ import annotations

from ..histogram import HistogramStandardization
from ..intensity import RescaleIntensity, ZNormalization
from ..misc import Clamp, Mask
from ..pca import PCA
from ..reference import To
from ..torchio_bases import NormalizationTransform

__all__ = [
    "PCA",
    "Clamp",
    "HistogramStandardization",
    "Mask",
    "NormalizationTransform",
    "RescaleIntensity",
    "To",
    "ZNormalization",
]
