"""The Queue's processes: workers behind the training process, and glibc's allocator set for each one's work.

:func:`worker_init` and :func:`augmenting_worker_init` run once in each
worker as the internal loader's ``worker_init_fn``; :func:`keep_training_heap`
once in the training process, when its first Queue starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading

#: glibc's mallopt parameters.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

#: glibc's own trim threshold before anything changes it, in bytes.
GLIBC_TRIM_THRESHOLD = 128 << 10

#: Free memory the training process's heap keeps at its top instead of returning it to the system, in bytes.
TRAINING_TRIM_THRESHOLD = 256 << 20

#: Smaller blocks come from the training process's heap (glibc's largest dynamic threshold), in bytes.
TRAINING_MMAP_THRESHOLD = 32 << 20

#: Set to ``0`` to leave glibc's allocator of the training process as it is.
KEEP_HEAP_VARIABLE = "TORCHPATCH_KEEP_HEAP"

#: What the user sets to choose these thresholds themselves (glibc reads them at start).
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_USER_TUNABLES = ("glibc.malloc.trim_threshold", "glibc.malloc.mmap_threshold", "glibc.malloc.top_pad")

_KEEP_HEAP_LOCK = threading.Lock()
_heap_kept: bool | None = None  # None: not decided yet in this process


def _mallopt(*settings: tuple[int, int]) -> bool:
    """Apply glibc ``mallopt`` settings in this process; ``False`` without glibc or when one is refused."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False
        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    except (OSError, AttributeError, ValueError):  # no confstr name, no libc.so.6 or no mallopt
        return False


def keep_training_heap() -> bool:
    """Let the training process's heap keep freed memory for the next step instead of returning it each time.

    A training step that sums or converts a batch makes temporaries of
    several MiB (an int16 batch summed by torch is first copied into an
    int64 one: 16 MiB for 8 patches of 64³). glibc takes them from its heap
    and, once the heap is fragmented around small blocks that live on
    (which happens in some processes and not others, glibc bug 14581),
    returns its free top to the system whenever it exceeds the trim
    threshold (32 MiB after 16 MiB temporaries) and grows it again for the
    next one: every page faulted in again, 100 000-145 000 faults over six
    warm epochs of the queue benchmark's CT job. With the trim threshold at
    :data:`TRAINING_TRIM_THRESHOLD` the heap keeps that memory: 0-8 000
    faults, warm epochs at 58-106 ms against 62-147 ms (medians 77 and
    135, eight pairs of processes), cold epochs 404-500 against 398-561 ms,
    and the same peak memory (700-789 against 633-854 MB).

    Setting one threshold freezes glibc's dynamic ones, so the mmap
    threshold is fixed at :data:`TRAINING_MMAP_THRESHOLD`, the largest value
    glibc's own adjustment reaches. Done once per process, on Linux with
    glibc only, and not when :data:`KEEP_HEAP_VARIABLE` is ``0`` or the user
    set these thresholds (``MALLOC_TRIM_THRESHOLD_``,
    ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_``, or the same in
    ``GLIBC_TUNABLES``). The Queue's workers set their own (:func:`worker_init`).

    Returns:
        Whether this process's heap keeps its memory (set now or earlier).

    Example:
        >>> keep_training_heap() in (True, False)
        True
    """
    global _heap_kept
    with _KEEP_HEAP_LOCK:
        if _heap_kept is None:
            tunables = os.environ.get("GLIBC_TUNABLES", "")
            chosen = any(name in os.environ for name in _USER_SETTINGS) or any(t in tunables for t in _USER_TUNABLES)
            wanted = os.environ.get(KEEP_HEAP_VARIABLE, "1").strip() != "0" and not chosen
            _heap_kept = wanted and _mallopt(
                (_M_MMAP_THRESHOLD, TRAINING_MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRAINING_TRIM_THRESHOLD)
            )
        return _heap_kept


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
    threshold of 128 KiB keeps it at about 200 MiB. The trim threshold goes
    back to glibc's own (:data:`GLIBC_TRIM_THRESHOLD`): a worker forked
    after :func:`keep_training_heap` inherits the training process's.

    Example:
        >>> import multiprocessing
        >>> with multiprocessing.get_context('fork').Pool(1, initializer=worker_init, initargs=(0,)) as pool:
        ...     pool.apply(os.nice, (0,)) >= WORKER_NICENESS
        True
    """
    behind_training()
    _mallopt((_M_MMAP_THRESHOLD, 1 << 17), (_M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD))


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
    _mallopt((_M_MMAP_THRESHOLD, 8 << 20), (_M_TRIM_THRESHOLD, 64 << 20))


__all__ = [
    "GLIBC_TRIM_THRESHOLD",
    "KEEP_HEAP_VARIABLE",
    "TRAINING_MMAP_THRESHOLD",
    "TRAINING_TRIM_THRESHOLD",
    "WORKER_NICENESS",
    "augmenting_worker_init",
    "behind_training",
    "keep_training_heap",
    "worker_init",
]
