"""While the Queue's workers cut, torch's OpenMP threads in the training process wait without long spins."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
import torch

# The worker tests' file subjects (tests/queue is on sys.path while pytest collects it).
from test_worker_buffers import file_subjects

from torchpatch import Queue, SubjectsDataset, SubjectsLoader, UniformSampler
from torchpatch.queue import spinning
from torchpatch.queue.spinning import SpinLimit, oversubscribed

needs_gnu_openmp = pytest.mark.skipif(
    not (os.path.exists("/proc/self/task") and spinning._gnu_openmp()),
    reason="torch does not run on GNU OpenMP here (or no /proc to count threads)",
)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Torch with two intra-op threads (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _team_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "torchpatch-spin-limit"]


def test_not_oversubscribed_without_workers_or_with_one_thread(monkeypatch):
    monkeypatch.setattr(spinning, "available_cores", lambda: 1)
    assert not oversubscribed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert not oversubscribed(4)  # one thread: no helper to spin
    finally:
        torch.set_num_threads(before)


def test_not_oversubscribed_with_cores_to_spare(monkeypatch, two_threads):
    monkeypatch.setattr(spinning, "available_cores", lambda: 16)
    assert not oversubscribed(2)  # 2 threads + 2 workers on 16 cores: the spinning costs nobody


@needs_gnu_openmp
def test_hold_keeps_an_idle_team_and_release_ends_it(monkeypatch, two_threads):
    monkeypatch.setattr(spinning, "available_cores", lambda: 2)
    assert oversubscribed(2)
    torch.ones(1 << 20).add_(1)  # this thread's own team exists before counting
    baseline = _os_threads()
    limit = SpinLimit(workers=2)
    limit.hold()
    try:
        assert limit.held
        # A Python thread and torch's other OpenMP thread of its team: libgomp now counts
        # more OpenMP threads than CPUs, and shortens the spinning of every waiting thread.
        assert _os_threads() == baseline + 2
        limit.hold()  # held already: no second team
        assert _os_threads() == baseline + 2
    finally:
        limit.release()
    assert not limit.held
    assert _wait_for(lambda: _os_threads() == baseline)  # the team went with its thread


def test_hold_does_nothing_where_the_cores_suffice(monkeypatch, two_threads):
    monkeypatch.setattr(spinning, "available_cores", lambda: 64)
    limit = SpinLimit(workers=2)
    limit.hold()
    assert not limit.held and not _team_threads()


@needs_gnu_openmp
def test_closed_limit_never_holds_again(monkeypatch, two_threads):
    monkeypatch.setattr(spinning, "available_cores", lambda: 2)
    limit = SpinLimit(workers=2)
    limit.hold()
    limit.close()
    limit.hold()
    assert not limit.held
    assert _wait_for(lambda: not _team_threads())


class _Spy(SpinLimit):
    """Records holds and releases (and whether each changed anything)."""

    events: ClassVar[list[str]] = []

    def hold(self) -> None:
        was = self.held
        super().hold()
        _Spy.events.append("hold" if self.held and not was else "hold (no change)")

    def release(self) -> None:
        was = self.held
        super().release()
        if was:
            _Spy.events.append("release")


@needs_gnu_openmp
def test_queue_holds_while_workers_cut_and_releases_for_cached_epochs(tmp_path, monkeypatch, two_threads):
    monkeypatch.setattr(spinning, "available_cores", lambda: 2)
    monkeypatch.setattr("torchpatch.queue.producer.SpinLimit", _Spy)
    _Spy.events = []
    dataset = SubjectsDataset(file_subjects(tmp_path, 3, (24, 20, 16)), cache_dir=tmp_path / "cache")
    queue = Queue(dataset, max_length=6, samples_per_volume=2, sampler=UniformSampler(8), num_workers=2, seed=0)
    try:
        loader = SubjectsLoader(queue, batch_size=2)
        assert len(list(loader)) == 3  # epoch 0: the workers decode every subject (and write the cache)
        assert _Spy.events[0] == "hold"  # from the start, once the workers are forked
        assert _wait_for(lambda: "release" in _Spy.events)  # after the workers' last subject
        assert _wait_for(lambda: not _team_threads())
        events = len(_Spy.events)
        assert len(list(loader)) == 3  # epoch 1: every subject cached, cut by this process's threads
        assert "hold" not in _Spy.events[events:]  # no workers cutting: torch's threads spin again
        assert not queue._producer.spin_limit.held
    finally:
        queue.close()
    assert _wait_for(lambda: not _team_threads())


@needs_gnu_openmp
def test_queue_without_cache_keeps_holding_across_epochs_until_closed(tmp_path, monkeypatch, two_threads):
    monkeypatch.setattr(spinning, "available_cores", lambda: 2)
    dataset = SubjectsDataset(file_subjects(tmp_path, 2, (24, 20, 16)))
    queue = Queue(dataset, max_length=4, samples_per_volume=2, sampler=UniformSampler(8), num_workers=2, seed=0)
    loader = SubjectsLoader(queue, batch_size=2)
    for _ in range(2):
        assert len(list(loader)) == 2
    assert _wait_for(lambda: queue._producer.spin_limit.held)  # the next epoch's subjects are being cut
    queue.close()
    assert not queue._producer.spin_limit.held
    assert _wait_for(lambda: not _team_threads())
