"""Annotation file readers and writers, kept at this import path for existing code.

They live in :mod:`torchpatch.annotations.formats` (one module per format);
this module re-exports them so that ``torchpatch.annotations_io.read_yolo``
and ``from torchpatch.annotations_io import ...`` keep working.
"""

from __future__ import annotations

from .annotations.formats import (
    read_coco,
    read_csv_boxes,
    read_points_csv,
    read_points_json,
    read_voc,
    read_yolo,
    write_coco,
    write_points_csv,
    write_points_json,
    write_yolo,
)

__all__ = [
    "read_coco",
    "read_csv_boxes",
    "read_points_csv",
    "read_points_json",
    "read_voc",
    "read_yolo",
    "write_coco",
    "write_points_csv",
    "write_points_json",
    "write_yolo",
]
