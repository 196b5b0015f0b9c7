"""Annotations across transforms: which grid they live on, and cropping or mapping them all at once.

The crop/pad transforms and the spatial transforms
(:mod:`torchpatch.transforms`) move every piece of region-aware metadata of a
subject (boxes, points, anything with ``crop_to_region``) with the voxels;
those that also follow a change of voxel grid implement
:class:`VoxelMappable`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..subject import RegionAware, Subject
from ..typing import TypeAffine, TypeTriplet


@runtime_checkable
class VoxelMappable(Protocol):
    """Metadata that can follow a change of voxel grid (ToCanonical, Resample).

    ``map_voxels(matrix, spatial_shape)`` returns the value on the new grid;
    ``matrix`` maps old voxel indices (integers at voxel centres) to new ones.

    Example:
        >>> import numpy as np
        >>> from torchpatch.annotations import Points
        >>> points = Points([[1.5, 2.5]], (4, 4))
        >>> isinstance(points, VoxelMappable)
        True
        >>> flip_i = np.array([[-1.0, 0, 0, 3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # i -> 3 - i
        >>> points.map_voxels(flip_i, (4, 4, 1)).data.tolist()
        [[2.5, 2.5]]
    """

    def map_voxels(self, matrix: Any, spatial_shape: Sequence[int]) -> Any:
        """The value on a new grid of ``spatial_shape``."""
        ...


def region_aware_metadata(subject: Subject) -> dict[str, Any]:
    """The metadata of ``subject`` that lives in its voxel grid (boxes, points, ...).

    Example:
        >>> import torch
        >>> from torchpatch import Points, ScalarImage
        >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), pts=Points([[1.0, 1.0]], (4, 4)), age=3)
        >>> list(region_aware_metadata(s))
        ['pts']
    """
    return {name: value for name, value in subject.metadata.items() if isinstance(value, RegionAware)}


def annotation_grid(
    subject: Subject, transformed: Sequence[str], transform: str, annotations: Mapping[str, Any]
) -> tuple[TypeTriplet, TypeAffine]:
    """The grid the annotations of ``subject`` live on, before a transform moves it.

    Annotations live on the grid shared by every image, so a transform that
    changes the grid must apply to every image, and the images must share one
    grid to begin with.

    Args:
        subject: The subject about to be transformed.
        transformed: Names of the images the transform changes.
        transform: The transform, for messages.
        annotations: The region-aware metadata, by name.

    Raises:
        ValueError: When some images are left out, the images do not share a
            grid, or an annotation's canvas is not that grid.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, Points, ScalarImage
        >>> image, seg = ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), LabelMap(tensor=torch.zeros(1, 4, 4, 1))
        >>> points = Points([[1.5, 2.5]], (4, 4))
        >>> s = Subject(t1=image, seg=seg, pts=points)
        >>> shape, affine = annotation_grid(s, ['t1', 'seg'], 'ToCanonical', {'pts': points})
        >>> shape, affine.shape
        ((4, 4, 1), (4, 4))
        >>> annotation_grid(s, ['t1'], 'ToCanonical', {'pts': points})
        Traceback (most recent call last):
        ...
        ValueError: ToCanonical leaves the images ['seg'] of subject '<unnamed>' on their grid, ...
    """
    names = sorted(annotations)
    left_out = [name for name in subject.images if name not in transformed]
    if left_out:
        raise ValueError(
            f"{transform} leaves the images {left_out} of subject {subject.name!r} on their grid, but the subject "
            f"holds annotations {names} that live on the grid of all its images; apply it to every image "
            f"(no include/exclude) or remove the annotations first"
        )
    try:
        subject.check_consistent_space()
    except ValueError as error:
        raise ValueError(
            f"{transform} cannot tell which grid the annotations {names} of subject {subject.name!r} live on: {error}"
        ) from error
    first = subject.get_first_image()
    for name, value in annotations.items():
        canvas = getattr(value, "spatial_shape", None)
        if canvas is not None and tuple(canvas) != first.spatial_shape:
            raise ValueError(
                f"annotations {name!r} of subject {subject.name!r} live on a canvas of spatial shape {tuple(canvas)}, "
                f"but its images have spatial shape {first.spatial_shape}"
            )
    return first.spatial_shape, first.affine


def crop_annotations(
    annotations: Mapping[str, Any], index_ini: Sequence[int], index_fin: Sequence[int]
) -> dict[str, Any]:
    """Every annotation cropped to ``[index_ini, index_fin)`` (negative ``index_ini``: padding).

    Example:
        >>> from torchpatch.annotations import Points
        >>> points = Points([[1.5, 2.5], [3.5, 0.5]], (4, 4))
        >>> cropped = crop_annotations({'pts': points}, (2, 0, 0), (4, 4, 1))
        >>> cropped['pts'].data.tolist(), cropped['pts'].spatial_shape
        ([[1.5, 0.5]], (2, 4, 1))
    """
    ini, fin = tuple(int(v) for v in index_ini), tuple(int(v) for v in index_fin)
    return {name: value.crop_to_region(ini, fin) for name, value in annotations.items()}


def map_annotations(
    annotations: Mapping[str, Any], matrix: Any, spatial_shape: Sequence[int], transform: str
) -> dict[str, Any]:
    """Every annotation mapped onto a new grid; an error for those that cannot follow.

    Example:
        >>> import numpy as np
        >>> from torchpatch.annotations import BoundingBoxes
        >>> flip_i = np.array([[-1.0, 0, 0, 3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # i -> 3 - i
        >>> boxes = BoundingBoxes([[0, 0, 1, 2]], 'xyxy', (4, 4))
        >>> map_annotations({'boxes': boxes}, flip_i, (4, 4, 1), 'Flip')['boxes'].data.tolist()
        [[3.0, 0.0, 4.0, 2.0]]
        >>> map_annotations({'note': 'text'}, flip_i, (4, 4, 1), 'Flip')
        Traceback (most recent call last):
        ...
        TypeError: Flip changes the voxel grid, but the metadata 'note' (str) only knows how to be cropped ...
    """
    mapped = {}
    for name, value in annotations.items():
        if not isinstance(value, VoxelMappable):
            raise TypeError(
                f"{transform} changes the voxel grid, but the metadata {name!r} ({type(value).__name__}) only knows "
                f"how to be cropped (crop_to_region), not how to follow a new grid (map_voxels); remove it first"
            )
        mapped[name] = value.map_voxels(matrix, spatial_shape)
    return mapped


__all__ = ["VoxelMappable", "annotation_grid", "crop_annotations", "map_annotations", "region_aware_metadata"]
