"""One gzip member decoded by two threads (torchpatch/io/libdeflate.py): the same bytes, or no attempt.

Whatever the file, ``decompress_split`` either fills ``out`` with exactly the
member's bytes (CRC32 and size checked) or returns ``False`` with the
compressed bytes as they were, and ``inflate_file`` then gives the bytes, or
the error naming the file, it gave before.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch.io import gzparts, inflate, libdeflate, team

pytestmark = pytest.mark.skipif(
    inflate._LIBDEFLATE is None or libdeflate.gzsplit is None, reason="libdeflate's C API or gzsplit missing"
)


@pytest.fixture
def two_threads(monkeypatch):
    """torch given two threads, and files of any size split."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(libdeflate, "SPLIT_ABOVE_BYTES", 0)
    yield
    torch.set_num_threads(threads)


def scan_like(size: int, seed: int = 0) -> bytes:
    """int16 bytes like a CT: air around noisy tissue."""
    rng = np.random.default_rng(seed)
    side = 64
    y, x = np.mgrid[:side, :side] - side / 2
    body = (x**2 + y**2) < (side / 2.5) ** 2
    slices = size // (2 * side * side) + 1
    volume = np.full((slices, side, side), -1000, np.int16)
    volume[:, body] = (40 + rng.normal(0, 8, (slices, side, side)))[:, body].astype(np.int16)
    return volume.tobytes()[:size]


def split(payload: bytes, file: bytes | None = None) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """decompress_split on ``file`` (gzip of ``payload`` by default): whether it worked, out, data after, before."""
    file = gzip.compress(payload, mtime=0) if file is None else file
    data = np.frombuffer(file, np.uint8).copy()
    before = data.copy()
    out = np.zeros(len(payload), np.uint8)
    assert inflate._LIBDEFLATE is not None
    done = inflate._LIBDEFLATE.decompress_split(data, out, 10)
    return done, out, data, before


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("level", [1, 6, 9])
def test_two_threads_give_the_members_bytes(level):
    payload = scan_like(3_000_000, level)
    done, out, data, before = split(payload, gzip.compress(payload, level, mtime=0))
    assert done
    assert out.tobytes() == payload
    np.testing.assert_array_equal(data, before)  # the bytes spliced for thread 1 are put back


@pytest.mark.usefixtures("two_threads")
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1_000_000, 2_500_000), split_at=st.floats(0.2, 0.8))
def test_any_split_point_gives_the_bytes(seed, size, split_at):
    payload = scan_like(size, seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(libdeflate, "SPLIT_AT", split_at)
        done, out, data, before = split(payload)
    np.testing.assert_array_equal(data, before)
    assert done or not _blocks_after(data, 10, split_at)  # declined only where no block starts after the point
    assert not done or out.tobytes() == payload


def _blocks_after(data: np.ndarray, start: int, fraction: float, trailer: int = 8) -> bool:
    """Whether a block that is not the last one starts after ``fraction`` of the stream's bits."""
    first, last = 8 * start, 8 * (len(data) - trailer)
    begin = first + int((last - first) * fraction)
    assert libdeflate.gzsplit is not None
    return libdeflate.gzsplit.find_block(data, begin, last, np.empty(len(data) * 300, np.uint16)) is not None


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("split_at", [0.01, 0.99])
def test_a_split_at_either_end_gives_the_bytes_or_declines(split_at, monkeypatch):
    # near the start thread 1's part is shorter than the 32 KiB window; near the end only the final block is left
    monkeypatch.setattr(libdeflate, "SPLIT_AT", split_at)
    payload = scan_like(300_000, 1)
    done, out, data, before = split(payload)
    np.testing.assert_array_equal(data, before)
    assert not done or out.tobytes() == payload


def _declined_and_named(tmp_path: Path, payload: bytes, where: float, flip: int, match: str = "") -> None:
    """A member with its byte at ``where`` (a fraction, or -8 for the CRC32) flipped: the split declines it
    with its bytes put back, and inflate_file names the file."""
    file = bytearray(gzip.compress(payload, mtime=0))
    file[int(len(file) * where) if where > 0 else int(where)] ^= flip
    done, _, data, before = split(payload, bytes(file))
    assert not done
    np.testing.assert_array_equal(data, before)
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(bytes(file))
    with pytest.raises(ValueError, match=r"damaged\.nii\.gz" + match):
        inflate.inflate_file(path, len(payload))


@pytest.mark.usefixtures("two_threads")
def test_a_damaged_member_is_declined_and_inflate_file_names_it(tmp_path):
    _declined_and_named(tmp_path, scan_like(2_000_000), -8, 0xFF, ".*CRC")  # the CRC32


@pytest.mark.usefixtures("two_threads")
def test_damage_in_the_second_part_is_declined(tmp_path):
    _declined_and_named(tmp_path, scan_like(2_000_000), 0.8, 0x55)


@pytest.mark.usefixtures("two_threads")
def test_several_members_are_not_split_but_decoded(tmp_path):
    first, second = scan_like(1_000_000, 1), scan_like(1_000_000, 2)
    file = gzip.compress(first, mtime=0) + gzip.compress(second, mtime=0)
    done, _, data, before = split(first + second, file)
    assert not done
    np.testing.assert_array_equal(data, before)
    path = tmp_path / "two.gz"
    path.write_bytes(file)
    assert inflate.inflate_file(path, len(first) + len(second)).tobytes() == first + second


@pytest.mark.usefixtures("two_threads")
def test_inflate_file_splits_a_large_member(tmp_path, monkeypatch):
    payload = scan_like(3_000_000, 7)
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(gzip.compress(payload, mtime=0))
    results = []
    real = libdeflate.LibDeflate.decompress_split

    def spy(self, *args):
        results.append(real(self, *args))
        return results[-1]

    monkeypatch.setattr(libdeflate.LibDeflate, "decompress_split", spy)
    for _ in range(3):  # recycled buffers on the later calls
        assert inflate.inflate_file(path, len(payload)).tobytes() == payload
    assert results == [True, True, True]
    # above a sixteenth of the RAM the parts' symbols (up to 0.9x the volume) are not worth it: one thread
    monkeypatch.setattr(inflate, "SPLIT_BELOW_BYTES", len(payload) - 1)
    assert inflate.inflate_file(path, len(payload)).tobytes() == payload
    assert len(results) == 3


def test_one_torch_thread_or_a_small_file_is_not_split(monkeypatch):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert not libdeflate.split_worth_it(1 << 30)
        torch.set_num_threads(2)
        assert not libdeflate.split_worth_it(libdeflate.SPLIT_ABOVE_BYTES - 1)
        assert libdeflate.split_worth_it(libdeflate.SPLIT_ABOVE_BYTES)
    finally:
        torch.set_num_threads(threads)
    calls = []
    monkeypatch.setattr(libdeflate.gzsplit, "find_block", lambda *args: calls.append(args))
    monkeypatch.setattr(libdeflate, "split_worth_it", lambda size: False)
    done, _, _, _ = split(scan_like(500_000))
    assert not done and not calls


@pytest.mark.usefixtures("two_threads")
def test_a_file_without_dynamic_blocks_is_declined():
    payload = np.random.default_rng(3).integers(0, 256, 1_000_000, dtype=np.uint8).tobytes()  # stored blocks
    done, _, data, before = split(payload)
    assert not done
    np.testing.assert_array_equal(data, before)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31, 8, zlib.Z_FIXED)
    fixed = scan_like(1_000_000)
    done, _, _, _ = split(fixed, compressor.compress(fixed) + compressor.flush())
    assert not done


@pytest.mark.usefixtures("two_threads")
def test_the_second_threads_buffer_is_kept_and_a_concurrent_split_declines():
    # fresh memory for thread 2's symbols would cost more page faults than the thread saves: one buffer is kept
    assert inflate._LIBDEFLATE is not None
    payload = scan_like(2_000_000, 4)
    assert split(payload)[0]
    (kept,) = inflate._LIBDEFLATE._symbols  # two threads: one later part
    assert split(payload[:1_500_000])[0]
    assert inflate._LIBDEFLATE._symbols[0] is kept
    with pytest.MonkeyPatch.context() as patch:  # above the kept size: a fresh buffer, the kept one left alone
        patch.setattr(libdeflate, "KEEP_SYMBOLS_BYTES", 1 << 20)
        done, out, _, _ = split(payload)
        assert done and out.tobytes() == payload
        assert inflate._LIBDEFLATE._symbols[0] is kept
    with inflate._LIBDEFLATE._symbols_lock:  # another thread is splitting: this call decodes whole
        done, _, data, before = split(payload)
    assert not done
    np.testing.assert_array_equal(data, before)


def test_the_libraries_symbols_are_bound():
    assert inflate._LIBDEFLATE is not None
    assert libdeflate.load(None) is None
    assert Path(inflate._deflate.__file__).exists()


@pytest.mark.usefixtures("two_threads")
def test_a_zlib_stream_splits_and_checks_its_adler32(tmp_path, monkeypatch):
    # a MetaImage's CompressedData: a zlib stream, bytes after its Adler-32 ignored
    payload = scan_like(2_000_000, 9)
    stream = zlib.compress(payload, 6)
    assert inflate._LIBDEFLATE is not None
    for tail in (b"", b"\n"):
        data = np.frombuffer(stream + tail, np.uint8).copy()
        out = np.zeros(len(payload), np.uint8)
        assert inflate._LIBDEFLATE.decompress_split(data, out, 2, "zlib")
        assert out.tobytes() == payload
    damaged = bytearray(stream)
    damaged[-1] ^= 1  # the Adler-32
    data = np.frombuffer(bytes(damaged), np.uint8).copy()
    assert not inflate._LIBDEFLATE.decompress_split(data, np.zeros(len(payload), np.uint8), 2, "zlib")
    results = []
    real = libdeflate.LibDeflate.decompress_split
    monkeypatch.setattr(
        libdeflate.LibDeflate, "decompress_split", lambda self, *args: results.append(real(self, *args)) or results[-1]
    )
    path = tmp_path / "x.raw"
    path.write_bytes(b"head" + stream)
    assert inflate.inflate_zlib_file(path, len(payload), offset=4).tobytes() == payload
    assert results == [True]
    path.write_bytes(b"head" + bytes(damaged))
    with pytest.raises(ValueError, match=r"x\.raw"):
        inflate.inflate_zlib_file(path, len(payload), offset=4)


@pytest.mark.usefixtures("two_threads")
@pytest.mark.parametrize("container", ["gzip", "zlib"])
def test_small_chunks_claimed_by_both_threads_give_the_checksum(container, monkeypatch):
    # hundreds of chunks, resolved by whichever thread claims them, their checksums combined in order
    monkeypatch.setattr(gzparts.Parts, "CHUNK", 3001)
    payload = scan_like(2_000_000, 11)
    stream = gzip.compress(payload, mtime=0) if container == "gzip" else zlib.compress(payload)
    data = np.frombuffer(stream, np.uint8).copy()
    out = np.zeros(len(payload), np.uint8)
    assert inflate._LIBDEFLATE is not None
    assert inflate._LIBDEFLATE.decompress_split(data, out, 10 if container == "gzip" else 2, container)
    assert out.tobytes() == payload


@pytest.mark.usefixtures("two_threads")
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 4))
def test_damaged_files_give_the_bytes_or_are_declined(seed, flips):
    # a flipped bit in the header's time stamp decodes right; anywhere else the trailer's check declines it
    rng = np.random.default_rng(seed)
    payload = scan_like(600_000, seed % 5)
    file = np.frombuffer(gzip.compress(payload, mtime=0), np.uint8).copy()
    places = rng.integers(10, len(file) - 8, flips)
    file[places] ^= rng.integers(1, 256, flips).astype(np.uint8)
    done, out, data, before = split(payload, file.tobytes())
    np.testing.assert_array_equal(data, before)
    assert not done or out.tobytes() == payload


@pytest.fixture
def many_threads(monkeypatch):
    """torch given up to eight threads (more than the cores here: only the results are checked)."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(libdeflate, "SPLIT_ABOVE_BYTES", 0)
    monkeypatch.setattr(libdeflate, "PART_BYTES", 1)
    monkeypatch.setattr(team, "available_cores", lambda: 64)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("many_threads")
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    size=st.integers(1_000_000, 2_500_000),
    threads=st.integers(3, 8),
    split_at=st.floats(0.2, 0.7),
    chunk=st.sampled_from([1000, 30_000, 1 << 19]),
    container=st.sampled_from(["gzip", "zlib"]),
)
def test_any_number_of_parts_gives_the_bytes(seed, size, threads, split_at, chunk, container):
    # parts of any length (adjacent blocks, parts shorter than the 32 KiB window), chunks of any size
    torch.set_num_threads(threads)
    payload = scan_like(size, seed)
    stream = gzip.compress(payload, mtime=0) if container == "gzip" else zlib.compress(payload)
    data = np.frombuffer(stream, np.uint8).copy()
    before = data.copy()
    out = np.zeros(len(payload), np.uint8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(libdeflate, "SPLIT_AT", split_at)
        patch.setattr(gzparts.Parts, "CHUNK", chunk)
        assert inflate._LIBDEFLATE is not None
        done = inflate._LIBDEFLATE.decompress_split(data, out, 10 if container == "gzip" else 2, container)
        first = libdeflate.split_points(threads)[0]
    np.testing.assert_array_equal(data, before)
    gzip_file = container == "gzip"  # declined only where no block starts after the first part
    assert done or not _blocks_after(data, 10 if gzip_file else 2, first, 8 if gzip_file else 4)
    assert not done or out.tobytes() == payload


@pytest.mark.usefixtures("many_threads")
def test_a_damaged_middle_part_is_declined(tmp_path):
    torch.set_num_threads(4)
    _declined_and_named(tmp_path, scan_like(2_000_000, 3), 0.7, 0x10)  # in the third of four parts


def test_parts_and_their_starts(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(team, "available_cores", lambda: 12)
    try:
        torch.set_num_threads(16)
        assert libdeflate.parts_for(libdeflate.SPLIT_ABOVE_BYTES) == 2
        assert libdeflate.parts_for(5 * libdeflate.PART_BYTES) == 5
        assert libdeflate.parts_for(1 << 40) == libdeflate.MAX_PARTS
        torch.set_num_threads(3)
        assert libdeflate.parts_for(1 << 40) == 3
        torch.set_num_threads(16)
        monkeypatch.setattr(team, "available_cores", lambda: 6)  # torch's threads above the process's cores
        assert libdeflate.parts_for(1 << 40) == 6
    finally:
        torch.set_num_threads(threads)
    assert libdeflate.split_points(2) == [pytest.approx(libdeflate.SPLIT_AT)]
    points = libdeflate.split_points(5)
    assert points == sorted(points) and points[0] > 0 and points[-1] < 1
    shares = np.diff([0, *points, 1])
    assert shares[0] == pytest.approx(shares[1] * libdeflate.SPLIT_AT / (1 - libdeflate.SPLIT_AT))
    assert shares[1:] == pytest.approx([shares[1]] * 4)
