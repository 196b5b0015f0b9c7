"""libdeflate's C API (through the ``deflate`` package), and one gzip member decoded by several threads.

:class:`LibDeflate` binds the functions the ``deflate`` package's extension
exports, so that libdeflate writes into a buffer of ours (numpy's, which asks
for huge pages) instead of a fresh ``bytearray``: 66 ms and 536 page faults
against 87 ms and 12 289 for a 512x512x96 int16 CT here. It also reports where
each member ends, so files of several members decode here too.

:meth:`LibDeflate.decompress_split` decodes one gzip member (or zlib stream)
of 4 MiB or more on torch's threads (``torch.get_num_threads()``, at most the
process's cores, :data:`MAX_PARTS` and one per :data:`PART_BYTES` beyond two),
where the compiled ``torchpatch.io.gzsplit`` is built. A deflate stream cannot
be cut anywhere: its blocks start at any bit, and a back-reference may copy
bytes from up to 32 KiB before the block it is in. So::

    stream  | block | ... | block | ... | block | ... | final block |
            '- part 0: libdeflate -'- part 1: gzsplit -'- part 2 ...  -'
                   ends at the block start found for part 1

For each later part a block header is looked for at its share of the
compressed bits (:func:`split_points`: part 0 gets the larger share, 57 %
with two parts) and the part is decoded from there, up to the next part's
block, into 16-bit symbols, each a byte or a marker for one of the 32 KiB
before the part, unknown until the part before is resolved (on CT-like data
markers stay common to the end: copies of copies). Part 0 is decoded by
libdeflate from the start: the bits where part 1 starts are overwritten by an
empty final block (and put back after), so libdeflate stops there at full
speed. Then every free thread replaces markers by the bytes they mark: each
part's last 32 KiB in turn (the next part's window), the rest chunk by chunk
(:class:`~torchpatch.io.gzparts.Parts`), each range's checksum taken as it is written and the
checksums combined: the gzip trailer's CRC32 and size (or a zlib stream's
Adler-32) are checked over the whole output. A wrongly guessed block start
fails in decoding or in that check; the caller then decodes the file whole.

Measured here (2 cores, ``benchmarks/load.py``): gzsplit decodes 1.25-1.5x
slower per byte than libdeflate (MR-like to CT-like), hence the 57/43 split
(tried 0.5-0.7); a 512x512x96 int16 CT inflates in 46-48 ms against 61-64 ms
whole, a 160x192x160 one in 9.7-10.0 against 12.1 ms. More parts than cores
only add work (3 and 4 parts here: 62-70 ms on the 512x512x96 CT).
"""

from __future__ import annotations

import contextlib
import ctypes
import struct
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import torch

from . import gzparts, team

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
#: At most this many threads decode one member (torch's threads, one per PART_BYTES of output at most).
MAX_PARTS = 8
#: Decoded bytes a thread gets at least.
PART_BYTES = 4 << 20
#: Where part 1 starts with two parts, as a fraction of the member's compressed bits (libdeflate's part 0 gets the
#: rest; with more parts, :func:`split_points` keeps the ratio of part 0 to each later part).
SPLIT_AT = 0.57
#: How far a part's block start is looked for, in compressed bytes (real blocks are 10-100 KiB apart).
SEARCH_BYTES = 1 << 20
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
        self._symbols: list[np.ndarray] = []
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

    @staticmethod
    def _run(
        function: Callable[..., int], decompressor: int, source: int, size: int, target: int, room: int
    ) -> tuple[int, int, int]:
        """One of libdeflate's ``*_decompress_ex`` calls from ``size`` bytes at address ``source`` into ``room``
        bytes at ``target``: its status (0: decoded), the bytes it read and the bytes it wrote."""
        used, written = ctypes.c_size_t(), ctypes.c_size_t()
        status = function(decompressor, source, size, target, room, ctypes.byref(used), ctypes.byref(written))
        return int(status), used.value, written.value

    def zlib_into(self, data: np.ndarray, out: np.ndarray) -> int | None:
        """One zlib stream at the start of ``data`` decoded into ``out`` (Adler-32 checked): the bytes
        written, ``None`` where libdeflate fails (damage, or ``out`` too small)."""
        with self._decompressor() as decompressor:
            status, _, written = self._run(
                self.zlib, decompressor, data.ctypes.data, len(data), out.ctypes.data, len(out)
            )
        return written if status == 0 else None

    def decompress_into(self, data: np.ndarray, out: np.ndarray) -> int | None:
        """Every member of ``data`` decoded into ``out``: the bytes written, ``None`` where libdeflate fails.

        libdeflate checks each member's CRC32 and ISIZE; it fails on damage,
        on trailing garbage and when ``out`` is too small.
        """
        position = filled = 0
        with self._decompressor() as decompressor:
            while position < len(data):
                if data[position] == 0 and not data[position:].any():
                    break  # zero padding after the last member (a member starts with 0x1f)
                source, target = data.ctypes.data + position, out.ctypes.data + filled
                status, used, written = self._run(
                    self.gzip, decompressor, source, len(data) - position, target, len(out) - filled
                )
                if status != 0:
                    return None
                position += used
                filled += written
        return filled

    def decompress_split(self, data: np.ndarray, out: np.ndarray, start: int, container: str = "gzip") -> bool:
        """Whether the deflate stream at byte ``start`` of ``data`` was decoded into ``out`` (exactly its size,
        the trailer checked) by several threads.

        ``container`` says what holds the stream: ``"gzip"``, one member
        filling the file (its CRC32 and ISIZE checked), or ``"zlib"``, a
        stream followed by its Adler-32 (bytes after it are ignored, as
        :meth:`zlib_into` and SimpleITK do). ``False`` where it was not tried
        (a small file, one torch thread, no ``gzsplit``)
        or did not work out; ``data`` is as it was then, and the caller
        decodes it whole. ``data`` must be writable.
        """
        parts = parts_for(len(out))
        if parts < 2 or gzsplit is None or len(data) < start + 16:
            return False
        if container == "gzip" and struct.unpack("<I", data[-4:].tobytes())[0] != len(out) % 2**32:
            return False  # several members, padding, or damage: not one member filling out
        if not self._symbols_lock.acquire(blocking=False):
            return False  # another thread is splitting a file: this one decodes whole
        try:
            buffers = self._symbols_for(len(out), parts - 1)
            bits = 8 * start, 8 * (len(data) - (8 if container == "gzip" else 4))
            block = _find_part(data, bits, parts, 1, 0, buffers[0])
            if block is None:
                return False  # a stretch of stored or fixed blocks, or the final block
            with _final_block_at(data, block[0]):
                return self._split_at(data, out, buffers, start, bits, block, container == "gzip")
        finally:
            self._symbols_lock.release()

    def _symbols_for(self, size: int, parts: int) -> list[np.ndarray]:
        """Buffers for the symbols of ``parts`` parts of a member of ``size`` bytes, each with room for all of
        it but part 0's 32 KiB (only what a part fills is resident): kept for the next file up to
        :data:`KEEP_SYMBOLS_BYTES` in all (recycled buffers of the readers' size fault no memory in: the
        512x512x96 CT took 95 ms with a fresh one, 82 ms whole), taken fresh above."""
        if 2 * (size + _SLACK) * parts > KEEP_SYMBOLS_BYTES:
            return [np.empty(size + _SLACK, np.uint16) for _ in range(parts)]
        kept = [buffer for buffer in self._symbols if len(buffer) >= size + _SLACK][:parts]
        while len(kept) < parts:
            kept.append(np.empty(size + _SLACK, np.uint16))
        self._symbols = kept
        return kept

    def _split_at(
        self,
        data: np.ndarray,
        out: np.ndarray,
        buffers: list[np.ndarray],
        start: int,
        bits: tuple[int, int],
        block: tuple[int, int, int],
        gzip: bool,
    ) -> bool:
        """Part 0 by libdeflate from byte ``start`` up to ``block`` (its start bit, end bit and symbols, found
        for part 1), each later part by gzsplit from the block found for it up to the next part's (the last to
        the end), each started as soon as its end is found; the markers resolved by all threads, the gzip or zlib
        trailer checked. ``bits``: the stream's first bit and the last one a block may start at."""
        first_end = (block[0] + 10 + 7) >> 3  # after the empty final block put at part 1's start
        parts = gzparts.Parts(out, buffers, gzip, self.crc32 if gzip else self.adler32)
        found, ends = [block], []

        def decode_first() -> None:
            size = None
            try:
                with self._decompressor() as decompressor:
                    source, length = data.ctypes.data + start, first_end - start
                    status, used, written = self._run(self.raw, decompressor, source, length, out.ctypes.data, len(out))
                if status == 0 and used == length and gzparts.WINDOW <= written <= len(out):
                    size = written
            finally:
                parts.done(0, size)
            parts.help()

        def decode_part(k: int, stop: int) -> None:
            total = None
            try:
                _, resume, count = found[k - 1]
                result = gzsplit.decode(data, resume, buffers[k - 1], count, parts.progress[k - 1], stop)  # type: ignore[union-attr]
                if result is not None:
                    total = result[1]
                    if not stop:
                        ends.append((result[0] + 7) >> 3)  # the byte after the stream
            finally:
                parts.done(k, total)
            parts.help()

        threads = [threading.Thread(target=decode_first, name="torchpatch-inflate-0")]
        threads[0].start()
        try:
            for k in range(2, len(buffers) + 1):  # part k's block ends part k - 1
                later = _find_part(data, bits, len(buffers) + 1, k, found[-1][1], buffers[k - 1])
                if later is None:
                    break  # fewer parts
                found.append(later)
                name = f"torchpatch-inflate-{k - 1}"
                threads.append(threading.Thread(target=decode_part, args=(k - 1, later[0]), name=name))
                threads[-1].start()
            parts.settle(len(found))
            decode_part(len(found), 0)
        except BaseException:
            parts.done(len(found), None)  # the others stop waiting for this part
            raise
        finally:
            for thread in threads:
                thread.join()
        if not parts.complete() or not ends:
            return False
        end = ends[0]
        if end + (8 if gzip else 4) > len(data) or (gzip and end != len(data) - 8):
            return False
        stored = struct.unpack("<I" if gzip else ">I", data[end : end + 4].tobytes())[0]
        return parts.checksum() == stored


@contextlib.contextmanager
def _final_block_at(data: np.ndarray, cut: int) -> Iterator[None]:
    """An empty final block (BFINAL 1, BTYPE 01, end of block 0000000, 10 bits) written over ``data``'s bits
    from bit ``cut`` on, so that a decoder from the start stops there; the bytes are put back on leaving."""
    spliced = slice(cut >> 3, (cut >> 3) + 3)
    saved = data[spliced].copy()
    head = (int(data[cut >> 3]) & ((1 << (cut & 7)) - 1)) | (0b011 << (cut & 7))
    data[spliced] = [head & 0xFF, (head >> 8) & 0xFF, 0]
    try:
        yield
    finally:
        data[spliced] = saved


def parts_for(size: int) -> int:
    """Threads a gzip member of ``size`` decoded bytes is decoded by: torch's threads, at most
    :data:`MAX_PARTS` and (beyond two) one per :data:`PART_BYTES`; 1 (whole, by libdeflate) below
    :data:`SPLIT_ABOVE_BYTES`.

    Example:
        >>> parts_for(1 << 10)
        1
    """
    if size < SPLIT_ABOVE_BYTES:
        return 1
    # torch's threads may be more than the cores this process may use (its affinity)
    threads = min(torch.get_num_threads(), team.available_cores())
    return max(1, min(threads, MAX_PARTS, max(2, size // PART_BYTES)))


def _find_part(
    data: np.ndarray, bits: tuple[int, int], parts: int, part: int, after: int, symbols: np.ndarray
) -> tuple[int, int, int] | None:
    """The block part ``part`` of ``parts`` starts with (its start bit, end bit, symbols decoded into
    ``symbols``): the first at or after its share of the stream's ``bits`` (first, last) and bit ``after``,
    within :data:`SEARCH_BYTES`; ``None`` if there is none."""
    assert gzsplit is not None
    begin = max(bits[0] + int((bits[1] - bits[0]) * split_points(parts)[part - 1]), after)
    return gzsplit.find_block(data, begin, min(begin + 8 * SEARCH_BYTES, bits[1]), symbols)


def split_points(parts: int) -> list[float]:
    """Where parts 1 .. ``parts`` - 1 start, as fractions of the compressed bits: libdeflate's part 0 is
    :data:`SPLIT_AT` of them with two parts, and as many times a gzsplit part's share with more.

    Example:
        >>> [round(x, 2) for x in split_points(3)]
        [0.4, 0.7]
    """
    ratio = SPLIT_AT / (1 - SPLIT_AT)  # libdeflate's part against a gzsplit part's
    first = ratio / (ratio + parts - 1)
    return [first + (1 - first) * j / (parts - 1) for j in range(parts - 1)]


def split_worth_it(size: int) -> bool:
    """Whether a gzip member of ``size`` decoded bytes is decoded by several threads (:func:`parts_for`).

    Example:
        >>> split_worth_it(1 << 10)
        False
    """
    return parts_for(size) > 1


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
    "MAX_PARTS",
    "PART_BYTES",
    "SEARCH_BYTES",
    "SPLIT_ABOVE_BYTES",
    "SPLIT_AT",
    "LibDeflate",
    "load",
    "parts_for",
    "split_points",
    "split_worth_it",
]
