"""Grid sampling: the patches of a regular grid that covers the whole image.

Inference on a volume too large for the model splits it into overlapping
patches, runs the model on each and stitches the outputs back with
:class:`~torchpatch.inference.GridAggregator`. The plan (where the patches
start, how much padding the border needs) is :func:`~torchpatch.geometry.plan_grid`,
pure geometry computed once; patches are cut with
:meth:`Subject.cut <torchpatch.patches.SubjectCuts.cut>` when indexed, so a grid
over a lazy ``.nii``, ``.npy`` or raw NRRD/MetaImage file reads one patch of bytes at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..constants import LOCATION
from ..geometry import GridPlan, grid_starts, plan_grid
from ..geometry import parse_padding_mode as parse_any_padding_mode
from ..stacked import StackedPatches, empty_batch
from ..subject import Subject
from ..typing import TypeTriplet
from .sampler import PatchPlan, PatchSampler

Array = np.ndarray[Any, np.dtype[Any]]


def parse_padding_mode(padding_mode: Any) -> tuple[str, float]:
    """The :func:`numpy.pad` mode and fill of a :class:`GridSampler`'s ``padding_mode``.

    As :func:`torchpatch.geometry.parse_padding_mode`, where ``None`` (no
    grid padding) pads images smaller than the patch with 0.

    Example:
        >>> parse_padding_mode(-1000), parse_padding_mode('replicate'), parse_padding_mode(None)
        (('constant', -1000.0), ('edge', 0.0), ('constant', 0.0))
    """
    return parse_any_padding_mode(padding_mode, allow_none=True)


class GridSampler(PatchSampler, Dataset[Subject]):
    """All the patches of a grid covering ``subject``, as a map-style dataset.

    Along each axis a patch starts every ``patch_size - patch_overlap``
    voxels, and the last patch is shifted back to end on the border (the
    rule of TorchIO, so the locations match). Here 11 voxels, patch 4,
    overlap 1 (step 3)::

        voxel    0 1 2 3 4 5 6 7 8 9 10
        start 0  # # # #
        start 3        # # # #
        start 6              # # # #
        start 7                # # # #   <- would start at 9 and leave the
                                            image: shifted back to 11 - 4

    Any overlap ``0 <= overlap < patch`` works, odd ones included. An axis
    shorter than the patch is padded at its end (with ``padding_mode``, or
    0 when it is ``None``) and the aggregator crops the padding away.

    With ``padding_mode``, every axis is first padded by ``overlap // 2`` on
    both sides, so voxels on the border are covered by as many patches (and
    as much context) as inner ones::

        padded voxel  0 1 2 3 4 5 6 7 8 9 10 11 12     (overlap 2: pad 1)
        image voxel     0 1 2 3 4 5 6 7 8 9 10
        location       -1 ......................  11   in the image's grid

    ``patch[LOCATION]`` is always in the voxel grid of the original image,
    so with padding it can start below 0 or end beyond the shape. The
    padding is built per patch, reading only the voxels it copies (all the
    image first for the statistic modes ``'mean'``, ``'median'``,
    ``'minimum'`` and ``'maximum'``). Label maps are padded with 0 unless
    the mode copies voxels (edge, reflect, symmetric, wrap).

    Args:
        subject: The subject to cover; every image is cut at each location.
        patch_size: An int (a cube, or ``(p, p, 1)`` on a 2D image) or
            three ints.
        patch_overlap: Voxels shared by neighbouring patches: an int (on a
            2D image ``(o, o, 0)``) or three ints, ``0 <= overlap < patch``.
        padding_mode: ``None`` (no border padding), a number (constant
            fill) or a :func:`numpy.pad` mode: ``'constant'`` (0),
            ``'edge'``, ``'reflect'``, ``'symmetric'``, ``'wrap'``,
            ``'mean'``, ``'median'``, ``'minimum'``, ``'maximum'``
            (``'replicate'`` and ``'circular'`` mean ``'edge'`` and
            ``'wrap'``).

    Attributes:
        spatial_shape: ``(I, J, K)`` of the subject.
        patch_size: The patch size, 2D rule applied.
        patch_overlap: The overlap, 2D rule applied.
        padding: Grid padding ``(i_ini, i_fin, j_ini, j_fin, k_ini, k_fin)``.
        grid_starts: Per axis, the patch starts in the image's voxel grid.
        locations: ``(N, 6)`` int64, one row per patch, in index order.

    Example:
        >>> from torchpatch import ScalarImage, Subject, LOCATION
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
        >>> sampler = GridSampler(subject, patch_size=3, patch_overlap=1)
        >>> len(sampler), sampler.patch_size, sampler.patch_overlap
        (4, (3, 3, 1), (1, 1, 0))
        >>> sampler.locations.tolist()
        [[0, 0, 0, 3, 3, 1], [0, 1, 0, 3, 4, 1], [1, 0, 0, 4, 3, 1], [1, 1, 0, 4, 4, 1]]
        >>> patch = sampler[3]
        >>> patch['t1'].data[0, :, :, 0].tolist(), patch[LOCATION].tolist()
        ([[5.0, 6.0, 7.0], [9.0, 10.0, 11.0], [13.0, 14.0, 15.0]], [1, 1, 0, 4, 4, 1])
        >>> padded = GridSampler(subject, patch_size=3, patch_overlap=2, padding_mode=0)
        >>> padded.padding, padded[0][LOCATION].tolist(), padded[0]['t1'].data[0, :, :, 0].tolist()
        ((1, 1, 1, 1, 0, 0), [-1, -1, 0, 2, 2, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 4.0, 5.0]])
    """

    thread_safe = True

    def __init__(
        self,
        subject: Subject,
        patch_size: int | Sequence[int],
        patch_overlap: int | float | Sequence[int] | Sequence[float] = 0,
        padding_mode: str | float | None = None,
    ) -> None:
        if not isinstance(subject, Subject):
            raise TypeError(f"subject must be a Subject, got {type(subject).__name__}")
        super().__init__(patch_size)
        shape = subject.spatial_shape  # checks the images share one grid
        self.subject = subject
        self._overlap_argument = patch_overlap
        self.grid = plan_grid(shape, patch_size, patch_overlap, padding_mode, where=f"subject {subject.name!r}")
        self.spatial_shape: TypeTriplet = shape
        self.patch_size = self.grid.patch_size
        self.patch_overlap = self.grid.patch_overlap
        self.padding_mode = padding_mode
        self.padding = self.grid.padding
        self.grid_starts = self.grid.starts
        self.locations: Array = self.grid.locations
        # What Subject.cut fills the voxels outside the image with: with
        # padding_mode None only images smaller than the patch reach past
        # their border, and are filled with 0.
        self._fill_mode: float | str = 0.0 if padding_mode is None else padding_mode
        subject.check_padding_value(padding_mode)

    # Planning and cutting -----------------------------------------------------------

    def plan(self, subject: Subject, num_patches: int, generator: np.random.Generator | int | None = None) -> PatchPlan:
        """The first ``num_patches`` patches of the grid over ``subject`` (``generator`` is ignored).

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1))), 2)
            >>> sampler.plan(sampler.subject, 2).locations.tolist()
            [[0, 0, 0, 2, 2, 1], [0, 2, 0, 2, 4, 1]]
        """
        grid = self._grid_for(subject)
        return PatchPlan(grid.locations[:num_patches], 0.0 if grid.padding_mode is None else grid.padding_mode)

    def _grid_for(self, subject: Subject) -> GridPlan:
        if subject is self.subject:
            return self.grid
        return plan_grid(
            subject.spatial_shape,
            self._patch_size_argument,
            self._overlap_argument,
            self.padding_mode,
            where=f"subject {subject.name!r}",
        )

    def cut(
        self, indices: Sequence[int] | slice, *, include: Sequence[str] | None = None, allocator: Any = None
    ) -> Any:
        """The patches at grid ``indices``, stacked per image (see ``Subject.cut``).

        The batch path of :func:`~torchpatch.inference.infer`: one copy of
        each box straight into the batch.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1))), 2)
            >>> sampler.cut([1, 2]).data['t1'][:, 0, :, :, 0].tolist()
            [[[2.0, 3.0], [6.0, 7.0]], [[8.0, 9.0], [12.0, 13.0]]]
        """
        locations = self.locations[indices]
        return self.subject.cut(locations, padding_mode=self._fill_mode, include=include, allocator=allocator)

    # Dataset protocol ----------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.locations.shape[0])

    def _position(self, index: int) -> int:
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(f"GridSampler index must be an int, got {type(index).__name__} {index!r}") from None
        count = len(self)
        if not -count <= position < count:
            raise IndexError(f"patch index {position} is out of range for a grid of {count} patches")
        return position % count

    def _crop_padding_mode(self) -> float | str | None:
        return self._fill_mode

    def __getitem__(self, index: int) -> Subject:
        position = self._position(index)
        if type(self).crop is not PatchSampler.crop:  # a subclass's crop makes the patch, as in TorchIO
            start = self.locations[position, :3].tolist()
            return self.crop(self.subject, start, self.patch_size)
        # A single patch inside the image is a view of the loaded voxels (no copy until batched).
        location = self.locations[position : position + 1]
        return self.subject.cut(location, padding_mode=self._fill_mode, copy=False)[0]

    def __getitems__(self, indices: Sequence[int]) -> Sequence[Subject]:
        """The patches at ``indices``, each box copied once, straight into one batch tensor per image.

        What a ``DataLoader`` asks for each batch: the same patches as
        ``[sampler[i] for i in indices]``, whose voxels are already the rows
        of the batch, so :func:`~torchpatch.loader.collate_subjects` takes
        them as they are. One copy per voxel, as before (views collated by
        ``torch.stack``), cut as :func:`~torchpatch.inference.infer` cuts:
        one planned cut per batch instead of a patch subject per patch
        (2-4 ms less per 256³ volume).

        Example:
            >>> from torchpatch import ScalarImage, Subject, DATA
            >>> from torchpatch.loader import collate_subjects
            >>> sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1))), 2)
            >>> batch = collate_subjects(sampler.__getitems__([3, 0]))
            >>> batch['t1'][DATA][:, 0, 0, :, 0].tolist()
            [[10.0, 11.0], [0.0, 1.0]]
        """
        positions = [self._position(index) for index in indices]
        if not positions:
            return []
        if type(self).crop is not PatchSampler.crop:
            return [self[position] for position in positions]
        patches = self.subject.cut(self.locations[positions], padding_mode=self._fill_mode, allocator=empty_batch)
        ready: dict[str, torch.Tensor] = {**patches.data, LOCATION: torch.from_numpy(np.array(patches.locations))}
        return StackedPatches(list(patches), ready)

    def patch_data(self, index: int, image_name: str) -> torch.Tensor:
        """The voxels ``(C, *patch_size)`` of one image of patch ``index``, without a patch subject.

        A view of the loaded voxels (or a region read from disk) when the
        patch lies inside the image.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1))), 2)
            >>> sampler.patch_data(1, 't1')[0, :, :, 0].tolist()
            [[2.0, 3.0], [6.0, 7.0]]
        """
        image = self.subject.get_image(image_name)
        location = self.locations[operator.index(index)].tolist()
        return image.read_region(location[:3], location[3:], padding_mode=self._fill_mode)

    def __iter__(self) -> Iterator[Subject]:
        for index in range(len(self)):
            yield self[index]

    def __call__(
        self,
        subject: Subject | None = None,
        num_patches: int | None = None,
        *,
        generator: np.random.Generator | int | None = None,
    ) -> Iterator[Subject]:
        """Yield the grid's patches in order (the first ``num_patches`` of them).

        Args:
            subject: Another subject to cover with the same grid settings;
                ``None`` for the sampler's own.
            num_patches: How many patches; ``None`` for all of them.
            generator: Ignored: the grid is deterministic.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1))), 2)
            >>> len(list(sampler())), len(list(sampler(num_patches=3)))
            (4, 3)
        """
        sampler = self
        if subject is not None and subject is not self.subject:
            sampler = GridSampler(subject, self._patch_size_argument, self._overlap_argument, self.padding_mode)
        if num_patches is not None and (isinstance(num_patches, bool) or not isinstance(num_patches, Integral)):
            raise TypeError(f"num_patches must be an int or None, got {num_patches!r}")
        if num_patches is not None and num_patches < 0:
            raise ValueError(f"num_patches must be >= 0, got {num_patches}")
        count = len(sampler) if num_patches is None else min(int(num_patches), len(sampler))
        for index in range(count):
            yield sampler[index]

    def __repr__(self) -> str:
        return (
            f"GridSampler(subject={self.subject.name!r}, patch_size={self.patch_size}, "
            f"patch_overlap={self.patch_overlap}, padding_mode={self.padding_mode!r}, patches={len(self)})"
        )


__all__ = ["GridSampler", "grid_starts", "parse_padding_mode"]
