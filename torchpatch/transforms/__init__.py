"""Preprocessing transforms for patching: ``Subject -> Subject`` callables.

Names and arguments follow TorchIO 1.x. Any callable taking and returning a
:class:`~torchpatch.subject.Subject` is a transform too, so plain functions
can be mixed with these in :class:`Compose`.

=========================  ==========================================================
transform                  what it does
=========================  ==========================================================
:class:`ToCanonical`       permute and flip axes into RAS+ (no interpolation)
:class:`Resample`          new spacing, or the grid of another image (scipy)
:class:`Pad`               add voxels around the field of view
:class:`Crop`              remove voxels from its sides
:class:`CropOrPad`         reach a target shape, centred on the image or on a mask
:class:`RescaleIntensity`  map an intensity range (or percentiles) onto another
:class:`ZNormalization`    zero mean and unit standard deviation per channel
=========================  ==========================================================

More steps with TorchIO's names (:mod:`~torchpatch.transforms.misc`,
:mod:`~torchpatch.transforms.label`): :class:`Lambda`, :class:`Clamp`,
:class:`Mask`, :class:`CopyAffine`, :class:`EnsureShapeMultiple`,
:class:`OneHot`, :class:`RemapLabels`, :class:`SequentialLabels` and
:class:`KeepLargestComponent` (also ``KeepLargestConnectedComponent``).
:class:`RemoveLabels`, :class:`Contour`, :class:`To`, :class:`Transpose` and
:class:`ToReferenceSpace` (:mod:`~torchpatch.transforms.label_extra`,
:mod:`~torchpatch.transforms.reference`); TorchIO's module paths
(:mod:`~torchpatch.transforms.preprocessing`) re-export them all.
Grids and intensity scales chosen by the user (:mod:`~torchpatch.transforms.orientation`,
:mod:`~torchpatch.transforms.histogram`): :class:`ToOrientation`, :class:`Resize` and
:class:`HistogramStandardization` (landmarks learnt with its ``train``).

Random augmentation lives in :mod:`torchpatch.transforms.augmentation` and
is exported here too (and at the top, ``torchpatch.RandomAffine``...):

===================================  ================================================
random transform                     what it does
===================================  ================================================
:class:`RandomFlip`                  reverse voxel axes
:class:`RandomAffine`                random scaling, rotation and translation (mm)
:class:`RandomElasticDeformation`    smooth random displacements from a coarse grid
:class:`RandomAnisotropy`            thick slices along one random axis
:class:`RandomNoise`                 add Gaussian noise
:class:`RandomGamma`                 raise intensities to a random power
:class:`RandomBlur`                  Gaussian blur, standard deviations in mm
:class:`RandomSwap`                  swap random pairs of patches
:class:`RandomBiasField`             multiply by a smooth polynomial bias field
:class:`OneOf`                       apply one transform chosen at random
:class:`Affine`, :class:`Flip`...    TorchIO's deterministic twins (parameters given)
===================================  ================================================

The same objects run on a whole subject (``SubjectsDataset(transform=...)``),
per patch with context (``Queue(patch_transform=...)``) or over a collated
batch on its device (:class:`BatchTransform`).

Example:
    >>> import torch
    >>> from torchpatch import ScalarImage, Subject
    >>> pipeline = Compose([ToCanonical(), CropOrPad((4, 4, 1)), ZNormalization()])
    >>> pipeline(Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 3, 1)))).t1.spatial_shape
    (4, 4, 1)
"""

from __future__ import annotations

from . import (
    kinds,  # noqa: F401 - registers the transforms under TorchIO's base classes
    preprocessing,
)

# TorchIO's deterministic transforms (parameters given).
from .augmentation import (
    Affine,
    AffineElasticDeformation,
    BatchTransform,
    BiasField,
    Blur,
    ElasticDeformation,
    Flip,
    Gamma,
    Ghosting,
    LabelsToImage,
    Motion,
    Noise,
    OneOf,
    RandomAffine,
    RandomAffineElasticDeformation,
    RandomAnisotropy,
    RandomBiasField,
    RandomBlur,
    RandomElasticDeformation,
    RandomFlip,
    RandomGamma,
    RandomGhosting,
    RandomLabelsToImage,
    RandomMotion,
    RandomNoise,
    RandomSpike,
    RandomSwap,
    RandomTransform,
    Spike,
    Swap,
)
from .augmentation import spatial as _augmentation_spatial  # noqa: F401 - makes augmentation.spatial an attribute
from .base import Transform
from .compose import Compose
from .crop_pad import Crop, CropOrPad, Pad
from .histogram import HistogramStandardization, train_histogram
from .intensity import RescaleIntensity, ZNormalization
from .label import KeepLargestComponent, KeepLargestConnectedComponent, OneHot, RemapLabels, SequentialLabels
from .label_extra import Contour, RemoveLabels
from .misc import Clamp, CopyAffine, EnsureShapeMultiple, Lambda, Mask
from .monai_adapter import MonaiAdapter
from .orientation import Resize, ToCanonical, ToOrientation
from .pca import PCA
from .reference import To, ToReferenceSpace, Transpose
from .spatial import Resample
from .torchio_bases import (
    FourierTransform,
    IntensityTransform,
    LabelTransform,
    NormalizationTransform,
    SpatialTransform,
)

__all__ = [
    "Contour",
    "RemoveLabels",
    "To",
    "ToReferenceSpace",
    "Transpose",
    "preprocessing",
    "Affine",
    "BiasField",
    "Blur",
    "AffineElasticDeformation",
    "ElasticDeformation",
    "Flip",
    "Gamma",
    "Ghosting",
    "LabelsToImage",
    "Motion",
    "Noise",
    "RandomGhosting",
    "RandomLabelsToImage",
    "RandomMotion",
    "RandomSpike",
    "Spike",
    "Swap",
    "BatchTransform",
    "Clamp",
    "Compose",
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "EnsureShapeMultiple",
    "HistogramStandardization",
    "KeepLargestComponent",
    "KeepLargestConnectedComponent",
    "Lambda",
    "Mask",
    "OneHot",
    "OneOf",
    "Pad",
    "RandomAffine",
    "RandomAnisotropy",
    "RandomBiasField",
    "RandomBlur",
    "RandomAffineElasticDeformation",
    "RandomElasticDeformation",
    "RandomFlip",
    "RandomGamma",
    "RandomNoise",
    "RandomSwap",
    "RandomTransform",
    "RemapLabels",
    "Resample",
    "Resize",
    "RescaleIntensity",
    "SequentialLabels",
    "ToCanonical",
    "ToOrientation",
    "Transform",
    "PCA",
    "MonaiAdapter",
    "FourierTransform",
    "IntensityTransform",
    "LabelTransform",
    "NormalizationTransform",
    "SpatialTransform",
    "ZNormalization",
    "train_histogram",
]
