"""The Queue's processes and their allocator: workers behind the training process, heaps set for their work.

:func:`worker_init` (or :func:`augmenting_worker_init`) runs once in each
worker as the internal loader's ``worker_init_fn``; :func:`steady_heap`
once in the training process, when a Queue starts (after its workers are
forked, which keep glibc's thresholds of before).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os

#: glibc's mallopt parameters.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

#: glibc's largest dynamic mmap threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``),
#: less a margin for the chunk's header.
STEADY_HEAP_BYTES = (32 << 20) - (64 << 10)

_steady = False

#: Added to the niceness of the Queue's worker processes: the training process comes first.
WORKER_NICENESS = 10


def behind_training() -> None:
    """Let the training process win the cores the workers compete for.

    The workers run ahead of the training loop: they fill the pool and then
    cut the next subjects, the next epoch's included. On busy cores they
    took CPU from the loop that waits for their patches (the batch copies,
    the step and its intra-op threads, whose parallel regions stall when a
    worker holds a core one of them needs). With a higher niceness they run
    on what the training process leaves; when it waits for patches, that is
    every core.

    Example:
        >>> import multiprocessing
        >>> with multiprocessing.get_context('fork').Pool(1, initializer=behind_training) as pool:
        ...     pool.apply(os.nice, (0,)) >= WORKER_NICENESS
        True
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(WORKER_NICENESS)
    # Everything the worker inherited (torch's modules, the dataset) stays
    # alive for its whole life: the cyclic collector need not walk it again at
    # every collection (3-4 % of a worker's time here), and pages shared
    # with the training process are not written to (copy on write).
    gc.freeze()


def worker_init(worker_id: int) -> None:
    """Keep patch-sized buffers out of glibc's heap, so freed ones go back to the OS.

    After a decoded volume is freed, glibc raises its mmap threshold and
    later multi-MiB patch buffers come from the heap, which keeps them: each
    worker grew from about 200 to 500-600 MiB over 8 epochs here. A fixed
    threshold of 128 KiB keeps it at about 200 MiB.

    Example:
        >>> import multiprocessing
        >>> with multiprocessing.get_context('fork').Pool(1, initializer=worker_init, initargs=(0,)) as pool:
        ...     pool.apply(os.nice, (0,)) >= WORKER_NICENESS
        True
    """
    behind_training()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 17)


def augmenting_worker_init(worker_id: int) -> None:
    """Reuse the heap for the temporaries of transforms (patch or dataset), volumes still mapped and unmapped.

    Augmenting a 64^3 patch allocates and frees a few dozen MiB of sampling
    grids and intermediates in blocks of up to ~6 MiB. Mapped fresh each time
    (the 128 KiB threshold above) they cost ~29 000 page faults and 88 ms per
    patch; taken from the heap, 500 faults and 31 ms (one thread, the
    benchmark's pipeline). Blocks of 8 MiB and more (decoded volumes, stacks)
    are still mapped and go back to the OS when freed; the heap keeps at
    most 64 MiB of free memory.

    Example:
        >>> import multiprocessing
        >>> context = multiprocessing.get_context('fork')
        >>> with context.Pool(1, initializer=augmenting_worker_init, initargs=(0,)) as pool:
        ...     pool.apply(os.nice, (0,)) >= WORKER_NICENESS
        True
    """
    behind_training()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 8 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def gnu_libc() -> bool:
    """Whether this process runs on glibc (whose allocator :func:`steady_heap` and the workers' ``mallopt`` tune).

    Example:
        >>> isinstance(gnu_libc(), bool)
        True
    """
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False  # no os.confstr (Windows), or a name this C library does not know


def steady_heap() -> None:
    """Keep glibc from giving the heap back and taking it again at every training step (once per process).

    glibc serves blocks above its mmap threshold (128 KiB at first) with
    fresh memory maps, and raises that threshold to the size of any mapped
    block freed later (up to 32 MiB), with the heap trimmed back to the
    system once more than twice the threshold is free at its top. So a
    training process's heap depends on which large blocks it happened to
    free first: in some processes the threshold settled at the size of one
    batch (8 MiB here) and every step's temporaries (the batch converted to
    float32, two 8 MiB blocks) were trimmed and faulted in again: 6 000-21 000
    page faults an epoch of ``benchmarks/queue.py``'s warm cached job in one
    process of two or three, up to 15-30 ms of a 50-90 ms epoch. Freeing one block of 32 MiB first,
    as a process that once freed a decoded volume has done, sets the
    threshold to its largest dynamic value: blocks up to 32 MiB come from
    the heap and up to 64 MiB of free heap is kept for reuse. glibc still
    adjusts itself (nothing is fixed with ``mallopt``); with another C
    library, another allocator preloaded or glibc's tunables set this
    changes nothing.

    Example:
        >>> steady_heap()   # once per process; later calls return at once
    """
    global _steady
    if _steady:
        return
    _steady = True
    if not gnu_libc():
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        block = libc.malloc(STEADY_HEAP_BYTES)  # mapped, never touched
        if block:
            libc.free(block)


__all__ = [
    "STEADY_HEAP_BYTES",
    "WORKER_NICENESS",
    "augmenting_worker_init",
    "behind_training",
    "gnu_libc",
    "steady_heap",
    "worker_init",
]
