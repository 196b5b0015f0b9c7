"""TorchIO 1.x's ``tio.data.inference`` module path: the grid sampler and aggregator.

Example:
    >>> import torchpatch
    >>> from torchpatch.data.inference import GridAggregator, GridSampler
    >>> GridSampler is torchpatch.GridSampler, GridAggregator is torchpatch.GridAggregator
    (True, True)
"""

from __future__ import annotations

from ..inference import GridAggregator
from ..sampler import GridSampler

__all__ = ["GridAggregator", "GridSampler"]
