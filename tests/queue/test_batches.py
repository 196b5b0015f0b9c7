"""The Queue's batches: patches copied once into reused batch buffers (torchpatch/queue/batches.py)."""

from __future__ import annotations

import itertools
import mmap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

# The Queue tests' synthetic subjects (tests/ is on sys.path: tests/conftest.py puts it there).
from test_queue import SIZE, Alternate, make_subjects

from torchpatch import (
    DATA,
    LOCATION,
    LabelMap,
    Queue,
    ScalarImage,
    Subject,
    SubjectsDataset,
    SubjectsLoader,
    UniformSampler,
    io,
)
from torchpatch.io import base as io_base
from torchpatch.loader import StackedPatches, collate_subjects
from torchpatch.queue import queue as queue_module
from torchpatch.queue.batches import HUGE_PAGE, KEPT, MAPPED_BYTES, BufferRing, PreparedBatch
from torchpatch.queue.pool import PatchPool
from torchpatch.queue.queue import AHEAD


def assert_same_batches(batches: list[dict], expected: list[dict]) -> None:
    assert len(batches) == len(expected)
    for batch, reference in zip(batches, expected):
        assert list(batch.keys()) == list(reference.keys())
        assert torch.equal(batch[LOCATION], reference[LOCATION]) and batch[LOCATION].dtype == torch.int64
        assert batch["subject_id"] == reference["subject_id"]
        for name in ("t1", "seg"):
            assert batch[name][DATA].dtype == reference[name][DATA].dtype
            assert torch.equal(batch[name][DATA], reference[name][DATA])
            assert torch.equal(batch[name]["affine"], reference[name]["affine"])
            assert batch[name]["stem"] == reference[name]["stem"] and batch[name]["path"] == reference[name]["path"]
            assert batch[name]["type"] == reference[name]["type"]
            assert list(batch[name]) == list(reference[name]) and batch[name]["affine"].dtype == torch.float64


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("ahead", [False, True])
def test_loader_batches_are_the_collated_single_pops_and_kept_batches_stay_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool, padded: bool, ahead: bool
):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: ahead and self.num_workers > 0)
    options = {"cache_dir": tmp_path / "cache"} if cached else {}
    dataset = SubjectsDataset(make_subjects(), **options)  # type: ignore[arg-type]
    sampler = UniformSampler((SIZE + 2, 5, 3), padding_mode=0) if padded else UniformSampler((6, 5, 3))
    kept, single = [], []
    for by_batch in (True, False):
        queue = Queue(dataset, 6, 3, sampler, num_workers=2, seed=3)
        try:
            for _ in range(3):  # epoch 1 fills the cache; 2 and 3 read it (deferred copies)
                if by_batch:
                    kept.append(list(SubjectsLoader(queue, batch_size=5)))  # batches of 5, 5, 2: all kept
                else:
                    patches = list(queue)
                    single.append([collate_subjects(patches[i : i + 5]) for i in range(0, len(patches), 5)])
        finally:
            queue.close()
    assert_same_batches(list(itertools.chain(*kept)), list(itertools.chain(*single)))


def test_batches_of_changing_sizes_pop_the_same_patches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: True)
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    runs = []
    for sizes in ([3, 3, 1, 2], [1] * 9):
        queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=8)
        try:
            patches = []
            for size in sizes:
                patches.extend(queue.__getitems__(list(range(size))))
            assert len(queue) == 12
            patches.extend(queue)  # the rest of the epoch (after patches popped ahead)
            runs.append(patches)
        finally:
            queue.close()
    assert len(runs[0]) == len(runs[1]) == 12
    for a, b in zip(*runs):
        assert torch.equal(a[LOCATION], b[LOCATION]) and torch.equal(a["t1"].data, b["t1"].data)


def test_batches_made_ahead_stay_within_the_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: True)
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=8)
    try:
        in_flight = []
        for epoch in range(2):
            handed = 0
            for _ in range(6):  # 12 patches an epoch in batches of 2
                handed += len(queue.__getitems__([0, 1]))
                in_flight.append(len(queue._ahead))
                # The batches in the making pop only what is left of this epoch.
                assert handed + 2 * len(queue._ahead) <= 12
            assert handed == 12 and queue._epoch == epoch
        assert max(in_flight) == AHEAD and in_flight[-1] == 0
    finally:
        queue.close()


def staged_to_end(queue: Queue, epoch: int) -> None:
    """Wait (10 s at most) until the producer has staged all of ``epoch``: the pops ahead need it."""
    deadline = time.monotonic() + 10
    while not queue._producer.staged(epoch)[1] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue._producer.staged(epoch)[1]


def test_a_warm_epochs_batches_popped_ahead_are_the_batches_popped_in_turn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)  # the training loop's thread assembles
    copied = []  # the batches copied by PreparedBatch.assemble, and how many were popped ahead then
    assemble_prepared = PreparedBatch.assemble

    def recorded(self: PreparedBatch, *args: object, **kwargs: object) -> object:
        copied.append(len(queue._prepared))
        return assemble_prepared(self, *args, **kwargs)

    monkeypatch.setattr(PreparedBatch, "assemble", recorded)
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    runs = []
    for prepared in (1, queue_module.PREPARED):
        monkeypatch.setattr(queue_module, "PREPARED", prepared)
        copied.clear()
        queue = Queue(dataset, 6, 3, UniformSampler((6, 5, 3)), num_workers=2, seed=3)
        try:
            batches = []
            for epoch in range(3):  # 12 patches an epoch: batches of 5, 5 and 2
                staged_to_end(queue, epoch)
                batches.extend(SubjectsLoader(queue, batch_size=5))
                assert queue._popped == 12 and not queue._prepared and not queue._spare
        finally:
            queue.close()
        runs.append(batches)
        if prepared == 1:
            assert not copied  # popped in turn, copied by assemble
        else:
            # Each epoch's two batches of 5 popped at once (the one asked for and one ahead), the 2 in its turn.
            assert copied == [1, 0, 0] * 3
    assert_same_batches(runs[1], runs[0])


def staged_stacks(queue: Queue, epoch: int, count: int) -> None:
    """Wait (10 s at most) until ``count`` stacks of ``epoch`` are staged next (or its end)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sizes, ends = queue._producer.staged(epoch)
        if ends or len(sizes) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{count} stacks of epoch {epoch} were not staged in 10 s")


def test_pops_ahead_refill_the_pool_from_staged_stacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # More cached subjects than the queue stages (about max_length, one each): the epoch's end is not
    # staged when its first batch is asked for, and the pops ahead go on through pool fills taken from
    # the stacks staged so far, as the pops in turn take them.
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(12, size=6), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    runs = []
    for prepared in (1, queue_module.PREPARED):
        monkeypatch.setattr(queue_module, "PREPARED", prepared)
        queue = Queue(dataset, 4, 2, UniformSampler(4), num_workers=2, seed=5)
        try:
            batches = []
            for epoch in range(2):  # 24 patches an epoch, pools of 4 (two subjects)
                staged_stacks(queue, epoch, 4)
                batches.append(collate_subjects(queue.__getitems__([0, 1])))
                if prepared > 1 and epoch == 0:
                    # Beyond the pool's other batch, through at least one fill from the staged stacks (the
                    # epoch's end, 10 stacks later, cannot be staged yet: about max_length are, one each).
                    assert len(queue._prepared) >= 2
                batches.extend(collate_subjects(queue.__getitems__([0, 1])) for _ in range(11))
                assert queue._popped == 24 and not queue._prepared and not queue._spare
        finally:
            queue.close()
        runs.append(batches)
    assert_same_batches(runs[1], runs[0])


@pytest.mark.parametrize(
    ("stacks", "ends", "pops", "held", "total", "expected"),
    [
        ([], False, 2, 2, 12, True),  # the pool holds them
        ([], False, 3, 2, 12, False),  # a fill, nothing staged: it would wait
        ([3, 3], False, 3, 2, 12, True),  # a fill of 4 or more from 3 + 3 staged
        ([3], False, 3, 2, 12, False),  # 3 staged do not fill a pool of 4
        ([3], True, 3, 2, 12, True),  # ... unless the epoch's end comes after them
        ([3, 3, 3, 3], False, 9, 0, 24, True),  # two fills
        ([3, 3, 3], False, 9, 0, 24, False),  # the second fill runs out
        ([4, 4], False, 3, 2, 6, False),  # the fill takes the epoch's last patches and asks for its end
        ([4, 4], True, 3, 2, 6, True),  # ... which is staged
    ],
)
def test_pool_fills_from_staged_stacks(stacks: list[int], ends: bool, pops: int, held: int, total: int, expected: bool):
    pool = PatchPool(max_length=4, shuffle=True)
    pool.reset(np.random.default_rng(0))
    source = iter([make_subjects(1, size=4)[0].cut([[0, 0, 0, 2, 2, 2]] * held)] if held else [])
    pool.fill(lambda: next(source, None))
    assert len(pool) == held
    assert pool.fills_from(lambda: (stacks, ends), pops, total) is expected


def test_batches_popped_ahead_go_back_in_order_when_other_pops_come(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(6), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    runs = []
    for sizes in ([2, 2, 1, 3, 2], [1] * 10):
        queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=8)
        try:
            staged_to_end(queue, 0)
            patches = []
            for size in sizes:
                patches.extend(queue.__getitems__(list(range(size))))
                if size == 2 and sizes[0] == 2 and len(patches) == 2:
                    assert len(queue._prepared) == 8  # the rest of the epoch's batches of 2, popped ahead
            assert len(queue) == 18
            patches.extend(queue)  # the rest of the epoch, after the patches popped ahead
            runs.append(patches)
        finally:
            queue.close()
    assert len(runs[0]) == len(runs[1]) == 18
    for a, b in zip(*runs):
        assert a["subject_id"] == b["subject_id"] and torch.equal(a[LOCATION], b[LOCATION])
        assert torch.equal(a["t1"].data, b["t1"].data)


def test_the_length_of_an_epoch_leaves_the_batches_popped_ahead_where_they_are(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=8)
    try:
        staged_to_end(queue, 0)
        handed = len(queue.__getitems__([0, 1]))
        assert len(queue._prepared) == 5  # the epoch's other batches of 2
        for _ in range(5):  # a progress bar asking every batch
            assert len(queue) == 12 and queue._prepared
            handed += len(queue.__getitems__([0, 1]))
        assert handed == 12 and not queue._prepared and len(queue) == 12  # the next epoch's length
    finally:
        queue.close()


def test_the_length_mid_epoch_counts_patches_popped_ahead_as_not_handed_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(2), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    # Epochs of different lengths: 6 patches of sub-0, then 2 of sub-1.
    queue = Queue(dataset, 6, [6, 2], UniformSampler(4), num_workers=2, seed=1, subject_sampler=Alternate())
    try:
        staged_to_end(queue, 0)
        queue.__getitems__([0, 1])
        assert len(queue._prepared) == 2 and len(queue) == 6  # this epoch's: 4 of its patches only popped
        queue.__getitems__([0, 1])
        queue.__getitems__([0, 1])
        assert len(queue) == 2  # between epochs: the next one's
    finally:
        queue.close()


def test_a_batch_that_cannot_be_prepared_is_assembled_in_its_turn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    prepare = PreparedBatch.of
    runs = []
    for failing in (False, True):
        calls: list[int] = []

        def of(
            entries: Sequence[tuple[object, int]], failing: bool = failing, calls: list[int] = calls
        ) -> PreparedBatch | None:
            calls.append(len(entries))
            if failing and len(calls) % 2 == 0:
                raise RuntimeError("cannot prepare this one")
            return prepare(entries)  # type: ignore[arg-type]

        monkeypatch.setattr(PreparedBatch, "of", staticmethod(of))
        queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=8)
        try:
            staged_to_end(queue, 0)
            batches = [collate_subjects(queue.__getitems__([0, 1, 2])) for _ in range(4)]
            assert len(calls) == 4  # batches 2 and 4 failed to be prepared (failing): assembled in their turn
        finally:
            queue.close()
        runs.append(batches)
    assert_same_batches(runs[1], runs[0])


def test_without_the_compiled_copies_batches_popped_ahead_are_assembled_as_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    runs = []
    for compiled in (io_base.compiled, None):
        monkeypatch.setattr(io_base, "compiled", compiled)  # None: a build without the extension
        queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=8)
        try:
            staged_to_end(queue, 0)
            runs.append([collate_subjects(queue.__getitems__([0, 1, 2])) for _ in range(4)])
        finally:
            queue.close()
    assert_same_batches(runs[1], runs[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_mix_of_batches_single_pops_and_lengths_hands_out_the_patches_in_turn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seed: int
):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(5), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    rng = np.random.default_rng(seed)
    operations = [int(rng.choice([0, 1, 2, 3, 5])) for _ in range(40)]  # 0: len(queue), 1: queue[0], k: a batch
    runs = []
    for prepared in (1, queue_module.PREPARED):
        monkeypatch.setattr(queue_module, "PREPARED", prepared)
        queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=seed)
        try:
            staged_to_end(queue, 0)
            handed, lengths, ahead = [], [], []
            for operation in operations:  # 15 patches an epoch: every run crosses epochs
                if operation == 0:
                    lengths.append(len(queue))
                elif operation == 1:
                    handed.append(queue[0])
                else:
                    handed.extend(queue.__getitems__(list(range(operation))))
                ahead.append(len(queue._prepared))
        finally:
            queue.close()
        assert max(ahead) == 0 if prepared == 1 else max(ahead) >= 2  # batches were popped ahead
        runs.append((lengths, [(patch["subject_id"], patch[LOCATION].tolist()) for patch in handed]))
    assert runs[0] == runs[1]


def test_a_pop_ahead_that_fails_raises_when_its_batch_is_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(Queue, "_cut_ahead", lambda self: False)
    dataset = SubjectsDataset(make_subjects(3), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    broken = dataset[2]["t1"].path
    broken.write_bytes(broken.read_bytes()[:100])  # truncated after caching
    # In order, two patches a subject, pools of 4: sub-0 and sub-1, then sub-2. Asked for batch 1 of 2,
    # the queue pops batch 2 ahead, then fails popping batch 3 (sub-2): that error comes with batch 3.
    queue = Queue(dataset, 4, 2, UniformSampler(6), num_workers=2, seed=0, shuffle_subjects=False)
    try:
        staged_to_end(queue, 0)
        handed = [patch["subject_id"] for patch in queue.__getitems__([0, 1])]
        assert queue._error is not None and len(queue._prepared) == 1
        handed.extend(patch["subject_id"] for patch in queue.__getitems__([0, 1]))
        assert sorted(handed) == ["sub-0", "sub-0", "sub-1", "sub-1"]
        with pytest.raises(RuntimeError, match=r"Queue failed on subject 'sub-2' \(index 2\)"):
            queue.__getitems__([0, 1])
        assert queue._error is None
    finally:
        queue.close()


def test_only_batches_of_memory_mapped_boxes_are_prepared(tmp_path: Path):
    subject = make_subjects(1)[0]
    stack = subject.cut([[0, 0, 0, 4, 4, 4], [1, 1, 1, 5, 5, 5]])  # voxels cut now
    assert PreparedBatch.of([(stack, 0), (stack, 1)]) is None
    dataset = SubjectsDataset([subject], cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    deferred = dataset[0].cut([[0, 0, 0, 4, 4, 4], [1, 1, 1, 5, 5, 5]], defer=True)
    prepared = PreparedBatch.of([(deferred, 1), (deferred, 0)])
    assert prepared is not None
    for parallel in (False, True):
        batch = prepared.assemble(BufferRing(), parallel=parallel)
        if batch is None:  # no compiled copies here, or torch's threads copy these
            assert io.reorder_backend() == "torch" or (parallel and io.team_threads() == 1)
            continue
        collated = collate_subjects(batch)
        assert torch.equal(collated[LOCATION], torch.tensor([[1, 1, 1, 5, 5, 5], [0, 0, 0, 4, 4, 4]]))
        for name in ("t1", "seg"):
            assert torch.equal(collated[name][DATA][0], subject[name].data[:, 1:5, 1:5, 1:5])
            assert torch.equal(collated[name][DATA][1], subject[name].data[:, :4, :4, :4])
        assert [patch["subject_id"] for patch in batch] == ["sub-0", "sub-0"]


def test_dropped_batches_give_their_buffers_back(tmp_path: Path):
    dataset = SubjectsDataset(make_subjects(), cache_dir=tmp_path / "cache")
    queue = Queue(dataset, 6, 3, UniformSampler(4), num_workers=2, seed=0)
    try:
        pointers = set()
        for _ in range(3):
            for batch in SubjectsLoader(queue, batch_size=4):
                pointers.add(batch["t1"][DATA].data_ptr())
        assert len(pointers) <= KEPT
    finally:
        queue.close()


def test_a_buffer_in_use_by_a_view_is_not_handed_out():
    ring = BufferRing()
    batch = ring.take((2, 3), torch.float32)
    row = batch[1]
    del batch
    again = ring.take((2, 3), torch.float32)
    assert again.untyped_storage().data_ptr() != row.untyped_storage().data_ptr()
    del row, again
    assert len({ring.take((2, 3), torch.float32).data_ptr() for _ in range(3)}) == 1


@pytest.mark.parametrize(("shape", "dtype"), [((8, 1, 64, 64, 64), torch.int16), ((3, 2, 40, 40, 40), torch.float32)])
def test_large_buffers_are_memory_maps_of_their_own_and_small_ones_arrays(shape, dtype):
    ring = BufferRing()
    buffer = ring.take(shape, dtype)
    (holder,) = ring._buffers[(shape, dtype)]
    while not isinstance(holder, mmap.mmap) and getattr(holder, "base", None) is not None:
        holder = holder.base
    if isinstance(holder, memoryview):
        holder = holder.obj
    assert isinstance(holder, mmap.mmap)  # not a block of the C heap
    assert buffer.data_ptr() % HUGE_PAGE == 0
    assert buffer.is_contiguous() and buffer.shape == shape and buffer.dtype == dtype
    buffer.fill_(3)  # writable
    ring.take((2, 3), torch.float32)
    (small,) = ring._buffers[((2, 3), torch.float32)]
    assert small.base is None and small.nbytes < MAPPED_BYTES


def _mapped_subject(tmp_path: Path) -> tuple[Subject, Subject]:
    subject = make_subjects(1)[0]
    np.save(tmp_path / "t1.npy", subject["t1"].data.numpy()[0])
    np.save(tmp_path / "seg.npy", subject["seg"].data.numpy()[0])
    mapped = subject.with_images({"t1": ScalarImage(tmp_path / "t1.npy"), "seg": LabelMap(tmp_path / "seg.npy")})
    return subject, mapped


def test_deferred_patches_read_the_voxels_of_an_eager_cut(tmp_path: Path):
    subject, mapped = _mapped_subject(tmp_path)
    boxes = [[0, 0, 0, 4, 4, 4], [-2, 9, 3, 2, 13, 7]]
    deferred = mapped.cut(boxes, padding_mode="edge", defer=True)
    eager = mapped.cut(boxes, padding_mode="edge")
    assert deferred.deferred and not eager.deferred and deferred.layout() == eager.layout()
    threads = torch.get_num_threads()
    try:
        # torch's intra-op threads, numpy on this thread, torch inline with one intra-op thread
        for parallel, count in ((True, 2), (False, 2), (False, 1)):
            torch.set_num_threads(count)
            for index in range(2):
                for name in ("t1", "seg"):
                    assert torch.equal(deferred[index][name].data, eager[index][name].data)
                    out = torch.full_like(eager[index][name].data, 7)
                    deferred.read_into(name, index, out, parallel=parallel)
                    assert torch.equal(out, eager[index][name].data)
    finally:
        torch.set_num_threads(threads)
    loaded = subject.cut(boxes, padding_mode="edge", defer=True)  # tensors: nothing to defer
    assert not loaded.deferred


def test_other_collate_functions_see_a_sequence_of_patches():
    voxels = torch.rand(2, 1, 2, 2, 2)
    patches = StackedPatches([Subject(t1=ScalarImage(tensor=v)) for v in voxels], {"t1": voxels})
    assert isinstance(patches, Sequence) and len(patches) == 2 and torch.equal(patches[1]["t1"].data, voxels[1])
    assert patches.collated() is None  # made of patches: collated from them
    wrong = StackedPatches(list(patches), {"t1": torch.zeros(3, 1, 2, 2, 2)})  # not these patches: stacked again
    assert torch.equal(collate_subjects(wrong)["t1"][DATA], voxels)


def test_deferred_patches_are_made_once_when_asked_for():
    made: list[int] = []

    def make(row: int) -> dict[str, int]:
        made.append(row)
        return {"row": row}

    batch = StackedPatches.deferred(3, make, {}, lambda: None)
    assert made == [] and len(batch) == 3 and batch.collated() is None
    assert batch[-1] is batch[2] and made == [2]
    assert [patch["row"] for patch in batch[:2]] == [0, 1] and [p["row"] for p in batch] == [0, 1, 2]
    assert made == [2, 0, 1] and list(batch) == batch[:] and batch.index(batch[1]) == 1
    with pytest.raises(IndexError):
        batch[3]


def test_a_deferred_batch_pickles_as_its_patches():
    import pickle

    from torchpatch.queue.batches import assemble

    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 6)), subject_id="a", age=3)
    stack = subject.cut([[0, 0, 0, 2, 2, 2], [2, 2, 2, 4, 4, 4]])
    batch = assemble([(stack, 1), (stack, 0)], BufferRing())
    assert isinstance(batch, StackedPatches)
    again = pickle.loads(pickle.dumps(batch))
    assert isinstance(again, StackedPatches) and len(again) == 2 and again.collated() is None
    _assert_equal_collated(collate_subjects(again), collate_subjects(list(batch)))


def test_a_batch_whose_rows_are_all_made_lets_go_of_the_stacks():
    import gc
    import weakref

    from torchpatch.queue.batches import assemble

    subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 6)), subject_id="a")
    stack = subject.cut([[0, 0, 0, 2, 2, 2], [2, 2, 2, 4, 4, 4]])
    alive = weakref.ref(stack)
    batch = assemble([(stack, 1), (stack, 0)], BufferRing())
    assert isinstance(batch, StackedPatches)
    collated = batch.collated()
    assert collated is not None
    del stack
    gc.collect()
    assert alive() is not None  # rows still to make: the stack stays
    rows = list(batch)
    gc.collect()
    assert alive() is None and batch.collated() is None  # collated from the rows from now on
    _assert_equal_collated(collate_subjects(batch), collated)
    assert torch.equal(rows[0]["t1"].data, collated["t1"][DATA][0])


def _assert_equal_collated(fast: object, slow: object) -> None:
    assert type(fast) is type(slow)
    if isinstance(slow, dict):
        assert isinstance(fast, dict) and list(fast) == list(slow)
        for key in slow:
            _assert_equal_collated(fast[key], slow[key])
    elif isinstance(slow, torch.Tensor):
        assert isinstance(fast, torch.Tensor) and fast.dtype == slow.dtype and torch.equal(fast, slow)
    elif isinstance(slow, list):
        assert isinstance(fast, list) and len(fast) == len(slow)
        for a, b in zip(fast, slow):
            _assert_equal_collated(a, b)
    else:
        assert fast == slow


@pytest.mark.parametrize("cached", [False, True])
def test_batches_collated_from_their_stacks_equal_their_patches_collated(tmp_path: Path, cached: bool):
    subjects = []
    for index in range(3):
        image = torch.rand(1, 10, 9, 8)
        affine = np.diag([1.0 + index, 2.0, 3.0, 1.0])
        subjects.append(
            Subject(
                t1=ScalarImage(tensor=image, affine=affine),
                seg=LabelMap(tensor=(image > 0.5).to(torch.uint8), affine=affine),
                subject_id=f"s{index}",
                age=30 + index,
                weight=0.5 * index,
                flag=index % 2 == 0,
                site=None,
                scores=torch.tensor([index, 2.0 * index]),
                tags=["a", str(index)],
            )
        )
    options = {"cache_dir": tmp_path / "cache"} if cached else {}
    dataset = SubjectsDataset(subjects, **options)  # type: ignore[arg-type]
    with Queue(dataset, 6, 3, UniformSampler((4, 5, 3)), num_workers=2, seed=2) as queue:
        for _ in range(2):  # with the cache: epoch 2 copies from the maps
            for batch in SubjectsLoader(queue, batch_size=4, collate_fn=lambda patches: patches):
                assert isinstance(batch, StackedPatches)
                fast = batch.collated()
                assert fast is not None
                _assert_equal_collated(fast, collate_subjects(list(batch)))


def test_batches_whose_patches_differ_are_collated_from_the_patches(tmp_path: Path):
    from torchpatch.queue.batches import assemble, collate_rows

    image = torch.rand(1, 6, 6, 6)
    plain = Subject(t1=ScalarImage(tensor=image), subject_id="a")
    other = Subject(t1=ScalarImage(tensor=image), subject_id="b", age=3)  # another key
    nans = Subject(t1=ScalarImage(tensor=image, check_nans=True), subject_id="c")
    box = [[0, 0, 0, 2, 2, 2]]
    mixed = assemble([(plain.cut(box), 0), (other.cut(box), 0)], BufferRing())
    assert isinstance(mixed, StackedPatches) and mixed.collated() is None
    with pytest.raises(ValueError, match="different keys"):
        collate_subjects(mixed)
    from torchpatch import Points

    points = Subject(t1=ScalarImage(tensor=image), subject_id="d", cells=Points([[1.0, 1.0, 1.0]], (6, 6, 6)))
    cropped = points.cut([[0, 0, 0, 2, 2, 2], [2, 2, 2, 4, 4, 4]])
    assert cropped.metadata is not None  # per patch: the points inside each box
    per_patch = assemble([(cropped, 0), (cropped, 1)], BufferRing())
    assert isinstance(per_patch, StackedPatches) and per_patch.collated() is None
    assert collate_subjects(per_patch)["cells"] == [per_patch[0]["cells"], per_patch[1]["cells"]]
    checked = assemble([(nans.cut(box), 0), (nans.cut(box), 0)], BufferRing())
    assert isinstance(checked, StackedPatches) and checked.collated() is None
    assert collate_subjects(checked)["t1"][DATA].shape == (2, 1, 2, 2, 2)
    same = assemble([(plain.cut(box), 0)], BufferRing())
    assert isinstance(same, StackedPatches)
    assert collate_rows([(plain.cut(box), 0)], {"t1": torch.zeros(1, 1, 2, 2, 2)}, torch.zeros(1, 6)) is not None


def test_batches_of_file_subjects_list_each_patch_path_stem_and_type(tmp_path: Path):
    from test_worker_buffers import file_subjects

    dataset = SubjectsDataset(file_subjects(tmp_path, count=3, shape=(24, 20, 16)))
    batches, single = [], []
    for by_batch in (True, False):
        with Queue(dataset, 6, 4, UniformSampler((8, 8, 8)), num_workers=2, seed=5) as queue:
            if by_batch:
                batches = list(SubjectsLoader(queue, batch_size=4))
            else:
                patches = list(queue)
                single = [collate_subjects(patches[i : i + 4]) for i in range(0, len(patches), 4)]
    assert_same_batches(batches, single)
    assert {stem for batch in batches for stem in batch["t1"]["stem"]} == {"0_t1", "1_t1", "2_t1"}
    assert set(batches[0]["seg"]["type"]) == {"label"}


def test_box_views_are_the_voxels_where_they_are_or_none(tmp_path: Path):
    _, mapped = _mapped_subject(tmp_path)
    boxes = [[1, 2, 3, 5, 6, 7], [-2, 9, 3, 2, 13, 7]]
    deferred = mapped.cut(boxes, padding_mode="edge", defer=True)
    eager = mapped.cut(boxes, padding_mode="edge")
    for name in ("t1", "seg"):
        inside = deferred.box_view(name, 0)
        assert inside is not None and torch.equal(inside, eager.data[name][0])
        source = deferred.sources[name][1]  # type: ignore[index]
        assert np.shares_memory(inside.numpy(), source)  # a view of the map, not a copy
        assert deferred.box_view(name, 1) is None  # reaches past the map: filled when read
        view = eager.box_view(name, 1)
        assert view is not None and view.data_ptr() == eager.data[name][1].data_ptr()
    # Maps in Fortran order, with two channels: a view with the map's strides and offset.
    voxels = np.random.default_rng(0).random((2, 9, 8, 7)).astype(np.float32)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(voxels))
    fortran = Subject(t1=ScalarImage(tmp_path / "fortran.npy"))
    corners = [[0, 0, 0, 4, 3, 2], [5, 5, 5, 9, 8, 7], [2, 1, 3, 6, 4, 5]]
    views = fortran.cut(corners, defer=True)
    assert views.sources is not None and not views.sources["t1"][1].flags.c_contiguous
    for index, box in enumerate(corners):
        view = views.box_view("t1", index)
        assert view is not None and view.shape == (2, 4, 3, 2)
        assert torch.equal(view, torch.from_numpy(voxels[:, box[0] : box[3], box[1] : box[4], box[2] : box[5]]))
    graph = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4, requires_grad=True)))
    assert graph.cut([[0, 0, 0, 2, 2, 2]]).box_view("t1", 0) is None
    brain = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4).to(torch.bfloat16)))
    assert brain.cut([[0, 0, 0, 2, 2, 2]]).box_view("t1", 0) is None


@pytest.mark.parametrize("threads, parallel", [(1, False), (2, True), (2, False)])
def test_assembled_batches_equal_their_patches_whichever_way_they_are_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int, parallel: bool
):
    from torchpatch.queue.batches import assemble

    subject, mapped = _mapped_subject(tmp_path)
    inside = [[0, 0, 0, 4, 4, 4], [3, 5, 2, 7, 9, 6]]
    deferred = mapped.cut(inside, defer=True)
    eager = subject.cut(inside)
    padded = mapped.cut([[-2, 9, 3, 2, 13, 7]], padding_mode="edge", defer=True)
    stacks = [(deferred, 1), (eager, 0), (deferred, 0), (eager, 1)]
    calls: list[int] = []
    stack = torch.stack

    def counted(tensors: list[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
        calls.append(len(tensors))
        return stack(tensors, out=out)

    monkeypatch.setattr(torch, "stack", counted)
    compiled: list[int] = []
    copy_boxes = io.copy_boxes

    def counted_boxes(out: torch.Tensor, boxes: list, threads: int = 1) -> bool:
        copied = copy_boxes(out, boxes, threads=threads)
        compiled.extend([(len(boxes), threads)] if copied else [])
        return copied

    monkeypatch.setattr(io, "copy_boxes", counted_boxes)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        team = io.team_threads()
        only_deferred = [(deferred, 1), (deferred, 0), (deferred, 1)]
        for entries in (stacks, [*stacks, (padded, 0)], only_deferred):
            calls.clear()
            compiled.clear()
            batch = assemble(entries, BufferRing(), parallel=parallel)
            assert isinstance(batch, StackedPatches)
            for row, (source, index) in enumerate(entries):
                for name in ("t1", "seg"):
                    assert torch.equal(batch.stacked[name][row], source[index][name].data)
                    assert torch.equal(batch[row][name].data, source[index][name].data)
            # One compiled call per image (with the extension): for boxes of maps on this thread, or
            # with parallel for any boxes inside their sources, split between torch's OpenMP team
            # (where it can join it); one stack per image where read_into would copy every box with
            # torch (one thread, or deferred boxes on torch's threads without the team) and every
            # box is a view; else box by box.
            on_team = parallel and team > 1 and (padded, 0) not in entries
            on_this_thread = not parallel and entries is only_deferred
            by_compiled = io.reorder_backend() == "compiled" and (on_team or on_this_thread)
            by_torch = not by_compiled and (threads == 1 or (parallel and entries is only_deferred))
            assert compiled == ([(len(entries), team if parallel else 1)] * 2 if by_compiled else [])
            assert calls == ([len(entries)] * 2 if by_torch and (padded, 0) not in entries else [])
    finally:
        torch.set_num_threads(before)
