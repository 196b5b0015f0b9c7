"""Reading and writing boxes and points: YOLO, Pascal VOC, COCO, CSV, Deep Plant Phenomics.

Every reader returns :class:`~torchpatch.annotations.BoundingBoxes` (in
``xyxy``) or :class:`~torchpatch.annotations.Points` on a 2D (depth-one)
canvas, with ``x`` the column along ``I`` and ``y`` the row along ``J``, as
torchpatch loads images. Files are parsed defensively: malformed content
raises ``ValueError`` naming the file and the line or entry, XML with a
``DOCTYPE`` or ``ENTITY`` declaration is refused (entity expansion attacks),
and nothing is evaluated. Writers are atomic: a temporary file in the same
folder, then :func:`os.replace`.

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

Deep Plant Phenomics (``load_heatmap_dataset_with_csv_from_directory`` and
``..._with_json_files_from_directory``) stores points as integer pixel
indices; with ``pixel_indices=True`` (default) they are read as the centres of
those pixels (``x + 0.5``), so each point lies in the pixel meant, and written
back as ``floor(x)``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .annotations import BoundingBoxes, Points
from .image import Image
from .typing import TypePath

_DECLARATION = re.compile(r"<!\s*(doctype|entity)", re.IGNORECASE)
_BOX_COLUMNS = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")


# Shared helpers ---------------------------------------------------------------------------


def _read_text(path: TypePath) -> str:
    file = Path(path)
    try:
        return file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file {str(file)!r} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"annotation file {str(file)!r} is not UTF-8 text: {error}") from error


def _number(text: str, path: TypePath, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{str(path)!r}, {where}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{str(path)!r}, {where}: {what} must be finite, got {text!r}")
    return value


def _class_id(value: Any, path: TypePath, where: str) -> int:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(value, str):
        number = _number(value, path, where, "the class id")
    if number is None or number != int(number) or number < 0:
        raise ValueError(f"{str(path)!r}, {where}: the class id must be an integer >= 0, got {value!r}")
    return int(number)


def _canvas_2d(spatial_shape: Sequence[int] | Image, path: TypePath) -> tuple[int, int, int]:
    shape = tuple(spatial_shape.spatial_shape) if isinstance(spatial_shape, Image) else tuple(spatial_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[2] != 1:
        raise ValueError(
            f"boxes and points of {str(path)!r} are 2D: spatial_shape must be (I, J) or (I, J, 1), got {shape}"
        )
    return (int(shape[0]), int(shape[1]), 1)


def _check_box(corners: Sequence[float], path: TypePath, where: str) -> None:
    if not (corners[2] > corners[0] and corners[3] > corners[1]):
        raise ValueError(f"{str(path)!r}, {where}: the box {list(corners)} must have positive width and height")


def _class_ids(
    names: Sequence[str], class_to_id: Mapping[str, int] | None, path: TypePath, wheres: Sequence[str]
) -> tuple[list[int], dict[int, str]]:
    """Class ids of ``names`` and ``{id: name}``: from ``class_to_id``, or sorted names numbered from 0."""
    mapping = {name: i for i, name in enumerate(sorted(set(names)))} if class_to_id is None else dict(class_to_id)
    ids = []
    for name, where in zip(names, wheres):
        if name not in mapping:
            raise ValueError(f"{str(path)!r}, {where}: class {name!r} is not in class_to_id {sorted(mapping)}")
        ids.append(int(mapping[name]))
    return ids, {int(i): name for name, i in mapping.items()}


def _atomic_write(path: TypePath, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and :func:`os.replace`.

    A reader never sees half a file; there is no fsync (it cost about 7 ms a
    file here), so durability across power loss is the file system's.
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _format(value: float) -> str:
    return f"{value:.10g}"


def _matches(name: str, image: str) -> bool:
    """Whether a file name in an annotation file refers to ``image`` (same name, or same stem)."""
    return name == image or Path(name).name == Path(image).name or Path(name).stem == Path(image).stem


def _boxes_2d(boxes: BoundingBoxes, what: str) -> BoundingBoxes:
    if not isinstance(boxes, BoundingBoxes):
        raise TypeError(f"{what} needs BoundingBoxes, got {type(boxes).__name__}")
    if boxes.ndim != 2:
        raise ValueError(f"{what} writes 2D boxes, got 3D boxes ({boxes.format})")
    return boxes.to_xyxy()


# YOLO -------------------------------------------------------------------------------------


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
    shape = _canvas_2d(spatial_shape, path)
    rows, ids, scores = [], [], []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) not in (5, 6):
            raise ValueError(
                f"{str(path)!r}, {where}: expected 5 fields (class cx cy w h) or 6 (and a score), got {len(fields)}"
            )
        ids.append(_class_id(fields[0], path, where))
        cx, cy, w, h = (_number(v, path, where, n) for v, n in zip(fields[1:5], ("cx", "cy", "w", "h")))
        corners = ((cx - w / 2) * shape[0], (cy - h / 2) * shape[1], (cx + w / 2) * shape[0], (cy + h / 2) * shape[1])
        _check_box(corners, path, where)
        rows.append(corners)
        if len(fields) == 6:
            scores.append(_number(fields[5], path, where, "the score"))
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
    boxes = _boxes_2d(boxes, "write_yolo")
    width, height = boxes.spatial_shape[0], boxes.spatial_shape[1]
    lines = []
    for row, (x0, y0, x1, y1) in enumerate(boxes.data.to(torch.float64).tolist()):
        label = 0 if boxes.class_ids is None else int(boxes.class_ids[row])
        values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
        if boxes.scores is not None:
            values.append(float(boxes.scores[row]))
        lines.append(" ".join([str(label), *(_format(v) for v in values)]) + "\n")
    _atomic_write(path, "".join(lines))


# Pascal VOC -------------------------------------------------------------------------------


def _xml_text(element: ElementTree.Element, tag: str, path: TypePath, where: str) -> str:
    text = element.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"{str(path)!r}, {where}: missing <{tag}>")
    return text.strip()


def read_voc(path: TypePath, *, class_to_id: Mapping[str, int] | None = None, one_based: bool = True) -> BoundingBoxes:
    """Boxes of a Pascal VOC ``.xml`` file, on the canvas of its ``<size>``.

    Args:
        path: The annotation file.
        class_to_id: ``{name: id}``; ``None`` numbers the names found, sorted, from 0.
        one_based: VOC corners are 1-based inclusive pixels: ``xmin - 1``
            and ``xmax`` bound the box. ``False`` takes them as they are.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'photo.xml'
        ...     _ = path.write_text('<annotation><size><width>8</width><height>6</height></size><object>'
        ...         '<name>leaf</name><bndbox><xmin>2</xmin><ymin>1</ymin><xmax>4</xmax><ymax>3</ymax></bndbox>'
        ...         '</object></annotation>')
        ...     boxes = read_voc(path)
        ...     boxes.data.tolist(), boxes.spatial_shape, boxes.class_names
        ([[1.0, 0.0, 4.0, 3.0]], (8, 6, 1), {0: 'leaf'})
    """
    # Parsed from decoded text, so the declared encoding cannot make expat read
    # other characters than those checked here (no NUL: UTF-16 in disguise).
    text = _read_text(path)
    if "\x00" in text:
        raise ValueError(f"{str(path)!r}: XML holds NUL characters; expected UTF-8 text")
    if _DECLARATION.search(text):
        raise ValueError(f"{str(path)!r}: XML with DOCTYPE or ENTITY declarations is refused (entity expansion)")
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - no DOCTYPE/ENTITY, checked above
    except ElementTree.ParseError as error:
        raise ValueError(f"{str(path)!r} is not well-formed XML: {error}") from error
    if root.tag != "annotation":
        raise ValueError(f"{str(path)!r}: the root element must be <annotation>, got <{root.tag}>")
    size = root.find("size")
    if size is None:
        raise ValueError(f"{str(path)!r}: missing <size> (width and height of the image)")
    width = _number(_xml_text(size, "width", path, "<size>"), path, "<size>", "width")
    height = _number(_xml_text(size, "height", path, "<size>"), path, "<size>", "height")
    if width != int(width) or height != int(height) or width < 1 or height < 1:
        raise ValueError(f"{str(path)!r}, <size>: width and height must be positive integers, got {width}, {height}")
    shift = 1.0 if one_based else 0.0
    rows, names, wheres = [], [], []
    for index, obj in enumerate(root.findall("object")):
        where = f"object {index}"
        names.append(_xml_text(obj, "name", path, where))
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{str(path)!r}, {where}: missing <bndbox>")
        x0, y0, x1, y1 = (
            _number(_xml_text(box, t, path, where), path, where, t) for t in ("xmin", "ymin", "xmax", "ymax")
        )
        corners = (x0 - shift, y0 - shift, x1, y1)
        _check_box(corners, path, where)
        rows.append(corners)
        wheres.append(where)
    ids, class_names = _class_ids(names, class_to_id, path, wheres)
    data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    return BoundingBoxes(data, "xyxy", (int(width), int(height)), ids, class_names=class_names)


# COCO -------------------------------------------------------------------------------------


def _load_json(path: TypePath) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text, parse_constant=lambda name: _reject_constant(name, path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    except RecursionError:
        raise ValueError(f"{str(path)!r}: JSON nested too deeply") from None


def _reject_constant(name: str, path: TypePath) -> None:
    raise ValueError(f"{str(path)!r}: JSON holds {name}, which is not a number")


def _select_image(images: list[Any], image_id: Any, file_name: str | None, path: TypePath) -> dict[str, Any]:
    if image_id is not None:
        found = [im for im in images if isinstance(im, dict) and im.get("id") == image_id]
        wanted = f"id {image_id!r}"
    elif file_name is not None:
        found = [im for im in images if isinstance(im, dict) and _matches(str(im.get("file_name", "")), file_name)]
        wanted = f"file name {file_name!r}"
    elif len(images) == 1:
        found, wanted = images, "the only image"
    else:
        raise ValueError(f"{str(path)!r} describes {len(images)} images; pass image_id or file_name")
    if len(found) != 1:
        raise ValueError(f"{str(path)!r}: {len(found)} images match {wanted}; expected exactly one")
    if not isinstance(found[0], dict):
        raise ValueError(f"{str(path)!r}: images entries must be objects, got {found[0]!r}")
    return found[0]


def read_coco(path: TypePath, *, image_id: Any = None, file_name: str | None = None) -> BoundingBoxes:
    """Boxes of one image of a COCO ``.json`` file, by ``image_id`` or ``file_name``.

    ``bbox = [x, y, w, h]`` becomes ``xyxy``; ``category_id`` the class ids,
    ``categories`` the class names, and a ``score`` (detection results) the
    scores. Without ``image_id`` and ``file_name`` the file must hold one image.

    Example:
        >>> import json, tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'coco.json'
        ...     _ = path.write_text(json.dumps({'images': [{'id': 7, 'file_name': 'a.png', 'width': 8, 'height': 6}],
        ...         'annotations': [{'id': 1, 'image_id': 7, 'category_id': 2, 'bbox': [1, 2, 3, 1]}],
        ...         'categories': [{'id': 2, 'name': 'tree'}]}))
        ...     boxes = read_coco(path, file_name='a.png')
        ...     boxes.data.tolist(), boxes.class_ids.tolist(), boxes.class_names
        ([[1.0, 2.0, 4.0, 3.0]], [2], {2: 'tree'})
    """
    content = _load_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("images"), list):
        raise ValueError(f"{str(path)!r}: a COCO file is an object with 'images', 'annotations' and 'categories' lists")
    annotations = content.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"{str(path)!r}: 'annotations' must be a list")
    image = _select_image(content["images"], image_id, file_name, path)
    width, height = image.get("width"), image.get("height")
    if not (type(width) is int and type(height) is int and min(width, height) > 0):
        raise ValueError(f"{str(path)!r}: image {image.get('id')!r} needs positive integer width and height")
    rows, ids, scores = [], [], []
    for index, entry in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{str(path)!r}, {where}: must be an object, got {type(entry).__name__}")
        if entry.get("image_id") != image.get("id"):
            continue
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise ValueError(f"{str(path)!r}, {where}: bbox must be [x, y, w, h] numbers, got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        corners = (x, y, x + w, y + h)
        _check_box(corners, path, where)
        rows.append(corners)
        ids.append(_class_id(entry.get("category_id"), path, where))
        if "score" in entry:
            if not _is_number(entry["score"]):
                raise ValueError(f"{str(path)!r}, {where}: score must be a number, got {entry['score']!r}")
            scores.append(float(entry["score"]))
    if scores and len(scores) != len(rows):
        raise ValueError(f"{str(path)!r}: some annotations of image {image.get('id')!r} have a score and others not")
    class_names: dict[int, str] = {}
    for index, category in enumerate(content.get("categories", [])):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str):
            raise ValueError(f"{str(path)!r}, categories[{index}]: needs an integer id and a str name")
        class_names[_class_id(category.get("id"), path, f"categories[{index}]")] = category["name"]
    data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    return BoundingBoxes(data, "xyxy", (width, height), ids, scores or None, class_names=class_names or None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def write_coco(path: TypePath, boxes_by_image: Mapping[str, BoundingBoxes]) -> None:
    """Write the 2D boxes of several images as one COCO ``.json`` file.

    Images are numbered from 1 in the order given; categories come from the
    boxes' ``class_names`` (else named after their ids); boxes without class
    ids get category 0.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'coco.json'
        ...     write_coco(path, {'a.png': BoundingBoxes([[1, 2, 4, 3]], 'xyxy', (8, 6), class_ids=[2])})
        ...     read_coco(path).data.tolist()
        [[1.0, 2.0, 4.0, 3.0]]
    """
    if not isinstance(boxes_by_image, Mapping):
        raise TypeError(
            f"boxes_by_image must be a dict {{file_name: BoundingBoxes}}, got {type(boxes_by_image).__name__}"
        )
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    categories: dict[int, str] = {}
    for image_id, (name, value) in enumerate(boxes_by_image.items(), start=1):
        boxes = _boxes_2d(value, f"write_coco (image {name!r})")
        images.append(
            {"id": image_id, "file_name": str(name), "width": boxes.spatial_shape[0], "height": boxes.spatial_shape[1]}
        )
        ids = [0] * len(boxes) if boxes.class_ids is None else boxes.class_ids.tolist()
        for row, (x0, y0, x1, y1) in enumerate(boxes.data.to(torch.float64).tolist()):
            entry = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(ids[row]),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
            }
            if boxes.scores is not None:
                entry["score"] = float(boxes.scores[row])
            annotations.append(entry)
        names = boxes.class_names or {}
        for label in ids:
            categories.setdefault(int(label), names.get(int(label), str(label)))
    content = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in sorted(categories.items())],
    }
    _atomic_write(path, json.dumps(content, indent=1, allow_nan=False) + "\n")


# Boxes CSV --------------------------------------------------------------------------------


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
    shape = _canvas_2d(spatial_shape, path)
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
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
        corners = tuple(_number(row[n], path, where, n) for n in ("xmin", "ymin", "xmax", "ymax"))
        _check_box(corners, path, where)
        rows.append((row["image_path"].strip(), corners, label, where))
    all_labels = [r[2] for r in rows]
    if image is None:
        names = sorted({r[0] for r in rows})
        if len(names) > 1:
            raise ValueError(f"{str(path)!r} describes {len(names)} images ({names[:5]}...); pass image=")
    else:
        rows = [r for r in rows if _matches(r[0], image)]
    mapping = class_to_id if class_to_id is not None else {n: i for i, n in enumerate(sorted(set(all_labels)))}
    ids, class_names = _class_ids([r[2] for r in rows], mapping, path, [r[3] for r in rows])
    data = torch.tensor([r[1] for r in rows], dtype=torch.float32).reshape(-1, 4)
    return BoundingBoxes(data, "xyxy", shape, ids, class_names=class_names)


# Points (Deep Plant Phenomics) ---------------------------------------------------------------


def _points(coordinates: list[float], shape: tuple[int, int, int], pixel_indices: bool) -> Points:
    data = torch.tensor(coordinates, dtype=torch.float64).reshape(-1, 2)
    return Points(data + (0.5 if pixel_indices else 0.0), shape)


def read_points_csv(
    path: TypePath, spatial_shape: Sequence[int] | Image, *, image: str | None = None, pixel_indices: bool = True
) -> Points:
    """Points of one image from a Deep Plant Phenomics CSV: ``image_name,x1,y1,x2,y2,...`` rows.

    Args:
        path: The CSV file (no header; an image without points has no coordinates).
        spatial_shape: The image's ``(I, J)``, or the image.
        image: The row to read, by name or stem; ``None``: the file must have one row.
        pixel_indices: Coordinates are pixel indices, read as pixel centres (``+ 0.5``).

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'points.csv'
        ...     _ = path.write_text('a.png,1,2,5,0\\nb.png\\n')
        ...     read_points_csv(path, (8, 6), image='a').data.tolist()
        [[1.5, 2.5], [5.5, 0.5]]
    """
    shape = _canvas_2d(spatial_shape, path)
    found: list[tuple[str, list[float]]] = []
    for number, fields in enumerate(csv.reader(io.StringIO(_read_text(path), newline="")), start=1):
        while fields and not fields[-1].strip():
            fields = fields[:-1]
        if not fields:
            continue
        name, values = fields[0].strip(), fields[1:]
        if image is not None and not _matches(name, image):
            continue
        where = f"line {number}"
        if len(values) % 2:
            raise ValueError(f"{str(path)!r}, {where}: {len(values)} coordinates, expected pairs x,y")
        found.append((name, [_number(v, path, where, "a coordinate") for v in values]))
    if len(found) != 1:
        wanted = "rows" if image is None else f"rows for image {image!r}"
        raise ValueError(f"{str(path)!r}: found {len(found)} {wanted}; expected exactly one (pass image=)")
    return _points(found[0][1], shape, pixel_indices)


def read_points_json(path: TypePath, spatial_shape: Sequence[int] | Image, *, pixel_indices: bool = True) -> Points:
    """Points of a Deep Plant Phenomics ``.json`` file: ``{"x": {"0": x1, ...}, "y": {"0": y1, ...}}``.

    The ``x`` and ``y`` objects (a pandas ``to_json``) must have the same
    keys; lists ``{"x": [...], "y": [...]}`` are accepted too.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'a.json'
        ...     _ = path.write_text('{"x": {"0": 1, "1": 5}, "y": {"0": 2, "1": 0}}')
        ...     read_points_json(path, (8, 6)).data.tolist()
        [[1.5, 2.5], [5.5, 0.5]]
    """
    shape = _canvas_2d(spatial_shape, path)
    content = _load_json(path)
    if not isinstance(content, dict) or "x" not in content or "y" not in content:
        raise ValueError(f"{str(path)!r}: expected an object with 'x' and 'y' entries")
    xs, ys = content["x"], content["y"]
    if isinstance(xs, dict) and isinstance(ys, dict):
        if set(xs) != set(ys):
            raise ValueError(f"{str(path)!r}: 'x' and 'y' have different keys: {sorted(set(xs) ^ set(ys))[:5]}")
        pairs = [(key, xs[key], ys[key]) for key in xs]
    elif isinstance(xs, list) and isinstance(ys, list):
        if len(xs) != len(ys):
            raise ValueError(f"{str(path)!r}: 'x' has {len(xs)} values but 'y' has {len(ys)}")
        pairs = [(str(i), x, y) for i, (x, y) in enumerate(zip(xs, ys))]
    else:
        raise ValueError(f"{str(path)!r}: 'x' and 'y' must both be objects or both be lists")
    coordinates = []
    for key, x, y in pairs:
        if not (_is_number(x) and _is_number(y)):
            raise ValueError(f"{str(path)!r}, point {key!r}: coordinates must be numbers, got x={x!r}, y={y!r}")
        coordinates += [float(x), float(y)]
    return _points(coordinates, shape, pixel_indices)


def _points_2d(points: Points, what: str, pixel_indices: bool) -> list[float]:
    if not isinstance(points, Points):
        raise TypeError(f"{what} needs Points, got {type(points).__name__}")
    if points.ndim != 2:
        raise ValueError(f"{what} writes 2D points, got 3D points")
    data = points.data.to(torch.float64)
    values = torch.floor(data) if pixel_indices else data
    return values.flatten().tolist()


def write_points_csv(path: TypePath, points_by_image: Mapping[str, Points], *, pixel_indices: bool = True) -> None:
    """Write 2D points as a Deep Plant Phenomics CSV, one row per image.

    With ``pixel_indices`` each point is written as the integer index of the
    pixel that holds it (``floor``), as Deep Plant Phenomics reads them.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'points.csv'
        ...     write_points_csv(path, {'a.png': Points([[1.5, 2.5], [5.5, 0.5]], (8, 6)), 'b.png': Points([], (8, 6))})
        ...     path.read_text()
        'a.png,1,2,5,0\\nb.png\\n'
    """
    if not isinstance(points_by_image, Mapping):
        raise TypeError(f"points_by_image must be a dict {{image_name: Points}}, got {type(points_by_image).__name__}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for name, points in points_by_image.items():
        values = _points_2d(points, f"write_points_csv (image {name!r})", pixel_indices)
        writer.writerow([str(name), *(str(int(v)) if pixel_indices else _format(v) for v in values)])
    _atomic_write(path, buffer.getvalue())


def write_points_json(path: TypePath, points: Points, *, pixel_indices: bool = True) -> None:
    """Write 2D points as a Deep Plant Phenomics ``.json`` file (``{"x": {...}, "y": {...}}``).

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / 'a.json'
        ...     write_points_json(path, Points([[1.5, 2.5]], (8, 6)))
        ...     path.read_text()
        '{"x": {"0": 1}, "y": {"0": 2}}\\n'
    """
    values = np.asarray(_points_2d(points, "write_points_json", pixel_indices)).reshape(-1, 2)
    cast = int if pixel_indices else float
    content = {
        "x": {str(i): cast(v) for i, v in enumerate(values[:, 0].tolist())},
        "y": {str(i): cast(v) for i, v in enumerate(values[:, 1].tolist())},
    }
    _atomic_write(path, json.dumps(content, allow_nan=False) + "\n")


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
