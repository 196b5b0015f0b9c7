"""Batches back into subjects: TorchIO's ``tio.utils`` helpers for collated batches.

A batch of :class:`~torchpatch.SubjectsLoader` (or of the Queue, or of
``collate_subjects``) is a plain ``dict``: each image a ``dict`` with its
``(B, C, I, J, K)`` voxels and ``(B, 4, 4)`` affines, each other key one
value per row. :func:`get_subjects_from_batch` turns it back into one
:class:`~torchpatch.Subject` per row (to plot a batch, to write it, to run
a transform on its rows) and :func:`add_images_from_batch` adds a model's
outputs to them as images in the same space.

Example:
    >>> import torch
    >>> from torchpatch import ScalarImage, Subject, collate_subjects
    >>> rows = [Subject(t1=ScalarImage(tensor=torch.full((1, 2, 2, 2), float(i))), age=i) for i in (3, 4)]
    >>> subjects = get_subjects_from_batch(collate_subjects(rows))
    >>> add_images_from_batch(subjects, torch.zeros(2, 1, 2, 2, 2))
    >>> [float(s.t1.data.max()) for s in subjects], int(subjects[1].age), subjects[0].get_images_names()
    ([3.0, 4.0], 4, ['t1', 'prediction'])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..constants import AFFINE, DATA, INTENSITY, LABEL, TYPE
from ..image import Image, LabelMap, ScalarImage
from ..subject import Subject


def get_batch_images_and_size(batch: Mapping[str, Any]) -> tuple[list[str], int]:
    """The names of the images in ``batch`` (entries holding ``DATA``) and its number of rows.

    Raises:
        RuntimeError: When ``batch`` holds no image (TorchIO's error), or
            its images have different numbers of rows; the message lists
            the keys and sizes.

    Example:
        >>> get_batch_images_and_size({'t1': {'data': torch.zeros(3, 1, 2, 2, 2)}, 'age': [1, 2, 3]})
        (['t1'], 3)
    """
    sizes = {key: len(value[DATA]) for key, value in batch.items() if isinstance(value, Mapping) and DATA in value}
    if not sizes:
        raise RuntimeError(
            f"the batch holds no images (no entry with a {DATA!r} key) among its keys {list(batch)}: "
            f"pass a batch of SubjectsLoader or collate_subjects"
        )
    if len(set(sizes.values())) > 1:
        raise RuntimeError(f"the images of the batch have different numbers of rows: {sizes}")
    return list(sizes), next(iter(sizes.values()))


def get_subjects_from_batch(batch: Mapping[str, Any]) -> list[Subject]:
    """One :class:`~torchpatch.Subject` per row of ``batch``, as TorchIO's helper of the same name makes them.

    Each image becomes a :class:`~torchpatch.LabelMap` where the batch says
    its row is a label map (its ``type``), else a
    :class:`~torchpatch.ScalarImage`, with that row's voxels (a view, not a
    copy) and affine; every other key gives each subject its row's value
    (``value[i]``: a location, a history, a name).

    Raises:
        RuntimeError: As :func:`get_batch_images_and_size`.
        ValueError: When a key's value has no row for every subject (a
            number, or a shorter list), naming the key.

    Example:
        >>> from torchpatch import LabelMap, Subject, collate_subjects
        >>> rows = [Subject(seg=LabelMap(tensor=torch.zeros(1, 2, 2, 2, dtype=torch.uint8)), site=s) for s in 'ab']
        >>> [(type(s.seg).__name__, s.site) for s in get_subjects_from_batch(collate_subjects(rows))]
        [('LabelMap', 'a'), ('LabelMap', 'b')]
    """
    names, size = get_batch_images_and_size(batch)
    subjects = []
    for row in range(size):
        entries: dict[str, Any] = {}
        for key, value in batch.items():
            if key in names:
                types = value.get(TYPE)
                kind = image_class(None if types is None else types[row])
                entries[key] = kind(tensor=value[DATA][row], affine=_row(value[AFFINE], row))
                continue
            try:
                if len(value) != size:
                    raise TypeError
                entries[key] = value[row]
            except (TypeError, KeyError, IndexError):
                raise ValueError(
                    f"key {key!r} of the batch holds no value per row for its {size} subjects: "
                    f"got {type(value).__name__} {_short(value)}"
                ) from None
        subjects.append(Subject(entries))
    return subjects


def add_images_from_batch(
    subjects: Sequence[Subject], tensor: torch.Tensor, class_: type[Image] | None = None, name: str = "prediction"
) -> None:
    """Add row ``i`` of ``tensor`` (``(B, C, I, J, K)``, a model's outputs) to ``subjects[i]`` as image ``name``.

    Each image is a ``class_`` (:class:`~torchpatch.ScalarImage` by default;
    :class:`~torchpatch.LabelMap` for a segmentation) with the affine of the
    subject's first image, as in TorchIO.

    Raises:
        ValueError: When ``tensor`` has another number of rows than
            there are subjects; the message gives both counts.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subjects = [Subject(t1=ScalarImage(tensor=torch.rand(1, 2, 2, 2)))]
        >>> add_images_from_batch(subjects, torch.ones(1, 1, 2, 2, 2, dtype=torch.uint8), LabelMap, name='seg')
        >>> type(subjects[0].seg).__name__, int(subjects[0].seg.data.sum())
        ('LabelMap', 8)
    """
    if len(tensor) != len(subjects):
        raise ValueError(f"the tensor has {len(tensor)} rows for {len(subjects)} subjects: one row per subject")
    kind = ScalarImage if class_ is None else class_
    for subject, data in zip(subjects, tensor):
        subject.add_image(kind(tensor=data, affine=subject.get_first_image().affine), name)


def image_class(image_type: str | None) -> Callable[..., Image]:
    """What builds an image of ``image_type`` again: ``LabelMap``, ``ScalarImage`` (also for ``None``), or ``Image``.

    A TorchIO sampling map (:data:`~torchpatch.constants.SAMPLING_MAP`) is an
    :class:`~torchpatch.image.Image` of that type.

    Example:
        >>> image_class('label').__name__, image_class(None).__name__
        ('LabelMap', 'ScalarImage')
        >>> image_class('sampling_map')(tensor=torch.zeros(1, 2, 2, 2)).type
        'sampling_map'
    """
    if image_type == LABEL:
        return LabelMap
    if image_type in (INTENSITY, None):
        return ScalarImage
    return functools.partial(Image, type=image_type)


def _row(affines: Any, row: int) -> Any:
    """Row ``row`` of a batch's affines as a numpy array (a tensor or an array of ``(B, 4, 4)``)."""
    affine = affines[row]
    return affine.numpy() if isinstance(affine, torch.Tensor) else affine


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["add_images_from_batch", "get_batch_images_and_size", "get_subjects_from_batch", "image_class"]
