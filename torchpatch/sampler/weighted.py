"""Weighted sampling: patch centres drawn in proportion to a probability map.

The map is read once per subject into the totals of blocks of valid centres
(rows along the last axis when they hold at least 64 voxels, runs of 4096
voxels otherwise) and a float64 running sum over them. A draw picks a block
by binary search on those sums, then a voxel by binary search in the running
sum of that block alone, computed for the blocks drawn: one summing pass
over the map per subject (1.2 ms for a 193^3 region here, against 15.6 ms
for a running sum of every block), O(log n + block) per draw, and no copy
of the volume when its rows are long enough.

Valid centres are those whose patch fits in the image. With patch size ``p``
the centre is ``start + p // 2``::

    axis of length 8, p = 4:   starts 0..4, centres 2..6
    index    0 1 2 3 4 5 6 7
    centre       ^ . . . ^
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..image import Image
from ..subject import Subject
from ..typing import TypeTriplet
from .probability_steps import ProbabilityMapSteps, check_probability_map

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


#: Draws handled at once: bounds the running sums of the drawn blocks (draws x block length).
_DRAW_CHUNK = 4096


def _blocks(region: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], int]:
    """The float64 total of each block of valid centres, ``take(blocks)`` giving those blocks' voxels, and
    the block length.

    Rows of at least ``_ROW`` voxels along the last axis are the blocks,
    read where they lie (one strided summing pass, no copy). Shorter rows
    (2D images, thin volumes) are copied into blocks of ``_BLOCK`` voxels,
    the last one padded with zeros. Either way block ``b``, voxel ``v`` is
    centre ``b * length + v`` of the region in C order.
    """
    shape = tuple(region.shape)
    if shape[-1] >= _ROW:
        rows = region.reshape(-1, shape[-1]) if region.is_contiguous() else None
        totals = region.sum(dim=-1, dtype=torch.float32).reshape(-1).to(torch.float64)
        if rows is not None:
            return totals, lambda blocks: rows[blocks], shape[-1]
        leading = shape[:-1]

        def take(blocks: torch.Tensor) -> torch.Tensor:
            index = np.unravel_index(blocks.numpy(), leading)
            return region[tuple(torch.from_numpy(i) for i in index)]

        return totals, take, shape[-1]
    count = region.numel()
    blocks = -(-count // _BLOCK)
    local = torch.empty(blocks * _BLOCK, dtype=torch.float32)
    local[count:] = 0
    local[:count].view(shape).copy_(region)
    table = local.view(blocks, _BLOCK)
    return table.sum(dim=1, dtype=torch.float32).to(torch.float64), lambda chosen: table[chosen], _BLOCK


def draw_from_map(
    data: torch.Tensor, patch_size: TypeTriplet, where: str
) -> Callable[[np.random.Generator, int], np.ndarray]:
    """``draw(rng, n)``: ``n`` patch corners whose centres follow the map ``data`` (``(1, I, J, K)``, >= 0).

    The map is read once into the block table described in the module's
    docstring; each draw is a binary search on the block totals and one in
    the running sum of the block drawn. ``where`` names the map in errors.

    Raises:
        ValueError: If the map is zero at every valid centre.

    Example:
        >>> weights = torch.tensor([5.0, 1.0, 0.0, 8.0]).reshape(1, 4, 1, 1)
        >>> draw_from_map(weights, (3, 1, 1), "map 'w'")(np.random.default_rng(0), 3).tolist()
        [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    """
    region = valid_centres(data, patch_size)
    region_shape = tuple(region.shape)
    totals, take, length = _blocks(region)
    blocks = len(totals)
    block_cdf = torch.cumsum(totals, dim=0)
    if float(block_cdf[-1]) <= 0:
        raise ValueError(
            f"{where} is zero at every valid patch centre (patch_size {patch_size} in spatial shape "
            f"{tuple(data.shape[1:])})"
        )

    def draw_chunk(uniform: torch.Tensor) -> torch.Tensor:
        block = torch.searchsorted(block_cdf, uniform[0] * block_cdf[-1], right=True)
        block = block.clamp_(max=blocks - 1)
        rows = torch.cumsum(take(block), dim=1, dtype=torch.float32)
        last = rows[:, -1]
        target = (uniform[1] * last.to(torch.float64)).to(torch.float32)
        target = torch.minimum(target, torch.nextafter(last, torch.zeros_like(last)))
        within = torch.searchsorted(rows, target[:, None], right=True)[:, 0]
        return block * length + within

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        uniform = torch.from_numpy(rng.random((2, n)))
        parts = [draw_chunk(uniform[:, i : i + _DRAW_CHUNK]) for i in range(0, n, _DRAW_CHUNK)]
        flat_index = (torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)).numpy()
        return np.stack(np.unravel_index(flat_index, region_shape), axis=1).astype(np.int64)

    return draw


class WeightedSampler(ProbabilityMapSteps):
    """Patches whose centres follow a probability map (any non-negative weights).

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        probability_map: Name of the image in each subject holding the
            weights; it need not sum to one. ``None`` only in a subclass
            that overrides ``get_probability_map`` (TorchIO's way to
            compute the map from the subject).
        padding_mode: Pad images smaller than the patch (see
            :class:`~torchpatch.sampler.PatchSampler`); ``None`` makes it an error.

    TorchIO's steps (``process_probability_map``,
    ``get_cumulative_distribution_function``, ...) are provided and a
    subclass may override them (see :mod:`~torchpatch.sampler.probability_steps`).

    Example:
        >>> from torchpatch import ScalarImage, Subject, LOCATION
        >>> weights = torch.zeros(1, 9, 9, 1)
        >>> weights[0, 6, 2, 0] = 1.0
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 9, 9, 1)), w=ScalarImage(tensor=weights))
        >>> patch = next(WeightedSampler(3, 'w')(subject, 1, generator=0))
        >>> patch[LOCATION].tolist()
        [5, 1, 0, 8, 4, 1]

        TorchIO's way of computing the map from the subject, here the
        squared intensities of ``t1``:

        >>> class SquaredIntensity(WeightedSampler):
        ...     def get_probability_map(self, subject):
        ...         return subject['t1'].data ** 2
        >>> patch = next(SquaredIntensity(3, probability_map=None)(subject, 1, generator=0))
        >>> tuple(patch['t1'].shape)
        (1, 3, 3, 1)
    """

    thread_safe = True  # draws only from the generator it is given

    def __init__(
        self,
        patch_size: int | tuple[int, int, int],
        probability_map: str | None,
        *,
        padding_mode: float | str | None = None,
    ) -> None:
        super().__init__(patch_size, padding_mode=padding_mode)
        self.probability_map = _check_name(probability_map)

    @property
    def probability_map_name(self) -> str | None:
        """The name of the probability map image: ``probability_map`` (TorchIO's name).

        Example:
            >>> sampler = WeightedSampler(4, 'weights')
            >>> sampler.probability_map_name = 'other'
            >>> sampler.probability_map
            'other'
        """
        return self.probability_map

    @probability_map_name.setter
    def probability_map_name(self, name: str | None) -> None:
        self.probability_map = _check_name(name)

    def get_probability_map_image(self, subject: Subject) -> Image:
        """The image of ``subject`` holding the weights (a subclass may choose another).

        Raises:
            ValueError: If the sampler has no ``probability_map`` name.
            KeyError: If the subject has no such image
                (:class:`~torchpatch.subject.ImageNotFoundError`).

        Example:
            >>> from torchpatch import ScalarImage
            >>> subject = Subject(w=ScalarImage(tensor=torch.ones(1, 2, 2, 1)))
            >>> WeightedSampler(1, 'w').get_probability_map_image(subject) is subject['w']
            True
        """
        if self.probability_map is None:
            raise ValueError(
                f"{type(self).__name__} has no probability_map name to read from subject {subject.name!r}: pass "
                f"probability_map='image name', or override get_probability_map(subject)"
            )
        return subject.get_image(self.probability_map, "probability_map")

    def _checked_map(self, subject: Subject) -> torch.Tensor:
        """The map's voxels, after checking it has one channel and no negative, NaN or infinite value."""
        data = self.get_probability_map_image(subject).data
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
        if self.steps_overridden:
            return self._draw_through_steps(subject, patch_size, draw_from_map)
        data = self._checked_map(subject)
        return draw_from_map(data, patch_size, f"probability map {self.probability_map!r} of subject {subject.name!r}")


def _check_name(name: Any) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"probability_map must be the name of an image (or None), got {type(name).__name__}")
    return name
