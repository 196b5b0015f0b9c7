"""Affine and index maths: no tensors, no files.

Everything here works on plain tuples and 4x4 ``numpy`` affines, so the
samplers, the grid and the transforms can plan a crop or a pad before touching
voxels.

The affine maps a voxel index ``(i, j, k, 1)`` to RAS+ millimetres::

    [x]   [r11 r12 r13 ox] [i]
    [y] = [r21 r22 r23 oy] [j]
    [z]   [r31 r32 r33 oz] [k]
    [1]   [ 0   0   0   1] [1]

Column ``n`` of the 3x3 block is the step in millimetres taken by one voxel
along axis ``n``; its norm is the spacing along that axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import numpy as np

from ..typing import TypeAffine, TypeSpacing, TypeTriplet
from .arguments import to_triplet

#: Flips the first two world axes: LPS (SimpleITK, DICOM, NRRD) <-> RAS+.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def check_affine(affine: Any, name: str = "affine") -> TypeAffine:
    """Return ``affine`` as a float64 4x4 array after checking it is usable.

    Raises:
        TypeError: If it is not an array-like of numbers.
        ValueError: If it is not 4x4, holds NaN or infinity, or its 3x3
            block is singular.

    Example:
        >>> check_affine(np.eye(4)).shape
        (4, 4)
    """
    try:
        array = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a 4x4 array of numbers, got {type(affine).__name__}") from error
    if array.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values:\n{array}")
    if abs(np.linalg.det(array[:3, :3])) < 1e-12:
        raise ValueError(f"{name} is singular (a zero spacing or parallel axes):\n{array}")
    return array


def spacing_from_affine(affine: TypeAffine) -> TypeSpacing:
    """Voxel size in millimetres along I, J and K.

    Example:
        >>> spacing_from_affine(np.diag([2.0, 3.0, 4.0, 1.0]))
        (2.0, 3.0, 4.0)
    """
    norms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def origin_from_affine(affine: TypeAffine) -> TypeSpacing:
    """RAS+ position in millimetres of the centre of voxel ``(0, 0, 0)``.

    Example:
        >>> origin_from_affine(np.eye(4))
        (0.0, 0.0, 0.0)
    """
    translation = np.asarray(affine)[:3, 3]
    return (float(translation[0]), float(translation[1]), float(translation[2]))


#: World axis (0: R-L, 1: A-P, 2: S-I) of each orientation letter, and whether it points to the negative end.
WORLD_AXES = {"R": (0, False), "L": (0, True), "A": (1, False), "P": (1, True), "S": (2, False), "I": (2, True)}


def orientation_from_affine(affine: TypeAffine) -> tuple[str, str, str]:
    """Axis codes: the world direction each voxel axis points to most.

    Example:
        >>> orientation_from_affine(np.diag([-1.0, -1.0, 1.0, 1.0]))
        ('L', 'P', 'S')
    """
    block = np.asarray(affine, dtype=np.float64)[:3, :3]
    block = block / np.linalg.norm(block, axis=0, keepdims=True)
    codes = []
    used: set[int] = set()
    # Greedy assignment, largest component first, so oblique axes still get
    # three distinct world axes.
    order = np.argsort(-np.abs(block).max(axis=0), kind="stable")
    chosen: dict[int, str] = {}
    for axis in order:
        ranked = np.argsort(-np.abs(block[:, axis]), kind="stable")
        world = next(int(w) for w in ranked if int(w) not in used)
        used.add(world)
        positive = block[world, axis] >= 0
        chosen[int(axis)] = ("R", "A", "S")[world] if positive else ("L", "P", "I")[world]
    for axis in range(3):
        codes.append(chosen[axis])
    return (codes[0], codes[1], codes[2])


def shift_affine(affine: TypeAffine, index_ini: Sequence[int]) -> TypeAffine:
    """Affine of a crop whose first voxel is ``index_ini`` in the original.

    Example:
        >>> shift_affine(np.diag([2.0, 2.0, 2.0, 1.0]), (1, 2, 3))[:3, 3]
        array([2., 4., 6.])
    """
    return shift_affines(affine, [index_ini])[0]


def shift_affines(affine: TypeAffine, corners: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The affines of crops whose first voxels are the rows of ``corners`` (``(N, 3)``), as ``(N, 4, 4)``.

    One pass for every patch of a stack; the same numbers as
    :func:`shift_affine` on each row (elementwise arithmetic, in one order,
    whatever ``N``).

    Example:
        >>> shift_affines(np.diag([2.0, 2.0, 2.0, 1.0]), [[1, 2, 3], [0, 0, 1]])[:, :3, 3].tolist()
        [[2.0, 4.0, 6.0], [0.0, 0.0, 2.0]]
    """
    base = np.asarray(affine, dtype=np.float64)
    starts = np.asarray(corners, dtype=np.float64).reshape(-1, 3)
    shifted = np.repeat(base[None], len(starts), axis=0)
    origin = shifted[:, :3, 3]
    for axis in range(3):
        origin += starts[:, axis, None] * base[None, :3, axis]
    return shifted


def check_region(
    index_ini: Sequence[int],
    index_fin: Sequence[int],
    spatial_shape: Sequence[int],
    name: str = "image",
) -> tuple[TypeTriplet, TypeTriplet]:
    """Validate a half-open region ``[index_ini, index_fin)`` inside a shape.

    Example:
        >>> check_region((0, 0, 0), (2, 2, 1), (4, 4, 1))
        ((0, 0, 0), (2, 2, 1))
    """
    ini = to_triplet(tuple(index_ini), "index_ini", minimum=-(2**62))
    fin = to_triplet(tuple(index_fin), "index_fin", minimum=-(2**62))
    shape = tuple(int(s) for s in spatial_shape)
    for axis in range(3):
        if not 0 <= ini[axis] < fin[axis] <= shape[axis]:
            raise ValueError(
                f"region {ini} -> {fin} is not inside the spatial shape {shape} of {name}: "
                f"need 0 <= index_ini < index_fin <= shape on every axis"
            )
    return ini, fin


def check_locations(locations: Any, name: str | Callable[[], str] = "image") -> np.ndarray:
    """Patch locations as an ``(N, 6)`` int64 array of boxes of one size, after checking them.

    Args:
        locations: ``(N, 6)`` ints, or one row of 6.
        name: What the boxes are cut from, for messages (a callable is
            only called when there is an error to report).

    Example:
        >>> check_locations([[0, 0, 0, 2, 2, 1], [-1, 3, 0, 1, 5, 1]]).tolist()
        [[0, 0, 0, 2, 2, 1], [-1, 3, 0, 1, 5, 1]]
    """
    array = np.asarray(locations)
    if array.ndim == 1 and array.size == 6:
        array = array[None]
    if array.dtype.kind not in "iu" or array.ndim != 2 or array.shape[1] != 6:
        where = name() if callable(name) else name
        raise ValueError(
            f"locations for {where} must be N rows of 6 ints (i0, j0, k0, i1, j1, k1), got {array.dtype} "
            f"of shape {array.shape}"
        )
    boxes = array if array.dtype == np.int64 else array.astype(np.int64)
    if len(boxes) == 1:  # one patch (a grid's item): plain Python is faster than numpy here
        row = boxes[0].tolist()
        if row[3] > row[0] and row[4] > row[1] and row[5] > row[2]:
            return boxes
    sizes = boxes[:, 3:] - boxes[:, :3]
    if len(boxes) and ((sizes < 1).any() or (sizes != sizes[0]).any()):
        row_index = int(np.flatnonzero((sizes < 1).any(axis=1) | (sizes != sizes[0]).any(axis=1))[0])
        where = name() if callable(name) else name
        raise ValueError(
            f"locations for {where} must be boxes of one size with index_ini < index_fin; row {row_index} is "
            f"{boxes[row_index].tolist()} (size {sizes[row_index].tolist()}) but row 0 has size {sizes[0].tolist()}"
        )
    return boxes


def location_from_region(index_ini: Sequence[int], index_fin: Sequence[int]) -> tuple[int, ...]:
    """Patch location ``(i0, j0, k0, i1, j1, k1)`` from its corners.

    Example:
        >>> location_from_region((0, 1, 2), (4, 5, 6))
        (0, 1, 2, 4, 5, 6)
    """
    return tuple(int(v) for v in (*index_ini, *index_fin))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (and not a bool).

    Example:
        >>> is_number(1.5), is_number(True), is_number('1')
        (True, False, False)
    """
    return isinstance(value, Real) and not isinstance(value, bool)


def orientation_axes(affine: TypeAffine, orientation: str) -> tuple[TypeTriplet, tuple[bool, bool, bool]]:
    """For each axis of the grid in ``orientation``: the axis of ``affine``'s grid it comes from, and whether reversed.

    Args:
        affine: The current voxel-to-RAS+ affine.
        orientation: A valid three-letter code, upper case.

    Example:
        >>> orientation_axes(np.eye(4), 'PLS')
        ((1, 0, 2), (True, True, False))
    """
    current = orientation_from_affine(affine)
    permutation = [0, 0, 0]
    flips = [False, False, False]
    for new_axis, letter in enumerate(orientation):
        world, negative = WORLD_AXES[letter]
        old_axis = next(axis for axis, code in enumerate(current) if WORLD_AXES[code][0] == world)
        permutation[new_axis] = old_axis
        flips[new_axis] = WORLD_AXES[current[old_axis]][1] != negative
    return (permutation[0], permutation[1], permutation[2]), (flips[0], flips[1], flips[2])


def reorientation_index_map(
    shape: Sequence[int], permutation: Sequence[int], flips: Sequence[bool]
) -> np.ndarray[Any, Any]:
    """Voxel-to-voxel matrix: new index -> old index (``old[p] = new[n]``, or ``shape[p] - 1 - new[n]`` if reversed).

    For a grid of ``shape`` reoriented by :func:`orientation_axes`'s
    ``permutation`` and ``flips``; the new affine is the old one times it.

    Example:
        >>> reorientation_index_map((4, 5, 6), (1, 0, 2), (True, False, False))[:2].tolist()
        [[0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 4.0]]
    """
    matrix = np.zeros((4, 4))
    matrix[3, 3] = 1.0
    for new_axis, old_axis in enumerate(permutation):
        if flips[new_axis]:
            matrix[old_axis, new_axis] = -1.0
            matrix[old_axis, 3] = shape[old_axis] - 1
        else:
            matrix[old_axis, new_axis] = 1.0
    return matrix
