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

Random augmentation (:class:`RandomFlip`, :class:`RandomNoise`,
:class:`RandomGamma`, :class:`RandomBlur`, :class:`RandomSwap`,
:class:`RandomBiasField`, :class:`OneOf`) lives in
:mod:`torchpatch.transforms.augmentation` and is exported here too.

Example:
    >>> import torch
    >>> from torchpatch import ScalarImage, Subject
    >>> pipeline = Compose([ToCanonical(), CropOrPad((4, 4, 1)), ZNormalization()])
    >>> pipeline(Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 3, 1)))).t1.spatial_shape
    (4, 4, 1)
"""

from __future__ import annotations

from .augmentation import (
    OneOf,
    RandomBiasField,
    RandomBlur,
    RandomFlip,
    RandomGamma,
    RandomNoise,
    RandomSwap,
    RandomTransform,
)
from .base import Compose, Transform
from .crop_pad import Crop, CropOrPad, Pad
from .intensity import RescaleIntensity, ZNormalization
from .spatial import Resample, ToCanonical

__all__ = [
    "Compose",
    "Crop",
    "CropOrPad",
    "OneOf",
    "Pad",
    "RandomBiasField",
    "RandomBlur",
    "RandomFlip",
    "RandomGamma",
    "RandomNoise",
    "RandomSwap",
    "RandomTransform",
    "RescaleIntensity",
    "Resample",
    "ToCanonical",
    "Transform",
    "ZNormalization",
]
