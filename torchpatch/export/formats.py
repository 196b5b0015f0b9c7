"""File formats of patches: the one raster table (:mod:`torchpatch.io.raster`) applied to an export.

A 2D image becomes PNG when PNG holds its voxels as they are (``uint8``, or
integers in ``[0, 65535]`` stored as 16-bit, with 1, 3 or 4 channels), else
``.nii.gz``; 3D images are ``.nii.gz``. An ``image_format`` that cannot hold
the voxels is an error, never a silent conversion. Masks take the smallest
unsigned type that holds their classes; heatmaps stay ``float32``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..image import Image
from ..io import numpy_dtype
from ..io.raster import RASTER_FORMATS, raster_capabilities

#: Unsigned types a mask is stored in, narrowest first (the smallest that holds its classes).
_MASK_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


@dataclass(frozen=True)
class PatchFormats:
    """File suffixes of a subject's patches, and the types the voxels are cast to (``None``: as they are).

    Example:
        >>> from torchpatch import ScalarImage
        >>> photo = ScalarImage(tensor=torch.zeros(3, 8, 8, 1, dtype=torch.uint8))
        >>> formats = choose_formats(photo, None, None, 'the photo')
        >>> formats.image, formats.image_dtype, formats.mask, formats.heatmap
        ('.png', dtype('uint8'), '', '.npy')
    """

    image: str
    image_dtype: np.dtype[Any] | None
    mask: str
    mask_dtype: np.dtype[Any] | None
    heatmap: str


def choose_formats(image: Image, label: Image | None, image_format: str | None, what: str) -> PatchFormats:
    """The formats of the patches of ``image`` and of its ``label`` map; reads their voxels' range.

    Args:
        image: The image written as patches.
        label: The label map written as masks, or ``None``.
        image_format: The format asked for (a suffix of
            :data:`~torchpatch.export.IMAGE_FORMATS`), or ``None`` to choose.
        what: The image in messages, e.g. ``"image 't1' of subject 'sub-01'"``.

    Raises:
        ValueError: When ``image_format`` cannot hold the image's voxels.

    Example:
        >>> from torchpatch import ScalarImage
        >>> floats = ScalarImage(tensor=torch.rand(1, 8, 8, 1))
        >>> choose_formats(floats, None, None, 'floats').image
        '.nii.gz'
        >>> choose_formats(floats, None, '.jpg', 'floats')
        Traceback (most recent call last):
        ...
        ValueError: image_format '.jpg' cannot hold floats: .jpg holds integers, not torch.float32 voxels; ...
    """
    suffix, dtype = _image_format(image, image_format, what)
    mask, mask_dtype = ("", None) if label is None else _mask_format(label)
    return PatchFormats(suffix, dtype, mask, mask_dtype, ".npy" if image.is_2d() else ".nii.gz")


def _value_range(image: Image) -> tuple[int, int]:
    data = image.data
    return int(data.min()), int(data.max())


def _numpy_dtype(dtype: torch.dtype) -> np.dtype[Any] | None:
    try:
        return numpy_dtype(dtype)
    except TypeError:  # bfloat16 and other types numpy lacks
        return None


def _raster_dtype(image: Image, suffix: str) -> tuple[np.dtype[Any] | None, str]:
    """The integer type a raster file stores ``image`` in, or ``None`` and why it cannot."""
    raster = RASTER_FORMATS[suffix]
    channels = raster.channels
    if channels is not None and image.num_channels not in channels:
        return None, f"{suffix} holds {' or '.join(map(str, channels))} channels, not {image.num_channels}"
    dtype = image.dtype
    as_numpy = _numpy_dtype(dtype)
    if raster.volumes:  # TIFF: its own types, written as they are
        if as_numpy is not None and raster.holds(as_numpy, image.num_channels):
            return None, ""
        return None, f"{suffix} holds up to 32-bit voxels, not {dtype}"
    if dtype == torch.bool or dtype == torch.uint8:
        return np.dtype(np.uint8), ""
    if dtype.is_floating_point or dtype.is_complex:
        return None, f"{suffix} holds integers, not {dtype} voxels"
    widest = raster.widest_integer()
    low, high = _value_range(image)
    limit = (1 << (8 * widest.itemsize)) - 1  # an unsigned type
    if low < 0 or high > limit:
        return None, f"{suffix} holds integers from 0 to {limit}, but the voxels range from {low} to {high}"
    return widest, ""


def _image_format(image: Image, requested: str | None, what: str) -> tuple[str, np.dtype[Any] | None]:
    """File suffix and cast of the patches of ``image``."""
    if requested is None:
        if not image.is_2d():
            return ".nii.gz", None
        dtype, _ = _raster_dtype(image, ".png")
        return (".png", dtype) if dtype is not None else (".nii.gz", None)
    if raster_capabilities(requested) is None:
        return requested, None
    if not image.is_2d():
        raise ValueError(
            f"image_format {requested!r} holds 2D images, but {what} has spatial shape {image.spatial_shape}"
        )
    dtype, problem = _raster_dtype(image, requested)
    if problem:
        raise ValueError(
            f"image_format {requested!r} cannot hold {what}: {problem}; use image_format='.nii.gz' (or '.npy'), "
            f"or rescale and cast the image first (e.g. RescaleIntensity((0, 255)), then dtype=torch.uint8)"
        )
    return requested, dtype


def _mask_format(label: Image) -> tuple[str, np.dtype[Any] | None]:
    """PNG for 2D classes it holds, else ``.nii.gz``; the smallest unsigned type that holds the classes."""
    low, high = _value_range(label)
    if low < 0:
        return ".nii.gz", None
    dtype = next((d for d in _MASK_DTYPES if high <= np.iinfo(d).max), None)
    if label.is_2d() and dtype is not None and RASTER_FORMATS[".png"].holds(dtype, label.num_channels):
        return ".png", dtype
    return ".nii.gz", dtype


__all__ = ["PatchFormats", "choose_formats"]
