"""TorchIO's ``masking_method``: which voxels a mask selects.

Used by :class:`~torchpatch.transforms.Mask` (the voxels it keeps) and
:class:`~torchpatch.transforms.RemapLabels` (those it changes).

One argument, five forms, each giving a boolean mask of shape ``(1, I, J, K)``
or ``(C, I, J, K)`` (one mask per channel)::

    None                    every voxel
    'brain'                 the non-zero voxels of the image 'brain' of the subject
                            (with labels=[1, 2]: the voxels equal to 1 or 2)
    'Left', 'Anterior'...   half of the grid: Left/Right split I, Posterior/
                            Anterior split J, Inferior/Superior split K
                            (low indices are Left, Posterior, Inferior, as in RAS+)
    callable                f(data) -> mask, given the image's voxels as they are
    int or six ints         a box: that many voxels off each side, as in Crop

An image name wins over an anatomical word, so a label map called ``'left'``
is used as a mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any, Union

import numpy as np
import torch

from ..image import Image
from ..subject import Subject

TypeMaskingMethod = Union[str, Callable[[torch.Tensor], torch.Tensor], int, Sequence[int], None]

#: TorchIO's anatomical words: (axis, whether the half with the higher indices is meant).
ANATOMICAL_HALVES: dict[str, tuple[int, bool]] = {
    "Left": (0, False),
    "Right": (0, True),
    "Posterior": (1, False),
    "Anterior": (1, True),
    "Inferior": (2, False),
    "Superior": (2, True),
}


def check_masking_method(masking_method: Any) -> TypeMaskingMethod:
    """``masking_method`` if it has one of the accepted forms; a ``TypeError`` naming it otherwise.

    Example:
        >>> check_masking_method('Left'), check_masking_method((1, 1, 0, 0, 0, 0))
        ('Left', (1, 1, 0, 0, 0, 0))
    """
    if masking_method is None or isinstance(masking_method, str) or callable(masking_method):
        return masking_method
    if _is_int(masking_method):
        if masking_method < 0:
            raise ValueError(f"masking_method bounds must be non-negative, got {masking_method}")
        return masking_method
    if isinstance(masking_method, (Sequence, np.ndarray)) and all(_is_int(item) for item in masking_method):
        if len(masking_method) not in (3, 6) or min(masking_method) < 0:
            raise ValueError(
                f"masking_method bounds must be three or six non-negative ints, got {list(masking_method)!r}"
            )
        return tuple(int(item) for item in masking_method)
    raise TypeError(
        "masking_method must be None, an image name, an anatomical label ('Left', 'Right', 'Anterior', "
        "'Posterior', 'Inferior', 'Superior'), a callable tensor -> bool tensor, or bounds (an int or six ints), "
        f"got {type(masking_method).__name__} {masking_method!r}"
    )


def half_mask(word: str, shape: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """A bool mask of 4D ``shape`` whose half of the grid ``word`` names is True (a key of :data:`ANATOMICAL_HALVES`).

    Example:
        >>> half_mask('Superior', (1, 1, 1, 4)).flatten().tolist()
        [False, False, True, True]
    """
    axis, upper = ANATOMICAL_HALVES[word]
    mask = torch.zeros(tuple(shape), dtype=torch.bool, device=device)
    half = shape[1 + axis] // 2
    index = [slice(None)] * 4
    index[1 + axis] = slice(half, None) if upper else slice(None, half)
    mask[tuple(index)] = True
    return mask


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def get_mask(
    masking_method: TypeMaskingMethod,
    subject: Subject,
    image: Image,
    name: str,
    labels: Sequence[int] | None = None,
    values: torch.Tensor | None = None,
) -> torch.Tensor:
    """The boolean mask that ``masking_method`` selects for ``image`` (named ``name`` in ``subject``).

    Args:
        masking_method: One of the forms in the module docstring.
        subject: The subject holding ``image`` (and the mask image, if named).
        image: The image the mask is for.
        name: Its name, for messages.
        labels: With a mask image, the values that count as inside (all
            non-zero values when ``None``).
        values: What a callable receives instead of the image's voxels (e.g.
            the float32 voxels TorchIO would give it).

    Returns:
        A bool tensor of shape ``(1, I, J, K)`` or ``(C, I, J, K)``.

    Raises:
        ValueError: When a word is neither an image nor an anatomical label,
            or the mask does not fit the image's shape.

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.ones(1, 4, 1, 1))
        >>> get_mask('Right', Subject(a=image), image, 'a').flatten().tolist()
        [False, False, True, True]
    """
    data = image.data
    spatial = image.spatial_shape
    where = f"image {name!r} of subject {subject.name!r}"
    if masking_method is None:
        return torch.ones((1, *spatial), dtype=torch.bool, device=data.device)
    if isinstance(masking_method, str):
        if isinstance(subject.get(masking_method), Image):
            return _mask_from_image(subject[masking_method], masking_method, labels, image, where)
        word = masking_method.capitalize()
        if word not in ANATOMICAL_HALVES:
            raise ValueError(
                f"masking_method {masking_method!r} is neither an image of subject {subject.name!r} "
                f"({sorted(subject.images)}) nor an anatomical label {sorted(ANATOMICAL_HALVES)}"
            )
        return half_mask(word, (1, *spatial), data.device)
    if callable(masking_method):
        return _checked_mask(masking_method(data if values is None else values), image, where)
    return _mask_from_bounds(masking_method, spatial, data.device)


def _mask_from_image(
    mask_image: Image, mask_name: str, labels: Sequence[int] | None, image: Image, where: str
) -> torch.Tensor:
    if mask_image.spatial_shape != image.spatial_shape:
        raise ValueError(
            f"mask {mask_name!r} has spatial shape {mask_image.spatial_shape} but {where} has {image.spatial_shape}"
        )
    values = mask_image.data.to(image.data.device)
    if labels is None:
        mask = values != 0
    else:
        mask = torch.isin(values, torch.as_tensor(list(labels), device=values.device).to(values.dtype))
    return _checked_mask(mask, image, where)


def _checked_mask(mask: Any, image: Image, where: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"masking_method must give a tensor, got {type(mask).__name__} for {where}")
    spatial = image.spatial_shape
    if tuple(mask.shape) == spatial:
        mask = mask[None]
    if mask.ndim != 4 or tuple(mask.shape[1:]) != spatial or mask.shape[0] not in (1, image.num_channels):
        raise ValueError(
            f"masking_method gave a mask of shape {tuple(mask.shape)} for {where} of shape {image.shape}; "
            f"expected {image.shape}, {(1, *spatial)} or {spatial}"
        )
    return mask if mask.dtype == torch.bool else mask != 0


def _mask_from_bounds(bounds: Any, spatial: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    if _is_int(bounds):
        depth = 0 if spatial[2] == 1 else int(bounds)
        sides = [int(bounds)] * 4 + [depth, depth]
    else:
        items = [int(item) for item in bounds]
        sides = [items[0], items[0], items[1], items[1], items[2], items[2]] if len(items) == 3 else items
    mask = torch.zeros((1, *spatial), dtype=torch.bool, device=device)
    box = tuple(slice(sides[2 * a], max(sides[2 * a], spatial[a] - sides[2 * a + 1])) for a in range(3))
    mask[(slice(None), *box)] = True
    return mask


__all__ = ["ANATOMICAL_HALVES", "TypeMaskingMethod", "check_masking_method", "get_mask", "half_mask"]
