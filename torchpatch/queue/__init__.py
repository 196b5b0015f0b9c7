"""The training queue: worker processes cut patches while the model trains.

The pieces, in the order a patch goes through them:

- :mod:`~torchpatch.queue.plan`: the epoch plan (subject order, seeds, patch
  counts per subject), pure functions of the seed and the epoch;
- :mod:`~torchpatch.queue.producer`: worker processes (or threads, for
  cached subjects) cut each subject's patches, stacked, in plan order;
- :mod:`~torchpatch.queue.pool`: the stacks of a few subjects, popped one
  patch at a time;
- :mod:`~torchpatch.queue.diagnostics`: the only reader of PyTorch's
  ``DataLoader`` internals (dead workers, shutting them down);
- :mod:`~torchpatch.queue.queue`: :class:`Queue`, which ties them together.
"""

from __future__ import annotations

from .queue import Queue

__all__ = ["Queue"]
