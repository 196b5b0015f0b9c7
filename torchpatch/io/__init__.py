"""Reading and writing image files.

Every reader returns arrays laid out ``(C, I, J, K)`` with a RAS+ affine:

=====================================  ==========  ============================
format                                 library     notes
=====================================  ==========  ============================
``.nii``, ``.nii.gz``                  nibabel     ``.nii`` region reads touch only
                                                   the requested bytes; 4D (time
                                                   series) and 5D ``(I, J, K, 1,
                                                   C)`` files load as channels;
                                                   ``.nii.gz`` voxels decoded by
                                                   libdeflate
``.nrrd``, ``.nhdr``, ``.mha``,        SimpleITK   LPS on disk, converted to RAS+;
``.mhd``, a DICOM series folder                    the voxels of 3D scalar
                                                   NRRD and MetaImage files
                                                   decoded by libdeflate
                                                   (:mod:`~torchpatch.io.textheader`)
``.png``, ``.jpg``, ``.jpeg``,         SimpleITK   2D files load as
``.bmp``, ``.tif``, ``.tiff``                      ``(C, I, J, 1)`` with I = column
                                                   (x), J = row (y); third spacing 1
``.npy``, ``.npz``                     numpy       memory-mapped ``.npy``; the
                                                   affine is given by the caller
                                                   (or an ``affine`` array in the
                                                   ``.npz``); never unpickles
``.mnc``                               SimpleITK,  MINC2 (HDF5) by SimpleITK,
                                       nibabel     MINC1 (NetCDF, 3D) by nibabel
                                                   as float32; written as MINC2
``.hdr``, ``.img``                     SimpleITK   Analyze 7.5 or NIfTI-1 pair;
                                                   plain Analyze has no
                                                   orientation: LPS identity
                                                   (as TorchIO); written as a
                                                   NIfTI-1 pair
=====================================  ==========  ============================

Headers are read without reading voxels (DICOM: the first and last slice
headers only), so an image's shape and affine are known before its data is.

Each format is a :class:`~torchpatch.io.base.Backend` record in its own
module (:mod:`~torchpatch.io.nifti`, :mod:`~torchpatch.io.numpy`,
:mod:`~torchpatch.io.sitk`, :mod:`~torchpatch.io.dicom`,
:mod:`~torchpatch.io.minc`, :mod:`~torchpatch.io.analyze`); :data:`BACKENDS`
maps each suffix to its record, and the functions of
:mod:`~torchpatch.io.files` look the file up there. What 2D raster formats hold is :data:`RASTER_FORMATS`;
atomic writes of files and folders are :mod:`~torchpatch.io.atomic`.

This package is also TorchIO 1.x's ``tio.io`` (``tio.data.io``), with
TorchIO's names and results: :func:`read_image` gives a tensor (torchpatch's
own readers use :func:`read_array`, its numpy twin), :func:`write_image`
takes ``squeeze``, :func:`read_shape` and :func:`read_affine` read headers
only, :mod:`~torchpatch.io.sitk_images` converts to and from SimpleITK,
:mod:`~torchpatch.io.matrices` reads and writes affine transform files and
:mod:`~torchpatch.io.tensors` holds ``ensure_4d`` and ``check_uint_to_int``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..typing import TypePath
from .atomic import write_atomic
from .base import (
    Array,
    Backend,
    Header,
    blend_boxes,
    box_items,
    copy_box_items,
    copy_boxes,
    numpy_dtype,
    write_boxes,
)
from .files import (
    BACKENDS,
    REGION_READ_SUFFIXES,
    backend_of,
    read_affine,
    read_array,
    read_header,
    read_image,
    read_image_file_order,
    read_shape,
    write_image,
)
from .labels import label_runs
from .matrices import read_matrix, write_matrix
from .numpy import load_npy, map_npy, open_memmap, release_memory_maps
from .order import c_order, in_file_order, reorder_backend
from .paths import SUPPORTED_SUFFIXES, check_path, checked_status, get_stem, get_suffix
from .paths import names_path as _names_path
from .raster import RASTER_FORMATS, RasterFormat, raster_capabilities
from .sitk import TEXT_HEADER_SUFFIXES, raw_layout, read_sitk_region
from .sitk_images import (
    FLIPXY_33,
    FLIPXY_44,
    IMAGE_2D_FORMATS,
    get_ras_affine_from_sitk,
    get_reader,
    get_rotation_and_spacing_from_affine,
    get_sitk_metadata_from_ras_affine,
    nib_to_sitk,
    sitk_to_nib,
)
from .team import openmp_library, team_threads
from .tensors import check_uint_to_int, ensure_4d


def read_channels_header(paths: Sequence[TypePath]) -> Header:
    """The header of files stacked as channels: one grid, the channels summed.

    Raises:
        ValueError: When the files do not share one spatial shape and affine,
            naming both files with their shapes and affines.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ('a.nrrd', 'b.nrrd'):
        ...     write_image(np.ones((1, 2, 2, 2), np.float32), np.eye(4), folder / name)
        >>> read_channels_header([folder / 'a.nrrd', folder / 'b.nrrd']).num_channels
        2
    """
    headers = [read_header(path) for path in paths]
    reference = headers[0]
    for path, header in zip(paths[1:], headers[1:]):
        if header.spatial_shape != reference.spatial_shape or not np.allclose(
            header.affine, reference.affine, atol=1e-4
        ):
            raise ValueError(
                f"files stacked as channels must share one grid: {str(paths[0])!r} has shape "
                f"{reference.spatial_shape} and affine\n{reference.affine}\nbut {str(path)!r} has shape "
                f"{header.spatial_shape} and affine\n{header.affine}"
            )
    channels = sum(h.num_channels for h in headers)
    dtype = np.result_type(*[h.dtype for h in headers])
    return Header(reference.spatial_shape, channels, reference.affine, dtype)


def read_channels(paths: Sequence[TypePath]) -> Array:
    """The voxels of files stacked as channels, ``(C, I, J, K)`` (checked to share one grid).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ('a.nrrd', 'b.nrrd'):
        ...     write_image(np.ones((1, 2, 2, 2), np.float32), np.eye(4), folder / name)
        >>> read_channels([folder / 'a.nrrd', folder / 'b.nrrd']).shape
        (2, 2, 2, 2)
    """
    arrays = [read_array(path)[0] for path in paths]
    if len(arrays) == 1:
        return arrays[0]
    read_channels_header(paths)
    return np.concatenate(arrays, axis=0)


def supports_region_reads(path: TypePath) -> bool:
    """Whether :func:`read_region` reads only the requested voxels of ``path``.

    By suffix (:data:`REGION_READ_SUFFIXES`), and for NRRD and MetaImage
    files by their header: raw voxels (uncompressed), one scalar 3D volume
    (:func:`~torchpatch.io.sitk.raw_layout`).

    Example:
        >>> supports_region_reads('a.nii'), supports_region_reads('a.nii.gz')
        (True, False)
    """
    suffix = get_suffix(path)
    if suffix in REGION_READ_SUFFIXES:
        return True
    return suffix in TEXT_HEADER_SUFFIXES and raw_layout(Path(path)) is not None


def memory_map(path: TypePath) -> Array:
    """The voxels of a ``.npy`` file as a read-only ``(C, I, J, K)`` memory map.

    The map stays open (and is reused) until :func:`release_memory_maps`;
    slicing it reads only the bytes of the slice.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> np.save(folder / 'x.npy', np.zeros((3, 4, 5), dtype=np.float32))
        >>> memory_map(folder / 'x.npy').shape
        (1, 3, 4, 5)
    """
    resolved, status = checked_status(path)
    if get_suffix(resolved) != ".npy":
        raise ValueError(f"memory maps need a .npy file, got {str(path)!r}")
    try:
        return open_memmap(resolved, status)
    except Exception as error:
        if _names_path(error, path, resolved):
            raise
        raise ValueError(f"cannot map {str(path)!r} (truncated or corrupt file?): {error}") from error


def read_region(path: TypePath, index_ini: Sequence[int], index_fin: Sequence[int]) -> Array:
    """Read the voxels ``[index_ini, index_fin)`` of an uncompressed file.

    ``.nii``, ``.npy``, and NRRD and MetaImage files with raw voxels
    (:func:`supports_region_reads`); the bytes outside the region are never
    read. Returns ``(C, i1 - i0, j1 - j0, k1 - k0)``.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> data = np.arange(64, dtype=np.int32).reshape(1, 4, 4, 4)
        >>> write_image(data, np.eye(4), folder / 'x.npy')
        >>> read_region(folder / 'x.npy', (1, 1, 1), (2, 2, 3)).ravel().tolist()
        [21, 22]
    """
    resolved = check_path(path)
    if resolved.is_dir() or not supports_region_reads(resolved):
        raise ValueError(
            f"region reads need an uncompressed .nii or .npy file, or a NRRD or MetaImage file with raw voxels, "
            f"got {str(path)!r}"
        )
    reader = BACKENDS[get_suffix(resolved)].read_region or read_sitk_region  # raw NRRD and MetaImage
    i0, j0, k0 = (int(v) for v in index_ini)
    i1, j1, k1 = (int(v) for v in index_fin)
    try:
        region = reader(resolved, (i0, j0, k0), (i1, j1, k1))
    except Exception as error:  # every library error becomes one clear message
        if _names_path(error, path, resolved):
            raise
        raise ValueError(f"cannot read a region of {str(path)!r} (truncated or corrupt file?): {error}") from error
    return c_order(region)


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
    "read_array",
    "read_matrix",
    "read_shape",
    "sitk_to_nib",
    "write_matrix",
    "read_channels",
    "read_channels_header",
    "BACKENDS",
    "RASTER_FORMATS",
    "REGION_READ_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Backend",
    "Header",
    "RasterFormat",
    "backend_of",
    "blend_boxes",
    "box_items",
    "copy_box_items",
    "c_order",
    "copy_boxes",
    "in_file_order",
    "label_runs",
    "numpy_dtype",
    "openmp_library",
    "load_npy",
    "map_npy",
    "check_path",
    "get_stem",
    "get_suffix",
    "memory_map",
    "raster_capabilities",
    "read_header",
    "read_image",
    "read_image_file_order",
    "read_region",
    "reorder_backend",
    "release_memory_maps",
    "supports_region_reads",
    "team_threads",
    "write_atomic",
    "write_boxes",
    "write_image",
]
