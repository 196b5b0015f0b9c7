"""The compiled reorder into C order (torchpatch/io/transpose.c) and its torch fallback."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import io
from torchpatch.io import base

DTYPES = [np.uint8, np.int16, np.float32, np.float64]


def _reverse(source: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``source`` ((I, J, K), F order) into C order by the extension alone."""
    assert base.compiled is not None
    out = np.empty(source.shape, source.dtype) if out is None else out
    scratch = np.empty(source.size, source.dtype)
    size_i, size_j, size_k = source.shape
    flat = source.reshape(-1, order="F")
    base.compiled.reverse(flat, out.reshape(-1), scratch, size_i, size_j, size_k, source.dtype.itemsize)
    return out


def test_the_extension_is_built_from_its_source():
    # A development install compiles it (setup.py); without it every reorder is 2-6x slower. The build is
    # optional (pip goes on without a compiler), so a failed build shows here, as does a stale one.
    assert io.reorder_backend() == "compiled", "torchpatch.io.transpose was not built: reinstall with a C compiler"
    source = Path(base.__file__).with_name("transpose.c")
    if source.exists():  # a checkout, not an installed wheel
        built = Path(base.compiled.__file__)
        assert built.stat().st_mtime >= source.stat().st_mtime, f"{built.name} is older than {source}: pip install -e ."


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape",
    [
        (160, 19, 140),  # pass 1's row blocks (128) and column blocks (256) with ragged edges
        (33, 17, 3),  # no full tile of one byte along K
        (16, 16, 16),
        (5, 7, 1),  # a 2D image: one transpose
        (1, 9, 6),
        (8, 1, 9),
        (1, 1, 1),
    ],
)
def test_reverse_equals_numpy(dtype, shape, rng):
    source = np.asfortranarray((rng.random(shape) * 250).astype(dtype))
    np.testing.assert_array_equal(_reverse(source), source)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 12), st.integers(1, 40)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_reverse_equals_numpy_for_any_shape(shape, dtype, seed):
    values = np.random.default_rng(seed).integers(0, 2**31, shape, dtype=np.int64)
    source = np.asfortranarray(values.astype(dtype))  # uint8 and int16 wrap: every bit pattern occurs
    np.testing.assert_array_equal(_reverse(source), source)


def test_reverse_keeps_the_bits_of_every_float():
    # Tiles move bytes: NaN payloads, signed zeros and subnormals come out unchanged.
    bits = np.array([0x7FC00001, 0xFFC00000, 0x7F800001, 0x80000000, 0x00000001, 0x3F800000], np.uint32)
    source = np.asfortranarray(np.resize(bits, (12, 5, 9)).view(np.float32))
    assert _reverse(source).view(np.uint32).tolist() == np.ascontiguousarray(source).view(np.uint32).tolist()


@pytest.mark.parametrize("shape", [(20, 6, 17), (9, 4, 1)])
def test_out_may_be_the_source_memory(shape, rng):
    source = np.asfortranarray(rng.integers(-1000, 1000, shape).astype(np.int16))
    expected = np.ascontiguousarray(source)
    out = source.reshape(-1, order="F").reshape(shape)  # the same memory, read as C order
    _reverse(source, out)
    np.testing.assert_array_equal(out, expected)


def test_bad_arguments_say_what_is_wrong():
    source, out, scratch = np.zeros(24, np.int16), np.zeros(24, np.int16), np.zeros(24, np.int16)
    with pytest.raises(ValueError, match="itemsize must be 1, 2, 4 or 8 bytes, not 3"):
        base.compiled.reverse(source, out, scratch, 2, 3, 4, 3)
    with pytest.raises(ValueError, match=r"must not be negative, got \(2, -3, 4\)"):
        base.compiled.reverse(source, out, scratch, 2, -3, 4, 2)
    with pytest.raises(ValueError, match=r"buffers of 96 bytes .* got source 48, out 48, scratch 48"):
        base.compiled.reverse(source, out, scratch, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="too large"):
        base.compiled.reverse(source, out, scratch, 2**40, 2**40, 4, 2)
    read_only = np.zeros(24, np.int16)
    read_only.flags.writeable = False
    with pytest.raises((TypeError, BufferError, ValueError)):
        base.compiled.reverse(source, read_only, scratch, 2, 3, 4, 2)
    with pytest.raises((TypeError, BufferError, ValueError)):
        base.compiled.reverse(np.zeros((4, 6), np.int16)[:, ::2], out, scratch, 2, 3, 2, 2)  # not contiguous
    base.compiled.reverse(source, out, scratch, 0, 3, 4, 2)  # nothing to do


def test_reverse_runs_beside_other_threads(rng):
    # The extension works without the GIL: threads reordering at once each get their own volume.
    sources = [np.asfortranarray(rng.integers(0, 255, (70, 30, 50)).astype(np.uint8)) for _ in range(4)]
    results: list[np.ndarray | None] = [None] * 4

    def work(index: int) -> None:
        for _ in range(5):
            results[index] = _reverse(sources[index])

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for source, result in zip(sources, results):
        np.testing.assert_array_equal(result, source)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.bool_])
def test_c_order_gives_the_same_bytes_with_and_without_the_extension(dtype, rng, monkeypatch):
    on_disk = np.asfortranarray((rng.random((37, 21, 19, 2)) * 100).astype(dtype))
    array = np.moveaxis(on_disk, -1, 0)
    compiled = io.c_order(array)
    monkeypatch.setattr(base, "compiled", None)
    assert io.reorder_backend() == "torch"
    fallback = io.c_order(array)
    reused = io.c_order(array.copy(order="K"), reuse=True)
    np.testing.assert_array_equal(compiled, np.ascontiguousarray(array))
    assert compiled.tobytes() == fallback.tobytes() == reused.tobytes()


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_a_misaligned_source_reorders_too(dtype, rng):
    # A memory-mapped file's voxels start wherever its header ends: not at a multiple of their size.
    shape = (21, 9, 19)
    values = (rng.random(shape) * 100).astype(dtype)
    raw = bytearray(1 + values.nbytes)
    raw[1:] = values.tobytes(order="F")
    source = np.frombuffer(raw, dtype, offset=1).reshape(shape, order="F")
    assert not source.flags.aligned
    np.testing.assert_array_equal(io.c_order(source[None])[0], values)
