"""SimpleITK formats: NRRD, MetaImage, and 2D rasters (PNG, JPEG, BMP, TIFF).

SimpleITK arrays are ``(K, J, I)`` in LPS; they are turned into
``(C, I, J, K)`` in RAS+. A 2D file loads as ``(C, I, J, 1)`` with I the
column (x) and J the row (y), and a third spacing of 1. The voxels of a 3D
scalar NRRD or MetaImage file (``.nrrd``, ``.mha``, or the one data file a
``.nhdr`` or ``.mhd`` names) are decoded by :mod:`torchpatch.io.textheader`
(libdeflate) instead, with the geometry SimpleITK reads from the header.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..geometry import LPS_TO_RAS, check_affine
from ..typing import TypeAffine, TypeTriplet
from . import textheader
from .base import Array, Backend, Header
from .order import c_order
from .paths import SITK_2D_SUFFIXES, get_suffix

#: Suffixes of the files whose voxels :mod:`~torchpatch.io.textheader` may decode.
TEXT_HEADER_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def sitk_affine(spacing: Sequence[float], origin: Any, direction: Any) -> TypeAffine:
    """The RAS+ affine of a 2D or 3D SimpleITK geometry (LPS).

    Example:
        >>> sitk_affine((2.0, 3.0), (0.0, 0.0), (1, 0, 0, 1)).diagonal().tolist()
        [-2.0, -3.0, 1.0, 1.0]
    """
    dimension = len(spacing)
    rotation = np.eye(3)
    rotation[:dimension, :dimension] = np.asarray(direction, dtype=np.float64).reshape(dimension, dimension)
    steps = np.ones(3)
    steps[:dimension] = spacing
    position = np.zeros(3)
    position[:dimension] = origin
    lps = np.eye(4)
    lps[:3, :3] = rotation * steps
    lps[:3, 3] = position
    return LPS_TO_RAS @ lps


def sitk_dtype(reader: sitk.ImageFileReader) -> np.dtype[np.generic]:
    """The numpy dtype of the voxels a reader (after ``ReadImageInformation``) would read.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mha'
        >>> write_sitk(np.zeros((1, 2, 2, 2), np.int16), np.eye(4), path)
        >>> reader = sitk.ImageFileReader()
        >>> reader.SetFileName(str(path))
        >>> reader.ReadImageInformation()
        >>> sitk_dtype(reader)
        dtype('int16')
    """
    # A one-voxel image of the same pixel type tells us the numpy dtype
    # without reading the file's voxels.
    pixel_id = reader.GetPixelID()
    probe = sitk.Image([1, 1], pixel_id, reader.GetNumberOfComponents())
    return sitk.GetArrayViewFromImage(probe).dtype


def read_sitk_header(path: Path) -> Header:
    """Header of a file SimpleITK reads, without its voxels.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.png'
        >>> write_sitk(np.zeros((3, 8, 6, 1), np.uint8), np.eye(4), path)
        >>> header = read_sitk_header(path)
        >>> header.spatial_shape, header.num_channels
        ((8, 6, 1), 3)
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    size = reader.GetSize()
    if len(size) not in (2, 3):
        raise ValueError(f"unsupported {len(size)}D image in {str(path)!r}: expected 2D or 3D")
    spatial_shape = (int(size[0]), int(size[1]), int(size[2]) if len(size) == 3 else 1)
    affine = sitk_affine(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    return Header(
        spatial_shape, int(reader.GetNumberOfComponents()), check_affine(affine, str(path)), sitk_dtype(reader)
    )


def from_sitk(image: sitk.Image, reorder: bool = True) -> tuple[Array, TypeAffine]:
    """A SimpleITK image as ``(C, I, J, K)`` voxels in C order (as SimpleITK lays them out without ``reorder``).

    Example:
        >>> data, affine = from_sitk(sitk.Image([4, 3], sitk.sitkUInt8))
        >>> data.shape
        (1, 4, 3, 1)
    """
    array = sitk.GetArrayFromImage(image)
    dimension = image.GetDimension()
    if dimension not in (2, 3):
        raise ValueError(f"unsupported {dimension}D image: expected 2D or 3D")
    vector = image.GetNumberOfComponentsPerPixel() > 1
    if not vector:
        array = array[..., None]
    # SimpleITK arrays are (K, J, I, C) or (J, I, C); ours are (C, I, J, K).
    array = np.moveaxis(array, -1, 0)
    array = array.transpose(0, *range(dimension, 0, -1))
    if dimension == 2:
        array = array[..., None]
    affine = sitk_affine(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    # GetArrayFromImage gave a copy of our own: the reordered one goes into a recycled buffer (io.buffers).
    return (c_order(array, reuse=True) if reorder else array), affine


def read_sitk(path: Path, reorder: bool = True) -> tuple[Array, TypeAffine]:
    """All voxels of a file SimpleITK reads, and its RAS+ affine.

    Without ``reorder`` the voxels stay as decoded, each channel in the
    file's order (the backends' ``read_file_order``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> write_sitk(np.ones((1, 2, 2, 2), np.float32), np.eye(4), path)
        >>> float(read_sitk(path)[0].sum())
        8.0
    """
    fast = _decoded_here(path, reorder) if get_suffix(path) in TEXT_HEADER_SUFFIXES else None
    return fast if fast is not None else from_sitk(sitk.ReadImage(str(path)), reorder)


def raw_layout(path: Path) -> textheader.VoxelLayout | None:
    """The layout of a NRRD or MetaImage file's voxels when they are raw and agree with SimpleITK's header.

    What :func:`read_sitk_region` reads boxes of; ``None`` for any other
    file (compressed voxels, formats SimpleITK alone reads, missing files).
    Kept per file version (path, size, modification time).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mha'
        >>> write_sitk(np.zeros((1, 4, 3, 2), np.int16), np.eye(4), path)   # compressed
        >>> raw_layout(path) is None
        True
    """
    if get_suffix(path) not in TEXT_HEADER_SUFFIXES:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return _raw_layout(str(path), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _raw_layout(path: str, size: int, mtime_ns: int) -> textheader.VoxelLayout | None:
    layout = textheader.voxel_layout(Path(path))
    if layout is None or layout.encoding != "raw" or _agreeing_geometry(Path(path), layout) is None:
        return None
    return layout


def read_sitk_region(path: Path, index_ini: TypeTriplet, index_fin: TypeTriplet) -> Array:
    """The voxels ``[index_ini, index_fin)`` of a NRRD or MetaImage file with raw voxels, reading only their bytes.

    Raises:
        ValueError: If the file's voxels are compressed (or SimpleITK alone reads it).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> image = sitk.GetImageFromArray(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
        >>> sitk.WriteImage(image, str(path), useCompression=False)
        >>> read_sitk_region(path, (1, 0, 0), (3, 1, 1)).ravel().tolist()
        [1, 2]
    """
    layout = raw_layout(path)
    if layout is None:
        raise ValueError(f"region reads need raw voxels in a 3D scalar NRRD or MetaImage file, got {str(path)!r}")
    return textheader.read_raw_region(path, layout, index_ini, index_fin)


def _agreeing_geometry(path: Path, layout: textheader.VoxelLayout) -> tuple[Any, Any, Any] | None:
    """SimpleITK's spacing, origin and direction of ``path``, or ``None`` when its header disagrees with
    ``layout`` on the size, a single component or the type."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    agrees = tuple(reader.GetSize()) == layout.shape and reader.GetNumberOfComponents() == 1
    if not agrees or sitk_dtype(reader) != layout.dtype.newbyteorder("="):
        return None
    return reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()


def _decoded_here(path: Path, reorder: bool = True) -> tuple[Array, TypeAffine] | None:
    """An NRRD or MetaImage file's voxels decoded by torchpatch, its geometry as SimpleITK reads it.

    ``None`` (SimpleITK reads the file) unless :func:`.textheader.voxel_layout`
    takes the file and SimpleITK's reading of its header agrees with it.
    """
    layout = textheader.voxel_layout(path)
    geometry = None if layout is None else _agreeing_geometry(path, layout)
    if layout is None or geometry is None:
        return None
    return textheader.read_voxels(path, layout, reorder), sitk_affine(*geometry)


def sitk_image(data: Array, affine: TypeAffine, two_d: bool) -> sitk.Image:
    """``(C, I, J, K)`` voxels and a RAS+ affine as a SimpleITK image in LPS; ``two_d``: a depth-one image as 2D.

    Several channels make a vector image. A 2D image keeps the in-plane
    part of the geometry (callers check that the third axis is not rotated
    into the plane where that matters).

    Example:
        >>> sitk_image(np.zeros((1, 4, 3, 1), np.int16), np.diag([2.0, 3.0, 1.0, 1.0]), True).GetSpacing()
        (2.0, 3.0)
    """
    channels = data.shape[0]
    lps = LPS_TO_RAS @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    if two_d:
        array = data[..., 0].transpose(2, 1, 0)  # (J, I, C)
        direction = direction[:2, :2]
        spacing = spacing[:2]
        origin = lps[:2, 3]
    else:
        array = data.transpose(3, 2, 1, 0)  # (K, J, I, C)
        origin = lps[:3, 3]
    if channels == 1:
        array = array[..., 0]
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=channels > 1)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction.ravel()])
    return image


def write_sitk(data: Array, affine: TypeAffine, path: Path) -> None:
    """Write ``(C, I, J, K)`` voxels; depth-one images in a 2D raster format as 2D files.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mha'
        >>> write_sitk(np.zeros((1, 2, 3, 4), np.int16), np.eye(4), path)
        >>> read_sitk_header(path).spatial_shape
        (2, 3, 4)
    """
    two_d = data.shape[3] == 1 and get_suffix(path) in SITK_2D_SUFFIXES
    image = sitk_image(data, affine, two_d)
    sitk.WriteImage(image, str(path), useCompression=get_suffix(path) in (".nrrd", ".mha"))


#: One-file formats, written through a temporary name.
SITK = Backend(
    "simpleitk",
    (".nrrd", ".mha", *SITK_2D_SUFFIXES),
    read_sitk_header,
    read_sitk,
    None,
    write_sitk,
    read_file_order=functools.partial(read_sitk, reorder=False),
)
#: Headers that name a second (voxel) file: written in place, both files.
SITK_DETACHED = Backend(
    "simpleitk",
    (".nhdr", ".mhd"),
    read_sitk_header,
    read_sitk,
    None,
    write_sitk,
    atomic_writes=False,
    read_file_order=functools.partial(read_sitk, reorder=False),
)

__all__ = [
    "SITK",
    "SITK_DETACHED",
    "TEXT_HEADER_SUFFIXES",
    "from_sitk",
    "raw_layout",
    "read_sitk",
    "read_sitk_header",
    "read_sitk_region",
    "sitk_affine",
    "sitk_dtype",
    "sitk_image",
    "write_sitk",
]
