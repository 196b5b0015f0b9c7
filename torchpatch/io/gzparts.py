"""The parts of one deflate stream decoded by several threads, and their markers resolved by any free thread.

:meth:`torchpatch.io.libdeflate.LibDeflate.decompress_split` decodes part 0
of a stream with libdeflate and each later part with
``torchpatch.io.gzsplit`` into 16-bit symbols, a byte or a marker for one of
the 32 KiB before the part. :class:`Parts` keeps what the threads need to
turn those into bytes together: where each part lands in the output (once the
parts before it are decoded), which part's window (the 32 KiB before it) is
known, which ranges are claimed, and each range's checksum (CRC32 for gzip,
Adler-32 for zlib), combined in order at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np

gzsplit: ModuleType | None
try:  # the compiled decoder (setup.py); optional: without it nothing is split
    from . import gzsplit
except ImportError:  # pragma: no cover - a build without a C compiler
    gzsplit = None

#: How far back a deflate copy may reach: the bytes before a part its markers stand for.
WINDOW = 32768


class Parts:
    """The parts of one member, and their later parts' symbols resolved into ``out`` by whichever thread is
    free, once the 32 KiB before a part are known: part 0's, then each part's last 32 KiB (the next part's
    window) in turn, the rest chunk by chunk (a part still decoding: what it has published). Each range's
    checksum is taken as it is written; :meth:`checksum` combines them in order.

    Args:
        out: The whole stream's bytes, part 0's written by libdeflate.
        buffers: Each later part's symbols.
        gzip: CRC32 checksums (gzip) or Adler-32 (zlib).
        checksum: ``checksum(initial, address, length)``: libdeflate's
            ``libdeflate_crc32`` or ``libdeflate_adler32``.

    Example:
        >>> out = np.zeros(40000, np.uint8)
        >>> parts = Parts(out, [], gzip=True, checksum=lambda initial, address, length: 7)
        >>> parts.settle(0)   # no part after part 0
        >>> parts.done(0, len(out))
        >>> parts.complete(), parts.checksum()
        (True, 7)
    """

    #: Symbols a claim resolves (about 0.2 ms).
    CHUNK = 1 << 19

    def __init__(
        self, out: np.ndarray, buffers: list[np.ndarray], gzip: bool, checksum: Callable[[int, int, int], int]
    ) -> None:
        if gzsplit is None:
            raise RuntimeError("torchpatch.io.gzsplit was not built: a stream cannot be split")
        self._gz: ModuleType = gzsplit
        self.out, self.buffers, self.gzip, self._checksum = out, buffers, gzip, checksum
        self.progress = [np.zeros(1, np.int64) for _ in buffers]  # what each later part has published
        self.lengths: list[int | None] = [None] * (len(buffers) + 1)  # part 0's bytes, the others' symbols
        self.failed = False
        self._finished = 0
        self._positions = [0] * (len(buffers) + 2)  # where each part starts in out, once known (and one past)
        self._windowed = 0  # parts 1 .. this one have their window (the 32 KiB before them) in out
        self._chaining = False  # a thread is resolving the last 32 KiB of part _windowed
        self._chained = 0  # parts whose last 32 KiB are resolved
        self._next = [0] * (len(buffers) + 1)  # each part's next symbol to claim
        self._sums: dict[int, tuple[int, int]] = {}  # start in out: checksum, length
        self._settled = False  # whether all parts are known (and lengths has one entry each)
        self._wake = threading.Condition()

    def settle(self, later: int) -> None:
        """There are ``later`` parts after part 0 (blocks were found for no more)."""
        with self._wake:
            del self.lengths[later + 1 :]
            self._settled = True
            self._wake.notify_all()

    def _sum(self, address: int, length: int) -> int:
        return self._checksum(0 if self.gzip else 1, address, length)

    def done(self, part: int, length: int | None) -> None:
        """Part ``part`` decoded to ``length`` bytes or symbols; ``None``: it failed."""
        if part == 0 and length is not None:
            self._sums[0] = (self._sum(self.out.ctypes.data, length), length)
        with self._wake:
            self.lengths[part] = length
            self._finished += 1
            if length is None:
                self.failed = True
            elif part == 0:
                self._positions[1], self._windowed = length, 1
            self._wake.notify_all()

    def _claim(self) -> tuple[str, int, int, int] | None:
        """The next range to resolve (under the lock): a part's last 32 KiB, or a chunk before them."""
        k = self._windowed
        if 1 <= k < len(self.lengths) and not self._chaining and self._chained < k and self.lengths[k] is not None:
            self._chaining = True
            length = self.lengths[k]
            assert length is not None
            return ("tail", k, max(self._next[k], length - WINDOW), length)
        for j in range(1, min(k, len(self.lengths) - 1) + 1):
            length = self.lengths[j]
            ready = length if length is not None else int(self._gz.published(self.progress[j - 1]))
            low = self._next[j]
            high = min(low + self.CHUNK, ready - WINDOW)
            if high > low:
                self._next[j] = high
                return ("chunk", j, low, high)
        return None

    def _idle(self) -> bool:
        """Whether nothing is left to claim, now or later (under the lock)."""
        if self.failed:
            return True
        if not self._settled or self._finished < len(self.lengths) or self._chained < len(self.lengths) - 1:
            return False
        return all(self._next[j] >= (self.lengths[j] or 0) - WINDOW for j in range(1, len(self.lengths)))

    def help(self) -> None:
        """Resolve ranges until none is left (waiting, polling what running parts publish, while some may come)."""
        while True:
            with self._wake:
                claim = self._claim()
                while claim is None:
                    if self._idle():
                        return
                    self._wake.wait(0.0005)
                    claim = self._claim()
            kind, part, low, high = claim
            position = self._positions[part]
            target = self.out[position + low : position + high]
            if len(target) == high - low:  # a part longer than out fails the final check
                window = self.out[position - WINDOW : position]
                self._gz.resolve(self.buffers[part - 1][low:high], window, target)
                self._sums[position + low] = (self._sum(target.ctypes.data, high - low), high - low)
            if kind == "tail":
                with self._wake:
                    self._chaining = False
                    self._chained = part
                    if part + 1 < len(self.lengths):
                        self._positions[part + 1] = position + high
                        self._windowed = part + 1
                    self._wake.notify_all()

    def complete(self) -> bool:
        """Whether every part decoded and the resolved ranges cover ``out`` exactly."""
        if self.failed or not self._settled or self._chained < len(self.lengths) - 1:
            return False
        covered = 0
        for low in sorted(self._sums):
            if low != covered:
                return False
            covered += self._sums[low][1]
        return covered == len(self.out)

    def checksum(self) -> int:
        """The checksum of all of ``out``, from its ranges' in order."""
        total = None
        for low in sorted(self._sums):
            part, length = self._sums[low]
            if total is None:
                total = part
            elif self.gzip:
                total = self._gz.crc32_combine(total, part, length)
            else:
                total = adler32_combine(total, part, length)
        return 0 if total is None else total


def adler32_combine(first: int, second: int, length: int) -> int:
    """The Adler-32 of a followed by b from theirs and b's ``length``: b's byte sums start from a's (A = 1 +
    the bytes, B = the sum of the A's; all modulo 65521): A_ab = A_a + A_b - 1, B_ab = B_a + B_b + length (A_a - 1).

    Example:
        >>> import zlib
        >>> adler32_combine(zlib.adler32(b'abc'), zlib.adler32(b'defg'), 4) == zlib.adler32(b'abcdefg')
        True
    """
    modulus = 65521
    low_a, high_a, low_b, high_b = first & 0xFFFF, first >> 16, second & 0xFFFF, second >> 16
    low = (low_a + low_b - 1) % modulus
    high = (high_a + high_b + length * (low_a - 1)) % modulus
    return high << 16 | low


__all__ = ["WINDOW", "Parts", "adler32_combine"]
