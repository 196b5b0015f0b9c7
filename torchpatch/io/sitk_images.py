"""TorchIO's SimpleITK helpers: voxels and a RAS+ affine to and from a :class:`SimpleITK.Image`.

SimpleITK's world is LPS: its origin and direction are RAS+ with the first
two axes negated (``FLIPXY_33``), and its array axes are ``(K, J, I)``, the
reverse of ours. These are the functions of TorchIO 1.x's ``tio.io`` that
cross that border, with TorchIO's names and arguments, built on the readers'
own conversions (:mod:`~torchpatch.io.sitk`);
:meth:`Image.as_sitk <torchpatch.conversions.ImageConversions.as_sitk>`,
``Image.save(path, squeeze=True)`` and the transforms' ``nib_to_sitk`` use
them::

    (C, I, J, K) voxels + RAS+ affine ──nib_to_sitk──> SimpleITK image (LPS)
                                     <──sitk_to_nib──

A depth-one image becomes a 2D SimpleITK image unless ``force_3d``. Unlike
TorchIO, its in-plane direction is kept (TorchIO always writes ``(-1, -1)``,
dropping flips and rotations), so a 2D image comes back exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..geometry import check_affine
from ..typing import TypeAffine, TypePath
from .base import Array
from .paths import SITK_2D_SUFFIXES
from .sitk import from_sitk, sitk_affine, sitk_image
from .tensors import check_uint_to_int, to_numpy

#: Flips the first two world axes, LPS <-> RAS (3x3 and 4x4, as TorchIO names them).
FLIPXY_33 = np.diag([-1, -1, 1])
FLIPXY_44 = np.diag([-1, -1, 1, 1])

#: Suffixes of 2D raster files, both cases (TorchIO's list).
IMAGE_2D_FORMATS = [*SITK_2D_SUFFIXES, *(suffix.upper() for suffix in SITK_2D_SUFFIXES)]


def get_rotation_and_spacing_from_affine(affine: Any) -> tuple[Array, Array]:
    """The 3x3 rotation (unit columns) and the three spacings of an affine.

    Raises:
        ValueError: If the affine is not an invertible 4x4 matrix.

    Example:
        >>> rotation, spacing = get_rotation_and_spacing_from_affine(np.diag([-2.0, 3.0, 4.0, 1.0]))
        >>> rotation.diagonal().tolist(), spacing.tolist()
        ([-1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    """
    steps = check_affine(to_numpy(affine))[:3, :3]
    spacing = np.linalg.norm(steps, axis=0)
    return steps / spacing, spacing


def _in_plane(direction: Array, affine: Any) -> Array:
    """The 2x2 in-plane block of a 3x3 direction, checked to leave the third axis alone."""
    if np.abs(direction[2, :2]).max() > 1e-6 or np.abs(direction[:2, 2]).max() > 1e-6:
        raise ValueError(
            f"this 2D image's third axis is rotated into its plane (affine\n{affine}); "
            "keep it 3D (force_3d=True) to keep its geometry"
        )
    return direction[:2, :2]


def get_sitk_metadata_from_ras_affine(
    affine: Any, is_2d: bool = False, lps: bool = True
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """SimpleITK's ``(origin, spacing, direction)`` of a RAS+ affine.

    Args:
        affine: 4x4 voxel-to-RAS+ matrix.
        is_2d: Give the 2x2 in-plane direction (4 values) instead of 9.
            Origin and spacing keep three values, as TorchIO's do.
        lps: In SimpleITK's LPS world (``False``: in RAS+).

    Raises:
        ValueError: If ``is_2d`` and the third axis is rotated into the plane.

    Example:
        >>> affine = np.diag([2.0, 3.0, 4.0, 1.0])
        >>> affine[:3, 3] = 5, 6, 7
        >>> get_sitk_metadata_from_ras_affine(affine, is_2d=True)
        ((-5.0, -6.0, 7.0), (2.0, 3.0, 4.0), (-1.0, 0.0, 0.0, -1.0))
    """
    rotation, spacing = get_rotation_and_spacing_from_affine(affine)
    origin = np.asarray(to_numpy(affine), dtype=np.float64)[:3, 3]
    if lps:
        rotation, origin = FLIPXY_33 @ rotation, FLIPXY_33 @ origin
    direction = _in_plane(rotation, affine) if is_2d else rotation
    return (
        tuple(float(value) for value in origin),
        tuple(float(value) for value in spacing),
        tuple(float(value) for value in direction.ravel()),
    )


def _sitk_array(data: Any) -> Array:
    """The voxels as a numpy array of a type SimpleITK stores (bool -> uint8, half floats -> float32)."""
    array = np.asarray(to_numpy(data))
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def nib_to_sitk(data: Any, affine: Any, force_3d: bool = False, force_4d: bool = False) -> sitk.Image:
    """``(C, I, J, K)`` voxels and a RAS+ affine as a SimpleITK image (LPS geometry).

    One channel makes a scalar image and several a vector image (one
    component per channel); a depth-one image is 2D unless ``force_3d``.
    ``bool`` voxels become ``uint8`` and half floats ``float32``, types
    SimpleITK lacks.

    Args:
        data: ``(C, I, J, K)`` tensor or array.
        affine: 4x4 voxel-to-RAS+ matrix.
        force_3d: Keep a depth-one image 3D (size ``(I, J, 1)``).
        force_4d: Make the channels a fourth axis: a scalar 4D image of size
            ``(I, J, K, C)``, as a 4D NIfTI file stores them (TorchIO's
            raises for any input with this option).

    Raises:
        ValueError: If ``data`` is not 4D, the affine is not an invertible
            4x4 matrix, or a 2D image's third axis is rotated into its plane.

    Example:
        >>> image = nib_to_sitk(np.zeros((1, 4, 3, 2)), np.diag([2.0, 3.0, 4.0, 1.0]))
        >>> image.GetSize(), image.GetSpacing(), image.GetDirection()[:3]
        ((4, 3, 2), (2.0, 3.0, 4.0), (-1.0, 0.0, 0.0))
        >>> nib_to_sitk(np.zeros((3, 8, 6, 1)), np.eye(4)).GetSize()
        (8, 6)
    """
    array = _sitk_array(data)
    if array.ndim != 4:
        raise ValueError(f"nib_to_sitk needs (C, I, J, K) voxels, got shape {tuple(array.shape)}")
    affine = check_affine(to_numpy(affine), "the affine given to nib_to_sitk")
    origin, spacing, direction = get_sitk_metadata_from_ras_affine(affine)
    if force_4d:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(0, 3, 2, 1)), isVector=False)
        direction_4d = np.eye(4)
        direction_4d[:3, :3] = np.reshape(direction, (3, 3))
        image.SetSpacing([*spacing, 1.0])
        image.SetOrigin([*origin, 0.0])
        image.SetDirection(direction_4d.ravel().tolist())
        return image
    two_d = array.shape[3] == 1 and not force_3d
    if two_d:
        _in_plane(np.reshape(direction, (3, 3)), affine)  # raises if the third axis turns into the plane
    return sitk_image(array, affine, two_d)


def get_ras_affine_from_sitk(sitk_object: sitk.Image | sitk.ImageFileReader) -> TypeAffine:
    """The RAS+ affine of a SimpleITK image, or of the file a reader has read the header of.

    A 2D geometry gets a third spacing of 1 at the origin's depth 0; a 4D
    one (channels as a fourth axis) gives its first three axes.

    Example:
        >>> image = sitk.Image([4, 3], sitk.sitkUInt8)
        >>> image.SetSpacing((2.0, 3.0))
        >>> get_ras_affine_from_sitk(image).diagonal().tolist()
        [-2.0, -3.0, 1.0, 1.0]
    """
    spacing = sitk_object.GetSpacing()
    dimension = len(spacing)
    if dimension not in (2, 3, 4):
        raise ValueError(f"SimpleITK geometries are 2D to 4D, got {dimension}D")
    direction = np.reshape(sitk_object.GetDirection(), (dimension, dimension))
    if dimension == 4:
        return sitk_affine(spacing[:3], sitk_object.GetOrigin()[:3], direction[:3, :3].ravel())
    return sitk_affine(spacing, sitk_object.GetOrigin(), direction.ravel())


def sitk_to_nib(image: sitk.Image, keepdim: bool = False) -> tuple[Array, TypeAffine]:
    """A SimpleITK image as ``(C, I, J, K)`` voxels and its RAS+ affine (TorchIO's function).

    A 2D image gets depth one, a vector image one channel per component, a
    scalar 4D image (a 4D NIfTI file) its fourth axis as channels; uint16
    and uint32 voxels are widened (:func:`~torchpatch.io.tensors.check_uint_to_int`).

    Args:
        image: The SimpleITK image.
        keepdim: Kept for TorchIO's signature: the voxels are always 4D.

    Raises:
        TypeError: If ``image`` is not a :class:`SimpleITK.Image`.
        ValueError: For images of other than 2 to 4 dimensions, or 4D vector images.

    Example:
        >>> data, affine = sitk_to_nib(sitk.Image([4, 3], sitk.sitkUInt16))
        >>> data.shape, data.dtype
        ((1, 4, 3, 1), dtype('int32'))
    """
    if not isinstance(image, sitk.Image):
        raise TypeError(f"sitk_to_nib needs a SimpleITK.Image, got {type(image).__name__}")
    if image.GetDimension() == 4:
        if image.GetNumberOfComponentsPerPixel() > 1:
            raise ValueError(f"4D vector images are not supported, got size {image.GetSize()} of vectors")
        data = sitk.GetArrayFromImage(image).transpose(0, 3, 2, 1)  # (C, K, J, I) -> (C, I, J, K)
        affine = get_ras_affine_from_sitk(image)
    else:
        data, affine = from_sitk(image, reorder=False)
    return check_uint_to_int(data), affine


def get_reader(path: TypePath, read: bool = True) -> sitk.ImageFileReader:
    """A SimpleITK file reader of ``path``, its header read unless ``read=False`` (TorchIO's function).

    Raises:
        FileNotFoundError: If ``read`` and nothing exists at ``path``.
        ValueError: If ``read`` and SimpleITK cannot read the header, naming the file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> sitk.WriteImage(sitk.Image([4, 3, 2], sitk.sitkInt16), str(path))
        >>> get_reader(path).GetSize()
        (4, 3, 2)
    """
    resolved = Path(path).expanduser()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(resolved))
    if not read:
        return reader
    if not resolved.exists():
        raise FileNotFoundError(f"image file not found: {str(path)!r}")
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(f"SimpleITK cannot read the header of {str(path)!r}: {reason}") from error
    return reader


def write_squeezed(data: Array, affine: TypeAffine, path: Path) -> None:
    """Write depth-one ``(C, I, J, 1)`` voxels as a 2D SimpleITK image (``write_image(..., squeeze=True)``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> write_squeezed(np.zeros((1, 4, 3, 1), np.int16), np.eye(4), path)
        >>> get_reader(path).GetDimension()
        2
    """
    sitk.WriteImage(nib_to_sitk(data, affine), str(path), True)


__all__ = [
    "FLIPXY_33",
    "FLIPXY_44",
    "IMAGE_2D_FORMATS",
    "get_ras_affine_from_sitk",
    "get_reader",
    "get_rotation_and_spacing_from_affine",
    "get_sitk_metadata_from_ras_affine",
    "nib_to_sitk",
    "sitk_to_nib",
    "write_squeezed",
]
