"""How many torch threads the aggregator's writes use, chosen by timing them.

:class:`~torchpatch.inference.GridAggregator` writes each batch of patch
outputs into the output: crop mode copies, the other modes blend. With
torch's default threads the writes of a batch run as OpenMP parallel
regions: the compiled copies and blends as one region of torch's own team
(:func:`torchpatch.io.team_threads`), each thread writing its share of the
output's planes, or torch's ``lerp_`` (one region per patch and channel)
where the compiled blend does not apply; a region ends when every thread is
done. On an idle machine two threads write faster than one (memory
bandwidth grows with the cores copying). When another process holds the
other core, the worker waits to be scheduled and every region waits for
it: ``benchmarks/grid.py`` measured one-channel blending at 2-5 times its
one-thread time then, and the same writes on one thread do not stall at
all.

Which of the two is faster depends on what else runs on the machine, which
changes from second to second, so :class:`WriteThreads` measures it: it
times each batch's writes, keeps the median seconds per written element of
the last few batches for one thread and for torch's threads (a median, so
one batch that met a stall or a burst of page faults does not flip the
choice), uses the faster, and tries the other again every few batches.
Small batches (fewer than :data:`PARALLEL_ELEMENTS` written elements, such
as one channel of 8 patches of 64³) always run on one thread: two threads
would save them under half a millisecond each, and one stall costs more (in
``benchmarks/grid.py``, one-channel writes took 30 ms per 256³ volume on
one thread, every time, and 40-114 ms on two, with or without a competing
process; chosen by timing, 20-72 ms). The output does not depend on the
choice: both run the same elementwise kernel on the same values. Copies
and blends are timed apart (:data:`COPY_THREADS`, :data:`WRITE_THREADS`).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Every how many timed batches the slower setting is tried again.
RETRY_EVERY = 16
#: How many recent batches of each setting its median is taken over.
WINDOW = 3
#: Batches writing fewer elements always run on one thread (one channel of 8 patches of 64^3 is 2^21).
PARALLEL_ELEMENTS = 2**23
#: Whether torch's intra-op threads are OpenMP's, whose count each thread may change for itself at
#: any time; torch's native thread pool warns and keeps its size, so nothing is chosen there.
OPENMP = "parallel backend: OpenMP" in torch.__config__.parallel_info()


class WriteThreads:
    """Run blocks of elementwise writes on one torch thread or on torch's threads, whichever is faster lately.

    Args:
        retry_every: Every how many batches the setting that was slower
            last is timed again.
        window: How many recent batches of each setting the median of its
            seconds per element is taken over.

    Example:
        >>> threads_before = torch.get_num_threads()
        >>> threads = WriteThreads()
        >>> output = torch.zeros(4, 4)
        >>> for batch in range(3):
        ...     with threads.writing(PARALLEL_ELEMENTS):
        ...         _ = output.lerp_(torch.ones(4, 4), 0.5)
        >>> round(float(output[0, 0]), 3), torch.get_num_threads() == threads_before
        (0.875, True)
    """

    def __init__(self, retry_every: int = RETRY_EVERY, window: int = WINDOW) -> None:
        for name, value in (("retry_every", retry_every), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if retry_every < 2:
            raise ValueError(f"retry_every must be at least 2, got {retry_every}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.retry_every = retry_every
        self._samples: tuple[deque[float], deque[float]] = (deque(maxlen=window), deque(maxlen=window))
        self._batches = 0

    def __repr__(self) -> str:
        shown = ["-" if s is None else f"{s * 1e9:.2f} ns" for s in self.seconds]
        return f"WriteThreads(one thread {shown[0]}, torch's threads {shown[1]} per element)"

    @property
    def seconds(self) -> tuple[float | None, float | None]:
        """Median seconds per element lately, on one thread and on torch's threads (``None``: not timed yet)."""
        one, many = (statistics.median(samples) if samples else None for samples in self._samples)
        return one, many

    def choose(self) -> bool:
        """Whether the next batch runs on torch's threads (``False``: on one thread)."""
        self._batches += 1
        one, many = self.seconds
        if many is None:
            return True
        if one is None:
            return False
        faster = many <= one
        return faster if self._batches % self.retry_every else not faster

    def record(self, parallel: bool, seconds: float, elements: int) -> None:
        """Add the time one batch of ``elements`` writes took with the given setting."""
        if elements > 0:
            self._samples[int(parallel)].append(seconds / elements)

    @contextmanager
    def writing(self, elements: int) -> Iterator[None]:
        """Run the block on the chosen setting and time it (``elements``: how many it writes).

        With one torch thread allowed (:func:`torch.set_num_threads`,
        ``OMP_NUM_THREADS=1``) there is nothing to choose and nothing is
        timed, nor with a torch whose threads are not OpenMP's (see
        :data:`OPENMP`); below :data:`PARALLEL_ELEMENTS` the block runs on
        one thread, untimed.
        """
        threads = torch.get_num_threads()
        if threads == 1 or not OPENMP:
            yield
            return
        timed = elements >= PARALLEL_ELEMENTS
        parallel = timed and self.choose()
        if not parallel:
            torch.set_num_threads(1)
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            if not parallel:
                torch.set_num_threads(threads)
        if timed:
            self.record(parallel, seconds, elements)


#: The choice for blending writes, shared by every aggregator of the process (the machine's load is the process's).
WRITE_THREADS = WriteThreads()
#: The same choice for crop mode's copies (a copied element costs less than a blended one: timed apart).
COPY_THREADS = WriteThreads()

__all__ = ["COPY_THREADS", "OPENMP", "PARALLEL_ELEMENTS", "RETRY_EVERY", "WINDOW", "WRITE_THREADS", "WriteThreads"]
