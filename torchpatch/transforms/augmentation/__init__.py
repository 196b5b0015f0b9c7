"""Random augmentation of whole subjects, with TorchIO 1.x names and arguments.

Every random transform draws its parameters from torch's global generator
(``torch.manual_seed`` makes it reproducible) and appends what it applied to
the subject's ``history`` metadata list.

=========================================  ====================================================
transform                                  what it does
=========================================  ====================================================
:class:`RandomFlip`                        reverse voxel axes (labels, boxes and points follow)
:class:`RandomAffine`                      random scaling, rotation and translation (mm)
:class:`RandomElasticDeformation`          smooth random displacements from a coarse grid
:class:`RandomAffineElasticDeformation`    both, resampled once (TorchIO 1.2)
:class:`RandomNoise`                       add Gaussian noise
:class:`RandomGamma`                       raise intensities to a random power
:class:`RandomBlur`                        Gaussian blur, standard deviations in mm
:class:`RandomSwap`                        swap random pairs of patches
:class:`RandomBiasField`                   multiply by a smooth polynomial bias field
:class:`RandomAnisotropy`                  thick slices: downsample one axis, restore the grid
:class:`OneOf`                             apply one transform chosen at random
:class:`RandomMotion`                      MRI motion: k-space from a few rigidly moved copies
:class:`RandomGhosting`                    MRI ghosts along a voxel axis (k-space planes weakened)
:class:`RandomSpike`                       MRI spikes in k-space: stripes across the image
:class:`RandomLabelsToImage`               an image made from a label map, a Gaussian tissue per label
:class:`Affine`, :class:`Flip`...          TorchIO's deterministic twins, parameters given
=========================================  ====================================================

Example:
    >>> import torch
    >>> from torchpatch import ScalarImage, Subject
    >>> from torchpatch.transforms import Compose
    >>> _ = torch.manual_seed(0)
    >>> augment = Compose([RandomFlip(axes=(0, 1)), OneOf([RandomNoise(), RandomGamma()])])
    >>> out = augment(Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1))))
    >>> [record['name'] for record in out['history']]
    ['RandomFlip', 'RandomNoise']
"""

from __future__ import annotations

from ...subject import set_history_handler
from . import history
from .affine import RandomAffine
from .affine_elastic import AffineElasticDeformation, RandomAffineElasticDeformation
from .anisotropy import RandomAnisotropy
from .artifacts import RandomBiasField, RandomSwap
from .batch import BatchTransform
from .deterministic import Affine, ElasticDeformation, Flip
from .deterministic_intensity import BiasField, Blur, Gamma, Noise, Swap
from .elastic import RandomElasticDeformation
from .flip import RandomFlip
from .ghosting import Ghosting, RandomGhosting
from .kspace import RandomSpike, Spike
from .labels_to_image import LabelsToImage, RandomLabelsToImage
from .motion import Motion, RandomMotion
from .random import OneOf, RandomTransform
from .resample import SpatialRandomTransform
from .voxelwise import IntensityRandomTransform, RandomBlur, RandomGamma, RandomNoise

__all__ = [
    "AffineElasticDeformation",
    "RandomAffineElasticDeformation",
    "Ghosting",
    "Motion",
    "RandomGhosting",
    "RandomMotion",
    "RandomSpike",
    "Spike",
    "Affine",
    "BiasField",
    "Blur",
    "ElasticDeformation",
    "Flip",
    "Gamma",
    "LabelsToImage",
    "Noise",
    "Swap",
    "BatchTransform",
    "IntensityRandomTransform",
    "OneOf",
    "RandomAffine",
    "RandomAnisotropy",
    "RandomBiasField",
    "RandomBlur",
    "RandomElasticDeformation",
    "RandomFlip",
    "RandomGamma",
    "RandomLabelsToImage",
    "RandomNoise",
    "RandomSwap",
    "RandomTransform",
    "SpatialRandomTransform",
]

set_history_handler(history)
