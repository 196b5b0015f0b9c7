"""What was applied to a subject, as transforms: replaying and inverting its ``history``.

Every transform appends a record to the subject's ``history`` metadata
(:mod:`torchpatch.transforms.records`): a random one ``{"name": ...,
**params}`` with the values it drew, any other the arguments that rebuild it
(``{"name": "Pad", "padding": 2, ...}``), as TorchIO records them. As in
TorchIO, the records come back as transforms (:func:`applied_transforms`,
:func:`composed_history`) and the invertible ones undo themselves in reverse
order (:func:`inverse_transform`, :func:`apply_inverse_transform`), which
:class:`~torchpatch.subject.Subject`'s ``get_applied_transforms``,
``get_composed_history``, ``get_inverse_transform`` and
``apply_inverse_transform`` call::

    history: [{"name": "Pad", "padding": 2, ...}, {"name": "RandomFlip", "axes": [0]}]
      -> Compose([Pad(padding=2, ...), Replay(RandomFlip(), {...})])
      -> inverse: Compose([Replay(RandomFlip(), {...}, inverse=True), Crop(cropping=2)])

Records of the deterministic twins of random transforms (``{"name":
"Affine", ...}``) hold their random twin's parameters and come back as the
deterministic transform itself (``Affine.from_record(record)``).

Invertible: flips, affine transforms (exactly, up to interpolation), elastic
deformations (approximately, by the opposite displacements, as TorchIO
does), gamma, noise (its seed is recorded) and bias fields; and, as in
TorchIO, ``Pad``, ``Crop`` (so ``CropOrPad`` and ``EnsureShapeMultiple``,
recorded as the ``Pad`` and ``Crop`` they ran), ``RemapLabels`` (and
``SequentialLabels``), ``OneHot`` and ``Transpose``; the others are left out
with a warning (``warn=True``), as is a ``RemapLabels`` merging labels, which
has no inverse. Records of patches augmented
with context describe the whole subject's frame: invert whole subjects.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ...subject import Subject
from ..base import Transform
from ..compose import Compose
from ..records import add_history
from .random import HISTORY_KEY, RandomTransform


def _subclasses(kind: type) -> list[type]:
    found: list[type] = []
    children: list[type] = list(kind.__subclasses__())
    for child in children:
        found.append(child)
        found.extend(_subclasses(child))
    return found


def _replay_transform(kind: type, record: Mapping[str, Any]) -> Any:
    """An instance of ``kind`` to replay ``record``: a deterministic transform (``Affine``...) is built from it."""
    build = getattr(kind, "from_record", None)
    return build(record) if build is not None else kind()


class Replay(Transform):
    """A random transform with fixed parameters: a history record as a transform.

    Args:
        transform: The random transform that drew ``params``.
        params: Its parameters (a history record without ``name``).
        inverse: Undo them instead (:meth:`RandomTransform.apply_inverse`).

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomFlip
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1)))
        >>> Replay(RandomFlip(), {'axes': [0]})(subject).t1.data.flatten().tolist()
        [2.0, 1.0, 0.0]
    """

    records_itself = True  # a replay records the record it replays (as any transform); undoing records nothing

    def __init__(self, transform: RandomTransform, params: Mapping[str, Any], inverse: bool = False) -> None:
        super().__init__()
        self.transform = transform
        self.params = {key: value for key, value in params.items() if key != "name"}
        self.inverted = inverse

    @property
    def invertible(self) -> bool:
        """Whether the transform can undo itself."""
        return bool(self.transform.invertible)

    def is_invertible(self) -> bool:
        """:attr:`invertible` (TorchIO's method)."""
        return self.invertible

    def inverse(self) -> Replay:
        """The replay that undoes this one."""
        if not self.invertible:
            raise ValueError(f"{type(self.transform).__name__} cannot be inverted")
        return Replay(self.transform, self.params, inverse=not self.inverted)

    def apply_transform(self, subject: Subject) -> Subject:
        """Apply (or undo) the recorded parameters."""
        if self.inverted:
            return self.transform.apply_inverse(subject, self.params)
        applied = self.transform.apply_params(subject, self.params)
        return add_history(applied, self.transform.record(self.params))

    def __repr__(self) -> str:
        prefix = "inverse of " if self.inverted else ""
        return f"Replay({prefix}{self.transform!r}, {self.params!r})"


def _transform_classes() -> dict[str, type]:
    """Transform classes by name; a random transform's name means the random one (as records have always)."""
    classes = {kind.__name__: kind for kind in _subclasses(Transform)}
    classes.update({kind.__name__: kind for kind in _subclasses(RandomTransform)})
    return classes


def _rebuilt(kind: type, record: Mapping[str, Any], position: int, subject: Subject) -> Transform:
    arguments = {key: value for key, value in record.items() if key != "name"}
    try:
        return kind(**arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"history record {position} of subject {subject.name!r} ({record['name']}) does not rebuild "
            f"the transform: {error}"
        ) from error


def applied_transforms(
    subject: Subject, ignore_intensity: bool = False, image_interpolation: str | None = None
) -> list[Transform]:
    """The records of ``subject``'s ``history`` as transforms, in the order they were applied.

    A random transform's record comes back as a :class:`Replay` of the
    parameters it drew; any other transform's as the transform rebuilt from
    its arguments (:func:`~torchpatch.transforms.records.transform_record`).

    Args:
        subject: A subject whose ``history`` metadata holds records.
        ignore_intensity: Leave out the transforms of intensities only.
        image_interpolation: Replaces the scalar images' interpolation of the
            spatial transforms.

    Raises:
        ValueError: When a record names no known transform, or its arguments
            do not rebuild it.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms import Pad
        >>> from torchpatch.transforms.augmentation import RandomGamma
        >>> subject = RandomGamma()(Pad(1)(Subject(t1=ScalarImage(tensor=torch.rand(1, 2, 2, 1)))))
        >>> [type(item).__name__ for item in applied_transforms(subject)], applied_transforms(subject)[1].transform
        (['Pad', 'Replay'], RandomGamma(log_gamma=(-0.3, 0.3)))
    """
    classes = _transform_classes()
    items: list[Transform] = []
    for position, record in enumerate(subject.metadata.get(HISTORY_KEY, [])):
        name = record.get("name") if isinstance(record, Mapping) else None
        kind = classes.get(name) if isinstance(name, str) else None
        if kind is None:
            raise ValueError(
                f"history record {position} of subject {subject.name!r} names {name!r}, which is not a transform "
                f"torchpatch knows (records are dicts with a 'name' such as 'RandomAffine' or 'Pad')"
            )
        random = issubclass(kind, RandomTransform)
        transform = _replay_transform(kind, record) if random else _rebuilt(kind, record, position, subject)
        if ignore_intensity and transform.intensity_only:
            continue
        if image_interpolation is not None and hasattr(transform, "image_interpolation"):
            transform.image_interpolation = image_interpolation
        items.append(Replay(transform, record) if isinstance(transform, RandomTransform) else transform)
    return items


def composed_history(
    subject: Subject, ignore_intensity: bool = False, image_interpolation: str | None = None
) -> Compose:
    """:func:`applied_transforms` in a :class:`~torchpatch.transforms.Compose`.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> len(composed_history(Subject(t1=ScalarImage(tensor=torch.rand(1, 2, 2, 1)))))
        0
    """
    return Compose(applied_transforms(subject, ignore_intensity, image_interpolation))


def inverse_transform(
    subject: Subject, warn: bool = True, ignore_intensity: bool = False, image_interpolation: str | None = None
) -> Compose:
    """The inverses of the invertible applied transforms, last first.

    Args:
        subject: A subject whose ``history`` holds records.
        warn: Warn about the transforms that cannot be inverted (left out).
        ignore_intensity: Leave out the transforms of intensities only.
        image_interpolation: Replaces the scalar images' interpolation.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomFlip
        >>> subject = RandomFlip(flip_probability=1)(Subject(t1=ScalarImage(tensor=torch.rand(1, 3, 2, 1))))
        >>> inverse_transform(subject)[0]
        Replay(inverse of RandomFlip(axes=0, flip_probability=0.5), {'axes': [0]})
    """
    inverses: list[Transform] = []
    for item in reversed(applied_transforms(subject, ignore_intensity, image_interpolation)):
        name = type(item.transform if isinstance(item, Replay) else item).__name__
        reason = "cannot be inverted"
        if item.is_invertible():
            try:
                inverses.append(item.inverse())
                continue
            except ValueError as error:  # RemapLabels merging labels: no inverse
                reason = f"has no inverse ({error})"
        if warn:
            warnings.warn(
                f"{name} {reason}: left out of the inverse of subject {subject.name!r}'s history",
                RuntimeWarning,
                stacklevel=2,
            )
    return Compose(inverses)


def apply_inverse_transform(subject: Subject, **kwargs: Any) -> Subject:
    """``subject`` with its history undone (see :func:`inverse_transform`), and cleared.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomFlip
        >>> original = Subject(t1=ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1)))
        >>> flipped = RandomFlip(flip_probability=1)(original)
        >>> restored = apply_inverse_transform(flipped)
        >>> restored.t1.data.flatten().tolist(), restored['history']
        ([0.0, 1.0, 2.0], [])
    """
    restored = inverse_transform(subject, **kwargs)(subject)
    return restored.with_images({}, **{HISTORY_KEY: []})


__all__ = ["Replay", "applied_transforms", "apply_inverse_transform", "composed_history", "inverse_transform"]
