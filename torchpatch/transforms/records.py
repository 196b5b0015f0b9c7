"""History records: what a transform appends to a subject's ``'history'``, as TorchIO's ``applied_transforms``.

Every transform applied to a subject appends one dict with its ``name`` to
the subject's ``'history'`` metadata (TorchIO keeps the same list as
``subject.applied_transforms``)::

    random transforms        {'name': 'RandomFlip', 'axes': [0]}        the parameters drawn
    other transforms         {'name': 'Pad', 'include': None, ...,      the arguments that rebuild
                              'padding': 2, 'padding_mode': 0}          them (reproducing_arguments)
    transforms made of       CropOrPad -> Crop, Pad with the bounds applied; EnsureShapeMultiple ->
    others                   those of its CropOrPad; SequentialLabels -> RemapLabels per label map;
                             Compose, OneOf -> those of the transforms that ran

so that :func:`~torchpatch.transforms.augmentation.history.applied_transforms`
rebuilds them and ``subject.apply_inverse_transform()`` undoes the
invertible ones, preprocessing included (a ``CropOrPad`` before inference is
undone on the prediction added to the subject afterwards, as in TorchIO).

A record travels with the subject's patches and batches, between processes
too. Functions among the arguments (``Lambda``'s, masking callables) are held
by :class:`~torchpatch.recorded.RecordedFunction`: where pickle cannot send
one (a lambda from a Queue worker), the copy that arrives holds an
:class:`~torchpatch.recorded.UnsentFunction`, which raises, naming the
function, only if the record is replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..constants import HISTORY
from ..recorded import RecordedFunction, UnsentFunction
from ..subject import Subject

#: Keywords every transform takes that a record keeps (``p`` and ``keep`` are left out: a record replays what ran).
RECORDED_KEYWORDS = ("include", "exclude", "copy")


def _recorded(value: Any) -> Any:
    if callable(value) and not isinstance(value, (type, RecordedFunction, UnsentFunction)):
        return RecordedFunction(value)
    return value


def reproducing_arguments(transform: Any) -> dict[str, Any]:
    """The arguments that rebuild ``transform``: ``include``, ``exclude``, ``copy`` and its ``args_names``.

    As TorchIO records them: the attribute of each name (else the value
    ``repr`` shows); functions are wrapped in
    :class:`~torchpatch.recorded.RecordedFunction`.

    Example:
        >>> from torchpatch.transforms import Pad
        >>> reproducing_arguments(Pad(2, padding_mode='edge'))
        {'include': None, 'exclude': None, 'copy': True, 'padding': 2, 'padding_mode': 'edge'}
    """
    arguments: dict[str, Any] = {key: getattr(transform, key, None) for key in RECORDED_KEYWORDS}
    names = transform.args_names
    missing = [name for name in names if not hasattr(transform, name)]
    shown = transform.arguments() if missing and hasattr(transform, "arguments") else {}
    for name in names:
        if name in missing:
            if name in shown:
                arguments[name] = _recorded(shown[name])
        else:
            arguments[name] = _recorded(getattr(transform, name))
    return arguments


def transform_record(transform: Any) -> dict[str, Any]:
    """The history record of a transform that is not random: its name and :func:`reproducing_arguments`.

    Example:
        >>> from torchpatch.transforms import RemapLabels
        >>> transform_record(RemapLabels({3: 5}))  # doctest: +NORMALIZE_WHITESPACE
        {'name': 'RemapLabels', 'include': None, 'exclude': None, 'copy': True, 'remapping': {3: 5},
         'masking_method': None}
    """
    return {"name": type(transform).__name__, **reproducing_arguments(transform)}


def add_history(subject: Subject, *records: Mapping[str, Any], after: Subject | None = None) -> Subject:
    """A new subject whose ``history`` metadata list ends with ``records``.

    The input subject and its list are left unchanged. With ``after``, the
    records follow ``after``'s history instead of ``subject``'s: a transform
    recording itself replaces those of the transforms it called inside.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 1)))
        >>> add_history(subject, {'name': 'RandomFlip', 'axes': [0]})['history']
        [{'name': 'RandomFlip', 'axes': [0]}]
        >>> 'history' in subject
        False
    """
    source = subject if after is None else after
    if not records and HISTORY not in source.metadata:
        return subject.with_images({})
    history = source.metadata.get(HISTORY, [])
    if not isinstance(history, list):
        raise TypeError(
            f"the {HISTORY!r} metadata of subject {subject.name!r} must be a list of records, "
            f"got {type(history).__name__}"
        )
    return subject.with_images({}, **{HISTORY: [*history, *(dict(record) for record in records)]})


__all__ = ["RECORDED_KEYWORDS", "add_history", "reproducing_arguments", "transform_record"]
