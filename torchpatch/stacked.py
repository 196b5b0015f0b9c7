"""Batches whose voxels are already rows of one tensor per image, and the tensors for them.

Below the loader (:mod:`torchpatch.loader` re-exports both): samplers and the
Queue cut patches straight into such batches, and ``collate_subjects`` takes
them as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import numpy as np
import torch
import torch.multiprocessing
from torch.utils.data import get_worker_info

from .io import numpy_dtype


def anonymous_storage(nbytes: int) -> torch.UntypedStorage | None:
    """``nbytes`` of shared memory in an anonymous file (zero-filled), or ``None`` where there is none.

    An anonymous shared file (``memfd_create``, Linux) is not a file of
    ``/dev/shm``, so its size is not bound by that folder's (64 MiB in a
    default Docker container), only by the machine's or the container's
    memory. ``None`` without ``memfd_create`` and when PyTorch shares
    storages by file name (its ``file_system`` strategy), which would copy
    this one into a file of its own. The private
    ``UntypedStorage._new_shared_fd_cpu`` (the way a process receiving a
    storage maps it; the storage keeps its own duplicate of the file) is
    pinned by tests/queue/test_transfer.py.

    Example:
        >>> storage = anonymous_storage(64)
        >>> storage is None or storage.is_shared()
        True
    """
    if not hasattr(os, "memfd_create") or not hasattr(torch.UntypedStorage, "_new_shared_fd_cpu"):
        return None
    if torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
        return None
    try:
        descriptor = os.memfd_create("torchpatch", os.MFD_CLOEXEC)
    except OSError:  # no memfd support in this kernel or sandbox
        return None
    try:
        os.ftruncate(descriptor, nbytes)
        return torch.UntypedStorage._new_shared_fd_cpu(descriptor, nbytes)
    finally:
        os.close(descriptor)


def shared_storage(nbytes: int) -> torch.UntypedStorage:
    """``nbytes`` of uninitialised shared memory, which crosses to another process without a copy.

    An anonymous file where there is one (:func:`anonymous_storage`), else
    PyTorch's shared memory: PyTorch has no public way to allocate there,
    ``share_memory_()`` allocates, then copies (16 MiB: 57 against 39 ms
    here); the private ``UntypedStorage._new_shared`` is pinned by
    tests/test_loader.py.

    Example:
        >>> shared_storage(64).is_shared()
        True
    """
    anonymous = anonymous_storage(nbytes)
    return anonymous if anonymous is not None else torch.UntypedStorage._new_shared(nbytes)


def on_storage(
    storage: torch.UntypedStorage, dtype: torch.dtype, shape: Sequence[int], offset: int = 0
) -> torch.Tensor:
    """A C-ordered ``shape`` tensor of ``dtype`` over ``storage``, from byte ``offset`` on (no copy).

    Example:
        >>> on_storage(torch.UntypedStorage(64), torch.int16, (2, 3), offset=4).shape
        torch.Size([2, 3])
    """
    count = int(np.prod(shape))
    flat = torch.empty(0, dtype=dtype).set_(storage, offset // dtype.itemsize, (count,), (1,))
    return flat.view(tuple(int(v) for v in shape))


def empty_batch(shape: Sequence[int], dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """An uninitialised tensor for a batch; in shared memory inside a loader worker.

    In a worker, sending a tensor to the main process moves it to shared
    memory (a copy) unless it already lives there.

    Example:
        >>> empty_batch((2, 1, 4, 4, 4), torch.float32).shape
        torch.Size([2, 1, 4, 4, 4])
    """
    device = torch.device(device)
    if device.type == "cpu" and get_worker_info() is not None:
        return on_storage(shared_storage(int(np.prod(shape)) * dtype.itemsize), dtype, shape)
    if device.type == "cpu" and dtype != torch.bfloat16:
        # numpy's allocator advises transparent huge pages for large arrays: a
        # fresh batch is faulted in 2 MiB at a time, not 4 KiB (see _zeros in
        # inference/aggregator.py), whatever glibc's mmap threshold did last.
        return torch.from_numpy(np.empty(tuple(int(v) for v in shape), dtype=numpy_dtype(dtype)))
    return torch.empty(tuple(shape), dtype=dtype, device=device)


class StackedPatches(Sequence[Any]):
    """Patches whose voxels are already rows of one batch tensor per image: collated without a copy.

    What :class:`~torchpatch.queue.Queue` hands a loader: the patch of row
    ``b`` has ``stacked[name][b]`` as the voxels of image ``name``, so
    :func:`~torchpatch.loader.collate_subjects` returns ``stacked[name]`` itself as the batch.
    Any other ``collate_fn`` sees a sequence of patches (indexing, slicing,
    ``len`` and iteration, as a list; ``list(batch)`` makes one).

    Made with :meth:`deferred`, the patch subjects are made only when a row is
    asked for (once each; once every row is made, what made them is let go),
    and :meth:`collated` gives the whole batch without them: what ``collate_subjects`` returns (the Queue's batches:
    making and collating 8 patch subjects of two images took about 0.2 ms
    more a batch, 7 ms of a 69-78 ms warm epoch on the queue benchmark).

    Example:
        >>> from torchpatch import DATA, ScalarImage, Subject
        >>> from torchpatch.loader import collate_subjects
        >>> voxels = torch.rand(2, 1, 4, 4, 4)
        >>> patches = StackedPatches([Subject(t1=ScalarImage(tensor=v)) for v in voxels], {'t1': voxels})
        >>> collate_subjects(patches)['t1'][DATA] is voxels
        True
        >>> len(patches), patches[-1]['t1'].shape, len(patches[:1])
        (2, (1, 4, 4, 4), 1)
    """

    def __init__(self, patches: Sequence[Any], stacked: Mapping[str, torch.Tensor]) -> None:
        self._patches: list[Any] = list(patches)
        self._make: Callable[[int], Any] | None = None
        self._collate: Callable[[], dict[str, Any] | None] | None = None
        self._unmade = 0
        #: Per key, the collated value: a ``(B, C, *patch)`` tensor per image name, and the
        #: ``(B, 6)`` ``LOCATION`` when known.
        self.stacked = dict(stacked)

    @classmethod
    def deferred(
        cls,
        count: int,
        make: Callable[[int], Any],
        stacked: Mapping[str, torch.Tensor],
        collate: Callable[[], dict[str, Any] | None] | None = None,
    ) -> StackedPatches:
        """``count`` patches, row ``b`` made by ``make(b)`` when first asked for; ``collate`` gives the batch.

        Example:
            >>> batch = StackedPatches.deferred(3, lambda row: {'row': row}, {}, lambda: {'rows': 3})
            >>> batch.collated(), batch[2], [patch['row'] for patch in batch]
            ({'rows': 3}, {'row': 2}, [0, 1, 2])
        """
        batch = cls([None] * count, stacked)
        batch._make = make
        batch._collate = collate
        batch._unmade = count
        return batch

    def collated(self) -> dict[str, Any] | None:
        """The batch as :func:`~torchpatch.loader.collate_subjects` makes it, when known without the patches.

        ``None`` when it is not (the patches are collated then).
        """
        return None if self._collate is None else self._collate()

    def _row(self, index: int) -> Any:
        patch = self._patches[index]
        if patch is None and self._make is not None:
            patch = self._patches[index] = self._make(index % len(self._patches))
            self._unmade -= 1
            if not self._unmade:
                # Every row made: let go of what made them (the Queue's stacks, their shared buffers
                # and maps); a batch kept by a loop then holds what a list of its patches would.
                self._make = self._collate = None
        return patch

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._row(row) for row in range(len(self._patches))[index]]
        return self._row(index)

    def __len__(self) -> int:
        return len(self._patches)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its patches (every row made) and the batch tensors: what made them stays here.
        return (StackedPatches, (self[:], self.stacked))

    def __repr__(self) -> str:
        shapes = {name: tuple(data.shape) for name, data in self.stacked.items()}
        return f"StackedPatches({len(self)} patches; stacked: {shapes})"


__all__ = ["StackedPatches", "anonymous_storage", "empty_batch", "on_storage", "shared_storage"]
