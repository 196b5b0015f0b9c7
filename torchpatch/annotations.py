"""Boxes and points in voxel coordinates, 2D and 3D, that follow patches.

:class:`BoundingBoxes` and :class:`Points` are plain metadata of a
:class:`~torchpatch.subject.Subject`. They implement the
:class:`~torchpatch.subject.RegionAware` protocol, so every sampler (which
cuts patches with :meth:`Subject.crop <torchpatch.subject.Subject.crop>`)
hands each patch its annotations in patch coordinates, and the crop/pad and
spatial transforms carry them along.

Coordinates are continuous positions along the voxel axes ``(I, J, K)``,
where voxel ``v`` covers ``[v, v + 1)`` and has its centre at ``v + 0.5``
(the convention of torchvision boxes)::

    voxel      0       1       2       3
           |-------|-------|-------|-------|
    coord  0       1       2       3       4
           box (1, 3) in xyxy covers voxels 1 and 2: half-open [1, 3)
                   point 1.5 is the centre of voxel 1

On a 2D image (PNG, JPEG), ``x`` is the column and ``y`` the row, and
torchpatch loads the column along ``I`` and the row along ``J``: a box
``(xmin, ymin, xmax, ymax)`` in pixels is ``(i0, j0, i1, j1)`` unchanged, and
a 2D annotation lives on a depth-one canvas (``k`` from 0 to 1).

Patch rules, for a region ``[index_ini, index_fin)`` (``index_ini`` may be
negative and ``index_fin`` beyond the canvas when patches are padded):

- boxes are clipped to the region and kept when their visible fraction
  (clipped volume over whole volume) is at least ``min_visibility``, and
  positive (the default ``0.0`` keeps every box that overlaps the region);
- points are kept when ``index_ini <= p < index_fin`` on every axis, so a
  point exactly on a tile border belongs to the tile that starts there and
  each point lands in exactly one tile of a non-overlapping grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from numbers import Integral
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .subject import RegionAware, Subject
from .typing import TypeAffine, TypeTriplet

#: Box formats of 2D boxes (4 numbers) and of 3D boxes (6 numbers).
BOX_FORMATS_2D = ("xyxy", "xywh", "cxcywh")
BOX_FORMATS_3D = ("xyzxyz", "xyzwhd", "cxcyczwhd")
#: The corner format of each dimensionality.
CORNER_FORMAT = {2: "xyxy", 3: "xyzxyz"}

#: Slack, in voxels, when checking that a 2D annotation stays on its depth-one slice.
_TOLERANCE = 1e-6


@runtime_checkable
class VoxelMappable(Protocol):
    """Metadata that can follow a change of voxel grid (ToCanonical, Resample).

    ``map_voxels(matrix, spatial_shape)`` returns the value on the new grid;
    ``matrix`` maps old voxel indices (integers at voxel centres) to new ones.

    Example:
        >>> points = Points([[1.5, 2.5]], (4, 4))
        >>> isinstance(points, VoxelMappable)
        True
        >>> flip_i = np.array([[-1.0, 0, 0, 3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # i -> 3 - i
        >>> points.map_voxels(flip_i, (4, 4, 1)).data.tolist()
        [[2.5, 2.5]]
    """

    def map_voxels(self, matrix: Any, spatial_shape: Sequence[int]) -> Any:
        """The value on a new grid of ``spatial_shape``."""
        ...


# Parsing helpers -------------------------------------------------------------------------


def _parse_canvas(spatial_shape: Any, owner: str) -> TypeTriplet:
    if isinstance(spatial_shape, (str, bytes)) or not isinstance(spatial_shape, (Sequence, np.ndarray, torch.Size)):
        raise TypeError(f"spatial_shape of {owner} must be two or three ints, got {type(spatial_shape).__name__}")
    items = list(spatial_shape)
    if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in items):
        raise TypeError(f"spatial_shape of {owner} must hold ints, got {tuple(items)}")
    if len(items) == 2:
        items.append(1)
    if len(items) != 3:
        raise ValueError(f"spatial_shape of {owner} must have two (I, J) or three (I, J, K) values, got {tuple(items)}")
    if min(items) < 1:
        raise ValueError(f"spatial_shape of {owner} must be positive, got {tuple(items)}")
    return (int(items[0]), int(items[1]), int(items[2]))


def _as_float_tensor(data: Any, what: str) -> torch.Tensor:
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    elif not isinstance(data, torch.Tensor):
        try:
            data = torch.as_tensor(data)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{what} must be a tensor, an array or nested lists of numbers: {error}") from error
    if data.dtype == torch.bool or data.is_complex():
        raise TypeError(f"{what} must hold real numbers, got {data.dtype}")
    if data.dtype != torch.float64:
        data = data.to(torch.float32)
    if data.numel() and not bool(torch.isfinite(data).all()):
        raise ValueError(f"{what} holds NaN or infinite values")
    return data


def _parse_class_ids(class_ids: Any, count: int, owner: str) -> torch.Tensor | None:
    if class_ids is None:
        return None
    try:
        tensor = class_ids if isinstance(class_ids, torch.Tensor) else torch.as_tensor(np.asarray(class_ids))
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"class_ids of {owner} must be integers, got {class_ids!r}") from error
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"class_ids of {owner} must be integers, got {tensor.dtype}")
    if tensor.is_floating_point() and not bool((torch.isfinite(tensor) & (tensor == tensor.round())).all()):
        raise TypeError(f"class_ids of {owner} must be integers, got non-integer values {tensor.tolist()[:5]}")
    tensor = tensor.to(torch.int64)
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    if tuple(tensor.shape) != (count,):
        raise ValueError(f"class_ids of {owner} must have shape ({count},) (one per object), got {tuple(tensor.shape)}")
    return tensor


def _parse_scores(scores: Any, count: int, owner: str) -> torch.Tensor | None:
    if scores is None:
        return None
    tensor = _as_float_tensor(scores, f"scores of {owner}")
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    if tuple(tensor.shape) != (count,):
        raise ValueError(f"scores of {owner} must have shape ({count},) (one per box), got {tuple(tensor.shape)}")
    return tensor


def _parse_class_names(class_names: Any, owner: str) -> dict[int, str] | None:
    if class_names is None:
        return None
    if isinstance(class_names, Mapping):
        items = list(class_names.items())
    elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
        items = list(enumerate(class_names))
    else:
        raise TypeError(f"class_names of {owner} must be a dict {{id: name}} or a list of names, got {class_names!r}")
    parsed: dict[int, str] = {}
    for key, name in items:
        if isinstance(key, bool) or not isinstance(key, Integral) or not isinstance(name, str):
            raise TypeError(f"class_names of {owner} must map int ids to str names, got {key!r}: {name!r}")
        parsed[int(key)] = name
    return parsed


def _parse_region(index_ini: Sequence[int], index_fin: Sequence[int]) -> tuple[TypeTriplet, TypeTriplet]:
    ini, fin = list(index_ini), list(index_fin)
    if len(ini) != 3 or len(fin) != 3:
        raise ValueError(f"a region needs three ints per corner, got {tuple(ini)} -> {tuple(fin)}")
    if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in (*ini, *fin)):
        raise TypeError(f"region corners must be ints, got {tuple(ini)} -> {tuple(fin)}")
    if any(int(a) >= int(b) for a, b in zip(ini, fin)):
        raise ValueError(f"region {tuple(ini)} -> {tuple(fin)} is empty: need index_ini < index_fin on every axis")
    return (int(ini[0]), int(ini[1]), int(ini[2])), (int(fin[0]), int(fin[1]), int(fin[2]))


def _check_depth_one_region(ini: TypeTriplet, fin: TypeTriplet, owner: str) -> None:
    if ini[2] != 0 or fin[2] != 1:
        raise ValueError(
            f"{owner} are 2D and live on a depth-one canvas (k from 0 to 1), but the region {ini} -> {fin} "
            f"spans k from {ini[2]} to {fin[2]}; convert them with .to_3d() first"
        )


def _parse_matrix(matrix: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    array = np.asarray(matrix, dtype=np.float64)
    if array.shape != (4, 4) or not np.all(np.isfinite(array)):
        raise ValueError(f"matrix must be a finite 4x4 voxel-to-voxel affine, got shape {array.shape}")
    return array


def _map_positions(positions: torch.Tensor, matrix: np.ndarray[Any, Any]) -> torch.Tensor:
    """Positions (N, 3) in our edge coordinates through a voxel-index affine (centres at integers)."""
    block = torch.from_numpy(matrix[:3, :3]).to(torch.float64)
    offset = torch.from_numpy(matrix[:3, 3]).to(torch.float64)
    centred = positions.to(torch.float64) - 0.5
    return centred @ block.T + offset + 0.5


def _lift_checked(mapped: torch.Tensor, low: torch.Tensor, high: torch.Tensor, shape: TypeTriplet, owner: str) -> None:
    """Check that 2D annotations mapped to a new grid stay on a depth-one slice."""
    if shape[2] != 1 or (mapped.numel() and (low.abs().max() > _TOLERANCE or (high - 1).abs().max() > _TOLERANCE)):
        raise ValueError(
            f"{owner} are 2D but the new grid {shape} does not keep the depth-one axis along K; "
            f"convert them with .to_3d() before reorienting or resampling"
        )


def _select(value: torch.Tensor | None, index: Any) -> torch.Tensor | None:
    return None if value is None else value[index]


def _index_to_tensor(index: Any, count: int) -> Any:
    if isinstance(index, Integral) and not isinstance(index, bool):
        position = int(index)
        if not -count <= position < count:
            raise IndexError(f"index {position} is out of range for {count} objects")
        return slice(position % count, position % count + 1)
    if isinstance(index, (list, np.ndarray)):
        return torch.as_tensor(np.asarray(index))
    return index


# Boxes -------------------------------------------------------------------------------------


def _parse_format(box_format: Any) -> str:
    if not isinstance(box_format, str):
        raise TypeError(f"box format must be a str, got {type(box_format).__name__} {box_format!r}")
    name = box_format.lower()
    if name not in (*BOX_FORMATS_2D, *BOX_FORMATS_3D):
        raise ValueError(
            f"unknown box format {box_format!r}; 2D formats: {list(BOX_FORMATS_2D)}, 3D formats: {list(BOX_FORMATS_3D)}"
        )
    return name


def _format_ndim(box_format: str) -> int:
    return 2 if box_format in BOX_FORMATS_2D else 3


def to_corners(data: torch.Tensor, box_format: str) -> torch.Tensor:
    """Boxes ``(N, 2 * ndim)`` of ``box_format`` as corners ``(min..., max...)``.

    Example:
        >>> to_corners(torch.tensor([[2.0, 3.0, 4.0, 2.0]]), 'cxcywh').tolist()
        [[0.0, 2.0, 4.0, 4.0]]
    """
    box_format = _parse_format(box_format)
    ndim = _format_ndim(box_format)
    first, second = data[:, :ndim], data[:, ndim:]
    if box_format in ("xyxy", "xyzxyz"):
        return data.clone()
    if box_format in ("xywh", "xyzwhd"):
        return torch.cat([first, first + second], dim=1)
    return torch.cat([first - second / 2, first + second / 2], dim=1)


def from_corners(corners: torch.Tensor, box_format: str) -> torch.Tensor:
    """Corners ``(min..., max...)`` as boxes of ``box_format``.

    Example:
        >>> from_corners(torch.tensor([[0.0, 2.0, 4.0, 4.0]]), 'xywh').tolist()
        [[0.0, 2.0, 4.0, 2.0]]
    """
    box_format = _parse_format(box_format)
    ndim = _format_ndim(box_format)
    low, high = corners[:, :ndim], corners[:, ndim:]
    if box_format in ("xyxy", "xyzxyz"):
        return corners.clone()
    if box_format in ("xywh", "xyzwhd"):
        return torch.cat([low, high - low], dim=1)
    return torch.cat([(low + high) / 2, high - low], dim=1)


class BoundingBoxes:
    """Axis-aligned boxes on a voxel canvas, with their format and classes.

    Args:
        data: ``(N, 4)`` for 2D formats or ``(N, 6)`` for 3D formats (one box
            of shape ``(4,)``/``(6,)`` is accepted). Integers become float32;
            float64 stays float64.
        format: ``'xyxy'``, ``'xywh'``, ``'cxcywh'`` (2D: ``x`` along ``I``,
            ``y`` along ``J``) or ``'xyzxyz'``, ``'xyzwhd'``,
            ``'cxcyczwhd'`` (3D, ``z`` along ``K``).
        spatial_shape: The canvas ``(I, J, K)`` the boxes live on: the spatial
            shape of the subject's images. ``(I, J)`` means ``(I, J, 1)``;
            2D boxes need ``K = 1``.
        class_ids: ``(N,)`` integer classes, or ``None``.
        scores: ``(N,)`` confidences (detector outputs), or ``None``.
        class_names: ``{id: name}`` (or a list, index = id), or ``None``.
        min_visibility: A box cut by a patch is kept when its visible fraction
            is at least this (and positive); ``0.0`` keeps every box that
            overlaps the patch, ``1.0`` only whole boxes.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: For an unknown format, a wrong number of columns, NaN,
            boxes of zero or negative size, a 2D box on a deep canvas, or
            ``min_visibility`` outside ``[0, 1]``.

    Example:
        >>> boxes = BoundingBoxes([[1, 1, 3, 4]], 'xyxy', (8, 8), class_ids=[2])
        >>> len(boxes), boxes.spatial_shape, boxes.convert('cxcywh').data.tolist()
        (1, (8, 8, 1), [[2.0, 2.5, 2.0, 3.0]])
        >>> patch = boxes.crop_to_region((2, 0, 0), (6, 6, 1))
        >>> patch.data.tolist(), patch.spatial_shape, patch.class_ids.tolist()
        ([[0.0, 1.0, 1.0, 4.0]], (4, 6, 1), [2])
    """

    def __init__(
        self,
        data: Any,
        format: str,  # noqa: A002 - torchvision's argument name
        spatial_shape: Sequence[int],
        class_ids: Any = None,
        scores: Any = None,
        *,
        class_names: Mapping[int, str] | Sequence[str] | None = None,
        min_visibility: float = 0.0,
    ) -> None:
        self.format = _parse_format(format)
        self.ndim = _format_ndim(self.format)
        owner = f"BoundingBoxes ({self.format})"
        self.spatial_shape = _parse_canvas(spatial_shape, owner)
        if self.ndim == 2 and self.spatial_shape[2] != 1:
            raise ValueError(
                f"2D boxes ({self.format}) live on a depth-one canvas, got spatial_shape {self.spatial_shape}; "
                f"use a 3D format ({', '.join(BOX_FORMATS_3D)}) on volumes"
            )
        tensor = _as_float_tensor(data, f"data of {owner}")
        width = 2 * self.ndim
        if tensor.numel() == 0:
            tensor = tensor.reshape(0, width)
        elif tensor.ndim == 1 and tensor.shape[0] == width:
            tensor = tensor.reshape(1, width)
        if tensor.ndim != 2 or tensor.shape[1] != width:
            raise ValueError(
                f"data of {owner} must have shape (N, {width}), got {tuple(tensor.shape)} "
                f"({tensor.ndim}D); 2D formats take 4 numbers per box, 3D formats 6"
            )
        self.data = tensor
        sizes = self.sizes()
        if sizes.numel() and not bool((sizes > 0).all()):
            row = int(torch.nonzero((sizes <= 0).any(dim=1))[0, 0])
            raise ValueError(
                f"box {row} of {owner} has a size that is not positive: {tensor[row].tolist()} "
                f"(sizes {sizes[row].tolist()}); boxes need max > min on every axis"
            )
        self.class_ids = _parse_class_ids(class_ids, len(tensor), owner)
        self.scores = _parse_scores(scores, len(tensor), owner)
        self.class_names = _parse_class_names(class_names, owner)
        if isinstance(min_visibility, bool) or not isinstance(min_visibility, (int, float)):
            raise TypeError(f"min_visibility must be a number in [0, 1], got {min_visibility!r}")
        if not 0.0 <= float(min_visibility) <= 1.0:
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility!r}")
        self.min_visibility = float(min_visibility)

    def _new(
        self, data: torch.Tensor, spatial_shape: TypeTriplet, index: Any = None, box_format: str = ""
    ) -> BoundingBoxes:
        """A copy with new coordinates (already valid), keeping the rows ``index`` of the other fields."""
        new = object.__new__(BoundingBoxes)
        new.__dict__.update(self.__dict__)
        new.format = box_format or self.format
        new.ndim = _format_ndim(new.format)
        new.data = data
        new.spatial_shape = spatial_shape
        if index is not None:
            new.class_ids = _select(self.class_ids, index)
            new.scores = _select(self.scores, index)
        return new

    # Access -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> BoundingBoxes:
        """The boxes selected by an int, slice, bool mask or index list."""
        index = _index_to_tensor(index, len(self))
        return self._new(self.data[index], self.spatial_shape, index)

    def __repr__(self) -> str:
        classes = "" if self.class_ids is None else f", classes {sorted(set(self.class_ids.tolist()))}"
        return (
            f"BoundingBoxes({len(self)} boxes, format={self.format!r}, spatial_shape={self.spatial_shape}"
            f"{classes}{', scores' if self.scores is not None else ''}, min_visibility={self.min_visibility})"
        )

    def convert(self, format: str) -> BoundingBoxes:  # noqa: A002 - torchvision's argument name
        """The same boxes in another format of the same dimensionality.

        Example:
            >>> BoundingBoxes([[0, 0, 2, 4]], 'xyxy', (4, 4)).convert('xywh').data.tolist()
            [[0.0, 0.0, 2.0, 4.0]]
        """
        target = _parse_format(format)
        if _format_ndim(target) != self.ndim:
            raise ValueError(f"cannot convert {self.ndim}D boxes ({self.format}) to {target!r}; use .to_3d() first")
        if target == self.format:
            return self._new(self.data.clone(), self.spatial_shape)
        return self._new(
            from_corners(to_corners(self.data, self.format), target), self.spatial_shape, box_format=target
        )

    def to_xyxy(self) -> BoundingBoxes:
        """The boxes in corner format: ``xyxy`` (2D) or ``xyzxyz`` (3D)."""
        return self.convert(CORNER_FORMAT[self.ndim])

    def corners(self) -> torch.Tensor:
        """``(N, 2 * ndim)`` tensor of ``(min..., max...)`` corners."""
        return to_corners(self.data, self.format)

    def centers(self) -> torch.Tensor:
        """``(N, ndim)`` box centres.

        Example:
            >>> BoundingBoxes([[0, 0, 2, 4]], 'xyxy', (4, 4)).centers().tolist()
            [[1.0, 2.0]]
        """
        corners = self.corners()
        return (corners[:, : self.ndim] + corners[:, self.ndim :]) / 2

    def sizes(self) -> torch.Tensor:
        """``(N, ndim)`` box extents along each axis."""
        corners = self.corners()
        return corners[:, self.ndim :] - corners[:, : self.ndim]

    def volumes(self) -> torch.Tensor:
        """``(N,)`` box areas (2D) or volumes (3D), in voxels."""
        return self.sizes().prod(dim=1)

    def to_3d(self) -> BoundingBoxes:
        """3D boxes (``xyzxyz``) on the same canvas; 2D boxes span ``k`` from 0 to 1.

        Example:
            >>> BoundingBoxes([[0, 0, 2, 4]], 'xyxy', (4, 4)).to_3d().data.tolist()
            [[0.0, 0.0, 0.0, 2.0, 4.0, 1.0]]
        """
        corners = self.corners()
        if self.ndim == 3:
            return self._new(corners, self.spatial_shape, box_format="xyzxyz")
        count = len(self)
        zeros = torch.zeros(count, 1, dtype=corners.dtype)
        lifted = torch.cat([corners[:, :2], zeros, corners[:, 2:], zeros + 1], dim=1)
        return self._new(lifted, self.spatial_shape, box_format="xyzxyz")

    # Geometry -----------------------------------------------------------------------------

    def crop_to_region(self, index_ini: Sequence[int], index_fin: Sequence[int]) -> BoundingBoxes:
        """The boxes seen by the region ``[index_ini, index_fin)``, in its coordinates.

        Boxes are clipped to the region and kept when their visible fraction
        is positive and at least ``min_visibility``. ``index_ini`` may be
        negative (padding).

        Example:
            >>> boxes = BoundingBoxes([[0, 0, 4, 4], [6, 6, 8, 8]], 'xyxy', (8, 8), min_visibility=0.5)
            >>> boxes.crop_to_region((-2, 2, 0), (6, 6, 1)).data.tolist()
            [[2.0, 0.0, 6.0, 2.0]]
        """
        ini, fin = _parse_region(index_ini, index_fin)
        if self.ndim == 2:
            _check_depth_one_region(ini, fin, "these boxes")
        nd = self.ndim
        corners = self.corners()
        low_bound = torch.tensor(ini[:nd], dtype=corners.dtype)
        high_bound = torch.tensor(fin[:nd], dtype=corners.dtype)
        low = torch.maximum(corners[:, :nd], low_bound)
        high = torch.minimum(corners[:, nd:], high_bound)
        # Measured before shifting, so a whole box is exactly as large as itself.
        visible = (high - low).clamp(min=0).prod(dim=1)
        whole = (corners[:, nd:] - corners[:, :nd]).prod(dim=1)
        shifted = torch.cat([low - low_bound, high - low_bound], dim=1)
        # A sliver can round to nothing once shifted: such boxes are dropped too.
        positive = (shifted[:, nd:] > shifted[:, :nd]).all(dim=1)
        keep = (visible > 0) & (visible >= whole * self.min_visibility) & positive
        shifted = shifted[keep]
        shape = (fin[0] - ini[0], fin[1] - ini[1], fin[2] - ini[2])
        return self._new(from_corners(shifted, self.format), shape, keep)

    def map_voxels(self, matrix: Any, spatial_shape: Sequence[int]) -> BoundingBoxes:
        """The boxes on a new voxel grid: each box's corners mapped, then their min and max.

        Exact for permutations, flips and scalings (ToCanonical, Resample to a
        spacing); an oblique map gives the axis-aligned box around the mapped one.

        Args:
            matrix: 4x4 affine from old voxel indices to new ones (integers at
                voxel centres), e.g. ``inv(new_affine) @ old_affine``.
            spatial_shape: The new canvas.

        Example:
            >>> flip = np.array([[-1.0, 0, 0, 7], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            >>> BoundingBoxes([[0, 0, 2, 4]], 'xyxy', (8, 8)).map_voxels(flip, (8, 8, 1)).data.tolist()
            [[6.0, 0.0, 8.0, 4.0]]
        """
        array = _parse_matrix(matrix)
        shape = _parse_canvas(spatial_shape, "the new grid")
        corners = self.to_3d().corners().to(torch.float64)
        choices = torch.tensor(list(product((0, 1), repeat=3)), dtype=torch.int64)  # 8 corners of each box
        positions = torch.stack([corners[:, choices[:, a] * 3 + a] for a in range(3)], dim=-1)  # (N, 8, 3)
        mapped = _map_positions(positions.reshape(-1, 3), array).reshape(-1, 8, 3)
        low, high = mapped.min(dim=1).values, mapped.max(dim=1).values
        if self.ndim == 2:
            _lift_checked(mapped, low[:, 2], high[:, 2], shape, "these boxes")
            new_corners = torch.cat([low[:, :2], high[:, :2]], dim=1)
        else:
            new_corners = torch.cat([low, high], dim=1)
        new_corners = new_corners.to(self.data.dtype)
        return self._new(from_corners(new_corners, self.format), shape)


# Points ------------------------------------------------------------------------------------


class Points:
    """Points (object centres, landmarks) on a voxel canvas, with optional classes.

    A point ``p`` lies in voxel ``floor(p)``; the centre of voxel ``v`` is
    ``v + 0.5`` (see :meth:`from_indices`). Tools that store integer pixel
    indices (Deep Plant Phenomics) are read by
    :mod:`~torchpatch.annotations_io` as pixel centres.

    Args:
        data: ``(N, 2)`` (2D, ``x`` along ``I``, ``y`` along ``J``) or
            ``(N, 3)`` positions. Integers become float32; float64 stays.
        spatial_shape: The canvas ``(I, J, K)``; ``(I, J)`` means
            ``(I, J, 1)``. 2D points need ``K = 1``.
        class_ids: ``(N,)`` integer classes, or ``None``.
        class_names: ``{id: name}`` (or a list, index = id), or ``None``.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: For a wrong shape, NaN, or 2D points on a deep canvas.

    Example:
        >>> points = Points([[1.5, 2.5], [4.0, 0.5]], (8, 8))
        >>> len(points), points.ndim, points.voxel_indices().tolist()
        (2, 2, [[1, 2, 0], [4, 0, 0]])
        >>> points.crop_to_region((4, 0, 0), (8, 8, 1)).data.tolist()
        [[0.0, 0.5]]
    """

    def __init__(
        self,
        data: Any,
        spatial_shape: Sequence[int],
        class_ids: Any = None,
        *,
        class_names: Mapping[int, str] | Sequence[str] | None = None,
    ) -> None:
        self.spatial_shape = _parse_canvas(spatial_shape, "Points")
        tensor = _as_float_tensor(data, "data of Points")
        if tensor.numel() == 0 and tensor.ndim < 2:
            tensor = tensor.reshape(0, 2 if self.spatial_shape[2] == 1 else 3)
        if tensor.ndim == 1 and tensor.shape[0] in (2, 3):
            tensor = tensor.reshape(1, -1)
        if tensor.ndim != 2 or tensor.shape[1] not in (2, 3):
            raise ValueError(
                f"data of Points must have shape (N, 2) for 2D or (N, 3) for 3D points, got {tuple(tensor.shape)} "
                f"({tensor.ndim}D)"
            )
        self.ndim = int(tensor.shape[1])
        if self.ndim == 2 and self.spatial_shape[2] != 1:
            raise ValueError(
                f"2D points live on a depth-one canvas, got spatial_shape {self.spatial_shape}; give (N, 3) positions"
            )
        self.data = tensor
        self.class_ids = _parse_class_ids(class_ids, len(tensor), "Points")
        self.class_names = _parse_class_names(class_names, "Points")

    @classmethod
    def from_indices(cls, indices: Any, spatial_shape: Sequence[int], class_ids: Any = None, **kwargs: Any) -> Points:
        """Points at the centres of voxels given by integer indices (``index + 0.5``).

        Example:
            >>> Points.from_indices([[0, 3]], (4, 4)).data.tolist()
            [[0.5, 3.5]]
        """
        tensor = _as_float_tensor(indices, "indices of Points")
        return cls(tensor + 0.5, spatial_shape, class_ids, **kwargs)

    def _new(self, data: torch.Tensor, spatial_shape: TypeTriplet, index: Any = None) -> Points:
        new = object.__new__(Points)
        new.__dict__.update(self.__dict__)
        new.data = data
        new.ndim = int(data.shape[1])
        new.spatial_shape = spatial_shape
        if index is not None:
            new.class_ids = _select(self.class_ids, index)
        return new

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> Points:
        """The points selected by an int, slice, bool mask or index list."""
        index = _index_to_tensor(index, len(self))
        return self._new(self.data[index], self.spatial_shape, index)

    def __repr__(self) -> str:
        classes = "" if self.class_ids is None else f", classes {sorted(set(self.class_ids.tolist()))}"
        return f"Points({len(self)} {self.ndim}D points, spatial_shape={self.spatial_shape}{classes})"

    def to_3d(self) -> Points:
        """``(N, 3)`` points; 2D points get ``k = 0.5``, the middle of their slice."""
        if self.ndim == 3:
            return self._new(self.data.clone(), self.spatial_shape)
        k = torch.full((len(self), 1), 0.5, dtype=self.data.dtype)
        return self._new(torch.cat([self.data, k], dim=1), self.spatial_shape)

    def voxel_indices(self) -> torch.Tensor:
        """``(N, 3)`` int64 index of the voxel holding each point (``k = 0`` for 2D points)."""
        return torch.floor(self.to_3d().data).to(torch.int64)

    def crop_to_region(self, index_ini: Sequence[int], index_fin: Sequence[int]) -> Points:
        """The points inside ``[index_ini, index_fin)`` (half-open), in its coordinates.

        Example:
            >>> points = Points([[2.0, 0.0], [1.999, 0.0]], (4, 1))
            >>> points.crop_to_region((2, 0, 0), (4, 1, 1)).data.tolist()
            [[0.0, 0.0]]
        """
        ini, fin = _parse_region(index_ini, index_fin)
        if self.ndim == 2:
            _check_depth_one_region(ini, fin, "these points")
        nd = self.ndim
        low = torch.tensor(ini[:nd], dtype=self.data.dtype)
        high = torch.tensor(fin[:nd], dtype=self.data.dtype)
        keep = ((self.data >= low) & (self.data < high)).all(dim=1)
        shape = (fin[0] - ini[0], fin[1] - ini[1], fin[2] - ini[2])
        return self._new(self.data[keep] - low, shape, keep)

    def map_voxels(self, matrix: Any, spatial_shape: Sequence[int]) -> Points:
        """The points on a new voxel grid, mapped exactly.

        Args:
            matrix: 4x4 affine from old voxel indices to new ones (integers at
                voxel centres), e.g. ``inv(new_affine) @ old_affine``.
            spatial_shape: The new canvas.

        Example:
            >>> flip = np.array([[-1.0, 0, 0, 3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            >>> Points([[0.5, 1.0]], (4, 4)).map_voxels(flip, (4, 4, 1)).data.tolist()
            [[3.5, 1.0]]
        """
        array = _parse_matrix(matrix)
        shape = _parse_canvas(spatial_shape, "the new grid")
        mapped = _map_positions(self.to_3d().data, array)
        if self.ndim == 2:
            k = mapped[:, 2]
            _lift_checked(mapped, k - 0.5, k + 0.5, shape, "these points")
            mapped = mapped[:, :2]
        return self._new(mapped.to(self.data.dtype), shape)


# Helpers for transforms ---------------------------------------------------------------------


def region_aware_metadata(subject: Subject) -> dict[str, Any]:
    """The metadata of ``subject`` that lives in its voxel grid (boxes, points, ...).

    Example:
        >>> from torchpatch import ScalarImage
        >>> s = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), pts=Points([[1.0, 1.0]], (4, 4)), age=3)
        >>> list(region_aware_metadata(s))
        ['pts']
    """
    return {name: value for name, value in subject.metadata.items() if isinstance(value, RegionAware)}


def annotation_grid(
    subject: Subject, transformed: Sequence[str], transform: str, annotations: Mapping[str, Any]
) -> tuple[TypeTriplet, TypeAffine]:
    """The grid the annotations of ``subject`` live on, before a transform moves it.

    Annotations live on the grid shared by every image, so a transform that
    changes the grid must apply to every image, and the images must share one
    grid to begin with.

    Args:
        subject: The subject about to be transformed.
        transformed: Names of the images the transform changes.
        transform: The transform, for messages.
        annotations: The region-aware metadata, by name.

    Raises:
        ValueError: When some images are left out, the images do not share a
            grid, or an annotation's canvas is not that grid.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> image, seg = ScalarImage(tensor=torch.zeros(1, 4, 4, 1)), LabelMap(tensor=torch.zeros(1, 4, 4, 1))
        >>> points = Points([[1.5, 2.5]], (4, 4))
        >>> s = Subject(t1=image, seg=seg, pts=points)
        >>> shape, affine = annotation_grid(s, ['t1', 'seg'], 'ToCanonical', {'pts': points})
        >>> shape, affine.shape
        ((4, 4, 1), (4, 4))
        >>> annotation_grid(s, ['t1'], 'ToCanonical', {'pts': points})
        Traceback (most recent call last):
        ...
        ValueError: ToCanonical leaves the images ['seg'] of subject '<unnamed>' on their grid, ...
    """
    names = sorted(annotations)
    left_out = [name for name in subject.images if name not in transformed]
    if left_out:
        raise ValueError(
            f"{transform} leaves the images {left_out} of subject {subject.name!r} on their grid, but the subject "
            f"holds annotations {names} that live on the grid of all its images; apply it to every image "
            f"(no include/exclude) or remove the annotations first"
        )
    try:
        subject.check_consistent_space()
    except ValueError as error:
        raise ValueError(
            f"{transform} cannot tell which grid the annotations {names} of subject {subject.name!r} live on: {error}"
        ) from error
    first = subject.get_first_image()
    for name, value in annotations.items():
        canvas = getattr(value, "spatial_shape", None)
        if canvas is not None and tuple(canvas) != first.spatial_shape:
            raise ValueError(
                f"annotations {name!r} of subject {subject.name!r} live on a canvas of spatial shape {tuple(canvas)}, "
                f"but its images have spatial shape {first.spatial_shape}"
            )
    return first.spatial_shape, first.affine


def crop_annotations(
    annotations: Mapping[str, Any], index_ini: Sequence[int], index_fin: Sequence[int]
) -> dict[str, Any]:
    """Every annotation cropped to ``[index_ini, index_fin)`` (negative ``index_ini``: padding).

    Example:
        >>> points = Points([[1.5, 2.5], [3.5, 0.5]], (4, 4))
        >>> cropped = crop_annotations({'pts': points}, (2, 0, 0), (4, 4, 1))
        >>> cropped['pts'].data.tolist(), cropped['pts'].spatial_shape
        ([[1.5, 0.5]], (2, 4, 1))
    """
    ini, fin = tuple(int(v) for v in index_ini), tuple(int(v) for v in index_fin)
    return {name: value.crop_to_region(ini, fin) for name, value in annotations.items()}


def map_annotations(
    annotations: Mapping[str, Any], matrix: Any, spatial_shape: Sequence[int], transform: str
) -> dict[str, Any]:
    """Every annotation mapped onto a new grid; an error for those that cannot follow.

    Example:
        >>> flip_i = np.array([[-1.0, 0, 0, 3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # i -> 3 - i
        >>> boxes = BoundingBoxes([[0, 0, 1, 2]], 'xyxy', (4, 4))
        >>> map_annotations({'boxes': boxes}, flip_i, (4, 4, 1), 'Flip')['boxes'].data.tolist()
        [[3.0, 0.0, 4.0, 2.0]]
        >>> map_annotations({'note': 'text'}, flip_i, (4, 4, 1), 'Flip')
        Traceback (most recent call last):
        ...
        TypeError: Flip changes the voxel grid, but the metadata 'note' (str) only knows how to be cropped ...
    """
    mapped = {}
    for name, value in annotations.items():
        if not isinstance(value, VoxelMappable):
            raise TypeError(
                f"{transform} changes the voxel grid, but the metadata {name!r} ({type(value).__name__}) only knows "
                f"how to be cropped (crop_to_region), not how to follow a new grid (map_voxels); remove it first"
            )
        mapped[name] = value.map_voxels(matrix, spatial_shape)
    return mapped


__all__ = [
    "BOX_FORMATS_2D",
    "BOX_FORMATS_3D",
    "BoundingBoxes",
    "Points",
    "VoxelMappable",
    "annotation_grid",
    "crop_annotations",
    "from_corners",
    "map_annotations",
    "region_aware_metadata",
    "to_corners",
]
