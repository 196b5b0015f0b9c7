"""The Queue's worker side: one task of an epoch's plan -> the subject's patches, stacked.

In a worker process, :class:`SubjectPatches` loads the subject (its dataset
transform included), cuts its patches (with context for a patch
transform) and ships them in shared memory; for a subject of the
decode-once cache, :meth:`SubjectPatches.cut_in_thread` only plans them in
the training process (deferred patches, each box copied once into its
batch). :mod:`~torchpatch.queue.producer` hands out the tasks and collects
the stacks in plan order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import io
from ..dataset import SubjectsDataset
from ..io.buffers import RECYCLER
from ..patches import Patches
from ..sampler.sampler import PatchSampler
from ..subject import Subject
from ..transforms.augmentation.context import augment_patches
from . import transfer
from .plan import Task


class SubjectPatches(Dataset[Patches]):
    """The worker side: a :class:`~torchpatch.queue.plan.Task` -> the subject's patches, stacked.

    Args:
        dataset: The subjects.
        sampler: Cuts the patches (:meth:`PatchSampler.patches`).
        patch_transform: Applied to each patch, which are then stacked again.

    Example:
        >>> from torchpatch import ScalarImage, UniformSampler
        >>> dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)), subject_id='a')])
        >>> patches = SubjectPatches(dataset, UniformSampler(4), None)[Task(0, seed=1, num_patches=3)]
        >>> len(patches), tuple(patches.data['t1'].shape)
        (3, (3, 1, 4, 4, 4))
    """

    def __init__(
        self,
        dataset: SubjectsDataset,
        sampler: PatchSampler,
        patch_transform: Callable[[Subject], Subject] | None,
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.patch_transform = patch_transform

    @property
    def thread_safe(self) -> bool:
        """Whether cached subjects may be cut in threads: a thread-safe sampler and no patch transform."""
        return self.patch_transform is None and bool(self.sampler.thread_safe)

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self, index: int) -> str:
        """Subject ``index`` for messages: ``'sub-1' (index 1)``, or ``index 1`` when it has no name."""
        try:
            return f"{self.dataset.subject_name(index)!r} (index {index})"
        except Exception:  # noqa: BLE001 - only for the message
            return f"index {index}"

    def __getitem__(self, task: Task) -> Patches:
        index, seed, _ = task
        try:
            # The dataset and patch transforms draw from torch's CPU RNG: seeded per subject (only it:
            # torch.manual_seed also queues a seed for every accelerator: 0.09 ms a call, 1 us this way).
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                return self._cut(task)
        except Exception as error:
            raise RuntimeError(
                f"Queue worker failed on subject {self.describe(index)}: {type(error).__name__}: {error}"
            ) from error

    def cut_in_thread(self, task: Task) -> Patches:
        """``__getitem__`` for a thread of the training process (only when :attr:`thread_safe`).

        Nothing here touches torch's global RNG (which threads would share):
        the subject comes from the cache without its transform, and a
        thread-safe sampler draws from its own numpy generator.
        """
        try:
            return self._cut(task, defer=True)
        except Exception as error:
            raise RuntimeError(
                f"Queue failed on subject {self.describe(task[0])}: {type(error).__name__}: {error}"
            ) from error

    def _cut(self, task: Task, defer: bool = False) -> Patches:
        index, seed, count = task
        subject = self.dataset[index]
        rng = np.random.default_rng(seed)
        if defer and self.patch_transform is None and self.sampler.cuts_by_plan:
            # Memory-mapped (cached) images: only the plan now; each box is
            # copied once, into the batch the Queue hands out (no chunk between).
            plan = self.sampler.plan(subject, count, rng)
            patches = subject.cut(
                plan.locations, padding_mode=plan.padding_mode, allocator=transfer.allocate, defer=True
            )
            # The layout may read headers: here, not in the training loop's thread that assembles batches.
            patches.layout()
        elif self.patch_transform is None:
            patches = self.sampler.patches(subject, count, generator=rng, allocator=transfer.allocate)
        elif self.sampler.cuts_by_plan:
            # Each patch read with the context its drawn spatial transforms need.
            plan = self.sampler.plan(subject, count, rng)
            patches = augment_patches(
                self.patch_transform,
                subject,
                plan.locations,
                padding_mode=plan.padding_mode,
                allocator=transfer.allocate,
            )
        else:
            cut = self.sampler.patches(subject, count, generator=rng)
            patches = Patches.from_subjects([self.patch_transform(patch) for patch in cut], transfer.allocate)
        # Memory maps of this subject's cached files: their pages would
        # otherwise count in the process's RSS until evicted.
        io.release_memory_maps()
        if self.dataset.caches:
            # A subject decoded into the cache is never decoded again: the
            # readers' recycled buffers would only sit in this worker's memory.
            RECYCLER.clear()
        return transfer.ship(patches)  # in a worker: into shared buffers it keeps


__all__ = ["SubjectPatches"]
