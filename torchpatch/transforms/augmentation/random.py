"""Random transforms: drawing parameters, recording them, choosing among transforms.

Every random transform works in two steps, so that what it did can be
recorded, read back and replayed::

    subject ──get_params(subject)──> params (plain numbers and lists)
       └──────apply_params(subject, params)──> new subject
                                                 └── history += {"name": ..., **params}

Parameters are drawn from **torch's global random number generator**, so
``torch.manual_seed`` makes a pipeline reproducible, and so does the Queue,
which seeds it per subject whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from ...constants import HISTORY
from ...geometry import is_number
from ...image import Image
from ...subject import Subject
from ..base import Transform, TypeSubjectTransform, apply_checked, parse_probability, skips
from ..records import add_history
from ..torchio_methods import RandomMethods

#: Metadata key of the list of records of the transforms applied.
HISTORY_KEY = HISTORY


def parse_range(
    value: Any, argument: str, *, minimum: float | None = None, from_zero: bool = False, around: float = 0.0
) -> tuple[float, float]:
    """A range ``(low, high)`` given as two numbers or one, TorchIO-style.

    One number ``x`` means ``(around - x, around + x)``, or ``(0, x)`` with
    ``from_zero`` (standard deviations), and must then be non-negative.

    Args:
        value: One number or two.
        argument: Its name, for messages.
        minimum: The smallest value allowed in the range.
        from_zero: Whether one number ``x`` means ``(0, x)``.
        around: The centre of the range given by one number.

    Raises:
        TypeError: When ``value`` is not one or two numbers.
        ValueError: When the range is reversed, not finite or below ``minimum``.

    Example:
        >>> parse_range(0.3, 'log_gamma'), parse_range(2, 'std', minimum=0, from_zero=True)
        ((-0.3, 0.3), (0.0, 2.0))
        >>> parse_range((1, 0), 'std')
        Traceback (most recent call last):
        ...
        ValueError: std must be a range (low, high) with low <= high, got (1, 0)
    """
    if is_number(value):
        if value < 0:
            raise ValueError(f"{argument} given as one number must be non-negative, got {value!r}")
        low, high = (0.0, float(value)) if from_zero else (around - float(value), around + float(value))
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        if not all(is_number(item) for item in value):
            raise TypeError(f"{argument} must hold two numbers, got {value!r}")
        low, high = float(value[0]), float(value[1])
        if low > high:
            raise ValueError(f"{argument} must be a range (low, high) with low <= high, got {value!r}")
    else:
        raise TypeError(f"{argument} must be a number or two numbers (low, high), got {type(value).__name__} {value!r}")
    if not (torch.isfinite(torch.tensor([low, high])).all()):
        raise ValueError(f"{argument} must be finite, got {value!r}")
    if minimum is not None and low < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, got {value!r}")
    return low, high


def uniform(low: float, high: float) -> float:
    """A number drawn uniformly in ``[low, high)`` from torch's global generator.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> 1 <= uniform(1, 2) < 2, uniform(3, 3)
        (True, 3.0)
    """
    return float(low + (high - low) * torch.rand(()).item())


class RandomTransform(RandomMethods, Transform):
    """Base class of the random transforms: applied with probability ``p``, recorded in the history.

    Subclasses implement :meth:`get_params` (draw every random parameter,
    from torch's global generator, as plain Python numbers and lists) and
    :meth:`apply_params` (apply them, deterministically). Calling the
    transform draws, applies and appends ``{"name": class name, **params}``
    to the subject's ``history`` metadata, so
    ``transform.apply_params(subject, record)`` replays it.

    Args:
        p: Probability of applying the transform; when it is not applied the
            subject is returned as it is and nothing is recorded.
        include: Names of the only images to transform.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other
            keywords (``keep``, ``copy``...).

    Raises:
        TypeError: When ``p`` is not a number.
        ValueError: When ``p`` is outside ``[0, 1]``.

    Example:
        >>> from torchpatch import ScalarImage
        >>> class RandomShift(RandomTransform):
        ...     def get_params(self, subject):
        ...         return {'shift': uniform(0, 1)}
        ...     def apply_params(self, subject, params):
        ...         return subject.with_images({n: rebuild_image(i, i.data + params['shift'])
        ...                                     for n, i in self.get_images_dict(subject).items()})
        >>> from torchpatch.transforms.base import rebuild_image
        >>> _ = torch.manual_seed(0)
        >>> out = RandomShift()(Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 1))))
        >>> out['history'][0]['name'], out.t1.data[0, 0, 0, 0].item() == out['history'][0]['shift']
        ('RandomShift', True)
    """

    draws_p = True
    records_itself = True

    def __init__(
        self,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, p=p, **kwargs)

    def apply_transform(self, subject: Subject) -> Subject:
        """Draw the parameters, apply them and record them (with probability ``p``)."""
        if skips(self.p):
            return subject.with_images({})
        params = self.get_params(subject)
        return add_history(self.apply_params(subject, params), self.record(params))

    def record(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The history record of ``params`` applied: ``{'name': <class name>, **params}``.

        Example:
            >>> RandomTransform().record({'axes': [0]})
            {'name': 'RandomTransform', 'axes': [0]}
        """
        return {"name": type(self).__name__, **params}

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw the random parameters for ``subject`` (plain, picklable values)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_params")

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Apply the parameters drawn by :meth:`get_params` (or read from a history record)."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_params")

    def added_images(self, subject: Subject, params: Mapping[str, Any]) -> dict[str, Image]:
        """The images :meth:`apply_params` adds to ``subject``, as stand-ins of their class, shape and affine.

        Patch augmentation draws a whole pipeline's parameters before it
        computes anything; the transforms after this one draw theirs for
        these images too, as they would on the whole subject. None by
        default; :class:`~.labels_to_image.RandomLabelsToImage` adds one.
        """
        return {}

    #: Whether :meth:`RandomTransform.apply_inverse` undoes :meth:`RandomTransform.apply_params`.
    invertible: ClassVar[bool] = False

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Undo :meth:`apply_params` with the same parameters (invertible transforms only)."""
        raise ValueError(f"{type(self).__name__} cannot be inverted")

    #: Whether the parameters are given, not drawn (``Flip``, ``Affine``, ``Noise``...: TorchIO's deterministic ones).
    fixed_params: ClassVar[bool] = False

    def is_invertible(self) -> bool:
        """Whether :meth:`inverse` undoes this transform: given parameters that :meth:`apply_inverse` undoes.

        A random transform is undone through the subject's history instead
        (``subject.apply_inverse_transform()``), as in TorchIO.
        """
        return self.invertible and self.fixed_params

    def inverse(self) -> Transform:
        """The :class:`Inverse` of this transform (TorchIO's ``inverse``), for :meth:`is_invertible` ones.

        Example:
            >>> from torchpatch import ScalarImage
            >>> from torchpatch.transforms.augmentation import Affine
            >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 6, 6, 6)))
            >>> shifted = Affine(1, 0, (2, 0, 0))
            >>> back = shifted.inverse()(shifted(subject))
            >>> torch.allclose(back.t1.data[:, :4], subject.t1.data[:, :4], atol=1e-5), back['history'][0]['name']
            (True, 'Affine')
        """
        if not self.is_invertible():
            return super().inverse()
        return Inverse(self)


class Inverse(Transform):
    """Undoes a transform of given parameters (what its ``inverse()`` gives): :meth:`RandomTransform.apply_inverse`.

    Its own ``inverse()`` is the transform again. It leaves the history as it is.

    Example:
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import Noise
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 3, 3, 3)))
        >>> noise = Noise(0, 1, seed=7)
        >>> undo = noise.inverse()
        >>> undo, float(undo(noise(subject)).t1.data.abs().max()) < 1e-6, undo.inverse() is noise
        (Inverse(Noise(mean=0, std=1, seed=7)), True, True)
    """

    records_itself = True  # records nothing

    def __init__(self, transform: RandomTransform) -> None:
        super().__init__()
        self.transform = transform
        self.invert_transform = True  # TorchIO's flag: this applies the inverse of the parameters

    def apply_transform(self, subject: Subject) -> Subject:
        """Undo the transform's parameters for ``subject``."""
        return self.transform.apply_inverse(subject, self.transform.get_params(subject))

    def is_invertible(self) -> bool:
        """True: the transform itself."""
        return True

    def inverse(self) -> Transform:
        """The transform this undoes."""
        return self.transform

    def __repr__(self) -> str:
        return f"Inverse({self.transform!r})"


class OneOf(RandomMethods, Transform):
    """Apply one transform chosen at random, with probability ``p``.

    The chosen transform records itself in the history when it is random;
    ``OneOf`` adds no record of its own.

    Args:
        transforms: A mapping of transforms to their (relative, non-negative)
            weights, or a sequence of transforms, all equally likely.
        p: Probability of applying one of them.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other
            keywords, as for :class:`~torchpatch.transforms.Compose`.

    Raises:
        TypeError: When ``transforms`` is not a mapping or sequence of
            callables, or a weight is not a number.
        ValueError: When there is no transform, a weight is negative or all
            are zero, or ``p`` is outside ``[0, 1]``.

    Example:
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomFlip, RandomNoise
        >>> one_of = OneOf({RandomFlip(flip_probability=1): 0.8, RandomNoise(): 0.2})
        >>> _ = torch.manual_seed(0)
        >>> one_of(Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 1))))['history'][0]['name']
        'RandomFlip'
    """

    draws_p = True
    records_itself = True

    def __init__(
        self,
        transforms: Mapping[TypeSubjectTransform, float] | Sequence[TypeSubjectTransform],
        p: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(p=p, **kwargs)
        if isinstance(transforms, Mapping):
            items = list(transforms.items())
        elif isinstance(transforms, Sequence) and not isinstance(transforms, (str, bytes)):
            items = [(transform, 1.0) for transform in transforms]
        else:
            raise TypeError(
                f"transforms must be a mapping of transforms to weights or a sequence of transforms, "
                f"got {type(transforms).__name__}"
            )
        if not items:
            raise ValueError("transforms must hold at least one transform, got none")
        for position, (transform, weight) in enumerate(items):
            if not callable(transform):
                raise TypeError(
                    f"transforms[{position}] must be a callable Subject -> Subject, "
                    f"got {type(transform).__name__} {transform!r}"
                )
            if not is_number(weight):
                raise TypeError(f"the weight of {transform!r} must be a number, got {type(weight).__name__} {weight!r}")
            if weight < 0:
                raise ValueError(f"the weight of {transform!r} must be non-negative, got {weight!r}")
        if sum(weight for _, weight in items) <= 0:
            raise ValueError(f"the weights of transforms must not all be zero, got {[w for _, w in items]}")
        self.transforms: list[TypeSubjectTransform] = [transform for transform, _ in items]
        self.weights: list[float] = [float(weight) for _, weight in items]

    @property
    def transforms_dict(self) -> dict[TypeSubjectTransform, float]:
        """``{transform: probability}``, the weights normalized to sum to 1 (TorchIO's attribute)."""
        total = sum(self.weights)
        return {transform: weight / total for transform, weight in zip(self.transforms, self.weights)}

    def apply_transform(self, subject: Subject) -> Subject:
        """Choose one transform by weight and apply it (with probability ``p``)."""
        if skips(self.p):
            return subject.with_images({})
        index = int(torch.multinomial(torch.tensor(self.weights, dtype=torch.float64), 1).item())
        return apply_checked(self.transforms[index], subject, index, subject.name)

    def __repr__(self) -> str:
        inner = ", ".join(f"{transform!r}: {weight!r}" for transform, weight in zip(self.transforms, self.weights))
        suffix = f", p={self.p!r}" if self.p != 1 else ""
        return f"OneOf({{{inner}}}{suffix})"


__all__ = [
    "HISTORY_KEY",
    "Inverse",
    "OneOf",
    "RandomTransform",
    "add_history",
    "parse_probability",
    "parse_range",
    "uniform",
]
