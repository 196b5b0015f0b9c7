"""The compiled reorder into C order (torchpatch/io/transpose.c) and its torch fallback."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torchpatch import io
from torchpatch.io import base, order

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


def _one_pass(source: np.ndarray, out: np.ndarray, planes: int) -> None:
    """``source`` ((I, J, K), F order) into ``out`` (apart from it) in one pass, ``planes`` j planes at a time."""
    assert base.compiled is not None
    size_i, size_j, size_k = source.shape
    scratch = np.empty(planes * size_i * size_k * source.itemsize, np.uint8)
    flat = source.reshape(-1, order="F")
    base.compiled.reverse(flat, out.reshape(-1), scratch, size_i, size_j, size_k, source.dtype.itemsize)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("planes", [1, 3, 50])
def test_one_pass_into_another_buffer_equals_numpy(dtype, planes, rng):
    # A ragged last block of planes (19 = 6 * 3 + 1), and more planes than J.
    source = np.asfortranarray((rng.random((37, 19, 23)) * 250).astype(dtype))
    out = np.zeros(source.shape, dtype)
    _one_pass(source, out, planes)
    np.testing.assert_array_equal(out, source)


@pytest.mark.parametrize("shift", [0, 2, 6])
@pytest.mark.parametrize("size_k", [96, 37])
def test_one_pass_streams_large_volumes_to_any_alignment(shift, size_k, rng):
    # From 4 MiB on the runs of K are written by streaming stores from each 16-byte boundary on: the bytes
    # before and after it (an output at any even address, runs of 192 and 74 bytes) are copied plainly.
    shape = (160, 14000 // size_k * 10, size_k)  # 4.3 MB either way
    source = np.asfortranarray(rng.integers(-30000, 30000, shape).astype(np.int16))
    assert source.nbytes >= 4 << 20
    raw = np.zeros(source.nbytes + 16, np.uint8)
    out = raw[shift : shift + source.nbytes].view(np.int16).reshape(shape)
    _one_pass(source, out, 8)
    np.testing.assert_array_equal(out, source)
    assert not raw[:shift].any() and not raw[shift + source.nbytes :].any()  # nothing written around it


def test_one_pass_needs_a_plane_of_scratch():
    source, out = np.zeros(24, np.int16), np.zeros(24, np.int16)
    with pytest.raises(ValueError, match="scratch of 15 bytes cannot hold one plane of 16 bytes"):
        base.compiled.reverse(source, out, np.zeros(15, np.uint8), 2, 3, 4, 2)
    base.compiled.reverse(source, out, np.zeros(0, np.uint8), 4, 6, 1, 2)  # a 2D image: one transpose, no scratch
    overlapping = np.zeros(30, np.int16)  # out two elements past the source: two passes, a whole scratch
    with pytest.raises(ValueError, match="scratch 16"):
        base.compiled.reverse(overlapping[:24], overlapping[6:], np.zeros(16, np.uint8), 2, 3, 4, 2)


def test_an_output_overlapping_the_source_goes_through_the_scratch(rng):
    source = np.asfortranarray(rng.integers(-1000, 1000, (9, 7, 5)).astype(np.int16))
    expected = np.ascontiguousarray(source)
    memory = np.zeros(source.size + 10, np.int16)
    memory[: source.size] = source.reshape(-1, order="F")
    out = memory[10:]  # starts inside the source, ends past it
    base.compiled.reverse(memory[: source.size], out, np.empty(source.nbytes, np.uint8), 9, 7, 5, 2)
    np.testing.assert_array_equal(out.reshape(source.shape), expected)


def test_c_order_reuse_takes_a_recycled_buffer_and_leaves_the_source(rng):
    # The compiled reorder writes a buffer apart from the source; given reuse, one the readers take again.
    shape = (80, 70, 60, 2)  # 1.3 MB: from io.buffers.MIN_BYTES on (smaller copies come from the heap)
    array = np.moveaxis(np.asfortranarray(rng.integers(0, 99, shape).astype(np.int16)), -1, 0)
    before = array.copy(order="K")
    reordered = io.c_order(array, reuse=True)
    np.testing.assert_array_equal(reordered, before)
    assert reordered.flags.c_contiguous and not np.shares_memory(reordered, array)
    np.testing.assert_array_equal(array, before)  # not written
    pointer = reordered.ctypes.data
    del reordered
    again = io.c_order(array, reuse=True)
    assert again.ctypes.data == pointer  # the same buffer again once unused
    assert any(np.shares_memory(again, base) for base in io.buffers.RECYCLER._bases)
    assert io.c_order(array, reuse=True).ctypes.data != pointer  # not while in use


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
    monkeypatch.setattr(order, "compiled", None)
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


# ---------------------------------------------------------------------------
# Boxes into batches (copy_boxes)
# ---------------------------------------------------------------------------


def _boxes_by_numpy(sources: list[np.ndarray], corners: list[tuple[int, int, int]], size: tuple[int, int, int]):
    a, b, c = size
    return np.stack([source[:, i : i + a, j : j + b, k : k + c] for source, (i, j, k) in zip(sources, corners)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3])
def test_copy_boxes_equals_numpy_slices(dtype, channels, threads, team, rng):
    import torch

    shapes = [(9, 7, 11), (5, 8, 6), (4, 3, 5)]
    sources = [(rng.random((channels, *shape)) * 250).astype(dtype) for shape in shapes]
    size = (4, 3, 5)
    corners = [(5, 4, 6), (0, 5, 1), (0, 0, 0)]  # the last box is its whole source
    out = torch.full((3, channels, *size), 7).to(torch.from_numpy(sources[0]).dtype)
    assert io.copy_boxes(out, list(zip(sources, corners)), threads=threads)
    np.testing.assert_array_equal(out.numpy(), _boxes_by_numpy(sources, corners, size))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12)),
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
)
def test_copy_boxes_equals_numpy_for_any_box(shape, data, dtype):
    import torch

    size = tuple(data.draw(st.integers(1, extent)) for extent in shape)
    corners = [
        tuple(data.draw(st.integers(0, extent - length)) for extent, length in zip(shape, size)) for _ in range(3)
    ]
    source = np.arange(np.prod(shape), dtype=np.float64).astype(dtype).reshape(1, *shape)
    out = torch.empty((3, 1, *size), dtype=torch.from_numpy(source).dtype)
    assert io.copy_boxes(out, [(source, corner) for corner in corners])
    np.testing.assert_array_equal(out.numpy(), _boxes_by_numpy([source] * 3, corners, size))


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    extra=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 2)), min_size=1, max_size=4),
    channels=st.integers(1, 3),
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    threads=st.sampled_from([1, 2]),
)
def test_copy_boxes_of_sources_of_other_shapes_equal_numpy(size, extra, channels, data, dtype, threads, team):
    # Boxes as long as their source along K are copied a plane at a time, the others a run of K at a time;
    # every box has its own source, and the next plane of a box is prefetched while one is copied; with
    # two threads the (box, channel) pairs are split between torch's OpenMP team.
    import torch

    shapes = [tuple(length + more for length, more in zip(size, grow)) for grow in extra]
    sources = [
        np.arange(channels * int(np.prod(shape)), dtype=np.float64).astype(dtype).reshape(channels, *shape)
        for shape in shapes
    ]
    corners = [tuple(data.draw(st.integers(0, more)) for more in grow) for grow in extra]
    out = torch.full((len(shapes), channels, *size), 3).to(torch.from_numpy(sources[0]).dtype)
    assert io.copy_boxes(out, list(zip(sources, corners)), threads=threads)
    np.testing.assert_array_equal(out.numpy(), _boxes_by_numpy(sources, corners, size))


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 6)),
    rows=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 1), st.integers(1, 4)), max_size=5),
    channels=st.integers(1, 3),
    data=st.data(),
    threads=st.sampled_from([1, 2]),
)
def test_copy_boxes_along_source_rows_equal_numpy(size, rows, channels, data, threads, team):
    # A grid's patches one after another along K (the same source rows: copied row by row together), of two
    # sources, each run of them of any length, next to runs on other rows of the same source (another i or
    # j: not grouped), the (box, channel) pairs split between threads anywhere.
    import torch

    sources = [np.arange(channels * 8 * 8 * 30, dtype=np.float32).reshape(channels, 8, 8, 30) + 1e4 * n for n in (0, 1)]
    boxes = []
    for source, i, j, count in rows:
        starts = sorted(data.draw(st.lists(st.integers(0, 30 - size[2]), min_size=count, max_size=count)))
        boxes.extend((sources[source], (i, j, k)) for k in starts)
    if not boxes:
        boxes = [(sources[0], (0, 0, 0))]
    out = torch.zeros((len(boxes), channels, *size))
    assert io.copy_boxes(out, boxes, threads=threads)
    expected = _boxes_by_numpy([source for source, _ in boxes], [corner for _, corner in boxes], size)
    np.testing.assert_array_equal(out.numpy(), expected)


def _file_order(array: np.ndarray) -> np.ndarray:
    """``array`` (``(C, I, J, K)``) as a file reader decodes it: each channel F-ordered, channel after channel."""
    return np.ascontiguousarray(array.transpose(0, 3, 2, 1)).transpose(0, 3, 2, 1)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 12), st.integers(1, 40)),
    channels=st.integers(1, 3),
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
)
def test_copy_boxes_transposes_boxes_of_the_files_order(shape, channels, data, dtype):
    import torch

    size = tuple(data.draw(st.integers(1, extent)) for extent in shape)
    corners = [
        tuple(data.draw(st.integers(0, extent - length)) for extent, length in zip(shape, size)) for _ in range(3)
    ]
    source = np.arange(channels * np.prod(shape), dtype=np.float64).astype(dtype).reshape(channels, *shape)
    decoded = _file_order(source)
    assert io.in_file_order(decoded) or decoded.flags.c_contiguous
    out = torch.full((3, channels, *size), 7).to(torch.from_numpy(source).dtype)
    assert io.copy_boxes(out, [(decoded, corner) for corner in corners])
    np.testing.assert_array_equal(out.numpy(), _boxes_by_numpy([source] * 3, corners, size))


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_boxes_of_the_files_order_keep_every_bit(dtype, rng):
    import torch

    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    source = rng.integers(0, np.iinfo(bits).max, (2, 70, 33, 66), dtype=bits, endpoint=True).view(dtype)
    out = torch.empty((2, 2, 64, 17, 64), dtype=torch.from_numpy(source).dtype)
    assert io.copy_boxes(out, [(_file_order(source), (3, 9, 1)), (_file_order(source), (6, 16, 2))])
    expected = _boxes_by_numpy([source] * 2, [(3, 9, 1), (6, 16, 2)], (64, 17, 64))
    np.testing.assert_array_equal(out.numpy().view(bits), expected.view(bits))  # NaN payloads included


def test_copy_boxes_reads_a_memory_map(tmp_path: Path, rng):
    import torch

    np.save(tmp_path / "t1.npy", rng.random((1, 10, 9, 8)).astype(np.float32))
    mapped = io.map_npy(tmp_path / "t1.npy")
    out = torch.empty(1, 1, 3, 3, 3)
    assert io.copy_boxes(out, [(mapped, (7, 6, 5))])
    np.testing.assert_array_equal(out.numpy()[0], mapped[:, 7:, 6:, 5:])


def test_copy_boxes_declines_what_it_cannot_copy(monkeypatch, rng):
    import torch

    source = rng.random((1, 6, 6, 6)).astype(np.float32)
    out = torch.zeros(1, 1, 2, 2, 2)
    assert not io.copy_boxes(out, [(source.astype(np.float64), (0, 0, 0))])  # another dtype
    assert not io.copy_boxes(out, [(source.transpose(0, 2, 1, 3), (0, 0, 0))])  # neither C nor the files' order
    mixed = torch.zeros(2, 1, 2, 2, 2)
    assert not io.copy_boxes(mixed, [(source, (0, 0, 0)), (_file_order(source), (0, 0, 0))])  # orders mixed
    assert not io.copy_boxes(torch.zeros(1, 1, 2, 2, 4)[..., ::2], [(source, (0, 0, 0))])  # out not contiguous
    assert not io.copy_boxes(out, [(source, (0, 0, 0))] * 2)  # more boxes than rows
    assert not io.copy_boxes(out.to(torch.bfloat16), [(source, (0, 0, 0))])
    monkeypatch.setattr(base, "compiled", None)  # a build without the extension: the caller copies
    assert not io.copy_boxes(out, [(source, (0, 0, 0))])
    assert float(out.abs().sum()) == 0.0  # nothing was written by any refusal


@pytest.mark.parametrize("threads", [1, 2])
def test_boxes_checked_ahead_copy_as_copy_boxes_does(threads, team, rng):
    import torch

    sources = [rng.random((2, 9, 7, 11)).astype(np.float32), rng.random((2, 5, 8, 6)).astype(np.float32)]
    corners = [(5, 4, 6), (1, 5, 1)]
    items = io.box_items(list(zip(sources, corners)), torch.float32, 2)
    assert items is not None
    out, expected = torch.full((2, 2, 4, 3, 5), 7.0), torch.zeros(2, 2, 4, 3, 5)
    assert io.copy_box_items(out, items, threads=threads)
    assert io.copy_boxes(expected, list(zip(sources, corners)), threads=threads)
    assert torch.equal(out, expected)
    np.testing.assert_array_equal(out.numpy(), _boxes_by_numpy(sources, corners, (4, 3, 5)))
    # What copy_boxes would refuse is refused when checked, and the rows must fit.
    assert io.box_items([(sources[0], (0, 0, 0))], torch.float64, 2) is None  # another dtype
    assert io.box_items([(sources[0], (0, 0, 0))], torch.float32, 1) is None  # other channels
    assert io.box_items([(sources[0].transpose(0, 2, 1, 3), (0, 0, 0))], torch.float32, 2) is None
    assert not io.copy_box_items(torch.zeros(3, 2, 4, 3, 5), items)  # a row per item
    assert not io.copy_box_items(torch.zeros(2, 2, 4, 3, 10)[..., ::2], items)  # out not contiguous
    with pytest.raises(ValueError, match="not inside its"):
        io.copy_box_items(torch.zeros(1, 2, 4, 3, 5), io.box_items([(sources[1], (4, 0, 0))], torch.float32, 2))


def test_copy_boxes_bad_arguments_say_what_is_wrong(rng):
    assert base.compiled is not None
    copy = base.compiled.copy_boxes
    source = rng.random((2, 5, 5, 5)).astype(np.float32)
    out = np.zeros((1, 2, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"box 0 at \(4, 0, 0\) of size \(2, 2, 2\) is not inside its \(5, 5, 5\)"):
        copy(out, [(source, 5, 5, 5, 4, 0, 0)], 2, 2, 2, 2, 4)
    with pytest.raises(ValueError, match="not inside"):
        copy(out, [(source, 5, 5, 5, 0, -1, 0)], 2, 2, 2, 2, 4)
    with pytest.raises(ValueError, match=r"source 0 holds 1000 bytes, not 2 channels of \(5, 5, 6\)"):
        copy(out, [(source, 5, 5, 6, 0, 0, 0)], 2, 2, 2, 2, 4)
    with pytest.raises(ValueError, match="out holds 64 bytes, 2 boxes of 64 bytes need 128"):
        copy(out, [(source, 5, 5, 5, 0, 0, 0)] * 2, 2, 2, 2, 2, 4)
    with pytest.raises(ValueError, match="itemsize must be 1, 2, 4 or 8 bytes, not 3"):
        copy(out, [(source, 5, 5, 5, 0, 0, 0)], 2, 2, 2, 2, 3)
    with pytest.raises(TypeError, match=r"a box is \(source, size_i, size_j, size_k, i0, j0, k0\)"):
        copy(out, [(source, 5, 5)], 2, 2, 2, 2, 4)
    with pytest.raises(TypeError, match="boxes must be a sequence"):
        copy(out, 3, 2, 2, 2, 2, 4)
    with pytest.raises(ValueError, match="out of range"):
        copy(out, [(source, 5, 5, 5, 0, 0, 0)], -2, 2, 2, 2, 4)
    assert not out.any()


def test_copy_boxes_runs_beside_other_threads(rng):
    import torch

    sources = [rng.random((1, 40, 40, 40)).astype(np.float32) for _ in range(4)]
    corners = [(i, i, 2 * i) for i in range(8)]
    expected = _boxes_by_numpy([sources[n % 4] for n in range(8)], corners, (24, 24, 24))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                out = torch.empty(8, 1, 24, 24, 24)
                assert io.copy_boxes(out, [(sources[n % 4], corner) for n, corner in enumerate(corners)])
                np.testing.assert_array_equal(out.numpy(), expected)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


@pytest.mark.parametrize("scratch_bytes", [0, 1, 2 * 5 * 4 * 6 * 2 + 64 * 6], ids=["none", "too small", "enough"])
def test_copy_boxes_of_the_files_order_use_a_given_scratch_or_their_own(rng, scratch_bytes):
    assert base.compiled is not None
    source = rng.integers(0, 1000, (2, 9, 8, 7), dtype=np.int16)
    decoded = _file_order(source)
    out = np.zeros((2, 2, 5, 4, 6), np.int16)
    items = [(decoded.transpose(0, 3, 2, 1), 9, 8, 7, *corner) for corner in [(0, 0, 0), (4, 4, 1)]]
    arguments = (out, items, 5, 4, 6, 2, 2, True)
    scratch = np.full(scratch_bytes, 255, np.uint8)
    base.compiled.copy_boxes(*arguments, scratch) if scratch_bytes else base.compiled.copy_boxes(*arguments)
    np.testing.assert_array_equal(out, _boxes_by_numpy([source] * 2, [(0, 0, 0), (4, 4, 1)], (5, 4, 6)))


# Boxes into an output (write_boxes)


def _draw_box(data, shape, source_shape, size, channels, items):
    """A channel, a corner in ``shape``, an item and a corner in ``source_shape`` for a box of ``size``."""
    at = tuple(data.draw(st.integers(0, s - n)) for s, n in zip(shape, size))
    start = tuple(data.draw(st.integers(0, s - n)) for s, n in zip(source_shape, size))
    return data.draw(st.integers(0, channels - 1)), at, data.draw(st.integers(0, items - 1)), start


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 10), st.integers(1, 10), st.integers(1, 10)),
    patch=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    channels=st.integers(1, 3),
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    threads=st.sampled_from([1, 2]),
)
def test_write_boxes_equals_numpy_slices(shape, patch, channels, data, dtype, threads, team):
    size = tuple(data.draw(st.integers(0, min(s, p))) for s, p in zip(shape, patch))
    values = np.arange(3 * channels * int(np.prod(patch)), dtype=np.float64).astype(dtype).reshape(3, channels, *patch)
    output = np.full((channels, *shape), 7, dtype=dtype)
    expected = output.copy()
    boxes = []
    for _ in range(data.draw(st.integers(1, 5))):
        channel, at, item, start = _draw_box(data, shape, patch, size, channels, items=3)
        boxes.append(((channel, *at), (item, channel, *start), size))
        region = tuple(slice(a, a + n) for a, n in zip(at, size))
        expected[(channel, *region)] = values[(item, channel, *(slice(s, s + n) for s, n in zip(start, size)))]
    assert io.write_boxes(output, values, boxes, threads)
    np.testing.assert_array_equal(output, expected)


def test_write_boxes_declines_what_it_cannot_write(rng):
    output, values = np.zeros((2, 6, 6, 6), np.float32), rng.random((2, 2, 4, 4, 4)).astype(np.float32)
    box = ((0, 0, 0, 0), (0, 0, 0, 0, 0), (4, 4, 4))
    assert not io.write_boxes(output, values.astype(np.float64), [box])  # another dtype
    assert not io.write_boxes(output[:, ::2], values, [box])  # not contiguous
    assert not io.write_boxes(output, values[:, :, ::2], [((0, 0, 0, 0), (0, 0, 0, 0, 0), (2, 2, 2))])
    assert not io.write_boxes(output, values, [((0, 3, 0, 0), (0, 0, 0, 0, 0), (4, 4, 4))])  # past the output
    assert not io.write_boxes(output, values, [((0, 0, 0, 0), (0, 0, 1, 0, 0), (4, 4, 4))])  # past the values
    assert not io.write_boxes(output, values, [((2, 0, 0, 0), (0, 0, 0, 0, 0), (1, 1, 1))])  # no channel 2
    assert not io.write_boxes(output, values, [((0, 0, 0, 0), (2, 0, 0, 0, 0), (1, 1, 1))])  # no item 2
    assert not io.write_boxes(output, values, [((0, -1, 0, 0), (0, 0, 0, 0, 0), (1, 1, 1))])
    assert not io.write_boxes(output, values, [((0, 0, 0), (0, 0, 0, 0, 0), (1, 1, 1))])  # three corner values
    assert not io.write_boxes(output, values, [((0,) * 8, (0, 0, 0, 0, 0), (1, 1, 1))])  # eight: two corners?
    assert not io.write_boxes(output, values, [box, ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (1, 1, 1))])  # ragged
    assert not io.write_boxes(output, values, [box, ((0, 0, 0, 0), (0, 0, 0, 0, 0), (1, 1, "a"))])  # not a number
    read_only = output.copy()
    read_only.flags.writeable = False
    assert not io.write_boxes(read_only, values, [box])
    assert not output.any()


def test_write_boxes_bad_arguments_say_what_is_wrong(rng):
    assert base.compiled is not None
    write = base.compiled.write_boxes
    output, values = np.zeros((1, 4, 4, 4), np.float32), rng.random((1, 1, 2, 2, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="box 0 reaches past its buffer"):
        write(output, values, [(0, 0, 3, 2, 8)], 64, 16, 16, 8)  # three planes of values, it has two
    with pytest.raises(ValueError, match="box 1 reaches past its buffer"):
        write(output, values, [(0, 0, 2, 2, 8), (240, 0, 2, 2, 8)], 64, 16, 16, 8)
    with pytest.raises(ValueError, match="box 0 has a negative offset or size"):
        write(output, values, [(-4, 0, 1, 1, 4)], 64, 16, 16, 8)
    with pytest.raises(ValueError, match="strides must not be negative"):
        write(output, values, [(0, 0, 1, 1, 4)], -64, 16, 16, 8)
    with pytest.raises(TypeError, match=r"a box is \(out_offset, values_offset, planes, rows, run\)"):
        write(output, values, [(0, 0, 1)], 64, 16, 16, 8)
    with pytest.raises(TypeError, match="boxes must be a sequence"):
        write(output, values, 3, 64, 16, 16, 8)
    assert not output.any()


# Blending boxes into an output (blend_boxes)


def _blend_supported() -> bool:
    output, values = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1, 1), np.float32)
    return io.blend_boxes(output, values, [(np.zeros((1, 1, 1), np.float32), (0, 0, 0, 0), (0, 0, 0, 0, 0), (1, 1, 1))])


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 20)),
    channels=st.integers(1, 3),
    data=st.data(),
    threads=st.sampled_from([1, 2]),
)
def test_blend_boxes_gives_torchs_lerp_bit_for_bit(shape, channels, data, threads, team):
    import torch

    if not _blend_supported():
        pytest.skip("no compiled blend here (no extension, or a processor without AVX2 and FMA)")
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))
    size = tuple(data.draw(st.integers(1, s)) for s in shape)
    output = torch.randn(channels, *shape, generator=generator) * 100
    values = torch.randn(2, channels, *shape, generator=generator) * 100
    expected = output.clone()
    boxes = []
    for _ in range(data.draw(st.integers(1, 4))):
        channel, at, item, start = _draw_box(data, shape, shape, size, channels, items=2)
        # Ratios around 0.5 (where the formula switches), at 0 and 1, and a strided view of a larger array.
        wide = torch.rand(size[0] + 1, size[1], size[2] + 2, generator=generator)
        wide[0, 0, :2] = torch.tensor([0.5, 0.49999997])
        wide[-1, -1, -2:] = torch.tensor([0.0, 1.0])
        ratio = wide[1:, :, 1 : 1 + size[2]] if data.draw(st.booleans()) else wide[:-1, :, : size[2]].contiguous()
        boxes.append((ratio.numpy(), (channel, *at), (item, channel, *start), size))
        region = tuple(slice(a, a + n) for a, n in zip(at, size))
        source = values[(item, channel, *(slice(s, s + n) for s, n in zip(start, size)))]
        expected[(channel, *region)].lerp_(source, ratio)
    assert io.blend_boxes(output.numpy(), values.numpy(), boxes, threads)
    assert torch.equal(output, expected)


def test_blend_boxes_declines_what_it_cannot_blend(rng):
    output, values = np.zeros((2, 6, 6, 6), np.float32), rng.random((2, 2, 4, 4, 4)).astype(np.float32)
    ratio = np.full((4, 4, 4), 0.5, np.float32)
    box = (ratio, (0, 0, 0, 0), (0, 0, 0, 0, 0), (4, 4, 4))
    assert not io.blend_boxes(output.astype(np.float64), values.astype(np.float64), [box])  # float32 only
    assert not io.blend_boxes(output, values, [(ratio.astype(np.float64), *box[1:])])
    assert not io.blend_boxes(output, values, [(ratio[:, :, ::2], (0, 0, 0, 0), (0, 0, 0, 0, 0), (4, 4, 2))])
    assert not io.blend_boxes(output, values, [(ratio[:2], *box[1:])])  # not the box's shape
    assert not io.blend_boxes(output[:, ::2], values, [box])
    assert not io.blend_boxes(output, values, [(ratio, (0, 3, 0, 0), (0, 0, 0, 0, 0), (4, 4, 4))])  # past the output
    assert not io.blend_boxes(output, values, [(ratio, (0, 0, 0, 0), (2, 0, 0, 0, 0), (4, 4, 4))])  # no item 2
    assert not io.blend_boxes(output, values, [box, (ratio, (0, 0, 0, 0), (0, 0, 0, 0), (4, 4, 4))])  # four
    assert not io.blend_boxes(output, values, [box, (ratio, (0, 0, 0, 0), (0, 0, 0, 0, 0), (4, 4, 4, 1))])
    assert not output.any()


def test_blend_boxes_bad_arguments_say_what_is_wrong(rng):
    assert base.compiled is not None
    blend = base.compiled.blend_boxes
    if not _blend_supported():
        pytest.skip("no compiled blend on this processor")
    output, values = np.zeros((1, 4, 4, 4), np.float32), rng.random((1, 1, 2, 2, 2)).astype(np.float32)
    ratio = np.full((2, 2, 2), 0.5, np.float32)
    with pytest.raises(ValueError, match="box 0 reaches past its buffer"):
        blend(output, values, [(np.full((3, 2, 2), 0.5, np.float32), 0, 0, 3, 2, 2)], 64, 16, 16, 8)
    with pytest.raises(ValueError, match=r"box 0: its ratio must be a float32 \(2, 2, 2\) array"):
        blend(output, values, [(ratio.astype(np.float64), 0, 0, 2, 2, 2)], 64, 16, 16, 8)
    with pytest.raises(ValueError, match="box 0 has a negative or misaligned offset or size"):
        blend(output, values, [(ratio, 2, 0, 2, 2, 2)], 64, 16, 16, 8)
    with pytest.raises(ValueError, match="strides must be non-negative multiples of 4 bytes"):
        blend(output, values, [(ratio, 0, 0, 2, 2, 2)], 63, 16, 16, 8)
    with pytest.raises(TypeError, match=r"a box is \(ratio, out_offset, values_offset, planes, rows, run\)"):
        blend(output, values, [(ratio, 0, 0)], 64, 16, 16, 8)
    assert not output.any()


# Splitting the copies between torch's OpenMP team (threads > 1)


def test_blends_of_overlapping_boxes_split_between_threads_keep_their_order(team, rng):
    # Neighbouring patches overlap: every voxel must see its boxes in order, whichever thread blends it.
    import torch

    if not _blend_supported():
        pytest.skip("no compiled blend here (no extension, or a processor without AVX2 and FMA)")
    shape, size = (24, 6, 10), (9, 6, 10)
    values = torch.from_numpy(rng.standard_normal((8, 1, *size)).astype(np.float32))
    output = torch.zeros(1, *shape)
    expected = output.clone()
    boxes = []
    for item in range(8):
        at = (2 * item, 0, 0)  # each box overlaps the next seven planes' worth of its neighbours
        ratio = torch.from_numpy(rng.random(size).astype(np.float32))
        boxes.append((ratio.numpy(), (0, *at), (item, 0, 0, 0, 0), size))
        expected[0, at[0] : at[0] + size[0]].lerp_(values[item, 0], ratio)
    assert io.blend_boxes(output.numpy(), values.numpy(), boxes, max(team, 2))
    assert torch.equal(output, expected)
    written = np.zeros((1, *shape), np.float32)
    crop = [((0, 2 * item, 0, 0), (item, 0, 0, 0, 0), size) for item in range(8)]
    assert io.write_boxes(written, values.numpy(), crop, max(team, 2))
    by_numpy = np.zeros_like(written)
    for (_, i, _, _), (item, *_), _ in crop:
        by_numpy[0, i : i + size[0]] = values.numpy()[item, 0]
    np.testing.assert_array_equal(written, by_numpy)


def _boxes_in_order(out, values, boxes, strides):
    """What write_boxes means, one box after another: each box's runs copied in turn (bytes)."""
    out_plane, out_row, values_plane, values_row = strides
    for out_offset, values_offset, planes, rows, run in boxes:
        for a in range(planes):
            for b in range(rows):
                at, start = out_offset + a * out_plane + b * out_row, values_offset + a * values_plane + b * values_row
                out[at : at + run] = values[start : start + run]


def test_boxes_whose_planes_cross_the_outputs_are_not_split(team):
    # With a plane stride shorter than a box's plane, a byte's plane no longer says which box plane wrote it:
    # such calls run on one thread, in order, whatever threads asks for.
    assert base.compiled is not None
    output = np.zeros(64, np.uint8)
    values = np.arange(1, 65, dtype=np.uint8).reshape(1, 1, 4, 4, 4)
    boxes = [(0, 0, 4, 2, 8), (4, 16, 4, 2, 8)]  # planes 8 bytes apart, each 2 rows of 8 bytes, 8 apart
    expected = np.zeros(64, np.uint8)
    _boxes_in_order(expected, values.reshape(-1), boxes, (8, 8, 8, 8))
    base.compiled.write_boxes(output, values, boxes, 8, 8, 8, 8, max(team, 2))
    np.testing.assert_array_equal(output, expected)


@settings(max_examples=80, deadline=None)
@given(
    strides=st.tuples(st.integers(0, 24), st.integers(0, 12), st.integers(0, 24), st.integers(0, 12)),
    data=st.data(),
    threads=st.sampled_from([1, 2]),
)
def test_write_boxes_with_any_strides_copy_box_after_box(strides, data, threads, team):
    # Runs longer than a row, rows past a plane, strides of 0: boxes then share bytes in other planes or rows
    # than their own, and every byte must still end as the last box writing it left it (rows are grouped
    # along K only where that cannot change anything).
    assert base.compiled is not None
    output_bytes, values = 96, np.arange(1, 97, dtype=np.uint8)
    boxes = []
    for _ in range(data.draw(st.integers(1, 6))):
        planes, rows, run = (data.draw(st.integers(0, 3)) for _ in range(3))
        if boxes and data.draw(st.booleans()):  # the same start row as the box before, further along it
            previous = boxes[-1]
            planes, rows = previous[2], previous[3]
            out_offset = previous[0] + data.draw(st.integers(0, 6))
        else:
            out_offset = data.draw(st.integers(0, 40))
        box = (out_offset, data.draw(st.integers(0, 40)), planes, rows, run)
        reach = [max(0, n - 1) for n in (planes, rows)]
        ends = (
            box[0] + reach[0] * strides[0] + reach[1] * strides[1],
            box[1] + reach[0] * strides[2] + reach[1] * strides[3],
        )
        inside = not (planes and rows and run) or (ends[0] + run <= output_bytes and ends[1] + run <= 96)
        if inside:
            boxes.append(box)
    output = np.zeros(output_bytes, np.uint8)
    expected = output.copy()
    _boxes_in_order(expected, values, boxes, strides)
    base.compiled.write_boxes(output, values.reshape(1, 1, 1, 1, 96), boxes, *strides, max(team, threads))
    np.testing.assert_array_equal(output, expected)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 4),
    starts=st.lists(st.integers(0, 14), min_size=1, max_size=5),
    sizes=st.lists(st.integers(1, 9), min_size=5, max_size=5),
    others=st.booleans(),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_boxes_along_one_row_are_written_in_their_order(rows, starts, sizes, others, threads, seed, team):
    # Patches one after another along K (the boxes written row by row together), overlapping or not, with
    # a box elsewhere before and after: the output of blends and copies box after box.
    import torch

    generator = torch.Generator().manual_seed(seed)
    shape = (2, 5, 8, 24)
    output = torch.randn(shape, generator=generator)
    values = torch.randn(len(starts) + 2, 2, 3, rows, 9, generator=generator)
    boxes = [((1, 1, 2, k), (n, 1, 0, 0, 0), (3, rows, sizes[n])) for n, k in enumerate(starts) if k + sizes[n] <= 24]
    if others:
        boxes = [((1, 2, 1, 3), (len(starts), 1, 0, 0, 0), (3, rows, 9)), *boxes]
        boxes.append(((1, 0, 3, 5), (len(starts) + 1, 0, 0, 0, 0), (3, rows, 4)))
    ratios = [torch.rand(box[2], generator=generator) for box in boxes]
    expected, copied = output.clone(), output.clone()
    for ratio, (at, start, size) in zip(ratios, boxes):
        region = (at[0], *(slice(a, a + n) for a, n in zip(at[1:], size)))
        source = values[(start[0], start[1], *(slice(s, s + n) for s, n in zip(start[2:], size)))]
        expected[region].lerp_(source, ratio)
        copied[region] = source
    written = output.clone()
    assert io.write_boxes(written.numpy(), values.numpy(), boxes, max(team, threads))
    assert torch.equal(written, copied)
    if _blend_supported():
        blend = [(ratio.numpy(), *box) for ratio, box in zip(ratios, boxes)]
        assert io.blend_boxes(output.numpy(), values.numpy(), blend, max(team, threads))
        assert torch.equal(output, expected)


def test_a_box_in_the_last_partial_plane_of_the_output_is_written_when_split(team):
    # The planes shared out between threads include a last one the output's bytes only partly fill.
    assert base.compiled is not None
    output = np.zeros(70, np.uint8)
    values = np.arange(1, 9, dtype=np.uint8).reshape(1, 1, 1, 1, 8)
    base.compiled.write_boxes(output, values, [(64, 0, 1, 1, 6)], 16, 16, 8, 8, max(team, 2))
    np.testing.assert_array_equal(output[64:], np.arange(1, 7, dtype=np.uint8))
    assert not output[:64].any()
