"""Axis-aligned boxes on a voxel canvas: :class:`BoundingBoxes` and their formats.

A box is stored in one of six formats, three for 2D boxes (4 numbers) and
three for 3D boxes (6 numbers); :func:`to_corners` and :func:`from_corners`
convert between a format and its corners ``(min..., max...)``. Coordinates
and patch rules are those of :mod:`torchpatch.annotations`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

import torch

from ..typing import TypeTriplet
from ._common import (
    as_float_tensor,
    check_depth_one_region,
    index_to_tensor,
    lift_checked,
    map_positions,
    parse_canvas,
    parse_class_ids,
    parse_class_names,
    parse_matrix,
    parse_region,
    select,
)

#: Box formats of 2D boxes (4 numbers) and of 3D boxes (6 numbers).
BOX_FORMATS_2D = ("xyxy", "xywh", "cxcywh")
BOX_FORMATS_3D = ("xyzxyz", "xyzwhd", "cxcyczwhd")
#: The corner format of each dimensionality.
CORNER_FORMAT = {2: "xyxy", 3: "xyzxyz"}


def _parse_scores(scores: Any, count: int, owner: str) -> torch.Tensor | None:
    if scores is None:
        return None
    tensor = as_float_tensor(scores, f"scores of {owner}")
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    if tuple(tensor.shape) != (count,):
        raise ValueError(f"scores of {owner} must have shape ({count},) (one per box), got {tuple(tensor.shape)}")
    return tensor


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
        self.spatial_shape = parse_canvas(spatial_shape, owner)
        if self.ndim == 2 and self.spatial_shape[2] != 1:
            raise ValueError(
                f"2D boxes ({self.format}) live on a depth-one canvas, got spatial_shape {self.spatial_shape}; "
                f"use a 3D format ({', '.join(BOX_FORMATS_3D)}) on volumes"
            )
        tensor = as_float_tensor(data, f"data of {owner}")
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
        self.class_ids = parse_class_ids(class_ids, len(tensor), owner)
        self.scores = _parse_scores(scores, len(tensor), owner)
        self.class_names = parse_class_names(class_names, owner)
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
            new.class_ids = select(self.class_ids, index)
            new.scores = select(self.scores, index)
        return new

    # Access -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> BoundingBoxes:
        """The boxes selected by an int, slice, bool mask or index list."""
        index = index_to_tensor(index, len(self))
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
        ini, fin = parse_region(index_ini, index_fin)
        if self.ndim == 2:
            check_depth_one_region(ini, fin, "these boxes")
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
                voxel centres), e.g. ``inv(new_affine) @ old_affine``, or a
                callable mapping ``(N, 3)`` float64 old indices to new ones.
            spatial_shape: The new canvas.

        Example:
            >>> import numpy as np
            >>> flip = np.array([[-1.0, 0, 0, 7], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            >>> BoundingBoxes([[0, 0, 2, 4]], 'xyxy', (8, 8)).map_voxels(flip, (8, 8, 1)).data.tolist()
            [[6.0, 0.0, 8.0, 4.0]]
        """
        array = parse_matrix(matrix)
        shape = parse_canvas(spatial_shape, "the new grid")
        corners = self.to_3d().corners().to(torch.float64)
        choices = torch.tensor(list(product((0, 1), repeat=3)), dtype=torch.int64)  # 8 corners of each box
        positions = torch.stack([corners[:, choices[:, a] * 3 + a] for a in range(3)], dim=-1)  # (N, 8, 3)
        mapped = map_positions(positions.reshape(-1, 3), array).reshape(-1, 8, 3)
        low, high = mapped.min(dim=1).values, mapped.max(dim=1).values
        if self.ndim == 2:
            lift_checked(mapped, low[:, 2], high[:, 2], shape, "these boxes")
            new_corners = torch.cat([low[:, :2], high[:, :2]], dim=1)
        else:
            new_corners = torch.cat([low, high], dim=1)
        new_corners = new_corners.to(self.data.dtype)
        return self._new(from_corners(new_corners, self.format), shape)


__all__ = ["BOX_FORMATS_2D", "BOX_FORMATS_3D", "BoundingBoxes", "from_corners", "to_corners"]
