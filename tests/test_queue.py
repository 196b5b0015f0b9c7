"""Queue: exact epochs, seeded reproducibility, workers, batching, errors that never hang."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from torchpatch import (
    DATA,
    LABEL,
    LOCATION,
    LabelMap,
    LabelSampler,
    Queue,
    ScalarImage,
    Subject,
    SubjectsDataset,
    SubjectsLoader,
    UniformSampler,
    collate_subjects,
)
from torchpatch.geometry import shift_affine
from torchpatch.queue import producer as producer_module
from torchpatch.queue.cutting import SubjectPatches
from torchpatch.queue.plan import Task

#: Seconds a test of worker failures may take before it counts as a hang.
HANG_LIMIT = 60
#: A worker failure must reach the training process within this many seconds.
ERROR_WITHIN = 10
SIZE = 12
PATCH = 6


def make_subjects(count: int = 4, size: int = SIZE) -> list[Subject]:
    subjects = []
    for index in range(count):
        generator = torch.Generator().manual_seed(index)
        affine = np.diag([0.5, 0.75, 2.0, 1.0])
        affine[:3, 3] = (index, -3.0, 10.0)
        subjects.append(
            Subject(
                t1=ScalarImage(tensor=torch.rand(1, size, size, size, generator=generator), affine=affine),
                seg=LabelMap(tensor=torch.randint(0, 2, (1, size, size, size), generator=generator), affine=affine),
                subject_id=f"sub-{index}",
            )
        )
    return subjects


@pytest.fixture
def make_queue() -> Iterator[Callable[..., Queue]]:
    """Queues built from small synthetic subjects, closed after the test."""
    queues: list[Queue] = []

    def make(
        count: int = 4,
        samples_per_volume: int | list[int] = 3,
        transform: Callable[[Subject], Subject] | None = None,
        **options: object,
    ) -> Queue:
        options.setdefault("max_length", 6)
        options.setdefault("sampler", UniformSampler(PATCH))
        options.setdefault("seed", 0)
        dataset = SubjectsDataset(make_subjects(count), transform=transform)
        queue = Queue(dataset, samples_per_volume=samples_per_volume, **options)  # type: ignore[arg-type]
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        shut_down(queue)


def shut_down(queue: Queue) -> None:
    """Close the queue, which stops its workers now rather than when it is collected."""
    queue.close()


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts the test after HANG_LIMIT seconds."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"the test hung for {HANG_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(HANG_LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def epoch_ids(queue: Queue) -> list[str]:
    return [patch["subject_id"] for patch in queue]


def epoch_locations(queue: Queue) -> list[tuple[str, tuple[int, ...]]]:
    return [(patch["subject_id"], tuple(patch[LOCATION].tolist())) for patch in queue]


class RecordPid:
    """Patch transform: doubles the voxels and records the process it ran in."""

    def __call__(self, patch: Subject) -> Subject:
        doubled = ScalarImage(tensor=patch["t1"].data * 2, affine=patch["t1"].affine)
        return patch.with_images({"t1": doubled}, pid=os.getpid())


class AddNoise:
    """Patch transform drawing from torch's RNG: seeded per subject by the queue."""

    def __call__(self, patch: Subject) -> Subject:
        noisy = ScalarImage(tensor=patch["t1"].data + torch.rand(patch["t1"].shape), affine=patch["t1"].affine)
        return patch.with_images({"t1": noisy})


class RaiseOn:
    """Dataset transform raising ValueError('boom') for one subject."""

    def __init__(self, subject_id: str) -> None:
        self.subject_id = subject_id

    def __call__(self, subject: Subject) -> Subject:
        if subject["subject_id"] == self.subject_id:
            raise ValueError("boom")
        return subject


class ShrinkOn:
    """Dataset transform cropping one subject below the patch size: the sampler fails on it."""

    def __init__(self, subject_id: str) -> None:
        self.subject_id = subject_id

    def __call__(self, subject: Subject) -> Subject:
        if subject["subject_id"] == self.subject_id:
            return subject.crop((0, 0, 0), (PATCH - 1, SIZE, SIZE))
        return subject


# Lengths and exact epochs ----------------------------------------------------------------


def test_length_is_the_sum_of_samples_per_volume(make_queue: Callable[..., Queue]):
    assert len(make_queue(count=4, samples_per_volume=3)) == 12
    queue = make_queue(count=4, samples_per_volume=[1, 2, 3, 4])
    assert len(queue) == 10
    assert queue.iterations_per_epoch == 10


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("max_length", [1, 6, 100])
def test_each_epoch_has_exactly_samples_per_volume_patches_per_subject(
    make_queue: Callable[..., Queue], num_workers: int, max_length: int
):
    queue = make_queue(count=4, samples_per_volume=3, num_workers=num_workers, max_length=max_length)
    for _ in range(3):
        assert Counter(epoch_ids(queue)) == {f"sub-{i}": 3 for i in range(4)}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_per_subject_samples_per_volume_are_exact(make_queue: Callable[..., Queue], num_workers: int):
    queue = make_queue(count=3, samples_per_volume=[1, 4, 2], num_workers=num_workers)
    for _ in range(3):
        assert Counter(epoch_ids(queue)) == {"sub-0": 1, "sub-1": 4, "sub-2": 2}


def test_an_epoch_started_by_indexing_is_finished_by_iteration(make_queue: Callable[..., Queue]):
    queue = make_queue(count=3, samples_per_volume=2)
    first = [queue[i]["subject_id"] for i in range(4)]
    rest = epoch_ids(queue)
    assert len(rest) == 2
    assert Counter(first + rest) == {"sub-0": 2, "sub-1": 2, "sub-2": 2}
    assert Counter(epoch_ids(queue)) == {"sub-0": 2, "sub-1": 2, "sub-2": 2}


class Alternate:
    """Subject sampler giving subject 0 on even epochs and subject 1 on odd ones."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter([self.epoch % 2])

    def __len__(self) -> int:
        return 1


def test_iteration_follows_epochs_of_different_lengths(make_queue: Callable[..., Queue]):
    queue = make_queue(count=2, samples_per_volume=[1, 5], subject_sampler=Alternate())
    for epoch in range(4):
        assert Counter(epoch_ids(queue)) == ({"sub-0": 1} if epoch % 2 == 0 else {"sub-1": 5})


def test_loader_length_follows_epochs_of_different_lengths(make_queue: Callable[..., Queue]):
    queue = make_queue(count=2, samples_per_volume=[1, 5], subject_sampler=Alternate())
    loader = SubjectsLoader(queue, batch_size=1)
    for epoch in range(4):
        expected = {"sub-0": 1} if epoch % 2 == 0 else {"sub-1": 5}
        assert len(loader) == sum(expected.values())
        assert Counter(i for batch in loader for i in batch["subject_id"]) == expected


# Seeds and order ---------------------------------------------------------------------------------


def test_same_seed_gives_the_same_patches_whatever_the_workers(make_queue: Callable[..., Queue]):
    runs = []
    for num_workers in (0, 0, 2):
        queue = make_queue(count=4, samples_per_volume=3, num_workers=num_workers, seed=7)
        runs.append([epoch_locations(queue) for _ in range(2)])
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][0] != runs[0][1]  # epochs differ from each other


def test_random_patch_transform_is_reproducible_in_workers(make_queue: Callable[..., Queue]):
    voxels = []
    for num_workers in (0, 2):
        queue = make_queue(count=3, samples_per_volume=2, num_workers=num_workers, patch_transform=AddNoise(), seed=3)
        voxels.append(torch.stack([patch["t1"].data for patch in queue]))
    assert torch.equal(voxels[0], voxels[1])


def test_different_seeds_give_different_patches(make_queue: Callable[..., Queue]):
    first = epoch_locations(make_queue(seed=1))
    second = epoch_locations(make_queue(seed=2))
    assert first != second
    assert Counter(s for s, _ in first) == Counter(s for s, _ in second)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_without_shuffling_subjects_come_in_order(make_queue: Callable[..., Queue], num_workers: int):
    queue = make_queue(count=4, samples_per_volume=3, shuffle_subjects=False, shuffle_patches=False)
    expected = [f"sub-{i}" for i in range(4) for _ in range(3)]
    assert epoch_ids(queue) == expected
    assert epoch_ids(queue) == expected


def test_shuffled_subjects_change_order_between_epochs(make_queue: Callable[..., Queue]):
    queue = make_queue(count=6, samples_per_volume=2, shuffle_patches=False)
    orders = [tuple(epoch_ids(queue)[::2]) for _ in range(3)]
    assert all(sorted(order) == [f"sub-{i}" for i in range(6)] for order in orders)
    assert len(set(orders)) > 1


def test_shuffled_patches_interleave_subjects(make_queue: Callable[..., Queue]):
    queue = make_queue(count=4, samples_per_volume=4, max_length=8, shuffle_subjects=False)
    ids = epoch_ids(queue)
    switches = sum(a != b for a, b in itertools.pairwise(ids))
    assert switches > 3  # grouped by subject would give exactly 3
    assert len(set(ids[:4])) > 1


@pytest.mark.parametrize("num_workers", [0, 2])
def test_patches_hold_the_subject_voxels_and_shifted_affines(make_queue: Callable[..., Queue], num_workers: int):
    queue = make_queue(count=3, samples_per_volume=3, num_workers=num_workers)
    originals = {s["subject_id"]: s for s in make_subjects(3)}
    for patch in queue:
        ini, fin = patch[LOCATION][:3].tolist(), patch[LOCATION][3:].tolist()
        for name in ("t1", "seg"):
            image = originals[patch["subject_id"]][name]
            expected = image.data[:, ini[0] : fin[0], ini[1] : fin[1], ini[2] : fin[2]]
            assert torch.equal(patch[name].data, expected)
            assert patch[name].data.dtype == image.data.dtype
            np.testing.assert_allclose(patch[name].affine, shift_affine(image.affine, ini))
        assert isinstance(patch["seg"], LabelMap)
        assert patch["seg"].type == LABEL


def test_label_sampler_in_workers_centres_patches_on_foreground(make_queue: Callable[..., Queue]):
    queue = make_queue(count=3, samples_per_volume=4, num_workers=2, sampler=LabelSampler(PATCH, "seg", {1: 1}))
    originals = {s["subject_id"]: s for s in make_subjects(3)}
    for patch in queue:
        i, j, k = (a + PATCH // 2 for a in patch[LOCATION][:3].tolist())
        assert int(originals[patch["subject_id"]]["seg"].data[0, i, j, k]) == 1


# Patch transform, batching, progress ------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
def test_patch_transform_is_applied_to_every_patch_in_the_workers(make_queue: Callable[..., Queue], num_workers: int):
    queue = make_queue(count=3, samples_per_volume=4, num_workers=num_workers, patch_transform=RecordPid())
    originals = {s["subject_id"]: s for s in make_subjects(3)}
    patches = list(queue)
    assert len(patches) == 12
    for patch in patches:
        i0, j0, k0, i1, j1, k1 = patch[LOCATION].tolist()
        source = originals[patch["subject_id"]]["t1"].data[:, i0:i1, j0:j1, k0:k1]
        assert torch.equal(patch["t1"].data, source * 2)
    pids = {int(patch["pid"]) for patch in patches}
    if num_workers:
        assert os.getpid() not in pids
    else:
        assert pids == {os.getpid()}


def test_subjects_loader_batches_queue_patches(make_queue: Callable[..., Queue]):
    queue = make_queue(count=3, samples_per_volume=4, num_workers=2)
    batches = list(SubjectsLoader(queue, batch_size=4))
    assert len(batches) == 3
    for batch in batches:
        assert batch["t1"][DATA].shape == (4, 1, PATCH, PATCH, PATCH)
        assert batch["seg"][DATA].shape == (4, 1, PATCH, PATCH, PATCH)
        assert batch[LOCATION].shape == (4, 6)
        assert batch[LOCATION].dtype == torch.int64
    ids = Counter(i for batch in batches for i in batch["subject_id"])
    assert ids == {"sub-0": 4, "sub-1": 4, "sub-2": 4}


def test_verbose_shows_progress_on_stderr(make_queue: Callable[..., Queue], capfd: pytest.CaptureFixture[str]):
    queue = make_queue(count=2, samples_per_volume=3, verbose=True)
    assert len(list(queue)) == 6
    assert "Filling queue" in capfd.readouterr().err


def test_start_background_false_starts_on_first_pop(make_queue: Callable[..., Queue]):
    queue = make_queue(count=2, samples_per_volume=2, num_workers=2, start_background=False)
    assert queue._producer.thread is None
    assert Counter(epoch_ids(queue)) == {"sub-0": 2, "sub-1": 2}


# Failures ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
def test_worker_exception_surfaces_quickly_naming_the_subject_index(
    make_queue: Callable[..., Queue], alarm: None, num_workers: int
):
    queue = make_queue(count=4, samples_per_volume=2, num_workers=num_workers, transform=RaiseOn("sub-2"))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)subject .*index 2.*ValueError: boom"):
        for _ in range(3):
            list(queue)
    assert time.monotonic() - start < ERROR_WITHIN


@pytest.mark.parametrize("num_workers", [0, 2])
def test_worker_exception_in_the_dataset_transform_names_the_subject_id(
    make_queue: Callable[..., Queue], alarm: None, num_workers: int
):
    queue = make_queue(count=4, samples_per_volume=2, num_workers=num_workers, transform=RaiseOn("sub-2"))
    with pytest.raises(RuntimeError, match="sub-2"):
        list(queue)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sampler_error_in_a_worker_names_the_subject_id(
    make_queue: Callable[..., Queue], alarm: None, num_workers: int
):
    queue = make_queue(count=3, samples_per_volume=2, num_workers=num_workers, transform=ShrinkOn("sub-1"))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)'sub-1'.*exceeds the spatial shape"):
        list(queue)
    assert time.monotonic() - start < ERROR_WITHIN


def test_killed_worker_raises_within_seconds_never_hangs():
    # Each scenario runs in its own interpreter (see tests/queue_worker_death.py); both run at once.
    script = Path(__file__).with_name("queue_worker_death.py")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {
        mode: subprocess.Popen(
            [sys.executable, str(script), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for mode in ("transform", "external", "step")
    }
    outputs = {}
    try:
        for mode, process in runs.items():
            outputs[mode] = process.communicate(timeout=HANG_LIMIT + 60)
            assert process.returncode == 0, (mode, outputs[mode][1][-3000:])
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    for mode, (stdout, _) in outputs.items():
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["error"] == "RuntimeError", result
        if mode == "transform":
            # The training process is waiting in the Queue: the error names the subject being cut.
            assert result["message"].startswith("a Queue worker process died while cutting patches of subject 'sub-2'")
            assert "killed by signal" in result["message"], result
        elif mode == "step":
            # PyTorch's SIGCHLD handler raises inside the training step and the Queue's wrapper names
            # it; or, when the Queue's thread reaped the worker first (its handler then finds nothing),
            # the next pop does: either way the message says the worker was killed by a signal.
            assert result["message"].startswith("a Queue worker process died"), result
            assert "killed by signal" in result["message"], result
        else:
            # PyTorch's SIGCHLD handler raises wherever the training process is: maybe outside the Queue.
            assert any(m in result["message"] for m in ("a Queue worker process died", "killed by signal")), result
        assert result["seconds"] < ERROR_WITHIN, result
        assert result["close_seconds"] < 2, result  # close() does not wait out PyTorch's 5 s status poll


def test_outer_loader_with_workers_is_refused(make_queue: Callable[..., Queue], alarm: None):
    queue = make_queue(count=2, samples_per_volume=2)
    iterator = iter(DataLoader(queue, batch_size=2, num_workers=2, collate_fn=collate_subjects))
    try:
        with pytest.raises(RuntimeError, match=r"num_workers=0"):
            next(iterator)
    finally:
        # The traceback keeps the iterator in a reference cycle; shut its workers down now, because
        # when the garbage collector does it, each worker waits out a 5 s join timeout.
        iterator._shutdown_workers()  # type: ignore[attr-defined]


def test_queue_cannot_be_pickled(make_queue: Callable[..., Queue]):
    with pytest.raises(TypeError, match=r"cannot be pickled.*num_workers=0"):
        pickle.dumps(make_queue())


# Arguments ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_length", [0, -1, 2.5, True])
def test_bad_max_length(max_length: object):
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        Queue(SubjectsDataset(make_subjects(1)), max_length, 2, UniformSampler(2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("samples_per_volume", "error", "message"),
    [
        ([1, 2], ValueError, "has 2 values but the dataset has 3 subjects"),
        ([1, 2, 3, 4], ValueError, "has 4 values but the dataset has 3 subjects"),
        (0, ValueError, "samples_per_volume must be ints >= 1"),
        ([1, 0, 2], ValueError, "samples_per_volume must be ints >= 1, got 0 for subject 1"),
        ([1, 2.5, 2], ValueError, "samples_per_volume must be ints >= 1"),
        (True, TypeError, "samples_per_volume must be an int"),
    ],
)
def test_bad_samples_per_volume(samples_per_volume: object, error: type[Exception], message: str):
    with pytest.raises(error, match=message):
        Queue(SubjectsDataset(make_subjects(3)), 4, samples_per_volume, UniformSampler(2))  # type: ignore[arg-type]


def test_sampler_must_be_a_patch_sampler():
    with pytest.raises(TypeError, match="sampler must be a PatchSampler"):
        Queue(SubjectsDataset(make_subjects(1)), 4, 2, lambda subject, n: iter(()))  # type: ignore[arg-type]


@pytest.mark.parametrize("num_workers", [-1, 1.5, True])
def test_bad_num_workers(num_workers: object):
    with pytest.raises(ValueError, match="num_workers must be an int >= 0"):
        Queue(SubjectsDataset(make_subjects(1)), 4, 2, UniformSampler(2), num_workers)  # type: ignore[arg-type]


def test_dataset_must_be_a_subjects_dataset():
    with pytest.raises(TypeError, match="subjects_dataset must be a SubjectsDataset"):
        Queue(make_subjects(2), 4, 2, UniformSampler(2))  # type: ignore[arg-type]


def test_patch_transform_must_be_callable():
    with pytest.raises(TypeError, match="patch_transform must be callable"):
        Queue(SubjectsDataset(make_subjects(1)), 4, 2, UniformSampler(2), patch_transform=3)  # type: ignore[arg-type]


# Shutdown ------------------------------------------------------------------------------------------------------


def test_close_stops_the_background_thread(make_queue: Callable[..., Queue]):
    queue = make_queue(count=3, samples_per_volume=2, num_workers=2, max_length=2)
    assert len(list(queue)) == 6
    thread = queue._producer.thread
    assert thread is not None and thread.is_alive()  # refilling the next epoch in the background
    queue.close()
    assert not thread.is_alive()


def test_close_stops_the_worker_processes(make_queue: Callable[..., Queue]):
    before = {p.pid for p in multiprocessing.active_children()}
    queue = make_queue(count=3, samples_per_volume=2, num_workers=2)
    assert len(list(queue)) == 6
    workers = {p.pid for p in multiprocessing.active_children()} - before
    assert len(workers) == 2
    queue.close()
    deadline = time.monotonic() + 3
    while workers & {p.pid for p in multiprocessing.active_children()} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers & {p.pid for p in multiprocessing.active_children()}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_metadata_keeps_its_python_types_through_the_workers(make_queue: Callable[..., Queue], num_workers: int):
    def add_metadata(subject: Subject) -> Subject:
        return subject.with_images({}, age=42, weight=61.5, tags=["a", "b"])

    queue = make_queue(count=2, samples_per_volume=2, num_workers=num_workers, transform=add_metadata)
    patch = queue[0]
    assert patch["age"] == 42 and type(patch["age"]) is int
    assert type(patch["weight"]) is float
    assert patch["tags"] == ["a", "b"]
    assert patch[LOCATION].dtype == torch.int64
    assert list(patch.keys())[:2] == ["t1", "seg"]


# Direct copies into the transfer buffers ---------------------------------------------------------------


class Identity:
    """Patch transform that changes nothing: forces the per-patch path of the workers."""

    def __call__(self, patch: Subject) -> Subject:
        return patch


def file_subjects(folder: Path) -> list[Subject]:
    """Subjects whose voxels come from every kind of source: tensors, .nii.gz, .nii, .npy (float labels)."""
    subjects = make_subjects(4)
    subjects[0]["t1"].save(folder / "t1.nii.gz")
    subjects[1]["t1"].save(folder / "t1.nii")
    np.save(folder / "seg.npy", subjects[2]["seg"].data.numpy()[0].astype(np.float32))
    return [
        subjects[0].with_images({"t1": ScalarImage(folder / "t1.nii.gz", affine=subjects[0]["t1"].affine)}),
        subjects[1].with_images({"t1": ScalarImage(folder / "t1.nii")}),
        subjects[2].with_images({"seg": LabelMap(folder / "seg.npy", affine=subjects[2]["seg"].affine)}),
        subjects[3],
    ]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_direct_copies_give_the_patches_of_the_per_patch_path(
    tmp_path: Path, num_workers: int, cached: bool, padded: bool
):
    subjects = file_subjects(tmp_path)
    patch_size = (SIZE + 2, PATCH, 3) if padded else (PATCH, PATCH + 1, 3)
    sampler = UniformSampler(patch_size, padding_mode="edge" if padded else None)
    runs = []
    for patch_transform in (None, Identity()):
        options = {"cache_dir": tmp_path / "cache"} if cached else {}
        dataset = SubjectsDataset(subjects, **options)  # type: ignore[arg-type]
        queue = Queue(dataset, 8, 3, sampler, num_workers=num_workers, seed=5, patch_transform=patch_transform)
        try:
            assert queue._producer.worker_dataset.thread_safe is (patch_transform is None)
            runs.append([list(queue) for _ in range(2)])
        finally:
            queue.close()
    for direct, per_patch in zip(itertools.chain(*runs[0]), itertools.chain(*runs[1])):
        assert list(direct.keys()) == list(per_patch.keys())
        assert torch.equal(direct[LOCATION], per_patch[LOCATION]) and direct[LOCATION].dtype == torch.int64
        assert direct["subject_id"] == per_patch["subject_id"]
        for name in ("t1", "seg"):
            a, b = direct[name], per_patch[name]
            assert type(a) is type(b) and a.path == b.path and a.metadata == b.metadata
            assert a.data.dtype == b.data.dtype and torch.equal(a.data, b.data)
            np.testing.assert_array_equal(a.affine, b.affine)


@pytest.mark.parametrize("sampler", [UniformSampler(PATCH), LabelSampler(PATCH, "seg", {0: 1, 1: 2})])
def test_cached_subjects_cut_in_threads_give_the_patches_of_the_workers(tmp_path: Path, sampler: UniformSampler):
    dataset = SubjectsDataset(make_subjects(4), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    runs = []
    for threads in (True, False):
        queue = Queue(dataset, 6, 3, sampler, num_workers=2, seed=11, start_background=False)
        queue._producer.threads_for_cached = threads
        try:
            runs.append([list(queue) for _ in range(2)])
            assert (queue._producer.cut_here > 0) is threads
        finally:
            queue.close()
    for in_thread, in_worker in zip(itertools.chain(*runs[0]), itertools.chain(*runs[1])):
        assert in_thread["subject_id"] == in_worker["subject_id"]
        assert torch.equal(in_thread[LOCATION], in_worker[LOCATION])
        for name in ("t1", "seg"):
            assert torch.equal(in_thread[name].data, in_worker[name].data)
            np.testing.assert_array_equal(in_thread[name].affine, in_worker[name].affine)


def test_first_epoch_fills_the_cache_in_workers_then_threads_take_over(tmp_path: Path):
    dataset = SubjectsDataset(make_subjects(3), cache_dir=tmp_path / "cache")
    queue = Queue(dataset, 6, 2, UniformSampler(PATCH), num_workers=2, seed=0)
    try:
        # Nothing cached yet: epoch 1 goes to the workers. (The executor itself may
        # already exist: the producer starts epoch 2 while epoch 1 is consumed.)
        assert len(list(queue)) == 6 and queue._producer._first_routes == [False, False, False]
        assert all(dataset.is_cached(index) for index in range(3))
        assert len(list(queue)) == 6 and queue._producer.cut_here > 0
    finally:
        queue.close()


class _SlowPlans(UniformSampler):
    """A uniform sampler whose plans take 5 ms (a stand-in for a weighted sampler's map)."""

    def plan(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.005)
        return super().plan(*args, **kwargs)


def test_cached_subjects_planned_by_the_taker_or_a_pool_give_the_same_patches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    dataset = SubjectsDataset(make_subjects(4), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    planners: list[str] = []  # the threads that planned cached subjects
    cut_in_thread = SubjectPatches.cut_in_thread

    def recorded(self: Any, task: Any) -> Any:
        planners.append(threading.current_thread().name)
        return cut_in_thread(self, task)

    monkeypatch.setattr(SubjectPatches, "cut_in_thread", recorded)
    cases = [  # sampler, planning threshold, whether the pool plans
        (UniformSampler(PATCH), float("inf"), False),
        (UniformSampler(PATCH), 0.0, True),
        (_SlowPlans(PATCH), producer_module.INLINE_PLAN_SECONDS, True),  # 5 ms plans: over the threshold
    ]
    epochs = []
    for sampler, threshold, pooled in cases:
        planners.clear()
        queue = Queue(dataset, 6, 3, sampler, num_workers=2, seed=5, start_background=False)
        queue._producer.inline_plan_seconds = threshold
        try:
            epochs.append(list(itertools.chain(*(list(queue) for _ in range(2)))))
            assert (queue._producer.executor is not None) is pooled
            assert queue._producer.cut_here >= 4 * 2  # and maybe the next epoch, begun ahead
            pool = sum(name.startswith("torchpatch-cut") for name in planners)
            if threshold == 0.0:  # every subject planned ahead by the pool's threads
                assert pool == len(planners) >= 4 * 2
            elif pooled:  # the taker plans the first ones (and those staged meanwhile), then the pool
                assert len(planners) >= 4 * 2 and pool >= 1
            else:  # staged unplanned, planned by the thread that pops: this one
                assert set(planners) == {threading.current_thread().name} and len(planners) == 4 * 2
        finally:
            queue.close()
    for here, *others in zip(*epochs):
        for other in others:
            assert here["subject_id"] == other["subject_id"]
            assert torch.equal(here[LOCATION], other[LOCATION])
            assert torch.equal(here["t1"].data, other["t1"].data)


def test_staged_stacks_count_their_patches_and_an_unplanned_cached_subject_one(tmp_path: Path):
    dataset = SubjectsDataset(make_subjects(1), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    cutter = SubjectPatches(dataset, UniformSampler(PATCH), None)
    task = Task(0, seed=0, num_patches=3)
    planned = cutter.cut_in_thread(task)  # deferred: boxes of memory maps
    assert planned.deferred and producer_module._weight(producer_module.Unplanned(task)) == 1
    assert producer_module._weight(planned) == 3  # planned ahead by the pool: its patches, bounding the pool
    assert producer_module._weight(cutter[task]) == 3  # a worker's stack


def test_the_taker_plans_the_epochs_staged_cached_subjects_in_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dataset = SubjectsDataset(make_subjects(5), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    planned: list[int] = []
    cut_in_thread = SubjectPatches.cut_in_thread
    monkeypatch.setattr(
        SubjectPatches, "cut_in_thread", lambda self, task: planned.append(task[0]) or cut_in_thread(self, task)
    )
    epochs = []
    for burst in (1, producer_module.PLAN_BURST):
        monkeypatch.setattr(producer_module, "PLAN_BURST", burst)
        planned.clear()
        # max_length 6, 3 patches a subject: a pool fill takes 2 of the 5 subjects. Cached subjects
        # hold no voxels and count as one towards max_length: the producer stages all five.
        queue = Queue(dataset, 6, 3, UniformSampler(PATCH), num_workers=2, seed=1)
        try:
            deadline = time.monotonic() + 10
            while len(queue._producer._staging) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            first = queue[0]
            counts = len(planned)
            epochs.append((counts, [first, *(queue[index] for index in range(1, 15))]))
        finally:
            queue.close()
    (one_by_one, alone), (in_one_run, together) = epochs
    # The pool's first fill: its two subjects planned one at a time, or with the three staged after them.
    assert one_by_one == 2 and in_one_run == 5
    for here, there in zip(alone, together, strict=True):  # the same patches either way
        assert here["subject_id"] == there["subject_id"] and torch.equal(here[LOCATION], there[LOCATION])
        assert torch.equal(here["t1"].data, there["t1"].data)


@pytest.mark.parametrize("sampler", [UniformSampler(PATCH), LabelSampler(PATCH, "seg", {0: 1, 1: 2})])
def test_planning_cached_subjects_in_the_training_thread_leaves_torchs_random_state_alone(
    tmp_path: Path, sampler: UniformSampler
):
    dataset = SubjectsDataset(make_subjects(4), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    queue = Queue(dataset, 6, 3, sampler, num_workers=2, seed=3)
    try:
        assert len(list(queue)) == 12  # the first epoch: the workers decode and cache
        torch.manual_seed(123)
        state = torch.get_rng_state()
        # Popped here (a loader would draw its own base seed): planned in this thread.
        assert len(list(queue)) == 12 and queue._producer.cut_here >= 4
        assert torch.equal(torch.get_rng_state(), state)  # the training loop's draws are its own
    finally:
        queue.close()


def test_a_broken_cache_entry_cut_in_a_thread_names_the_subject(tmp_path: Path, alarm: None):
    dataset = SubjectsDataset(make_subjects(3), cache_dir=tmp_path / "cache")
    dataset.build_cache(progress=False)
    broken = dataset[1]["t1"].path
    broken.write_bytes(broken.read_bytes()[:100])  # truncated after caching
    queue = Queue(dataset, 6, 2, UniformSampler(PATCH), num_workers=2, seed=0, shuffle_subjects=False)
    try:
        with pytest.raises(RuntimeError, match=r"Queue failed on subject 'sub-1' \(index 1\)"):
            list(queue)
    finally:
        queue.close()
    # A pool of one subject: sub-1 fails when planned with sub-0, in one run, but its error comes
    # when it is taken, after sub-0's patches.
    queue = Queue(dataset, 2, 2, UniformSampler(PATCH), num_workers=2, seed=0, shuffle_subjects=False)
    handed = []
    try:
        with pytest.raises(RuntimeError, match=r"Queue failed on subject 'sub-1' \(index 1\)"):
            handed.extend(patch["subject_id"] for patch in queue)
        assert handed == ["sub-0", "sub-0"]
    finally:
        queue.close()
