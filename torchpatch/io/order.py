"""Volumes into C order: files store the first axis fastest, torch's ``(C, I, J, K)`` arrays the last.

A NIfTI or SimpleITK volume of shape ``(I, J, K)`` decodes with ``i``
fastest (each channel F-ordered, the channels one after the other: "the
files' order"). :func:`c_order` makes such voxels C-ordered, by the compiled
extension (``torchpatch.io.transpose``, :func:`reorder_backend`) or torch's
transposes without it; :func:`copy_blocks` serves other layouts.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from . import buffers
from .base import Array
from .team import compiled  # the compiled reorder (setup.py); optional

#: :func:`copy_blocks` copies blocks of (every i, 16 j, 16 k).
_BLOCK_J, _BLOCK_K = 16, 16


def copy_blocks(out: Array, source: Array) -> None:
    """``out[...] = source`` for arrays ending in ``(I, J, K)``, by blocks of (every i, 16 j, 16 k).

    With ``source`` in the files' order (i fastest) and ``out`` in C order,
    each block reads runs along i and writes runs of 16 along k, both in
    cache; it serves where :func:`c_order`'s whole-channel reorder cannot (a slab of
    slices written into part of a larger array, layouts other than F order).

    Example:
        >>> source = np.asfortranarray(np.arange(60).reshape(3, 4, 5))
        >>> out = np.empty((3, 4, 5), source.dtype)
        >>> copy_blocks(out, source)
        >>> bool((out == source).all())
        True
    """
    size_j, size_k = source.shape[-2:]
    for k in range(0, size_k, _BLOCK_K):
        for j in range(0, size_j, _BLOCK_J):
            out[..., j : j + _BLOCK_J, k : k + _BLOCK_K] = source[..., j : j + _BLOCK_J, k : k + _BLOCK_K]


def reorder_backend() -> str:
    """What reorders decoded volumes into C order: ``'compiled'`` (the C extension) or ``'torch'``.

    The C extension (``torchpatch.io.transpose``, built at install when a C
    compiler is there) is 1.4-6x faster than torch's transposes; without it
    the same bytes come out, more slowly.

    Example:
        >>> reorder_backend() in ('compiled', 'torch')
        True
    """
    return "torch" if compiled is None else "compiled"


#: Bytes of the j planes a one-pass reorder transposes at a time (in a core's cache; 8 planes of a 512x512x96 int16).
REORDER_BLOCK_BYTES = 768 << 10


def _reorder_channel(source: Array, out: Array) -> None:
    """``out[...] = source`` for an ``(I, J, K)`` ``source`` in F order and ``out`` in C order.

    The memory of ``source`` is a ``(K, J, I)`` array in C order. The
    compiled extension (:func:`reorder_backend`) writes an ``out`` apart
    from ``source`` in one pass (a few j planes transposed at a time in the
    cache, in 16-byte vector tiles, their runs of K streamed out): 512x512x96
    int16 6.7 ms on one core, 15.9 ms by the two passes below. ``out`` in ``source``'s own
    memory takes two passes through a scratch as large: ``(K, J * I)``
    transposed into ``(J, I, K)``, then runs of K moved into ``(I, J, K)``.
    Without the extension, torch's blocked 2D transposes do those passes an
    element at a time (as signed integers of the element's size).
    """
    size_i, size_j, size_k = source.shape
    as_int = np.dtype(f"i{source.dtype.itemsize}")
    flat_source = source.reshape(-1, order="F").view(as_int)
    flat_out = out.reshape(-1).view(as_int)
    if compiled is not None and not np.may_share_memory(source, out):
        plane = size_i * size_k * as_int.itemsize
        scratch = buffers.thread_scratch(plane * max(1, min(size_j, REORDER_BLOCK_BYTES // max(plane, 1))))
        compiled.reverse(flat_source, flat_out, scratch, size_i, size_j, size_k, as_int.itemsize)
        return
    # The same scratch subject after subject (no first-touch faults): see io.buffers.
    scratch = buffers.empty((size_j * size_i, size_k), as_int)
    if compiled is not None:
        compiled.reverse(flat_source, flat_out, scratch, size_i, size_j, size_k, as_int.itemsize)
        return
    with warnings.catch_warnings():
        # A read-only source (a memory map) is only read here.
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        matrix = torch.from_numpy(flat_source).view(size_k, size_j * size_i)
    torch.from_numpy(scratch).copy_(matrix.t())
    target = torch.from_numpy(flat_out).view(size_i, size_j, size_k)
    target.copy_(torch.from_numpy(scratch).view(size_j, size_i, size_k).transpose(0, 1))


def in_file_order(array: Array) -> bool:
    """Whether a ``(C, I, J, K)`` array is in the files' order: each channel F-ordered, the channels one block each.

    Example:
        >>> in_file_order(np.zeros((2, 3, 4, 5)).transpose(0, 3, 2, 1)), in_file_order(np.zeros((2, 3, 4, 5)))
        (True, False)
    """
    return array.ndim == 4 and array.transpose(0, 3, 2, 1).flags.c_contiguous and not array.flags.c_contiguous


def _channels_in_f_order(array: Array) -> bool:
    """Whether every channel of a ``(C, I, J, K)`` array is one F-ordered block of plain numbers."""
    if array.ndim != 4 or array.dtype.itemsize not in (1, 2, 4, 8) or array.dtype.kind not in "biuf":
        return False
    return all(array[channel].flags.f_contiguous for channel in range(array.shape[0]))


def _own_memory_in_c_order(array: Array) -> Array | None:
    """``array``'s memory viewed as a C-ordered array of its shape, when its channels are consecutive blocks.

    ``None`` when it cannot be (read-only, channels apart, or misaligned).
    """
    channels_last = np.moveaxis(array, 0, -1)
    if not (array.flags.writeable and array.flags.aligned and channels_last.flags.f_contiguous):
        return None
    return channels_last.reshape(-1, order="F").reshape(array.shape)


def c_order(array: Array, reuse: bool = False) -> Array:
    """``array`` (``(C, I, J, K)``) in C order: itself if it already is, else a copy.

    Files store the first axis fastest (NIfTI, and SimpleITK's ``(K, J, I)``
    arrays). Channels that are each in F order (what those readers give) are
    reordered by the compiled extension (:func:`reorder_backend`) in one
    pass into a second buffer (a few j planes transposed at a time in the
    cache, their runs of K streamed out), or in two passes through a
    scratch where the copy goes into the input's own memory; any other
    layout goes through :func:`copy_blocks`.

    Args:
        array: The voxels.
        reuse: Whether ``array`` is given up (a reader's freshly decoded
            buffer, which nothing else uses): the copy then goes into a
            buffer of :mod:`torchpatch.io.buffers`, taken again once
            unused, instead of fresh memory (without the compiled extension,
            into ``array``'s own memory).

    Example:
        >>> fortran = np.asfortranarray(np.arange(24.0).reshape(2, 3, 4))[None]
        >>> copy = c_order(fortran)
        >>> copy.flags.c_contiguous, bool((copy == fortran).all())
        (True, True)
    """
    if array.flags.c_contiguous:
        return array
    if _channels_in_f_order(array) and min(array.shape[1:]) > 0:
        out = _own_memory_in_c_order(array) if reuse and compiled is None else None
        if out is None:
            out = buffers.empty(array.shape, array.dtype) if reuse else np.empty(array.shape, array.dtype)
        for channel in range(array.shape[0]):
            # The whole channel is read into the scratch before its block is written.
            _reorder_channel(array[channel], out[channel])
        return out
    if array.ndim != 4:
        return np.ascontiguousarray(array)
    out = np.empty(array.shape, array.dtype)
    copy_blocks(out, array)
    return out


__all__ = ["REORDER_BLOCK_BYTES", "c_order", "copy_blocks", "in_file_order", "reorder_backend"]
