"""The Queue's pool: the stacked patches of a few subjects, handed out one patch at a time.

Patches arrive stacked per subject (:class:`~torchpatch.patches.Patches`, one
transfer from a worker) and leave one by one in a random order, so that a
batch mixes subjects. As in TorchIO's Queue, the pool is filled only once it
is empty, with whole stacks until it holds ``max_length`` patches, shuffled,
and then drained::

    take() -> Patches of sub-3 (16)  ─┐
    take() -> Patches of sub-0 (16)  ─┼─>  pool of >= max_length (stack, n)  ─>  pop() -> Subject
    ...                              ─┘    filled when empty, shuffled, popped

So every stack is done with within one pool's worth of pops and its memory
(a worker's shared buffer) is free again: topping the pool up before each
pop instead kept a stack's last patches for most of an epoch (14 of 16
stacks held at once in ``benchmarks/queue.py``), and every stack of a first
epoch then took fresh shared memory, about a tenth of a cold epoch's CPU
there (see the queue benchmark page).

Without ``shuffle_patches`` the pool holds one patch ahead and pops in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

import numpy as np
from tqdm import tqdm

from ..patches import Patches
from ..subject import Subject


class PatchPool:
    """Patches ready to pop, from the stacks of one epoch.

    Args:
        max_length: Patches mixed at once (with ``shuffle``).
        shuffle: Pop at random (from the generator given to :meth:`reset`)
            rather than in arrival order.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, LOCATION
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)))
        >>> stacks = iter([subject.cut([[0, 0, 0, 2, 2, 1], [2, 2, 0, 4, 4, 1]])])
        >>> pool = PatchPool(max_length=4, shuffle=False)
        >>> pool.reset(np.random.default_rng(0))
        >>> pool.fill(lambda: next(stacks, None))
        >>> len(pool), pool.pop()[LOCATION].tolist()
        (2, [0, 0, 0, 2, 2, 1])
        >>> _ = pool.pop(); pool.fill(lambda: next(stacks, None)); pool.exhausted
        True
    """

    def __init__(self, max_length: int, shuffle: bool) -> None:
        self.max_length = max_length
        self.shuffle = shuffle
        #: Whether the epoch's stream of stacks has ended.
        self.exhausted = True
        self._entries: list[tuple[Patches, int]] = []
        self._taken = 0  # patches taken this epoch
        self._rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator) -> None:
        """Empty the pool for a new epoch whose pops draw from ``rng``."""
        self._entries = []
        self._taken = 0
        self.exhausted = False
        self._rng = rng

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def target(self) -> int:
        """Patches a fill takes stacks until it holds (or the epoch ends)."""
        return self.max_length if self.shuffle else 1

    def fills_from(self, staged: Callable[[], tuple[Sequence[int], bool]], pops: int, total: int) -> bool:
        """Whether ``pops`` pops take only the pool's patches and the stacks ``staged()`` lists.

        ``staged()`` gives the sizes of the stacks that come next, in order,
        and whether the epoch's end follows them; it is asked only when a
        fill is needed. Fills are counted as :meth:`fill` makes them: one that
        needs more stacks, or that reaches ``total`` patches taken (it then
        asks for the end) before the end is staged, would wait.

        Example:
            >>> pool = PatchPool(max_length=4, shuffle=True)
            >>> pool.reset(np.random.default_rng(0))
            >>> pool.fills_from(lambda: ([3, 3], False), 2, 12), pool.fills_from(lambda: ([3], False), 2, 12)
            (True, False)
        """
        pops -= len(self._entries)
        if pops <= 0:
            return True
        stacks, ends = staged()
        taken = self._taken
        queued = iter(stacks)
        while pops > 0:  # the pool is empty: one fill
            held = 0
            while held < self.target or 0 < total <= taken:
                size = next(queued, None)
                if size is None:
                    return ends
                held += size
                taken += size
            pops -= held
        return True

    def fill(self, take: Callable[[], Patches | None], total: int = 0, show: bool = False) -> None:
        """When the pool is empty, take stacks until it is full or ``take`` returns ``None`` (the epoch's end).

        Args:
            take: The next stack of the epoch, ``None`` after the last.
            total: Patches in the epoch (for the progress bar). Once that
                many were taken, ``take`` is also asked for the end of the
                epoch's stream, so the epoch's last fill waits for whatever
                its producer does after the last stack.
            show: Show a progress bar while filling.
        """
        if self._entries:
            return  # drained before it is filled again: a stack lives for one pool's worth of pops
        target = self.target
        bar = tqdm(total=min(target, total), desc="Filling queue", leave=False) if show else None
        while not self.exhausted and (len(self._entries) < target or 0 < total <= self._taken):
            stack = take()
            if stack is None:
                self.exhausted = True
                break
            self._taken += len(stack)
            self._entries.extend((stack, index) for index in range(len(stack)))
            if bar is not None:
                bar.update(min(len(stack), bar.total - bar.n))
        if bar is not None:
            bar.close()
        if self.shuffle and len(self._entries) > 1:
            # Shuffled once per fill and popped from the end: a random order without a draw per pop.
            order = self._rng.permutation(len(self._entries))
            self._entries = [self._entries[i] for i in order]

    def pop(self) -> Subject:
        """One patch: at random with ``shuffle``, else the oldest."""
        stack, index = self.pop_entry()
        return stack[index]

    def pop_entry(self) -> tuple[Patches, int]:
        """What :meth:`pop` would make a patch of: its stack and its row there."""
        return self._entries.pop() if self.shuffle else self._entries.pop(0)


class PooledPatches(Sequence[Subject]):
    """The patches waiting in a :class:`PatchPool`, read-only, in TorchIO's order: the last one is popped next.

    A view: it follows the pool as patches are popped and filled in. A
    patch is made when it is asked for (a copy of its box, for the
    memory-mapped stacks of cached subjects).

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, LOCATION
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1)))
        >>> stacks = iter([subject.cut([[0, 0, 0, 2, 2, 1], [2, 2, 0, 4, 4, 1]])])
        >>> pool = PatchPool(max_length=2, shuffle=True)
        >>> pool.reset(np.random.default_rng(0))
        >>> pool.fill(lambda: next(stacks, None))
        >>> waiting = PooledPatches(pool)
        >>> before = waiting[-1][LOCATION].tolist()
        >>> len(waiting), pool.pop()[LOCATION].tolist() == before, len(waiting)
        (2, True, 1)
    """

    def __init__(self, pool: PatchPool) -> None:
        self.pool = pool

    def __len__(self) -> int:
        return len(self.pool)

    @overload
    def __getitem__(self, index: int) -> Subject: ...

    @overload
    def __getitem__(self, index: slice) -> list[Subject]: ...

    def __getitem__(self, index: int | slice) -> Subject | list[Subject]:
        entries = self.pool._entries if self.pool.shuffle else self.pool._entries[::-1]
        if isinstance(index, slice):
            return [stack[row] for stack, row in entries[index]]
        count = len(entries)
        if not -count <= index < count:
            raise IndexError(f"patch {index} is out of range: the queue holds {count} patches")
        stack, row = entries[index]
        return stack[row]

    def __repr__(self) -> str:
        return f"PooledPatches({len(self)} patches)"


__all__ = ["PatchPool", "PooledPatches"]
