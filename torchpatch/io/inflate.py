"""Gzip decoding with libdeflate, every member's CRC32 and size checked; zlib when libdeflate is missing.

Two ways to decode a ``.gz`` file, both checking the gzip trailer (CRC32 and
ISIZE) of every member, since a file may hold several (``cat a.gz b.gz`` and
``bgzip`` write such files; they are valid gzip):

* :func:`inflate_file`, the whole file at once: libdeflate (the ``deflate``
  package) decodes 2.2-3.3x faster than zlib on CT- and MR-like volumes here,
  ahead of ISA-L (1.3-1.8x behind it) and zlib-ng (benchmarks/load.py); a file
  libdeflate refuses, and every file when ``deflate`` is not importable, goes
  through the stdlib's zlib, which names what is wrong;
* :func:`iter_inflate`, bounded chunks from zlib, for volumes too large to hold
  their compressed and decompressed bytes at once
  (:func:`should_stream`, above :data:`STREAM_ABOVE_BYTES`).

A corrupt or truncated file raises ``ValueError`` naming it: "corrupt gzip
file '<path>': CRC check failed ..." and the like.

::

    member = header (10 bytes + optional fields) | deflate stream | CRC32 | ISIZE
    file   = member | member | ... | zero padding
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import buffers, libdeflate

_deflate: Any
try:  # libdeflate: the fastest well-kept inflater with wheels everywhere (benchmarks/load.py)
    import deflate as _deflate
except ImportError:  # pragma: no cover - exercised by setting DECODER = "zlib" in the tests
    _deflate = None


# libdeflate's symbols are exported by the deflate package's compiled module
_LIBDEFLATE = libdeflate.load(getattr(getattr(_deflate, "_deflate", None), "__file__", None))


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a modest 8 GiB
        return 8 * 2**30


#: Decompressed sizes above this (a quarter of the RAM) stream in chunks instead of whole.
STREAM_ABOVE_BYTES: int = _physical_memory() // 4
#: Decompressed sizes above this (a sixteenth of the RAM) are decoded on one thread: the parts' 16-bit symbols
#: take up to 0.9x the volume's size beside it and the compressed file (libdeflate.decompress_split).
SPLIT_BELOW_BYTES: int = STREAM_ABOVE_BYTES // 4
#: Uncompressed bytes per chunk when streaming: large enough for zlib's speed, small next to RAM.
CHUNK_BYTES: int = 16 * 2**20
#: The whole-file decoder, the fastest available: ``"libdeflate"`` (its C API, into our buffer),
#: ``"deflate"`` (the ``deflate`` package's Python API) or ``"zlib"`` (the standard library).
DECODER: str = "libdeflate" if _LIBDEFLATE is not None else "deflate" if _deflate is not None else "zlib"

_MAGIC = b"\x1f\x8b"
_FTEXT, _FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 1, 2, 4, 8, 16
_READ_BYTES = 2**20
_MAX_RATIO = 1032


def should_stream(uncompressed_bytes: int) -> bool:
    """Whether a file of ``uncompressed_bytes`` is decoded in chunks rather than whole.

    Example:
        >>> should_stream(1000), should_stream(STREAM_ABOVE_BYTES + 1)
        (False, True)
    """
    return uncompressed_bytes > STREAM_ABOVE_BYTES


def inflate_file(path: Path, size_hint: int = 0, offset: int = 0) -> np.ndarray:
    """All uncompressed bytes of the gzip file ``path`` (a ``uint8`` array), every member checked.

    Args:
        path: A gzip file (one or more members, zero padding allowed at the end).
        size_hint: The expected uncompressed size, if known (a NIfTI header
            gives it): libdeflate decodes into a buffer of that size.
        offset: Where the gzip data starts in the file (after a NRRD's text
            header); the bytes before it are not read.

    Raises:
        ValueError: If the file is not gzip, is truncated, or fails a CRC32 or
            size check; the message names ``path``.

    Example:
        >>> import gzip, tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.gz'
        >>> _ = path.write_bytes(gzip.compress(b'abc') + gzip.compress(b'def'))
        >>> bytes(inflate_file(path))
        b'abcdef'
    """
    data = buffers.read_file(path, offset)
    # Deflate expands at most 1032-fold: a larger hint comes from a damaged header.
    size_hint = min(size_hint, _MAX_RATIO * len(data))
    if size_hint > 0 and DECODER == "libdeflate" and _LIBDEFLATE is not None:
        out = buffers.RECYCLER.take(size_hint)
        start = _stream_start(data) if _split(size_hint) else None
        if start is not None and _LIBDEFLATE.decompress_split(data, out, start):
            return out
        if _LIBDEFLATE.decompress_into(data, out) == size_hint:
            return out
    if size_hint > 0 and DECODER == "deflate":
        fast = _inflate_single_member(data, size_hint)
        if fast is not None:
            return fast
    # A wrong hint, a damaged file, or no libdeflate: zlib decodes (and names
    # what is wrong) member by member.
    grown = bytearray(max(size_hint, int.from_bytes(data[-4:], "little") if len(data) >= 4 else 0))
    filled = 0
    for chunk in _iter_members(data.data, path):
        end = filled + len(chunk)
        if end > len(grown):
            grown.extend(bytes(end - len(grown)))
        grown[filled:end] = chunk
        filled = end
    del grown[filled:]
    return np.frombuffer(grown, np.uint8)


def _split(size: int) -> bool:
    """Whether a stream of ``size`` decoded bytes is decoded by several threads (at most :data:`SPLIT_BELOW_BYTES`)."""
    return libdeflate.split_worth_it(size) and size <= SPLIT_BELOW_BYTES


def _stream_start(data: np.ndarray) -> int | None:
    """Where the deflate stream of the gzip member at the start of ``data`` begins; ``None`` if not gzip."""
    reader = _Source(data.data)
    if reader.take(2) != _MAGIC:
        return None
    try:
        _skip_header(reader, Path("<buffer>"))
    except ValueError:
        return None
    return reader.position


def _inflate_single_member(data: np.ndarray, size: int) -> np.ndarray | None:
    """The ``deflate`` package's decoding of a single-member gzip file of ``size`` bytes, else ``None``.

    Its Python API checks the member's CRC32 and ISIZE but stops after the
    first member: the file's own last 8 bytes must be that trailer, or the
    file has more (or was damaged), and zlib takes over.
    """
    try:
        out = _deflate.gzip_decompress(data, size)
    except _deflate.DeflateError:
        return None
    if len(out) != size or len(data) < 18:
        return None
    crc, isize = struct.unpack("<II", data[-8:].tobytes())
    if isize != size % 2**32 or crc != _deflate.crc32(out):
        return None
    return np.frombuffer(out, np.uint8)


def inflate_zlib_file(path: Path, size: int, offset: int = 0, compressed_bytes: int | None = None) -> np.ndarray:
    """The ``size`` bytes of the zlib stream at ``offset`` in ``path`` (a MetaImage's ``CompressedData``).

    libdeflate decodes into a recycled buffer; the standard library's zlib
    when it is missing, or fails, to name what is wrong. The stream's Adler-32
    is checked; bytes after its end are ignored, as SimpleITK does.

    Args:
        path: The file.
        size: The uncompressed size its header promises.
        offset: Where the stream starts.
        compressed_bytes: The stream's length where the header gives it,
            else up to the end of the file.

    Raises:
        ValueError: If the stream is damaged, or decodes to more or fewer than
            ``size`` bytes; the message names ``path``.

    Example:
        >>> import tempfile, zlib
        >>> path = Path(tempfile.mkdtemp()) / 'x.mha'
        >>> _ = path.write_bytes(b'head' + zlib.compress(b'abcdef'))
        >>> bytes(inflate_zlib_file(path, 6, offset=4))
        b'abcdef'
    """
    data = buffers.read_file(path, offset, compressed_bytes)
    if size > _MAX_RATIO * len(data) + 64:  # deflate expands at most 1032-fold: never allocated
        raise ValueError(_short_zlib(path, size))
    if DECODER == "libdeflate" and _LIBDEFLATE is not None:
        out = buffers.RECYCLER.take(size)
        header = int.from_bytes(data[:2].tobytes(), "big") if len(data) >= 2 else 0
        plain = header >> 8 & 0x0F == 8 and header % 31 == 0 and not header & 0x20  # deflate, no preset dictionary
        if plain and _split(size) and _LIBDEFLATE.decompress_split(data, out, 2, "zlib"):
            return out
        if _LIBDEFLATE.zlib_into(data, out) == size:
            return out
    decoder = zlib.decompressobj()
    try:
        decoded = decoder.decompress(data.data, size)
    except zlib.error as error:
        raise ValueError(f"corrupt zlib stream in {str(path)!r}: {error}") from error
    if len(decoded) < size:
        raise ValueError(_short_zlib(path, size))
    if not decoder.eof:
        raise ValueError(f"corrupt zlib stream in {str(path)!r}: it holds more than the {size} bytes promised")
    writable = buffers.RECYCLER.take(size)  # the caller may reorder or byte-swap in place
    writable[:] = np.frombuffer(decoded, np.uint8)
    return writable


def _short_zlib(path: Path, size: int) -> str:
    return f"truncated or corrupt zlib stream in {str(path)!r}: it holds fewer than the {size} bytes promised"


def iter_inflate(path: Path, chunk_bytes: int | None = None) -> Iterator[bytes]:
    """The uncompressed bytes of the gzip file ``path`` in chunks of at most ``chunk_bytes``.

    Memory stays bounded: the compressed file is read 1 MiB at a time. Each
    member's CRC32 and size are checked when its trailer is reached, so a
    corrupt file raises only after the chunks before the damage were yielded.

    Raises:
        ValueError: If the file is not gzip, is truncated, or fails a check;
            the message names ``path``.

    Example:
        >>> import gzip, tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'x.gz'
        >>> _ = path.write_bytes(gzip.compress(b'abcdef'))
        >>> [bytes(chunk) for chunk in iter_inflate(path, chunk_bytes=4)]
        [b'abcd', b'ef']
    """
    with open(path, "rb") as stream:
        yield from _iter_members(stream, path, chunk_bytes or CHUNK_BYTES)


class _Source:
    """Compressed bytes from a file (read 1 MiB at a time) or a buffer, consumed front to back."""

    def __init__(self, source: Any) -> None:
        self._stream = None if isinstance(source, memoryview) else source
        self._buffer: Any = source if self._stream is None else memoryview(b"")
        self._position = 0

    def take(self, count: int) -> bytes:
        """Exactly ``count`` bytes, fewer only at the end of the file."""
        parts = []
        while count > 0:
            piece = self._buffer[self._position : self._position + count]
            if len(piece) == 0 and not self._refill():
                break
            parts.append(bytes(piece))
            self._position += len(piece)
            count -= len(piece)
        return b"".join(parts)

    def available(self) -> Any:
        """The unconsumed bytes in hand (refilled when empty; empty at the end)."""
        if self._position >= len(self._buffer):
            self._refill()
        return self._buffer[self._position :]

    def rest_is_zero(self) -> bool:
        """Whether every byte left is zero (consumes them)."""
        while len(rest := self.available()) > 0:
            if bytes(rest).strip(b"\x00"):
                return False
            self.consume(len(rest))
        return True

    @property
    def position(self) -> int:
        """Bytes taken from a buffer so far."""
        return self._position

    def consume(self, count: int) -> None:
        self._position += count

    def give_back(self, count: int) -> None:
        self._position -= count

    def _refill(self) -> bool:
        if self._stream is None:
            return False
        self._buffer, self._position = memoryview(self._stream.read(_READ_BYTES)), 0
        return len(self._buffer) > 0


def _iter_members(source: Any, path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Every member of a gzip stream (a buffer or a binary file), decoded in checked chunks."""
    reader = _Source(source)
    members = 0
    while True:
        magic = reader.take(2)
        if magic == b"" and members > 0:
            return
        if members > 0 and magic.strip(b"\x00") == b"" and reader.rest_is_zero():
            return  # zero padding after the last member (what gzip itself allows)
        if magic != _MAGIC:
            raise ValueError(_corrupt(path, "not a gzip file" if members == 0 else "trailing garbage after the data"))
        _skip_header(reader, path)
        yield from _inflate_member(reader, path, chunk_bytes)
        members += 1


def _skip_header(reader: _Source, path: Path) -> None:
    fixed = reader.take(8)
    if len(fixed) < 8:
        raise ValueError(_corrupt(path, "truncated gzip header"))
    method, flags = fixed[0], fixed[1]
    if method != 8:
        raise ValueError(_corrupt(path, f"unknown compression method {method}"))
    if flags & _FEXTRA:
        length = reader.take(2)
        if len(length) < 2 or len(reader.take(int.from_bytes(length, "little"))) < int.from_bytes(length, "little"):
            raise ValueError(_corrupt(path, "truncated gzip header"))
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            while (byte := reader.take(1)) != b"\x00":
                if byte == b"":
                    raise ValueError(_corrupt(path, "truncated gzip header"))
    if flags & _FHCRC and len(reader.take(2)) < 2:
        raise ValueError(_corrupt(path, "truncated gzip header"))


def _inflate_member(reader: _Source, path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """One member's deflate stream in chunks, then its CRC32 and ISIZE checked."""
    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
    crc = size = 0
    pending: Any = b""
    while not decoder.eof:
        if not pending:
            pending = reader.available()
            reader.consume(len(pending))
        try:
            chunk = decoder.decompress(pending, chunk_bytes)
        except zlib.error as error:
            raise ValueError(_corrupt(path, str(error))) from error
        if len(pending) == 0 and not chunk and not decoder.eof:  # input gone, output drained
            raise ValueError(_corrupt(path, "compressed file ended before the end-of-stream marker was reached"))
        pending = decoder.unconsumed_tail
        if chunk:
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            yield chunk
    reader.give_back(len(decoder.unused_data))
    trailer = reader.take(8)
    if len(trailer) < 8:
        raise ValueError(_corrupt(path, "compressed file ended before the gzip trailer"))
    stored_crc, stored_size = struct.unpack("<II", trailer)
    if stored_crc != crc:
        raise ValueError(_corrupt(path, f"CRC check failed {hex(stored_crc)} != {hex(crc)}"))
    if stored_size != size % 2**32:
        raise ValueError(_corrupt(path, f"incorrect length check: trailer says {stored_size}, data has {size}"))


def _corrupt(path: Path, why: str) -> str:
    return f"corrupt gzip file {str(path)!r}: {why}"


__all__ = [
    "CHUNK_BYTES",
    "DECODER",
    "SPLIT_BELOW_BYTES",
    "STREAM_ABOVE_BYTES",
    "inflate_file",
    "inflate_zlib_file",
    "iter_inflate",
    "should_stream",
]
