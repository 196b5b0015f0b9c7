"""The training process's heap keeps freed memory for the next step once a Queue starts (workers.py)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os

import pytest
import torch

from torchpatch import Queue, ScalarImage, Subject, SubjectsDataset, SubjectsLoader, UniformSampler
from torchpatch.queue import workers


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


needs_glibc = pytest.mark.skipif(not _glibc(), reason="glibc's mallopt only")

_MIB = 1 << 20
_BLOCK = 64 << 10


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _top_kept_after_freeing(mib: int) -> int:
    """Free bytes left at the top of this process's heap once ``mib`` MiB of 64 KiB blocks are freed.

    64 KiB: below every mmap threshold involved, so the blocks come from the heap.
    """
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _Mallinfo2
    pointers = [libc.malloc(_BLOCK) for _ in range(mib * _MIB // _BLOCK)]
    for pointer in reversed(pointers):
        libc.free(pointer)
    return int(libc.mallinfo2().keepcost)


def _in_child(environment: dict[str, str], start_queue: bool) -> tuple[bool | None, int]:
    """In a fresh process: optionally start a Queue, then what the heap keeps after 64 MiB are freed."""
    os.environ.update(environment)
    kept = None
    if start_queue:
        subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8))) for _ in range(2)]
        queue = Queue(SubjectsDataset(subjects), 4, 2, UniformSampler(4), num_workers=0)
        for _ in SubjectsLoader(queue, batch_size=2):
            pass
    top = _top_kept_after_freeing(64)  # before anything but the Queue could have set it
    if start_queue:
        kept = workers.keep_training_heap()  # already decided by the Queue: says what it decided
    return kept, top


def _run(environment: dict[str, str], start_queue: bool = True) -> tuple[bool | None, int]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_in_child, (environment, start_queue))


@needs_glibc
def test_a_queue_makes_the_heap_keep_what_a_step_freed() -> None:
    kept, top = _run({})
    assert kept is True
    assert top >= 60 * _MIB  # the 64 MiB freed stay at the heap's top for the next step


@needs_glibc
def test_without_a_queue_glibc_returns_the_memory() -> None:
    kept, top = _run({}, start_queue=False)
    assert kept is None
    assert top < 60 * _MIB


@needs_glibc
@pytest.mark.parametrize(
    "environment",
    [
        {workers.KEEP_HEAP_VARIABLE: "0"},
        {"MALLOC_TRIM_THRESHOLD_": str(1 << 20)},
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"},
    ],
)
def test_the_user_can_keep_glibc_as_it_is(environment: dict[str, str]) -> None:
    kept, top = _run(environment)
    assert kept is False
    assert top < 60 * _MIB


def _worker_trim_after(init_name: str) -> int:
    workers.keep_training_heap()  # as in the training process before it forks
    getattr(workers, init_name)(0)
    return _top_kept_after_freeing(64)


@needs_glibc
def test_workers_set_their_own_trim_threshold() -> None:
    # A worker forked after the training process raised its trim threshold gives freed memory back.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_worker_trim_after, ("worker_init",)) < 60 * _MIB


def test_without_glibc_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.os, "confstr", lambda name: None)
    assert workers._mallopt((-1, 1)) is False
