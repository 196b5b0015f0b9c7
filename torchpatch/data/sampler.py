"""TorchIO 1.x's ``tio.data.sampler`` module path: the patch samplers.

Example:
    >>> import torchpatch
    >>> from torchpatch.data.sampler import LabelSampler, RandomSampler
    >>> LabelSampler is torchpatch.LabelSampler, RandomSampler is torchpatch.sampler.RandomSampler
    (True, True)
"""

from __future__ import annotations

from ..sampler import GridSampler, LabelSampler, PatchSampler, RandomSampler, UniformSampler, WeightedSampler

__all__ = ["GridSampler", "LabelSampler", "PatchSampler", "RandomSampler", "UniformSampler", "WeightedSampler"]
