"""The voxels of NRRD and MetaImage files, read by torchpatch where their text header allows.

A ``.nrrd`` or ``.mha`` file is a text header followed by the voxels, raw or
compressed (NRRD: gzip; MetaImage: a zlib stream). SimpleITK inflates them
with zlib-ng; libdeflate takes 0.6-0.7x its time on CT- and MR-like volumes
(``benchmarks/load.py``). So when the header describes a plain 3D scalar
volume stored in the file itself, :func:`voxel_layout` says where its
voxels are and :func:`read_voxels` decodes them (libdeflate, or zlib without
it) straight into a recycled buffer, reordered in place into the
``(C, I, J, K)`` C order the image hands to torch. Anything else (detached
data files, vectors, 2D or 4D, text or bzip2 encodings, skipped lines, a
volume too large to hold twice) gives ``None`` and SimpleITK reads the file
as before. The geometry always comes from SimpleITK's reading of the header
(:func:`torchpatch.io.sitk.read_sitk`), which also checks that the layout
read here agrees with it::

    NRRD0004                        ObjectType = Image
    type: short                     NDims = 3
    dimension: 3                    BinaryDataByteOrderMSB = False
    sizes: 160 192 160              CompressedData = True
    endian: little                  DimSize = 160 192 160
    encoding: gzip                  ElementType = MET_SHORT
    <blank line>                    ElementDataFile = LOCAL
    <voxels>                        <voxels>
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import buffers
from .base import Array
from .inflate import inflate_file, inflate_zlib_file, should_stream
from .order import c_order

#: Bytes read to find the end of a header; a longer header is left to SimpleITK.
HEADER_BYTES = 1 << 16

#: NRRD's names of its scalar types (the spec's aliases) and their numpy types.
NRRD_TYPES: dict[str, str] = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(
        ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
        "u2",
    ),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(
        ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
        "i8",
    ),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}

#: MetaImage's element types of a fixed size and their numpy types.
META_TYPES: dict[str, str] = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}


@dataclass(frozen=True)
class VoxelLayout:
    """Where and how a file stores its voxels.

    Attributes:
        offset: The first byte of the voxels (or of their compressed stream).
        encoding: ``"raw"``, ``"gzip"`` or ``"zlib"``.
        dtype: The stored type, with the file's byte order.
        shape: ``(I, J, K)``, the first axis fastest in the file.
        compressed_bytes: The compressed stream's length where the header
            gives it (MetaImage's ``CompressedDataSize``).
        data_file: The file holding the voxels when it is not the header's
            own (``.nhdr``, ``.mhd``); ``offset`` is then within it.

    Example:
        >>> VoxelLayout(200, 'gzip', np.dtype('<i2'), (4, 3, 2)).nbytes
        48
    """

    offset: int
    encoding: str
    dtype: np.dtype[Any]
    shape: tuple[int, int, int]
    compressed_bytes: int | None = None
    data_file: Path | None = None

    @property
    def nbytes(self) -> int:
        """The voxels' size once decoded."""
        return math.prod(self.shape) * self.dtype.itemsize


def voxel_layout(path: Path) -> VoxelLayout | None:
    """Where the voxels of the NRRD or MetaImage file ``path`` are, if torchpatch reads them itself.

    The voxels may follow the header (``.nrrd``, ``.mha``) or lie in one
    file it names (``.nhdr``, ``.mhd``: ``data file:``, ``ElementDataFile``,
    relative to the header's folder). ``None`` for any file it leaves to
    SimpleITK: not NRRD or MetaImage, not a 3D scalar volume, voxels in
    several files or a missing one, an encoding other than raw and gzip
    (NRRD) or raw and zlib (MetaImage), skipped lines, or compressed voxels
    :func:`~torchpatch.io.inflate.should_stream` would stream (raw voxels
    of any size are read here: whole into one buffer, or a box at a time).

    Example:
        >>> import tempfile, gzip
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> head = b'NRRD0004\\ntype: short\\ndimension: 3\\nsizes: 4 3 2\\nendian: little\\nencoding: gzip\\n\\n'
        >>> _ = path.write_bytes(head + gzip.compress(bytes(48)))
        >>> layout = voxel_layout(path)
        >>> layout.encoding, layout.shape, layout.offset == len(head)
        ('gzip', (4, 3, 2), True)
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(HEADER_BYTES)
            whole = len(head) < HEADER_BYTES  # a detached header ends with its file
    except OSError:
        return None
    if head.startswith(b"NRRD000"):
        layout = _nrrd_layout(head, whole)
    elif b"ElementDataFile" in head:
        layout = _meta_layout(head)
    else:
        layout = None
    if layout is None or (layout.encoding != "raw" and should_stream(layout.nbytes)):
        return None  # raw voxels are never held twice: only compressed ones stream
    if layout.data_file is None:
        return layout
    data_file = layout.data_file if layout.data_file.is_absolute() else path.parent / layout.data_file
    try:
        size = data_file.stat().st_size
    except OSError:
        return None  # SimpleITK says what is missing
    offset = layout.offset if layout.offset >= 0 else size - layout.nbytes  # -1: the voxels end the file
    if offset < 0:
        return None
    return replace(layout, data_file=data_file, offset=offset)


def _lines(head: bytes) -> Iterator[tuple[str, int]]:
    """Each header line (without its end of line) and the offset of the byte after it."""
    start = 0
    while (end := head.find(b"\n", start)) >= 0:
        yield head[start:end].rstrip(b"\r").decode("latin-1"), end + 1
        start = end + 1


def _sizes(text: str, ndim: int) -> tuple[int, int, int] | None:
    try:
        values = tuple(int(value) for value in text.split())
    except ValueError:
        return None
    if len(values) != ndim or ndim != 3 or min(values) <= 0:
        return None
    return values[0], values[1], values[2]


def _nrrd_layout(head: bytes, whole: bool = False) -> VoxelLayout | None:
    fields: dict[str, str] = {}
    for number, (line, after) in enumerate(_lines(head + b"\n" if whole else head)):
        if number == 0 or line.startswith("#"):
            continue
        if not line:  # the blank line that ends the header: the voxels follow
            return _nrrd_fields_layout(fields, after)
        key, colon, value = line.partition(": ")
        if colon and ":=" not in key:
            fields[key.strip().lower()] = value.strip()
    # No blank line: the header ends with its file (``.nhdr``) or is longer than HEADER_BYTES.
    return _nrrd_fields_layout(fields, -1) if whole else None


def _nrrd_fields_layout(fields: dict[str, str], offset: int) -> VoxelLayout | None:
    encoding = {"raw": "raw", "gzip": "gzip", "gz": "gzip"}.get(fields.get("encoding", "").lower())
    kind = NRRD_TYPES.get(fields.get("type", "").lower())
    if encoding is None or kind is None or fields.get("dimension") != "3":
        return None
    if any(fields.get(key, "0") != "0" for key in ("line skip", "lineskip")):
        return None
    skip = fields.get("byte skip", fields.get("byteskip", "0"))
    data_file = fields.get("data file", fields.get("datafile"))
    if data_file is None and (skip != "0" or offset < 0):
        return None  # voxels after skipped bytes of the header's own file, or no voxels at all
    if data_file is not None:
        if not data_file or data_file.split()[0] == "LIST" or "%" in data_file or len(data_file.split()) > 1:
            return None  # several data files
        if skip not in ("0", "-1") and not (skip.isdigit() and encoding == "raw"):
            return None
        if skip == "-1" and encoding != "raw":
            return None
        offset = -1 if skip == "-1" else int(skip)
    shape = _sizes(fields.get("sizes", ""), 3)
    dtype = np.dtype(kind)
    endian = fields.get("endian", "").lower()
    if shape is None or (dtype.itemsize > 1 and endian not in ("little", "big")):
        return None
    order = dtype.newbyteorder(">" if endian == "big" else "<")
    return VoxelLayout(offset, encoding, order, shape, data_file=None if data_file is None else Path(data_file))


def _meta_layout(head: bytes) -> VoxelLayout | None:
    fields: dict[str, str] = {}
    for line, after in _lines(head):
        key, equals, value = line.partition("=")
        if not equals:
            continue
        key, value = key.strip(), value.strip()
        if key == "ElementDataFile":
            return _meta_fields_layout(fields, value, after)
        fields[key] = value
    return None


def _meta_fields_layout(fields: dict[str, str], data_file: str, offset: int) -> VoxelLayout | None:
    kind = META_TYPES.get(fields.get("ElementType", ""))
    if kind is None or fields.get("NDims") != "3":
        return None
    if fields.get("ObjectType", "Image") != "Image" or fields.get("BinaryData", "True") != "True":
        return None
    if fields.get("ElementNumberOfChannels", "1") != "1":
        return None
    local = data_file.upper() == "LOCAL"
    header_size = fields.get("HeaderSize", "0")
    if local and header_size != "0":
        return None
    if not local:
        if not data_file or data_file.upper() == "LIST" or "%" in data_file or len(data_file.split()) > 1:
            return None  # several data files
        if header_size != "-1" and not header_size.isdigit():
            return None
        offset = int(header_size)
    shape = _sizes(fields.get("DimSize", ""), 3)
    msb = fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False"))
    compressed = fields.get("CompressedData", "False")
    if shape is None or msb not in ("True", "False") or compressed not in ("True", "False"):
        return None
    compressed_bytes = None
    if compressed == "True" and "CompressedDataSize" in fields:
        try:
            compressed_bytes = int(fields["CompressedDataSize"])
        except ValueError:
            return None
    if compressed == "True" and offset < 0:
        return None  # -1 (the voxels end the file) is for raw voxels
    dtype = np.dtype(kind).newbyteorder(">" if msb == "True" else "<")
    encoding = "zlib" if compressed == "True" else "raw"
    return VoxelLayout(offset, encoding, dtype, shape, compressed_bytes, None if local else Path(data_file))


def read_voxels(path: Path, layout: VoxelLayout, reorder: bool = True) -> Array:
    """The voxels ``layout`` describes, as a ``(1, I, J, K)`` C-ordered array of the native byte order.

    Without ``reorder`` the array is left in the file's order (F order).

    Raises:
        ValueError: If the file holds fewer voxels than its header promises,
            or its compressed stream is damaged; the message names ``path``.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> head = b'NRRD0004\\ntype: uchar\\ndimension: 3\\nsizes: 3 2 1\\nencoding: raw\\n\\n'
        >>> _ = path.write_bytes(head + bytes(range(6)))
        >>> read_voxels(path, voxel_layout(path))[0, :, :, 0].tolist()
        [[0, 3], [1, 4], [2, 5]]
    """
    size = layout.nbytes
    source = _source(path, layout)
    if layout.encoding == "gzip":
        data = inflate_file(source, size, offset=layout.offset)
    elif layout.encoding == "zlib":
        data = inflate_zlib_file(source, size, layout.offset, layout.compressed_bytes)
    else:
        data = buffers.read_file(source, layout.offset, size)
    if len(data) < size:
        raise _truncated(path, layout, len(data))
    raw = np.frombuffer(data, layout.dtype, math.prod(layout.shape)).reshape(layout.shape, order="F")
    if not layout.dtype.isnative:
        raw = raw.view(raw.dtype.newbyteorder("="))  # the buffer is ours: swapped where it lies
        raw.byteswap(inplace=True)
    return c_order(raw[None], reuse=True) if reorder else raw[None]


def read_raw_region(path: Path, layout: VoxelLayout, index_ini: Sequence[int], index_fin: Sequence[int]) -> Array:
    """The voxels ``[index_ini, index_fin)`` of raw ``layout`` voxels, reading only their bytes (a memory map).

    Returns a ``(1, i, j, k)`` C-ordered array of the native byte order.

    Raises:
        ValueError: If the voxels are compressed, or the file is shorter
            than the layout says.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.nrrd'
        >>> head = b'NRRD0004\\ntype: uchar\\ndimension: 3\\nsizes: 3 2 1\\nencoding: raw\\n\\n'
        >>> _ = path.write_bytes(head + bytes(range(6)))
        >>> read_raw_region(path, voxel_layout(path), (1, 0, 0), (3, 2, 1))[0, :, :, 0].tolist()
        [[1, 4], [2, 5]]
    """
    source = _source(path, layout)
    if layout.encoding != "raw":
        raise ValueError(f"region reads need raw voxels; {str(source)!r} holds {layout.encoding} ones")
    held = source.stat().st_size - layout.offset
    if held < layout.nbytes:
        raise _truncated(path, layout, max(held, 0))
    (i0, j0, k0), (i1, j1, k1) = index_ini, index_fin
    voxels = np.memmap(source, layout.dtype, "r", layout.offset, layout.shape, order="F")
    box = np.asarray(voxels[i0:i1, j0:j1, k0:k1]).astype(layout.dtype.newbyteorder("="))
    del voxels
    return c_order(box[None], reuse=True)


def _source(path: Path, layout: VoxelLayout) -> Path:
    """The file holding the voxels: the header's own, or the data file it names."""
    return path if layout.data_file is None else layout.data_file


def _truncated(path: Path, layout: VoxelLayout, held: int) -> ValueError:
    return ValueError(
        f"truncated image file {str(_source(path, layout))!r}: the header {str(path)!r} promises {layout.nbytes} "
        f"bytes of voxels from byte {layout.offset}, the file holds {held}"
    )


__all__ = [
    "HEADER_BYTES",
    "META_TYPES",
    "NRRD_TYPES",
    "VoxelLayout",
    "read_raw_region",
    "read_voxels",
    "voxel_layout",
]
