"""Points of Deep Plant Phenomics: a CSV of ``image_name,x1,y1,x2,y2,...`` rows, or a JSON file per image.

Deep Plant Phenomics (``load_heatmap_dataset_with_csv_from_directory`` and
``..._with_json_files_from_directory``) stores points as integer pixel
indices; with ``pixel_indices=True`` (default) they are read as the centres of
those pixels (``x + 0.5``), so each point lies in the pixel meant, and written
back as ``floor(x)``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ...image import Image
from ...io.atomic import write_atomic
from ...typing import TypePath
from ..points import Points
from ._parsing import canvas_2d, format_number, is_number, load_json, names_image, parse_number, read_text


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
    shape = canvas_2d(spatial_shape, path)
    found: list[tuple[str, list[float]]] = []
    for number, fields in enumerate(csv.reader(io.StringIO(read_text(path), newline="")), start=1):
        while fields and not fields[-1].strip():
            fields = fields[:-1]
        if not fields:
            continue
        name, values = fields[0].strip(), fields[1:]
        if image is not None and not names_image(name, image):
            continue
        where = f"line {number}"
        if len(values) % 2:
            raise ValueError(f"{str(path)!r}, {where}: {len(values)} coordinates, expected pairs x,y")
        found.append((name, [parse_number(v, path, where, "a coordinate") for v in values]))
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
    shape = canvas_2d(spatial_shape, path)
    content = load_json(path)
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
        if not (is_number(x) and is_number(y)):
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
        writer.writerow([str(name), *(str(int(v)) if pixel_indices else format_number(v) for v in values)])
    write_atomic(path, buffer.getvalue())


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
    write_atomic(path, json.dumps(content, allow_nan=False) + "\n")


__all__ = ["read_points_csv", "read_points_json", "write_points_csv", "write_points_json"]
