"""Later parts' symbols resolved by any free thread (torchpatch/io/gzparts.py): the bytes and the checksum.

Symbols are made here without decoding anything: each later part a mix of
bytes and markers for the 32 KiB before it, parts longer and shorter than
that window, resolved by two threads claiming chunks of any size.
"""

from __future__ import annotations

import ctypes
import threading
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.io import gzparts

pytestmark = pytest.mark.skipif(gzparts.gzsplit is None, reason="torchpatch.io.gzsplit was not built")
WINDOW = 32768


def _crc(initial: int, address: int, length: int) -> int:
    return zlib.crc32(ctypes.string_at(address, length), initial)


def _adler(initial: int, address: int, length: int) -> int:
    return zlib.adler32(ctypes.string_at(address, length), initial)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lengths=st.lists(st.integers(1, 90_000), min_size=1, max_size=5),
    chunk=st.sampled_from([1, 777, 40_000, 1 << 19]),
    gzip=st.booleans(),
)
def test_parts_resolve_to_their_bytes_and_checksum(seed, lengths, chunk, gzip):
    rng = np.random.default_rng(seed)
    first = 40_000
    expected = rng.integers(0, 256, first + sum(lengths), dtype=np.uint8)
    buffers, position = [], first
    for length in lengths:  # a part's markers name bytes of the 32 KiB before it
        symbols = np.empty(length + 16, np.uint16)
        part = expected[position : position + length].astype(np.uint16)
        marked = rng.random(length) < 0.5
        offsets = rng.integers(0, WINDOW, length)
        window = expected[position - WINDOW : position]
        part[marked] = 256 + offsets[marked]
        expected[position : position + length][marked] = window[offsets[marked]]
        symbols[:length] = part
        buffers.append(symbols)
        position += length
    out = np.zeros(len(expected), np.uint8)
    out[:first] = expected[:first]
    parts = gzparts.Parts(out, buffers, gzip, _crc if gzip else _adler)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzparts.Parts, "CHUNK", chunk)
        parts.settle(len(lengths))
        helper = threading.Thread(target=parts.help)
        helper.start()  # waits until part 0 is done
        for k in reversed(range(1, len(lengths) + 1)):  # later parts finish first
            parts.done(k, lengths[k - 1])
        parts.done(0, first)
        parts.help()
        helper.join()
    assert parts.complete()
    np.testing.assert_array_equal(out, expected)
    whole = zlib.crc32(expected.tobytes()) if gzip else zlib.adler32(expected.tobytes())
    assert parts.checksum() == whole


def test_a_failed_part_stops_every_helper():
    buffers = [np.zeros(100, np.uint16)]
    parts = gzparts.Parts(np.zeros(40_000, np.uint8), buffers, True, _crc)
    helper = threading.Thread(target=parts.help)
    helper.start()
    parts.done(0, 39_900)
    parts.done(1, None)  # not settled yet: a failure still ends the wait
    helper.join(timeout=10)
    assert not helper.is_alive()
    assert not parts.complete()


@settings(max_examples=30, deadline=None)
@given(first=st.binary(max_size=300), second=st.binary(max_size=70_000))
def test_adler32_combine_is_the_adler_of_both(first, second):
    combined = gzparts.adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)
