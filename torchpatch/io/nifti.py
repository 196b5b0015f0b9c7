"""NIfTI through nibabel: memory-mapped ``.nii`` region reads, fast whole ``.nii.gz`` reads (libdeflate).

4D files (time series) and 5D ``(I, J, K, 1, C)`` files load as channels;
2D files as depth one. Scaled files (``scl_slope``/``scl_inter``) load as
float32 unless stored as float64.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.volumeutils import apply_read_scaling

from ..geometry import check_affine
from ..typing import TypeAffine, TypeTriplet
from .base import Array, Backend, Header
from .inflate import inflate_file, iter_inflate, should_stream
from .order import c_order, copy_blocks
from .paths import get_suffix

#: Parsed files (nibabel images: headers and proxies, no voxels) by path, each with the bytes it was parsed from.
_PARSED: dict[str, tuple[bytes, Any]] = {}

#: Paths whose parsed header is kept.
PARSED_KEPT = 512

#: Bytes compared before a kept header is used again: a NIfTI-2 header (NIfTI-1's is 348).
_HEAD_BYTES = 540


def _head(path: Path) -> bytes:
    """The header's bytes (348 for NIfTI-1, else the first 540) of the (decompressed) file; about 15 us."""
    with open(path, "rb") as file:
        if get_suffix(path) != ".nii.gz":
            head = file.read(_HEAD_BYTES)
        else:
            stream = zlib.decompressobj(31)  # gzip
            head = b""
            while len(head) < _HEAD_BYTES and not stream.eof:
                chunk = stream.unconsumed_tail or file.read(4096)
                if not chunk:
                    break
                head += stream.decompress(chunk, _HEAD_BYTES - len(head))
    # A NIfTI-1 header's first field is 348 (in either byte order); the voxels may follow it.
    return head[:348] if head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c") else head


def _nib_load(path: Path) -> Any:
    """nibabel's image (typed loosely: its stubs describe the base class), parsed once per file content.

    A subject's image is opened for its header (its affine, the subject's
    consistency check) and again to read its voxels, every time it is
    loaded: the parsed image is kept by path and used again while the file
    still starts with the same bytes (its header), whatever else changed.
    """
    key = str(path)
    try:
        head = _head(path)
    except (OSError, zlib.error, EOFError):
        return nib.load(path)  # nibabel's own error for a file it cannot read
    kept = _PARSED.get(key)
    if kept is not None and kept[0] == head:
        return kept[1]
    image = nib.load(path)
    if len(_PARSED) >= PARSED_KEPT:
        _PARSED.pop(next(iter(_PARSED)), None)
    _PARSED[key] = (head, image)
    return image


def _nifti_layout(shape: Sequence[int], path: Path) -> tuple[TypeTriplet, int]:
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1]), 1), 1
    if len(shape) == 3:
        return (int(shape[0]), int(shape[1]), int(shape[2])), 1
    if len(shape) == 4:
        return (int(shape[0]), int(shape[1]), int(shape[2])), int(shape[3])
    if len(shape) == 5 and shape[3] == 1:
        return (int(shape[0]), int(shape[1]), int(shape[2])), int(shape[4])
    raise ValueError(
        f"unsupported NIfTI shape {tuple(shape)} in {str(path)!r}: expected (I, J), (I, J, K), "
        f"(I, J, K, T) or (I, J, K, 1, C)"
    )


def _to_channels_first(raw: Array, shape: Sequence[int], path: Path) -> Array:
    _nifti_layout(shape, path)  # raises on shapes we cannot lay out
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.ndim == 3:
        return raw[None]
    if raw.ndim == 5:
        raw = raw[:, :, :, 0, :]
    return np.moveaxis(raw, -1, 0)


def _cast_scaled(array: Array, proxy: object) -> Array:
    # nibabel applies scl_slope/scl_inter and returns float64; float32 keeps
    # the precision such files have while halving memory.
    if array.dtype == np.float64 and getattr(proxy, "dtype", np.dtype(np.float64)) != np.float64:
        return array.astype(np.float32)
    return array


def read_nifti_header(path: Path) -> Header:
    """Header of a ``.nii``/``.nii.gz`` file (nibabel reads only its first bytes).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nii'
        >>> write_nifti(np.zeros((2, 4, 3, 2), np.int16), np.eye(4), path)
        >>> header = read_nifti_header(path)
        >>> header.spatial_shape, header.num_channels, header.dtype.name
        ((4, 3, 2), 2, 'int16')
    """
    image = _nib_load(path)
    spatial_shape, channels = _nifti_layout(image.shape, path)
    proxy = image.dataobj
    dtype: np.dtype[Any] = np.dtype(image.get_data_dtype())
    slope = getattr(proxy, "slope", 1.0)
    inter = getattr(proxy, "inter", 0.0)
    if (slope not in (1.0, None) and np.isfinite(slope)) or (inter not in (0.0, None) and np.isfinite(inter)):
        dtype = np.dtype(np.float32) if dtype != np.float64 else dtype
    return Header(spatial_shape, channels, check_affine(image.affine, f"affine of {str(path)!r}"), dtype)


def _scaled(raw: Array, proxy: Any) -> Array:
    """``raw`` (on-disk values) scaled as nibabel's ``np.asanyarray(proxy)`` scales them, then cast.

    nibabel picks the float type from the dtypes alone (never the values), so
    a slab scales to the same dtype and values as the whole volume.
    """
    slope, inter = proxy.slope, proxy.inter
    if (slope, inter) == (1.0, 0.0):
        return raw
    return _cast_scaled(apply_read_scaling(raw, np.asanyarray(slope), np.asanyarray(inter)), proxy)


def _gz_layout(path: Path, proxy: Any) -> tuple[tuple[int, ...], np.dtype[Any], int, int]:
    """Shape, on-disk dtype, voxel offset and byte count (header included) of a ``.nii.gz``."""
    shape = tuple(int(s) for s in proxy.shape)
    _nifti_layout(shape, path)  # raises on shapes we cannot lay out
    if getattr(proxy, "order", "F") != "F":
        raise ValueError(f"unsupported voxel order {proxy.order!r} in {str(path)!r}: NIfTI stores 'F' order")
    dtype = np.dtype(proxy.dtype)
    offset = int(proxy.offset)
    return shape, dtype, offset, offset + math.prod(shape) * dtype.itemsize


def _too_short(path: Path, expected: int, found: int) -> ValueError:
    return ValueError(
        f"truncated NIfTI file {str(path)!r}: its header promises {expected} bytes of header and "
        f"voxels, its gzip stream holds {found}"
    )


def _read_nii_gz(path: Path, proxy: Any, reorder: bool = True) -> Array:
    """The ``(C, I, J, K)`` voxels of a ``.nii.gz``, decoded whole (libdeflate) or streamed (zlib).

    Without ``reorder``, voxels decoded whole are left in the file's order
    (each channel F-ordered); streamed ones are C-ordered either way.
    """
    shape, dtype, offset, size = _gz_layout(path, proxy)
    if should_stream(size):
        return _stream_nii_gz(path, proxy, shape, dtype, offset)
    # One buffer for header and voxels, viewed in place: the only copy is the
    # reordering into C order, which the image needs anyway.
    buffer = inflate_file(path, size)
    if len(buffer) < size:
        raise _too_short(path, size, len(buffer))
    raw = np.frombuffer(buffer, dtype, math.prod(shape), offset).reshape(shape, order="F")
    voxels = _to_channels_first(_scaled(raw, proxy), shape, path)
    # The decoded buffer is ours: given up for the reordered copy (a recycled buffer, see io.buffers).
    return c_order(voxels, reuse=True) if reorder else voxels


def _stream_nii_gz(path: Path, proxy: Any, shape: tuple[int, ...], dtype: np.dtype[Any], offset: int) -> Array:
    """Like :func:`_read_nii_gz`, in bounded memory: chunks of slices go straight into the final array.

    The file holds ``(I, J)`` slices, ``K`` per channel, channel after channel;
    each chunk of whole slices is scaled and written into its place in the
    C-ordered output, so neither the compressed file nor a second full copy
    of the voxels is ever in memory.
    """
    (size_i, size_j, size_k), channels = _nifti_layout(shape, path)
    slice_bytes = size_i * size_j * dtype.itemsize
    out_dtype = _scaled(np.zeros(1, dtype), proxy).dtype
    out = np.empty((channels, size_i, size_j, size_k), out_dtype)
    slices_total = channels * size_k
    pending = bytearray()
    skip, done = offset, 0
    for chunk in iter_inflate(path):
        view = memoryview(chunk)[min(skip, len(chunk)) :]
        skip -= len(chunk) - len(view)
        pending += view
        ready = min(len(pending) // slice_bytes, slices_total - done)
        if ready:
            _put_slices(out, pending, dtype, done, ready, proxy)
            del pending[: ready * slice_bytes]
            done += ready
    if done < slices_total:
        raise _too_short(path, offset + slices_total * slice_bytes, offset - skip + done * slice_bytes + len(pending))
    return out


def _put_slices(out: Array, pending: bytearray, dtype: np.dtype[Any], first: int, count: int, proxy: Any) -> None:
    """Write ``count`` file slices (from slice ``first`` on, channel-major) into ``out[c, :, :, k]``."""
    _, size_i, size_j, size_k = out.shape
    slab = np.frombuffer(pending, dtype, count * size_i * size_j).reshape((size_i, size_j, count), order="F")
    index = first
    while index < first + count:
        channel, k = divmod(index, size_k)
        run = min(size_k - k, first + count - index)
        copy_blocks(out[channel, :, :, k : k + run], _scaled(slab[:, :, index - first : index - first + run], proxy))
        index += run


def read_nifti(path: Path, reorder: bool = True) -> tuple[Array, TypeAffine]:
    """All voxels of a ``.nii``/``.nii.gz`` file as ``(C, I, J, K)`` and its affine.

    A ``.nii.gz`` is decoded by libdeflate (zlib without it) straight from the
    file's bytes, nibabel reading only its header; the gzip CRC32 and size of
    every member are verified: a corrupt file raises ``ValueError`` naming it
    ("CRC check failed"). A volume larger than a quarter of the RAM streams
    in chunks into its final array. Without ``reorder``, a ``.nii.gz``
    decoded whole stays in the file's order (each channel F-ordered: the
    backend's ``read_file_order``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nii.gz'
        >>> write_nifti(np.ones((1, 4, 3, 2), np.float32), np.eye(4), path)
        >>> data, affine = read_nifti(path)
        >>> data.shape, float(data.sum())
        ((1, 4, 3, 2), 24.0)
    """
    image = _nib_load(path)
    affine = check_affine(image.affine, f"affine of {str(path)!r}")
    proxy = image.dataobj
    if get_suffix(path) == ".nii.gz":
        return _read_nii_gz(path, proxy, reorder), affine
    raw = np.asanyarray(proxy)
    data = _cast_scaled(_to_channels_first(raw, image.shape, path), proxy)
    return c_order(data), affine


def read_nifti_region(path: Path, index_ini: TypeTriplet, index_fin: TypeTriplet) -> Array:
    """The voxels ``[index_ini, index_fin)`` of a ``.nii`` file, through nibabel's memory map.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nii'
        >>> write_nifti(np.arange(8, dtype=np.int16).reshape(1, 2, 2, 2), np.eye(4), path)
        >>> read_nifti_region(path, (1, 1, 0), (2, 2, 2)).ravel().tolist()
        [6, 7]
    """
    (i0, j0, k0), (i1, j1, k1) = index_ini, index_fin
    image = _nib_load(path)
    proxy = image.dataobj
    shape = tuple(int(s) for s in image.shape)
    raw = proxy[i0:i1, j0:j1][..., None] if len(shape) == 2 else proxy[i0:i1, j0:j1, k0:k1]
    region = _to_channels_first(np.asarray(raw), shape, path)
    return _cast_scaled(region, proxy)


def write_nifti(data: Array, affine: TypeAffine, path: Path) -> None:
    """Write ``(C, I, J, K)`` voxels (channels last on disk) with sform and qform set to ``affine``.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nii'
        >>> write_nifti(np.zeros((1, 2, 2, 2), np.uint8), np.eye(4), path)
        >>> read_nifti_header(path).spatial_shape
        (2, 2, 2)
    """
    channels = data.shape[0]
    raw = data[0] if channels == 1 else np.moveaxis(data, 0, -1)
    image = nib.Nifti1Image(np.asarray(raw), affine, dtype=raw.dtype)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))


#: ``.nii`` (region reads through a memory map) and ``.nii.gz`` (whole reads only).
NIFTI = Backend("nifti", (".nii",), read_nifti_header, read_nifti, read_nifti_region, write_nifti)
NIFTI_GZ = Backend(
    "nifti",
    (".nii.gz",),
    read_nifti_header,
    read_nifti,
    None,
    write_nifti,
    read_file_order=functools.partial(read_nifti, reorder=False),
)

__all__ = [
    "NIFTI",
    "NIFTI_GZ",
    "read_nifti",
    "read_nifti_header",
    "read_nifti_region",
    "write_nifti",
]
