"""The preprocessing transforms where TorchIO 1.x puts them (``tio.transforms.preprocessing.X``).

A re-export: the transforms live in the modules of :mod:`torchpatch.transforms`.
TorchIO's one-module-per-transform files (``preprocessing.spatial.crop``...) are not provided.

Example:
    >>> from torchpatch.transforms.preprocessing import CropOrPad, RemoveLabels
    >>> CropOrPad((4, 4, 1))
    CropOrPad(target_shape=(4, 4, 1), padding_mode=0)
"""

from __future__ import annotations

from ..crop_pad import Crop, CropOrPad, Pad
from ..histogram import HistogramStandardization
from ..intensity import RescaleIntensity, ZNormalization
from ..label import KeepLargestComponent, OneHot, RemapLabels, SequentialLabels
from ..label_extra import Contour, RemoveLabels
from ..misc import Clamp, CopyAffine, EnsureShapeMultiple, Mask
from ..orientation import Resize, ToCanonical, ToOrientation
from ..pca import PCA
from ..reference import To, ToReferenceSpace, Transpose
from ..spatial import Resample
from . import intensity, label, spatial

__all__ = [
    "PCA",
    "Clamp",
    "Contour",
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "EnsureShapeMultiple",
    "HistogramStandardization",
    "KeepLargestComponent",
    "Mask",
    "OneHot",
    "Pad",
    "RemapLabels",
    "RemoveLabels",
    "Resample",
    "RescaleIntensity",
    "Resize",
    "SequentialLabels",
    "To",
    "ToCanonical",
    "ToOrientation",
    "ToReferenceSpace",
    "Transpose",
    "ZNormalization",
    "intensity",
    "label",
    "spatial",
]
