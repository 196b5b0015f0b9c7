"""Coordinate maps of the spatial transforms, composed so that a chain resamples once.

A spatial transform is described by where each output voxel takes its value
from: :meth:`CoordinateMap.sample` maps output voxel indices to input voxel
indices (both in the whole subject's grid, voxel centres at integers). A
chain of transforms composes these maps, so flips, affine transforms and
elastic deformations in a row need one interpolation::

    output voxel x ──last.sample──> ... ──first.sample──> input position (interpolated there)
    input point q  ──first.forward─> ... ──last.forward──> output point (boxes and points follow)

:meth:`CoordinateMap.bounds` gives the box of input positions an output box
needs, which is how a patch knows how much context to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Points evaluated at once by the pointwise B-spline (bounds the temporary memory).
_CHUNK = 1 << 16

#: Fixed-point iterations inverting an elastic deformation (points, boxes).
_INVERSION_STEPS = 20

Box = tuple[np.ndarray, np.ndarray]


class CoordinateMap:
    """Where each output voxel samples the input, and where input points go.

    Positions are ``(..., 3)`` float64 tensors of voxel indices ``(i, j, k)``.

    Example:
        >>> shift = AffineMap(np.array([[1.0, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
        >>> isinstance(shift, CoordinateMap), shift.forward(torch.tensor([[2.0, 0.0, 0.0]])).tolist()
        (True, [[0.0, 0.0, 0.0]])
    """

    def sample(self, points: torch.Tensor) -> torch.Tensor:
        """Input positions sampled by the output positions ``points``."""
        raise NotImplementedError

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Output positions of the input positions ``points`` (the inverse of :meth:`sample`)."""
        raise NotImplementedError

    def bounds(self, low: np.ndarray, high: np.ndarray) -> Box:
        """A box holding :meth:`sample` of every position of the box ``[low, high]``."""
        raise NotImplementedError

    def sample_grid(self, ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
        """:meth:`sample` of every voxel of the box ``[ini, fin)``, shape ``(I, J, K, 3)``."""
        return self.sample(box_grid(ini, fin))

    @property
    def is_identity(self) -> bool:
        """Whether the map changes nothing."""
        return False


def box_grid(ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
    """The voxel indices of the box ``[ini, fin)``, shape ``(I, J, K, 3)`` float64.

    Example:
        >>> box_grid((0, 0, 0), (2, 1, 1))[:, 0, 0].tolist()
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    axes = [torch.arange(int(a), int(b), dtype=torch.float64) for a, b in zip(ini, fin)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


class AffineMap(CoordinateMap):
    """``input = matrix @ output`` for a 4x4 voxel-to-voxel matrix.

    Example:
        >>> flip = AffineMap(np.array([[-1.0, 0, 0, 9], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
        >>> flip.sample(torch.tensor([[2.0, 1.0, 0.0]])).tolist(), flip.bounds(np.zeros(3), np.ones(3))[0].tolist()
        ([[7.0, 1.0, 0.0]], [8.0, 0.0, 0.0])
    """

    def __init__(self, matrix: Any) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float64)
        if self.matrix.shape != (4, 4) or not np.all(np.isfinite(self.matrix)):
            raise ValueError(f"an affine map needs a finite 4x4 matrix, got shape {self.matrix.shape}")

    def _apply(self, matrix: np.ndarray, points: torch.Tensor) -> torch.Tensor:
        block = torch.from_numpy(np.ascontiguousarray(matrix[:3, :3].T))
        return points.to(torch.float64) @ block + torch.from_numpy(matrix[:3, 3].copy())

    def sample(self, points: torch.Tensor) -> torch.Tensor:
        return self._apply(self.matrix, points)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self._apply(np.linalg.inv(self.matrix), points)

    def bounds(self, low: np.ndarray, high: np.ndarray) -> Box:
        corners = np.array([[h if bit else lo for bit, lo, h in zip(bits, low, high)] for bits in np.ndindex(2, 2, 2)])
        mapped = corners @ self.matrix[:3, :3].T + self.matrix[:3, 3]
        return mapped.min(axis=0), mapped.max(axis=0)

    def sample_grid(self, ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
        # Separable: the grid's axes go through the matrix one at a time.
        block = torch.from_numpy(self.matrix[:3, :3].copy())
        result = torch.from_numpy(self.matrix[:3, 3].copy()).expand(*[b - a for a, b in zip(ini, fin)], 3).clone()
        for axis, (a, b) in enumerate(zip(ini, fin)):
            column = torch.arange(int(a), int(b), dtype=torch.float64)[:, None] * block[:, axis]
            shape = [1, 1, 1, 3]
            shape[axis] = int(b) - int(a)
            result += column.reshape(shape)
        return result

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.matrix, np.eye(4)))


def bspline_weights(u: torch.Tensor) -> torch.Tensor:
    """The four cubic B-spline weights of fractional positions ``u`` in ``[0, 1]``, shape ``(..., 4)``.

    They are non-negative and sum to one, so an interpolated value lies
    between the smallest and largest coefficient.

    Example:
        >>> bspline_weights(torch.tensor([0.0], dtype=torch.float64)).mul(6).tolist()
        [[1.0, 4.0, 1.0, 0.0]]
    """
    v = 1 - u
    return torch.stack([v**3 / 6, (3 * u**3 - 6 * u**2 + 4) / 6, (3 * v**3 - 6 * v**2 + 4) / 6, u**3 / 6], dim=-1)


class BSplineMap(CoordinateMap):
    """``input = output + displacement(output)``: a cubic B-spline displacement field.

    The field has ``n`` coefficients per axis. On an axis of ``L`` voxels,
    coefficient ``m`` sits at index ``-0.625 + (m - 1) * (L + 0.25) / (n - 3)``:
    the second and the second-to-last coefficients sit on the volume's
    voxel-corner box widened by 1/8 voxel on each side, which is where ITK's
    ``BSplineTransformInitializer`` puts them (so TorchIO's control points
    give the same field). Displacements are in voxels; every displacement
    lies between the smallest and largest coefficient of its axis.

    Args:
        coefficients: ``(n0, n1, n2, 3)`` displacements in voxels, each ``n >= 4``.
        shape: The whole subject's spatial shape.
        zero_outside: Outside the control grid's domain, no displacement (ITK's
            ``BSplineTransform``, what TorchIO's combined affine and elastic
            transform sees) instead of the field's value at the border.

    Example:
        >>> coefficients = torch.zeros(4, 4, 4, 3, dtype=torch.float64)
        >>> coefficients[..., 0] = 2.0
        >>> BSplineMap(coefficients, (5, 5, 5)).sample(torch.tensor([[1.0, 2.0, 3.0]])).round(decimals=6).tolist()
        [[3.0, 2.0, 3.0]]
    """

    def __init__(self, coefficients: torch.Tensor, shape: Sequence[int], zero_outside: bool = False) -> None:
        self.zero_outside = zero_outside
        self.coefficients = coefficients.to(torch.float64)
        self.shape = tuple(int(n) for n in shape)
        if self.coefficients.ndim != 4 or self.coefficients.shape[-1] != 3 or min(self.coefficients.shape[:3]) < 4:
            raise ValueError(
                f"B-spline coefficients must have shape (n0, n1, n2, 3) with every n >= 4, "
                f"got {tuple(self.coefficients.shape)}"
            )
        flat = self.coefficients.reshape(-1, 3)
        self.low = flat.min(dim=0).values.numpy()
        self.high = flat.max(dim=0).values.numpy()

    def _positions(self, axis: int, coordinates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First coefficient index and fractional position of ``coordinates`` along ``axis``."""
        count = self.coefficients.shape[axis]
        length = self.shape[axis]
        # Outside the control grid's domain the field keeps its value at the border.
        u = ((coordinates + 0.625) / ((length + 0.25) / (count - 3)) + 1).clamp(1, count - 2)
        first = torch.floor(u).clamp(max=count - 3)
        return first.long() - 1, u - first

    def _axis_weights(self, axis: int, coordinates: torch.Tensor) -> torch.Tensor:
        """Dense ``(len(coordinates), n)`` weights of the coefficients along ``axis``."""
        index, fraction = self._positions(axis, coordinates)
        weights = torch.zeros(coordinates.shape[0], self.coefficients.shape[axis], dtype=torch.float64)
        offsets = index[:, None] + torch.arange(4)
        weights.scatter_add_(1, offsets, bspline_weights(fraction))
        return weights

    def field_grid(self, ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
        """The displacement at every voxel of the box ``[ini, fin)``, shape ``(I, J, K, 3)``."""
        w = [self._axis_weights(a, torch.arange(int(ini[a]), int(fin[a]), dtype=torch.float64)) for a in range(3)]
        field = torch.tensordot(w[0], self.coefficients, dims=([1], [0]))  # (I, n1, n2, 3)
        field = torch.einsum("jb,ibcd->ijcd", w[1], field)
        return torch.einsum("kc,ijcd->ijkd", w[2], field)

    def field(self, points: torch.Tensor) -> torch.Tensor:
        """The displacement at arbitrary positions ``(..., 3)``."""
        flat = points.reshape(-1, 3).to(torch.float64)
        out = torch.empty_like(flat)
        _, n1, n2 = self.coefficients.shape[:3]
        table = self.coefficients.reshape(-1, 3)
        steps = torch.arange(4)
        for start in range(0, flat.shape[0], _CHUNK):
            chunk = flat[start : start + _CHUNK]
            parts = [self._positions(a, chunk[:, a]) for a in range(3)]
            i, j, k = (index[:, None] + steps for index, _ in parts)
            wi, wj, wk = (bspline_weights(fraction) for _, fraction in parts)
            flat_index = (i[:, :, None, None] * n1 + j[:, None, :, None]) * n2 + k[:, None, None, :]
            weights = wi[:, :, None, None] * wj[:, None, :, None] * wk[:, None, None, :]
            gathered = table[flat_index.reshape(-1)].reshape(chunk.shape[0], 64, 3)
            out[start : start + _CHUNK] = torch.einsum("nm,nmd->nd", weights.reshape(-1, 64), gathered)
        if self.zero_outside:
            out[~self._inside(flat)] = 0
        return out.reshape(points.shape)

    def _inside(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each of ``points`` ``(N, 3)`` lies where the control grid covers the whole B-spline support."""
        inside = torch.ones(points.shape[0], dtype=torch.bool)
        for axis in range(3):
            count, length = self.coefficients.shape[axis], self.shape[axis]
            u = (points[:, axis] + 0.625) / ((length + 0.25) / (count - 3)) + 1
            inside &= (u >= 1) & (u <= count - 2)
        return inside

    def sample(self, points: torch.Tensor) -> torch.Tensor:
        return points.to(torch.float64) + self.field(points)

    def sample_grid(self, ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
        if self.zero_outside:
            return self.sample(box_grid(ini, fin))
        return box_grid(ini, fin) + self.field_grid(ini, fin)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        # Solve x + d(x) = q by fixed-point iteration (a contraction while the field does not fold).
        target = points.to(torch.float64)
        x = target.clone()
        for _ in range(_INVERSION_STEPS):
            x = target - self.field(x)
        return x

    def bounds(self, low: np.ndarray, high: np.ndarray) -> Box:
        return low + np.minimum(self.low, 0), high + np.maximum(self.high, 0)

    @property
    def is_identity(self) -> bool:
        return bool(not self.coefficients.any())


class ChainMap(CoordinateMap):
    """Maps in the order their transforms apply to the image: ``maps[0]`` first.

    Adjacent affine maps are multiplied into one; identities are dropped.

    Example:
        >>> shift = AffineMap(np.array([[1.0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
        >>> chain = ChainMap([shift, shift])
        >>> len(chain.maps), chain.sample(torch.zeros(1, 3)).tolist(), chain.forward(torch.zeros(1, 3)).tolist()
        (1, [[2.0, 0.0, 0.0]], [[-2.0, 0.0, 0.0]])
    """

    maps: list[CoordinateMap]

    def __init__(self, maps: Sequence[CoordinateMap]) -> None:
        merged: list[CoordinateMap] = []
        for item in maps:
            parts: list[CoordinateMap] = item.maps if isinstance(item, ChainMap) else [item]
            for part in parts:
                if part.is_identity:
                    continue
                if merged and isinstance(part, AffineMap) and isinstance(merged[-1], AffineMap):
                    # Output x samples merged[-1] at part(x), which samples its input at merged[-1](part(x)).
                    merged[-1] = AffineMap(merged[-1].matrix @ part.matrix)
                else:
                    merged.append(part)
        self.maps = merged

    def sample(self, points: torch.Tensor) -> torch.Tensor:
        for item in reversed(self.maps):
            points = item.sample(points)
        return points.to(torch.float64)

    def sample_grid(self, ini: Sequence[int], fin: Sequence[int]) -> torch.Tensor:
        if not self.maps:
            return box_grid(ini, fin)
        points = self.maps[-1].sample_grid(ini, fin)
        for item in reversed(self.maps[:-1]):
            points = item.sample(points)
        return points

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        for item in self.maps:
            points = item.forward(points)
        return points.to(torch.float64)

    def bounds(self, low: np.ndarray, high: np.ndarray) -> Box:
        for item in reversed(self.maps):
            low, high = item.bounds(low, high)
        return low, high

    @property
    def is_identity(self) -> bool:
        return not self.maps


__all__ = ["AffineMap", "BSplineMap", "ChainMap", "CoordinateMap", "box_grid", "bspline_weights"]
