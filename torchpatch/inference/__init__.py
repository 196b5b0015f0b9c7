"""Whole-image inference: grid aggregation, sliding-window inference, sliced detection and merging.

``GridSampler`` is here too, where TorchIO's inference examples reach it
(``tio.inference.GridSampler``); it is :class:`torchpatch.sampler.GridSampler`.
"""

from __future__ import annotations

from ..sampler import GridSampler
from .aggregator import OVERLAP_MODES, GridAggregator
from .detection import parse_patch_overlap, patch_corners, sliced_detection
from .infer import infer
from .merge import Detections, box_ios, box_iou, greedy_nmm, matching_pairs, merge_detections, nmm, nms
from .windows import gaussian_window, hann_window, make_window, torchio_hann_window

__all__ = [
    "OVERLAP_MODES",
    "Detections",
    "GridAggregator",
    "GridSampler",
    "box_ios",
    "box_iou",
    "gaussian_window",
    "greedy_nmm",
    "hann_window",
    "infer",
    "make_window",
    "matching_pairs",
    "merge_detections",
    "nmm",
    "nms",
    "parse_patch_overlap",
    "patch_corners",
    "sliced_detection",
    "torchio_hann_window",
]
