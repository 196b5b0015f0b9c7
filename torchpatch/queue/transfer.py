"""Moving a worker's stacks to the training process in shared memory that is used again.

A stack sent from a worker lives in shared memory. Made fresh for every
subject, each 4 KiB page of it cost a page fault and a newly zeroed page,
written once and freed once the training loop had copied its patches out:
10 of a worker's 40 ms per CT subject here (3 000 faults for 12 MiB of
patches), five times the cut itself. Instead each worker keeps the shared
buffers it sent and fills them again once the training process is done with
them::

    worker: cut into a recycled private buffer ─ pwrite ─> shared buffer [header: SENT | voxels]
                                                                │ sent (a file descriptor)
    training process: adopt() ─> pops, batches ─> the last view is gone: header <- FREE
                                                                │
    worker: the next stack of that size goes into a FREE buffer (or a new one)

- The worker writes with ``pwrite`` into the buffer's file, never through a
  mapping of its own, so a kept buffer is in no worker's resident memory:
  only the training process maps it, while it holds the stack, as before.
  The private buffer the stack is cut into comes from the readers'
  :data:`~torchpatch.io.buffers.RECYCLER`, free again once the stack is shipped.
- The training process hands the stack on as ``torch.from_numpy`` tensors of
  a numpy view of the buffer: every patch, batch row or view made from them
  holds that view, so its finalizer runs when the last use ends, and writes
  FREE into the header.
- A worker keeps buffers only up to :data:`KEPT_BYTES`; when none of the size
  is free it makes another, so a training loop that keeps patches only makes
  the worker allocate as it did before.
- A kept buffer is an anonymous shared file
  (:func:`~torchpatch.stacked.anonymous_storage`), not a file of
  ``/dev/shm``: its size is not bound by that folder's (64 MiB in
  a default Docker container, where the CT job of the queue benchmark,
  about 170 MiB of stacks held at once, failed with "No space left on
  device"). It is made without the ``fallocate`` that zeroes every page
  of PyTorch's shared memory before ``pwrite`` writes it (a new 12 MiB
  buffer made and filled in 4.1-4.7 ms against 5.0-5.3 ms alone), but in a
  cold epoch the workers' kernel time stayed the same (128 against 129
  ms): the pages are allocated inside ``pwrite`` instead.
- Only with PyTorch's ``file_descriptor`` sharing strategy (Linux's default);
  with another, stacks are made in fresh shared memory as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import weakref
from typing import Any

try:
    import resource
except ImportError:  # not on this platform: no limits on open files to read or raise
    resource = None  # type: ignore[assignment]

import numpy as np
import torch
import torch.multiprocessing
from torch.utils.data import get_worker_info

from ..io import buffers
from ..patches import Patches
from ..stacked import empty_batch, on_storage, shared_storage

#: Bytes before the voxels in a shared buffer: a tag and the buffer's state.
HEADER_BYTES = 64

#: The first bytes of a buffer made here.
MAGIC = b"torchpch"

#: The header's state byte (at ``len(MAGIC)``): set by the worker when sent, by the training process when done.
SENT, FREE = b"\x01", b"\x00"

#: Shared buffers a worker keeps at most, in bytes (free or in use).
KEPT_BYTES = 512 << 20

#: Where PyTorch's shared memory lives on Linux (named in the error when it is full).
SHARED_MEMORY = "/dev/shm"  # noqa: S108 - only read (its free space), never written

#: Smaller stacks are sent in fresh shared memory (a few pages, no gain).
MIN_BYTES = 256 << 10


def _descriptor(storage: torch.UntypedStorage) -> int:
    """The open file of a shared storage (private PyTorch API, pinned by tests/queue/test_transfer.py)."""
    return int(storage._share_fd_cpu_()[0])


def _voxel_bytes(tensor: torch.Tensor) -> np.ndarray[Any, Any]:
    """The voxels of a contiguous CPU tensor as a flat ``uint8`` array (no copy), whatever the dtype."""
    return tensor.reshape(-1).view(torch.uint8).numpy()


class _Buffer:
    """A shared buffer kept by a worker: its storage (which keeps the file open) and the file."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.storage = shared_storage(HEADER_BYTES + nbytes)  # an anonymous file where there is one
        self.fd = _descriptor(self.storage)
        os.pwrite(self.fd, MAGIC + SENT, 0)

    def free(self) -> bool:
        """Whether the training process is done with what was last sent in it."""
        return os.pread(self.fd, 1, len(MAGIC)) == FREE

    def fill(self, tensor: torch.Tensor) -> torch.Tensor:
        """Write ``tensor``'s voxels (marking the buffer sent) and return them as a tensor of the buffer."""
        os.pwrite(self.fd, SENT, len(MAGIC))
        data = _voxel_bytes(tensor).data
        written = 0
        try:
            while written < self.nbytes:  # pwrite may write less than asked
                written += os.pwrite(self.fd, data[written:], HEADER_BYTES + written)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.ENOMEM):
                raise
            raise OSError(error.errno, _no_space(self.nbytes, _anonymous(self.fd))) from error
        return on_storage(self.storage, tensor.dtype, tensor.shape, offset=HEADER_BYTES)


def _anonymous(descriptor: int) -> bool:
    """Whether an open file is an anonymous shared file (:func:`~torchpatch.stacked.anonymous_storage`)."""
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}").startswith("/memfd:")
    except OSError:  # no /proc: no anonymous files either
        return False


def _no_space(nbytes: int, anonymous: bool = False) -> str:
    """What to do when shared memory is full, with the sizes that matter."""
    lower = "lower max_length, samples_per_volume, the patch size or num_workers"
    if anonymous:
        return (
            f"no memory left for a stack of patches of {nbytes / 2**20:.1f} MiB in shared memory (an anonymous "
            f"shared file; the machine's or the container's memory is used up): the Queue's workers send every "
            f"subject's patches through it. Give the job more memory, or {lower}"
        )
    free = ""
    with contextlib.suppress(OSError):
        status = os.statvfs(SHARED_MEMORY)
        available, total = (count * status.f_frsize / 2**20 for count in (status.f_bavail, status.f_blocks))
        free = f", {available:.0f} MiB free of {total:.0f}"
    return (
        f"no space left in shared memory ({SHARED_MEMORY}{free}) for a stack of patches of "
        f"{nbytes / 2**20:.1f} MiB: the Queue's workers send every subject's patches through it. "
        f"Give it more room (e.g. docker run --shm-size=4g), or {lower}"
    )


class Shipper:
    """The worker side: stacks cut into kept private buffers, sent in kept shared ones.

    Args:
        kept_bytes: Shared buffers kept at most, in bytes.

    Example:
        >>> shipper = Shipper()
        >>> private = shipper.allocate((2, 1, 64, 64, 64), torch.float32)
        >>> shipped = shipper.buffer_for(private.fill_(1.0))
        >>> shipped.is_shared(), bool((shipped == 1).all())
        (True, True)
    """

    def __init__(self, kept_bytes: int = KEPT_BYTES) -> None:
        self.kept_bytes = kept_bytes
        self._buffers: list[_Buffer] = []

    def allocate(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A private buffer to cut a stack into, from the readers' recycled ones (:mod:`~torchpatch.io.buffers`).

        Free once the stack is shipped: the next subject's decoding or cut
        takes it again, so no page of it is touched for the first time twice.
        """
        nbytes = int(np.prod(shape)) * dtype.itemsize
        return torch.from_numpy(buffers.empty(nbytes)).view(dtype).view(shape)

    def buffer_for(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s voxels copied into a shared buffer that is free (kept, or new)."""
        tensor = tensor.contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        chosen = next((b for b in self._buffers if b.nbytes == nbytes and b.free()), None)
        if chosen is None:
            chosen = _Buffer(nbytes)
            kept = sum(b.nbytes for b in self._buffers)
            while self._buffers and kept + nbytes > self.kept_bytes:
                # Let go of the oldest buffer that is free (it ends when the training process's mapping does).
                oldest = next((b for b in self._buffers if b.free()), None)
                if oldest is None:
                    break
                self._buffers.remove(oldest)
                kept -= oldest.nbytes
            if kept + nbytes <= self.kept_bytes:
                self._buffers.append(chosen)
        return chosen.fill(tensor)

    def ship(self, patches: Patches) -> None:
        """Move ``patches``' voxels into shared buffers (in place): what crosses to the training process."""
        for name, data in patches.data.items():
            if data.device.type == "cpu" and data.numel() * data.element_size() >= MIN_BYTES:
                patches.data[name] = self.buffer_for(data)


_SHIPPER: Shipper | None = None
_SHIPPER_LOCK = threading.Lock()


def shipper() -> Shipper | None:
    """This worker process's :class:`Shipper`; ``None`` outside a loader worker or without file descriptors.

    Example:
        >>> shipper() is None   # the training process
        True
    """
    global _SHIPPER
    if get_worker_info() is None or torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
        return None
    if not hasattr(torch.UntypedStorage, "_share_fd_cpu_"):  # private; pinned by tests/queue/test_transfer.py
        return None
    with _SHIPPER_LOCK:
        if _SHIPPER is None:
            _SHIPPER = Shipper()
        return _SHIPPER


def allocate(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Where a worker cuts a stack: a kept private buffer when stacks are shipped, else shared memory.

    Example:
        >>> allocate((2, 1, 4, 4, 4), torch.int16).shape
        torch.Size([2, 1, 4, 4, 4])
    """
    worker = shipper()
    if worker is not None and int(np.prod(shape)) * dtype.itemsize >= MIN_BYTES:
        return worker.allocate(shape, dtype)
    return empty_batch(shape, dtype)


def ship(patches: Patches) -> Patches:
    """``patches`` ready to send from a worker (their voxels in kept shared buffers); as is elsewhere.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> stack = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))).cut([[0, 0, 0, 2, 2, 1]])
        >>> ship(stack) is stack
        True
    """
    worker = shipper()
    if worker is not None:
        worker.ship(patches)
    return patches


def _mark_free(header: np.ndarray[Any, Any]) -> None:
    """Tell the worker that owns a buffer (its header, mapped here) that it may fill it again."""
    header[len(MAGIC)] = FREE[0]


#: The soft limit on open files a process using these transfers raises itself to (within its hard limit).
OPEN_FILES = 1 << 16


def allow_open_files(wanted: int = OPEN_FILES) -> tuple[int, int]:
    """Raise this process's soft limit on open files toward ``wanted``, within the hard limit.

    With PyTorch's ``file_descriptor`` sharing, the training process keeps
    a file open for every stack it holds, and a large pool holds many: 400
    stacks of 1 MiB (2D patches, ``max_length`` of 25 600) kept 698 files
    open (the pool then topped up before every pop), and a pool of that
    size stopped with "Too many open files" under the usual soft limit of
    1 024. The soft limit is
    the process's own to raise up to the hard one (Go's runtime does so at
    start). Workers forked afterwards inherit it.

    Returns:
        The soft and hard limits now (``(-1, -1)`` where there are none).

    Example:
        >>> soft, hard = allow_open_files()
        >>> soft == -1 or soft >= min(OPEN_FILES, hard) or hard == -1
        True
    """
    soft, hard = _open_files_limits()
    if resource is None:
        return soft, hard
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft, hard


def _open_files_limits() -> tuple[int, int]:
    """This process's soft and hard limits on open files (``(-1, -1)`` where there are none)."""
    if resource is None:
        return -1, -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def out_of_files(error: BaseException) -> str | None:
    """What to do when ``error`` says a process ran out of open files; ``None`` for any other error.

    Example:
        >>> import errno
        >>> out_of_files(OSError(errno.EMFILE, 'Too many open files')).startswith('a Queue process ran out')
        True
        >>> out_of_files(ValueError('other')) is None
        True
    """
    text = str(error)
    emfile = isinstance(error, OSError) and error.errno == errno.EMFILE
    if not (emfile or "Too many open files" in text or "received 0 items of ancdata" in text):
        return None
    soft, hard = _open_files_limits()
    limits = f" (here: soft limit {soft}, hard limit {hard})" if soft >= 0 else ""
    return (
        f"a Queue process ran out of open files{limits}: with PyTorch's file_descriptor sharing the training "
        "process keeps one open for every stack of patches it holds (a large pool holds many), "
        "and each worker one for every shared buffer it keeps. Raise the limit (ulimit -n in the shell that "
        "starts training), or lower max_length or raise samples_per_volume"
    )


class Receiver:
    """The training process's side: received stacks handed on; each buffer marked free when its last use ends.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> stack = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))).cut([[0, 0, 0, 2, 2, 1]])
        >>> receiver = Receiver()
        >>> receiver.adopt(stack)   # not in a kept buffer: left as is
        >>> receiver.held
        0
    """

    def __init__(self) -> None:
        self._held = 0
        # Re-entrant: a finalizer may run in a thread that holds it (a collection inside adopt).
        self._lock = threading.RLock()

    @property
    def held(self) -> int:
        """Received buffers still in use here."""
        with self._lock:
            return self._held

    def _release(self, header: np.ndarray[Any, Any]) -> None:
        try:
            _mark_free(header)
        finally:
            with self._lock:
                self._held -= 1

    def adopt(self, patches: Patches) -> None:
        """Hand ``patches``' voxels on as tensors whose end marks their buffer free.

        Each image sent in a kept buffer becomes a ``torch.from_numpy`` tensor
        of a numpy view of it: every patch, batch row or view made from it
        holds that view, and when the last one is gone the view's finalizer
        writes FREE into the buffer's header through the mapping, which the
        finalizer keeps until then (a small view of the header). No file is
        opened here: the training process holds one per buffer in use
        (PyTorch's own, with the mapping), not two.
        """
        for name, data in patches.data.items():
            if data.device.type != "cpu" or data.storage_offset() * data.element_size() != HEADER_BYTES:
                continue
            if not data.is_shared():
                continue
            header = on_storage(data.untyped_storage(), torch.uint8, (HEADER_BYTES,)).numpy()  # holds the storage
            if bytes(header[: len(MAGIC)]) != MAGIC:
                continue
            voxels = _voxel_bytes(data)
            patches.data[name] = torch.from_numpy(voxels).view(data.dtype).view(data.shape)
            with self._lock:
                self._held += 1
            finalizer = weakref.finalize(voxels, self._release, header)
            finalizer.atexit = False  # at exit the workers are gone too


__all__ = [
    "HEADER_BYTES",
    "KEPT_BYTES",
    "MIN_BYTES",
    "OPEN_FILES",
    "Receiver",
    "Shipper",
    "allocate",
    "allow_open_files",
    "out_of_files",
    "ship",
    "shipper",
]
