"""Helper run in a subprocess by ``test_diagnostics.py``: PyTorch's errors when a loader worker is killed.

A killed worker makes PyTorch's SIGCHLD handler raise in the main thread,
and the handler stays armed until the loader is shut down, so each scenario
runs in its own interpreter, never inside the pytest process.

Usage::

    python tests/queue/dataloader_death.py {signal,poll}

``signal``: the SIGCHLD handler reports the kill. ``poll``: with the handler
replaced by the default, the loader's own status check (here after its
``timeout``) finds the dead worker. Prints one JSON line: the killed pid,
PyTorch's error type and message, and what :mod:`torchpatch.queue.diagnostics`
reads from the loader and makes of the error.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from typing import Any

from torch.utils.data import DataLoader, Dataset

from torchpatch.queue import diagnostics

#: Longest a scenario may take before it reports a hang itself.
DEADLINE = 30


class Blocked(Dataset[int]):
    """Items that never arrive: each waits on an event that is never set."""

    def __init__(self) -> None:
        self.event = multiprocessing.get_context("fork").Event()

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        self.event.wait(DEADLINE)
        return index


def main(mode: str) -> dict[str, Any]:
    loader = DataLoader(
        Blocked(),
        batch_size=1,
        num_workers=1,
        persistent_workers=True,
        multiprocessing_context="fork",
        timeout=1 if mode == "poll" else 0,
    )
    iterator = iter(loader)
    if mode == "poll":
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    victim = multiprocessing.active_children()[0]
    result: dict[str, Any] = {"mode": mode, "pid": victim.pid, "error": None}
    start = time.monotonic()
    try:
        # Inside the try: the SIGCHLD handler may raise as soon as the worker dies.
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
        if mode == "poll":
            victim.join(DEADLINE)
            next(iterator)
        else:
            while time.monotonic() - start < DEADLINE:
                time.sleep(0.01)  # the SIGCHLD handler raises here
    except Exception as error:  # noqa: BLE001 - reported to the test as JSON
        state = diagnostics.worker_state(loader)
        clearer = diagnostics.explain_worker_death(error, loader, lambda task: f"task {task}")
        result.update(
            error=type(error).__name__,
            message=str(error),
            dead_pids=state.dead_pids,
            lost_tasks=state.lost_tasks,
            explained=None if clearer is None else str(clearer),
        )
    return result


if __name__ == "__main__":
    signal.alarm(DEADLINE + 30)  # never outlive the test, whatever happens
    print(json.dumps(main(sys.argv[1])), flush=True)
    os._exit(0)  # the dead worker's loader may still be half shut down: leave at once
