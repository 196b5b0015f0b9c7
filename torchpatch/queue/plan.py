"""The Queue's epoch plan: which subjects, in which order, with which seeds and how many patches.

Pure functions of the Queue's seed and the epoch number (and, with a subject
sampler such as ``DistributedSampler``, of the indices it gives this rank),
so an epoch is the same whatever the number of workers or their timing::

    subject_order(n, seed, epoch, shuffle)     ->  [2, 0, 1]      (or the subject sampler's indices)
    plan_epoch(seed, epoch, order, counts)     ->  EpochPlan: Task(subject, seed, num_patches) per visit
    pop_generator(seed, epoch)                 ->  the order in which the pool hands out patches

Each part draws from its own stream of ``[seed, epoch, stream]``: 0 orders
the subjects, 1 seeds each subject (its sampler and transforms), 2 pops.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: Seeds handed to workers stay below this (``torch.manual_seed`` takes them).
SEED_LIMIT = 2**62


class Task(NamedTuple):
    """One subject's share of an epoch: what a worker (or a thread) is asked for.

    Example:
        >>> subject, seed, num_patches = Task(subject=3, seed=42, num_patches=8)
        >>> subject, num_patches
        (3, 8)
    """

    #: The subject's index in the dataset.
    subject: int
    #: Seeds the subject's sampler and (in a worker) torch's RNG for its transforms.
    seed: int
    #: Patches to cut.
    num_patches: int


@dataclass(frozen=True)
class EpochPlan:
    """The tasks of one epoch, in the order their patches enter the pool.

    Attributes:
        epoch: The epoch number (from 0).
        tasks: One :class:`Task` per subject visit, in order.

    Example:
        >>> plan = EpochPlan(0, (Task(1, 10, 2), Task(0, 11, 3), Task(1, 10, 2)))
        >>> plan.length, plan.counts()
        (7, {1: 4, 0: 3})
    """

    epoch: int
    tasks: tuple[Task, ...]

    @property
    def length(self) -> int:
        """Patches in the epoch."""
        return sum(task.num_patches for task in self.tasks)

    def counts(self) -> dict[int, int]:
        """Patches per subject index (a subject visited twice counts twice)."""
        counts: Counter[int] = Counter()
        for task in self.tasks:
            counts[task.subject] += task.num_patches
        return dict(counts)

    def split(self, here: Sequence[bool]) -> tuple[list[Task], list[Task]]:
        """The tasks for worker processes, and those marked ``here`` (threads of this process), each in order.

        Example:
            >>> plan = EpochPlan(0, (Task(0, 1, 2), Task(1, 2, 2), Task(2, 3, 2)))
            >>> [t.subject for t in plan.split([False, True, False])[0]]
            [0, 2]
        """
        if len(here) != len(self.tasks):
            raise ValueError(f"need one route per task: {len(self.tasks)} tasks, {len(here)} routes")
        away = [task for task, local in zip(self.tasks, here) if not local]
        local = [task for task, route in zip(self.tasks, here) if route]
        return away, local


def parse_samples_per_volume(samples: int | Sequence[int], num_subjects: int) -> list[int]:
    """One patch count per subject, from an int or one int per subject.

    Example:
        >>> parse_samples_per_volume(3, 2), parse_samples_per_volume([1, 4], 2)
        ([3, 3], [1, 4])
    """
    if isinstance(samples, bool):
        raise TypeError(f"samples_per_volume must be an int or a sequence of ints, got {samples!r}")
    values = [samples] * num_subjects if isinstance(samples, int) else list(samples)
    if len(values) != num_subjects:
        raise ValueError(f"samples_per_volume has {len(values)} values but the dataset has {num_subjects} subjects")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"samples_per_volume must be ints >= 1, got {value!r} for subject {index}")
    return [int(v) for v in values]


def subject_order(num_subjects: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The subject indices of ``epoch``: all of them, shuffled from ``[seed, epoch, 0]`` when asked.

    Example:
        >>> subject_order(4, seed=0, epoch=0, shuffle=False)
        [0, 1, 2, 3]
        >>> sorted(subject_order(4, seed=0, epoch=0, shuffle=True))
        [0, 1, 2, 3]
    """
    indices = np.arange(num_subjects)
    if shuffle:
        np.random.default_rng([seed, epoch, 0]).shuffle(indices)
    return [int(i) for i in indices]


def subject_seeds(seed: int, epoch: int, num_subjects: int) -> list[int]:
    """The seed of each subject (by index) in ``epoch``, below :data:`SEED_LIMIT`.

    Example:
        >>> subject_seeds(0, 0, 3) == subject_seeds(0, 0, 3) != subject_seeds(0, 1, 3)
        True
    """
    seeds = np.random.SeedSequence([seed, epoch, 1]).generate_state(num_subjects, np.uint64)
    return [int(value % SEED_LIMIT) for value in seeds]


def plan_epoch(seed: int, epoch: int, order: Iterable[int], samples_per_volume: Sequence[int]) -> EpochPlan:
    """The plan of ``epoch``: one task per index of ``order``, seeded per subject.

    Args:
        seed: The Queue's seed.
        epoch: The epoch number.
        order: The subject indices this rank visits, in order.
        samples_per_volume: Patches per subject, indexed by subject.

    Example:
        >>> plan = plan_epoch(0, 0, [1, 0], [2, 3])
        >>> [(task.subject, task.num_patches) for task in plan.tasks], plan.length
        ([(1, 3), (0, 2)], 5)
    """
    seeds = subject_seeds(seed, epoch, len(samples_per_volume))
    return EpochPlan(epoch, tuple(Task(int(i), seeds[int(i)], samples_per_volume[int(i)]) for i in order))


def pop_generator(seed: int, epoch: int) -> np.random.Generator:
    """The generator of the order in which the pool hands out the patches of ``epoch``.

    Example:
        >>> int(pop_generator(0, 1).integers(100)) == int(pop_generator(0, 1).integers(100))
        True
    """
    return np.random.default_rng([seed, epoch, 2])


class EpochPlanner:
    """Plans each epoch once, on demand, from any thread; keeps the last few.

    The producer plans ahead of the consumer, so both ask for the same epoch:
    it is computed once (the subject sampler's ``set_epoch`` is called once
    per epoch) and dropped when three epochs old.

    Args:
        seed: The Queue's seed.
        samples_per_volume: Patches per subject, indexed by subject.
        shuffle_subjects: Shuffle the subjects every epoch (without a subject sampler).
        subject_sampler: Gives this rank's subject indices (its ``set_epoch``
            is called first when it has one).

    Example:
        >>> planner = EpochPlanner(seed=0, samples_per_volume=[2, 2, 2], shuffle_subjects=False)
        >>> planner(0).length, [task.subject for task in planner(0).tasks]
        (6, [0, 1, 2])
    """

    def __init__(
        self,
        seed: int,
        samples_per_volume: Sequence[int],
        shuffle_subjects: bool,
        subject_sampler: Any = None,
    ) -> None:
        self.seed = seed
        self.samples_per_volume = list(samples_per_volume)
        self.shuffle_subjects = shuffle_subjects
        self.subject_sampler = subject_sampler
        self._lock = threading.Lock()
        self._plans: dict[int, EpochPlan] = {}

    def order(self, epoch: int) -> list[int]:
        """The subject indices of ``epoch`` (from the subject sampler when there is one)."""
        if self.subject_sampler is not None:
            if hasattr(self.subject_sampler, "set_epoch"):
                self.subject_sampler.set_epoch(epoch)
            return [int(i) for i in self.subject_sampler]
        return subject_order(len(self.samples_per_volume), self.seed, epoch, self.shuffle_subjects)

    def __call__(self, epoch: int) -> EpochPlan:
        with self._lock:
            if epoch not in self._plans:
                self._plans[epoch] = plan_epoch(self.seed, epoch, self.order(epoch), self.samples_per_volume)
                for old in [e for e in self._plans if e < epoch - 2]:
                    del self._plans[old]
            return self._plans[epoch]


__all__ = [
    "SEED_LIMIT",
    "EpochPlan",
    "EpochPlanner",
    "Task",
    "parse_samples_per_volume",
    "plan_epoch",
    "pop_generator",
    "subject_order",
    "subject_seeds",
]
