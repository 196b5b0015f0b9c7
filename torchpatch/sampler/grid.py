"""Grid sampling: the patches of a regular grid that covers the whole image.

Inference on a volume too large for the model splits it into overlapping
patches, runs the model on each and stitches the outputs back with
:class:`~torchpatch.inference.GridAggregator`. The plan (where the patches
start, how much padding the border needs) is pure geometry, computed once;
patches are cut when indexed, so a grid over a lazy ``.nii`` or ``.npy``
file reads one patch of bytes at a time.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterator, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..constants import LABEL, LOCATION
from ..geometry import shift_affine
from ..image import Image
from ..subject import RegionAware, Subject
from ..transforms.crop_pad import GEOMETRIC_MODES, STATISTIC_MODES, _parse_padding_mode
from ..typing import TypeTriplet
from .sampler import PatchSampler

Array = np.ndarray[Any, np.dtype[Any]]


def grid_starts(size: int, patch: int, overlap: int) -> Array:
    """First voxel of each patch along one axis, TorchIO's rule.

    A patch starts every ``patch - overlap`` voxels; when the last one does
    not end on the border, one more patch is added, shifted back to end
    exactly there. ``size`` must be at least ``patch``.

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


def parse_padding_mode(padding_mode: Any) -> tuple[str, float]:
    """The :func:`numpy.pad` mode and the fill value used by ``'constant'``.

    ``None`` (no grid padding) pads images smaller than the patch with 0.

    Example:
        >>> parse_padding_mode(-1000), parse_padding_mode('replicate'), parse_padding_mode(None)
        (('constant', -1000.0), ('edge', 0.0), ('constant', 0.0))
    """
    return _parse_padding_mode(padding_mode, allow_none=True)


def _parse_overlap(value: Any, patch_size: TypeTriplet, shape: TypeTriplet, subject_name: str) -> TypeTriplet:
    """``patch_overlap`` as three ints in ``[0, patch)``; an int on a 2D image means ``(o, o, 0)``."""
    if isinstance(value, bool):
        raise TypeError(f"patch_overlap must be an int or three ints, got the bool {value!r}")
    if isinstance(value, Integral):
        overlap = (int(value), int(value), 0 if shape[2] == 1 else int(value))
    elif isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        items = list(value)
        if len(items) != 3:
            raise ValueError(f"patch_overlap must have three values (one per axis I, J, K), got {tuple(items)}")
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in items):
            raise TypeError(f"patch_overlap must hold ints, got {tuple(items)}")
        overlap = (int(items[0]), int(items[1]), int(items[2]))
    else:
        raise TypeError(f"patch_overlap must be an int or three ints, got {type(value).__name__} {value!r}")
    if any(not 0 <= o < p for o, p in zip(overlap, patch_size)):
        raise ValueError(
            f"patch_overlap {overlap} must be >= 0 and smaller than patch_size {patch_size} on every axis "
            f"(subject {subject_name!r}, spatial shape {shape})"
        )
    return overlap


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

    def __init__(
        self,
        subject: Subject,
        patch_size: int | Sequence[int],
        patch_overlap: int | Sequence[int] = 0,
        padding_mode: str | float | None = None,
    ) -> None:
        if not isinstance(subject, Subject):
            raise TypeError(f"subject must be a Subject, got {type(subject).__name__}")
        super().__init__(patch_size)
        shape = subject.spatial_shape  # checks the images share one grid
        self.subject = subject
        self.spatial_shape: TypeTriplet = shape
        self.patch_size = self.get_patch_size(shape)
        self._overlap_argument = patch_overlap
        self.patch_overlap = _parse_overlap(patch_overlap, self.patch_size, shape, subject.name)
        self.padding_mode = padding_mode
        self._mode, self._fill = parse_padding_mode(padding_mode)
        self._check_fill()

        border = [o // 2 if padding_mode is not None else 0 for o in self.patch_overlap]
        extra = [max(0, p - (s + 2 * b)) for p, s, b in zip(self.patch_size, shape, border)]
        pad_ini = tuple(border)
        pad_fin = tuple(b + e for b, e in zip(border, extra))
        self.padding = (pad_ini[0], pad_fin[0], pad_ini[1], pad_fin[1], pad_ini[2], pad_fin[2])
        self._pad_ini = np.asarray(pad_ini, dtype=np.int64)
        padded_shape = [s + a + b for s, a, b in zip(shape, pad_ini, pad_fin)]
        self.grid_starts = tuple(
            grid_starts(size, p, o) - a
            for size, p, o, a in zip(padded_shape, self.patch_size, self.patch_overlap, pad_ini)
        )
        corners = np.stack(np.meshgrid(*self.grid_starts, indexing="ij"), axis=-1).reshape(-1, 3)
        self.locations: Array = np.concatenate([corners, corners + np.asarray(self.patch_size)], axis=1)

        # Per axis, the source voxel of each padded position (-1: constant fill),
        # so a border patch gathers its padding from a read of its own region.
        self._index_maps: list[Array] = []
        if any(self.padding):
            mode = self._mode if self._mode in GEOMETRIC_MODES else "constant"
            for size, a, b in zip(shape, pad_ini, pad_fin):
                indices = np.arange(size, dtype=np.int64)
                if mode == "constant":
                    self._index_maps.append(np.pad(indices, (a, b), mode="constant", constant_values=-1))
                else:
                    self._index_maps.append(np.pad(indices, (a, b), mode=mode))  # type: ignore[call-overload]
        self._padded_images = self._pad_statistic_images() if any(self.padding) else {}

    # Planning ----------------------------------------------------------------------

    def _check_fill(self) -> None:
        if self._mode != "constant" or self._fill == 0:
            return
        for name, image in self.subject.images.items():
            dtype = image.dtype
            if image.type == LABEL or dtype.is_floating_point or dtype == torch.bool:
                continue
            info = torch.iinfo(dtype)
            if self._fill != int(self._fill) or not info.min <= self._fill <= info.max:
                raise ValueError(
                    f"padding_mode {self.padding_mode!r} does not fit the {dtype} voxels of image {name!r} in "
                    f"subject {self.subject.name!r} (range {info.min} to {info.max}); cast the image "
                    f"(dtype=torch.float32) or choose another padding_mode"
                )

    def _pad_statistic_images(self) -> dict[str, Image]:
        """Whole padded copies of the intensity images, for the statistic modes."""
        if self._mode not in STATISTIC_MODES:
            return {}
        padded = {}
        widths = ((0, 0), *((self.padding[2 * a], self.padding[2 * a + 1]) for a in range(3)))
        for name, image in self.subject.images.items():
            if image.type == LABEL:
                continue  # padded with 0, through the index maps
            source = image.data.detach().cpu()
            if source.dtype in (torch.float16, torch.bfloat16):
                source = source.to(torch.float32)
            array = np.pad(source.numpy(), widths, mode=self._mode)  # type: ignore[call-overload]
            copied = copy.copy(image)
            copied.metadata = dict(image.metadata)
            copied.set_data(torch.from_numpy(array).to(image.dtype))
            copied.affine = shift_affine(image.affine, [-int(v) for v in self._pad_ini])
            padded[name] = copied
        return padded

    # Dataset protocol ----------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.locations.shape[0])

    def __getitem__(self, index: int) -> Subject:
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(f"GridSampler index must be an int, got {type(index).__name__} {index!r}") from None
        count = len(self)
        if not -count <= position < count:
            raise IndexError(f"patch index {position} is out of range for a grid of {count} patches")
        location = self.locations[position % count]
        ini = (int(location[0]), int(location[1]), int(location[2]))
        fin = (int(location[3]), int(location[4]), int(location[5]))
        images = {name: self._cut(name, image, ini) for name, image in self.subject.images.items()}
        patch = self.subject.with_images(images, **{LOCATION: torch.from_numpy(location.copy())})
        for name, value in self.subject.metadata.items():
            if isinstance(value, RegionAware):
                patch[name] = value.crop_to_region(ini, fin)
        return patch

    def patch_data(self, index: int, image_name: str) -> torch.Tensor:
        """The voxels ``(C, *patch_size)`` of one image of patch ``index``, without a patch subject.

        The fast path of :func:`~torchpatch.inference.infer`: a view of the
        loaded voxels (or a region read from disk) when the patch lies inside
        the image.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> sampler = GridSampler(Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1))), 2)
            >>> sampler.patch_data(1, 't1')[0, :, :, 0].tolist()
            [[2.0, 3.0], [6.0, 7.0]]
        """
        images = self.subject.images
        if image_name not in images:
            raise KeyError(
                f"image_name {image_name!r} is not an image of subject {self.subject.name!r}: {sorted(images)}"
            )
        location = self.locations[operator.index(index)]
        ini = (int(location[0]), int(location[1]), int(location[2]))
        fin = (int(location[3]), int(location[4]), int(location[5]))
        image = images[image_name]
        if min(ini) >= 0 and all(f <= s for f, s in zip(fin, self.spatial_shape)):
            if image.is_loaded:  # a plain view: Image.read_region's checks cost as much as the copy
                return image.data[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
            return image.read_region(ini, fin)
        return self._cut(image_name, image, ini).data

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

    # Cutting -------------------------------------------------------------------------

    def _cut(self, name: str, image: Image, ini: TypeTriplet) -> Image:
        """The patch of ``image`` whose first voxel is ``ini`` (image grid)."""
        fin = tuple(i + p for i, p in zip(ini, self.patch_size))
        if all(i >= 0 for i in ini) and all(f <= s for f, s in zip(fin, self.spatial_shape)):
            # The common case: a view of loaded voxels, or a region read from disk.
            return image.crop(ini, fin, copy=False)
        if name in self._padded_images:
            padded_ini = [i + int(a) for i, a in zip(ini, self._pad_ini)]
            padded_fin = [i + p for i, p in zip(padded_ini, self.patch_size)]
            return self._padded_images[name].crop(padded_ini, padded_fin, copy=False)
        maps = [
            m[i + int(a) : i + int(a) + p] for m, i, a, p in zip(self._index_maps, ini, self._pad_ini, self.patch_size)
        ]
        valid = [m[m >= 0] for m in maps]
        low = [int(v.min()) for v in valid]
        high = [int(v.max()) + 1 for v in valid]
        patch = image.crop(low, high, copy=False)  # reads only the voxels the patch copies
        data = patch.data
        geometric = self._mode in GEOMETRIC_MODES
        if geometric:
            for axis, (indices, first) in enumerate(zip(maps, low)):
                data = data.index_select(axis + 1, torch.from_numpy(indices - first).to(data.device))
        else:
            fill = 0.0 if image.type == LABEL else self._fill
            filled = torch.full((data.shape[0], *self.patch_size), fill, dtype=data.dtype, device=data.device)
            offsets = [int(np.argmax(m >= 0)) for m in maps]
            sizes = data.shape[1:]
            filled[
                :,
                offsets[0] : offsets[0] + sizes[0],
                offsets[1] : offsets[1] + sizes[1],
                offsets[2] : offsets[2] + sizes[2],
            ] = data
            data = filled
        patch.set_data(data)
        patch.affine = shift_affine(image.affine, ini)
        return patch


__all__ = ["GridSampler", "grid_starts", "parse_padding_mode"]
