"""The Queue's producer: each subject's patches, cut in worker processes or threads, in plan order.

A worker loads a subject (its dataset transform included), asks the sampler
for the subject's patches stacked per image in shared memory, applies the
patch transform when there is one, and sends the stack back in one
transfer. Subjects already in the decode-once cache need no
decoding: when the sampler is :attr:`~torchpatch.PatchSampler.thread_safe`
and there is no patch transform, the training process takes them
instead: it only plans the patches (deferred :class:`~torchpatch.patches.Patches`),
and each box is copied once, straight from the memory map into the batch the
Queue hands out (:mod:`~torchpatch.queue.batches`), with nothing moved
between processes::

    EpochPlan tasks ──┬─ not cached ─> internal DataLoader ─> workers: SubjectPatches[task]  ─┐
                      └─ cached ─────> staged as a task (planned by the taker), or planned   ─┴─> stacks in plan order
                                       by a thread pool when planning is slow                      │
    background thread: stages the stacks (max_length patches ahead; cached: 1 each) ──> take(epoch) <─┘

A cached subject whose planning takes under :data:`INLINE_PLAN_SECONDS` (a
running mean; 0.15-0.35 ms for the uniform sampler) is staged unplanned
(:class:`Unplanned`) and planned by :meth:`Producer.take`, in the thread
that fills the pool: planned by the background thread instead, the two
threads took turns with Python's lock and handing each subject over cost as
much as planning it (a cached CT epoch of the queue benchmark with the
copies and the step taken out: 15-22 ms and 17-24 ms of CPU against 12-14
and 12-15 planned by the taker; scratch, three runs of seven epochs). The
taker plans the cached subjects staged after it in the same run
(:data:`PLAN_BURST`): they hold no voxels, count as one patch each towards
``max_length``, and so an epoch's are all staged (planning in one run:
3.5 against 5.3 ms an epoch in the same loop, the caches being cold at
every pool fill).
Slower planners (a weighted sampler's map) go to a pool of ``num_workers``
threads, ahead of the taker.

Without workers, :meth:`Producer.take` cuts the next subject in the calling
thread (torch's global RNG must not be shared with a background thread).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from torch.utils.data import DataLoader

from ..patches import Patches
from . import diagnostics, transfer
from .cutting import SubjectPatches
from .plan import EpochPlan, Task
from .spinning import SpinLimit
from .workers import augmenting_worker_init, steady_heap, worker_init

#: Seconds between liveness checks while waiting for patches.
POLL = 0.5

#: Cached subjects are planned by the taker while planning one takes less than this (a running
#: mean), else by a pool of threads (see the module's docstring).
INLINE_PLAN_SECONDS = 0.002

#: Cached subjects :meth:`Producer.take` plans in one run (the one taken and those staged after it).
PLAN_BURST = 16


class Unplanned:
    """A cached subject staged before its patches are planned: :meth:`Producer.take` plans them.

    Example:
        >>> len(Unplanned(Task(3, seed=1, num_patches=16)))
        16
    """

    __slots__ = ("task",)

    def __init__(self, task: Task) -> None:
        self.task = task

    def __len__(self) -> int:
        return int(self.task.num_patches)


def _weight(stack: Patches | Unplanned) -> int:
    """What a staged stack counts towards ``max_staged``: its patches, or 1 for a cached subject left to the taker.

    An unplanned subject holds nothing (nor do its patches once planned:
    boxes of memory maps, copied when a batch is made); counted as one, an
    epoch's are all staged, and :meth:`Producer.take` plans them back to
    back. It keeps that weight when planned in place, until it is taken.
    Subjects planned ahead by the pool's threads count their patches, which
    bounds how far ahead those threads work.
    """
    return 1 if isinstance(stack, Unplanned) else len(stack)


class _Tasks:
    """Sampler of the internal loader: the tasks of the epoch being read by the workers."""

    def __init__(self) -> None:
        self.items: list[Task] = []

    def __iter__(self) -> Iterator[Task]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _first(items: list[Patches]) -> Patches:
    return items[0]


class Producer:
    """The stacks of each epoch, in plan order, from worker processes or threads, staged in the background.

    Args:
        worker_dataset: Cuts one task's patches.
        plans: The plan of an epoch, by number.
        num_workers: Worker processes (0: cut in the calling thread when taken).
        max_staged: Patches staged ahead of the consumer, at most (about; a cached subject counts as one).
        prefetch_subjects: Subjects each worker prepares ahead.
        multiprocessing_context: Passed to the internal ``DataLoader``.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject, SubjectsDataset, UniformSampler
        >>> from torchpatch.queue.plan import EpochPlanner
        >>> dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8))) for _ in range(2)])
        >>> producer = Producer(SubjectPatches(dataset, UniformSampler(4), None), EpochPlanner(0, [3, 3], False))
        >>> [len(producer.take(0)), len(producer.take(0)), producer.take(0)]
        [3, 3, None]
        >>> producer.close()
    """

    def __init__(
        self,
        worker_dataset: SubjectPatches,
        plans: Callable[[int], EpochPlan],
        num_workers: int = 0,
        max_staged: int = 1,
        prefetch_subjects: int = 2,
        multiprocessing_context: Any = None,
    ) -> None:
        self.worker_dataset = worker_dataset
        self.plans = plans
        self.num_workers = num_workers
        self.max_staged = max_staged
        #: Whether cached subjects go to threads of this process (when the worker dataset is thread-safe).
        self.threads_for_cached = num_workers > 0
        #: The threads cutting cached subjects when planning is slow, made when first needed.
        self.executor: ThreadPoolExecutor | None = None
        #: Cached subjects are left to the taker to plan while planning one takes less than this.
        self.inline_plan_seconds = INLINE_PLAN_SECONDS
        #: Cached subjects cut in this process so far (planned by the taker or by the pool's threads).
        self.cut_here = 0
        self._plan_seconds = 0.0  # running mean of a cached subject's planning
        #: The background thread staging stacks (``None`` before :meth:`start` and without workers).
        self.thread: threading.Thread | None = None
        self._tasks = _Tasks()
        options: dict[str, Any] = {}
        if num_workers > 0:
            augmenting = worker_dataset.patch_transform is not None or worker_dataset.dataset.transform is not None
            options = {
                "worker_init_fn": augmenting_worker_init if augmenting else worker_init,
                "persistent_workers": True,
                "prefetch_factor": max(1, prefetch_subjects),
                "multiprocessing_context": multiprocessing_context,
            }
        self.loader = DataLoader(
            worker_dataset,
            batch_size=1,
            sampler=self._tasks,
            num_workers=num_workers,
            collate_fn=_first,
            **options,
        )
        self._known_cached: set[int] = set()
        self._first_routes: list[bool] = []
        self._first_iterator: Iterator[Patches] | None = None
        self._condition = threading.Condition()
        self._staging: deque[tuple[int, Patches | Unplanned | None, int]] = deque()  # epoch, stack, weight
        self._staged_patches = 0
        self._error: BaseException | None = None
        self._stop = False
        self._sync_epoch = -1
        self._sync_iterator: Iterator[Patches] | None = None
        #: Takes the stacks the workers send in buffers they keep; each is marked free when its last use ends.
        self.receiver = transfer.Receiver()
        #: Held while the workers have subjects to cut: torch's threads here then leave them the cores.
        self.spin_limit = SpinLimit(num_workers)

    def start(self) -> None:
        """Start the workers and the background thread (once; nothing without workers).

        The training process's heap is made steady (:func:`~.workers.steady_heap`)
        once the workers are forked, so that they keep glibc's thresholds of before.
        """
        if self.thread is not None:
            return
        if self.num_workers == 0:
            # Without workers, patches are cut in this thread when needed:
            # a background thread would share torch's global RNG with training.
            steady_heap()
            return
        # Every stack held here keeps a file open; the workers forked below inherit the limit.
        transfer.allow_open_files()
        # The first epoch's iterator is made here, in the calling thread, so
        # worker processes are forked before the background thread exists.
        plan = self.plans(0)
        self._first_routes = self._routes(plan)
        self._tasks.items = plan.split(self._first_routes)[0]
        self._first_iterator = iter(self.loader)
        steady_heap()  # after the fork: the step's temporaries reused, not trimmed and faulted in again
        self._name_dead_workers()
        self.thread = threading.Thread(target=self._produce, name="torchpatch-queue", daemon=True)
        self.thread.start()

    def _name_dead_workers(self) -> None:
        """Make PyTorch's SIGCHLD error name the Queue's subjects, wherever the training loop is.

        PyTorch's handler (installed when the workers start, in the main
        thread) raises a bare "DataLoader worker (pid N) is killed by signal"
        wherever the main thread is, often inside the user's training step,
        away from :meth:`take`. This wraps it: when one of this loader's
        workers is dead, the error becomes :func:`~.diagnostics.explain_worker_death`'s.
        """
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGCHLD"):
            return
        previous = signal.getsignal(signal.SIGCHLD)
        if not callable(previous):
            return
        producer = weakref.ref(self)

        def handler(signum: int, frame: Any) -> None:
            try:
                previous(signum, frame)
            except RuntimeError as error:
                owner = producer()
                if owner is None or not diagnostics.any_worker_dead(owner.loader):
                    raise
                clearer = owner._explain(error)
                if clearer is None:
                    raise
                raise clearer from error

        signal.signal(signal.SIGCHLD, handler)

    def _routes(self, plan: EpochPlan) -> list[bool]:
        """For each task, whether this process cuts it (a thread of its own) rather than a worker process.

        Subjects already in the decode-once cache need no decoding and no
        transform: their patches are copies out of memory maps, which threads
        make without moving anything between processes (about half the CPU
        of a worker's transfer). Everything else goes to the workers.
        """
        if not self.threads_for_cached or not self.worker_dataset.thread_safe:
            return [False] * len(plan.tasks)
        # Checking costs a cache key (a hash of the voxels for subjects made
        # from tensors): once found, a subject is taken as cached for good.
        dataset = self.worker_dataset.dataset
        for task in plan.tasks:
            if task.subject not in self._known_cached and dataset.is_cached(task.subject):
                self._known_cached.add(task.subject)
        return [task.subject in self._known_cached for task in plan.tasks]

    def _stacks(self, epoch: int) -> Iterator[Patches | Unplanned]:
        """The stacks of ``epoch`` in plan order: from the workers, the pool's threads, or left to the taker."""
        plan = self.plans(epoch)
        if epoch == 0 and self._first_iterator is not None:
            iterator, self._first_iterator = self._first_iterator, None
            routes = self._first_routes
        else:
            routes = self._routes(plan)
            self._tasks.items = plan.split(routes)[0]
            iterator = iter(self.loader) if len(self._tasks.items) else iter(())
        here = plan.split(routes)[1]
        futures: deque[Future[Patches]] = deque()
        submitted = 0  # of ``here``: planned in this thread, or handed to the pool
        ahead = self.num_workers  # each thread one subject ahead: stacks waiting here cost memory
        to_workers = len(plan.tasks) - len(here)
        if to_workers:
            self.spin_limit.hold()  # after start() forked the workers: they inherit no team
        for task, route in zip(plan.tasks, routes):
            if not route:
                stack = next(iterator)
                to_workers -= 1
                if not to_workers:
                    self.spin_limit.release()  # the workers are idle until the next epoch's tasks
                self.receiver.adopt(stack)
                yield stack
                self._read_new_entry(task.subject)
                continue
            staged: Patches | Unplanned
            if not futures and self._plan_seconds < self.inline_plan_seconds:
                submitted += 1  # nothing in the pool: this task is here[submitted]
                staged = Unplanned(task)  # planned by take(), in the thread that fills the pool
            else:
                while submitted < len(here) and len(futures) < ahead:
                    if self.executor is None:
                        self.executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="torchpatch-cut")
                    futures.append(self.executor.submit(self._cut_here, here[submitted]))
                    submitted += 1
                staged = futures.popleft().result()
            self.cut_here += 1  # counted here, in the one thread that yields
            yield staged

    def _cut_here(self, task: Task) -> Patches:
        """A cached subject's patches, cut in this process (any thread); updates the running mean of planning one."""
        start = time.perf_counter()
        stack = self.worker_dataset.cut_in_thread(task)
        # From the pool's threads too: an update lost to a race only delays the switch a subject.
        self._plan_seconds = 0.75 * self._plan_seconds + 0.25 * (time.perf_counter() - start)
        return stack

    def _read_new_entry(self, subject: int) -> None:
        """Read the cache entry a worker just wrote for ``subject`` now, while the loop waits for workers.

        The next epoch cuts it in this process's threads, beside the loop's
        batch copies: reading entries there for the first time (about a
        millisecond of Python each) slowed those copies by 15-25 ms an epoch.
        """
        dataset = self.worker_dataset.dataset
        if not (self.threads_for_cached and self.worker_dataset.thread_safe and dataset.caches):
            return
        if subject in self._known_cached or not dataset.is_cached(subject):
            return
        self._known_cached.add(subject)
        with contextlib.suppress(Exception):  # a broken entry fails where it is cut, naming the subject
            dataset[subject]  # parsed once, kept by the dataset's cache for the next epochs

    def _produce(self) -> None:
        epoch = 0
        try:
            while not self._stop:
                for stack in self._stacks(epoch):
                    with self._condition:
                        while self._staged_patches >= self.max_staged and not self._stop:
                            self._condition.wait(POLL)
                        if self._stop:
                            return
                        weight = _weight(stack)
                        self._staging.append((epoch, stack, weight))
                        self._staged_patches += weight
                        self._condition.notify_all()
                with self._condition:
                    self._staging.append((epoch, None, 0))  # end of this epoch's stream
                    self._condition.notify_all()
                epoch += 1
        except BaseException as error:  # noqa: BLE001 - handed to the training process
            with self._condition:
                self._error = error
                self._condition.notify_all()

    def take(self, epoch: int) -> Patches | None:
        """The next stack of ``epoch`` (``None`` at its end), waiting without hanging.

        A cached subject staged :class:`Unplanned` is planned here, in the caller's thread.
        """
        if self.num_workers == 0:
            return self._take_now(epoch)
        self.start()
        try:
            staged = self._wait_staged(epoch)
        except RuntimeError as error:
            # A dead worker shows as PyTorch's SIGCHLD error, raised in this thread,
            # or as the background thread's error, the cause of the Queue's own.
            cause = error.__cause__
            clearer = (self._explain(cause) if cause is not None else None) or self._explain(error)
            if clearer is None:
                raise
            raise clearer from error
        if not isinstance(staged, Unplanned):
            return staged
        stack = self._cut_here(staged.task)
        self._plan_staged(epoch)
        return stack

    def staged(self, epoch: int) -> tuple[list[int], bool]:
        """The patches of each stack of ``epoch`` staged next, in order, and whether its end is staged too.

        :meth:`take` hands these out without waiting. Always ``([], False)``
        without workers (:meth:`take` cuts each subject when asked).
        """
        sizes: list[int] = []
        if self.num_workers == 0:
            return sizes, False
        with self._condition:
            for stack_epoch, stack, _ in self._staging:
                if stack_epoch != epoch:
                    break
                if stack is None:
                    return sizes, True
                sizes.append(len(stack))
        return sizes, False

    def _plan_staged(self, epoch: int) -> None:
        """Plan the cached subjects staged next (up to :data:`PLAN_BURST`), back to back with the one just taken.

        The training loop's copies and step stream far more than the
        caches hold, so what planning touches is cold again at every pool
        fill: the first subject of a fill took 0.55-0.72 ms, the next ones
        0.17-0.39 ms (a cached CT epoch, default threads). Planned here in one
        run, the epoch's subjects pay that once. A subject whose planning
        fails stays unplanned: its error is raised when it is taken.
        """
        with self._condition:
            burst: list[tuple[int, Unplanned, int]] = []
            while self._staging and len(burst) < PLAN_BURST - 1:
                stack_epoch, stack, weight = self._staging[0]
                if stack_epoch != epoch or not isinstance(stack, Unplanned):
                    break
                burst.append((stack_epoch, stack, weight))
                self._staging.popleft()
        planned: list[tuple[int, Patches | Unplanned | None, int]] = []
        for stack_epoch, unplanned, weight in burst:
            try:
                planned.append((stack_epoch, self._cut_here(unplanned.task), weight))
            except Exception:  # noqa: BLE001 - raised again, naming the subject, when it is taken
                planned.append((stack_epoch, unplanned, weight))
        with self._condition:
            self._staging.extendleft(reversed(planned))  # still first: the producer only appends

    def _explain(self, error: BaseException) -> RuntimeError | None:
        items = self._tasks.items

        def describe(task: int) -> str | None:
            return self.worker_dataset.describe(items[task].subject) if task < len(items) else None

        return diagnostics.explain_worker_death(error, self.loader, describe)

    def _take_now(self, epoch: int) -> Patches | None:
        """Without workers: cut the next subject's patches in this thread."""
        if self._sync_iterator is None or self._sync_epoch != epoch:
            self._tasks.items = list(self.plans(epoch).tasks)
            self._sync_iterator = iter(self.loader)
            self._sync_epoch = epoch
        return next(self._sync_iterator, None)

    def _wait_staged(self, epoch: int) -> Patches | Unplanned | None:
        with self._condition:
            while True:
                if self._staging:
                    stack_epoch, stack, weight = self._staging.popleft()
                    self._staged_patches -= weight
                    if stack_epoch == epoch:
                        self._condition.notify_all()
                        return stack
                    continue  # leftovers of an abandoned epoch
                if self._error is not None:
                    advice = transfer.out_of_files(self._error)
                    raise RuntimeError(
                        f"the Queue's patch workers failed: {type(self._error).__name__}: {self._error}"
                        + (f" -- {advice}" if advice else "")
                    ) from self._error
                if self.thread is None or not self.thread.is_alive():
                    raise RuntimeError("the Queue's background thread stopped; create a new Queue")
                self._condition.wait(POLL)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the background thread, the threads and the workers."""
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        self.spin_limit.close()
        if self.thread is not None:
            # With a dead worker the thread may sit in the loader's 5 s status poll:
            # shut the workers down now; the daemon thread ends at its next poll.
            self.thread.join(0.1 if diagnostics.any_worker_dead(self.loader) else timeout)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self._first_iterator = None
        self._sync_iterator = None
        diagnostics.shutdown_workers(self.loader)


__all__ = ["INLINE_PLAN_SECONDS", "PLAN_BURST", "POLL", "Producer", "Unplanned"]
