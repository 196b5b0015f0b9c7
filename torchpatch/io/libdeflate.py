"""libdeflate's C API (through the ``deflate`` package), and one gzip member decoded by two threads.

:class:`LibDeflate` binds the functions the ``deflate`` package's extension
exports, so that libdeflate writes into a buffer of ours (numpy's, which asks
for huge pages) instead of a fresh ``bytearray``: 66 ms and 536 page faults
against 87 ms and 12 289 for a 512x512x96 int16 CT here. It also reports where
each member ends, so files of several members decode here too.

:meth:`LibDeflate.decompress_split` decodes one gzip member on two threads,
where torch is given more than one (``torch.get_num_threads()``) and the
compiled ``torchpatch.io.gzsplit`` is built. A deflate stream cannot be cut
anywhere: its blocks start at any bit, and a back-reference may copy bytes
from up to 32 KiB before the block it is in. So::

    stream  | block | block | ... | block | block | ... | final block |
            '-- thread 1: libdeflate -----'-- thread 2: gzsplit ------'
                         ends at a block start thread 2 found (p)

Thread 2 looks for a block header at 57 % of the compressed bits and
decodes from there to the end into 16-bit symbols, each a byte or a marker
for one of the 32 KiB before ``p``, unknown until thread 1 is done (on
CT-like data markers stay common to the end: runs of air copy earlier runs).
Thread 1 decodes from the start to ``p``: the bits from ``p`` on are
overwritten by an empty final block, so libdeflate stops there at full speed.
Then both threads replace the markers by the bytes they mark, chunk by chunk
(thread 1 starts on what thread 2 has published meanwhile), each chunk's
checksum taken as it is written and the checksums combined: the gzip
trailer's CRC32 and size (or a zlib stream's Adler-32) are checked over the
whole output. A wrongly guessed block start fails in decoding or in that
check; the caller then decodes the file whole, as before.

Measured here (2 cores, ``benchmarks/load.py``): gzsplit decodes 1.2-1.6x
slower per byte than libdeflate (MR-like to CT-like), hence the 57/43 split
(tried 0.5-0.7); a 512x512x96 int16 CT inflates in 46-48 ms against 61-64 ms
whole, a 160x192x160 one in 9.7-10.0 against 12.1 ms.
"""

from __future__ import annotations

import contextlib
import ctypes
import struct
import threading
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import torch

gzsplit: ModuleType | None
try:  # the compiled block finder and marker decoder (setup.py); optional
    from . import gzsplit
except ImportError:  # pragma: no cover - a build without a C compiler
    gzsplit = None

#: Members that decode to fewer bytes than this are decoded whole (a thread's start is not worth it).
SPLIT_ABOVE_BYTES = 4 << 20
#: Thread 2's buffer (2 bytes a decoded byte, of which the 43 % it fills are resident) is kept for the next file
#: up to this size; a larger one is taken fresh and let go after the call. Fresh memory here costs little with
#: huge pages: a 512x512x300 int16 CT inflated in 168-170 ms so, 159-178 ms kept, 220 ms whole.
KEEP_SYMBOLS_BYTES = 128 << 20
#: Where thread 2 starts looking for a block, as a fraction of the member's compressed bits.
SPLIT_AT = 0.57
#: How far thread 2 looks for a block start, in compressed bytes (real blocks are 10-100 KiB apart).
SEARCH_BYTES = 1 << 20
_WINDOW = 32768
_SLACK = 16  # symbols the compiled copies may write past a copy's end


class LibDeflate:
    """libdeflate's C API, as the ``deflate`` package's extension exports it (on Linux and macOS).

    Example:
        >>> import gzip, deflate
        >>> library = LibDeflate(deflate._deflate.__file__)
        >>> out = np.empty(6, np.uint8)
        >>> library.decompress_into(np.frombuffer(gzip.compress(b'abcdef'), np.uint8), out), bytes(out)
        (6, b'abcdef')
    """

    def __init__(self, library: str) -> None:
        lib = ctypes.CDLL(library)
        size_p = ctypes.POINTER(ctypes.c_size_t)
        self.alloc = lib.libdeflate_alloc_decompressor
        self.alloc.argtypes, self.alloc.restype = [], ctypes.c_void_p
        self.free = lib.libdeflate_free_decompressor
        self.free.argtypes, self.free.restype = [ctypes.c_void_p], None
        self.gzip = lib.libdeflate_gzip_decompress_ex
        self.gzip.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        self.gzip.argtypes += [size_p, size_p]
        self.gzip.restype = ctypes.c_int
        self.zlib = lib.libdeflate_zlib_decompress_ex
        self.zlib.argtypes, self.zlib.restype = self.gzip.argtypes, ctypes.c_int
        self.raw = lib.libdeflate_deflate_decompress_ex
        self.raw.argtypes, self.raw.restype = self.gzip.argtypes, ctypes.c_int
        self.crc32 = lib.libdeflate_crc32
        self.crc32.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
        self.crc32.restype = ctypes.c_uint32
        self.adler32 = lib.libdeflate_adler32
        self.adler32.argtypes, self.adler32.restype = self.crc32.argtypes, ctypes.c_uint32
        self._symbols: np.ndarray | None = None
        self._symbols_lock = threading.Lock()

    @contextlib.contextmanager
    def _decompressor(self) -> Iterator[int]:
        """A libdeflate decompressor, freed on leaving."""
        decompressor = self.alloc()
        if not decompressor:
            raise MemoryError("libdeflate could not allocate a decompressor")
        try:
            yield decompressor
        finally:
            self.free(decompressor)

    def zlib_into(self, data: np.ndarray, out: np.ndarray) -> int | None:
        """One zlib stream at the start of ``data`` decoded into ``out`` (Adler-32 checked): the bytes
        written, ``None`` where libdeflate fails (damage, or ``out`` too small)."""
        used, written = ctypes.c_size_t(), ctypes.c_size_t()
        with self._decompressor() as decompressor:
            status = self.zlib(
                decompressor,
                data.ctypes.data,
                len(data),
                out.ctypes.data,
                len(out),
                ctypes.byref(used),
                ctypes.byref(written),
            )
        return written.value if status == 0 else None

    def decompress_into(self, data: np.ndarray, out: np.ndarray) -> int | None:
        """Every member of ``data`` decoded into ``out``: the bytes written, ``None`` where libdeflate fails.

        libdeflate checks each member's CRC32 and ISIZE; it fails on damage,
        on trailing garbage and when ``out`` is too small.
        """
        used, written = ctypes.c_size_t(), ctypes.c_size_t()
        position = filled = 0
        with self._decompressor() as decompressor:
            while position < len(data):
                if data[position] == 0 and not data[position:].any():
                    break  # zero padding after the last member (a member starts with 0x1f)
                status = self.gzip(
                    decompressor,
                    data.ctypes.data + position,
                    len(data) - position,
                    out.ctypes.data + filled,
                    len(out) - filled,
                    ctypes.byref(used),
                    ctypes.byref(written),
                )
                if status != 0:
                    return None
                position += used.value
                filled += written.value
        return filled

    def decompress_split(self, data: np.ndarray, out: np.ndarray, start: int, container: str = "gzip") -> bool:
        """Whether the deflate stream at byte ``start`` of ``data`` was decoded into ``out`` (exactly its size,
        the trailer checked) by two threads.

        ``container`` says what holds the stream: ``"gzip"``, one member
        filling the file (its CRC32 and ISIZE checked), or ``"zlib"``, a
        stream followed by its Adler-32 (bytes after it are ignored, as
        :meth:`zlib_into` and SimpleITK do). ``False`` where it was not tried
        (a small file, one torch thread, no ``gzsplit``)
        or did not work out; ``data`` is as it was then, and the caller
        decodes it whole. ``data`` must be writable.
        """
        if not split_worth_it(len(out)) or gzsplit is None or len(data) < start + 16:
            return False
        if container == "gzip" and struct.unpack("<I", data[-4:].tobytes())[0] != len(out) % 2**32:
            return False  # several members, padding, or damage: not one member filling out
        if not self._symbols_lock.acquire(blocking=False):
            return False  # another thread is splitting a file: this one decodes whole
        try:
            symbols = self._symbols_for(len(out))
            first_bit, last_bit = 8 * start, 8 * (len(data) - (8 if container == "gzip" else 4))
            begin = first_bit + int((last_bit - first_bit) * SPLIT_AT)
            found = gzsplit.find_block(data, begin, min(begin + 8 * SEARCH_BYTES, last_bit), symbols)
            if found is None:
                return False
            cut, resume, count = found
            spliced = slice(cut >> 3, (cut >> 3) + 3)
            saved = data[spliced].copy()
            try:
                return self._split_at(data, out, symbols, (start, cut, resume, count), container == "gzip")
            finally:
                data[spliced] = saved
        finally:
            self._symbols_lock.release()

    def _symbols_for(self, size: int) -> np.ndarray:
        """Thread 2's symbols for a member of ``size`` bytes: room for all but the 32 KiB thread 1 decodes at
        least, in a buffer kept for the next file up to :data:`KEEP_SYMBOLS_BYTES` (recycled buffers of the
        readers' size fault no memory in: the 512x512x96 CT took 95 ms with a fresh one, 82 ms whole)."""
        if 2 * (size + _SLACK) > KEEP_SYMBOLS_BYTES:
            return np.empty(size + _SLACK, np.uint16)
        if self._symbols is None or len(self._symbols) < size + _SLACK:
            self._symbols = None
            self._symbols = np.empty(size + _SLACK, np.uint16)
        return self._symbols

    def _split_at(
        self, data: np.ndarray, out: np.ndarray, symbols: np.ndarray, where: tuple[int, int, int, int], gzip: bool
    ) -> bool:
        """Thread 1 from byte ``start`` up to bit ``cut``, thread 2 from ``resume`` (the block at ``cut``
        decoded into ``count`` symbols already); the markers resolved by both, the gzip or zlib trailer checked."""
        start, cut, resume, count = where
        # an empty final block (BFINAL 1, BTYPE 01, end of block 0000000) over the bits at cut
        keep = int(data[cut >> 3]) & ((1 << (cut & 7)) - 1)
        bits = keep | (0b011 << (cut & 7))
        data[cut >> 3 : (cut >> 3) + 3] = [bits & 0xFF, (bits >> 8) & 0xFF, 0]
        first_end = (cut + 10 + 7) >> 3
        parts = _Parts(self, symbols, out, gzip)

        def decode_first() -> None:
            try:
                used, written = ctypes.c_size_t(), ctypes.c_size_t()
                with self._decompressor() as decompressor:
                    status = self.raw(
                        decompressor,
                        data.ctypes.data + start,
                        first_end - start,
                        out.ctypes.data,
                        len(out),
                        ctypes.byref(used),
                        ctypes.byref(written),
                    )
                if status == 0 and used.value == first_end - start and _WINDOW <= written.value <= len(out):
                    parts.first_done(written.value)
            finally:
                parts.window_known.set()
            parts.resolve()  # thread 2's symbols published so far, or all once it is done

        thread = threading.Thread(target=decode_first, name="torchpatch-inflate")
        thread.start()
        try:
            second = gzsplit.decode(data, resume, symbols, count, parts.progress)  # type: ignore[union-attr]
            parts.second_done(0 if second is None else second[1])
            parts.window_known.wait()
            parts.resolve()
        finally:
            thread.join()
        if second is None or parts.first_size is None:
            return False
        end_bit, total = second
        end = (end_bit + 7) >> 3  # the byte after the stream
        if parts.first_size + total != len(out) or end + (8 if gzip else 4) > len(data):
            return False
        if gzip and end != len(data) - 8:
            return False
        stored = struct.unpack("<I" if gzip else ">I", data[end : end + 4].tobytes())[0]
        return parts.checksum() == stored


class _Parts:
    """Thread 2's symbols resolved into ``out`` by whichever thread claims them, chunk by chunk, once thread 1
    has decoded the bytes they mark; each chunk's checksum taken as it is written."""

    #: Symbols a claim resolves (about 0.2 ms).
    CHUNK = 1 << 19

    def __init__(self, library: LibDeflate, symbols: np.ndarray, out: np.ndarray, gzip: bool) -> None:
        self.library, self.symbols, self.out, self.gzip = library, symbols, out, gzip
        self.progress = np.zeros(1, np.int64)  # what thread 2 has published
        self.window_known = threading.Event()
        self.first_size: int | None = None
        self._first_sum = 0
        self._total: int | None = None  # thread 2's symbols, once it is done
        self._next = 0
        self._sums: dict[int, tuple[int, int]] = {}  # chunk start: its checksum, its length
        self._lock = threading.Lock()

    def _sum(self, address: int, length: int) -> int:
        return self.library.crc32(0, address, length) if self.gzip else self.library.adler32(1, address, length)

    def first_done(self, size: int) -> None:
        self._first_sum = self._sum(self.out.ctypes.data, size)
        self.first_size = size

    def second_done(self, total: int) -> None:
        with self._lock:
            self._total = total

    def resolve(self) -> None:
        """Claim and resolve chunks until none is left that thread 2 has published (all, once it is done)."""
        size = self.first_size
        if size is None:
            return
        window = self.out[size - _WINDOW : size]
        while True:
            with self._lock:
                low = self._next
                ready = self._total if self._total is not None else int(gzsplit.published(self.progress))  # type: ignore[union-attr]
                high = min(low + self.CHUNK, ready, len(self.out) - size)
                if high <= low:
                    return
                self._next = high
            target = self.out[size + low : size + high]
            gzsplit.resolve(self.symbols[low:high], window, target)  # type: ignore[union-attr]
            self._sums[low] = (self._sum(target.ctypes.data, high - low), high - low)

    def checksum(self) -> int:
        """The checksum of all of out, from thread 1's part and the chunks' in order."""
        total = self._first_sum
        for low in sorted(self._sums):
            part, length = self._sums[low]
            total = gzsplit.crc32_combine(total, part, length) if self.gzip else _adler32_combine(total, part, length)  # type: ignore[union-attr]
        return total


def _adler32_combine(first: int, second: int, length: int) -> int:
    """The Adler-32 of a followed by b from theirs and b's ``length``: b's byte sums start from a's (A = 1 +
    the bytes, B = the sum of the A's; all modulo 65521): A_ab = A_a + A_b - 1, B_ab = B_a + B_b + length (A_a - 1).

    Example:
        >>> import zlib
        >>> _adler32_combine(zlib.adler32(b'abc'), zlib.adler32(b'defg'), 4) == zlib.adler32(b'abcdefg')
        True
    """
    modulus = 65521
    low_a, high_a, low_b, high_b = first & 0xFFFF, first >> 16, second & 0xFFFF, second >> 16
    low = (low_a + low_b - 1) % modulus
    high = (high_a + high_b + length * (low_a - 1)) % modulus
    return high << 16 | low


def split_worth_it(size: int) -> bool:
    """Whether a gzip member of ``size`` decoded bytes is decoded by two threads (torch given more than one).

    Example:
        >>> split_worth_it(1 << 10)
        False
    """
    return size >= SPLIT_ABOVE_BYTES and torch.get_num_threads() > 1


def load(library: str | None) -> LibDeflate | None:
    """:class:`LibDeflate` bound to ``library`` (the ``deflate`` package's extension); ``None`` if it cannot be.

    Example:
        >>> load(None) is None
        True
    """
    if library is None:
        return None
    try:
        return LibDeflate(library)
    except (OSError, AttributeError):  # pragma: no cover - a build that hides libdeflate's symbols
        return None


__all__ = [
    "KEEP_SYMBOLS_BYTES",
    "SEARCH_BYTES",
    "SPLIT_ABOVE_BYTES",
    "SPLIT_AT",
    "LibDeflate",
    "load",
    "split_worth_it",
]
