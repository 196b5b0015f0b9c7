"""Merging overlapping detections: NMS, greedy NMM and NMM, over IoU or IoS.

Sliced inference sees an object once in every patch that holds it, so its
box comes back several times. These functions reduce such copies to one box
per object. Boxes are in voxel coordinates and half-open, like patch
locations: ``(i0, j0, i1, j1)`` in 2D, ``(i0, j0, k0, i1, j1, k1)`` in 3D.

The package reads bottom up, one job per module::

    boxes       checks, sizes, IoU and IoS of boxes
    pairs       the pairs of boxes that match (a sweep along i, no N x N matrix)
    algorithms  nms, greedy_nmm, nmm and merge_detections, which picks one

Every merge takes ``(boxes, scores, classes=None)``, then keyword-only
options that share their names and meaning across the package:
``method`` (:func:`merge_detections` only), ``metric`` (``'iou'`` or
``'ios'``), ``threshold``, ``class_agnostic``, ``size_aware``.
"""

from __future__ import annotations

from .algorithms import METHODS, Detections, check_merge_options, greedy_nmm, merge_detections, nmm, nms
from .boxes import METRICS, box_ios, box_iou, check_boxes
from .pairs import matching_pairs

__all__ = [
    "METHODS",
    "METRICS",
    "Detections",
    "box_ios",
    "box_iou",
    "check_boxes",
    "check_merge_options",
    "greedy_nmm",
    "matching_pairs",
    "merge_detections",
    "nmm",
    "nms",
]
