"""TorchIO 1.x's ``tio.data`` module path: the data model, samplers, queue and grid.

Only names: each is the object of its home module (``torchpatch.Image`` is
``torchpatch.data.Image``), so ``from torchio.data import X`` scripts run with
``torchpatch`` in place of ``torchio``. ``torchpatch.data.inference`` and
``torchpatch.data.sampler`` are TorchIO's sub-paths, and ``torchpatch.data.io``
is ``tio.data.io`` (TorchIO's ``tio.io``), its names those of :mod:`torchpatch.io`.

Example:
    >>> import torchpatch
    >>> from torchpatch.data import GridSampler, Subject
    >>> GridSampler is torchpatch.GridSampler, Subject is torchpatch.Subject
    (True, True)
"""

from __future__ import annotations

from ..dataset import SubjectsDataset
from ..image import Image, LabelMap, ScalarImage
from ..inference import GridAggregator
from ..loader import SubjectsLoader
from ..queue import Queue
from ..sampler import GridSampler, LabelSampler, PatchSampler, UniformSampler, WeightedSampler
from ..subject import Subject
from . import inference, io, sampler

__all__ = [
    "GridAggregator",
    "GridSampler",
    "Image",
    "LabelMap",
    "LabelSampler",
    "PatchSampler",
    "Queue",
    "ScalarImage",
    "Subject",
    "SubjectsDataset",
    "SubjectsLoader",
    "UniformSampler",
    "WeightedSampler",
    "inference",
    "io",
    "sampler",
]
