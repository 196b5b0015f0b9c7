"""Reading and writing boxes and points: YOLO, Pascal VOC, COCO, CSV, Deep Plant Phenomics.

Every reader returns :class:`~torchpatch.annotations.BoundingBoxes` (in
``xyxy``) or :class:`~torchpatch.annotations.Points` on a 2D (depth-one)
canvas, with ``x`` the column along ``I`` and ``y`` the row along ``J``, as
torchpatch loads images. Files are parsed defensively: malformed content
raises ``ValueError`` naming the file and the line or entry, XML with a
``DOCTYPE`` or ``ENTITY`` declaration is refused (entity expansion attacks),
and nothing is evaluated. Writers are atomic
(:func:`~torchpatch.io.atomic.write_atomic`: a temporary file in the same
folder, then :func:`os.replace`).

=====================  =====================================================================
format                 content
=====================  =====================================================================
YOLO txt               one box per line: ``class cx cy w h [score]``, normalised by the
                       image width (``I``) and height (``J``)
Pascal VOC XML         ``<object><name>`` and ``<bndbox>`` with 1-based inclusive pixel
                       corners: ``xmin - 1, ymin - 1, xmax, ymax`` in our coordinates
COCO JSON              ``images``, ``annotations`` (``bbox = [x, y, w, h]``), ``categories``
boxes CSV              header ``image_path,xmin,ymin,xmax,ymax,label`` (DeepForest)
points CSV (DPP)       no header, one row per image: ``image_name,x1,y1,x2,y2,...``
points JSON (DPP)      one file per image: ``{"x": {"0": x1, ...}, "y": {"0": y1, ...}}``
=====================  =====================================================================

One module per format (:mod:`~torchpatch.annotations.formats.yolo`,
:mod:`~torchpatch.annotations.formats.voc`,
:mod:`~torchpatch.annotations.formats.coco`,
:mod:`~torchpatch.annotations.formats.csv_boxes`,
:mod:`~torchpatch.annotations.formats.dpp`); every reader and writer is
importable from here.
"""

from __future__ import annotations

from .coco import read_coco, write_coco
from .csv_boxes import read_csv_boxes
from .dpp import read_points_csv, read_points_json, write_points_csv, write_points_json
from .voc import read_voc
from .yolo import read_yolo, write_yolo

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
