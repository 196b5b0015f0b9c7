"""COCO JSON files: ``images``, ``annotations`` (``bbox = [x, y, w, h]``) and ``categories``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from ...io.atomic import write_atomic
from ...typing import TypePath
from ..boxes import BoundingBoxes
from ._parsing import boxes_2d, check_box, is_number, load_json, names_image, parse_class_id


def _select_image(images: list[Any], image_id: Any, file_name: str | None, path: TypePath) -> dict[str, Any]:
    if image_id is not None:
        found = [im for im in images if isinstance(im, dict) and im.get("id") == image_id]
        wanted = f"id {image_id!r}"
    elif file_name is not None:
        found = [im for im in images if isinstance(im, dict) and names_image(str(im.get("file_name", "")), file_name)]
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
    content = load_json(path)
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
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
            raise ValueError(f"{str(path)!r}, {where}: bbox must be [x, y, w, h] numbers, got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        corners = (x, y, x + w, y + h)
        check_box(corners, path, where)
        rows.append(corners)
        ids.append(parse_class_id(entry.get("category_id"), path, where))
        if "score" in entry:
            if not is_number(entry["score"]):
                raise ValueError(f"{str(path)!r}, {where}: score must be a number, got {entry['score']!r}")
            scores.append(float(entry["score"]))
    if scores and len(scores) != len(rows):
        raise ValueError(f"{str(path)!r}: some annotations of image {image.get('id')!r} have a score and others not")
    class_names: dict[int, str] = {}
    for index, category in enumerate(content.get("categories", [])):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str):
            raise ValueError(f"{str(path)!r}, categories[{index}]: needs an integer id and a str name")
        class_names[parse_class_id(category.get("id"), path, f"categories[{index}]")] = category["name"]
    data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    return BoundingBoxes(data, "xyxy", (width, height), ids, scores or None, class_names=class_names or None)


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
        boxes = boxes_2d(value, f"write_coco (image {name!r})")
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
    write_atomic(path, json.dumps(content, indent=1, allow_nan=False) + "\n")


__all__ = ["read_coco", "write_coco"]
