"""Uniform sampling: every patch position equally likely."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..subject import Subject
from ..typing import TypeTriplet
from .sampler import RandomSampler


class UniformSampler(RandomSampler):
    """Patches whose corners are uniform over all positions inside the image.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject, LOCATION
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 10, 10, 10)))
        >>> patches = list(UniformSampler(4)(subject, 3, generator=0))
        >>> [tuple(p['t1'].shape) for p in patches]
        [(1, 4, 4, 4), (1, 4, 4, 4), (1, 4, 4, 4)]
    """

    thread_safe = True  # draws only from the generator it is given

    def prepare(self, subject: Subject, patch_size: TypeTriplet) -> Callable[[np.random.Generator, int], np.ndarray]:
        shape = subject.spatial_shape
        high = np.array([s - p + 1 for s, p in zip(shape, patch_size)], dtype=np.int64)

        def draw(rng: np.random.Generator, count: int) -> np.ndarray:
            return rng.integers(0, high, size=(count, 3), dtype=np.int64)

        return draw
