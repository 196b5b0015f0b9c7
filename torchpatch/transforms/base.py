"""The transform protocol: a callable ``Subject -> Subject``.

Patching needs few preprocessing steps, and any callable that takes a
:class:`~torchpatch.subject.Subject` and returns one is accepted wherever a
transform is (``Compose``, ``SubjectsDataset``). :class:`Transform` adds what
the built-in steps share: choosing images with ``include``/``exclude``,
argument checks, a readable ``repr`` and the rule that the input subject is
never modified::

    subject ──Transform──> new Subject
       │                      ├── changed images: new Image objects
       │                      └── other images and metadata: shared
       └── untouched: same images, same voxels

Voxel tensors are never modified in place, so an output image may share
memory with its input when a transform leaves it unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, overload

import numpy as np
import torch

from ..constants import INTENSITY
from ..copying import input_for_apply
from ..geometry import is_number
from ..image import Image, LabelMap, ScalarImage
from ..subject import Subject
from ..typing import TypeAffine
from .records import add_history, transform_record
from .torchio_methods import TorchIOMethods

TypeSubjectTransform = Callable[[Subject], Subject]

#: Name under which a bare :class:`~torchpatch.image.Image` given to a
#: transform is wrapped in a subject (TorchIO's name).
DEFAULT_IMAGE_NAME = "default_image_name"


def rebuild_image(image: Image, data: torch.Tensor, affine: TypeAffine | None = None) -> Image:
    """A new image of the same class and metadata as ``image`` holding ``data``.

    The dtype of ``data`` is kept: a ``dtype`` requested when ``image`` was
    created applied to reading it, not to what a transform computes from it.
    State derived from the old voxels (the class positions the decode-once
    cache attaches to label maps) is dropped.

    Args:
        image: The image the new one derives from (left unchanged).
        data: New voxels, ``(C, I, J, K)``.
        affine: New affine; that of ``image`` when omitted.

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.zeros(1, 2, 2, 1, dtype=torch.int16))
        >>> new = rebuild_image(image, torch.ones(1, 3, 3, 1))
        >>> new.shape, new.dtype, image.shape
        ((1, 3, 3, 1), torch.float32, (1, 2, 2, 1))
    """
    return image.derive(data, image.affine if affine is None else np.asarray(affine, dtype=np.float64))


def skips(p: float) -> bool:
    """Whether a transform applied with probability ``p`` is skipped this time.

    Draws one number from torch's global generator every time, as TorchIO
    does (skipped when it is above ``p``), so the same seed gives TorchIO's
    parameters for the same pipeline.

    Example:
        >>> skips(1.0), skips(0.0)
        (False, True)
    """
    draw = torch.rand(1).item()
    return draw > p or p == 0


def parse_probability(value: Any, argument: str) -> float:
    """``value`` as a probability in ``[0, 1]``.

    Raises:
        TypeError: When ``value`` is not a number.
        ValueError: When it is outside ``[0, 1]``.

    Example:
        >>> parse_probability(0.5, 'p')
        0.5
        >>> parse_probability(2, 'p')
        Traceback (most recent call last):
        ...
        ValueError: p must be a probability in [0, 1], got 2
    """
    if not is_number(value):
        raise TypeError(f"{argument} must be a number in [0, 1], got {type(value).__name__} {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{argument} must be a probability in [0, 1], got {value!r}")
    return float(value)


def apply_checked(transform: TypeSubjectTransform, subject: Subject, position: int, name: str) -> Subject:
    """``transform(subject)``, checked to be a subject; ``position`` and ``name`` (the input's) are for the message.

    Example:
        >>> from torchpatch import ScalarImage
        >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 2, 2, 1)))
        >>> apply_checked(lambda x: x, s, 0, s.name) is s
        True
    """
    result = transform(subject)
    if not isinstance(result, Subject):
        raise TypeError(
            f"transforms[{position}] ({transform!r}) must return a Subject, "
            f"got {type(result).__name__} for subject {name!r}"
        )
    return result


def _parse_names(names: Any, argument: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        return (names,)
    if not isinstance(names, Sequence) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"{argument} must be None, an image name or a sequence of image names, got {names!r}")
    return tuple(names)


class Transform(TorchIOMethods):
    """Base class of the built-in transforms: ``Subject -> new Subject``.

    Subclasses implement :meth:`apply_image` (one image at a time) or, when
    images depend on each other, :meth:`apply_transform` (the whole subject).

    The keyword arguments after ``exclude`` are TorchIO's, which every
    TorchIO transform takes; subclasses take them through ``**kwargs``.

    Args:
        include: Names of the only images to transform (a single name is
            accepted); the others are passed through unchanged. For a
            ``dict`` input, the keys whose (4D tensor or array) values are
            images.
        exclude: Names of images to pass through unchanged. Give
            ``include`` or ``exclude``, not both.
        p: Probability of applying the transform. One number is drawn from
            torch's global generator at every call, whatever ``p`` (as
            TorchIO does, so seeded pipelines draw the same numbers); when
            the transform is skipped the subject is returned as it is.
        copy: Accepted for TorchIO scripts: TorchIO deep-copies the input
            unless ``copy=False``; torchpatch never modifies its input, so
            both values give a new subject and leave the input unchanged.
        keys: TorchIO's deprecated name of ``include`` (a ``FutureWarning``
            says so).
        keep: ``{image name: new name}``: the images, as they were before
            the transform, added to the output under the new names (for
            autoencoders or registration). Unlike TorchIO, they are added
            also when ``p`` skips the transform, so every output has the
            same keys and batches collate.
        parse_input: Whether inputs other than a subject (an image, a 4D
            tensor or array, a ``dict``) are accepted; with ``False`` only a
            subject is.
        label_keys: For a ``dict`` input, the names in ``include`` that are
            label maps (the others are scalar images).

    Raises:
        TypeError: When ``include``/``exclude``/``label_keys`` are not
            names, ``keep`` not a mapping of names, ``p`` not a number, or
            when the transform is called on something it does not take.
        ValueError: When both ``include`` and ``exclude`` (or ``keys``) are
            given, ``p`` is outside ``[0, 1]``, ``keep`` names an image the
            subject lacks or a name it already has, or a ``dict`` is
            transformed without ``include``.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> class Negate(Transform):
        ...     def apply_image(self, image, name, subject):
        ...         return rebuild_image(image, -image.data)
        >>> ones = torch.ones(1, 2, 2, 1)
        >>> subject = Subject(a=ScalarImage(tensor=ones), b=ScalarImage(tensor=ones))
        >>> out = Negate(exclude=['b'])(subject)
        >>> float(out.a.data.sum()), float(out.b.data.sum()), float(subject.a.data.sum())
        (-4.0, 4.0, 4.0)
        >>> Negate()(subject.a).data.flatten().tolist()  # a bare image in, an image out
        [-1.0, -1.0, -1.0, -1.0]
        >>> out = Negate(include='a', keep={'a': 'a_original'})(subject)
        >>> float(out.a.data.sum()), float(out.a_original.data.sum())
        (-4.0, 4.0)
        >>> out = Negate(include=['x'], label_keys=['x'])({'x': ones, 'age': 3})  # a dict in, a dict out
        >>> out['x'].sum().item(), out['x'].dtype, out['age']
        (-4, torch.int64, 3)
        >>> float(Negate(p=0)(subject).a.data.sum())  # skipped
        4.0
    """

    #: Whether only intensity images (ScalarImage) are transformed.
    intensity_only: ClassVar[bool] = False
    #: Whether ``apply_transform`` draws ``p`` itself (random transforms, ``Compose``, ``OneOf``)
    #: rather than ``Transform.__call__``.
    draws_p: ClassVar[bool] = False
    #: Whether ``apply_transform`` writes the history records itself (random transforms, those made of
    #: others); otherwise ``__call__`` appends :func:`~torchpatch.transforms.records.transform_record`.
    records_itself: ClassVar[bool] = False
    # Defaults for subclasses whose __init__ does not call ours.
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    p: float = 1.0
    copy: bool = True
    keep: dict[str, str] | None = None
    parse_input: bool = True
    label_keys: tuple[str, ...] | None = None

    def __init__(
        self,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        *,
        p: float = 1.0,
        copy: bool = True,
        keys: Sequence[str] | str | None = None,
        keep: dict[str, str] | None = None,
        parse_input: bool = True,
        label_keys: Sequence[str] | str | None = None,
    ) -> None:
        if keys is not None:
            warnings.warn("keys is deprecated (as in TorchIO): use include instead", FutureWarning, stacklevel=2)
            if include is not None:
                raise ValueError(f"give include or keys (its deprecated name), not both: got {include!r} and {keys!r}")
            include = keys
        self.include = _parse_names(include, "include")
        self.exclude = _parse_names(exclude, "exclude")
        if self.include is not None and self.exclude is not None:
            raise ValueError(
                f"give include or exclude, not both: got include={list(self.include)} and exclude={list(self.exclude)}"
            )
        self.p = parse_probability(p, "p")
        for name, flag in (("copy", copy), ("parse_input", parse_input)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {type(flag).__name__} {flag!r}")
        self.copy = copy
        self.parse_input = parse_input
        self.keep = _parse_keep(keep)
        self.label_keys = _parse_names(label_keys, "label_keys")

    @overload
    def __call__(self, subject: Subject) -> Subject: ...

    @overload
    def __call__(self, subject: Image) -> Image: ...

    @overload
    def __call__(self, subject: dict[str, Any]) -> dict[str, Any]: ...

    def __call__(self, subject: Any) -> Any:
        """Transform a subject, or a bare image as TorchIO does.

        An image is wrapped in a subject under the name
        :data:`DEFAULT_IMAGE_NAME`, transformed, and the transformed image is
        returned (the input image is left unchanged).
        """
        if isinstance(subject, Subject):
            return self._transform_subject(subject)
        if not self.parse_input:
            raise TypeError(
                f"{type(self).__name__} with parse_input=False takes a Subject, got {type(subject).__name__}"
            )
        if isinstance(subject, Image):
            wrapped = Subject({DEFAULT_IMAGE_NAME: subject})
            return self._transform_subject(wrapped).get_image(DEFAULT_IMAGE_NAME, repr(self))
        if isinstance(subject, (torch.Tensor, np.ndarray)) and subject.ndim == 4:
            # As TorchIO: a (C, I, J, K) tensor or array is a scalar image with an identity affine.
            image = ScalarImage(tensor=torch.as_tensor(subject))
            data = self(image).data
            return data.numpy() if isinstance(subject, np.ndarray) else data
        if isinstance(subject, dict):
            transformed = self._transform_subject(self._subject_from_dict(subject))
            return {key: value.data if isinstance(value, Image) else value for key, value in transformed.items()}
        raise TypeError(
            f"{type(self).__name__} takes a Subject, got {type(subject).__name__} (a bare Image, or a 4D "
            f"(C, I, J, K) tensor or array, is accepted too; so is a dict of them with include)"
        )

    def _transform_subject(self, subject: Subject) -> Subject:
        """Apply with probability ``p`` (unless :meth:`apply_transform` draws it) and add the ``keep`` images."""
        kept = {new: subject.get_image(old, "keep") for old, new in (self.keep or {}).items()}
        for new in kept:
            if new in subject:
                raise ValueError(f"keep would add {new!r} to subject {subject.name!r}, which has it already")
        if not self.draws_p and skips(self.p):
            transformed = subject.with_images({})
        else:
            transformed = self.apply_transform(input_for_apply(self, subject))
            if not self.records_itself:
                transformed = add_history(transformed, transform_record(self), after=subject)
        return transformed.with_images(kept) if kept else transformed

    def _subject_from_dict(self, data: dict[str, Any]) -> Subject:
        """A subject of the ``include`` entries of ``data`` (label maps: ``label_keys``) and its other entries."""
        if self.include is None:
            raise ValueError(
                f"{type(self).__name__} needs include (the keys of the images) to transform a dict, "
                f"got include=None for keys {sorted(map(str, data))}"
            )
        labels = self.label_keys or ()
        entries: dict[str, Any] = {}
        for key, value in data.items():
            if key in self.include:
                if not isinstance(value, (torch.Tensor, np.ndarray)):
                    raise TypeError(
                        f"dict entry {key!r} named by include must be a tensor or array, got {type(value).__name__}"
                    )
                value = (LabelMap if key in labels else ScalarImage)(tensor=torch.as_tensor(value))
            entries[key] = value
        return Subject(entries)

    def apply_transform(self, subject: Subject) -> Subject:
        """Transform the selected images one by one with :meth:`apply_image`."""
        images = self.get_images_dict(subject)
        return subject.with_images({name: self.apply_image(image, name, subject) for name, image in images.items()})

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Return the transformed ``image`` (named ``name`` in ``subject``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_image or apply_transform")

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        """The images of ``subject`` this transform applies to, by name.

        Raises:
            KeyError: When ``include``/``exclude`` name images the subject lacks.
            ValueError: When ``include`` names a label map and the transform
                applies to intensity images only.

        Example:
            >>> from torchpatch import LabelMap, ScalarImage, Subject
            >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 2, 2, 1)), b=LabelMap(tensor=torch.zeros(1, 2, 2, 1)))
            >>> list(Transform(exclude='a').get_images_dict(s))
            ['b']
        """
        if self.intensity_only and self.include is not None:
            labels = [name for name in self.include if name in subject.images and not _is_intensity(subject[name])]
            if labels:
                raise ValueError(
                    f"{type(self).__name__} applies to intensity images (ScalarImage) only, but include names "
                    f"the label maps {labels} of subject {subject.name!r}"
                )
        return subject.get_images_dict(self.intensity_only, self.include, self.exclude)

    @property
    def name(self) -> str:
        """The class name (TorchIO's)."""
        return type(self).__name__

    def is_invertible(self) -> bool:
        """Whether :meth:`inverse` gives the transform that undoes this one (TorchIO's)."""
        return False

    def inverse(self) -> Transform:
        """The transform that undoes this one (see :meth:`is_invertible`); else ``RuntimeError``, as in TorchIO."""
        raise RuntimeError(f"{self.name} is not invertible (undo random transforms with apply_inverse_transform)")

    def arguments(self) -> dict[str, Any]:
        """The arguments shown by ``repr``; subclasses extend it."""
        arguments: dict[str, Any] = {}
        if self.include is not None:
            arguments["include"] = list(self.include)
        if self.exclude is not None:
            arguments["exclude"] = list(self.exclude)
        if self.p != 1:
            arguments["p"] = self.p
        if self.keep is not None:
            arguments["keep"] = self.keep
        return arguments

    def __repr__(self) -> str:
        text = ", ".join(f"{key}={value!r}" for key, value in self.arguments().items())
        return f"{type(self).__name__}({text})"


def _parse_keep(keep: Any) -> dict[str, str] | None:
    if keep is None:
        return None
    if not isinstance(keep, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keep.items()):
        raise TypeError(f"keep must be None or a mapping of image names to new names, got {keep!r}")
    return dict(keep)


def _is_intensity(image: Image) -> bool:
    return image.type == INTENSITY


__all__ = ["DEFAULT_IMAGE_NAME", "Transform", "parse_probability", "rebuild_image"]
