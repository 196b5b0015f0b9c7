"""Worker side of the :class:`~torchpatch.queue.Queue`: one subject's patches, stacked for one transfer.

A worker (or, for subjects already in the decode-once cache, a thread of the
training process) loads a subject, draws its patches and stacks them per
image into a :class:`_Chunk`; the queue pops single patches out of chunks.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from . import io
from .constants import LOCATION
from .dataset import SubjectsDataset
from .geometry import shift_affine
from .image import Image
from .loader import empty_batch, stack
from .sampler.label import LabelSampler
from .sampler.sampler import PatchSampler
from .sampler.uniform import UniformSampler
from .sampler.weighted import WeightedSampler
from .subject import RegionAware, Subject
from .typing import TypeTriplet


def _template(image: Image) -> Image:
    """``image`` without voxels: what a patch of it shares with the others (class, path, metadata)."""
    return image._adopt(None, image.affine)


class _Chunk:
    """The patches of one subject: one transfer from a worker.

    Voxels are stacked per image in shared memory (one tensor per image,
    whatever the number of patches); affines and locations travel as numpy
    arrays, metadata as plain objects, so their types survive the trip.
    """

    count: int
    keys: list[str]
    templates: dict[str, Image]
    data: dict[str, torch.Tensor]
    affines: dict[str, np.ndarray]
    locations: np.ndarray
    metadata: list[dict[str, Any]]

    @classmethod
    def from_patches(cls, patches: list[Subject]) -> _Chunk:
        """Stack patches made by a sampler (and a patch transform)."""
        chunk = cls()
        first = patches[0]
        chunk.count = len(patches)
        chunk.keys = list(first.keys())
        chunk.templates, chunk.data, chunk.affines = {}, {}, {}
        for name, image in first.images.items():
            chunk.templates[name] = _template(image)
            chunk.data[name] = stack([patch[name].data for patch in patches])
            chunk.affines[name] = np.stack([patch[name].affine for patch in patches])
        chunk.locations = np.stack([np.asarray(patch[LOCATION], dtype=np.int64) for patch in patches])
        chunk.metadata = [{k: v for k, v in patch.metadata.items() if k != LOCATION} for patch in patches]
        return chunk

    @classmethod
    def cut(cls, subject: Subject, corners: np.ndarray, patch_size: TypeTriplet, before: TypeTriplet) -> _Chunk:
        """Copy the boxes at ``corners`` of every image straight into the stacked buffers.

        Gives what ``from_patches`` gives for patches cut by
        :meth:`PatchSampler.extract_patch`, without a tensor, an image or a
        subject per patch, and with one copy of the voxels instead of two.
        """
        chunk = cls()
        count = len(corners)
        chunk.count = count
        chunk.keys = list(subject.keys())
        if LOCATION not in chunk.keys:
            chunk.keys.append(LOCATION)
        chunk.templates, chunk.data, chunk.affines = {}, {}, {}
        sizes = np.asarray(patch_size, dtype=np.int64)
        boxes = [((i, j, k), (i + patch_size[0], j + patch_size[1], k + patch_size[2])) for i, j, k in corners.tolist()]
        for name, image in subject.images.items():
            first = image.read_region(*boxes[0])
            out = empty_batch((count, *first.shape), first.dtype)
            target = None if first.dtype == torch.bfloat16 else out.numpy()
            source = image._region_array()
            if source is not None and (target is None or source.dtype != target.dtype):
                source = None
            for index, (ini, fin) in enumerate(boxes):
                if index > 0 and source is not None and target is not None:
                    target[index] = source[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
                    continue
                region = first if index == 0 else image.read_region(ini, fin)
                if target is not None:
                    target[index] = region.numpy()
                else:
                    out[index].copy_(region)
            chunk.templates[name] = _template(image)
            chunk.data[name] = out
            chunk.affines[name] = np.stack([shift_affine(image.affine, ini) for ini, _ in boxes])
        chunk.locations = np.concatenate([corners, corners + sizes], axis=1).astype(np.int64) - np.array(
            before * 2, dtype=np.int64
        )
        shared = {k: v for k, v in subject.metadata.items() if k != LOCATION}
        chunk.metadata = [shared] * count
        return chunk

    def patch(self, index: int) -> Subject:
        store: dict[str, Any] = {}
        metadata = self.metadata[index]
        for key in self.keys:
            template = self.templates.get(key)
            if template is not None:
                data, affine = self.data[key][index], self.affines[key][index]
                if template.check_nans:
                    store[key] = template._from_parts(data, affine)
                else:
                    store[key] = template._adopt(data, affine)
            elif key == LOCATION:
                store[key] = torch.from_numpy(self.locations[index])
            else:
                store[key] = metadata[key]
        subject = Subject.__new__(Subject)
        subject.__dict__["_store"] = store
        return subject


class _SubjectPatches(Dataset[_Chunk]):
    """Worker side: ``(index, seed, count)`` -> the subject's patches, stacked."""

    def __init__(
        self,
        dataset: SubjectsDataset,
        sampler: PatchSampler,
        patch_transform: Callable[[Subject], Subject] | None,
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.patch_transform = patch_transform
        # Patches that are plain boxes of the subject are copied straight
        # into the transfer buffers (no per-patch tensors, images, subjects).
        self._direct = (
            patch_transform is None
            and type(sampler).extract_patch is PatchSampler.extract_patch
            and type(sampler).__call__ is PatchSampler.__call__
        )

    @staticmethod
    def _plain(subject: Subject) -> bool:
        """Whether a patch of ``subject`` is only boxes of its images (no grid-aware metadata, no NaN checks)."""
        if any(isinstance(value, RegionAware) for value in subject.metadata.values()):
            return False
        return not any(image.check_nans for image in subject.images.values())

    def __len__(self) -> int:
        return len(self.dataset)

    def _describe(self, index: int) -> str:
        try:
            return f"{self.dataset._subjects[index].name!r} (index {index})"
        except Exception:  # noqa: BLE001 - only for the message
            return f"index {index}"

    def __getitem__(self, item: tuple[int, int, int]) -> _Chunk:
        index, seed, _ = item
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self._cut(item)
        except Exception as error:
            raise RuntimeError(
                f"Queue worker failed on subject {self._describe(index)}: {type(error).__name__}: {error}"
            ) from error

    def cut_in_thread(self, item: tuple[int, int, int]) -> _Chunk:
        """:meth:`__getitem__` for a thread of the training process (only when :attr:`threadable`).

        Nothing here touches torch's global RNG (which threads would share):
        the subject comes from the cache without its transform, and
        torchpatch's samplers draw from their own numpy generator.
        """
        try:
            return self._cut(item)
        except Exception as error:
            raise RuntimeError(
                f"Queue failed on subject {self._describe(item[0])}: {type(error).__name__}: {error}"
            ) from error

    @property
    def threadable(self) -> bool:
        """Whether cached subjects may be cut in threads: plain patches of torchpatch's own random samplers."""
        return self._direct and type(self.sampler) in (UniformSampler, WeightedSampler, LabelSampler)

    def _cut(self, item: tuple[int, int, int]) -> _Chunk:
        index, seed, count = item
        subject = self.dataset[index]
        rng = np.random.default_rng(seed)
        if self._direct and self._plain(subject):
            padded, before, starts = self.sampler._begin(subject, rng)
            corners = np.array([next(starts) for _ in range(count)], dtype=np.int64).reshape(count, 3)
            patch_size = self.sampler.get_patch_size(padded.spatial_shape)
            chunk = _Chunk.cut(padded, corners, patch_size, before)
        else:
            patches = list(self.sampler(subject, count, generator=rng))
            if self.patch_transform is not None:
                patches = [self.patch_transform(patch) for patch in patches]
            chunk = _Chunk.from_patches(patches)
        # Memory maps of this subject's cached files: their pages would
        # otherwise count in the process's RSS until evicted.
        io.release_memory_maps()
        return chunk


class _Plan:
    """Sampler for the internal loader: the items of the epoch being read."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _identity(items: list[_Chunk]) -> _Chunk:
    return items[0]


def _worker_init(worker_id: int) -> None:
    """Keep patch-sized buffers out of glibc's heap, so freed ones go back to the OS.

    After a decoded volume is freed, glibc raises its mmap threshold and
    later multi-MiB patch buffers come from the heap, which keeps them: each
    worker grew from about 200 to 500-600 MiB over 8 epochs here. A fixed
    threshold of 128 KiB keeps it at about 200 MiB.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD
