"""torchpatch: patch-based deep learning on large 3D and 2D images."""

from __future__ import annotations

from . import geometry, io, transforms
from .constants import AFFINE, DATA, INTENSITY, LABEL, LOCATION, PATH, STEM, TYPE
from .dataset import SubjectsDataset
from .image import Image, LabelMap, ScalarImage
from .loader import SubjectsLoader, collate_subjects
from .queue import Queue
from .sampler import LabelSampler, PatchSampler, UniformSampler, WeightedSampler
from .subject import Subject

__version__ = "0.1.0"

__all__ = [
    "AFFINE",
    "DATA",
    "INTENSITY",
    "LABEL",
    "LOCATION",
    "PATH",
    "STEM",
    "TYPE",
    "Image",
    "LabelSampler",
    "PatchSampler",
    "Queue",
    "UniformSampler",
    "WeightedSampler",
    "LabelMap",
    "ScalarImage",
    "Subject",
    "SubjectsDataset",
    "SubjectsLoader",
    "collate_subjects",
    "geometry",
    "io",
    "transforms",
]
