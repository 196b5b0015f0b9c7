"""The compiled decoder that starts in the middle of a deflate stream (torchpatch/io/gzsplit.c).

Its symbols must be the stream's bytes wherever they are known and name the
right byte of the 32 KiB before the start block where they are not; a guessed
start must be a real block; nothing may be written past the symbols' buffer.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.io import libdeflate

gzsplit = libdeflate.gzsplit
WINDOW = 32768


@pytest.fixture(autouse=True)
def _built(request):
    """Every test but the one that says so needs the extension."""
    if gzsplit is None and request.node.name != "test_the_extension_is_built_from_its_source":
        pytest.skip("torchpatch.io.gzsplit was not built")


def scan_like(size: int, seed: int = 0) -> bytes:
    """int16 bytes like a CT: air (-1000) around smooth tissue with noise, so matches reach far back."""
    rng = np.random.default_rng(seed)
    side = 64
    slices = max(1, size // (2 * side * side))
    y, x = np.mgrid[:side, :side] - side / 2
    body = (x**2 + y**2) < (side / 2.5) ** 2
    volume = np.full((slices, side, side), -1000, np.int16)
    tissue = 40 + 30 * np.sin(np.arange(slices))[:, None, None] + rng.normal(0, 8, (slices, side, side))
    volume[:, body] = tissue[:, body].astype(np.int16)
    return volume.tobytes()[:size]


def raw_deflate(payload: bytes, level: int = 6, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> np.ndarray:
    """``payload`` as a raw deflate stream (no header), as a writable array."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
    return np.frombuffer(compressor.compress(payload) + compressor.flush(), np.uint8).copy()


def decode_from_start(stream: np.ndarray, size: int) -> tuple[tuple[int, int] | None, np.ndarray]:
    symbols = np.empty(size + 64, np.uint16)
    return gzsplit.decode(stream, 0, symbols, 0, np.zeros(1, np.int64)), symbols


def test_the_extension_is_built_from_its_source():
    # Optional like transpose (pip goes on without a compiler); without it large files decode on one thread.
    assert gzsplit is not None, "torchpatch.io.gzsplit was not built: reinstall with a C compiler"
    source = Path(libdeflate.__file__).with_name("gzsplit.c")
    if source.exists():
        built = Path(gzsplit.__file__)
        assert built.stat().st_mtime >= source.stat().st_mtime, f"{built.name} is older than {source}: pip install -e ."


@pytest.mark.parametrize(
    ("level", "strategy"),
    [
        (0, zlib.Z_DEFAULT_STRATEGY),  # stored blocks
        (1, zlib.Z_DEFAULT_STRATEGY),
        (6, zlib.Z_DEFAULT_STRATEGY),
        (9, zlib.Z_FILTERED),
        (6, zlib.Z_FIXED),  # fixed-Huffman blocks
        (6, zlib.Z_RLE),  # distance-1 copies only
        (6, zlib.Z_HUFFMAN_ONLY),  # literals only
    ],
)
def test_decoded_from_the_start_every_symbol_is_the_byte(level, strategy):
    payload = scan_like(300_000, seed=level)
    result, symbols = decode_from_start(raw_deflate(payload, level, strategy), len(payload))
    assert result is not None
    _, count = result
    assert count == len(payload)
    assert (symbols[:count] < 256).all()
    assert symbols[:count].astype(np.uint8).tobytes() == payload


def _found_and_resolved(payload: bytes, stream: np.ndarray, fraction: float) -> tuple[int, bytes, np.ndarray]:
    """Where find_block starts, what decoding from there resolves to with the true window, the symbols."""
    symbols = np.empty(len(payload) + 64, np.uint16)
    first = int(8 * len(stream) * fraction)
    found = gzsplit.find_block(stream, first, 8 * len(stream), symbols)
    assert found is not None
    start, resume, count = found
    assert start >= first
    progress = np.zeros(1, np.int64)
    result = gzsplit.decode(stream, resume, symbols, count, progress)
    assert result is not None
    end_bit, total = result
    assert gzsplit.published(progress) == total
    assert (end_bit + 7) // 8 == len(stream)
    before = len(payload) - total
    window = np.frombuffer(payload[before - WINDOW : before], np.uint8)
    out = np.empty(total, np.uint8)
    gzsplit.resolve(symbols[:total], window, out)
    return before, out.tobytes(), symbols[:total]


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("level", [1, 6, 9])
def test_a_found_block_decodes_the_rest_of_the_stream(level, fraction):
    payload = scan_like(2_000_000, seed=level)
    before, resolved, symbols = _found_and_resolved(payload, raw_deflate(payload, level), fraction)
    assert resolved == payload[before:]
    assert (symbols >= 256).any(), "no back-reference reached before the block: the markers went untested"


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    level=st.integers(1, 9),
    fraction=st.floats(0.1, 0.7),
    text_runs=st.booleans(),
)
def test_found_blocks_are_real_blocks(seed, level, fraction, text_runs):
    rng = np.random.default_rng(seed)
    if text_runs:  # short repeated words: copies at every distance
        words = [rng.integers(97, 123, rng.integers(2, 9)).astype(np.uint8).tobytes() for _ in range(300)]
        payload = b" ".join(words[i] for i in rng.integers(0, 300, 120_000))[:600_000]
    else:
        payload = scan_like(600_000, seed)
    stream = raw_deflate(payload, level)
    # the real block starts: the chain of blocks from the stream's first bit, each found where the last ended
    starts, bit, symbols = [], 0, np.empty(len(payload) + 64, np.uint16)
    while (block := gzsplit.find_block(stream, bit, bit + 1, symbols)) is not None:
        starts.append(bit)
        bit = block[1]
    first = int(8 * len(stream) * fraction)
    later = [start for start in starts if start >= first]
    found = gzsplit.find_block(stream, first, 8 * len(stream), symbols)
    assert (found and found[0]) == (later[0] if later else None)  # the first real start, or none (the final block)
    if later:
        before, resolved, _ = _found_and_resolved(payload, stream, fraction)
        assert resolved == payload[before:]


def test_no_block_is_found_in_bytes_that_are_not_deflate():
    noise = np.random.default_rng(5).integers(0, 256, 200_000, dtype=np.uint8)
    assert gzsplit.find_block(noise, 0, 8 * len(noise), np.empty(1 << 20, np.uint16)) is None


def test_stored_and_fixed_blocks_are_not_guessed():
    # find_block looks for dynamic blocks only: a stream without any gives None (the caller decodes it whole)
    payload = scan_like(200_000)
    for level, strategy in [(0, zlib.Z_DEFAULT_STRATEGY), (6, zlib.Z_FIXED)]:
        stream = raw_deflate(payload, level, strategy)
        assert gzsplit.find_block(stream, 8, 8 * len(stream), np.empty(1 << 20, np.uint16)) is None


def test_a_full_buffer_stops_the_decode_without_writing_past_it():
    payload = scan_like(300_000)
    stream = raw_deflate(payload)
    guarded = np.full(100_000 + 1000, 0xABCD, np.uint16)
    assert gzsplit.decode(stream, 0, guarded[:100_000], 0, np.zeros(1, np.int64)) is None
    assert (guarded[100_000:] == 0xABCD).all()


@pytest.mark.parametrize("cut", [10, 1000, -100, -3])
def test_a_truncated_stream_is_refused(cut):
    payload = scan_like(200_000)
    stream = raw_deflate(payload)
    result, _ = decode_from_start(stream[:cut].copy(), len(payload))
    assert result is None


def test_resolve_maps_markers_to_the_window():
    window = np.arange(WINDOW, dtype=np.uint32).astype(np.uint8)[::-1].copy()
    symbols = np.array([7, 256, 256 + 5, 255, 256 + WINDOW - 1] * 7, np.uint16)  # > 16: both loops
    out = np.empty(len(symbols), np.uint8)
    gzsplit.resolve(symbols, window, out)
    expected = [7, window[0], window[5], 255, window[WINDOW - 1]] * 7
    assert out.tolist() == [int(v) for v in expected]


def test_wrong_sizes_are_refused():
    with pytest.raises(ValueError, match="window"):
        gzsplit.resolve(np.zeros(4, np.uint16), np.zeros(100, np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="symbols"):
        gzsplit.resolve(np.zeros(3, np.uint16), np.zeros(WINDOW, np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="int64"):
        gzsplit.decode(np.zeros(10, np.uint8), 0, np.zeros(10, np.uint16), 0, np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="count"):
        gzsplit.decode(np.zeros(10, np.uint8), 0, np.zeros(10, np.uint16), 11, np.zeros(1, np.int64))


@settings(max_examples=30, deadline=None)
@given(first=st.binary(max_size=300), second=st.binary(max_size=3000))
def test_crc32_combine_is_the_crc_of_both(first, second):
    assert gzsplit.crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 8), start=st.integers(0, 4000))
def test_damaged_or_random_bytes_never_write_past_the_buffer(seed, flips, start):
    # whatever the bits, the decoder returns a result or None: no read or write outside its buffers
    rng = np.random.default_rng(seed)
    stream = raw_deflate(scan_like(60_000, seed % 7))
    stream[rng.integers(0, len(stream), flips)] ^= rng.integers(1, 256, flips).astype(np.uint8)
    guarded = np.full(70_000 + 64 + 1000, 0xABCD, np.uint16)
    symbols = guarded[: 70_000 + 64]
    bit = start % (8 * len(stream))
    result = gzsplit.decode(stream, bit, symbols, 0, np.zeros(1, np.int64))
    assert result is None or result[1] <= len(symbols)
    found = gzsplit.find_block(stream, bit, 8 * len(stream), symbols)
    assert found is None or found[2] <= len(symbols)
    assert (guarded[70_000 + 64 :] == 0xABCD).all()
