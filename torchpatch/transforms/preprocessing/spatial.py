"""Spatial preprocessing where TorchIO 1.x groups it (``tio.transforms.preprocessing.spatial``).

Example:
    >>> from torchpatch.transforms.preprocessing.spatial import Transpose
    >>> Transpose()
    Transpose()
"""

from __future__ import annotations

from ..crop_pad import Crop, CropOrPad, Pad
from ..misc import CopyAffine, EnsureShapeMultiple
from ..orientation import Resize, ToCanonical, ToOrientation
from ..reference import ToReferenceSpace, Transpose
from ..spatial import Resample

__all__ = [
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "EnsureShapeMultiple",
    "Pad",
    "Resample",
    "Resize",
    "ToCanonical",
    "ToOrientation",
    "ToReferenceSpace",
    "Transpose",
]
