"""Cached label positions: :class:`LabelIndex` and the label map that owns one.

A cached label map comes with the flat positions of its non-zero voxels,
sorted by class, so the label sampler draws a voxel of a class without
scanning the volume. The positions describe *these* voxels: a
:class:`CachedLabelMap` drops its index whenever its voxels are replaced
(:meth:`~CachedLabelMap.set_data`, :meth:`~CachedLabelMap.derive`), and keeps
it when it only reads them back from its own file (:meth:`~CachedLabelMap.load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..image import Image, LabelMap
from ..io import label_positions, load_npy, map_npy


class LabelIndex:
    """Positions of the non-zero voxels of a cached label map, by class.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> index = LabelIndex.build(np.array([[[[0], [2], [1], [2]]]]), folder / 'seg')
        >>> index.classes(), index.positions(2).tolist()
        ([1, 2], [1, 3])
    """

    def __init__(self, prefix: Path) -> None:
        self.prefix = Path(prefix)
        table = load_npy(f"{self.prefix}.classes.npy")
        self._table = {int(c): (int(a), int(b)) for c, a, b in table}

    @classmethod
    def build(cls, labels: np.ndarray, prefix: Path) -> LabelIndex:
        """Write the index of ``labels`` ``(1, I, J, K)`` next to ``prefix``."""
        positions, classes, starts = label_positions(np.asarray(labels))
        stops = np.append(starts[1:], positions.size)
        table = np.stack([classes, starts, stops], axis=1).reshape(-1, 3)
        np.save(f"{prefix}.positions.npy", positions, allow_pickle=False)
        np.save(f"{prefix}.classes.npy", table.astype(np.int64), allow_pickle=False)
        return cls(prefix)

    def classes(self) -> list[int]:
        """Non-zero classes present."""
        return sorted(self._table)

    def view(self, label: int | None = None) -> np.ndarray:
        """Memory-mapped flat indices of ``label`` (every non-zero voxel when ``None``); nothing is read yet."""
        mapped = map_npy(Path(f"{self.prefix}.positions.npy"))
        if label is None:
            return mapped
        if label not in self._table:
            return mapped[:0]
        start, stop = self._table[label]
        return mapped[start:stop]

    def positions(self, label: int) -> np.ndarray:
        """Flat (C-order) indices of the voxels of ``label`` (empty if absent)."""
        return np.array(self.view(label))

    def foreground(self) -> np.ndarray:
        """Flat indices of every non-zero voxel."""
        return np.array(self.view())


class CachedLabelMap(LabelMap):
    """A label map read from the cache, with the positions of its classes while its voxels are the cached ones.

    Args:
        *args: As for :class:`~torchpatch.LabelMap`.
        label_index: The positions of the classes in the voxels of ``path``;
            ``None`` when there is none (several channels).
        **kwargs: As for :class:`~torchpatch.LabelMap`.

    Changing the voxels through :meth:`set_data` (or ``image.data = ...``) or
    making a new image from this one (:meth:`derive`: crops, patches,
    transforms) drops the index; editing the tensor in place cannot be seen,
    so don't.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> labels = np.array([[[[0], [2], [1], [2]]]])
        >>> np.save(folder / 'seg.npy', labels)
        >>> seg = CachedLabelMap(folder / 'seg.npy', label_index=LabelIndex.build(labels, folder / 'seg'))
        >>> seg.load(); seg.label_index.positions(2).tolist()
        [1, 3]
        >>> seg.set_data(torch.zeros(1, 1, 4, 1)); seg.label_index is None
        True
    """

    label_index: LabelIndex | None

    def __init__(self, *args: Any, label_index: LabelIndex | None = None, **kwargs: Any) -> None:
        if label_index is not None and not isinstance(label_index, LabelIndex):
            raise TypeError(f"label_index must be a LabelIndex or None, got {type(label_index).__name__}")
        super().__init__(*args, **kwargs)
        self.label_index = label_index

    def set_data(self, tensor: torch.Tensor | np.ndarray | None) -> None:
        """Replace the voxels, dropping the index (it described the old ones).

        Example:
            >>> seg = CachedLabelMap(tensor=torch.zeros(1, 2, 2, 1))
            >>> seg.set_data(torch.ones(1, 2, 2, 1)); seg.label_index is None
            True
        """
        self.label_index = None
        super().set_data(tensor)

    def load(self) -> None:
        """Read the cached voxels; the index still describes them, so it is kept.

        Example:
            >>> seg = CachedLabelMap(tensor=torch.zeros(1, 2, 2, 1))
            >>> seg.load(); seg.is_loaded
            True
        """
        index = self.label_index
        super().load()
        self.label_index = index

    def derive(self, data: torch.Tensor | None, affine: Any, *, checked: bool = False) -> Image:
        """A new image holding ``data`` (see :meth:`Image.derive`), without the index.

        Example:
            >>> seg = CachedLabelMap(tensor=torch.zeros(1, 4, 4, 1))
            >>> patch = seg.derive(torch.zeros(1, 2, 2, 1, dtype=torch.int64), np.eye(4))
            >>> type(patch).__name__, patch.label_index
            ('CachedLabelMap', None)
        """
        new = super().derive(data, affine, checked=checked)
        if isinstance(new, CachedLabelMap):
            new.label_index = None
        return new


__all__ = ["CachedLabelMap", "LabelIndex"]
