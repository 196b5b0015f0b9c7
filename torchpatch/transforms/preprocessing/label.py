"""Label map preprocessing where TorchIO 1.x groups it (``tio.transforms.preprocessing.label``).

Example:
    >>> from torchpatch.transforms.preprocessing.label import RemoveLabels
    >>> RemoveLabels([2])
    RemoveLabels(labels=[2], background_label=0)
"""

from __future__ import annotations

from ..label import KeepLargestComponent, OneHot, RemapLabels, SequentialLabels
from ..label_extra import Contour, RemoveLabels

__all__ = ["Contour", "KeepLargestComponent", "OneHot", "RemapLabels", "RemoveLabels", "SequentialLabels"]
