"""Helper run in a subprocess by ``test_queue.py``: a Queue worker dies from SIGKILL.

A killed worker makes PyTorch raise from its SIGCHLD handler in the main
thread, and leaves that handler armed until the loader is shut down, so the
scenario runs in its own interpreter, never inside the pytest process.

Usage::

    python tests/queue_worker_death.py {transform,external,step}

``transform``: the dataset transform kills its own worker on subject
``'sub-2'`` (half a second into it). ``external``: the main process kills a worker with SIGKILL after
the first patch. ``step``: the same, while the loop is busy in its
training step (not in the Queue). Prints one JSON line: the error type and message, the
seconds from the kill (or the first pop) to the error, and how long
``close()`` took.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time

import torch

from torchpatch import Queue, ScalarImage, Subject, SubjectsDataset, UniformSampler

#: Longest a run may take before it reports a hang itself (the test also has its own timeout).
DEADLINE = 60


class KillOn:
    """Dataset transform that SIGKILLs the process it runs in for one subject."""

    def __init__(self, subject_id: str) -> None:
        self.subject_id = subject_id

    def __call__(self, subject: Subject) -> Subject:
        if subject["subject_id"] == self.subject_id:
            # Late enough that the training process waits for patches by then (not
            # still building the Queue), so the error passes through the Queue.
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)
        return subject


def main(mode: str) -> dict[str, object]:
    subjects = [
        Subject(t1=ScalarImage(tensor=torch.rand(1, 12, 12, 12)), subject_id=f"sub-{index}") for index in range(5)
    ]
    transform = KillOn("sub-2") if mode == "transform" else None
    dataset = SubjectsDataset(subjects, transform=transform)
    queue: Queue | None = None
    start = time.monotonic()
    result: dict[str, object] = {"mode": mode, "error": None}
    try:
        try:
            # PyTorch's SIGCHLD handler raises in the main thread wherever it is, so
            # the error may come from the constructor: the first subjects are prepared at once.
            queue = Queue(dataset, 6, 3, UniformSampler(6), num_workers=2, seed=0)
            for epoch in range(20):
                for popped, _ in enumerate(queue):
                    if mode in ("external", "step") and epoch == 0 and popped == 0:
                        victim = multiprocessing.active_children()[0]
                        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
                        start = time.monotonic()
                        if mode == "step":
                            # The training loop is in its step, not in the Queue, when the worker dies
                            # (PyTorch's SIGCHLD error is raised there, when it comes; else the next pop reports it).
                            while time.monotonic() - start < 3:
                                time.sleep(0.01)
                    if time.monotonic() - start > DEADLINE:
                        raise TimeoutError("no error after the worker died")
        except Exception as error:  # noqa: BLE001 - reported to the test as JSON
            result.update(error=type(error).__name__, message=str(error))
    except Exception as late:  # noqa: BLE001 - the SIGCHLD handler raised again, while the first error was recorded
        if result["error"] is None:
            result.update(error=type(late).__name__, message=str(late))
    result["seconds"] = time.monotonic() - start
    closing = time.monotonic()
    try:
        if queue is not None:
            queue.close()
    except Exception as error:  # noqa: BLE001 - reported to the test as JSON
        result["close_error"] = f"{type(error).__name__}: {error}"
    result["close_seconds"] = time.monotonic() - closing
    return result


if __name__ == "__main__":
    signal.alarm(DEADLINE + 30)  # never outlive the test, whatever happens
    print(json.dumps(main(sys.argv[1])), flush=True)
    os._exit(0)  # the dead worker's loader may still be half shut down: leave at once
