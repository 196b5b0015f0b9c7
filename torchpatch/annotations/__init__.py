"""Boxes and points in voxel coordinates, 2D and 3D, that follow patches.

:class:`BoundingBoxes` and :class:`Points` are plain metadata of a
:class:`~torchpatch.subject.Subject`. They implement the
:class:`~torchpatch.subject.RegionAware` protocol, so every sampler (which
cuts patches with :meth:`Subject.crop <torchpatch.subject.Subject.crop>`)
hands each patch its annotations in patch coordinates, and the crop/pad and
spatial transforms carry them along.

Coordinates are continuous positions along the voxel axes ``(I, J, K)``,
where voxel ``v`` covers ``[v, v + 1)`` and has its centre at ``v + 0.5``
(the convention of torchvision boxes)::

    voxel      0       1       2       3
           |-------|-------|-------|-------|
    coord  0       1       2       3       4
           box (1, 3) in xyxy covers voxels 1 and 2: half-open [1, 3)
                   point 1.5 is the centre of voxel 1

On a 2D image (PNG, JPEG), ``x`` is the column and ``y`` the row, and
torchpatch loads the column along ``I`` and the row along ``J``: a box
``(xmin, ymin, xmax, ymax)`` in pixels is ``(i0, j0, i1, j1)`` unchanged, and
a 2D annotation lives on a depth-one canvas (``k`` from 0 to 1).

Patch rules, for a region ``[index_ini, index_fin)`` (``index_ini`` may be
negative and ``index_fin`` beyond the canvas when patches are padded):

- boxes are clipped to the region and kept when their visible fraction
  (clipped volume over whole volume) is at least ``min_visibility``, and
  positive (the default ``0.0`` keeps every box that overlaps the region);
- points are kept when ``index_ini <= p < index_fin`` on every axis, so a
  point exactly on a tile border belongs to the tile that starts there and
  each point lands in exactly one tile of a non-overlapping grid.

The package, one job per module:

=============================================  =============================================
:mod:`~torchpatch.annotations.boxes`           :class:`BoundingBoxes`, box formats and corners
:mod:`~torchpatch.annotations.points`          :class:`Points`
:mod:`~torchpatch.annotations.grid`            following transforms: crop or map every annotation
:mod:`~torchpatch.annotations.formats`         reading and writing YOLO, VOC, COCO, CSV, DPP files
:mod:`~torchpatch.annotations.heatmap`         points rendered as count density maps
=============================================  =============================================
"""

from __future__ import annotations

from .boxes import BOX_FORMATS_2D, BOX_FORMATS_3D, BoundingBoxes, from_corners, to_corners
from .boxes import CORNER_FORMAT as CORNER_FORMAT  # public, not in __all__ (as before)
from .grid import VoxelMappable, annotation_grid, crop_annotations, map_annotations, region_aware_metadata
from .points import Points

__all__ = [
    "BOX_FORMATS_2D",
    "BOX_FORMATS_3D",
    "BoundingBoxes",
    "Points",
    "VoxelMappable",
    "annotation_grid",
    "crop_annotations",
    "from_corners",
    "map_annotations",
    "region_aware_metadata",
    "to_corners",
]
