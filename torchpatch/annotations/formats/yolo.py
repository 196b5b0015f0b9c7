"""YOLO label files: one box per line, ``class cx cy w h [score]``, normalised by the image size."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...image import Image
from ...io.atomic import write_atomic
from ...typing import TypePath
from ..boxes import BoundingBoxes
from ._parsing import boxes_2d, canvas_2d, check_box, format_number, parse_class_id, parse_number, read_text


def read_yolo(
    path: TypePath, spatial_shape: Sequence[int] | Image, *, class_names: Sequence[str] | None = None
) -> BoundingBoxes:
    """Boxes of a YOLO ``.txt`` file: ``class cx cy w h [score]`` per line, normalised.

    Args:
        path: The label file (an empty file means no boxes).
        spatial_shape: The image's ``(I, J)`` (width, height), or the image.
        class_names: Names of the class ids, kept on the boxes.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'photo.txt'
        ...     _ = path.write_text('0 0.25 0.5 0.5 0.25\\n')
        ...     read_yolo(path, (8, 4)).data.tolist()
        [[0.0, 1.5, 4.0, 2.5]]
    """
    shape = canvas_2d(spatial_shape, path)
    rows, ids, scores = [], [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) not in (5, 6):
            raise ValueError(
                f"{str(path)!r}, {where}: expected 5 fields (class cx cy w h) or 6 (and a score), got {len(fields)}"
            )
        ids.append(parse_class_id(fields[0], path, where))
        cx, cy, w, h = (parse_number(v, path, where, n) for v, n in zip(fields[1:5], ("cx", "cy", "w", "h")))
        corners = ((cx - w / 2) * shape[0], (cy - h / 2) * shape[1], (cx + w / 2) * shape[0], (cy + h / 2) * shape[1])
        check_box(corners, path, where)
        outside = [f"{n}={v:g}" for v, n in zip((cx, cy, w, h), ("cx", "cy", "w", "h")) if not 0 <= v <= 1]
        if outside:
            raise ValueError(
                f"{str(path)!r}, {where}: YOLO coordinates are normalised to [0, 1] by the image size, "
                f"got {', '.join(outside)} (pixel coordinates, or the labels of another image?)"
            )
        rows.append(corners)
        if len(fields) == 6:
            scores.append(parse_number(fields[5], path, where, "the score"))
    if scores and len(scores) != len(rows):
        raise ValueError(f"{str(path)!r}: some lines have a score and others do not")
    data = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4).to(torch.float32)
    return BoundingBoxes(data, "xyxy", shape, ids, scores or None, class_names=class_names)


def write_yolo(path: TypePath, boxes: BoundingBoxes) -> None:
    """Write 2D boxes as a YOLO ``.txt`` file (class 0 when they have no class ids).

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'photo.txt'
        ...     write_yolo(path, BoundingBoxes([[0, 1.5, 4, 2.5]], 'xyxy', (8, 4), class_ids=[3]))
        ...     path.read_text()
        '3 0.25 0.5 0.5 0.25\\n'
    """
    boxes = boxes_2d(boxes, "write_yolo")
    width, height = boxes.spatial_shape[0], boxes.spatial_shape[1]
    lines = []
    for row, (x0, y0, x1, y1) in enumerate(boxes.data.to(torch.float64).tolist()):
        label = 0 if boxes.class_ids is None else int(boxes.class_ids[row])
        values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
        if boxes.scores is not None:
            values.append(float(boxes.scores[row]))
        lines.append(" ".join([str(label), *(format_number(v) for v in values)]) + "\n")
    write_atomic(path, "".join(lines))


__all__ = ["read_yolo", "write_yolo"]
