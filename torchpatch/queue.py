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
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from tqdm import tqdm

from ._queue_chunks import _Chunk, _identity, _Plan, _SubjectPatches, _worker_init
from .dataset import SubjectsDataset
from .sampler.sampler import PatchSampler
from .subject import Subject

#: Seconds between liveness checks while waiting for patches.
_POLL = 0.5
#: How the Queue's error for a dead worker begins.
_DIED = "a Queue worker process died"


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
        max_length: Patches mixed at once: each pop is drawn at random among
            up to this many patches, from ``max_length / samples_per_volume``
            subjects or more. Memory holds at most about twice this many
            patches plus the workers' prefetch.
        samples_per_volume: Patches cut from each subject per epoch: an int, or
            one int per subject of the dataset. With per-subject counts and a
            ``DistributedSampler``, ranks may get different numbers of
            patches per epoch; make the counts equal across ranks (or drop
            extra steps) so collective operations do not wait forever.
        sampler: A patch sampler (e.g. ``UniformSampler(64)``).
        num_workers: Worker processes loading subjects and cutting patches;
            0 cuts them in this process when needed (simplest to debug; no
            background refill). Subjects already in the dataset's
            decode-once cache (``cache_dir``) are cut by as many threads of
            this process instead, with torchpatch's random samplers and no
            ``patch_transform``: copying out of memory maps needs no
            transfer between processes. The patches are the same either way.
        shuffle_subjects: Visit subjects in a new random order every epoch.
        shuffle_patches: Pop patches at random from the pool (else in order).
        start_background: Start the workers now rather than at the first pop.
        subject_sampler: A sampler of subject indices, typically
            ``DistributedSampler(dataset)``, so each rank visits its own
            subjects. The queue calls its ``set_epoch`` at every epoch.
        verbose: Show a progress bar while the pool fills.
        patch_transform: Applied to every patch, in the workers (augmentation).
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
        self.samples_per_volume = self._parse_samples(samples_per_volume, len(subjects_dataset))
        self.sampler = sampler
        self.num_workers = num_workers
        self.shuffle_subjects = shuffle_subjects
        self.shuffle_patches = shuffle_patches
        self.subject_sampler = subject_sampler
        self.verbose = verbose
        self.patch_transform = patch_transform
        self.seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else int(seed)

        self._plan = _Plan()
        self._plan_lock = threading.Lock()
        self._planned: dict[int, list[tuple[int, int, int]]] = {}
        loader_options: dict[str, Any] = {}
        if num_workers > 0:
            loader_options = {
                "persistent_workers": True,
                "prefetch_factor": max(1, prefetch_subjects),
                "multiprocessing_context": multiprocessing_context,
            }
        self._worker_dataset = _SubjectPatches(subjects_dataset, sampler, patch_transform)
        self._threads_for_cached = num_workers > 0
        self._executor: ThreadPoolExecutor | None = None
        self._first_routes: list[bool] = []
        self._known_cached: set[int] = set()
        self._loader = DataLoader(
            self._worker_dataset,
            batch_size=1,
            sampler=self._plan,
            num_workers=num_workers,
            collate_fn=_identity,
            worker_init_fn=_worker_init if num_workers > 0 else None,
            **loader_options,
        )
        self._condition = threading.Condition()
        self._staging: deque[tuple[int, _Chunk | None]] = deque()
        self._staged_patches = 0
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._first_iterator: Iterator[Any] | None = None
        # Consumer state.
        self._epoch = -1
        self._pool: list[tuple[_Chunk, int]] = []
        self._popped = 0
        self._epoch_length = 0
        self._stream_ended = True
        self._pop_rng = np.random.default_rng(0)
        self._sync_epoch = -1
        self._sync_iterator: Iterator[_Chunk] | None = None
        if start_background:
            self._start()

    @staticmethod
    def _parse_samples(samples: int | Sequence[int], num_subjects: int) -> list[int]:
        if isinstance(samples, bool):
            raise TypeError(f"samples_per_volume must be an int or a sequence of ints, got {samples!r}")
        values = [samples] * num_subjects if isinstance(samples, int) else list(samples)
        if len(values) != num_subjects:
            raise ValueError(f"samples_per_volume has {len(values)} values but the dataset has {num_subjects} subjects")
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"samples_per_volume must be ints >= 1, got {value!r} for subject {index}")
        return [int(v) for v in values]

    # Planning -------------------------------------------------------------------

    def _subject_indices(self, epoch: int) -> list[int]:
        if self.subject_sampler is not None:
            if hasattr(self.subject_sampler, "set_epoch"):
                self.subject_sampler.set_epoch(epoch)
            return [int(i) for i in self.subject_sampler]
        indices = np.arange(len(self.subjects_dataset))
        if self.shuffle_subjects:
            np.random.default_rng([self.seed, epoch, 0]).shuffle(indices)
        return indices.tolist()

    def _epoch_items(self, epoch: int) -> list[tuple[int, int, int]]:
        """``(subject index, seed, patch count)`` of each subject of ``epoch``, computed once."""
        with self._plan_lock:
            if epoch not in self._planned:
                seeds = np.random.SeedSequence([self.seed, epoch, 1]).generate_state(
                    len(self.subjects_dataset), np.uint64
                )
                self._planned[epoch] = [
                    (index, int(seeds[index] % (2**62)), self.samples_per_volume[index])
                    for index in self._subject_indices(epoch)
                ]
                for old in [e for e in self._planned if e < epoch - 2]:
                    del self._planned[old]
            return self._planned[epoch]

    def __len__(self) -> int:
        """Patches in the current epoch (or the next one, between epochs) for this rank."""
        if 0 < self._popped < self._epoch_length:
            return self._epoch_length
        return self._next_epoch_length()

    @property
    def iterations_per_epoch(self) -> int:
        """Alias of ``len(queue)`` (TorchIO's name)."""
        return len(self)

    # Producer -------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None or self.num_workers == 0:
            # Without workers, patches are cut in this thread when needed:
            # a background thread would share torch's global RNG with training.
            return
        # The first epoch's iterator is made here, in the calling thread, so
        # worker processes are forked before the background thread exists.
        items = self._epoch_items(0)
        self._first_routes = self._routes(items)
        self._plan.items = [item for item, here in zip(items, self._first_routes) if not here]
        self._first_iterator = iter(self._loader)
        self._thread = threading.Thread(target=self._produce, name="torchpatch-queue", daemon=True)
        self._thread.start()

    def _routes(self, items: list[tuple[int, int, int]]) -> list[bool]:
        """For each item, whether a thread of this process cuts it rather than a worker process.

        Subjects already in the decode-once cache need no decoding and no
        transform: their patches are copies out of memory maps, which threads
        make without moving anything between processes (about half the CPU
        of a worker's transfer). Everything else goes to the workers.
        """
        if not self._threads_for_cached or not self._worker_dataset.threadable:
            return [False] * len(items)
        # Checking costs a cache key (a hash of the voxels for subjects made
        # from tensors): once found, a subject is taken as cached for good.
        for index, _, _ in items:
            if index not in self._known_cached and self.subjects_dataset.is_cached(index):
                self._known_cached.add(index)
        return [index in self._known_cached for index, _, _ in items]

    def _chunks(self, epoch: int) -> Iterator[_Chunk]:
        """The chunks of ``epoch`` in plan order, from the workers or from this process's threads."""
        items = self._epoch_items(epoch)
        if epoch == 0 and self._first_iterator is not None:
            iterator, self._first_iterator = self._first_iterator, None
            routes = self._first_routes
        else:
            routes = self._routes(items)
            self._plan.items = [item for item, here in zip(items, routes) if not here]
            iterator = iter(self._loader) if len(self._plan.items) else iter(())
        here = [item for item, route in zip(items, routes) if route]
        futures: deque[Future[_Chunk]] = deque()
        submitted = 0
        ahead = self.num_workers  # each thread one subject ahead: chunks waiting here cost memory
        for route in routes:
            if not route:
                yield next(iterator)
                continue
            while submitted < len(here) and len(futures) < ahead:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="torchpatch-cut")
                futures.append(self._executor.submit(self._worker_dataset.cut_in_thread, here[submitted]))
                submitted += 1
            yield futures.popleft().result()

    def _produce(self) -> None:
        epoch = 0
        try:
            while not self._stop:
                for chunk in self._chunks(epoch):
                    with self._condition:
                        while self._staged_patches >= self.max_length and not self._stop:
                            self._condition.wait(_POLL)
                        if self._stop:
                            return
                        self._staging.append((epoch, chunk))
                        self._staged_patches += chunk.count
                        self._condition.notify_all()
                with self._condition:
                    self._staging.append((epoch, None))  # end of this epoch's stream
                    self._condition.notify_all()
                epoch += 1
        except BaseException as error:  # noqa: BLE001 - handed to the training process
            with self._condition:
                self._error = error
                self._condition.notify_all()

    # Consumer -------------------------------------------------------------------

    def _take_now(self, epoch: int) -> _Chunk | None:
        """Without workers: cut the next subject's patches in this thread."""
        if self._sync_iterator is None or self._sync_epoch != epoch:
            self._plan.items = self._epoch_items(epoch)
            self._sync_iterator = iter(self._loader)
            self._sync_epoch = epoch
        return next(self._sync_iterator, None)

    def _take_staged(self, epoch: int) -> _Chunk | None:
        """Next chunk of ``epoch`` (``None`` at its end), waiting without hanging."""
        if self.num_workers == 0:
            return self._take_now(epoch)
        try:
            return self._wait_staged(epoch)
        except RuntimeError as error:
            # A dead worker shows as PyTorch's SIGCHLD error, raised in this thread,
            # or as the background thread's error, the cause of the Queue's own.
            cause = error.__cause__
            clearer = (self._worker_death(cause) if cause is not None else None) or self._worker_death(error)
            if clearer is None:
                raise
            raise clearer from error

    def _wait_staged(self, epoch: int) -> _Chunk | None:
        with self._condition:
            while True:
                if self._staging:
                    chunk_epoch, chunk = self._staging[0]
                    if chunk_epoch == epoch:
                        self._staging.popleft()
                        if chunk is not None:
                            self._staged_patches -= chunk.count
                        self._condition.notify_all()
                        return chunk
                    self._staging.popleft()  # leftovers of an abandoned epoch
                    if chunk is not None:
                        self._staged_patches -= chunk.count
                    continue
                if self._error is not None:
                    raise RuntimeError(
                        f"the Queue's patch workers failed: {type(self._error).__name__}: {self._error}"
                    ) from self._error
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the Queue's background thread stopped; create a new Queue")
                self._condition.wait(_POLL)

    def _workers_state(self) -> tuple[list[int], list[str]]:
        """Pids of dead workers, and the subjects sent to the workers and not yet returned.

        Read from the loader's iterator (private attributes of PyTorch's
        multiprocess iterator), only to word an error: empty when unknown.
        """
        try:
            iterator = self._loader._iterator
            workers = list(iterator._workers)  # type: ignore[union-attr]
            dead = [index for index, worker in enumerate(workers) if worker.exitcode is not None]
            pending = [
                (task, info[0])
                for task, info in dict(iterator._task_info).items()  # type: ignore[union-attr]
                if len(info) == 1  # sent to worker info[0], not yet received
            ]
            lost = [task for task, worker in pending if not dead or worker in dead]
            items = self._plan.items
            names = [self._worker_dataset._describe(items[task][0]) for task in sorted(lost) if task < len(items)]
            return [int(workers[index].pid) for index in dead], names
        except Exception:  # noqa: BLE001 - diagnostics only
            return [], []

    def _worker_death(self, error: BaseException) -> RuntimeError | None:
        """A clearer error for a worker that died (killed by a signal, or exited), naming its subjects."""
        text = str(error).strip()
        if text.startswith(_DIED):
            return None
        dead, names = self._workers_state()
        handover = isinstance(error, (ConnectionError, EOFError))
        deadline = time.monotonic() + 1.0
        while handover and not dead and time.monotonic() < deadline:
            time.sleep(0.05)  # a killed worker may drop its connection before it can be reaped
            dead, names = self._workers_state()
        reported = "DataLoader worker" in text and ("killed by signal" in text or "exited unexpectedly" in text)
        # A chunk whose worker dies while handing it over fails to unpickle (the
        # worker's end of the file-descriptor hand-over is gone).
        cut_off = bool(dead) and handover
        if not reported and not cut_off:
            return None
        if cut_off:
            text = f"worker pid {', '.join(map(str, dead))} is gone: {type(error).__name__}: {text}"
        lost = ""
        if names:
            # A worker takes its tasks in order: the first was being cut, the others were waiting.
            waiting = f"; also sent to it: {', '.join(names[1:])}" if len(names) > 1 else ""
            lost = f" while cutting patches of subject {names[0]}{waiting}"
        return RuntimeError(
            f"{_DIED}{lost} ({text}). A SIGKILL often comes from the kernel's "
            f"out-of-memory killer: lower num_workers or max_length, or use a cache_dir so workers hold less"
        )

    def _begin_epoch(self) -> None:
        self._epoch += 1
        self._pool = []
        self._popped = 0
        self._epoch_length = sum(count for _, _, count in self._epoch_items(self._epoch))
        self._stream_ended = False
        self._pop_rng = np.random.default_rng([self.seed, self._epoch, 2])
        self._fill(show=self.verbose)

    def _fill(self, show: bool = False) -> None:
        target = self.max_length if self.shuffle_patches else 1
        bar = tqdm(total=min(target, self._epoch_length), desc="Filling queue", leave=False) if show else None
        while len(self._pool) < target and not self._stream_ended:
            chunk = self._take_staged(self._epoch)
            if chunk is None:
                self._stream_ended = True
                break
            self._pool.extend((chunk, i) for i in range(chunk.count))
            if bar is not None:
                bar.update(min(chunk.count, bar.total - bar.n))
        if bar is not None:
            bar.close()

    def _pop(self) -> Subject:
        self._start()
        if self._epoch < 0 or self._popped >= self._epoch_length:
            self._begin_epoch()
        self._fill()
        if not self._pool:
            raise RuntimeError(f"the Queue ran out of patches after {self._popped} of {self._epoch_length}")
        if self.shuffle_patches:
            position = int(self._pop_rng.integers(len(self._pool)))
            self._pool[position], self._pool[-1] = self._pool[-1], self._pool[position]
            chunk, index = self._pool.pop()
        else:
            chunk, index = self._pool.pop(0)
        self._popped += 1
        return chunk.patch(index)

    def __getitem__(self, index: int) -> Subject:
        if get_worker_info() is not None:
            raise RuntimeError(
                "a Queue cannot be read by a DataLoader with workers: use num_workers=0 in the outer loader "
                "and set Queue(num_workers=...) instead (the queue's own workers cut the patches)"
            )
        return self._pop()

    def __iter__(self) -> Iterator[Subject]:
        """The patches of one epoch."""
        if self._epoch >= 0 and 0 < self._popped < self._epoch_length:
            remaining = self._epoch_length - self._popped
        else:
            remaining = len(self) if self._epoch < 0 else self._next_epoch_length()
        for _ in range(remaining):
            yield self._pop()

    def _next_epoch_length(self) -> int:
        return sum(count for _, _, count in self._epoch_items(self._epoch + 1))

    def close(self, timeout: float = 10.0) -> None:
        """Stop the background thread and the workers."""
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        if self._thread is not None:
            dead, _ = self._workers_state()
            # With a dead worker the thread may sit in the loader's 5 s status poll:
            # shut the workers down now; the daemon thread ends at its next poll.
            self._thread.join(0.1 if dead else timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._first_iterator = None
        self._sync_iterator = None
        # The loader keeps its persistent workers in its cached iterator: stop them now.
        iterator = getattr(self._loader, "_iterator", None)
        self._loader._iterator = None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

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


__all__ = ["Queue"]
