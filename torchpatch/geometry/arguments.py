"""The one parser of per-axis arguments: patch sizes, overlaps, any "an int or three ints".

Every public function that takes a per-axis value parses it here, so the same
argument means the same thing everywhere and is refused with the same words:

- an int ``n`` means ``(n, n, n)``; for patch sizes and overlaps on a 2D
  image (depth one) it means ``(n, n, 1)`` and ``(n, n, 0)``;
- three ints give one value per axis ``(I, J, K)``;
- ``patch_overlap`` may also be a float, or three floats, in ``[0, 1)``: a
  fraction of the patch, ``floor(f * p)`` voxels on an axis of patch ``p``
  (what SAHI users write as an overlap ratio).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from ..typing import TypeTriplet


def _items(value: Any, name: str, expected: str) -> list[Any] | None:
    """The three items of a sequence argument, ``None`` for a scalar; refuses other types."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {expected}, got the bool {value!r}")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if isinstance(value, Real):
        return None
    if isinstance(value, Sequence) or (isinstance(value, np.ndarray) and value.ndim == 1):
        items = list(value)
        if len(items) != 3:
            raise ValueError(f"{name} must have three values (one per axis I, J, K), got {tuple(items)}")
        return items
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def to_triplet(value: Any, name: str, *, minimum: int = 1, expected: str = "an int or three ints") -> TypeTriplet:
    """Parse an int or a sequence of three ints into a 3-tuple.

    Args:
        value: An int (repeated on the three axes) or three ints.
        name: Argument name used in error messages.
        minimum: Smallest accepted value on each axis.
        expected: What the argument may be, for messages.

    Example:
        >>> to_triplet(4, 'patch_size')
        (4, 4, 4)
        >>> to_triplet((8, 8, 1), 'patch_size')
        (8, 8, 1)
    """
    items = _items(value, name, expected)
    if items is None:
        if not _is_int(value):
            raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
        values = (int(value),) * 3
    else:
        if not all(_is_int(v) for v in items):
            raise TypeError(f"{name} must hold ints, got {tuple(items)}")
        values = (int(items[0]), int(items[1]), int(items[2]))
    if min(values) < minimum:
        raise ValueError(f"{name} must be at least {minimum} on every axis, got {values}")
    return values


def to_optional_triplet(value: Any, name: str, *, minimum: int = 1) -> TypeTriplet | None:
    """:func:`to_triplet` for arguments where ``None`` means "not given".

    Example:
        >>> to_optional_triplet(None, 'downsampling_factor'), to_optional_triplet(2, 'downsampling_factor')
        (None, (2, 2, 2))
    """
    if value is None:
        return None
    return to_triplet(value, name, minimum=minimum, expected="None, an int or three ints")


def parse_patch_size(patch_size: Any, spatial_shape: Sequence[int] | None = None) -> TypeTriplet:
    """Parse a patch size, turning an int into ``(p, p, 1)`` on 2D images.

    Args:
        patch_size: An int (cube) or three ints (cuboid).
        spatial_shape: Shape of the image the patches come from. When its
            last axis has length one (a 2D image), an int patch size means
            ``(p, p, 1)``.

    Example:
        >>> parse_patch_size(32, (512, 512, 1))
        (32, 32, 1)
        >>> parse_patch_size(32, (64, 64, 64))
        (32, 32, 32)
    """
    triplet = to_triplet(patch_size, "patch_size")
    if _is_int(patch_size) and spatial_shape is not None and int(spatial_shape[2]) == 1:
        return (triplet[0], triplet[1], 1)
    return triplet


def parse_patch_overlap(
    patch_overlap: Any, patch_size: TypeTriplet, spatial_shape: Sequence[int], where: str = ""
) -> TypeTriplet:
    """``patch_overlap`` in voxels, ``0 <= overlap < patch`` on every axis.

    Ints are voxels (an int on a 2D image means ``(o, o, 0)``); floats in
    ``[0, 1)`` are fractions of the patch, ``floor(f * p)`` voxels.

    Args:
        patch_overlap: An int, a float, or three of either (not mixed).
        patch_size: The parsed patch size.
        spatial_shape: Shape of the image the grid covers.
        where: What the grid covers, for messages (e.g. ``"subject 'sub-1'"``).

    Example:
        >>> parse_patch_overlap(0.5, (64, 64, 1), (512, 512, 1))
        (32, 32, 0)
        >>> parse_patch_overlap(8, (32, 32, 32), (64, 64, 64))
        (8, 8, 8)
    """
    expected = "an int (voxels), a float in [0, 1) (a fraction of the patch) or three of either"
    items = _items(patch_overlap, "patch_overlap", expected)
    if items is None:
        items = [patch_overlap] * 3
        if _is_int(patch_overlap) and int(spatial_shape[2]) == 1:
            items[2] = 0
    if all(_is_int(v) for v in items):
        overlap = (int(items[0]), int(items[1]), int(items[2]))
    elif all(isinstance(v, Real) and not isinstance(v, (bool, Integral)) for v in items):
        if not all(0.0 <= float(v) < 1.0 for v in items):
            raise ValueError(
                f"a fractional patch_overlap must be in [0, 1), got {patch_overlap!r}; "
                f"give voxels as ints (e.g. patch_overlap={int(float(items[0]))})"
            )
        overlap = (
            int(float(items[0]) * patch_size[0]),
            int(float(items[1]) * patch_size[1]),
            int(float(items[2]) * patch_size[2]),
        )
    else:
        raise TypeError(f"patch_overlap must hold only ints (voxels) or only floats (fractions), got {patch_overlap!r}")
    if any(not 0 <= o < p for o, p in zip(overlap, patch_size)):
        context = f"{where}, " if where else ""
        raise ValueError(
            f"patch_overlap {overlap} must be >= 0 and smaller than patch_size {patch_size} on every axis "
            f"({context}spatial shape {tuple(int(s) for s in spatial_shape)})"
        )
    return overlap


def parse_voxel_axes(axes: Any, argument: str = "axes") -> tuple[int, ...]:
    """One voxel axis (0, 1, 2 for I, J, K) or a non-empty sequence of them.

    Example:
        >>> parse_voxel_axes(1), parse_voxel_axes((0, 2))
        ((1,), (0, 2))
        >>> parse_voxel_axes(3)
        Traceback (most recent call last):
        ...
        ValueError: axes must hold 0, 1 or 2 (the spatial axes I, J, K), got 3 in 3
    """
    single = isinstance(axes, Integral) and not isinstance(axes, bool)
    items = (axes,) if single else axes
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise TypeError(
            f"{argument} must be an axis or a sequence of axes among 0, 1, 2, got {type(axes).__name__} {axes!r}"
        )
    if not items:
        raise ValueError(f"{argument} must hold at least one axis among 0, 1, 2, got {axes!r}")
    for axis in items:
        if isinstance(axis, bool) or not isinstance(axis, Integral):
            raise TypeError(f"{argument} must hold ints among 0, 1, 2, got {type(axis).__name__} {axis!r} in {axes!r}")
        if axis not in (0, 1, 2):
            raise ValueError(f"{argument} must hold 0, 1 or 2 (the spatial axes I, J, K), got {axis!r} in {axes!r}")
    return tuple(int(axis) for axis in items)


__all__ = ["parse_patch_overlap", "parse_patch_size", "parse_voxel_axes", "to_optional_triplet", "to_triplet"]
