"""Pascal VOC XML files: ``<object><name>`` and ``<bndbox>`` with 1-based inclusive pixel corners.

XML with a ``DOCTYPE`` or ``ENTITY`` declaration is refused (entity expansion
attacks), and the text is checked before the parser sees it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping

import torch

from ...typing import TypePath
from ..boxes import BoundingBoxes
from ._parsing import check_box, number_classes, parse_number, read_text

_DECLARATION = re.compile(r"<!\s*(doctype|entity)", re.IGNORECASE)


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
    text = read_text(path)
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
    width = parse_number(_xml_text(size, "width", path, "<size>"), path, "<size>", "width")
    height = parse_number(_xml_text(size, "height", path, "<size>"), path, "<size>", "height")
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
            parse_number(_xml_text(box, t, path, where), path, where, t) for t in ("xmin", "ymin", "xmax", "ymax")
        )
        corners = (x0 - shift, y0 - shift, x1, y1)
        check_box(corners, path, where)
        rows.append(corners)
        wheres.append(where)
    ids, class_names = number_classes(names, class_to_id, path, wheres)
    data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    return BoundingBoxes(data, "xyxy", (int(width), int(height)), ids, class_names=class_names)


__all__ = ["read_voc"]
