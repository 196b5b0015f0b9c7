"""The training process's heap: glibc's mmap threshold raised once, so the step's temporaries are reused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from torchpatch.queue import workers

# In a fresh interpreter: whether a block of a given size is mapped (counted in mallinfo2's hblkhd)
# rather than taken from the heap, before and after steady_heap. Probing frees a mapped block,
# which raises the threshold to its size: so the first probe is 20 MiB and the second 28 MiB.
_PROBE = textwrap.dedent(
    """
    import ctypes
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def mapped(size):
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(size)
        grown = libc.mallinfo2().hblkhd - before
        libc.free(block)
        return grown >= size
    first = mapped(20 << 20)
    from torchpatch.queue.workers import steady_heap
    if STEADY:
        steady_heap()
        steady_heap()  # once per process
    print(first, mapped(28 << 20))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not workers.gnu_libc(), reason="glibc's heap only")
@pytest.mark.parametrize("steady", [False, True])
def test_after_steady_heap_blocks_up_to_32_mib_come_from_the_heap(steady: bool) -> None:
    code = f"STEADY = {steady}\n" + _PROBE
    env = {**os.environ, "GLIBC_TUNABLES": ""}  # glibc's dynamic threshold, whatever the caller set
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    first, second = out.stdout.split()
    assert first == "True"  # a fresh process maps a 20 MiB block
    assert second == str(not steady)  # 28 MiB: mapped above the 20 MiB threshold, from the heap after


def test_steady_heap_runs_once_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_steady", False)
    workers.steady_heap()
    assert workers._steady
    monkeypatch.setattr(os, "confstr", lambda name: (_ for _ in ()).throw(ValueError(name)))
    monkeypatch.setattr(workers, "_steady", False)
    workers.steady_heap()  # not glibc: nothing to do
    assert workers._steady


@pytest.mark.parametrize("workers", [0, 1])
def test_a_queue_steadies_the_heap_of_its_process_after_forking_its_workers(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import torch

    from torchpatch import Queue, ScalarImage, Subject, SubjectsDataset, UniformSampler
    from torchpatch.queue import producer as producer_module

    forked: list[bool] = []  # at each call: whether the workers existed already
    holder: list[Queue] = []

    def record() -> None:
        producer = holder[0]._producer if holder else None
        forked.append(producer is not None and producer._first_iterator is not None)

    monkeypatch.setattr(producer_module, "steady_heap", record)
    dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)))])
    queue = Queue(dataset, 2, 2, UniformSampler(2), num_workers=workers, seed=0, start_background=False)
    holder.append(queue)
    try:
        assert forked == []
        assert len(list(queue)) == 2  # starts it
        # Workers forked before the heap was changed (they keep glibc's thresholds of before).
        assert forked and set(forked) == {bool(workers)}, forked
    finally:
        queue.close()
