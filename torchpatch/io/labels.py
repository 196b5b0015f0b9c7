"""Where each class of a label volume lies: its runs of equal non-zero voxels, grouped by class.

The decode-once cache stores them beside each label map
(:class:`~torchpatch.cache.LabelIndex`), so that the label sampler draws a
voxel of a class without scanning the volume. A run is as long as equal
voxels follow each other in flat C order (along K, then on over rows):
label maps are mostly long runs, so the runs take far less than the
positions of every voxel they cover (a 160 x 192 x 160 CT label map: 29 000
runs, 0.5 MB, for 1.5 M non-zero voxels, 12 MB as positions). Integer and
bool volumes whose values fit 16 bits go through the compiled extension in
two passes over the runs (4.4 ms for that map); others, and builds without
the extension, through numpy (the same runs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .team import compiled

Array = np.ndarray[Any, np.dtype[Any]]

#: Values a compiled call counts at most (one int64 counter each): every 8- and 16-bit label, and wider ones
#: from 0 to 65 535 (a wider label holding other values goes through numpy).
COUNTED_VALUES = 1 << 16


def label_runs(labels: Array) -> tuple[Array, Array, Array]:
    """The runs of equal non-zero elements of ``labels`` in flat (C) order, grouped by value.

    Returns:
        ``runs`` (int64, ``(R, 2)``): each run's first flat position and
        length, grouped by value in increasing order and by position within
        a group; ``classes`` (int64): the non-zero values present,
        increasing; ``first`` (int64): the row of each class's first run.

    Example:
        >>> runs, classes, first = label_runs(np.array([[0, 2, 2], [1, 0, 2]], dtype=np.uint8))
        >>> runs.tolist(), classes.tolist(), first.tolist()
        ([[3, 1], [1, 2], [5, 1]], [1, 2], [0, 1])
    """
    flat = np.ascontiguousarray(labels).reshape(-1)
    found = _compiled(flat)
    return found if found is not None else _numpy_runs(flat)


def _numpy_runs(flat: Array) -> tuple[Array, Array, Array]:
    """:func:`label_runs` of a flat array by numpy."""
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change)) if flat.size else change
    lengths = np.diff(np.append(starts, flat.size))
    values = flat[starts]
    kept = values != 0
    order = np.argsort(values[kept], kind="stable")
    runs = np.stack([starts[kept][order], lengths[kept][order]], axis=1).astype(np.int64)
    classes, first = np.unique(values[kept][order], return_index=True)
    return runs, classes.astype(np.int64), first.astype(np.int64)


def _compiled(flat: Array) -> tuple[Array, Array, Array] | None:
    """:func:`label_runs` by the compiled extension; ``None`` where it does not apply."""
    if compiled is None or flat.dtype.kind not in "biu":
        return None
    signed = flat.dtype.kind == "i"
    if flat.dtype.itemsize <= 2:
        span = 1 << (8 * flat.dtype.itemsize)
        low = -(span >> 1) if signed else 0
    else:
        span, low = COUNTED_VALUES, 0
    counts = np.zeros(span, dtype=np.int64)  # runs of each value
    found = compiled.label_runs(flat.view(np.uint8), flat.dtype.itemsize, signed, low, counts)
    if found is None:
        return None  # values beyond the counters: numpy's way
    values = np.flatnonzero(counts) + low
    values = values[values != 0]
    runs = counts[values - low]
    first = (np.cumsum(runs) - runs).astype(np.int64)
    return np.frombuffer(found, dtype=np.int64).reshape(-1, 2), values.astype(np.int64), first


__all__ = ["COUNTED_VALUES", "label_runs"]
