"""Boxes CSV files (DeepForest): header ``image_path,xmin,ymin,xmax,ymax,label``, pixels."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

import torch

from ...image import Image
from ...typing import TypePath
from ..boxes import BoundingBoxes
from ._parsing import canvas_2d, check_box, names_image, number_classes, parse_number, read_text

_BOX_COLUMNS = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")


def read_csv_boxes(
    path: TypePath,
    spatial_shape: Sequence[int] | Image,
    *,
    image: str | None = None,
    class_to_id: Mapping[str, int] | None = None,
) -> BoundingBoxes:
    """Boxes of one image from a CSV with header ``image_path,xmin,ymin,xmax,ymax,label``.

    Args:
        path: The CSV file (DeepForest's format; pixels, ``x`` = column).
        spatial_shape: The image's ``(I, J)``, or the image.
        image: The rows to keep: those whose ``image_path`` has this name or
            stem (``'OSBS_029.png'`` matches ``OSBS_029.tif``). ``None``: the
            file must describe one image.
        class_to_id: ``{label: id}``; ``None`` numbers the labels of the whole
            file, sorted, from 0 (so every image of the file gets the same ids).

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'boxes.csv'
        ...     _ = path.write_text('image_path,xmin,ymin,xmax,ymax,label\\na.tif,1,2,4,3,Tree\\n')
        ...     boxes = read_csv_boxes(path, (8, 6))
        ...     boxes.data.tolist(), boxes.class_ids.tolist(), boxes.class_names
        ([[1.0, 2.0, 4.0, 3.0]], [0], {0: 'Tree'})
    """
    shape = canvas_2d(spatial_shape, path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in _BOX_COLUMNS if name not in header]
    if missing:
        raise ValueError(
            f"{str(path)!r}: the header {header} lacks the columns {missing}; expected {list(_BOX_COLUMNS)}"
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        where = f"line {reader.line_num}"
        if None in row or any(row.get(name) is None for name in _BOX_COLUMNS):
            raise ValueError(f"{str(path)!r}, {where}: expected {len(header)} fields")
        label = row["label"].strip()
        if not label:
            raise ValueError(f"{str(path)!r}, {where}: empty label")
        corners = tuple(parse_number(row[n], path, where, n) for n in ("xmin", "ymin", "xmax", "ymax"))
        check_box(corners, path, where)
        rows.append((row["image_path"].strip(), corners, label, where))
    all_labels = [r[2] for r in rows]
    if image is None:
        names = sorted({r[0] for r in rows})
        if len(names) > 1:
            raise ValueError(f"{str(path)!r} describes {len(names)} images ({names[:5]}...); pass image=")
    else:
        rows = [r for r in rows if names_image(r[0], image)]
    mapping = class_to_id if class_to_id is not None else {n: i for i, n in enumerate(sorted(set(all_labels)))}
    ids, class_names = number_classes([r[2] for r in rows], mapping, path, [r[3] for r in rows])
    data = torch.tensor([r[1] for r in rows], dtype=torch.float32).reshape(-1, 4)
    return BoundingBoxes(data, "xyxy", shape, ids, class_names=class_names)


__all__ = ["read_csv_boxes"]
