"""TorchIO 1.x's ``tio.data.io`` module path (``tio.io`` is the same module): reading and writing files.

Only names: each is the function of :mod:`torchpatch.io`, with TorchIO's
arguments and results (``read_image`` gives a tensor and the affine).

Example:
    >>> import torchpatch
    >>> from torchpatch.data.io import read_image, nib_to_sitk
    >>> read_image is torchpatch.io.read_image, nib_to_sitk is torchpatch.io.nib_to_sitk
    (True, True)
"""

from __future__ import annotations

from ..io import (
    FLIPXY_33,
    FLIPXY_44,
    IMAGE_2D_FORMATS,
    check_uint_to_int,
    ensure_4d,
    get_ras_affine_from_sitk,
    get_reader,
    get_rotation_and_spacing_from_affine,
    get_sitk_metadata_from_ras_affine,
    nib_to_sitk,
    read_affine,
    read_image,
    read_matrix,
    read_shape,
    sitk_to_nib,
    write_image,
    write_matrix,
)

__all__ = [
    "FLIPXY_33",
    "FLIPXY_44",
    "IMAGE_2D_FORMATS",
    "check_uint_to_int",
    "ensure_4d",
    "get_ras_affine_from_sitk",
    "get_reader",
    "get_rotation_and_spacing_from_affine",
    "get_sitk_metadata_from_ras_affine",
    "nib_to_sitk",
    "read_affine",
    "read_image",
    "read_matrix",
    "read_shape",
    "sitk_to_nib",
    "write_image",
    "write_matrix",
]
