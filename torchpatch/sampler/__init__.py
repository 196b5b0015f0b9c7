"""Patch samplers: uniform, weighted and label (the grid lives in ``grid``)."""

from __future__ import annotations

from .grid import GridSampler
from .label import LabelSampler
from .object import ObjectSampler
from .sampler import PatchSampler, RandomSampler
from .uniform import UniformSampler
from .weighted import WeightedSampler

__all__ = [
    "GridSampler",
    "LabelSampler",
    "ObjectSampler",
    "PatchSampler",
    "RandomSampler",
    "UniformSampler",
    "WeightedSampler",
]
