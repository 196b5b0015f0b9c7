"""Byte buffers that readers take again once nothing uses them.

Decoding a subject allocates the same few large buffers every time: the
compressed file, the decoded voxels, the scratch matrix of the reordering.
Fresh memory costs a page fault and a zeroed page per 4 KiB (or per 2 MiB
with huge pages) the first time it is touched, and glibc returns large
blocks to the system when they are freed, so a worker decoding subject
after subject paid that again and again: about a quarter of its time here.
A :class:`Recycler` keeps the buffers and hands one out again once nothing
refers to it any more.

How it knows: a buffer handed out is a view of a base array the recycler
keeps; numpy views and ``torch.from_numpy`` tensors made from it keep a
reference to that base, so the base's reference count falls back to what
the recycler alone holds when the last of them is gone. A buffer still in
use is never handed out twice.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Buffers kept by :data:`RECYCLER` (free or in use).
KEPT = 4

#: Largest total size of the buffers :data:`RECYCLER` keeps, in bytes.
KEPT_BYTES = 128 << 20

#: Smallest buffer worth recycling: below it, ``np.empty`` comes from the heap.
MIN_BYTES = 1 << 20


class Recycler:
    """Byte buffers handed out again once nothing refers to them.

    Args:
        kept: Buffers kept at most; the oldest is let go (it lives on as long
            as something uses it) when a new one would exceed this.
        kept_bytes: Total size of the kept buffers at most; a request for
            more than half of it gets a fresh ``np.empty``.
        min_bytes: Smaller requests get a fresh ``np.empty``.

    Example:
        >>> recycler = Recycler(min_bytes=0)
        >>> first = recycler.take(1000)
        >>> pointer = first.ctypes.data
        >>> recycler.take(1000).ctypes.data == pointer   # first is still in use
        False
        >>> del first
        >>> recycler.take(800).ctypes.data == pointer    # free again: the same memory
        True
    """

    def __init__(self, kept: int = KEPT, kept_bytes: int = KEPT_BYTES, min_bytes: int = MIN_BYTES) -> None:
        self.kept = kept
        self.kept_bytes = kept_bytes
        self.min_bytes = min_bytes
        self._bases: list[np.ndarray[Any, Any]] = []
        self._lock = threading.Lock()
        self._free_count = 0  # reference count of a base held only by the list and the loop variable

    def take(self, nbytes: int) -> np.ndarray[Any, Any]:
        """A ``uint8`` array of ``nbytes`` (uninitialised) that nothing else uses."""
        nbytes = int(nbytes)
        if nbytes < self.min_bytes or 2 * nbytes > self.kept_bytes:
            return np.empty(nbytes, np.uint8)
        with self._lock:
            best = None
            for base in self._bases:
                # Held by the list, this loop's name and getrefcount's argument only: free.
                fits = nbytes <= base.nbytes <= 2 * nbytes and (best is None or base.nbytes < best.nbytes)
                if fits and sys.getrefcount(base) <= self._free_count:
                    best = base
            if best is not None:
                return best[:nbytes]
            base = np.empty(nbytes, np.uint8)
            self._bases.append(base)
            if not self._free_count:
                self._free_count = sys.getrefcount(base)  # the list, the name base, the argument
            self._trim(base)
            return base[:nbytes]

    def _trim(self, newest: np.ndarray[Any, Any]) -> None:
        """Let go of buffers (free ones first, then the oldest) until within ``kept`` and ``kept_bytes``."""
        while len(self._bases) > self.kept or sum(b.nbytes for b in self._bases) > self.kept_bytes:
            free = (b for b in self._bases if b is not newest and sys.getrefcount(b) <= self._free_count)
            victim = next(free, self._bases[0])  # one in use lives on with its users, unrecycled
            if victim is newest:
                break
            self._bases = [b for b in self._bases if b is not victim]

    def clear(self) -> None:
        """Let go of every buffer (those in use live on with their users)."""
        with self._lock:
            self._bases = []

    def __repr__(self) -> str:
        with self._lock:
            total = sum(b.nbytes for b in self._bases)
        return f"Recycler({len(self._bases)} buffers, {total / 2**20:.1f} MiB)"


#: The readers' buffers: compressed files, decoded voxels, reordering scratch.
RECYCLER = Recycler()


def empty(shape: Sequence[int] | int, dtype: Any = np.uint8) -> np.ndarray[Any, Any]:
    """``np.empty(shape, dtype)`` (C order) from :data:`RECYCLER`'s buffers.

    Example:
        >>> empty((2, 3), np.int16).shape
        (2, 3)
    """
    dtype = np.dtype(dtype)
    size = (shape,) if isinstance(shape, int) else tuple(int(v) for v in shape)
    return RECYCLER.take(math.prod(size) * dtype.itemsize).view(dtype).reshape(size)


#: Each thread's scratch (:func:`thread_scratch`).
_SCRATCH = threading.local()


def thread_scratch(nbytes: int) -> np.ndarray[Any, Any]:
    """This thread's ``uint8`` scratch of at least ``nbytes``, the same one call after call (grown when too small).

    For work of a few MiB at most that a thread does again and again (the
    compiled copies' staging): no lock, no first-touch faults after the
    first call. Its contents are undefined and it is lent only until the
    thread's next call.

    Example:
        >>> thread_scratch(100) is thread_scratch(50)
        True
    """
    scratch = getattr(_SCRATCH, "buffer", None)
    if scratch is None or len(scratch) < nbytes:
        scratch = _SCRATCH.buffer = np.empty(nbytes, np.uint8)
    return scratch


def read_file(path: str | os.PathLike[str], offset: int = 0, count: int | None = None) -> np.ndarray[Any, Any]:
    """The bytes of ``path`` from ``offset`` on (``count`` of them at most) in a buffer of :data:`RECYCLER`.

    Read, not memory-mapped: a file truncated by another process while it is
    decoded must raise, not kill the process with SIGBUS. Fewer bytes than
    asked for where the file ends sooner.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / 'x.bin'
        >>> _ = path.write_bytes(b'abcdef')
        >>> bytes(read_file(path, 2, 3)), bytes(read_file(path, 4))
        (b'cde', b'ef')
    """
    with open(path, "rb", buffering=0) as stream:
        size = max(os.fstat(stream.fileno()).st_size - offset, 0)
        data = RECYCLER.take(size if count is None else min(count, size))
        stream.seek(offset)
        view, filled = data.data, 0
        while filled < len(data) and (got := stream.readinto(view[filled:])):
            filled += got
    return data[:filled]


__all__ = ["KEPT", "KEPT_BYTES", "MIN_BYTES", "RECYCLER", "Recycler", "empty", "read_file", "thread_scratch"]
