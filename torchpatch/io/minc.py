"""MINC (``.mnc``): MINC2 through SimpleITK, MINC1 through nibabel.

A MINC2 file is HDF5 and SimpleITK reads it (and writes MINC2); a MINC1
file is NetCDF, which SimpleITK's MINC library cannot open, so nibabel
reads it. This is the split TorchIO 1.2.1 makes (it tries SimpleITK, then
nibabel), so both give its voxels and RAS+ affine; here the first bytes of
the file pick the library, so no failed attempt prints errors first.

Known difference between the two (kept, to give TorchIO's numbers): MINC
world coordinates are RAS, and the SimpleITK 2.5 / ITK 5.4 MINC reader
hands them over as if they were LPS (ITK fixed this later, in its pull
request 4864), so after the usual LPS to RAS+ flip a MINC2 affine has x and y
negated compared with nibabel's reading of the same voxels: nibabel's
``minc1_1_scale.mnc`` and ``minc2_1_scale.mnc`` hold the same voxels, and
their affines differ that way. Round trips through torchpatch (or TorchIO)
are consistent, since SimpleITK writes with the same convention.

MINC1 voxels are stored scaled (``image-min``/``image-max``) and load as
float32, as TorchIO loads them. A 4D MINC1 file is refused: its first axis is
time, and TorchIO 1.2.1 takes its last (spatial) axis as the channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..geometry import check_affine
from ..typing import TypeAffine
from .base import Array, Backend, Header
from .order import c_order
from .sitk import read_sitk, read_sitk_header, write_sitk

#: The first bytes of a NetCDF (MINC1) file: classic and 64-bit offset.
NETCDF_MAGIC = b"CDF"


def is_minc1(path: Path) -> bool:
    """Whether ``path`` is a NetCDF (MINC1) file rather than an HDF5 (MINC2) one.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mnc'
        >>> write_minc(np.zeros((1, 2, 2, 2), np.int16), np.eye(4), path)
        >>> is_minc1(path)
        False
    """
    with open(path, "rb") as stream:
        return stream.read(len(NETCDF_MAGIC)) == NETCDF_MAGIC


def _load_minc1(path: Path) -> Any:
    """nibabel's MINC1 image, checked to be 3D (typed loosely: nibabel's stubs describe the base class)."""
    image: Any = nib.load(path)
    if len(image.shape) != 3:
        raise ValueError(
            f"unsupported {len(image.shape)}D MINC1 file {str(path)!r} of shape {tuple(image.shape)}: only 3D "
            f"MINC1 is read (the first axis of a 4D one is time); convert it to MINC2 (mincconvert -2) or NIfTI"
        )
    return image


def read_minc_header(path: Path) -> Header:
    """Header of a ``.mnc`` file, without its voxels.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mnc'
        >>> write_minc(np.zeros((1, 4, 3, 2), np.uint8), np.eye(4), path)
        >>> header = read_minc_header(path)
        >>> header.spatial_shape, header.dtype.name
        ((4, 3, 2), 'uint8')
    """
    if not is_minc1(path):
        return read_sitk_header(path)
    image = _load_minc1(path)
    shape = tuple(int(size) for size in image.shape)
    affine = check_affine(image.affine, f"affine of {str(path)!r}")
    return Header((shape[0], shape[1], shape[2]), 1, affine, np.dtype(np.float32))


def read_minc(path: Path) -> tuple[Array, TypeAffine]:
    """All voxels of a ``.mnc`` file as ``(C, I, J, K)`` and its RAS+ affine.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mnc'
        >>> write_minc(np.ones((1, 4, 3, 2), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), path)
        >>> data, affine = read_minc(path)
        >>> data.shape, float(data.sum()), affine.diagonal().tolist()
        ((1, 4, 3, 2), 24.0, [2.0, 2.0, 2.0, 1.0])
    """
    if not is_minc1(path):
        return read_sitk(path)
    image = _load_minc1(path)
    affine = check_affine(image.affine, f"affine of {str(path)!r}")
    return c_order(image.get_fdata(dtype=np.float32)[None]), affine


def write_minc(data: Array, affine: TypeAffine, path: Path) -> None:
    """Write ``(C, I, J, K)`` voxels as MINC2 (SimpleITK; channels as vector components).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.mnc'
        >>> write_minc(np.zeros((2, 4, 3, 2), np.float32), np.eye(4), path)
        >>> read_minc_header(path).num_channels
        2
    """
    write_sitk(data, affine, path)


#: MINC1 and MINC2 files; written as MINC2 through a temporary name.
MINC = Backend("minc", (".mnc",), read_minc_header, read_minc, None, write_minc)

__all__ = ["MINC", "NETCDF_MAGIC", "is_minc1", "read_minc", "read_minc_header", "write_minc"]
