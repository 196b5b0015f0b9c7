"""The PyTorch behaviours ``torchpatch.queue.diagnostics`` relies on, one test each.

The Queue reads private parts of PyTorch's multiprocess ``DataLoader``
iterator to name the subjects of a dead worker and to stop its workers at
once. These tests pin each of them, so a PyTorch upgrade that changes one
fails here rather than in a user's training run.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest
import torch
import torch.multiprocessing  # registers the shared-memory reductions of tensors
from torch.utils.data import DataLoader, Dataset

from torchpatch.queue import diagnostics

#: Seconds a scenario may take before it counts as a hang.
HANG_LIMIT = 60


class Gated(Dataset[int]):
    """Items that arrive only once :attr:`gate` is set, so tasks stay outstanding while a test looks."""

    def __init__(self, length: int = 8) -> None:
        self.length = length
        self.gate = multiprocessing.get_context("fork").Event()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> int:
        self.gate.wait(HANG_LIMIT)
        return index


@pytest.fixture
def gated_loader() -> Iterator[tuple[DataLoader[int], Gated]]:
    """A loader like the Queue's: two persistent workers, two tasks each ahead; shut down after the test."""
    dataset = Gated()
    loader = DataLoader(
        dataset,
        batch_size=1,
        num_workers=2,
        prefetch_factor=2,
        persistent_workers=True,
        multiprocessing_context="fork",
    )
    yield loader, dataset
    dataset.gate.set()
    diagnostics.shutdown_workers(loader)


def test_a_loader_with_persistent_workers_keeps_its_iterator_across_epochs(
    gated_loader: tuple[DataLoader[int], Gated],
):
    loader, dataset = gated_loader
    dataset.gate.set()
    first = iter(loader)
    assert loader._iterator is first  # what worker_state and shutdown_workers read
    assert len(list(first)) == 8
    second = iter(loader)
    assert second is first


def test_the_iterator_lists_its_worker_processes_with_pid_and_exitcode(gated_loader: tuple[DataLoader[int], Gated]):
    loader, _ = gated_loader
    iter(loader)
    workers = list(loader._iterator._workers)  # type: ignore[union-attr]
    assert len(workers) == 2
    children = {child.pid for child in multiprocessing.active_children()}
    for worker in workers:
        assert isinstance(worker.pid, int) and worker.pid in children
        assert worker.exitcode is None and worker.is_alive()
    assert diagnostics.worker_state(loader).dead_pids == []
    assert not diagnostics.any_worker_dead(loader)


def test_task_info_maps_each_outstanding_task_number_to_its_worker(gated_loader: tuple[DataLoader[int], Gated]):
    loader, dataset = gated_loader
    iterator = iter(loader)
    # Task numbers are positions in the epoch's index stream, from 0; prefetch_factor * num_workers are sent.
    info = dict(iterator._task_info)  # type: ignore[attr-defined]
    assert sorted(info) == [0, 1, 2, 3]
    assert all(len(value) == 1 and value[0] in (0, 1) for value in info.values())  # (worker id,) while outstanding
    assert diagnostics.worker_state(loader).lost_tasks == [0, 1, 2, 3]  # no dead worker: every outstanding task
    dataset.gate.set()
    assert [int(batch) for batch in iterator] == list(range(8))
    assert dict(iterator._task_info) == {}  # type: ignore[attr-defined]


def test_task_numbers_start_again_at_zero_each_epoch(gated_loader: tuple[DataLoader[int], Gated]):
    loader, dataset = gated_loader
    dataset.gate.set()
    assert len(list(iter(loader))) == 8
    dataset.gate.clear()
    iterator = iter(loader)  # the same iterator, reset for the new epoch
    assert min(dict(iterator._task_info)) == 0  # type: ignore[attr-defined]
    dataset.gate.set()
    assert len(list(iterator)) == 8


def test_shutdown_workers_stops_the_persistent_workers_now(gated_loader: tuple[DataLoader[int], Gated]):
    loader, dataset = gated_loader
    dataset.gate.set()
    list(iter(loader))
    workers = list(loader._iterator._workers)  # type: ignore[union-attr]
    start = time.monotonic()
    diagnostics.shutdown_workers(loader)
    assert loader._iterator is None
    assert not any(worker.is_alive() for worker in workers)
    assert time.monotonic() - start < 5


def test_readers_return_unknown_for_a_loader_without_workers():
    loader = DataLoader(torch.arange(4), batch_size=2)
    list(loader)
    assert diagnostics.worker_state(loader) == diagnostics.WorkerState()
    diagnostics.shutdown_workers(loader)  # nothing to stop, no error


def run_scenarios(*modes: str) -> dict[str, dict[str, object]]:
    """Run tests/queue/dataloader_death.py once per mode, all at once; its JSON result by mode."""
    script = Path(__file__).with_name("dataloader_death.py")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {
        mode: subprocess.Popen(
            [sys.executable, str(script), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for mode in modes
    }
    results = {}
    try:
        for mode, process in runs.items():
            stdout, stderr = process.communicate(timeout=HANG_LIMIT + 30)
            assert process.returncode == 0, (mode, stderr[-3000:])
            results[mode] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def test_killed_workers_give_the_messages_diagnostics_recognises():
    results = run_scenarios("signal", "poll")
    # PyTorch's SIGCHLD handler (C++: torch/csrc/DataLoader.cpp).
    signalled = results["signal"]
    assert signalled["error"] == "RuntimeError", signalled
    assert f"DataLoader worker (pid {signalled['pid']}) is killed by signal" in str(signalled["message"])
    # The loader's own status check (torch/utils/data/dataloader.py, _try_get_data).
    polled = results["poll"]
    assert polled["error"] == "RuntimeError", polled
    assert f"DataLoader worker (pid(s) {polled['pid']}) exited unexpectedly" in str(polled["message"])
    for result in results.values():
        assert diagnostics.reports_worker_death(str(result["message"])), result
        # The dead worker shows in _workers (exitcode set) and keeps its tasks in _task_info.
        assert result["dead_pids"] == [result["pid"]], result
        assert result["lost_tasks"] == [0, 1], result
        explained = str(result["explained"])
        lost = "while cutting patches of subject task 0; also sent to it: task 1"
        assert explained.startswith(f"{diagnostics.DIED} {lost}"), explained
        assert str(result["message"]).strip() in explained
        # Either way the cause is said, even where PyTorch's own text says only "exited unexpectedly".
        assert "killed by signal" in explained, explained


def send_shared_tensor_then_die(connection: Connection) -> None:
    """In a child: send a tensor in shared memory the way a loader worker does, then die by SIGKILL."""
    tensor = torch.arange(6.0).share_memory_()
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(tensor)
    connection.send_bytes(buffer.getvalue())
    connection.close()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_tensor_from_a_killed_worker_fails_to_unpickle_with_a_connection_error():
    # Tensors cross by handing over a file descriptor through the sender's resource sharer:
    # once the sender is gone, receiving fails with a ConnectionError (is_handover_error).
    assert torch.multiprocessing.get_sharing_strategy() == "file_descriptor"
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=send_shared_tensor_then_die, args=(sender,))
    child.start()
    payload = receiver.recv_bytes()
    child.join(HANG_LIMIT)
    assert child.exitcode == -signal.SIGKILL
    with pytest.raises((ConnectionError, EOFError)) as caught:
        pickle.loads(payload)
    assert diagnostics.is_handover_error(caught.value)


def test_explain_worker_death_leaves_other_errors_and_its_own_wording_alone():
    loader = DataLoader(torch.arange(4))
    assert diagnostics.explain_worker_death(ValueError("boom"), loader, str) is None
    own = RuntimeError(f"{diagnostics.DIED} while cutting patches of subject 'sub-1' (...)")
    assert diagnostics.explain_worker_death(own, loader, str) is None
    # A hand-over error with no dead worker to be found is not a death (waits at most about a second).
    start = time.monotonic()
    assert diagnostics.explain_worker_death(ConnectionResetError(104, "reset"), loader, str) is None
    assert time.monotonic() - start < 3
