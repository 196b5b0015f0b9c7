"""The training queue: worker processes cut patches while the model trains.

Why: reading and preprocessing a 3D volume takes far longer than one training
step on a patch of it, so the volume is loaded once, many patches are cut
from it, and those patches are mixed with patches of other volumes. The
CPU-side work runs in persistent worker processes; the training process only
pops ready patches::

    workers (persistent)           background thread            training loop
    load subject -> transform  ->  staging (one transfer  ->  pool of max_length
    -> sampler -> patch_transform   per subject, shared        patches, random pops
                                    memory)                    (never waits for a refill)

Each epoch is planned from a seed: the subject order, each subject's patches
and augmentations, and the order of pops. It yields exactly
``samples_per_volume`` patches of every subject of this rank, and the same
seed gives the same patches whatever the number of workers or their timing.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch.utils.data import Dataset, get_worker_info

from ..dataset import SubjectsDataset
from ..image_info import natural_size
from ..patches import Patches
from ..sampler.sampler import PatchSampler
from ..subject import Subject
from .batches import BufferRing, PreparedBatch, assemble
from .cutting import SubjectPatches
from .plan import EpochPlanner, parse_samples_per_volume, pop_generator
from .pool import PatchPool, PooledPatches
from .producer import Producer
from .spinning import available_cores

#: Batches a thread assembles ahead of the training loop (with worker processes and a spare core).
AHEAD = 2

#: Batches of a warm epoch popped ahead, back to back, in the training loop's thread (see ``__getitems__``).
PREPARED = 32


class Queue(Dataset[Subject]):
    """A buffer of patches from many subjects, refilled in the background.

    Use it with a loader that has no workers of its own (the queue has them)::

        queue = Queue(dataset, max_length=64, samples_per_volume=16,
                      sampler=UniformSampler(64), num_workers=2)
        loader = SubjectsLoader(queue, batch_size=8)   # num_workers=0
        for epoch in range(epochs):
            for batch in loader:
                ...
        queue.close()   # or use the queue as a context manager

    The workers persist across epochs; ``close()`` (or leaving a ``with``
    block) stops them.

    Args:
        subjects_dataset: The subjects (loaded and transformed in workers).
        max_length: Patches mixed at once: as in TorchIO, the pool is
            filled with whole subjects' stacks until it holds this many
            patches (from ``max_length / samples_per_volume`` subjects or
            more), shuffled, and drained before it is filled again. Memory
            holds each subject's stack of patches until its last patch is
            popped (within the pool's worth of pops it came in with),
            about this many patches more staged, the workers' prefetch and
            up to :data:`AHEAD` batches assembled ahead (with workers and a
            spare core). Batches of cached subjects, which hold no voxels
            until they are copied, may be popped further ahead (up to
            :data:`PREPARED`, within the epoch).
        samples_per_volume: Patches cut from each subject per epoch: an int, or
            one int per subject of the dataset. With per-subject counts and a
            ``DistributedSampler``, ranks may get different numbers of
            patches per epoch; make the counts equal across ranks (or drop
            extra steps) so collective operations do not wait forever.
        sampler: A patch sampler (e.g. ``UniformSampler(64)``).
        num_workers: Worker processes loading subjects and cutting patches;
            0 cuts them in this process when needed (simplest to debug; no
            background refill). Subjects already in the dataset's
            decode-once cache (``cache_dir``) are planned in this process
            instead (by the thread filling the pool, or by as many threads
            as workers when planning is slow; each box then copied once,
            from the memory map into the batch), when the sampler is
            :attr:`~torchpatch.PatchSampler.thread_safe` (torchpatch's own
            samplers are) and there is no ``patch_transform``: copying out of
            memory maps needs no transfer between processes. The patches are
            the same either way.
        shuffle_subjects: Visit subjects in a new random order every epoch.
        shuffle_patches: Pop patches at random from the pool (else in order).
        start_background: Start the workers now rather than at the first pop.
        subject_sampler: A sampler of subject indices, typically
            ``DistributedSampler(dataset)``, so each rank visits its own
            subjects. The queue calls its ``set_epoch`` at every epoch.
        verbose: Show a progress bar while the pool fills.
        patch_transform: Augmentation of every patch, in the workers, with
            context: each patch's random parameters are drawn first and the
            region its spatial transforms need is read around it, so a patch
            equals the transform applied to the whole subject then cropped
            (:func:`~torchpatch.transforms.augmentation.context.augment_patches`),
            at the cost of the patch only. Draws are seeded per subject from
            ``seed``, whatever the number of workers.
        seed: Makes the epochs reproducible; drawn from torch's RNG if ``None``.
        prefetch_subjects: Subjects each worker prepares ahead.
        multiprocessing_context: Passed to the internal ``DataLoader``.

    Example:
        >>> from torchpatch import ScalarImage, Subject, SubjectsDataset, UniformSampler
        >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8))) for _ in range(3)]
        >>> queue = Queue(SubjectsDataset(subjects), max_length=4, samples_per_volume=2,
        ...               sampler=UniformSampler(4), seed=0)
        >>> len(queue), queue[0]['t1'].shape
        (6, (1, 4, 4, 4))
        >>> queue.close()
    """

    def __init__(
        self,
        subjects_dataset: SubjectsDataset,
        max_length: int,
        samples_per_volume: int | Sequence[int],
        sampler: PatchSampler,
        num_workers: int = 0,
        shuffle_subjects: bool = True,
        shuffle_patches: bool = True,
        start_background: bool = True,
        subject_sampler: Any = None,
        verbose: bool = False,
        *,
        patch_transform: Callable[[Subject], Subject] | None = None,
        seed: int | None = None,
        prefetch_subjects: int = 2,
        multiprocessing_context: Any = None,
    ) -> None:
        if not isinstance(subjects_dataset, SubjectsDataset):
            raise TypeError(f"subjects_dataset must be a SubjectsDataset, got {type(subjects_dataset).__name__}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be an int >= 1, got {max_length!r}")
        if not isinstance(sampler, PatchSampler):
            raise TypeError(f"sampler must be a PatchSampler (e.g. UniformSampler), got {type(sampler).__name__}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        if patch_transform is not None and not callable(patch_transform):
            raise TypeError(f"patch_transform must be callable, got {type(patch_transform).__name__}")
        self.subjects_dataset = subjects_dataset
        self.max_length = max_length
        self.samples_per_volume = parse_samples_per_volume(samples_per_volume, len(subjects_dataset))
        self.sampler = sampler
        self.num_workers = num_workers
        self.shuffle_subjects = shuffle_subjects
        self.shuffle_patches = shuffle_patches
        self.subject_sampler = subject_sampler
        self.verbose = verbose
        self.patch_transform = patch_transform
        self.seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else int(seed)

        self._plans = EpochPlanner(self.seed, self.samples_per_volume, shuffle_subjects, subject_sampler)
        self._producer = Producer(
            SubjectPatches(subjects_dataset, sampler, patch_transform),
            self._plans,
            num_workers=num_workers,
            max_staged=max_length,
            prefetch_subjects=prefetch_subjects,
            multiprocessing_context=multiprocessing_context,
        )
        self._pool = PatchPool(max_length, shuffle_patches)
        self._buffers = BufferRing()
        # The epoch being popped, how many of its patches were popped, and how many it has.
        self._epoch = -1
        self._popped = 0
        self._epoch_length = 0
        # The next batches, assembled in order by a thread while the training step runs (see
        # __getitems__); the count popped once they are done; and patches popped ahead but not
        # handed out yet (a batch of another size was asked for).
        self._ahead: deque[Future[tuple[list[tuple[Patches, int]], Sequence[Subject]]]] = deque()
        self._ahead_popped = 0
        self._spare: deque[tuple[Patches, int]] = deque()
        self._assembler: ThreadPoolExecutor | None = None
        # Batches popped ahead in this thread, each with what copies it (see __getitems__), and
        # what the pop after them raised, to be raised in its turn.
        self._prepared: deque[tuple[list[tuple[Patches, int]], PreparedBatch | None]] = deque()
        self._error: BaseException | None = None
        if start_background:
            self._producer.start()

    def __len__(self) -> int:
        """Patches in the current epoch (or the next one, between epochs) for this rank."""
        self._settle(prepared=False)  # batches popped ahead stay (a progress bar may ask every batch)
        waiting = len(self._spare) + sum(len(entries) for entries, _ in self._prepared)
        if 0 < self._popped - waiting < self._epoch_length:
            return self._epoch_length
        return self._plans(self._epoch + 1).length

    @property
    def iterations_per_epoch(self) -> int:
        """Alias of ``len(queue)`` (TorchIO's name)."""
        return len(self)

    @property
    def num_subjects(self) -> int:
        """Subjects an epoch takes patches from on this rank: the subject sampler's length, or the dataset's.

        Raises:
            ValueError: When the subject sampler has no length.
        """
        if self.subject_sampler is None:
            return len(self.subjects_dataset)
        if not isinstance(self.subject_sampler, Sized):
            raise ValueError(f"the subject sampler {self.subject_sampler!r} has no length (__len__)")
        return len(self.subject_sampler)

    @property
    def num_patches(self) -> int:
        """Patches in the pool now, ready to be popped (TorchIO's name)."""
        return len(self._pool)

    @property
    def patches_list(self) -> PooledPatches:
        """The patches waiting in the pool, read-only, the next one popped last (TorchIO's name).

        ``len(queue.patches_list)`` is :attr:`num_patches`. Patches already
        popped into batches assembled ahead are not in it, and the pool is
        changed by popping, not through this view. Each patch is made
        when it is indexed.

        Example:
            >>> from torchpatch import ScalarImage, SubjectsDataset, UniformSampler
            >>> dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.zeros(1, 8, 8, 8)))])
            >>> with Queue(dataset, 4, 4, UniformSampler(4), seed=0) as queue:
            ...     _ = queue[0]
            ...     len(queue.patches_list), queue.patches_list[-1]['t1'].shape
            (3, (1, 4, 4, 4))
        """
        return PooledPatches(self._pool)

    def get_max_memory(self, subject: Subject | None = None) -> int:
        """Bytes that ``max_length`` patches of ``subject``'s images take (TorchIO's name).

        ``subject`` defaults to the dataset's first, loaded and transformed
        as the workers see it. Each image counts its own channels and dtype
        (TorchIO counts 4 bytes a voxel whatever the dtype): the pool's
        patches, not the stacks staged beside them (see ``max_length``).
        """
        if subject is None:
            subject = self.subjects_dataset[0]
        patch = math.prod(self.sampler.get_patch_size(subject.spatial_shape))
        images = subject.get_images(intensity_only=False)
        return self.max_length * patch * sum(image.num_channels * image.dtype.itemsize for image in images)

    def get_max_memory_pretty(self, subject: Subject | None = None) -> str:
        """:meth:`get_max_memory` for people: ``'24.0 MiB'``.

        Example:
            >>> from torchpatch import ScalarImage, SubjectsDataset, UniformSampler
            >>> dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.zeros(1, 8, 8, 8)))])
            >>> with Queue(dataset, 6, 2, UniformSampler(4), start_background=False) as queue:
            ...     queue.get_max_memory(), queue.get_max_memory_pretty()
            (1536, '1.5 KiB')
        """
        return natural_size(self.get_max_memory(subject))

    def _pop(self) -> Subject:
        self._settle()
        stack, index = self._spare.popleft() if self._spare else self._pop_entry()
        return stack[index]

    def _settle(self, prepared: bool = True) -> None:
        """Wait for the batches assembled ahead; their patches (with ``prepared``, those popped ahead too) go spare.

        Spare patches are popped, not handed out yet: the next pops hand them out first, in order.
        """
        while prepared and self._prepared:
            self._spare.extend(self._prepared.popleft()[0])
        while self._ahead:
            self._spare.extend(self._ahead.popleft().result()[0])

    def _assemble_next(self, count: int) -> tuple[list[tuple[Patches, int]], Sequence[Subject]]:
        entries = [self._pop_entry() for _ in range(count)]
        return entries, assemble(entries, self._buffers)

    def _pop_entry(self) -> tuple[Patches, int]:
        if self._error is not None:  # raised by this pop when batches were popped ahead
            error, self._error = self._error, None
            raise error
        self._producer.start()
        if self._epoch < 0 or self._popped >= self._epoch_length:
            self._epoch += 1
            self._popped = 0
            self._epoch_length = self._plans(self._epoch).length
            self._pool.reset(pop_generator(self.seed, self._epoch))
            self._fill(show=self.verbose)
        self._fill()
        if not len(self._pool):
            raise RuntimeError(f"the Queue ran out of patches after {self._popped} of {self._epoch_length}")
        self._popped += 1
        return self._pool.pop_entry()

    def _fill(self, show: bool = False) -> None:
        epoch = self._epoch
        self._pool.fill(lambda: self._producer.take(epoch), self._epoch_length, show)

    def __getitem__(self, index: int) -> Subject:
        if get_worker_info() is not None:
            raise RuntimeError(
                "a Queue cannot be read by a DataLoader with workers: use num_workers=0 in the outer loader "
                "and set Queue(num_workers=...) instead (the queue's own workers cut the patches)"
            )
        return self._pop()

    def __getitems__(self, indices: Sequence[int]) -> Sequence[Subject]:
        """The next ``len(indices)`` patches, their voxels already in one batch tensor per image.

        What a ``DataLoader`` asks for each batch: the patches are popped as
        by ``queue[i]`` (the same patches, in the same order), and each is
        copied once into reused batch buffers, from a worker's stack or
        straight from a cached subject's memory map.
        :func:`~torchpatch.loader.collate_subjects` takes those buffers as
        the batch.
        """
        if get_worker_info() is not None:
            return [self[index] for index in indices]  # raises the message of __getitem__
        if not indices:
            return []
        count = len(indices)
        parallel = torch.get_num_threads() > 1
        threaded = self._cut_ahead()  # a thread assembles ahead; else this one may pop ahead
        batch = None
        if self._ahead:
            entries, assembled = self._ahead[0].result()
            if len(entries) == count:
                self._ahead.popleft()
                batch = assembled
            else:
                self._settle()  # another size: every batch made ahead goes back, in order
        if batch is None and self._prepared:
            if len(self._prepared[0][0]) == count:
                batch = self._assemble_prepared(parallel)
            else:
                self._settle()
        if batch is None and not self._spare and not threaded and self.num_workers > 0 and PREPARED > 1:
            self._prepare(count)
            batch = self._assemble_prepared(parallel)
        if batch is None:
            entries = [self._spare.popleft() if self._spare else self._pop_entry() for _ in range(count)]
            # In the training loop's thread with several intra-op threads: copy on them (they
            # wait for the step's next parallel region anyway; a thread of ours would fight them).
            batch = assemble(entries, self._buffers, parallel=parallel)
        if not self._spare and not self._prepared and threaded:
            self._assemble_ahead(count)
        return batch

    def _prepare(self, count: int) -> None:
        """Pop the next batch of ``count``, then the epoch's next ones while no pop would wait (up to :data:`PREPARED`).

        The training loop's copies and step stream far more than the caches
        hold, so the Python that pops a patch and plans a batch runs cold
        when it runs between steps; popped back to back, the batches of a
        warm epoch pay that once (cached epochs with default threads, one
        process alternating: MR 4.6-5.6 ms less of 49-64 ms, CT 3.5-6.4 ms
        less of 41-48 ms). Only batches of memory-mapped boxes (the decode-once
        cache) are popped ahead: a batch whose patches hold voxels ends the
        run. More pops are made only while the pool and the stacks staged
        next hold their patches (refilling the pool from them as a pop in turn
        would), never waiting for a worker; an error of one of them is raised
        when that pop's batch is asked for.
        """
        self._append_prepared([self._pop_entry() for _ in range(count)])  # as in turn: its errors raised now
        while (
            len(self._prepared) < PREPARED
            and self._prepared[-1][1] is not None
            and self._popped + count <= self._epoch_length
            and self._pool.fills_from(functools.partial(self._producer.staged, self._epoch), count, self._epoch_length)
        ):
            try:
                entries = [self._pop_entry() for _ in range(count)]
            except Exception as error:  # noqa: BLE001 - raised in its turn, by the pop after these batches
                self._error = error
                return
            self._append_prepared(entries)

    def _append_prepared(self, entries: list[tuple[Patches, int]]) -> None:
        """Keep ``entries`` popped ahead, with what copies them (``None``: :func:`.batches.assemble` in their turn)."""
        try:
            prepared = PreparedBatch.of(entries)
        except Exception:  # noqa: BLE001 - assembled in its turn, which raises it again there
            prepared = None
        self._prepared.append((entries, prepared))

    def _assemble_prepared(self, parallel: bool) -> Sequence[Subject]:
        """The first batch popped ahead, copied now."""
        entries, prepared = self._prepared.popleft()
        batch = prepared.assemble(self._buffers, parallel) if prepared is not None else None
        return batch if batch is not None else assemble(entries, self._buffers, parallel=parallel)

    def _assemble_ahead(self, count: int) -> None:
        """Have the thread pop and copy the next batches of this epoch while the caller trains.

        Up to :data:`AHEAD` batches of ``count``, never past the epoch's end
        (a new epoch starts in the caller's thread). More than one: a step
        and a batch's copies take about as long, and with one batch ahead
        each side waited for the other's slower moments (scratch, MR, one
        thread: 13-28 ms an epoch in the loop's thread, about as long idle
        in the assembling one).
        """
        if not self._ahead:
            self._ahead_popped = self._popped  # no pops in flight: this count is settled
        while len(self._ahead) < AHEAD and self._ahead_popped + count <= self._epoch_length:
            if self._assembler is None:
                self._assembler = ThreadPoolExecutor(1, thread_name_prefix="torchpatch-batch")
            self._ahead.append(self._assembler.submit(self._assemble_next, count))
            self._ahead_popped += count

    def _cut_ahead(self) -> bool:
        """Whether a thread assembles the next batch during the training step.

        Only with worker processes (without them, popping may cut a subject,
        drawing from torch's global RNG, which the training loop uses) and a
        core left over by torch's intra-op threads: on busy cores a thread
        copying next to the step's parallel regions slows both down.
        """
        return self.num_workers > 0 and available_cores() > torch.get_num_threads()

    def __iter__(self) -> Iterator[Subject]:
        """The patches of one epoch."""
        self._settle()
        handed = self._popped - len(self._spare)
        within = self._epoch >= 0 and 0 < handed < self._epoch_length
        remaining = self._epoch_length - handed if within else len(self)
        for _ in range(remaining):
            yield self._pop()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the background thread and the workers."""
        if self._assembler is not None:
            self._assembler.shutdown(wait=False, cancel_futures=True)
        self._producer.close(timeout)

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown anything may be gone
            self.close(timeout=1.0)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "a Queue cannot be pickled: it owns a thread and worker processes. Use it in the training process "
            "with an outer loader of num_workers=0"
        )

    def __repr__(self) -> str:
        return (
            f"Queue(max_length={self.max_length}, num_subjects={len(self.subjects_dataset)}, "
            f"num_workers={self.num_workers}, sampler={self.sampler!r}, seed={self.seed})"
        )


__all__ = ["AHEAD", "PREPARED", "Queue"]
