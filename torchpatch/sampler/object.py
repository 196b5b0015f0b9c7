"""Object sampling: every patch holds at least one annotated object.

Detection and counting on large images waste most uniform patches on empty
background. :class:`ObjectSampler` draws an object first (uniformly, or a
class first and then one of its objects), then a patch corner uniformly among
those whose patch holds the object. Per axis, with patch size ``p`` and the
object's box ``[b0, b1)`` covering voxels ``floor(b0)`` to ``ceil(b1) - 1``:

- the box fits (it covers at most ``p`` voxels): the patch holds the whole
  box, corners ``ceil(b1) - p`` to ``floor(b0)``;
- it does not fit: the patch holds the voxel of the box centre ``c``,
  corners ``floor(c) - p + 1`` to ``floor(c)``;

and the corners are clipped to the valid ones, ``0`` to ``size - p``::

    axis of 12 voxels, p = 4, box [5, 7):     corners 3, 4 and 5
    voxel     0 1 2 3 4 5 6 7 8 9 10 11
    box                 # #
    corner 3        [ . . . ]
    corner 5            [ . . . ]

A point is a box of one voxel, the one holding it. Boxes are first clipped to
the image; objects wholly outside it are never drawn. The plan (one interval
of corners per object and axis) is computed once per subject; a draw is
O(1) per patch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Real

import numpy as np
import torch

from ..annotations import BoundingBoxes, Points
from ..subject import Subject
from ..typing import TypeTriplet
from .sampler import RandomSampler

#: The ways to pick the object a patch is drawn around.
BY = ("object", "class")


def _object_extents(annotations: BoundingBoxes | Points, shape: TypeTriplet) -> tuple[np.ndarray, np.ndarray]:
    """Per object, the box ``[low, high)`` in 3D, clipped to the image (float64)."""
    if isinstance(annotations, Points):
        low = annotations.voxel_indices().to(torch.float64)
        high = low + 1
    else:
        corners = annotations.to_3d().corners().to(torch.float64)
        low, high = corners[:, :3], corners[:, 3:]
    bounds = torch.tensor(shape, dtype=torch.float64)
    low = torch.clamp(low, min=0.0)
    high = torch.minimum(high, bounds)
    return low.numpy(), high.numpy()


def corner_intervals(
    low: np.ndarray, high: np.ndarray, shape: TypeTriplet, patch_size: TypeTriplet
) -> tuple[np.ndarray, np.ndarray]:
    """First and last valid corner ``(N, 3)`` of patches holding each object (see the module docstring).

    Example:
        >>> first, last = corner_intervals(np.array([[5.0, 0, 0]]), np.array([[7.0, 1, 1]]), (12, 1, 1), (4, 1, 1))
        >>> first.tolist(), last.tolist()
        ([[3, 0, 0]], [[5, 0, 0]])
    """
    size = np.asarray(patch_size, dtype=np.int64)
    first_voxel = np.floor(low).astype(np.int64)
    end_voxel = np.ceil(high).astype(np.int64)
    centre = np.floor((low + high) / 2).astype(np.int64)
    fits = end_voxel - first_voxel <= size
    first = np.where(fits, end_voxel - size, centre - size + 1)
    last = np.where(fits, first_voxel, centre)
    highest = np.asarray(shape, dtype=np.int64) - size
    return np.clip(first, 0, highest), np.clip(last, 0, highest)


class ObjectSampler(RandomSampler):
    """Patches that each hold at least one annotated object (box or point).

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        annotations_name: Name of the :class:`~torchpatch.annotations.BoundingBoxes`
            or :class:`~torchpatch.annotations.Points` metadata; the first
            such value of the subject when ``None``.
        by: ``'object'``: every object equally likely; ``'class'``: a class
            first (with ``class_probabilities``), then one of its objects, so
            rare classes are seen as often as common ones.
        class_probabilities: ``{class_id: weight}`` for ``by='class'``;
            classes a subject lacks are skipped. ``None``: classes equally likely.
        padding_mode: Pad images smaller than the patch (see
            :class:`~torchpatch.sampler.PatchSampler`); ``None`` makes it an error.

    Raises:
        TypeError: For arguments of the wrong type.
        ValueError: For an unknown ``by``, weights that are negative or all
            zero, or ``class_probabilities`` without ``by='class'``; when
            sampling, for a subject without such annotations, without objects
            inside the image, or without classes for ``by='class'``.

    Example:
        >>> from torchpatch import ScalarImage, Subject, LOCATION
        >>> from torchpatch.annotations import BoundingBoxes
        >>> boxes = BoundingBoxes([[10, 4, 13, 6]], 'xyxy', (16, 16), class_ids=[1])
        >>> subject = Subject(photo=ScalarImage(tensor=torch.rand(3, 16, 16, 1)), boxes=boxes)
        >>> patch = next(ObjectSampler(4)(subject, 1, generator=0))
        >>> patch[LOCATION].tolist(), patch['boxes'].data.tolist()
        ([9, 4, 0, 13, 8, 1], [[1.0, 0.0, 4.0, 2.0]])
    """

    def __init__(
        self,
        patch_size: int | tuple[int, int, int],
        annotations_name: str | None = None,
        by: str = "object",
        class_probabilities: Mapping[int, float] | None = None,
        *,
        padding_mode: float | str | None = None,
    ) -> None:
        super().__init__(patch_size, padding_mode=padding_mode)
        if annotations_name is not None and not isinstance(annotations_name, str):
            raise TypeError(f"annotations_name must be a str or None, got {type(annotations_name).__name__}")
        if not isinstance(by, str) or by not in BY:
            raise ValueError(f"by must be one of {list(BY)}, got {by!r}")
        if class_probabilities is not None and by != "class":
            raise ValueError("class_probabilities apply to by='class'; pass by='class' or drop them")
        self.annotations_name = annotations_name
        self.by = by
        self.class_probabilities = _parse_probabilities(class_probabilities)

    def _annotations(self, subject: Subject) -> tuple[str, BoundingBoxes | Points]:
        kinds = (BoundingBoxes, Points)
        if self.annotations_name is None:
            for name, value in subject.metadata.items():
                if isinstance(value, kinds):
                    return name, value
            raise ValueError(
                f"subject {subject.name!r} has no BoundingBoxes or Points to sample around; "
                f"metadata: {sorted(subject.metadata)}"
            )
        return self.annotations_name, subject.get_annotation(self.annotations_name, "annotations_name", kinds)

    def prepare(self, subject: Subject, patch_size: TypeTriplet) -> Callable[[np.random.Generator, int], np.ndarray]:
        name, annotations = self._annotations(subject)
        shape = subject.spatial_shape
        if annotations.spatial_shape != shape:
            raise ValueError(
                f"annotations {name!r} of subject {subject.name!r} live on a canvas of spatial shape "
                f"{annotations.spatial_shape}, but its images have spatial shape {shape}"
            )
        low, high = _object_extents(annotations, shape)
        drawable = np.all(high > low, axis=1)
        if not drawable.any():
            raise ValueError(
                f"subject {subject.name!r} has no object inside the image to sample around: {name!r} holds "
                f"{len(annotations)} objects, none inside the spatial shape {shape}"
            )
        first, last = corner_intervals(low[drawable], high[drawable], shape, patch_size)
        groups = self._groups(subject, name, annotations, drawable)
        weights = np.array([w for w, _ in groups], dtype=np.float64)
        weights /= weights.sum()
        members = [m for _, m in groups]

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            chosen_group = rng.choice(len(members), size=n, p=weights)
            chosen = np.empty(n, dtype=np.int64)
            for position, objects in enumerate(members):
                mask = chosen_group == position
                picks = int(mask.sum())
                if picks:
                    chosen[mask] = objects[rng.integers(0, objects.size, size=picks)]
            return rng.integers(first[chosen], last[chosen] + 1, dtype=np.int64)

        return draw

    def _groups(
        self, subject: Subject, name: str, annotations: BoundingBoxes | Points, drawable: np.ndarray
    ) -> list[tuple[float, np.ndarray]]:
        """``(weight, object positions among the drawable ones)`` per group to pick from."""
        count = int(drawable.sum())
        if self.by == "object":
            return [(1.0, np.arange(count))]
        if annotations.class_ids is None:
            raise ValueError(
                f"by='class' needs class ids, but {name!r} of subject {subject.name!r} has none; use by='object'"
            )
        classes = annotations.class_ids.numpy()[drawable]
        groups = []
        for label in np.unique(classes).tolist():
            weight = 1.0 if self.class_probabilities is None else self.class_probabilities.get(label, 0.0)
            if weight > 0:
                groups.append((weight, np.flatnonzero(classes == label)))
        if not groups:
            raise ValueError(
                f"subject {subject.name!r}: {name!r} has objects of classes {sorted(set(classes.tolist()))} only, "
                f"none with a positive weight in class_probabilities {self.class_probabilities}"
            )
        return groups


def _parse_probabilities(probabilities: Mapping[int, float] | None) -> dict[int, float] | None:
    if probabilities is None:
        return None
    if not isinstance(probabilities, Mapping):
        raise TypeError(f"class_probabilities must be a dict {{class_id: weight}}, got {type(probabilities).__name__}")
    parsed: dict[int, float] = {}
    for label, weight in probabilities.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"class_probabilities keys must be int class ids, got {label!r}")
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise TypeError(f"class_probabilities[{label}] must be a number, got {type(weight).__name__} {weight!r}")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"class_probabilities[{label}] must be a finite number >= 0, got {weight!r}")
        parsed[int(label)] = float(weight)
    if sum(parsed.values()) <= 0:
        raise ValueError(f"class_probabilities must have a positive weight, got {dict(probabilities)}")
    return parsed


__all__ = ["ObjectSampler", "corner_intervals"]
