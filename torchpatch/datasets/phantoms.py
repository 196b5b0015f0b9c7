"""Deterministic synthetic phantoms: blobs in a noisy body, with their labels.

Each phantom is a :class:`~torchpatch.subject.Subject` holding a ScalarImage
``'image'`` and a LabelMap ``'label'`` (0 background, 1 and 2 two kinds of
blob), made in code from a seed, so demos and tests need no files::

    label 0: air and body        image: body 0.3, class-1 blobs 1.0,
    label 1: bright round blobs         class-2 blobs 0.6, plus noise
    label 2: dimmer round blobs
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..geometry import parse_patch_size
from ..image import LabelMap, ScalarImage
from ..subject import Subject

_INTENSITIES = {1: 1.0, 2: 0.6}


def make_phantom(
    shape: int | Sequence[int] = (48, 48, 48),
    *,
    seed: int = 0,
    blobs_per_class: int = 3,
    noise: float = 0.1,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    subject_id: str | None = None,
) -> Subject:
    """One phantom subject; the same seed gives the same voxels.

    Args:
        shape: Spatial shape; an int means a cube, or ``(n, n, 1)`` when the
            int is paired with a 2D request such as ``(n, n, 1)``.
        seed: Random seed.
        blobs_per_class: Blobs of each of the classes 1 and 2.
        noise: Standard deviation of the Gaussian noise.
        spacing: Voxel size in millimetres.
        subject_id: Name stored as ``subject['subject_id']``.

    Example:
        >>> subject = make_phantom((16, 16, 1), seed=3)
        >>> subject['image'].shape, sorted(subject['label'].data.unique().tolist())
        ((1, 16, 16, 1), [0, 1, 2])
    """
    size = parse_patch_size(shape)
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in size], indexing="ij")
    centre = [(n - 1) / 2 for n in size]
    extent = [max(n / 2, 0.5) for n in size]
    distance = np.zeros(size, dtype=np.float32)
    for grid, middle, half in zip(grids, centre, extent):
        distance += ((grid - middle) / (0.9 * half)) ** 2
    body = distance <= 1.0
    label = np.zeros(size, dtype=np.uint8)
    radius_low = max(1.0, min(n for n in size if n > 1) / 12)
    for value in (1, 2):
        placed = 0
        for _ in range(100 * blobs_per_class):
            if placed == blobs_per_class:
                break
            radius = rng.uniform(radius_low, 2 * radius_low)
            point = [rng.uniform(0, n - 1) if n > 1 else 0.0 for n in size]
            if not body[tuple(round(p) for p in point)]:
                continue
            ball = sum((g - p) ** 2 for g, p in zip(grids, point)) <= radius**2
            label[ball & body] = value
            placed += 1
    image = np.where(body, 0.3, 0.0).astype(np.float32)
    for value, intensity in _INTENSITIES.items():
        image[label == value] = intensity
    image += rng.normal(0.0, noise, size=size).astype(np.float32)
    affine = np.diag([*map(float, spacing), 1.0])
    metadata = {"subject_id": subject_id or f"phantom-{seed:03d}"}
    return Subject(
        image=ScalarImage(tensor=torch.from_numpy(image)[None], affine=affine),
        label=LabelMap(tensor=torch.from_numpy(label)[None], affine=affine),
        **metadata,
    )


def phantom_subjects(
    num_subjects: int,
    shape: int | Sequence[int] = (48, 48, 48),
    *,
    seed: int = 0,
    **kwargs: float | int,
) -> list[Subject]:
    """``num_subjects`` phantoms with seeds ``seed, seed + 1, ...``.

    Example:
        >>> [s['subject_id'] for s in phantom_subjects(2, 8)]
        ['phantom-000', 'phantom-001']
    """
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be at least 1, got {num_subjects}")
    return [make_phantom(shape, seed=seed + index, **kwargs) for index in range(num_subjects)]  # type: ignore[arg-type]
