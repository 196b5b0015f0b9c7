"""TorchIO's ``tio.utils``, with its names: batches back into subjects, and its small helpers.

A batch of :class:`~torchpatch.SubjectsLoader` (or of the Queue, or of
``collate_subjects``) is a plain ``dict``; :func:`get_subjects_from_batch`
turns it back into one :class:`~torchpatch.Subject` per row and
:func:`add_images_from_batch` adds a model's outputs to them
(:mod:`~torchpatch.utils.batches`). The small helpers TorchIO scripts call
(:func:`history_collate`, :func:`apply_transform_to_file`,
:func:`get_stem`, :func:`to_tuple`, :func:`create_dummy_dataset`...) give
TorchIO's results (:mod:`~torchpatch.utils.helpers`).

Example:
    >>> from torchpatch import utils
    >>> utils.get_stem('/data/sub-01/t1.nii.gz'), utils.to_tuple(2, length=3)
    ('t1', (2, 2, 2))
"""

from __future__ import annotations

from .batches import add_images_from_batch, get_batch_images_and_size, get_subjects_from_batch
from .helpers import (
    apply_transform_to_file,
    check_sequence,
    compress,
    create_dummy_dataset,
    get_first_item,
    get_stem,
    get_subclasses,
    guess_type,
    history_collate,
    is_iterable,
    normalize_path,
    parse_spatial_shape,
    to_tuple,
)

__all__ = [
    "add_images_from_batch",
    "apply_transform_to_file",
    "check_sequence",
    "compress",
    "create_dummy_dataset",
    "get_batch_images_and_size",
    "get_first_item",
    "get_stem",
    "get_subclasses",
    "get_subjects_from_batch",
    "guess_type",
    "history_collate",
    "is_iterable",
    "normalize_path",
    "parse_spatial_shape",
    "to_tuple",
]
