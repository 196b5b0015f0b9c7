"""Shared-memory buffers for the workers' stacks, used again once the training process is done with them.

A worker sends each subject's patches to the training process in shared
memory. A fresh shared buffer costs on both sides: the worker's kernel
zeroes its pages and faults them in one 4 KiB page at a time (3 000 faults
for the 12 MiB of a CT subject's 16 patches), and the training process maps
it and faults every page in again to read it. Measured on the Queue
benchmark (16 CT subjects, 2 workers), that was about 100 000 page faults and
a quarter of the workers' CPU time per epoch.

So each worker owns a few *slots*, each a shared buffer it keeps and fills
again. A byte per slot, in memory shared by every process, says whose turn
it is::

    worker: a free slot (flag 0) -> flag 1, cut the patches into it, send  ──>  training process:
    training process: watches the buffer (a weak reference); once no tensor,     receives the stack,
    view or array uses it any more, flag 0: the worker may fill it again    <──  copies patches out

A patch the user keeps keeps its slot (every tensor, view and ``.numpy()``
array made from the stack holds the buffer). When a worker finds no free
slot it allocates a one-off buffer, as without slots. The training process
does not keep its mapping of a free slot (peak memory stays what it was);
mapping it again costs it about 3 000 page faults per 12 MiB, the worker
none.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.data import get_worker_info

from ..loader import empty_batch, new_shared_storage, shared_tensor

#: Slots per worker: the stacks one worker can have in flight (prefetched,
#: staged, in the pool), two images each, with room to spare.
SLOTS_PER_WORKER = 16


class StackSlots:
    """Reused shared buffers for the stacks of ``num_workers`` workers.

    Made in the training process before the workers start; each worker
    allocates from its own slots (:meth:`allocate`), and the training
    process hands them back (:meth:`hold` each stack it receives).

    Args:
        num_workers: Worker processes.
        per_worker: Slots each worker owns (default :data:`SLOTS_PER_WORKER`; 0: none, every stack
            in a one-off buffer).

    Example:
        >>> slots = StackSlots(num_workers=1)
        >>> slots.allocate((2, 1, 4, 4, 4), torch.float32).shape   # outside a worker: a plain tensor
        torch.Size([2, 1, 4, 4, 4])
        >>> slots.taken()
        ()
    """

    def __init__(self, num_workers: int, per_worker: int | None = None) -> None:
        self.per_worker = SLOTS_PER_WORKER if per_worker is None else per_worker
        #: Per slot: 1 while the training process may use its buffer, 0 when the worker may fill it.
        self.flags = torch.zeros(max(1, num_workers) * self.per_worker, dtype=torch.uint8).share_memory_()
        self._init_process_state()

    def _init_process_state(self) -> None:
        self._flags: np.ndarray[Any, Any] | None = None
        # Worker side: each slot's buffer, and the slots the current cut took.
        self._buffers: dict[int, torch.UntypedStorage] = {}
        self._taken: list[int] = []
        # Training-process side: the stacks not handed back yet (their slots, their buffers).
        self._pending: list[tuple[tuple[int, ...], list[StorageWeakRef]]] = []

    def __getstate__(self) -> dict[str, Any]:
        # To a spawned worker: only the flags (PyTorch shares their memory); buffers stay per process.
        return {"per_worker": self.per_worker, "flags": self.flags}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.per_worker = state["per_worker"]
        self.flags = state["flags"]
        self._init_process_state()

    @property
    def _flag_array(self) -> np.ndarray[Any, Any]:
        if self._flags is None:
            self._flags = self.flags.numpy()
        return self._flags

    # The worker side.

    def allocate(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A ``shape`` tensor for a stack: in a free slot in a worker, else :func:`~torchpatch.loader.empty_batch`'s."""
        info = get_worker_info()
        if info is None or dtype == torch.bfloat16:
            return empty_batch(shape, dtype)
        size = tuple(int(v) for v in shape)
        nbytes = math.prod(size) * dtype.itemsize
        flags = self._flag_array
        first = info.id * self.per_worker
        fitting: int | None = None
        spare: int | None = None
        for slot in range(first, min(first + self.per_worker, len(flags))):
            if flags[slot] or slot in self._taken:
                continue
            buffer = self._buffers.get(slot)
            if buffer is not None and buffer.nbytes() >= nbytes:
                if fitting is None or buffer.nbytes() < self._buffers[fitting].nbytes():
                    fitting = slot
            elif spare is None or buffer is None:
                spare = slot  # empty, or too small: takes a new buffer (an empty slot first)
        chosen = fitting if fitting is not None else spare
        if chosen is None:
            return empty_batch(size, dtype)  # every slot in flight: a one-off buffer
        if chosen != fitting:
            self._buffers[chosen] = new_shared_storage(nbytes)
        self._taken.append(chosen)
        return shared_tensor(self._buffers[chosen], size, dtype)

    def taken(self) -> tuple[int, ...]:
        """The slots allocated since the last call, now in the training process's hands (flag 1)."""
        taken, self._taken = tuple(self._taken), []
        flags = self._flag_array if taken else None
        for slot in taken:
            assert flags is not None
            flags[slot] = 1
        return taken

    def forget(self) -> None:
        """Give back the slots taken by a cut that failed (nothing was sent)."""
        self._taken = []

    # The training-process side.

    def hold(self, slots: tuple[int, ...], tensors: list[torch.Tensor]) -> None:
        """Watch the buffers of a received stack (its ``slots``, its image ``tensors``); hand back the unused ones."""
        if slots:
            self._pending.append((slots, [StorageWeakRef(tensor.untyped_storage()) for tensor in tensors]))
        self.release_unused()

    def release_unused(self) -> None:
        """Flag 0 for the slots of every stack whose buffers no tensor or array uses any more."""
        still = []
        flags = self._flag_array
        for slots, buffers in self._pending:
            if all(buffer.expired() for buffer in buffers):
                for slot in slots:
                    flags[slot] = 0
            else:
                still.append((slots, buffers))
        self._pending = still


__all__ = ["SLOTS_PER_WORKER", "StackSlots"]
