"""Random flips of the voxel axes: :class:`RandomFlip`.

As in TorchIO, only the voxels are reversed: the affine is unchanged, so the
flipped image is a mirror image in the world (a left hemisphere becomes a
right one). Boxes and points in the subject's metadata follow the voxels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...annotations import annotation_grid, map_annotations, region_aware_metadata
from ...subject import Subject
from ..base import rebuild_image
from .maps import AffineMap, CoordinateMap
from .random import RandomTransform, parse_probability
from .resample import Frame, SpatialMapMixin

#: The anatomical letters of each world axis.
_WORLD_AXES = ("LR", "AP", "IS")


def _parse_axes(axes: Any) -> tuple[int | str, ...]:
    items = (axes,) if isinstance(axes, (int, str)) else axes
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise TypeError(f"axes must be an axis or a sequence of axes (0, 1, 2 or 'LR', 'AP', 'IS'), got {axes!r}")
    parsed: list[int | str] = []
    for axis in items:
        if isinstance(axis, bool) or not isinstance(axis, (int, str)):
            raise TypeError(f"axes must hold ints 0, 1, 2 or anatomical letters, got {type(axis).__name__} {axis!r}")
        if isinstance(axis, int) and axis not in (0, 1, 2):
            raise ValueError(f"axes must hold 0, 1 or 2 (the spatial axes I, J, K), got {axis!r} in {axes!r}")
        if isinstance(axis, str) and (not axis or not any(axis[0].upper() in letters for letters in _WORLD_AXES)):
            raise ValueError(
                f"axes given as letters must start with one of L, R, A, P, I, S (e.g. 'LR'), got {axis!r} in {axes!r}"
            )
        parsed.append(axis)
    return tuple(parsed)


class RandomFlip(SpatialMapMixin, RandomTransform):
    """Reverse the order of the voxels along some axes, each with probability ``flip_probability``.

    Every selected image is flipped (label maps too) with the same draws.
    Axes are voxel axes ``0, 1, 2`` (``I, J, K``) or anatomical letters:
    ``'LR'`` (or ``'L'``, ``'Left'``, ``'R'``...), ``'AP'``, ``'IS'``, each
    resolved to the voxel axis of the first selected image that points along
    that world axis (its :attr:`~torchpatch.image.Image.orientation`).

    The record in the history holds the voxel axes flipped: ``{"name":
    "RandomFlip", "axes": [0]}``.

    Args:
        axes: An axis or a sequence of axes that may be flipped.
        flip_probability: Probability of flipping each of them.
        p: Probability of applying the transform at all.
        include: Names of the only images to flip.
        exclude: Names of images to leave as they are.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When an axis is not ``0, 1, 2`` or an anatomical letter,
            or a probability is outside ``[0, 1]``; when called, if the subject
            holds annotations and some images are left out.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1)),
        ...     seg=LabelMap(tensor=torch.tensor([0, 0, 1]).reshape(1, 3, 1, 1)),
        ... )
        >>> out = RandomFlip(axes='LR', flip_probability=1)(subject)
        >>> out.t1.data.flatten().tolist(), out.seg.data.flatten().tolist(), out['history']
        ([2.0, 1.0, 0.0], [1, 0, 0], [{'name': 'RandomFlip', 'axes': [0]}])
    """

    def __init__(
        self,
        axes: int | str | Sequence[int | str] = 0,
        flip_probability: float = 0.5,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.axes = _parse_axes(axes)
        self.flip_probability = parse_probability(flip_probability, "flip_probability")

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw which axes are flipped (voxel axes, in increasing order)."""
        axes = sorted(set(self._voxel_axes(subject)))
        flipped = [axis for axis, draw in zip(axes, torch.rand(len(axes)).tolist()) if draw < self.flip_probability]
        return {"axes": flipped}

    def _voxel_axes(self, subject: Subject) -> list[int]:
        images = self.get_images_dict(subject)
        orientation = next(iter(images.values())).orientation if images else ("R", "A", "S")
        resolved = []
        for axis in self.axes:
            if isinstance(axis, int):
                resolved.append(axis)
                continue
            letters = next(pair for pair in _WORLD_AXES if axis[0].upper() in pair)
            resolved.append(next(index for index, code in enumerate(orientation) if code in letters))
        return resolved

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Flip the selected images, and the annotations, along ``params['axes']``."""
        axes = [int(axis) for axis in params["axes"]]
        images = self.get_images_dict(subject)
        if not axes:
            return subject.with_images({})
        dims = [1 + axis for axis in axes]
        result = subject.with_images(
            {name: rebuild_image(image, torch.flip(image.data, dims)) for name, image in images.items()}
        )
        annotations = region_aware_metadata(subject)
        if annotations:
            shape, _ = annotation_grid(subject, list(images), repr(self), annotations)
            matrix = np.eye(4)
            for axis in axes:
                matrix[axis, axis] = -1.0
                matrix[axis, 3] = shape[axis] - 1
            for name, value in map_annotations(annotations, matrix, shape, repr(self)).items():
                result[name] = value
        return result

    invertible = True

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """A flip undoes itself."""
        return self.apply_params(subject, params)

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """The flip as an exact :class:`~.maps.AffineMap` of the whole grid (joins a resampling chain)."""
        matrix = np.eye(4)
        for axis in params["axes"]:
            matrix[int(axis), int(axis)] = -1.0
            matrix[int(axis), 3] = frame.shape[int(axis)] - 1
        return AffineMap(matrix)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        axes: Any = self.axes[0] if len(self.axes) == 1 else list(self.axes)
        return {"axes": axes, "flip_probability": self.flip_probability, **super().arguments()}


__all__ = ["RandomFlip"]
