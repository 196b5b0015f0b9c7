"""Spatial random transforms where TorchIO 1.x groups them (``tio.transforms.augmentation.spatial``).

A re-export of :mod:`~torchpatch.transforms.augmentation`'s modules.

Example:
    >>> from torchpatch.transforms.augmentation.spatial import RandomFlip
    >>> RandomFlip(axes=0).axes
    (0,)
"""

from __future__ import annotations

from .affine import RandomAffine
from .affine_elastic import AffineElasticDeformation, RandomAffineElasticDeformation
from .anisotropy import RandomAnisotropy
from .deterministic import Affine, ElasticDeformation, Flip
from .elastic import RandomElasticDeformation
from .flip import RandomFlip

__all__ = [
    "AffineElasticDeformation",
    "RandomAffineElasticDeformation",
    "Affine",
    "ElasticDeformation",
    "Flip",
    "RandomAffine",
    "RandomAnisotropy",
    "RandomElasticDeformation",
    "RandomFlip",
]
