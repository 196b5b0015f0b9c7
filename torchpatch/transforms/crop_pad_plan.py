"""How ``CropOrPad`` reaches its target (the shape, the mask's box, crop and pad amounts); ``Pad``'s modes."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch

from ..geometry import GEOMETRIC_MODES, MODE_ALIASES, STATISTIC_MODES, is_number, parse_padding_mode
from ..typing import TypeTriplet

TypeBounds = tuple[int, int, int, int, int, int]

#: Millimetres per unit of ``CropOrPad(units=...)`` (voxels: not a length).
UNITS = {"voxels": 0.0, "mm": 1.0, "cm": 10.0}


def parse_target_shape(value: Any, units: str = "voxels") -> Any:
    """``CropOrPad``'s ``target_shape``: an int or three (``None`` keeps an axis); lengths with ``units``.

    Example:
        >>> parse_target_shape(4), parse_target_shape((4, None, 2)), parse_target_shape(2.5, 'mm')
        (4, (4, None, 2), 2.5)
    """
    lengths = units != "voxels"

    def check(item: Any) -> int | float | None:
        if item is None:
            return None
        if not is_number(item) or not (lengths or isinstance(item, Integral)):
            kind = "numbers" if lengths else "ints"
            raise TypeError(f"target_shape must be an int or three {kind} (or None), got {value!r}")
        if item <= 0 or (not lengths and item < 1):
            raise ValueError(f"target_shape must be at least 1 on every axis, got {value!r}")
        return float(item) if lengths else int(item)

    if is_number(value):
        if not (lengths or isinstance(value, Integral)):
            raise TypeError(
                f"target_shape must be an int or three ints (or None), got {type(value).__name__} {value!r}"
            )
        return check(value)
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        items = list(value)
        if len(items) != 3:
            raise ValueError(f"target_shape must have three values (I, J, K), got {len(items)}: {value!r}")
        return (check(items[0]), check(items[1]), check(items[2]))
    raise TypeError(f"target_shape must be an int or three ints (or None), got {type(value).__name__} {value!r}")


def box_shape(box: tuple[TypeTriplet, TypeTriplet]) -> TypeTriplet:
    """The size of a box ``(ini, fin)``.

    Example:
        >>> box_shape(((1, 2, 0), (4, 4, 1)))
        (3, 2, 1)
    """
    return (box[1][0] - box[0][0], box[1][1] - box[0][1], box[1][2] - box[0][2])


def random_cropping(cropping: TypeBounds) -> TypeBounds:
    """The same amount cropped per axis, its start drawn uniformly (``torch.randint``, as TorchIO).

    Example:
        >>> sum(random_cropping((1, 1, 0, 0, 0, 0))[:2])
        2
    """
    bounds: list[int] = []
    for axis in range(3):
        amount = cropping[2 * axis] + cropping[2 * axis + 1]
        ini = int(torch.randint(0, amount + 1, (1,)).item()) if amount else 0
        bounds += [ini, amount - ini]
    return (bounds[0], bounds[1], bounds[2], bounds[3], bounds[4], bounds[5])


def bounding_box(data: torch.Tensor) -> tuple[TypeTriplet, TypeTriplet] | None:
    """Half-open box ``[ini, fin)`` of the non-zero voxels of any channel; None when there are none.

    Example:
        >>> bounding_box(torch.tensor([0, 1, 1, 0]).reshape(1, 4, 1, 1))
        ((1, 0, 0), (3, 1, 1))
    """
    foreground = (data != 0).any(dim=0)
    ini, fin = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        present = torch.nonzero(foreground.any(dim=others)).flatten()
        if present.numel() == 0:
            return None
        ini.append(int(present[0]))
        fin.append(int(present[-1]) + 1)
    return (ini[0], ini[1], ini[2]), (fin[0], fin[1], fin[2])


def crop_and_pad(
    shape: TypeTriplet, target: TypeTriplet, box: tuple[TypeTriplet, TypeTriplet] | None
) -> tuple[TypeBounds, TypeBounds]:
    """Cropping, then padding, that turns ``shape`` into ``target`` around the centre or ``box``.

    Example:
        >>> crop_and_pad((5, 4, 1), (3, 6, 1), None)
        ((1, 1, 0, 0, 0, 0), (0, 0, 1, 1, 0, 0))
    """
    cropping, padding = [], []
    for axis in range(3):
        size, wanted = shape[axis], target[axis]
        # Twice the centre, in voxel edges, so that halves stay integers.
        twice_centre = size if box is None else box[0][axis] + box[1][axis]
        shift = twice_centre - wanted
        # Halve rounding away from zero: the odd voxel goes to the ini side.
        start = (shift + 1) // 2 if shift >= 0 else -((1 - shift) // 2)
        stop = start + wanted
        cropping += [max(0, start), max(0, size - stop)]
        padding += [max(0, -start), max(0, stop - size)]
    return (
        (cropping[0], cropping[1], cropping[2], cropping[3], cropping[4], cropping[5]),
        (padding[0], padding[1], padding[2], padding[3], padding[4], padding[5]),
    )


class CropMembers:
    """TorchIO's ``bounds_parameters`` of ``Crop`` and ``Pad``: the six voxel counts, one per side.

    Example:
        >>> from torchpatch.transforms import Crop
        >>> Crop(1).bounds_parameters, Crop((1, 2, 3)).bounds_parameters
        ((1, 1, 1, 1, 1, 1), (1, 1, 2, 2, 3, 3))
    """

    #: The attribute holding the parsed bounds (one int, or six).
    BOUNDS_ARGUMENT: ClassVar[str] = "cropping"

    @property
    def bounds_parameters(self) -> TypeBounds:
        """The bounds as six voxel counts (TorchIO's attribute; one int means all six)."""
        value = getattr(self, self.BOUNDS_ARGUMENT)
        if isinstance(value, int):
            return (value, value, value, value, value, value)
        i0, i1, j0, j1, k0, k1 = (int(count) for count in value)
        return i0, i1, j0, j1, k0, k1


class PaddingModes(CropMembers):
    """TorchIO's ``Pad.PADDING_MODES``, ``Pad.check_padding_mode`` and ``bounds_parameters`` (mixed into ``Pad``).

    Example:
        >>> 'edge' in PaddingModes.PADDING_MODES
        True
    """

    BOUNDS_ARGUMENT: ClassVar[str] = "padding"
    #: The padding modes by name (a number pads with that constant); TorchIO's ``PADDING_MODES``.
    PADDING_MODES: ClassVar[tuple[str, ...]] = ("constant", *GEOMETRIC_MODES, *STATISTIC_MODES, *MODE_ALIASES)

    @classmethod
    def check_padding_mode(cls, padding_mode: Any) -> None:
        """Raise an error unless ``padding_mode`` is a number or one of :attr:`PADDING_MODES`."""
        parse_padding_mode(padding_mode)


def target_voxels(target_shape: Any, units: str, shape: TypeTriplet, spacing: Sequence[float]) -> TypeTriplet:
    """``CropOrPad``'s ``target_shape`` in voxels for an image of ``shape`` and ``spacing``.

    An int (or ``None``, meaning ``shape[0]``) is a cube, kept one voxel deep
    on a 2D image; ``None`` on an axis keeps the image's size there. In
    ``'mm'`` or ``'cm'``, sizes are rounded to whole voxels of ``spacing``.

    Raises:
        ValueError: When a size in millimetres is less than one voxel.

    Example:
        >>> target_voxels(8, 'voxels', (10, 12, 1), (1, 1, 1))
        (8, 8, 1)
        >>> target_voxels((20.0, None, 4.0), 'mm', (9, 9, 9), (2, 2, 2))
        (10, 9, 2)
    """
    target = target_shape
    if target is None or isinstance(target, (int, float)):
        size = shape[0] if target is None else target
        target = (size, size, None if shape[2] == 1 else size)
    values = []
    for axis, value in enumerate(target):
        if value is None:
            values.append(shape[axis])
        elif units == "voxels":
            values.append(int(value))
        else:
            voxels = round(float(value) * UNITS[units] / float(spacing[axis]))
            if voxels < 1:
                raise ValueError(
                    f"target_shape {target_shape!r} in {units} is less than one voxel of spacing "
                    f"{tuple(spacing)} on axis {axis}"
                )
            values.append(voxels)
    return (values[0], values[1], values[2])


__all__ = [
    "target_voxels",
    "UNITS",
    "CropMembers",
    "PaddingModes",
    "bounding_box",
    "box_shape",
    "crop_and_pad",
    "parse_target_shape",
    "random_cropping",
]
