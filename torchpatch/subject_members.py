"""TorchIO's remaining ``Subject`` members, with its names (mixed into :class:`~torchpatch.subject.Subject`).

Typed image lookups (``get_scalar_image``, ``get_label_map``), the
transform history as TorchIO reads and writes it (``history``,
``applied_transforms``, ``add_transform``), ``copy``, ``update_attributes``
and ``dir(subject)`` listing the keys, on top of TorchIO's consistency checks
(:class:`~torchpatch.subject_checks.SubjectChecks`).

torchpatch keeps the history in the subject's ``'history'`` metadata, one
record per applied transform, preprocessing included
(:mod:`torchpatch.transforms.records`), so that it travels with patches and
batches like any metadata. TorchIO's members are views of that list::

    subject['history']            [{'name': 'Pad', ...}, {'name': 'RandomFlip', 'axes': [0]}]   the records
    subject.applied_transforms    [('Pad', {...}), ('RandomFlip', {'axes': [0]})]   TorchIO's (name, parameters)
    subject.history               [Pad(...), Replay(RandomFlip(...), {'axes': [0]})]  TorchIO's transforms
    subject.add_transform(t, p)   appends {'name': t.name, **p}

Not provided: ``fromkeys``. TorchIO's is ``dict.fromkeys``, which calls
``Subject()`` with no image, so it always raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .constants import HISTORY
from .image import Image, LabelMap, ScalarImage
from .subject_checks import SubjectChecks


class SubjectMembers(SubjectChecks):
    """TorchIO's typed lookups, history members, ``copy`` and ``dir`` of a subject.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> t1, seg = ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), LabelMap(tensor=torch.zeros(1, 2, 2, 2))
        >>> subject = Subject(t1=t1, seg=seg)
        >>> subject.get_label_map('seg').shape, 't1' in dir(subject), subject.applied_transforms
        ((1, 2, 2, 2), True, [])
    """

    # Provided by Subject.
    _store: dict[str, Any]

    def get_image(self, image_name: str, argument: str = "image_name") -> Image:
        raise NotImplementedError

    def get_applied_transforms(self, ignore_intensity: bool = False, image_interpolation: str | None = None) -> Any:
        raise NotImplementedError

    # Typed lookups -------------------------------------------------------------------

    def get_scalar_image(self, image_name: str) -> ScalarImage:
        """The image ``image_name``, which must be a :class:`~torchpatch.image.ScalarImage` (TorchIO's).

        Raises:
            ImageNotFoundError: When the subject has no image ``image_name``.
            TypeError: When it is another kind of image.

        Example:
            >>> import torch
            >>> from torchpatch import LabelMap, ScalarImage, Subject
            >>> t1, seg = ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), LabelMap(tensor=torch.zeros(1, 2, 2, 2))
            >>> subject = Subject(t1=t1, seg=seg)
            >>> type(subject.get_scalar_image('t1')).__name__
            'ScalarImage'
            >>> subject.get_scalar_image('seg')
            Traceback (most recent call last):
            ...
            TypeError: image 'seg' of subject '<unnamed>' is a LabelMap, not a ScalarImage; scalar images: ['t1']
        """
        image = self.get_image(image_name)
        if not isinstance(image, ScalarImage):
            raise self._wrong_kind(image_name, image, ScalarImage)
        return image

    def get_label_map(self, image_name: str) -> LabelMap:
        """The image ``image_name``, which must be a :class:`~torchpatch.image.LabelMap` (TorchIO's).

        Raises:
            ImageNotFoundError: When the subject has no image ``image_name``.
            TypeError: When it is another kind of image.

        Example:
            >>> import torch
            >>> from torchpatch import LabelMap, ScalarImage, Subject
            >>> t1, seg = ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), LabelMap(tensor=torch.zeros(1, 2, 2, 2))
            >>> subject = Subject(t1=t1, seg=seg)
            >>> subject.get_label_map('seg').dtype
            torch.int64
        """
        image = self.get_image(image_name)
        if not isinstance(image, LabelMap):
            raise self._wrong_kind(image_name, image, LabelMap)
        return image

    def _wrong_kind(self, image_name: str, image: Image, kind: type[Image]) -> TypeError:
        others = [name for name, other in self.images.items() if isinstance(other, kind)]
        plural = "label maps" if kind is LabelMap else "scalar images"
        return TypeError(
            f"image {image_name!r} of subject {self.name!r} is a {type(image).__name__}, not a {kind.__name__}; "
            f"{plural}: {others}"
        )

    # History -------------------------------------------------------------------------

    def _history_records(self) -> list[Any]:
        records = self._store.get(HISTORY, [])
        if not isinstance(records, list):
            raise TypeError(
                f"the {HISTORY!r} metadata of subject {self.name!r} must be a list of records, "
                f"got {type(records).__name__}"
            )
        return records

    def _history_record(self, name: Any, parameters: Any, where: str) -> dict[str, Any]:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where} of subject {self.name!r}: the transform name must be a str, got {name!r:.80}")
        if not isinstance(parameters, Mapping):
            raise TypeError(
                f"{where} of subject {self.name!r}: the parameters of {name!r} must be a dict, "
                f"got {type(parameters).__name__} {parameters!r:.80}"
            )
        if "name" in parameters:
            raise ValueError(
                f"{where} of subject {self.name!r}: the parameters of {name!r} hold a 'name' "
                f"({parameters['name']!r}), the key of the transform's own name in the history records"
            )
        return {"name": name, **parameters}

    @property
    def applied_transforms(self) -> list[tuple[str, dict[str, Any]]]:
        """The history as TorchIO's ``(name, parameters)`` pairs, in the order applied.

        A new list on each access, built from the ``'history'`` records:
        appending to it records nothing (use :meth:`add_transform`).
        Assigning a list of pairs replaces the records (``[]`` clears them).

        Other transforms record the arguments that rebuild them, as TorchIO
        (``('Pad', {'include': None, ..., 'padding': 2, 'padding_mode': 0})``).
        torchpatch's random transforms record the parameters they drew under
        their own name (``('RandomFlip', {'axes': [0]})``); TorchIO records
        the deterministic transform it built (``('Flip', {'axes': (0,),
        ...})``). Both replay through ``get_applied_transforms``.

        Example:
            >>> import torch
            >>> from torchpatch import RandomFlip, ScalarImage, Subject
            >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 1, 1)))
            >>> RandomFlip(axes=(0,), flip_probability=1)(subject).applied_transforms
            [('RandomFlip', {'axes': [0]})]
        """
        pairs = []
        for position, record in enumerate(self._history_records()):
            if not isinstance(record, Mapping) or not isinstance(record.get("name"), str):
                raise ValueError(
                    f"history record {position} of subject {self.name!r} must be a dict with a 'name', "
                    f"got {record!r:.80}"
                )
            pairs.append((record["name"], {key: value for key, value in record.items() if key != "name"}))
        return pairs

    @applied_transforms.setter
    def applied_transforms(self, transforms: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        if isinstance(transforms, (str, Mapping)) or not isinstance(transforms, Sequence):
            raise TypeError(
                f"applied_transforms of subject {self.name!r} must be a list of (name, parameters) pairs, "
                f"got {type(transforms).__name__}"
            )
        records = []
        for position, pair in enumerate(transforms):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(
                    f"applied_transforms of subject {self.name!r}: element {position} must be a (name, parameters) "
                    f"pair, got {pair!r:.80}"
                )
            records.append(self._history_record(pair[0], pair[1], "applied_transforms"))
        if records or HISTORY in self._store:
            self._store[HISTORY] = records

    @property
    def history(self) -> list[Any]:
        """The applied transforms, as transforms (TorchIO's: ``get_applied_transforms``).

        The records themselves (dicts) are ``subject['history']``; this is
        what they replay as: torchpatch's ``Replay`` objects, callables
        ``Subject -> Subject`` holding the transform and its parameters
        (``.transform``, ``.params``), where TorchIO gives its deterministic
        transforms (``Flip(axes=(0,))``).

        Example:
            >>> import torch
            >>> from torchpatch import RandomFlip, ScalarImage, Subject
            >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(2.0).reshape(1, 2, 1, 1)))
            >>> flipped = RandomFlip(axes=(0,), flip_probability=1)(subject)
            >>> [type(t.transform).__name__ for t in flipped.history], flipped.history[0](subject).t1.data.flatten()
            (['RandomFlip'], tensor([1., 0.]))
        """
        return list(self.get_applied_transforms())

    def add_transform(self, transform: Any, parameters_dict: Mapping[str, Any]) -> None:
        """Record ``transform`` with its parameters at the end of the history, in place (TorchIO's).

        The record is ``{'name': transform.name, **parameters_dict}`` (a
        transform without a ``name`` attribute is recorded under its class
        name). The history list is replaced, not appended to, so subjects
        sharing it (a transform's input and output) are left unchanged.

        Args:
            transform: The transform applied (an instance, not a class).
            parameters_dict: Its parameters, without a ``'name'`` key.

        Raises:
            TypeError: For a class or a string as ``transform``, or
                parameters that are not a dict.
            ValueError: For parameters holding ``'name'``.

        Example:
            >>> import torch
            >>> from torchpatch import Flip, ScalarImage, Subject
            >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(2.0).reshape(1, 2, 1, 1)))
            >>> subject.add_transform(Flip(axes=(0,)), {'axes': (0,)})
            >>> subject['history'], subject.apply_inverse_transform().t1.data.flatten()
            ([{'name': 'Flip', 'axes': (0,)}], tensor([1., 0.]))
        """
        if isinstance(transform, (type, str)):
            raise TypeError(
                f"add_transform of subject {self.name!r} needs the transform applied (an instance), "
                f"got {transform!r:.80}"
            )
        name = getattr(transform, "name", None)
        if not isinstance(name, str) or not name:
            name = type(transform).__name__
        record = self._history_record(name, parameters_dict, "add_transform")
        self._store[HISTORY] = [*self._history_records(), record]

    # Dict members -----------------------------------------------------------------------

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` of the subject's images and metadata, as TorchIO's ``dict.copy`` gives.

        Shallow: the images and metadata values are the subject's own
        objects. The ``'history'`` records, metadata here, are included.
        For a new subject use ``copy.copy(subject)`` or
        :meth:`~torchpatch.subject.Subject.with_images`.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, Subject
            >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), age=40)
            >>> copied = subject.copy()
            >>> type(copied).__name__, list(copied), copied['t1'] is subject.t1
            ('dict', ['t1', 'age'], True)
        """
        return dict(self._store)

    def update_attributes(self) -> None:
        """Nothing to do: ``subject.name`` reads ``subject['name']`` whenever it is asked (TorchIO's).

        TorchIO copies the keys to attributes, and needs this call after
        ``subject['new'] = image``; here attribute access looks the key up.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage, Subject
            >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
            >>> subject['t2'] = ScalarImage(tensor=torch.ones(1, 2, 2, 2))
            >>> subject.update_attributes(); subject.t2 is subject['t2']
            True
        """

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.__dict__.get("_store", {})})


__all__ = ["SubjectMembers"]
