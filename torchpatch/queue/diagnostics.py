"""Everything the Queue knows about PyTorch's ``DataLoader`` internals, in one place.

A worker process that dies (the kernel's out-of-memory killer, a crash in a
C library) reaches the training process as one of PyTorch's errors, which
name neither the subject nor the cause. To word a clearer one, and to shut
persistent workers down at once, this module reads private parts of
PyTorch's multiprocess loader iterator; nothing else in torchpatch does, and
``tests/queue/test_diagnostics.py`` pins each of them so that a PyTorch
upgrade fails a test instead of a user's run:

- ``loader._iterator``: the iterator a ``DataLoader`` with persistent workers
  keeps between epochs; ``_shutdown_workers()`` stops its workers;
- ``iterator._workers``: the worker processes (``.pid``, ``.exitcode``), by
  worker id;
- ``iterator._task_info``: task number (the position in the epoch's index
  stream) -> ``(worker id,)`` while the worker has it, ``(worker id, data)``
  once received out of order;
- the texts of the errors a dead worker raises: ``"DataLoader worker (pid N)
  is killed by signal: ..."`` (PyTorch's SIGCHLD handler), ``"DataLoader
  worker (pid(s) N) exited unexpectedly"`` (its status poll);
- a worker killed while its result crosses over leaves the training process
  with a ``ConnectionError`` or ``EOFError`` (the file-descriptor hand-over of
  shared memory finds the worker gone).

Every reader returns "unknown" (empty) rather than raise: these are for
messages only, never for control flow that must be right.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader

#: How the Queue's error for a dead worker begins.
DIED = "a Queue worker process died"


@dataclass(frozen=True)
class WorkerState:
    """What a loader's worker processes are doing, as far as can be read.

    Attributes:
        dead_pids: Pids of workers that have exited (by signal or otherwise).
        lost_tasks: Task numbers sent to a dead worker and not returned
            (every outstanding task when no worker is known dead), in order.
        exit_codes: The exit code of each dead worker, as ``dead_pids``
            (negative: killed by that signal).

    Example:
        >>> WorkerState().dead_pids, WorkerState([12], [3], [-9]).lost_tasks
        ([], [3])
    """

    dead_pids: list[int] = field(default_factory=list)
    lost_tasks: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)

    def causes(self) -> str:
        """How each dead worker ended, in words (empty when none is known dead).

        Reading a worker's exit code reaps it, so PyTorch's own SIGCHLD
        handler may then find nothing to report: the cause is said here.

        Example:
            >>> WorkerState([12, 13], [], [-9, 1]).causes()
            'worker pid 12 was killed by signal SIGKILL; worker pid 13 exited with code 1'
        """
        words = []
        for pid, code in zip(self.dead_pids, self.exit_codes, strict=False):
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = str(-code)
                words.append(f"worker pid {pid} was killed by signal {name}")
            else:
                words.append(f"worker pid {pid} exited with code {code}")
        return "; ".join(words)


def worker_state(loader: DataLoader[Any]) -> WorkerState:
    """The dead workers and their lost tasks of ``loader``'s current iterator (empty when unknown).

    Example:
        >>> import torch
        >>> worker_state(DataLoader(torch.arange(3)))  # no workers
        WorkerState(dead_pids=[], lost_tasks=[], exit_codes=[])
    """
    try:
        iterator = loader._iterator
        workers = list(iterator._workers)  # type: ignore[union-attr]
        dead = [index for index, worker in enumerate(workers) if worker.exitcode is not None]
        pending = [
            (task, info[0])
            for task, info in dict(iterator._task_info).items()  # type: ignore[union-attr]
            if len(info) == 1  # sent to worker info[0], not yet received
        ]
        lost = sorted(task for task, worker in pending if not dead or worker in dead)
        return WorkerState(
            [int(workers[index].pid) for index in dead], lost, [int(workers[index].exitcode) for index in dead]
        )
    except Exception:  # noqa: BLE001 - diagnostics only
        return WorkerState()


def reports_worker_death(text: str) -> bool:
    """Whether ``text`` is PyTorch's message for a worker killed by a signal or gone unexpectedly.

    Example:
        >>> reports_worker_death("DataLoader worker (pid 12) is killed by signal: Killed. ")
        True
        >>> reports_worker_death("DataLoader worker (pid(s) 12) exited unexpectedly")
        True
        >>> reports_worker_death("ValueError: boom")
        False
    """
    return "DataLoader worker" in text and ("killed by signal" in text or "exited unexpectedly" in text)


def is_handover_error(error: BaseException) -> bool:
    """Whether ``error`` is what receiving a result from a worker that died mid-hand-over raises.

    Example:
        >>> is_handover_error(ConnectionResetError(104, "Connection reset by peer")), is_handover_error(KeyError(1))
        (True, False)
    """
    return isinstance(error, (ConnectionError, EOFError))


def explain_worker_death(
    error: BaseException, loader: DataLoader[Any], describe: Callable[[int], str | None]
) -> RuntimeError | None:
    """A clearer error for a worker that died (killed by a signal, or exited), naming its subjects.

    Args:
        error: What the training process got (PyTorch's error, or the
            exception that receiving a result raised).
        loader: The loader whose worker died.
        describe: Names the subject of a task number (``None`` when unknown).

    Returns:
        The error to raise instead, or ``None`` when ``error`` is not a
        worker's death (or is already this module's wording).

    Example:
        >>> import torch
        >>> explain_worker_death(ValueError("boom"), DataLoader(torch.arange(3)), str) is None
        True
        >>> str(explain_worker_death(RuntimeError("DataLoader worker (pid 7) is killed by signal: Killed."),
        ...                          DataLoader(torch.arange(3)), str))[:64]
        'a Queue worker process died (DataLoader worker (pid 7) is killed'
    """
    text = str(error).strip()
    if text.startswith(DIED):
        return None
    state = worker_state(loader)
    handover = is_handover_error(error)
    deadline = time.monotonic() + 1.0
    while handover and not state.dead_pids and time.monotonic() < deadline:
        time.sleep(0.05)  # a killed worker may drop its connection before it can be reaped
        state = worker_state(loader)
    reported = reports_worker_death(text)
    # A result whose worker dies while handing it over fails to unpickle (the
    # worker's end of the file-descriptor hand-over is gone).
    cut_off = bool(state.dead_pids) and handover
    if not reported and not cut_off:
        return None
    if cut_off:
        text = f"worker pid {', '.join(map(str, state.dead_pids))} is gone: {type(error).__name__}: {text}"
    if state.dead_pids and "killed by signal" not in text:
        text = f"{text}; {state.causes()}"
    names = [name for name in map(describe, state.lost_tasks) if name is not None]
    lost = ""
    if names:
        # A worker takes its tasks in order: the first was being cut, the others were waiting.
        waiting = f"; also sent to it: {', '.join(names[1:])}" if len(names) > 1 else ""
        lost = f" while cutting patches of subject {names[0]}{waiting}"
    return RuntimeError(
        f"{DIED}{lost} ({text}). A SIGKILL often comes from the kernel's "
        f"out-of-memory killer: lower num_workers or max_length, or use a cache_dir so workers hold less"
    )


def any_worker_dead(loader: DataLoader[Any]) -> bool:
    """Whether a worker of ``loader``'s current iterator has exited.

    Example:
        >>> import torch
        >>> any_worker_dead(DataLoader(torch.arange(3)))
        False
    """
    return bool(worker_state(loader).dead_pids)


def shutdown_workers(loader: DataLoader[Any]) -> None:
    """Stop the persistent workers ``loader`` keeps in its cached iterator, now.

    Without this they stop when the loader is collected, and a dead
    worker's loader may wait out PyTorch's 5 s status poll first.

    Example:
        >>> import torch
        >>> shutdown_workers(DataLoader(torch.arange(3)))  # nothing to stop
    """
    iterator = getattr(loader, "_iterator", None)
    loader._iterator = None
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


__all__ = [
    "DIED",
    "WorkerState",
    "any_worker_dead",
    "explain_worker_death",
    "is_handover_error",
    "reports_worker_death",
    "shutdown_workers",
    "worker_state",
]
