"""The Queue's pool: stacks in, single patches out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from torchpatch import LOCATION, ScalarImage, Subject
from torchpatch.patches import Patches
from torchpatch.queue.pool import PatchPool


def stacks(count: int, per_stack: int) -> list[Patches]:
    """``count`` stacks of ``per_stack`` 1x1x1 patches; patch n of stack s lies at i = 10 * s + n."""
    subject = Subject(t1=ScalarImage(tensor=torch.arange(64.0).reshape(1, 64, 1, 1)))
    return [subject.cut([[10 * s + n, 0, 0, 10 * s + n + 1, 1, 1] for n in range(per_stack)]) for s in range(count)]


def taker(items: list[Patches]) -> Callable[[], Patches | None]:
    iterator = iter(items)
    return lambda: next(iterator, None)


def test_unshuffled_pool_holds_one_stack_and_pops_in_order():
    pool = PatchPool(max_length=100, shuffle=False)
    pool.reset(np.random.default_rng(0))
    take = taker(stacks(3, 2))
    popped = []
    while True:
        pool.fill(take)
        if not len(pool):
            break
        assert len(pool) <= 2
        popped.append(int(pool.pop()[LOCATION][0]))
    assert popped == [0, 1, 10, 11, 20, 21] and pool.exhausted


def test_shuffled_pool_fills_to_max_length_and_mixes_stacks():
    pool = PatchPool(max_length=5, shuffle=True)
    pool.reset(np.random.default_rng(3))
    pool.fill(taker(stacks(4, 2)))
    assert len(pool) == 6  # whole stacks: the first that reaches max_length
    first = [int(pool.pop()[LOCATION][0]) // 10 for _ in range(6)]
    assert Counter(first) == {0: 2, 1: 2, 2: 2} and first != sorted(first)


def test_the_same_generator_gives_the_same_pops():
    orders = []
    for _ in range(2):
        pool = PatchPool(max_length=8, shuffle=True)
        pool.reset(np.random.default_rng(7))
        pool.fill(taker(stacks(4, 2)))
        orders.append([pool.pop()[LOCATION].tolist() for _ in range(8)])
    assert orders[0] == orders[1]


def test_reset_empties_the_pool_for_a_new_epoch():
    pool = PatchPool(max_length=4, shuffle=True)
    pool.reset(np.random.default_rng(0))
    pool.fill(taker(stacks(1, 3)))
    pool.fill(lambda: None)
    assert pool.exhausted and len(pool) == 3
    pool.reset(np.random.default_rng(0))
    assert len(pool) == 0 and not pool.exhausted


def test_popped_patches_hold_their_voxels():
    pool = PatchPool(max_length=4, shuffle=True)
    pool.reset(np.random.default_rng(1))
    pool.fill(taker(stacks(2, 2)))
    for _ in range(4):
        patch = pool.pop()
        assert float(patch["t1"].data) == float(patch[LOCATION][0])
