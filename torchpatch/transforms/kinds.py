"""torchpatch's transforms as instances of TorchIO's base classes: ``isinstance(RandomBlur(), IntensityTransform)``.

A TorchIO script sorts transforms by kind (``isinstance(t,
tio.IntensityTransform)`` to keep only intensity augmentation at test time,
say). torchpatch's transforms are built on their own bases, so each is
registered as a virtual subclass of the base TorchIO's transform of that
name derives from: ``isinstance`` and ``issubclass`` answer as in TorchIO,
while the transform keeps its own code (registration adds no method and no
copy of the input).

Example:
    >>> from torchpatch.transforms import IntensityTransform, RandomBlur, RandomFlip, SpatialTransform
    >>> isinstance(RandomBlur(), IntensityTransform), isinstance(RandomFlip(), SpatialTransform)
    (True, True)
    >>> isinstance(RandomFlip(), IntensityTransform)
    False
"""

from __future__ import annotations

from .augmentation.affine import RandomAffine
from .augmentation.affine_elastic import AffineElasticDeformation, RandomAffineElasticDeformation
from .augmentation.artifacts import RandomBiasField, RandomSwap
from .augmentation.deterministic import Affine, ElasticDeformation, Flip
from .augmentation.deterministic_intensity import BiasField, Blur, Gamma, Noise, Swap
from .augmentation.elastic import RandomElasticDeformation
from .augmentation.flip import RandomFlip
from .augmentation.ghosting import Ghosting, RandomGhosting
from .augmentation.kspace import RandomSpike, Spike
from .augmentation.labels_to_image import LabelsToImage, RandomLabelsToImage
from .augmentation.motion import Motion, RandomMotion
from .augmentation.voxelwise import RandomBlur, RandomGamma, RandomNoise
from .crop_pad import Crop, CropOrPad, Pad
from .histogram import HistogramStandardization
from .intensity import RescaleIntensity, ZNormalization
from .label import KeepLargestComponent, OneHot, RemapLabels, SequentialLabels
from .label_extra import Contour, RemoveLabels
from .misc import Clamp, CopyAffine, EnsureShapeMultiple, Mask
from .orientation import Resize, ToCanonical, ToOrientation
from .pca import PCA
from .reference import To, ToReferenceSpace, Transpose
from .spatial import Resample
from .torchio_bases import (
    IntensityTransform,
    LabelTransform,
    NormalizationTransform,
    SpatialTransform,
)

#: Each TorchIO base class and the torchpatch transforms registered under it (as TorchIO 1.2.1 derives them).
KINDS: dict[type, tuple[type, ...]] = {
    SpatialTransform: (
        RandomFlip, Flip, RandomAffine, Affine, RandomElasticDeformation, ElasticDeformation,
        RandomAffineElasticDeformation, AffineElasticDeformation, Pad, Crop, CropOrPad, Resize, Resample,
        ToCanonical, ToOrientation, ToReferenceSpace, Transpose, CopyAffine, EnsureShapeMultiple,
    ),
    IntensityTransform: (
        RandomSwap, Swap, RandomBlur, Blur, RandomNoise, Noise, RandomSpike, Spike, RandomGamma, Gamma,
        RandomMotion, Motion, RandomGhosting, Ghosting, RandomBiasField, BiasField, RandomLabelsToImage,
        LabelsToImage, To, PCA, Clamp, Mask,
    ),
    NormalizationTransform: (ZNormalization, HistogramStandardization, RescaleIntensity),
    LabelTransform: (OneHot, Contour, RemapLabels, RemoveLabels, SequentialLabels, KeepLargestComponent),
}  # fmt: skip

for _kind, _classes in KINDS.items():
    for _cls in _classes:
        _kind.register(_cls)  # type: ignore[attr-defined]

__all__ = ["KINDS"]
