"""One file whole: the backend of a suffix, its header, its voxels, writing it.

:data:`BACKENDS` maps each suffix to its :class:`~torchpatch.io.base.Backend`
record (a folder is a DICOM series), and every function here looks the file
up there, turning any library's error into one message that names the file.
:func:`read_array` is torchpatch's reader (numpy); :func:`read_image`,
:func:`read_shape`, :func:`read_affine` and :func:`write_image` are also
TorchIO 1.x's functions of ``tio.io``, with its arguments and results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..geometry import check_affine
from ..typing import TypeAffine, TypePath
from .analyze import ANALYZE
from .atomic import atomic_path
from .base import Array, Backend, Header
from .dicom import DICOM
from .minc import MINC
from .nifti import NIFTI, NIFTI_GZ
from .numpy import NPY, NPZ
from .paths import SUPPORTED_SUFFIXES, check_path, get_suffix
from .paths import names_path as _names_path
from .raster import RASTER_FORMATS, check_raster, stored_dtype
from .sitk import SITK, SITK_DETACHED
from .sitk_images import write_squeezed
from .tensors import to_numpy, voxel_tensor

#: The backend of each supported suffix (a folder is a DICOM series).
BACKENDS: dict[str, Backend] = {
    suffix: backend
    for backend in (NIFTI, NIFTI_GZ, NPY, NPZ, SITK, SITK_DETACHED, MINC, ANALYZE)
    for suffix in backend.suffixes
}

#: Formats whose region reads read only the requested voxels.
REGION_READ_SUFFIXES = tuple(suffix for suffix, backend in BACKENDS.items() if backend.read_region is not None)


def backend_of(path: Path) -> Backend:
    """The backend that reads ``path`` (checked by :func:`~torchpatch.io.check_path`): by suffix, DICOM for a folder.

    Example:
        >>> backend_of(Path('scan.nii.gz')).name
        'nifti'
    """
    if path.is_dir():
        return DICOM
    return BACKENDS[get_suffix(path)]


def read_header(path: TypePath) -> Header:
    """Read shape, channels, affine and dtype without reading voxels.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(np.zeros((1, 4, 3, 2), np.int16), np.eye(4), folder / 'x.nii')
        >>> read_header(folder / 'x.nii').spatial_shape
        (4, 3, 2)
    """
    resolved = check_path(path)
    try:
        return backend_of(resolved).read_header(resolved)
    except Exception as error:  # every library error becomes one clear message
        if _names_path(error, path, resolved):
            raise
        raise ValueError(f"cannot read the header of {str(path)!r}: {type(error).__name__}: {error}") from error


def read_array(path: TypePath) -> tuple[Array, TypeAffine]:
    """Read all voxels as a ``(C, I, J, K)`` numpy array, C-ordered, and the RAS+ affine.

    The voxels keep the file's dtype (uint16 too); :func:`read_image` gives
    them as a tensor.

    Raises:
        FileNotFoundError: If nothing exists at ``path``.
        ValueError: For an unsupported suffix, or a file that cannot be
            read, naming the file.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(np.ones((1, 2, 2, 2), np.float32), np.eye(4), folder / 'x.nrrd')
        >>> data, affine = read_array(folder / 'x.nrrd')
        >>> data.shape, float(data.sum())
        ((1, 2, 2, 2), 8.0)
    """
    resolved = check_path(path)
    return _read_voxels(backend_of(resolved).read_image, path, resolved)


def read_image(path: TypePath) -> tuple[torch.Tensor, TypeAffine]:
    """Read all voxels as a ``(C, I, J, K)`` tensor, and the RAS+ affine (TorchIO's function).

    :func:`read_array` wrapped without a copy (``torch.from_numpy``), except
    that uint16 and uint32 voxels are widened to int32 and int64 as
    TorchIO's are, and read-only memory maps (``.npy``) are copied. Every
    format of :mod:`torchpatch.io`'s table reads, with torchpatch's readers
    (voxels and affines as TorchIO's); a file that does not read gets a
    ``ValueError`` naming it (TorchIO's: a ``RuntimeError``).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(torch.ones(1, 2, 2, 2, dtype=torch.int16), np.eye(4), folder / 'x.nii.gz')
        >>> tensor, affine = read_image(folder / 'x.nii.gz')
        >>> tensor.shape, tensor.dtype, affine.shape
        (torch.Size([1, 2, 2, 2]), torch.int16, (4, 4))
    """
    array, affine = read_array(path)
    return voxel_tensor(array), affine


def read_shape(path: TypePath) -> tuple[int, int, int, int]:
    """``(C, I, J, K)`` of a file, from its header (TorchIO's function).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(np.zeros((3, 8, 6, 1), np.uint8), np.eye(4), folder / 'rgb.png')
        >>> read_shape(folder / 'rgb.png')
        (3, 8, 6, 1)
    """
    header = read_header(path)
    i, j, k = header.spatial_shape
    return int(header.num_channels), int(i), int(j), int(k)


def read_affine(path: TypePath) -> TypeAffine:
    """The RAS+ affine of a file, from its header (TorchIO's function).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(np.zeros((1, 2, 2, 2), np.int16), np.diag([2.0, 2.0, 3.0, 1.0]), folder / 'x.nrrd')
        >>> read_affine(folder / 'x.nrrd').diagonal().tolist()
        [2.0, 2.0, 3.0, 1.0]
    """
    return np.array(read_header(path).affine, dtype=np.float64)


def _read_voxels(
    read: Callable[[Path], tuple[Array, TypeAffine]], path: TypePath, resolved: Path
) -> tuple[Array, TypeAffine]:
    """``read(resolved)``, every library error turned into one clear message naming ``path``."""
    try:
        return read(resolved)
    except Exception as error:
        if _names_path(error, path, resolved):
            raise
        raise ValueError(
            f"cannot read the voxels of {str(path)!r} (truncated or corrupt file?): {type(error).__name__}: {error}"
        ) from error


def read_image_file_order(path: TypePath) -> tuple[Array, TypeAffine]:
    """:func:`read_array`, the voxels left in the order decoding gives them: no pass to reorder them.

    Compressed NIfTI files and the files SimpleITK reads decode into the
    file's order, each channel F-ordered (:func:`~torchpatch.io.in_file_order`);
    other formats, vector images and volumes too large to decode whole may
    come C-ordered as from :func:`read_array`. Boxes of either are cut by
    :func:`~torchpatch.io.copy_boxes`; :func:`~torchpatch.io.c_order` gives
    the C-ordered volume.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4), np.eye(4), folder / 'x.nii.gz')
        >>> from torchpatch.io import c_order, in_file_order
        >>> data, affine = read_image_file_order(folder / 'x.nii.gz')
        >>> in_file_order(data), bool((c_order(data) == np.arange(24).reshape(1, 2, 3, 4)).all())
        (True, True)
    """
    resolved = check_path(path)
    backend = backend_of(resolved)
    return _read_voxels(backend.read_file_order or backend.read_image, path, resolved)


def write_image(tensor: torch.Tensor | Array, affine: TypeAffine, path: TypePath, squeeze: bool | None = None) -> None:
    """Write ``(C, I, J, K)`` voxels (a tensor or an array) with a RAS+ affine, atomically.

    The file is written under a temporary name in the same folder and then
    renamed, so a reader never sees half a file (``.mhd``/``.nhdr`` and
    ``.hdr``/``.img``, which are two files, are written in place). Temporary files left by
    a killed writer are removed by the next write into the folder.

    Args:
        tensor: ``(C, I, J, K)`` voxels; ``bool`` are written as uint8 and
            half floats as float32.
        affine: 4x4 voxel-to-RAS+ matrix.
        path: The file; its suffix chooses the format.
        squeeze: ``True`` writes a depth-one image as a 2D image in the
            formats SimpleITK writes (NIfTI, NRRD, MetaImage...), as TorchIO
            does; ``None`` or ``False`` keep it 3D with a depth of one (2D
            raster formats, PNG..., are 2D either way).

    Raises:
        TypeError: If ``squeeze`` is not ``None``, ``True`` or ``False``.
        ValueError: For an unsupported suffix, voxels that are not 4D or
            that the format would store wrongly, or a bad affine.
        FileNotFoundError: If the folder does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(np.zeros((3, 8, 6, 1), np.uint8), np.eye(4), folder / 'rgb.png')
        >>> read_header(folder / 'rgb.png').num_channels
        3
        >>> write_image(torch.zeros(1, 8, 6, 1), np.eye(4), folder / 'slice.nrrd', squeeze=True)
        >>> import SimpleITK as sitk
        >>> sitk.ReadImage(str(folder / 'slice.nrrd')).GetSize()
        (8, 6)
    """
    target = Path(path).expanduser()
    suffix = get_suffix(target)
    backend = BACKENDS.get(suffix)
    if backend is None or backend.write is None:
        raise ValueError(
            f"cannot write {str(path)!r}: unsupported extension {suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if squeeze is not None and not isinstance(squeeze, bool):
        raise TypeError(f"squeeze must be None, True or False, got {type(squeeze).__name__} {squeeze!r}")
    data = np.asarray(to_numpy(tensor))
    if data.ndim != 4:
        raise ValueError(f"write_image needs a (C, I, J, K) array, got shape {data.shape} for {str(path)!r}")
    affine = check_affine(to_numpy(affine), f"affine of {str(path)!r}")
    cast = stored_dtype(data.dtype)
    if cast != data.dtype:
        data = data.astype(cast)
    check_raster(data, suffix, path)
    if not target.parent.exists():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(target.parent)!r} does not exist")
    write = backend.write
    if squeeze and data.shape[3] == 1 and backend.name in ("simpleitk", "nifti") and suffix not in RASTER_FORMATS:
        write = write_squeezed  # a depth-one image as a 2D file
    if not backend.atomic_writes:
        write(data, affine, target)
        return
    with atomic_path(target) as temporary:
        write(data, affine, temporary)


__all__ = [
    "BACKENDS",
    "REGION_READ_SUFFIXES",
    "backend_of",
    "read_affine",
    "read_array",
    "read_header",
    "read_image",
    "read_image_file_order",
    "read_shape",
    "write_image",
]
