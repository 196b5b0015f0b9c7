"""What every backend of :mod:`torchpatch.io` fills in (the header, the backend record) and the compiled box copies.

A backend is a record of plain functions, one per thing a file format can do
(read the header, read the voxels, optionally read a region and write), and
the suffixes it handles. :mod:`torchpatch.io` keeps one table from suffix to
backend, so adding a format is adding a record, not another ``if`` chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..typing import TypeAffine, TypeTriplet
from . import buffers
from .team import compiled, split_threads  # the compiled copies (setup.py); optional, torch's otherwise

Array = npt.NDArray[np.generic]


def numpy_dtype(dtype: torch.dtype) -> np.dtype[np.generic]:
    """The numpy dtype of torch's ``dtype`` (``torch.from_numpy`` of an array of it gives ``dtype`` back).

    Raises:
        TypeError: For a dtype numpy has no equivalent of (``torch.bfloat16``,
            the float8 types), naming it.

    Example:
        >>> numpy_dtype(torch.int16), numpy_dtype(torch.bool)
        (dtype('int16'), dtype('bool'))
    """
    if dtype not in _NUMPY_DTYPES:
        try:  # 5 us: kept (the Queue asks per batch and image)
            _NUMPY_DTYPES[dtype] = torch.empty(0, dtype=dtype).numpy().dtype
        except TypeError as error:
            raise TypeError(f"numpy has no dtype for {dtype}") from error
    return _NUMPY_DTYPES[dtype]


_NUMPY_DTYPES: dict[torch.dtype, np.dtype[np.generic]] = {}  # numpy_dtype's answers


@dataclass(frozen=True)
class Header:
    """What a file says about its image before any voxel is read.

    Example:
        >>> Header((4, 4, 1), 1, np.eye(4), np.dtype('uint8')).num_channels
        1
    """

    spatial_shape: TypeTriplet
    num_channels: int
    affine: TypeAffine
    dtype: np.dtype[np.generic]


@dataclass(frozen=True)
class Backend:
    """One file format: the suffixes it handles and what it can do with them.

    Every function takes a resolved :class:`~pathlib.Path` (a folder for
    DICOM) and returns ``(C, I, J, K)`` voxels in C order with a RAS+ affine.

    Attributes:
        name: Short name, for messages.
        suffixes: Lower-case suffixes (``.nii.gz`` is one); empty for folders.
        read_header: Shape, channels, affine and dtype without the voxels.
        read_image: All voxels and the affine.
        read_region: ``(path, index_ini, index_fin)`` to the voxels of that
            box, reading only their bytes; ``None`` when the format cannot.
        write: ``(array, affine, path)``; ``None`` when the format is read-only.
        read_file_order: Like ``read_image``, the voxels left in the order
            decoding gives (see :func:`~torchpatch.io.read_image_file_order`);
            ``None`` when the format has no such step.
        atomic_writes: Whether a file is written under a temporary name and
            renamed (not for headers that name a second file: ``.mhd``).

    Example:
        >>> backend = Backend('raw', ('.raw',), read_header=print, read_image=print)
        >>> backend.read_region is None, backend.atomic_writes
        (True, True)
    """

    name: str
    suffixes: tuple[str, ...]
    read_header: Callable[..., Header]
    read_image: Callable[..., tuple[Array, TypeAffine]]
    read_region: Callable[..., Array] | None = None
    write: Callable[..., None] | None = None
    atomic_writes: bool = True
    read_file_order: Callable[..., tuple[Array, TypeAffine]] | None = None


def copy_boxes(out: torch.Tensor, boxes: Sequence[tuple[Array, Sequence[int]]], threads: int = 1) -> bool:
    """Copy boxes of ``(C, I, J, K)`` arrays into the rows of ``out`` by the compiled extension, in one call.

    ``out`` is a contiguous CPU ``(N, C, a, b, c)`` tensor; ``boxes`` gives,
    per row, an array of ``out``'s dtype and the box's first voxel
    ``(i0, j0, k0)``, the box lying inside the array. The arrays are all
    C-ordered, or all in the files' order (each channel F-ordered, the
    channels one after the other: what :func:`~torchpatch.io.read_image_file_order`
    gives), whose boxes are transposed as they are copied (16 boxes of 64³
    out of a 160x192x160 volume, one thread: int16 0.9 ms, float32 1.9 ms,
    against 2.0 and 4.5 ms to reorder the volume and copy them). C-ordered
    boxes are copied run by run (along K; a plane at a time when a box spans
    its source's K), the runs of a box's next plane prefetched while one
    is copied, on this thread without the GIL: what the Queue's batches take
    from the decode-once cache's memory maps and what every cut of loaded
    voxels copies (:meth:`~torchpatch.regions.RegionReads.read_regions`).
    The queue benchmark's 256 boxes of 64³ from 16 maps of 160x192x160
    (image and uint8 label, one thread): int16 12.7 ms, float32 20.2 ms,
    against 19.3-19.9 and 26.4-28.4 ms without the prefetching. A grid's
    patches along K are copied row by row together (8.7-9.5 against 13-19
    ms for 125 out of a 256³ volume). With ``threads`` > 1
    (:func:`~torchpatch.io.team_threads`), C-ordered boxes are split
    between the threads of torch's OpenMP team.

    Returns:
        Whether it copied: ``False`` (nothing written) without the extension
        or when an array does not fit these terms.

    Example:
        >>> source = np.arange(2 * 4 * 4 * 4, dtype=np.int16).reshape(2, 4, 4, 4)
        >>> out = torch.empty(2, 2, 2, 2, 2, dtype=torch.int16)
        >>> copied = copy_boxes(out, [(source, (0, 0, 0)), (source, (2, 1, 2))])
        >>> not copied or torch.equal(out[1], torch.from_numpy(source[:, 2:4, 1:3, 2:4]))
        True
    """
    target = _target(out, len(boxes))
    if target is None:
        return False
    channels, size_a, size_b, size_c = target.shape[1:]
    if not boxes or boxes[0][0].flags.c_contiguous:
        items = box_items(boxes, out.dtype, channels)
        return items is not None and _copy_items(target, items, threads)
    items = []
    for array, corner in boxes:
        if not _fits(array, target.dtype, channels):
            return False
        # In the files' order, each channel's memory is (K, J, I) in C order and the channels follow each other.
        memory = array.transpose(0, 3, 2, 1)
        if not memory.flags.c_contiguous:
            return False
        items.append((memory, *array.shape[1:], *corner))
    scratch = buffers.thread_scratch(2 * size_a * size_b * size_c * target.itemsize + 64 * size_c)
    assert compiled is not None  # (_target)
    compiled.copy_boxes(target, items, size_a, size_b, size_c, channels, target.itemsize, True, scratch)
    return True


def box_items(boxes: Sequence[tuple[Array, Sequence[int]]], dtype: torch.dtype, channels: int) -> list[Any] | None:
    """Boxes of C-ordered ``(C, I, J, K)`` arrays checked for :func:`copy_box_items`, or ``None`` where they do not fit.

    What :func:`copy_boxes` checks of C-ordered sources (``dtype``, ``channels``, C order), once: the Queue
    checks the batches it pops ahead (warm caches) and copies each later, when it is asked for.

    Example:
        >>> source = np.zeros((1, 4, 4, 4), dtype=np.float32)
        >>> items = box_items([(source, (0, 0, 0))], torch.float32, 1)   # None without the extension
        >>> items is None or len(items) == 1, box_items([(source, (0, 0, 0))], torch.int16, 1)
        (True, None)
    """
    if compiled is None or dtype == torch.bfloat16:
        return None
    expected = numpy_dtype(dtype)
    items = []
    for array, corner in boxes:
        if not _fits(array, expected, channels) or not array.flags.c_contiguous:
            return None
        items.append((array, *array.shape[1:], *corner))
    return items


def _fits(array: Array, dtype: np.dtype[Any], channels: int) -> bool:
    """Whether ``array`` is a ``(C, I, J, K)`` box source of ``dtype`` with ``channels`` channels."""
    return bool(array.dtype == dtype and array.ndim == 4 and array.shape[0] == channels)


def copy_box_items(out: torch.Tensor, items: Sequence[Any], threads: int = 1) -> bool:
    """Copy boxes checked by :func:`box_items` (of ``out``'s dtype and channels) into the rows of ``out``.

    ``out`` is a contiguous CPU ``(N, C, a, b, c)`` tensor with a row per item, each box inside its
    array; ``threads`` as in :func:`copy_boxes`. ``False`` (nothing written) when ``out`` does not fit.

    Example:
        >>> source = np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4)
        >>> out, items = torch.empty(1, 1, 2, 2, 2), box_items([(source, (1, 1, 1))], torch.float32, 1)
        >>> items is None or (copy_box_items(out, items) and out[0, 0, 0, 0].tolist() == [21.0, 22.0])
        True
    """
    target = _target(out, len(items))
    return target is not None and _copy_items(target, items, threads)


def _target(out: torch.Tensor, count: int) -> Array | None:
    """``out`` as the array the compiled copies write, when it is a contiguous CPU ``(count, C, a, b, c)`` tensor."""
    usable = compiled is not None and out.device.type == "cpu" and out.dim() == 5 and out.is_contiguous()
    return out.numpy() if usable and count == out.shape[0] and out.dtype != torch.bfloat16 else None


def _copy_items(target: Array, items: Sequence[Any], threads: int) -> bool:
    """The compiled copy of C-ordered ``items`` (checked) into the rows of ``target`` (:func:`_target`)."""
    assert compiled is not None
    channels, a, b, c = target.shape[1:]
    threads = split_threads(threads, target.nbytes)
    compiled.copy_boxes(target, items, a, b, c, channels, target.itemsize, False, None, threads)
    return True


def _writable_pair(output: Array, values: Array, dtype: np.dtype[Any] | None = None) -> bool:
    """Whether ``output`` (``(C, I, J, K)``) and ``values`` (``(B, C, I, J, K)``) suit the compiled writes.

    C-contiguous, ``output`` writable, one dtype (``dtype`` when given), and the extension there.
    """
    if compiled is None or output.ndim != 4 or values.ndim != 5 or output.dtype != values.dtype:
        return False
    if dtype is not None and output.dtype != dtype:
        return False
    return bool(output.flags.c_contiguous and output.flags.writeable and values.flags.c_contiguous)


def _box_offsets(output: Array, values: Array, boxes: Sequence[Sequence[Any]]) -> tuple[Array, Array, Array] | None:
    """Byte offsets in ``output`` and ``values`` and sizes of boxes ``(..., at, start, size)``, all checked at once."""
    try:
        at, start, size = (
            np.array([box[n - 3] for box in boxes], np.int64).reshape(-1, w) for n, w in enumerate((4, 5, 3))
        )
    except (ValueError, TypeError, OverflowError):
        return None  # ragged, not integers, or another number of corners
    if not len(at) == len(start) == len(size) == len(boxes) or min(at.min(initial=0), start.min(initial=0)) < 0:
        return None
    if (size < 0).any() or (at[:, 0] >= output.shape[0]).any() or (at[:, 1:] + size > output.shape[1:]).any():
        return None
    if (start[:, :2] >= values.shape[:2]).any() or (start[:, 2:] + size > values.shape[2:]).any():
        return None
    return at @ np.array(output.strides, np.int64), start @ np.array(values.strides, np.int64), size


def _plane_and_row_strides(output: Array, values: Array) -> tuple[int, int, int, int]:
    """The byte strides between planes and rows of ``output`` and of ``values``, as the compiled writes take them."""
    return output.strides[1], output.strides[2], values.strides[2], values.strides[3]


def write_boxes(
    output: Array, values: Array, boxes: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]], threads: int = 1
) -> bool:
    """Copy boxes of ``values`` into boxes of ``output`` by the compiled extension, in one call.

    ``output`` is a C-contiguous ``(C, I, J, K)`` array and ``values`` a
    C-contiguous ``(B, C, I, J, K)`` one of the same dtype; each box is the
    corner ``(c, i, j, k)`` it is written at, the corner ``(b, c, i, j, k)``
    it is read from and its size ``(a, b, c)``, inside both arrays. What an
    aggregator does with a batch of patch outputs in crop mode, without the
    GIL: boxes starting on the same output row (patches along K) are copied
    row by row together, the output streamed in whole rows (the grid
    benchmark's crop aggregation, 8 channels, one thread: 89-95 against
    123-125 ms box by box; its writes box by box 75.6, numpy's 93.5). With
    ``threads`` > 1 (:func:`~torchpatch.io.team_threads`) the output's planes are shared
    out between the threads of torch's OpenMP team, each plane written by
    one thread in the boxes' order (the same bytes).

    Returns:
        Whether it copied: ``False`` (nothing written) without the extension
        or when the arrays or boxes do not fit these terms.

    Example:
        >>> output, values = np.zeros((1, 4, 4, 4), np.float32), np.ones((2, 1, 2, 2, 2), np.float32)
        >>> copied = write_boxes(output, values, [((0, 1, 1, 1), (1, 0, 0, 0, 0), (2, 2, 2))])
        >>> not copied or (output.sum(), output[0, 1:3, 1:3, 1:3].min()) == (8.0, 1.0)
        True
    """
    if not _writable_pair(output, values):
        return False
    found = _box_offsets(output, values, boxes)
    if found is None:
        return False
    item = output.dtype.itemsize
    jobs = [(t, f, a, b, c * item) for t, f, (a, b, c) in zip(*(array.tolist() for array in found))]
    assert compiled is not None
    if threads > 1:
        threads = split_threads(threads, sum(job[2] * job[3] * job[4] for job in jobs))
    compiled.write_boxes(output, values, jobs, *_plane_and_row_strides(output, values), threads)
    return True


def blend_boxes(
    output: Array,
    values: Array,
    boxes: Sequence[tuple[Array, Sequence[int], Sequence[int], Sequence[int]]],
    threads: int = 1,
) -> bool:
    """Blend boxes of ``values`` into boxes of ``output`` as ``lerp_`` does, by the compiled extension, in one call.

    ``output`` (``(C, I, J, K)``) and ``values`` (``(B, C, I, J, K)``) are
    C-contiguous float32 arrays; each box is its ratio (a float32 array of
    the box's shape, contiguous along its last axis), the corner
    ``(c, i, j, k)`` it is blended at, the corner ``(b, c, i, j, k)`` it is
    read from and its size ``(a, b, c)``: ``out += (values - out) * ratio``,
    rounded as torch's vectorised ``lerp_`` rounds it (one fused
    multiply-add), so the bits are torch's: a blending aggregator's writes,
    row groups and ``threads`` as in :func:`write_boxes` (8 channels, one
    thread: 120-121 ms against 185-193 ms box by box).

    Returns:
        Whether it blended: ``False`` (nothing written) without the
        extension, on a processor without AVX2 and FMA, or when the arrays
        or boxes do not fit these terms.

    Example:
        >>> output, values = np.zeros((1, 2, 2, 2), np.float32), np.ones((1, 1, 2, 2, 2), np.float32)
        >>> ratio = np.full((2, 2, 2), 0.25, np.float32)
        >>> blended = blend_boxes(output, values, [(ratio, (0, 0, 0, 0), (0, 0, 0, 0, 0), (2, 2, 2))])
        >>> not blended or float(output.max()) == 0.25
        True
    """
    float32 = np.dtype(np.float32)
    if not _writable_pair(output, values, float32):
        return False
    found = _box_offsets(output, values, boxes)
    if found is None:
        return False
    jobs = []
    for (ratio, *_), t, f, (a, b, c) in zip(boxes, *(array.tolist() for array in found)):
        fits = ratio.dtype == float32 and ratio.shape == (a, b, c) and min(ratio.strides) >= 0
        if not fits or (c > 1 and ratio.strides[2] != 4):
            return False
        jobs.append((ratio, t, f, a, b, c))
    assert compiled is not None
    if threads > 1:
        threads = split_threads(threads, 4 * sum(job[3] * job[4] * job[5] for job in jobs))
    return bool(compiled.blend_boxes(output, values, jobs, *_plane_and_row_strides(output, values), threads))


__all__ = [
    "Array",
    "Backend",
    "Header",
    "blend_boxes",
    "box_items",
    "copy_box_items",
    "copy_boxes",
    "numpy_dtype",
    "write_boxes",
]
