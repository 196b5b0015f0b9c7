"""Weighted sampling: patch centres drawn in proportion to a probability map.

The map is read once per subject into a two-level table: the valid centres
are split into blocks (rows along the last axis when they hold at least 64
voxels, runs of 4096 voxels otherwise), with a float32 running sum inside
each block and a float64 running sum over the block totals. A draw picks a
block by binary search on the block sums, then a voxel by binary search
inside the block: O(log n) per draw, 4 bytes per candidate voxel, and no
float64 copy of the volume.

Valid centres are those whose patch fits in the image. With patch size ``p``
the centre is ``start + p // 2``::

    axis of length 8, p = 4:   starts 0..4, centres 2..6
    index    0 1 2 3 4 5 6 7
    centre       ^ . . . ^
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..subject import Subject
from ..typing import TypeTriplet
from .sampler import RandomSampler

_BLOCK = 4096
#: Rows of valid centres at least this long are blocks of the table themselves.
_ROW = 64


def valid_centres(data: torch.Tensor, patch_size: TypeTriplet) -> torch.Tensor:
    """View of ``data[0]`` restricted to the centres of patches that fit.

    Element ``(a, b, c)`` of the result is the centre of the patch whose
    corner is ``(a, b, c)``.

    Example:
        >>> valid_centres(torch.arange(8).reshape(1, 8, 1, 1), (4, 1, 1)).flatten().tolist()
        [2, 3, 4, 5, 6]
    """
    shape = data.shape[1:]
    slices = tuple(slice(p // 2, s - p + p // 2 + 1) for s, p in zip(shape, patch_size))
    return data[0][slices]


def check_probability_map(data: torch.Tensor, subject: Subject, name: str) -> None:
    """Raise if the map holds negative, NaN or infinite values (one float32 pass).

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(prob=ScalarImage(tensor=torch.ones(1, 2, 2, 1)), subject_id='s1')
        >>> check_probability_map(subject['prob'].data, subject, 'prob')  # fine: returns None
        >>> check_probability_map(torch.tensor([[[[0.5]], [[-1.0]]]]), subject, 'prob')
        Traceback (most recent call last):
        ...
        ValueError: probability map 'prob' of subject 's1' holds negative values (minimum -1); ...
    """
    values = data if data.is_floating_point() else data.to(torch.float32)
    low, high = (float(v) for v in torch.aminmax(values))  # NaN propagates to both
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError(f"probability map {name!r} of subject {subject.name!r} holds NaN or infinite values")
    if low < 0:
        raise ValueError(
            f"probability map {name!r} of subject {subject.name!r} holds negative values (minimum {low:g}); "
            f"probabilities must be >= 0"
        )


def _running_sums(region: torch.Tensor) -> torch.Tensor:
    """``(blocks, length)`` float32 running sums of the valid centres, block by block.

    Rows of at least ``_ROW`` voxels along the last axis are the blocks:
    one strided pass sums them into a new table. Shorter rows (2D images,
    thin volumes) are copied into blocks of ``_BLOCK`` voxels, the last one
    padded with zeros, and summed in place. Either way block ``b``, voxel
    ``v`` is centre ``b * length + v`` of the region in C order.
    """
    shape = tuple(region.shape)
    if shape[-1] >= _ROW:
        return torch.cumsum(region, dim=-1, dtype=torch.float32).view(-1, shape[-1])
    count = region.numel()
    blocks = -(-count // _BLOCK)
    local = torch.empty(blocks * _BLOCK, dtype=torch.float32)
    local[count:] = 0
    local[:count].view(shape).copy_(region)
    return local.view(blocks, _BLOCK).cumsum_(dim=1)


class WeightedSampler(RandomSampler):
    """Patches whose centres follow a probability map (any non-negative weights).

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        probability_map: Name of the image in each subject holding the
            weights; it need not sum to one.
        padding_mode: Pad images smaller than the patch (see
            :class:`~torchpatch.sampler.PatchSampler`); ``None`` makes it an error.

    Example:
        >>> from torchpatch import ScalarImage, Subject, LOCATION
        >>> weights = torch.zeros(1, 9, 9, 1)
        >>> weights[0, 6, 2, 0] = 1.0
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 9, 9, 1)), w=ScalarImage(tensor=weights))
        >>> patch = next(WeightedSampler(3, 'w')(subject, 1, generator=0))
        >>> patch[LOCATION].tolist()
        [5, 1, 0, 8, 4, 1]
    """

    thread_safe = True  # draws only from the generator it is given

    def __init__(
        self,
        patch_size: int | tuple[int, int, int],
        probability_map: str,
        *,
        padding_mode: float | str | None = None,
    ) -> None:
        super().__init__(patch_size, padding_mode=padding_mode)
        if not isinstance(probability_map, str):
            raise TypeError(f"probability_map must be the name of an image, got {type(probability_map).__name__}")
        self.probability_map = probability_map

    def _checked_map(self, subject: Subject) -> torch.Tensor:
        """The map's voxels, after checking it has one channel and no negative, NaN or infinite value."""
        data = subject.get_image(self.probability_map, "probability_map").data
        if data.shape[0] != 1:
            raise ValueError(
                f"probability map {self.probability_map!r} of subject {subject.name!r} must have one channel, "
                f"got {data.shape[0]}"
            )
        check_probability_map(data, subject, self.probability_map)
        return data

    def centre_weights(self, subject: Subject, patch_size: TypeTriplet) -> torch.Tensor:
        """The checked probability map at the valid centres (a view, see :func:`valid_centres`).

        Example:
            >>> from torchpatch import ScalarImage
            >>> subject = Subject(w=ScalarImage(tensor=torch.arange(5.0).reshape(1, 5, 1, 1)))
            >>> WeightedSampler((3, 1, 1), 'w').centre_weights(subject, (3, 1, 1)).flatten().tolist()
            [1.0, 2.0, 3.0]
        """
        data = self._checked_map(subject)
        region = valid_centres(data, patch_size)
        if not region.is_floating_point():
            region = region.to(torch.float32)
        if float(region.sum(dtype=torch.float64)) <= 0:
            raise ValueError(
                f"probability map {self.probability_map!r} of subject {subject.name!r} is zero at every valid "
                f"patch centre (patch_size {patch_size} in spatial shape {tuple(data.shape[1:])})"
            )
        return region

    def prepare(self, subject: Subject, patch_size: TypeTriplet) -> Callable[[np.random.Generator, int], np.ndarray]:
        data = self._checked_map(subject)
        region = valid_centres(data, patch_size)
        region_shape = tuple(region.shape)
        local = _running_sums(region)
        blocks, length = local.shape
        block_totals = local[:, -1].to(torch.float64)
        block_cdf = torch.cumsum(block_totals, dim=0)
        if float(block_cdf[-1]) <= 0:
            raise ValueError(
                f"probability map {self.probability_map!r} of subject {subject.name!r} is zero at every valid "
                f"patch centre (patch_size {patch_size} in spatial shape {tuple(data.shape[1:])})"
            )

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            uniform = torch.from_numpy(rng.random((2, n)))
            block = torch.searchsorted(block_cdf, uniform[0] * block_cdf[-1], right=True)
            block = block.clamp_(max=blocks - 1)
            rows = local[block]
            last = rows[:, -1]
            target = (uniform[1] * last.to(torch.float64)).to(torch.float32)
            target = torch.minimum(target, torch.nextafter(last, torch.zeros_like(last)))
            within = torch.searchsorted(rows, target[:, None], right=True)[:, 0]
            flat_index = (block * length + within).numpy()
            return np.stack(np.unravel_index(flat_index, region_shape), axis=1).astype(np.int64)

        return draw
