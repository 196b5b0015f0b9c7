"""The grid plan: where the patches covering a whole image start, pure geometry.

:func:`plan_grid` is the one plan of every grid in torchpatch: the
:class:`~torchpatch.GridSampler` and its :class:`~torchpatch.GridAggregator`,
:func:`~torchpatch.infer`, :func:`~torchpatch.sliced_detection` and
:func:`~torchpatch.export_patches` all cut and stitch the patches it lists.
It works on shapes alone (einops' parse -> plan -> execute): no tensor is
touched until a patch is cut.

Along each axis a patch starts every ``patch - overlap`` voxels; when the last
one does not end on the border, one more patch is added, shifted back to end
exactly there (TorchIO's rule, so the locations match; the diagram is in
:class:`~torchpatch.GridSampler`'s documentation).

With a ``padding_mode``, every axis is first padded by ``overlap // 2`` on
both sides, so border voxels get as many patches (and as much context) as
inner ones. An axis shorter than the patch is padded at its end. Starts and
locations are in the image's voxel grid, so with padding they may start
below 0 or end beyond the shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..typing import TypeTriplet
from .arguments import parse_patch_overlap, parse_patch_size
from .padding import parse_padding_mode

Array = np.ndarray[Any, np.dtype[Any]]
#: Per patch along one axis: the output slice it writes and the matching slice of the patch.
AxisSplit = list[tuple[slice, slice]]
#: Where neighbouring patches split their overlap in crop mode (see :meth:`GridPlan.splits`).
CROP_CUTS = ("middle", "torchio")


def grid_starts(size: int, patch: int, overlap: int) -> Array:
    """First voxel of each patch along one axis, TorchIO's rule.

    ``size`` must be at least ``patch``.

    Example:
        >>> grid_starts(11, 4, 1).tolist()
        [0, 3, 6, 7]
        >>> grid_starts(10, 4, 1).tolist()
        [0, 3, 6]
    """
    if not 0 <= overlap < patch <= size:
        raise ValueError(f"need 0 <= overlap < patch <= size, got overlap {overlap}, patch {patch}, size {size}")
    starts = list(range(0, size - patch + 1, patch - overlap))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class GridPlan:
    """The patches of a grid over an image of ``spatial_shape`` (see :func:`plan_grid`).

    Attributes:
        spatial_shape: ``(I, J, K)`` of the image.
        patch_size: The patch size, 2D rule applied.
        patch_overlap: The overlap in voxels, 2D rule applied.
        padding_mode: The argument as given (``None``: no border padding).
        mode: The :func:`numpy.pad` mode filling voxels outside the image.
        fill: The value of the ``'constant'`` mode.
        padding: ``(i_ini, i_fin, j_ini, j_fin, k_ini, k_fin)`` voxels of
            padding around the image.
        starts: Per axis, the patch starts in the image's voxel grid.

    Example:
        >>> plan = plan_grid((5, 4, 1), 4, 2, padding_mode='edge')
        >>> plan.padding, plan.grid_shape, len(plan), plan.is_inside(plan.locations[0])
        ((1, 1, 1, 1, 0, 0), (3, 2, 1), 6, False)
    """

    spatial_shape: TypeTriplet
    patch_size: TypeTriplet
    patch_overlap: TypeTriplet
    padding_mode: Any
    mode: str
    fill: float
    padding: tuple[int, int, int, int, int, int]
    starts: tuple[Array, Array, Array]

    @property
    def grid_shape(self) -> TypeTriplet:
        """Patches along each axis."""
        return (len(self.starts[0]), len(self.starts[1]), len(self.starts[2]))

    def __len__(self) -> int:
        return int(np.prod(self.grid_shape))

    @property
    def locations(self) -> Array:
        """``(N, 6)`` int64 locations ``(i0, j0, k0, i1, j1, k1)``, in C order of the grid."""
        corners = np.stack(np.meshgrid(*self.starts, indexing="ij"), axis=-1).reshape(-1, 3)
        return np.concatenate([corners, corners + np.asarray(self.patch_size, dtype=np.int64)], axis=1)

    def is_inside(self, location: Sequence[int]) -> bool:
        """Whether the patch at ``location`` lies wholly inside the image (no padding to fill)."""
        return min(int(v) for v in location[:3]) >= 0 and all(
            int(f) <= s for f, s in zip(location[3:], self.spatial_shape)
        )

    def splits(
        self, factor: Sequence[int] = (1, 1, 1), *, crop: bool = True, cut: str = "middle"
    ) -> tuple[AxisSplit, AxisSplit, AxisSplit]:
        """Per axis and patch: the output slice it writes and the matching slice of the patch.

        In crop mode every output voxel comes from exactly one patch, whatever
        the order of arrival; where two neighbours overlap, the later one
        writes from a cut onwards (see :data:`CROP_CUTS`):

        - ``'middle'``: the cut lies in the middle of the voxels the two
          patches share, ``shared // 2`` after the later patch's start. For
          evenly spaced patches ``shared`` is the overlap; for the last
          patch, shifted back to end on the border, it is larger, and each
          side keeps half of it (the most context on both sides).
        - ``'torchio'``: the cut lies ``overlap // 2`` after the later
          patch's start for every pair, the shifted last patch included,
          which then keeps more than half of what it shares with its
          neighbour. This is where TorchIO 1.x's aggregator cuts, writing
          patches in grid order with later ones overwriting.

        The two differ only next to a shifted last patch. Otherwise each patch
        writes all of itself. Both are clipped to the image (grid padding
        lies outside it).

        Args:
            factor: The model's downsampling factor per axis: the output grid
                and patches are the image's divided by it (it must divide
                the starts and the patch size).
            crop: Split overlaps (crop mode) or keep whole patches.
            cut: Where neighbours split their overlap in crop mode, one of
                :data:`CROP_CUTS`.

        Raises:
            ValueError: If ``cut`` is not one of :data:`CROP_CUTS`.

        Example:
            >>> plan = plan_grid((10, 1, 1), (4, 1, 1), (2, 0, 0))
            >>> [(o.start, o.stop, p.start, p.stop) for o, p in plan.splits()[0]]
            [(0, 3, 0, 3), (3, 5, 1, 3), (5, 7, 1, 3), (7, 10, 1, 4)]
            >>> plan = plan_grid((12, 1, 1), (8, 1, 1), (2, 0, 0))
            >>> [(o.start, o.stop) for o, _ in plan.splits()[0]]
            [(0, 6), (6, 12)]
            >>> [(o.start, o.stop) for o, _ in plan.splits(cut='torchio')[0]]
            [(0, 5), (5, 12)]
        """
        if not isinstance(cut, str) or cut not in CROP_CUTS:
            raise ValueError(f"cut must be one of {CROP_CUTS}, got {cut!r}")

        def axis(starts: Array, patch: int, overlap: int, size: int) -> AxisSplit:
            split = []
            for index, start in enumerate(starts.tolist()):
                low, high = start, start + patch
                if crop:
                    if index > 0:
                        shared = overlap if cut == "torchio" else int(starts[index - 1]) + patch - start
                        low = start + shared // 2
                    if index + 1 < len(starts):
                        following = int(starts[index + 1])
                        shared = overlap if cut == "torchio" else start + patch - following
                        high = following + shared // 2
                low, high = max(low, 0), min(high, size)
                split.append((slice(low, max(low, high)), slice(low - start, max(low, high) - start)))
            return split

        f = [int(v) for v in factor]
        s, p, o = self.spatial_shape, self.patch_size, self.patch_overlap
        return (
            axis(self.starts[0] // f[0], p[0] // f[0], o[0] // f[0], s[0] // f[0]),
            axis(self.starts[1] // f[1], p[1] // f[1], o[1] // f[1], s[1] // f[1]),
            axis(self.starts[2] // f[2], p[2] // f[2], o[2] // f[2], s[2] // f[2]),
        )


def plan_grid(
    spatial_shape: Sequence[int],
    patch_size: int | Sequence[int],
    patch_overlap: int | float | Sequence[int] | Sequence[float] = 0,
    padding_mode: Any = None,
    *,
    where: str = "",
) -> GridPlan:
    """Plan the patches of a grid covering an image of ``spatial_shape``.

    Args:
        spatial_shape: ``(I, J, K)`` of the image.
        patch_size: An int (a cube, or ``(p, p, 1)`` on a 2D image) or
            three ints.
        patch_overlap: Voxels shared by neighbouring patches, ``0 <= overlap
            < patch``: an int (on a 2D image ``(o, o, 0)``), three ints, or
            floats in ``[0, 1)`` as a fraction of the patch.
        padding_mode: ``None`` (no border padding; an axis shorter than the
            patch is padded at its end with 0), a number or a mode of
            :mod:`~torchpatch.geometry.padding`: pad every axis by
            ``overlap // 2`` on both sides first.
        where: What the grid covers, for error messages.

    Example:
        >>> plan = plan_grid((4, 4, 1), 3, 1)
        >>> plan.patch_size, plan.patch_overlap, plan.grid_shape
        ((3, 3, 1), (1, 1, 0), (2, 2, 1))
        >>> plan.locations[:2].tolist()
        [[0, 0, 0, 3, 3, 1], [0, 1, 0, 3, 4, 1]]
        >>> plan_grid((11, 1, 1), (4, 1, 1), (2, 0, 0), padding_mode=0).starts[0].tolist()
        [-1, 1, 3, 5, 7, 8]
    """
    shape = (int(spatial_shape[0]), int(spatial_shape[1]), int(spatial_shape[2]))
    patch = parse_patch_size(patch_size, shape)
    overlap = parse_patch_overlap(patch_overlap, patch, shape, where)
    mode, fill = parse_padding_mode(padding_mode, allow_none=True)
    border = [o // 2 if padding_mode is not None else 0 for o in overlap]
    extra = [max(0, p - (s + 2 * b)) for p, s, b in zip(patch, shape, border)]
    pad_ini = border
    pad_fin = [b + e for b, e in zip(border, extra)]
    starts = tuple(grid_starts(s + a + b, p, o) - a for s, p, o, a, b in zip(shape, patch, overlap, pad_ini, pad_fin))
    return GridPlan(
        spatial_shape=shape,
        patch_size=patch,
        patch_overlap=overlap,
        padding_mode=padding_mode,
        mode=mode,
        fill=fill,
        padding=(pad_ini[0], pad_fin[0], pad_ini[1], pad_fin[1], pad_ini[2], pad_fin[2]),
        starts=(starts[0], starts[1], starts[2]),
    )


__all__ = ["CROP_CUTS", "AxisSplit", "GridPlan", "grid_starts", "plan_grid"]
