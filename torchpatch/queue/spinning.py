"""Torch's OpenMP threads in the training process wait without spinning while the workers need the cores.

Why: with torch's default threads, every parallel region of the training
step (a sum, a copy, a convolution) ends with torch's helper threads
spinning in GNU OpenMP (libgomp) for about 300 000 turns, a millisecond or
two, in case another region follows. The training process runs at the
normal priority and the Queue's workers behind it
(:func:`~torchpatch.queue.workers.behind_training`), so on cores the
workers need to decode and cut subjects that spinning wins: 154 ms of CPU
in a cold epoch of ``benchmarks/queue.py`` (CT, 2 cores, default threads),
taken from the workers the loop was waiting for.

libgomp spins only 100 turns when a process has more OpenMP threads than
CPUs (its documentation of ``GOMP_SPINCOUNT``), a count it keeps up to date
as threads come and go, whereas its environment variables are read once,
when torch loads it. So while worker processes have subjects to cut, a
thread of this module keeps an idle OpenMP team of torch's thread count:
torch's threads then wait on the kernel after a short spin and leave the
cores to the workers. When the workers have nothing to cut (every subject
in the decode-once cache), the thread ends, its team with it, and the
helpers spin again between the step's regions, which the warm epochs need
(their parallel regions start sooner).

Measured (scratch, CT, 2 cores, default threads, eight interleaved pairs
of a Queue's first two epochs, 16 subjects each): the training process's
CPU in the first epoch 364-489 ms against 206-336 with the team, the epoch a
median of 477 against 450 ms, the second epoch (decoded again) 334 against
282 ms; cached warm epochs, which run without the team, unchanged.
"""

from __future__ import annotations

import threading
from functools import cache

import torch

from .. import io
from ..io.team import available_cores

#: The idle team's first (and only) parallel region: bytes enough that torch splits it over two threads or
#: more (its grain is 32 768 elements), few enough that glibc takes them from the heap. A block it maps and
#: unmaps (above 128 KiB) raises glibc's mmap threshold for the whole process: with 4 MiB here the training
#: process's batches and the step's temporaries then shared the heap, which grew by 150-250 MiB (4 of 5
#: cold runs of the benchmark's CT job).
TEAM_BYTES = 1 << 16


@cache
def _gnu_openmp() -> bool:
    """Whether torch runs its parallel regions on GNU OpenMP (libgomp), whose spinning this module shortens."""
    return io.openmp_library() is not None


def oversubscribed(workers: int) -> bool:
    """Whether torch's threads and ``workers`` processes need more cores than this process has.

    And whether an idle team of torch's thread count takes the process past
    its CPUs, as libgomp counts them (so that it shortens the spinning).

    Example:
        >>> oversubscribed(0)
        False
    """
    threads = torch.get_num_threads()
    cores = available_cores()
    return workers > 0 and threads > 1 and threads + workers > cores and 2 * threads - 1 > cores and _gnu_openmp()


class SpinLimit:
    """While held, torch's OpenMP threads in this process spin briefly, then sleep (see the module's docstring).

    Args:
        workers: The worker processes that compete with this process's threads for the cores.

    Example:
        >>> limit = SpinLimit(workers=2)
        >>> limit.hold()     # workers cutting: torch's threads stop spinning (where it helps)
        >>> limit.release()  # workers idle: they spin again
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._stop: threading.Event | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether an idle team is kept now."""
        return self._stop is not None

    def hold(self) -> None:
        """Keep an idle OpenMP team, when the cores are oversubscribed (else nothing); returns once it exists."""
        with self._lock:
            if self._stop is not None or self._closed or not oversubscribed(self.workers):
                return
            stop = threading.Event()
            ready = threading.Event()
            thread = threading.Thread(target=_idle_team, args=(stop, ready), name="torchpatch-spin-limit", daemon=True)
            thread.start()
            ready.wait(1.0)
            self._stop = stop

    def release(self) -> None:
        """Let the team's thread end (its OpenMP threads go with it)."""
        with self._lock:
            if self._stop is not None:
                self._stop.set()
                self._stop = None

    def close(self) -> None:
        """Release for good: :meth:`hold` does nothing after this."""
        with self._lock:
            self._closed = True
        self.release()


def _idle_team(stop: threading.Event, ready: threading.Event) -> None:
    # One parallel region makes this thread's OpenMP team (torch's thread
    # count); it stays, idle, until the thread ends.
    try:
        torch.empty(TEAM_BYTES, dtype=torch.uint8).fill_(0)
    finally:
        ready.set()
    stop.wait()


__all__ = ["TEAM_BYTES", "SpinLimit", "available_cores", "oversubscribed"]
