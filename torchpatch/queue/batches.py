"""The Queue's batches: popped patches copied once into reused batch buffers.

A loader asks the Queue for a batch of indices at a time
(``__getitems__``); the Queue pops that many patches and copies each one
straight into row ``b`` of one ``(B, C, *patch)`` tensor per image, from a
worker's stack or, for subjects of the decode-once cache, from the memory
map itself (deferred patches: the cut and the collation are one copy)::

    pops: (stack, index) x B  ──read_into──>  buffers[name] (B, C, *patch), reused
                                              └─> StackedPatches: collate_subjects returns them as they are

Buffers are reused once nothing refers to them any more (the training loop
dropped the batch), so a warm epoch faults no fresh pages in; a batch that
is kept stays untouched, and the next one gets another buffer. They are
memory maps of their own, never blocks of the C heap: long-lived blocks
there would pin the heap between the training step's temporaries, which
then could not be given back (see :func:`~torchpatch.queue.workers.steady_heap`).
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import io
from ..constants import DATA, LOCATION
from ..image import Image
from ..loader import StackedPatches, collate_values, empty_batch, image_batch
from ..patches import Patches
from ..subject import Subject

#: Buffers of at least this many bytes are memory maps of their own (smaller ones come from numpy).
MAPPED_BYTES = 1 << 20

#: Transparent huge pages' size (x86-64, most arm64 kernels): where a mapped buffer starts.
HUGE_PAGE = 2 << 20

#: Buffers kept per (shape, dtype): a loop holds the last batch while the next one is handed
#: out and two more are made ahead (:data:`~torchpatch.queue.queue.AHEAD`).
KEPT = 5


class BufferRing:
    """Batch buffers handed out again once every tensor made from them is gone.

    Each buffer is a numpy array; the tensors handed out are
    ``torch.from_numpy`` views, whose storage holds a reference to the array
    until the last tensor (or view, or saved activation) using it dies. So
    the array's reference count says when it is free.

    Example:
        >>> ring = BufferRing()
        >>> first = ring.take((2, 3), torch.float32)
        >>> ring.take((2, 3), torch.float32).data_ptr() == first.data_ptr()   # first still held
        False
        >>> pointer = first.data_ptr(); del first
        >>> ring.take((2, 3), torch.float32).data_ptr() == pointer
        True
    """

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._buffers: dict[tuple[tuple[int, ...], torch.dtype], list[np.ndarray[Any, Any]]] = {}
        self._free = 0  # the reference count of a buffer held only by this ring and a local name

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A ``shape`` tensor of ``dtype`` that nothing else refers to (uninitialised)."""
        size = tuple(int(v) for v in shape)
        if dtype == torch.bfloat16:
            return empty_batch(size, dtype)
        buffers = self._buffers.setdefault((size, dtype), [])
        for array in buffers:
            # Held here and by the loop variable only: no tensor uses it any more.
            if sys.getrefcount(array) <= self._free:
                return torch.from_numpy(array)
        array = _off_heap(size, io.numpy_dtype(dtype))
        if len(buffers) >= self.kept:
            buffers.pop(0)  # still held by the training loop: it goes with its last tensor
        buffers.append(array)
        if not self._free:
            self._free = sys.getrefcount(array)
        return torch.from_numpy(array)


def _off_heap(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """An uninitialised array in an anonymous memory map of its own (small ones from numpy's heap).

    Starting on a 2 MiB boundary and advised for transparent huge pages, as
    numpy does for its large arrays: a new buffer faults in 2 MiB at a time.
    The map goes with the array.

    Example:
        >>> array = _off_heap((4, 1 << 18), np.dtype(np.float32))
        >>> array.shape, array.ctypes.data % HUGE_PAGE, array.flags.writeable
        ((4, 262144), 0, True)
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MAPPED_BYTES:
        return np.empty(shape, dtype=dtype)
    # Private: Python's default for anonymous maps is shared memory, which gets no huge pages.
    private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
    block = mmap.mmap(-1, nbytes + HUGE_PAGE, **private)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        block.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(block, dtype=np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def assemble(entries: Sequence[tuple[Patches, int]], ring: BufferRing, parallel: bool = False) -> Sequence[Subject]:
    """The patches ``entries`` (a stack and a row each), their voxels copied into one batch buffer per image.

    When every patch is deferred (boxes of memory maps), each image's
    boxes are copied by one call of :func:`torchpatch.io.copy_boxes`
    (compiled): on this thread, or with ``parallel`` split between the
    threads of torch's OpenMP team (:func:`torchpatch.io.team_threads`;
    patches of workers' stacks too; a
    cached warm epoch of ``benchmarks/queue.py`` with default threads, CT
    36.7-38.2 against 28.0-30.2 ms, MR 43.2-50.7 against 32.4-44.6 ms by
    ``torch.stack`` of the boxes' views). Without the extension or the
    team, and with a single torch thread, each image's boxes are copied by
    one ``torch.stack`` of their views
    (:meth:`~torchpatch.patches.Patches.box_view`); otherwise, and when a
    box reaches past its source, box by box
    (:meth:`~torchpatch.patches.Patches.read_into`: stacks by numpy on this
    thread).

    Returns a :class:`~torchpatch.loader.StackedPatches` when every patch
    has the same images, shapes and dtypes (else a plain list of patches, as
    single pops would give): its patch subjects are made only when asked
    for, and :func:`~torchpatch.loader.collate_subjects` collates it from
    the stacks (:func:`collate_rows`).

    Example:
        >>> from torchpatch import ScalarImage, DATA
        >>> from torchpatch.loader import collate_subjects
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)))
        >>> stack = subject.cut([[0, 0, 0, 2, 2, 1], [2, 2, 0, 4, 4, 1]])
        >>> batch = collate_subjects(assemble([(stack, 1), (stack, 0)], BufferRing()))
        >>> batch['t1'][DATA][:, 0, 0, :, 0].tolist()
        [[10.0, 11.0], [0.0, 1.0]]
    """
    # Each stack once: a batch's rows come from a few subjects (and every object touched here is
    # cold after the step: 38 us of Python a batch with warm caches, 154 us after a 48 MB stream).
    stacks = _distinct(entries)
    layout = stacks[0].layout()
    if any(stack.layout() != layout for stack in stacks[1:]):
        return [stack[index] for stack, index in entries]
    count = len(entries)
    stacked = {name: ring.take((count, *shape), dtype) for name, (shape, dtype) in layout.items()}
    # Where read_into would copy with torch (deferred boxes on torch's threads with parallel;
    # anything inline with one thread, where numpy's and torch's copies are alike), one
    # torch.stack per image copies the batch's boxes: the thread takes the GIL back once per
    # image rather than once per box (a thread building the batch during the step waited
    # 20-25 ms an epoch for it, MR, one thread).
    deferred = all(stack.deferred for stack in stacks)
    by_torch = torch.get_num_threads() == 1 or (parallel and deferred)
    team = io.team_threads() if parallel else 1
    for name, out in stacked.items():
        if _compiled_copies(parallel, team, deferred):
            # One compiled call copies the batch's boxes of this image (of memory maps, or patches a
            # worker stacked): on this thread (a tenth faster than torch.stack, and the GIL taken
            # back once) or, with parallel, split between the threads of torch's OpenMP team.
            origins = _origins(entries, name)
            if origins is not None and io.copy_boxes(out, origins, threads=team):
                continue
        views = [stack.box_view(name, index) for stack, index in entries] if by_torch else []
        boxes = [view for view in views if view is not None]
        if by_torch and len(boxes) == count:
            torch.stack(boxes, out=out)
            continue
        for row, (stack, index) in enumerate(entries):
            stack.read_into(name, index, out[row], parallel=parallel)
    locations = _locations(entries)
    return _batch(entries, stacked, locations, functools.partial(collate_rows, entries, stacked, locations, stacks))


def _distinct(entries: Sequence[tuple[Patches, int]]) -> list[Patches]:
    """The stacks of ``entries``, each once, in order of first appearance."""
    return list({id(stack): stack for stack, _ in entries}.values())


def _locations(entries: Sequence[tuple[Patches, int]]) -> torch.Tensor:
    """The ``(B, 6)`` locations of ``entries``."""
    return torch.from_numpy(np.array([stack.rows[index] for stack, index in entries], dtype=np.int64))


def _compiled_copies(parallel: bool, team: int, deferred: bool) -> bool:
    """Whether a batch's boxes are copied by one compiled call per image (else by torch or numpy)."""
    return team > 1 or (deferred and not parallel)


def _origins(entries: Sequence[tuple[Patches, int]], name: str) -> list[tuple[Any, tuple[int, int, int]]] | None:
    """Each entry's box of image ``name`` for :func:`.io.copy_boxes`; ``None`` when one reaches past its source."""
    origins = []
    for stack, index in entries:
        origin = stack.box_origin(name, index)
        if origin is None:
            return None
        origins.append(origin)
    return origins


def _batch(
    entries: Sequence[tuple[Patches, int]],
    stacked: dict[str, torch.Tensor],
    locations: torch.Tensor,
    collate: Callable[[], dict[str, Any] | None],
) -> Sequence[Subject]:
    """The batch of ``entries`` with voxels ``stacked``: patch subjects made when asked for, collated by ``collate``."""

    def make(row: int) -> Subject:
        stack, index = entries[row]
        return stack.patch(index, {name: out[row] for name, out in stacked.items()})

    return StackedPatches.deferred(len(entries), make, {**stacked, LOCATION: locations}, collate)


class PreparedBatch:
    """A batch popped ahead of its turn: its boxes checked and its collation made, its voxels not copied yet.

    The Queue pops the batches of a warm epoch ahead, back to back, while
    what that touches is still in the caches (see
    ``Queue.__getitems__``); each is copied when it is
    asked for, by :meth:`assemble`, the same batch :func:`assemble` makes.

    Example:
        >>> from torchpatch import ScalarImage
        >>> stack = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))).cut([[0, 0, 0, 2, 2, 1]])
        >>> PreparedBatch.of([(stack, 0)]) is None   # voxels already cut: nothing to prepare
        True
    """

    def __init__(
        self,
        entries: Sequence[tuple[Patches, int]],
        layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
        items: Mapping[str, Sequence[Any]],
        locations: torch.Tensor,
        metadata: dict[str, Any] | None,
    ) -> None:
        self.entries = list(entries)
        self.layout = dict(layout)
        self.items = dict(items)
        self.locations = locations
        self.metadata = metadata

    @classmethod
    def of(cls, entries: Sequence[tuple[Patches, int]]) -> PreparedBatch | None:
        """``entries`` prepared, when :func:`assemble` would copy each image's boxes by one compiled call.

        That is, every patch deferred (boxes of C-ordered memory maps, inside
        them) and the stacks of one layout; otherwise ``None``.
        """
        stacks = _distinct(entries)
        if not all(stack.deferred for stack in stacks):
            return None
        layout = stacks[0].layout()
        if any(stack.layout() != layout for stack in stacks[1:]):
            return None
        items: dict[str, Sequence[Any]] = {}
        for name, (shape, dtype) in layout.items():
            origins = _origins(entries, name)
            checked = None if origins is None else io.box_items(origins, dtype, shape[0])
            if checked is None:
                return None
            items[name] = checked
        locations = _locations(entries)
        return cls(entries, layout, items, locations, collate_metadata(entries, list(layout), locations, stacks))

    def assemble(self, ring: BufferRing, parallel: bool = False) -> Sequence[Subject] | None:
        """The batch :func:`assemble` makes of the entries (``parallel`` as there); ``None`` where it copies else."""
        team = io.team_threads() if parallel else 1
        if not _compiled_copies(parallel, team, deferred=True):
            return None  # assemble copies these boxes by torch.stack on torch's threads
        stacked: dict[str, torch.Tensor] = {}
        for name, (shape, dtype) in self.layout.items():
            out = ring.take((len(self.entries), *shape), dtype)
            if not io.copy_box_items(out, self.items[name], threads=team):
                return None
            stacked[name] = out
        return _batch(self.entries, stacked, self.locations, functools.partial(with_voxels, self.metadata, stacked))


def collate_rows(
    entries: Sequence[tuple[Patches, int]],
    stacked: Mapping[str, torch.Tensor],
    locations: torch.Tensor,
    stacks: Sequence[Patches] | None = None,
) -> dict[str, Any] | None:
    """The batch :func:`~torchpatch.loader.collate_subjects` would make of these patches, without making them.

    ``stacked`` holds each image's rows, ``locations`` the ``(B, 6)``
    locations. Each image's path and type come from its stack's template
    (the patches share them), its affines from the stack; other keys are the
    template's values. ``None`` where the patches themselves must be
    collated: metadata that differs between patches, subjects with other
    keys, or an image that checks its voxels for NaN when a patch is made.

    Example:
        >>> from torchpatch import ScalarImage, DATA
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1)), age=3)
        >>> stack = subject.cut([[0, 0, 0, 2, 2, 1], [2, 2, 0, 4, 4, 1]])
        >>> batch = collate_rows([(stack, 1), (stack, 0)], {'t1': stack.data['t1'].flip(0)}, torch.zeros(2, 6))
        >>> batch['t1'][DATA].shape, batch['age'].tolist()
        (torch.Size([2, 1, 2, 2, 1]), [3, 3])
    """
    return with_voxels(collate_metadata(entries, list(stacked), locations, stacks), stacked)


def collate_metadata(
    entries: Sequence[tuple[Patches, int]],
    names: Sequence[str],
    locations: torch.Tensor,
    stacks: Sequence[Patches] | None = None,
) -> dict[str, Any] | None:
    """:func:`collate_rows` without the voxels: the entries of the images ``names`` hold ``DATA: None``.

    Example:
        >>> from torchpatch import ScalarImage, DATA, AFFINE
        >>> stack = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1))).cut([[0, 0, 0, 2, 2, 1]])
        >>> metadata = collate_metadata([(stack, 0)], ['t1'], torch.zeros(1, 6))
        >>> metadata['t1'][DATA], tuple(metadata['t1'][AFFINE].shape)
        (None, (1, 4, 4))
    """
    template = entries[0][0].template
    keys = list(template)
    # Each stack once (a batch's rows come from a few subjects; ``stacks`` lists them when known).
    stacks = _distinct(entries) if stacks is None else stacks
    for stack in stacks:
        if stack.metadata is not None or (stack.template is not template and list(stack.template) != keys):
            return None
        if any(image.check_nans for image in stack.template.images.values()):
            return None
    collated: dict[str, Any] = {}
    for key in keys if LOCATION in keys else [*keys, LOCATION]:
        if key == LOCATION:
            collated[key] = locations
            continue
        value_of = {id(stack): stack.template[key] for stack in stacks}
        values = [value_of[id(stack)] for stack, _ in entries]
        if key in names:
            # Row by row into one array: half of np.stack's time once the caches are cold (15 against 30 us).
            affines = np.empty((len(entries), 4, 4))
            for row, (stack, index) in enumerate(entries):
                affines[row] = stack.affines[key][index]
            collated[key] = image_batch(None, affines, values)
        elif any(isinstance(value, Image) for value in values):
            return None
        else:
            collated[key] = collate_values(key, values)
    return collated


def with_voxels(metadata: Mapping[str, Any] | None, stacked: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """The batch of :func:`collate_metadata`'s ``metadata`` with each image's ``DATA`` from ``stacked`` (a new dict).

    Example:
        >>> from torchpatch import DATA
        >>> with_voxels({'t1': {DATA: None}, 'age': 3}, {'t1': torch.zeros(1)})
        {'t1': {'data': tensor([0.])}, 'age': 3}
    """
    if metadata is None:
        return None
    batch = dict(metadata)
    for name, voxels in stacked.items():
        batch[name] = {**metadata[name], DATA: voxels}
    return batch


__all__ = [
    "HUGE_PAGE",
    "KEPT",
    "MAPPED_BYTES",
    "BufferRing",
    "PreparedBatch",
    "assemble",
    "collate_metadata",
    "collate_rows",
    "with_voxels",
]
