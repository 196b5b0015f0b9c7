"""Batching subjects and patches into plain dictionaries.

A batch is a ``dict``: each image name maps to ``{DATA: (B, C, I, J, K),
AFFINE: (B, 4, 4), PATH: [...], STEM: [...], TYPE: [...]}``; ``LOCATION`` is a
``(B, 6)`` int64 tensor; numbers become tensors and other metadata lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from numbers import Number
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .constants import AFFINE, DATA, LOCATION, PATH, STEM, TYPE
from .image import Image
from .sampler.sampler import PatchSampler
from .stacked import StackedPatches, empty_batch


def stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack`` by one copy per tensor into a new batch.

    On few cores, ``torch.stack`` runs its copy on every intra-op thread; when
    worker processes hold the other cores, those threads wait on each other
    and a 16 MB stack can take 30x longer than plain copies (measured here:
    134 ms against 4 ms on two busy cores). CPU tensors are copied with numpy
    (one thread); others with one ``copy_`` per item.

    Example:
        >>> stack([torch.zeros(2, 3), torch.ones(2, 3)]).shape
        torch.Size([2, 2, 3])
    """
    first = tensors[0]
    out = empty_batch((len(tensors), *first.shape), first.dtype, first.device)
    if first.device.type == "cpu" and first.dtype != torch.bfloat16 and not first.requires_grad:
        # numpy copies on one thread: no parallel region to wait on.
        target = out.numpy()
        for index, tensor in enumerate(tensors):
            target[index] = tensor.numpy()
    else:
        for index, tensor in enumerate(tensors):
            out[index].copy_(tensor)
    return out


def _stack_images(name: str, images: Sequence[Image], stacked: torch.Tensor | None = None) -> dict[str, Any]:
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot batch image {name!r}: its shapes differ across the batch {sorted(shapes)}; "
            f"crop or pad to one shape (CropOrPad) or use batch_size=1"
        )
    if stacked is None or tuple(stacked.shape) != (len(images), *images[0].shape):
        stacked = stack([image.data for image in images])
    return image_batch(stacked, np.stack([image.affine for image in images]), images)


def image_batch(data: torch.Tensor | None, affines: Any, images: Sequence[Image]) -> dict[str, Any]:
    """One image's entry of a batch: ``(B, C, *shape)`` voxels, ``(B, 4, 4)`` affines, and each row's path, stem, type.

    What :func:`collate_subjects` makes of the images of one name, with
    ``images`` giving each row's path and type (the patches of one subject
    may all give the same image).

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
        >>> batch = image_batch(torch.zeros(2, 1, 2, 2, 2), np.stack([np.eye(4)] * 2), [image, image])
        >>> tuple(batch[AFFINE].shape), batch[TYPE]
        ((2, 4, 4), ['intensity', 'intensity'])
    """
    return {
        DATA: data,
        AFFINE: torch.from_numpy(np.asarray(affines, dtype=np.float64)),
        PATH: [None if image.path is None else str(image.path) for image in images],
        STEM: _stems(images),
        TYPE: [image.type for image in images],
    }


def _stems(images: Sequence[Image]) -> list[str | None]:
    """Each image's stem, parsed once per path (the patches of a subject share theirs)."""
    known: dict[Any, str | None] = {}
    stems = []
    for image in images:
        path = image.path
        key = tuple(path) if isinstance(path, list) else path
        if key not in known:
            known[key] = image.stem
        stems.append(known[key])
    return stems


def collate_values(key: str, values: Sequence[Any]) -> Any:
    """What :func:`collate_subjects` makes of the values of a key that is not an image, one per row.

    ``LOCATION`` rows become one ``(B, 6)`` int64 tensor, tensors of one
    shape a stacked tensor, numbers a tensor; anything else stays a list.

    Example:
        >>> collate_values('age', [30, 40]).tolist(), collate_values('name', ['a', 'b'])
        ([30, 40], ['a', 'b'])
    """
    values = list(values)
    if key == LOCATION:
        return stack([torch.as_tensor(v, dtype=torch.int64) for v in values])
    if all(isinstance(v, torch.Tensor) for v in values):
        if len({tuple(v.shape) for v in values}) == 1:
            return torch.stack(values)
        return values
    if all(isinstance(v, Number) and not isinstance(v, bool) for v in values):
        return torch.as_tensor(values)
    return values


def collate_subjects(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate subjects or patches into a plain ``dict`` batch.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4)), age=a) for a in (30, 40)]
        >>> batch = collate_subjects(subjects)
        >>> batch['t1'][DATA].shape, batch['age'].tolist()
        (torch.Size([2, 1, 4, 4, 4]), [30, 40])
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    known = batch.collated() if isinstance(batch, StackedPatches) else None
    if known is not None:
        return known
    keys = list(batch[0].keys())
    for index, item in enumerate(batch[1:], start=1):
        if list(item.keys()) != keys:
            raise ValueError(
                f"batch items have different keys: item 0 has {keys}, item {index} has {list(item.keys())}"
            )
    collated: dict[str, Any] = {}
    ready = batch.stacked if isinstance(batch, StackedPatches) else {}
    for key in keys:
        values = [item[key] for item in batch]
        if all(isinstance(v, Image) for v in values):
            collated[key] = _stack_images(key, values, ready.get(key))
        elif key == LOCATION and key in ready and len(ready[key]) == len(values):
            collated[key] = ready[key]
        else:
            collated[key] = collate_values(key, values)
    return collated


class SubjectsLoader(DataLoader[Any]):
    """A ``DataLoader`` that batches subjects and patches into plain dicts.

    Example:
        >>> from torchpatch import ScalarImage, Subject, SubjectsDataset
        >>> dataset = SubjectsDataset([Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 4))) for _ in range(4)])
        >>> batch = next(iter(SubjectsLoader(dataset, batch_size=2)))
        >>> batch['t1'][DATA].shape
        torch.Size([2, 1, 4, 4, 4])
    """

    def __init__(self, dataset: Dataset[Any], **kwargs: Any) -> None:
        kwargs.setdefault("collate_fn", collate_subjects)
        super().__init__(dataset, **kwargs)

    def __iter__(self) -> Any:
        """The batches; over a :class:`~torchpatch.GridSampler` each is cut while the caller uses the one before.

        Without worker processes and with more than one torch thread
        (:func:`torch.get_num_threads`), a thread cuts the next batch of a
        thread-safe sampler (numpy copies, which release the GIL) while the
        model and the aggregator work on this one, as
        :func:`~torchpatch.inference.infer` does. The batches are the same,
        in the same order.
        """
        batches = super().__iter__()
        sampler = self.dataset
        threads = self.num_workers == 0 and torch.get_num_threads() > 1
        if threads and isinstance(sampler, PatchSampler) and sampler.thread_safe:
            return cut_ahead(batches)
        return batches


#: What ``next`` returns at the end of the batches.
_END = object()


def cut_ahead(batches: Iterator[Any], name: str = "torchpatch-loader") -> Iterator[Any]:
    """``batches`` in order, each made by a thread (named ``name``) while the caller uses the one before.

    For batches made of numpy copies, which release the GIL: with more than
    one core the next batch is copied while the caller works on this one.
    Closing the generator (or leaving a ``for`` loop over it) waits for the
    batch in the making and ends the thread.

    Example:
        >>> list(cut_ahead(iter([1, 2, 3])))
        [1, 2, 3]
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(next, batches, _END)
        while True:
            batch = pending.result()
            if batch is _END:
                return
            pending = pool.submit(next, batches, _END)
            yield batch


__all__ = [
    "StackedPatches",
    "SubjectsLoader",
    "collate_subjects",
    "collate_values",
    "cut_ahead",
    "empty_batch",
    "image_batch",
    "stack",
]
