"""Buffers the readers take again once nothing uses them (torchpatch/io/buffers.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from torchpatch import ScalarImage
from torchpatch.io import buffers
from torchpatch.io.buffers import Recycler
from torchpatch.io.nifti import read_nifti, write_nifti


def test_a_free_buffer_is_handed_out_again():
    recycler = Recycler(min_bytes=0)
    first = recycler.take(4096)
    pointer = first.ctypes.data
    del first
    again = recycler.take(4000)
    assert again.ctypes.data == pointer and again.nbytes == 4000 and again.dtype == np.uint8


@pytest.mark.parametrize(
    "keep",
    [
        lambda a: a[10:20],  # a numpy view
        lambda a: a.view(np.int16).reshape(2, -1),  # a view of another dtype
        lambda a: torch.from_numpy(a),  # a tensor
        lambda a: torch.from_numpy(a)[5:].numpy(),  # an array of a tensor view
    ],
)
def test_a_buffer_in_use_is_never_handed_out(keep):
    recycler = Recycler(min_bytes=0)
    first = recycler.take(4096)
    first[:] = 7
    kept = keep(first)
    del first
    for _ in range(3):
        other = recycler.take(4096)
        other[:] = 1
        assert not np.shares_memory(other, np.asarray(kept))
    assert bool((np.asarray(kept).reshape(-1).view(np.uint8) == 7).all())


def test_the_smallest_fitting_free_buffer_is_taken():
    recycler = Recycler(min_bytes=0)
    big, small = recycler.take(8000), recycler.take(3000)
    pointers = big.ctypes.data, small.ctypes.data
    del big, small
    assert recycler.take(2500).ctypes.data == pointers[1]
    # Twice the request at most: a 1000-byte request does not take the 3000-byte buffer.
    assert recycler.take(1000).ctypes.data not in pointers


def test_limits_on_count_and_bytes():
    recycler = Recycler(kept=2, kept_bytes=10_000, min_bytes=100)
    assert recycler.take(50).base is None  # below min_bytes: a plain array, not kept
    assert recycler.take(6000).base is None  # over half of kept_bytes: not kept
    held = [recycler.take(1000 + i) for i in range(4)]  # all in use: the oldest are let go
    assert "2 buffers" in repr(recycler)
    del held
    recycler.clear()
    assert "0 buffers" in repr(recycler)


def test_threads_never_get_the_same_buffer():
    recycler = Recycler(min_bytes=0)
    errors = []

    def work(value: int) -> None:
        for _ in range(200):
            buffer = recycler.take(2048)
            buffer[:] = value
            if not (buffer == value).all():
                errors.append(value)

    threads = [threading.Thread(target=work, args=(v,)) for v in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_empty_has_the_shape_and_dtype():
    array = buffers.empty((3, 5), np.float32)
    assert array.shape == (3, 5) and array.dtype == np.float32 and array.flags.c_contiguous


def test_a_kept_image_is_intact_while_others_are_read(tmp_path):
    rng = np.random.default_rng(0)
    volumes = [rng.integers(-1000, 1000, (1, 96, 80, 64), dtype=np.int16) for _ in range(3)]
    paths = []
    for index, volume in enumerate(volumes):
        paths.append(tmp_path / f"{index}.nii.gz")
        write_nifti(volume, np.eye(4), paths[-1])
    kept = ScalarImage(paths[0])
    kept.load()
    for _ in range(3):
        for path, volume in zip(paths[1:], volumes[1:], strict=True):
            data, _ = read_nifti(path)
            assert np.array_equal(data, volume)
    assert np.array_equal(kept.data.numpy(), volumes[0])


def test_a_dropped_image_lends_its_memory_to_the_next_read(tmp_path):
    # Above io.buffers.MIN_BYTES (smaller reads get plain np.empty, reused or not as malloc likes).
    volume = np.random.default_rng(1).integers(0, 255, (1, 128, 96, 96), dtype=np.uint8)
    path = tmp_path / "x.nii.gz"
    write_nifti(volume, np.eye(4), path)
    first, _ = read_nifti(path)
    pointer = first.ctypes.data
    del first
    second, _ = read_nifti(path)
    assert second.ctypes.data == pointer and np.array_equal(second, volume)
