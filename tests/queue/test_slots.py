"""Reused shared-memory buffers for the workers' stacks (torchpatch/queue/slots.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

# The Queue tests' synthetic subjects (tests/ is on sys.path: tests/conftest.py puts it there).
from test_queue import make_subjects
from torch.utils.data import DataLoader, Dataset

from torchpatch import DATA, Queue, SubjectsDataset, UniformSampler
from torchpatch.queue import slots as slots_module
from torchpatch.queue.slots import StackSlots

SHAPE = (4, 1, 8, 8, 8)


class Stacks(Dataset[tuple[tuple[int, ...], torch.Tensor]]):
    """Item ``i``: a stack from the slots filled with ``i``, and the slots it took."""

    def __init__(self, slots: StackSlots, count: int) -> None:
        self.slots = slots
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[tuple[int, ...], torch.Tensor]:
        stack = self.slots.allocate(SHAPE, torch.float32)
        stack.fill_(float(index))
        return self.slots.taken(), stack


def received(slots: StackSlots, count: int):
    """The stacks as the training process gets them: (slots taken, stack), one worker."""
    data = DataLoader(Stacks(slots, count), batch_size=None, num_workers=1, prefetch_factor=2)
    for taken, stack in data:
        yield tuple(taken), stack  # the default conversion makes the tuple a list


def test_a_worker_fills_the_same_slots_again_once_the_stacks_are_dropped():
    slots = StackSlots(num_workers=1, per_worker=8)
    used = []
    for index, (taken, stack) in enumerate(received(slots, 30)):
        slots.hold(taken, [stack])
        assert len(taken) == 1 and 0 <= taken[0] < 8
        assert stack.is_shared() and bool((stack == index).all())
        used.append(taken[0])
        del stack
    # Three stacks in flight at most (two prefetched, one here): the rest are reused slots.
    assert len(set(used)) <= 4


def test_a_kept_stack_keeps_its_slot_and_its_values():
    slots = StackSlots(num_workers=1, per_worker=4)
    kept: dict[int, torch.Tensor] = {}
    kept_arrays: dict[int, np.ndarray] = {}
    one_offs = 0
    for index, (taken, stack) in enumerate(received(slots, 40)):
        slots.hold(taken, [stack])
        one_offs += not taken
        if index in (2, 5):
            kept[index] = stack[1:3]  # a view keeps the buffer
        if index == 7:
            kept_arrays[index] = stack.numpy()  # so does an array of it, the tensor gone
        del stack
    for index, view in kept.items():
        assert bool((view == index).all())
    for index, array in kept_arrays.items():
        assert bool((array == index).all())
    # Three of the four slots are held for good: the worker still ran, some stacks in one-off buffers.
    assert one_offs > 0


def test_no_slots_gives_one_off_buffers():
    slots = StackSlots(num_workers=1, per_worker=0)
    for index, (taken, stack) in enumerate(received(slots, 5)):
        slots.hold(taken, [stack])
        assert taken == () and stack.is_shared() and bool((stack == index).all())


def test_outside_a_worker_nothing_is_taken():
    slots = StackSlots(num_workers=2)
    tensor = slots.allocate((2, 3), torch.int16)
    assert tensor.shape == (2, 3) and tensor.dtype == torch.int16 and not tensor.is_shared()
    assert slots.taken() == ()


def test_pickling_sends_the_shared_flags_only():
    slots = StackSlots(num_workers=2, per_worker=3)
    slots.flags[4] = 1
    copy = pickle.loads(pickle.dumps(slots))
    assert copy.per_worker == 3 and copy.flags.tolist() == slots.flags.tolist()
    assert copy.taken() == () and copy._pending == []


def queue_batches(count_epochs: int, keep_from_first: bool = False) -> tuple[list[torch.Tensor], list, list]:
    dataset = SubjectsDataset(make_subjects(6))
    queue = Queue(dataset, max_length=8, samples_per_volume=4, sampler=UniformSampler(6), num_workers=2, seed=3)
    batches, kept, copies = [], [], []
    with queue:
        for epoch in range(count_epochs):
            for patch in queue:
                batches.append(patch["t1"][DATA].clone())
                if keep_from_first and epoch == 0 and len(kept) < 5:
                    kept.append(patch["t1"][DATA])  # a view of the worker's stack
                    copies.append(patch["t1"][DATA].clone())
    return batches, kept, copies


def test_queue_patches_are_the_same_with_and_without_slots(monkeypatch):
    seen: list[tuple[int, ...]] = []
    hold = StackSlots.hold

    def recording_hold(self, slots, tensors):
        seen.append(tuple(slots))
        hold(self, slots, tensors)

    monkeypatch.setattr(StackSlots, "hold", recording_hold)
    monkeypatch.setattr(slots_module, "SLOTS_PER_WORKER", 6)
    with_slots, kept, copies = queue_batches(3, keep_from_first=True)
    used = [slot for slots in seen for slot in slots]
    assert len(seen) >= 18 and len(used) > len(set(used))  # slots were filled again (the producer runs ahead)
    # The patches kept from epoch 0 are views of the stacks: their slots were never filled again.
    assert all(torch.equal(view, copy) for view, copy in zip(kept, copies, strict=True))
    monkeypatch.setattr(slots_module, "SLOTS_PER_WORKER", 0)
    without, _, _ = queue_batches(3)
    assert len(with_slots) == len(without) == 3 * 24
    assert all(torch.equal(a, b) for a, b in zip(with_slots, without, strict=True))


@pytest.mark.parametrize("count", [1, 3])
def test_slots_are_per_worker(count):
    slots = StackSlots(num_workers=count, per_worker=5)
    assert slots.flags.shape == (count * 5,) and slots.flags.is_shared() and int(slots.flags.sum()) == 0
