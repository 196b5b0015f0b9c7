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


def test_shuffled_pool_is_drained_before_it_is_filled_again():
    """As TorchIO's Queue: a stack's patches all leave within the pool's worth of pops it came in with."""
    pool = PatchPool(max_length=4, shuffle=True)
    pool.reset(np.random.default_rng(2))
    items = stacks(6, 2)
    taken: list[int] = []

    def take() -> Patches | None:
        taken.append(len(taken))
        return items[len(taken) - 1] if len(taken) <= len(items) else None

    windows = []
    for _ in range(3):
        window = []
        for _ in range(4):
            pool.fill(take)
            window.append(int(pool.pop()[LOCATION][0]) // 10)
        windows.append(window)
    assert [sorted(set(window)) for window in windows] == [[0, 1], [2, 3], [4, 5]]
    assert len(taken) == 6  # no stack taken while patches were left


def test_last_fill_of_an_epoch_takes_the_end_of_the_stream():
    """Once ``total`` patches were taken, the same fill waits for the end marker (what the producer
    does after its last stack is done before the epoch's last pop)."""
    pool = PatchPool(max_length=4, shuffle=True)
    pool.reset(np.random.default_rng(0))
    take = taker(stacks(4, 2))
    pool.fill(take, total=8)
    assert not pool.exhausted
    for _ in range(4):
        pool.pop()
    pool.fill(take, total=8)
    assert pool.exhausted and len(pool) == 4
