"""Cached label positions: :class:`LabelIndex` and the label map that owns one.

A cached label map comes with the runs of its non-zero voxels in flat C
order, grouped by class (:func:`~torchpatch.io.label_runs`), so the label
sampler draws a voxel of a class without scanning the volume: the k-th
voxel of a class is found by a binary search over its runs' lengths
(:class:`RunPositions`). Runs rather than every voxel's position: a
160 x 192 x 160 CT label map has 29 000 non-zero runs (0.5 MB) for its 1.5 M
non-zero voxels (12 MB of positions, more than the label map and the
int16 image together). The index describes *these* voxels: a
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
from ..io import label_runs, load_npy, map_npy


class RunPositions:
    """The flat positions some runs of voxels cover, read like the array that lists them.

    Args:
        runs: ``(R, 2)`` first position and length of each run (a memory
            map is read only where asked).

    ``view[k]`` (an int, an int array or a slice, ``0 <= k < size``) finds
    each position's run by a binary search over the runs' cumulative
    lengths; ``np.asarray(view)`` lists every position, run after run.

    Example:
        >>> view = RunPositions(np.array([[3, 2], [10, 3]]))
        >>> view.size, view[[0, 1, 2, 4]].tolist(), view[::2].tolist(), np.asarray(view).tolist()
        (5, [3, 4, 10, 12], [3, 10, 12], [3, 4, 10, 11, 12])
    """

    def __init__(self, runs: np.ndarray) -> None:
        self.runs = runs
        lengths = np.asarray(runs[:, 1], dtype=np.int64)
        self._ends = np.cumsum(lengths)
        self._firsts = self._ends - lengths  # each run's first index among the positions
        #: Positions covered.
        self.size = int(self._ends[-1]) if self._ends.size else 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | slice | np.ndarray) -> Any:
        if isinstance(key, slice):
            key = np.arange(*key.indices(self.size), dtype=np.int64)
        wanted = np.asarray(key, dtype=np.int64)
        if wanted.size and (int(wanted.min()) < 0 or int(wanted.max()) >= self.size):
            raise IndexError(f"positions {key!r} out of range for {self.size} positions")
        run = np.searchsorted(self._ends, wanted, side="right")
        found = np.asarray(self.runs[run, 0]) + wanted - self._firsts[run]
        return int(found) if found.ndim == 0 else found

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            raise ValueError("RunPositions lists its positions anew: np.asarray(view) makes them (copy=False cannot)")
        shifts = np.asarray(self.runs[:, 0]) - self._firsts  # position minus index, constant along a run
        positions = np.repeat(shifts, self._ends - self._firsts) + np.arange(self.size, dtype=np.int64)
        return positions if dtype is None else positions.astype(dtype)


class LabelIndex:
    """Where the non-zero voxels of a cached label map lie, by class: their runs (:func:`~torchpatch.io.label_runs`).

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
        runs, classes, first = label_runs(np.asarray(labels))
        stops = np.append(first[1:], len(runs))
        table = np.stack([classes, first, stops], axis=1).reshape(-1, 3)
        np.save(f"{prefix}.runs.npy", runs, allow_pickle=False)
        np.save(f"{prefix}.classes.npy", table.astype(np.int64), allow_pickle=False)
        return cls(prefix)

    def classes(self) -> list[int]:
        """Non-zero classes present."""
        return sorted(self._table)

    def view(self, label: int | None = None) -> RunPositions:
        """The flat indices of ``label``'s voxels (every non-zero one when ``None``), read from the runs when asked."""
        mapped = map_npy(Path(f"{self.prefix}.runs.npy"))
        if label is None:
            return RunPositions(mapped)
        start, stop = self._table.get(label, (0, 0))
        return RunPositions(mapped[start:stop])

    def positions(self, label: int) -> np.ndarray:
        """Flat (C-order) indices of the voxels of ``label``, increasing (empty if absent)."""
        return np.asarray(self.view(label))

    def foreground(self) -> np.ndarray:
        """Flat indices of every non-zero voxel (class after class)."""
        return np.asarray(self.view())


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
