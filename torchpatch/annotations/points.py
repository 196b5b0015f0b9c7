"""Points on a voxel canvas (object centres, landmarks): :class:`Points`.

Coordinates and patch rules are those of :mod:`torchpatch.annotations`: a
point ``p`` lies in voxel ``floor(p)``, and a patch keeps the points with
``index_ini <= p < index_fin`` on every axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class Points:
    """Points (object centres, landmarks) on a voxel canvas, with optional classes.

    A point ``p`` lies in voxel ``floor(p)``; the centre of voxel ``v`` is
    ``v + 0.5`` (see :meth:`from_indices`). Tools that store integer pixel
    indices (Deep Plant Phenomics) are read by
    :mod:`~torchpatch.annotations.formats` as pixel centres.

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
        self.spatial_shape = parse_canvas(spatial_shape, "Points")
        tensor = as_float_tensor(data, "data of Points")
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
        self.class_ids = parse_class_ids(class_ids, len(tensor), "Points")
        self.class_names = parse_class_names(class_names, "Points")

    @classmethod
    def from_indices(cls, indices: Any, spatial_shape: Sequence[int], class_ids: Any = None, **kwargs: Any) -> Points:
        """Points at the centres of voxels given by integer indices (``index + 0.5``).

        Example:
            >>> Points.from_indices([[0, 3]], (4, 4)).data.tolist()
            [[0.5, 3.5]]
        """
        tensor = as_float_tensor(indices, "indices of Points")
        return cls(tensor + 0.5, spatial_shape, class_ids, **kwargs)

    def _new(self, data: torch.Tensor, spatial_shape: TypeTriplet, index: Any = None) -> Points:
        new = object.__new__(Points)
        new.__dict__.update(self.__dict__)
        new.data = data
        new.ndim = int(data.shape[1])
        new.spatial_shape = spatial_shape
        if index is not None:
            new.class_ids = select(self.class_ids, index)
        return new

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> Points:
        """The points selected by an int, slice, bool mask or index list."""
        index = index_to_tensor(index, len(self))
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
        ini, fin = parse_region(index_ini, index_fin)
        if self.ndim == 2:
            check_depth_one_region(ini, fin, "these points")
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
                voxel centres), e.g. ``inv(new_affine) @ old_affine``, or a
                callable mapping ``(N, 3)`` float64 old indices to new ones.
            spatial_shape: The new canvas.

        Example:
            >>> import numpy as np
            >>> flip = np.array([[-1.0, 0, 0, 3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            >>> Points([[0.5, 1.0]], (4, 4)).map_voxels(flip, (4, 4, 1)).data.tolist()
            [[3.5, 1.0]]
        """
        array = parse_matrix(matrix)
        shape = parse_canvas(spatial_shape, "the new grid")
        mapped = map_positions(self.to_3d().data, array)
        if self.ndim == 2:
            k = mapped[:, 2]
            lift_checked(mapped, k - 0.5, k + 0.5, shape, "these points")
            mapped = mapped[:, :2]
        return self._new(mapped.to(self.data.dtype), shape)


__all__ = ["Points"]
