"""Defensive parsing shared by the annotation readers and writers of :mod:`torchpatch.annotations.formats`.

Internal (hence the underscore in the module name): the names are public only
so that the format modules can share them. Every error names the file and the
line or entry that is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...image import Image
from ...typing import TypePath
from ..boxes import BoundingBoxes


def read_text(path: TypePath) -> str:
    """The UTF-8 text of an annotation file (a BOM is dropped)."""
    file = Path(path)
    try:
        return file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file {str(file)!r} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"annotation file {str(file)!r} is not UTF-8 text: {error}") from error


def parse_number(text: str, path: TypePath, where: str, what: str) -> float:
    """A finite float from ``text``; ``where`` and ``what`` say which one in errors."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{str(path)!r}, {where}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{str(path)!r}, {where}: {what} must be finite, got {text!r}")
    return value


def parse_class_id(value: Any, path: TypePath, where: str) -> int:
    """An integer class id ``>= 0`` from a number or its text."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(value, str):
        number = parse_number(value, path, where, "the class id")
    if number is None or number != int(number) or number < 0:
        raise ValueError(f"{str(path)!r}, {where}: the class id must be an integer >= 0, got {value!r}")
    return int(number)


def canvas_2d(spatial_shape: Sequence[int] | Image, path: TypePath) -> tuple[int, int, int]:
    """The depth-one canvas ``(I, J, 1)`` of a 2D image or its shape."""
    shape = tuple(spatial_shape.spatial_shape) if isinstance(spatial_shape, Image) else tuple(spatial_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[2] != 1:
        raise ValueError(
            f"boxes and points of {str(path)!r} are 2D: spatial_shape must be (I, J) or (I, J, 1), got {shape}"
        )
    return (int(shape[0]), int(shape[1]), 1)


def check_box(corners: Sequence[float], path: TypePath, where: str) -> None:
    """Refuse a box ``(x0, y0, x1, y1)`` without positive width and height."""
    if not (corners[2] > corners[0] and corners[3] > corners[1]):
        raise ValueError(f"{str(path)!r}, {where}: the box {list(corners)} must have positive width and height")


def number_classes(
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


def format_number(value: float) -> str:
    """A number as written in the text formats (10 significant digits)."""
    return f"{value:.10g}"


def names_image(name: str, image: str) -> bool:
    """Whether a file name in an annotation file refers to ``image`` (same name, or same stem)."""
    return name == image or Path(name).name == Path(image).name or Path(name).stem == Path(image).stem


def boxes_2d(boxes: BoundingBoxes, what: str) -> BoundingBoxes:
    """The 2D boxes a writer writes, in ``xyxy``."""
    if not isinstance(boxes, BoundingBoxes):
        raise TypeError(f"{what} needs BoundingBoxes, got {type(boxes).__name__}")
    if boxes.ndim != 2:
        raise ValueError(f"{what} writes 2D boxes, got 3D boxes ({boxes.format})")
    return boxes.to_xyxy()


def load_json(path: TypePath) -> Any:
    """The content of a JSON file; NaN and Infinity are refused."""
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=lambda name: _reject_constant(name, path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error
    except RecursionError:
        raise ValueError(f"{str(path)!r}: JSON nested too deeply") from None


def _reject_constant(name: str, path: TypePath) -> None:
    raise ValueError(f"{str(path)!r}: JSON holds {name}, which is not a number")


def is_number(value: Any) -> bool:
    """Whether a parsed JSON value is a finite number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "boxes_2d",
    "canvas_2d",
    "check_box",
    "format_number",
    "is_number",
    "load_json",
    "names_image",
    "number_classes",
    "parse_class_id",
    "parse_number",
    "read_text",
]
