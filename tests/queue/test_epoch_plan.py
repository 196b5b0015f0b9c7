"""The Queue's epoch plan: pure functions of the seed and the epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from torchpatch.queue.plan import (
    SEED_LIMIT,
    EpochPlan,
    EpochPlanner,
    Task,
    parse_samples_per_volume,
    plan_epoch,
    pop_generator,
    subject_order,
    subject_seeds,
)


def test_an_int_gives_every_subject_the_same_count():
    assert parse_samples_per_volume(3, 4) == [3, 3, 3, 3]


def test_numpy_ints_per_subject_become_python_ints():
    counts = parse_samples_per_volume(np.array([1, 2]).tolist(), 2) + parse_samples_per_volume([np.int64(5)], 1)
    assert counts == [1, 2, 5] and all(type(c) is int for c in counts)


@pytest.mark.parametrize(
    ("samples", "error", "message"),
    [
        ([1, 2], ValueError, "has 2 values but the dataset has 3 subjects"),
        (0, ValueError, "samples_per_volume must be ints >= 1"),
        ([1, 0, 2], ValueError, "got 0 for subject 1"),
        ([1, 2.5, 2], ValueError, "got 2.5 for subject 1"),
        ([1, True, 2], ValueError, "got True for subject 1"),
        (True, TypeError, "samples_per_volume must be an int or a sequence of ints"),
    ],
)
def test_bad_counts_name_the_value_and_the_subject(samples: object, error: type[Exception], message: str):
    with pytest.raises(error, match=message):
        parse_samples_per_volume(samples, 3)  # type: ignore[arg-type]


def test_without_shuffling_subjects_come_in_index_order():
    assert subject_order(5, seed=3, epoch=7, shuffle=False) == [0, 1, 2, 3, 4]


def test_shuffled_order_is_a_permutation_that_depends_on_seed_and_epoch():
    orders = {tuple(subject_order(8, seed, epoch, shuffle=True)) for seed in (0, 1) for epoch in (0, 1)}
    assert all(sorted(order) == list(range(8)) for order in orders)
    assert len(orders) == 4
    assert subject_order(8, 0, 1, True) == subject_order(8, 0, 1, True)


def test_seeds_are_per_subject_index_below_the_limit_and_change_every_epoch():
    seeds = subject_seeds(5, 0, 4)
    assert len(set(seeds)) == 4 and all(0 <= s < SEED_LIMIT and type(s) is int for s in seeds)
    assert subject_seeds(5, 0, 4) == seeds != subject_seeds(5, 1, 4)
    assert subject_seeds(5, 0, 6)[:4] == seeds  # a subject's seed does not depend on the dataset's size


def test_a_subject_keeps_its_seed_whatever_its_position_in_the_order():
    forward = plan_epoch(1, 0, [0, 1, 2], [2, 2, 2])
    backward = plan_epoch(1, 0, [2, 1, 0], [2, 2, 2])
    assert {t.subject: t.seed for t in forward.tasks} == {t.subject: t.seed for t in backward.tasks}


def test_plan_counts_patches_per_subject_and_in_all():
    plan = plan_epoch(0, 0, [2, 0, 2], [1, 4, 3])
    assert [(t.subject, t.num_patches) for t in plan.tasks] == [(2, 3), (0, 1), (2, 3)]
    assert plan.length == 7
    assert plan.counts() == {2: 6, 0: 1}  # a subject a DistributedSampler repeats counts twice


def test_split_keeps_the_plan_order_on_each_side():
    tasks = tuple(Task(i, i, 1) for i in range(5))
    away, here = EpochPlan(0, tasks).split([True, False, True, False, False])
    assert [t.subject for t in away] == [1, 3, 4] and [t.subject for t in here] == [0, 2]


def test_split_needs_one_route_per_task():
    with pytest.raises(ValueError, match="3 tasks, 2 routes"):
        EpochPlan(0, tuple(Task(i, i, 1) for i in range(3))).split([True, False])


def test_pop_order_is_seeded_per_epoch():
    draws = [pop_generator(4, epoch).integers(1000, size=8).tolist() for epoch in (0, 0, 1)]
    assert draws[0] == draws[1] != draws[2]


class RankSampler:
    """A subject sampler like DistributedSampler: this rank's indices, reshuffled by set_epoch."""

    def __init__(self) -> None:
        self.epoch = -1
        self.calls = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.calls += 1

    def __iter__(self) -> Iterator[int]:
        return iter([self.epoch % 3, 3])


def test_planner_plans_each_epoch_once_from_the_subject_sampler():
    sampler = RankSampler()
    planner = EpochPlanner(seed=0, samples_per_volume=[1, 2, 3, 4], shuffle_subjects=True, subject_sampler=sampler)
    assert [t.subject for t in planner(1).tasks] == [1, 3]
    assert planner(1) is planner(1) and sampler.calls == 1
    assert planner(1).length == 6
    assert [t.subject for t in planner(2).tasks] == [2, 3]


def test_planner_forgets_epochs_three_behind():
    planner = EpochPlanner(seed=0, samples_per_volume=[1, 1], shuffle_subjects=True)
    first = planner(0)
    planner(3)
    assert planner(0) is not first and planner(0) == first  # recomputed, the same plan
