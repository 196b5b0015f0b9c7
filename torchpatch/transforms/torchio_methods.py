"""The helper methods TorchIO's ``Transform`` offers its subclasses, on every torchpatch transform.

A transform written for TorchIO calls ``self.parse_params(...)``,
``self.get_mask_from_masking_method(...)``, ``self.sample_uniform(a, b)``
and the like from its own ``__init__`` and ``apply_transform``; a script
reads ``transform.probability`` or ``transform.to_hydra_config()``. These
mixins give every torchpatch transform those names, with TorchIO's
parameters and results, so such code runs unchanged:

- ``to_range(n, around)``: ``(around - n, around + n)``, or ``(0, n)``;
  ``parse_params(params, around, name)``: six numbers, ``(low, high)`` per
  axis; ``parse_bounds(bounds)``: six voxel counts, one per side;
  ``parse_probability``, ``parse_interpolation``,
  ``parse_include_and_exclude_keys``: the checked value;
  ``get_sitk_interpolator(name)``: SimpleITK's constant.
- ``nib_to_sitk``, ``sitk_to_nib``: voxels and a RAS+ affine to and from a
  SimpleITK image.
- ``ones``, ``mean``, ``get_mask_from_masking_method`` and its kin: masks
  (:mod:`~torchpatch.transforms.torchio_masks`).
- ``get_images``, ``get_parameter``, ``arguments_are_dict``: the images
  selected, values per image.
- ``args_names``, ``probability``, ``to_hydra_config()``: the arguments that
  rebuild the transform, ``p``, a Hydra config.
- Random transforms: ``sample_uniform``, ``sample_uniform_sextet``,
  ``parse_degrees``, ``parse_translation``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ..geometry import is_number
from ..image import Image
from ..io import nib_to_sitk, sitk_to_nib
from ..subject import Subject
from ..typing import TypeAffine
from .torchio_masks import TorchIOMasks

#: SimpleITK's interpolators by TorchIO's names (``Interpolation``'s members, lower case).
SITK_INTERPOLATORS: dict[str, int] = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "gaussian": sitk.sitkGaussian,
    "label_gaussian": sitk.sitkLabelGaussian,
    "hamming": sitk.sitkHammingWindowedSinc,
    "cosine": sitk.sitkCosineWindowedSinc,
    "welch": sitk.sitkWelchWindowedSinc,
    "lanczos": sitk.sitkLanczosWindowedSinc,
    "blackman": sitk.sitkBlackmanWindowedSinc,
}

#: Keywords every transform takes (Transform's), left out of ``args_names``.
BASE_KEYWORDS = frozenset({"include", "exclude", "p", "copy", "keys", "keep", "parse_input", "label_keys"})


_INIT_ARGUMENTS: dict[type, tuple[str, ...]] = {}


def _init_arguments(cls: type) -> tuple[str, ...]:
    """The parameters of ``cls.__init__`` beyond :data:`BASE_KEYWORDS` (once per class: every call records them)."""
    names = _INIT_ARGUMENTS.get(cls)
    if names is None:
        try:
            parameters = list(inspect.signature(cls.__init__).parameters.values())  # type: ignore[misc]
        except (TypeError, ValueError):
            parameters = []
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = _INIT_ARGUMENTS[cls] = tuple(
            parameter.name
            for parameter in parameters
            if parameter.kind in plain and parameter.name != "self" and parameter.name not in BASE_KEYWORDS
        )
    return names


def _numbers(params: Any, name: str) -> tuple[float, ...]:
    if isinstance(params, (torch.Tensor, np.ndarray)):
        return tuple(float(item) for item in params.reshape(-1).tolist())
    if isinstance(params, Sequence) and not isinstance(params, str):
        if not all(is_number(item) for item in params):
            raise ValueError(f"{name} must hold numbers, got {params!r}")
        return tuple(float(item) for item in params)
    if not is_number(params):
        raise ValueError(f"{name} must be a number or a sequence of numbers, got {type(params).__name__} {params!r}")
    return (float(params),)


def check_range(
    low: float,
    high: float,
    name: str,
    min_constraint: float | None = None,
    max_constraint: float | None = None,
    type_constraint: type | None = None,
) -> None:
    """Check one ``(low, high)`` range of :meth:`TorchIOMethods.parse_params` (``ValueError`` naming it).

    Example:
        >>> check_range(2.0, 1.0, 'degrees')
        Traceback (most recent call last):
        ...
        ValueError: degrees: the range (2.0, 1.0) has its low end above its high end
    """
    if low > high:
        raise ValueError(f"{name}: the range ({low}, {high}) has its low end above its high end")
    if min_constraint is not None and low < min_constraint:
        raise ValueError(f"{name}: the range ({low}, {high}) goes below {min_constraint}")
    if max_constraint is not None and high > max_constraint:
        raise ValueError(f"{name}: the range ({low}, {high}) goes above {max_constraint}")
    if type_constraint is int and not (float(low).is_integer() and float(high).is_integer()):
        raise ValueError(f"{name}: the range ({low}, {high}) must hold integers")


class TorchIOMethods(TorchIOMasks):
    """TorchIO's ``Transform`` helpers (mixed into :class:`~torchpatch.transforms.Transform`).

    Example:
        >>> from torchpatch.transforms import RandomAffine
        >>> RandomAffine().parse_params(10, 0, 'degrees')
        (-10.0, 10.0, -10.0, 10.0, -10.0, 10.0)
    """

    p: float
    include: tuple[str, ...] | None
    exclude: tuple[str, ...] | None
    copy: bool

    # What a transform is rebuilt from -------------------------------------------------

    @property
    def args_names(self) -> list[str]:
        """The arguments of the transform's own ``__init__`` (TorchIO's ``args_names``; assignable).

        A TorchIO-style subclass sets ``self.args_names = [...]`` itself;
        otherwise the parameters of the class's ``__init__`` beyond the
        keywords every transform takes.

        Example:
            >>> from torchpatch.transforms import Flip
            >>> Flip(0).args_names
            ['axes']
        """
        names = self.__dict__.get("_args_names")
        return list(_init_arguments(type(self)) if names is None else names)

    @args_names.setter
    def args_names(self, names: Sequence[str]) -> None:
        if isinstance(names, str) or not all(isinstance(name, str) for name in names):
            raise TypeError(f"{type(self).__name__}.args_names must be a sequence of argument names, got {names!r}")
        self.__dict__["_args_names"] = list(names)

    @property
    def probability(self) -> float:
        """TorchIO's name of ``p``: the probability of applying the transform.

        Example:
            >>> from torchpatch.transforms import RandomFlip
            >>> RandomFlip(p=0.25).probability
            0.25
        """
        return self.p

    @probability.setter
    def probability(self, value: float) -> None:
        self.p = self.parse_probability(value)

    @property
    def invert_transform(self) -> bool:
        """Whether this transform applies the inverse of its parameters (TorchIO's flag, on invertible ones only).

        ``hasattr(transform, 'invert_transform')`` tells an invertible
        transform, as in TorchIO; torchpatch's ``inverse()`` returns a
        transform of its own whose flag is ``True``.

        Example:
            >>> from torchpatch.transforms import Gamma, RandomFlip
            >>> gamma = Gamma(2.0)
            >>> gamma.invert_transform, gamma.inverse().invert_transform, hasattr(RandomFlip(), 'invert_transform')
            (False, True, False)
        """
        stored = self.__dict__.get("_invert_transform")
        if stored is not None:
            return bool(stored)
        if not self.is_invertible():
            raise AttributeError(f"{type(self).__name__} is not invertible: it has no invert_transform")
        return False

    @invert_transform.setter
    def invert_transform(self, value: bool) -> None:
        self.__dict__["_invert_transform"] = bool(value)

    def is_invertible(self) -> bool:
        raise NotImplementedError

    def to_hydra_config(self) -> dict[str, Any]:
        """A Hydra config that rebuilds the transform: ``'_target_'`` and every argument (tuples as lists).

        TorchIO's random transforms leave their own arguments out (their
        ``args_names`` is empty there); here every argument is included, so
        ``hydra.utils.instantiate(config)`` gives the same transform.

        Example:
            >>> from torchpatch.transforms import RandomFlip
            >>> config = RandomFlip(axes=(0, 1), p=0.5).to_hydra_config()
            >>> config['_target_'], config['axes'], config['p']
            ('torchpatch.transforms.RandomFlip', [0, 1], 0.5)
        """
        cls = type(self)
        target = f"{cls.__module__}.{cls.__qualname__}"
        for public in ("torchpatch.transforms", "torchpatch"):
            module = importlib.import_module(public)
            if getattr(module, cls.__name__, None) is cls:
                target = f"{public}.{cls.__name__}"
                break
        config: dict[str, Any] = {"_target_": target, "include": self.include, "exclude": self.exclude}
        config.update(copy=self.copy, p=self.p)
        shown = self.arguments() if hasattr(self, "arguments") else {}
        for name in self.args_names:
            if name in shown:
                config[name] = shown[name]
            elif hasattr(self, name):
                config[name] = getattr(self, name)
        return _lists(config)

    # Parsing -------------------------------------------------------------------------

    @staticmethod
    def to_range(n: float, around: float | None) -> tuple[float, float]:
        """``(0, n)`` without ``around``, else ``(around - n, around + n)``.

        Example:
            >>> TorchIOMethods.to_range(0.1, 1), TorchIOMethods.to_range(2, None)
            ((0.9, 1.1), (0.0, 2.0))
        """
        if around is None:
            return 0.0, float(n)
        return float(around - n), float(around + n)

    def parse_params(
        self,
        params: Any,
        around: float | None,
        name: str,
        make_ranges: bool = True,
        min_constraint: float | None = None,
        max_constraint: float | None = None,
        type_constraint: type | None = None,
    ) -> tuple[float, ...]:
        """One, two, three or six numbers as TorchIO's six ``(low, high)`` bounds, one pair per axis.

        ``d`` means ``d`` for each axis, ``(a, b)`` the range ``(a, b)`` for
        each, and one number per axis becomes :meth:`to_range` of it. With
        ``make_ranges=False`` the numbers come back as given (one repeated
        three times).

        Raises:
            ValueError: When ``params`` is not numbers, has another length, or a range breaks a constraint.

        Example:
            >>> TorchIOMethods().parse_params((0.9, 1.1), None, 'scales')
            (0.9, 1.1, 0.9, 1.1, 0.9, 1.1)
            >>> TorchIOMethods().parse_params((1, 2, 3), None, 'translation')
            (0.0, 1.0, 0.0, 2.0, 0.0, 3.0)
        """
        numbers = _numbers(params, name)
        if len(numbers) == 1 or (len(numbers) == 2 and make_ranges):
            numbers = numbers * 3
        if not make_ranges:
            return numbers
        if len(numbers) == 3:
            numbers = tuple(value for n in numbers for value in self.to_range(n, around))
        if len(numbers) != 6:
            raise ValueError(f"{name} given as a sequence must hold 2, 3 or 6 numbers, got {len(numbers)}: {params!r}")
        for low, high in zip(numbers[::2], numbers[1::2]):
            check_range(low, high, name, min_constraint, max_constraint, type_constraint)
        return numbers

    @staticmethod
    def parse_probability(probability: float) -> float:
        """``probability`` checked to be a number in ``[0, 1]``.

        Example:
            >>> TorchIOMethods.parse_probability(1)
            1
        """
        if not is_number(probability) or not 0 <= probability <= 1:
            raise ValueError(f"a probability must be a number in [0, 1], got {probability!r}")
        return probability

    @staticmethod
    def parse_interpolation(interpolation: str) -> str:
        """An interpolation name TorchIO knows (``'linear'``, ``'lanczos'``...), in lower case.

        torchpatch's own resampling runs ``'nearest'``, ``'linear'`` and
        ``'bspline'``; the others are SimpleITK's, for code of one's own.

        Example:
            >>> TorchIOMethods.parse_interpolation('Linear')
            'linear'
        """
        if not isinstance(interpolation, str):
            raise TypeError(f"interpolation must be a string, got {type(interpolation).__name__} {interpolation!r}")
        if interpolation.lower() not in SITK_INTERPOLATORS:
            raise ValueError(f"interpolation must be one of {list(SITK_INTERPOLATORS)}, got {interpolation!r}")
        return interpolation.lower()

    @staticmethod
    def get_sitk_interpolator(interpolation: str) -> int:
        """SimpleITK's interpolator constant for a name :meth:`parse_interpolation` accepts.

        Example:
            >>> TorchIOMethods.get_sitk_interpolator('nearest') == sitk.sitkNearestNeighbor
            True
        """
        return SITK_INTERPOLATORS[TorchIOMethods.parse_interpolation(interpolation)]

    @staticmethod
    def parse_include_and_exclude_keys(include: Any, exclude: Any, label_keys: Any) -> tuple[Any, Any]:
        """``(include, exclude)`` checked: not both, and each ``None`` or a sequence of names (not one string).

        Example:
            >>> TorchIOMethods.parse_include_and_exclude_keys(['t1'], None, None)
            (['t1'], None)
        """
        if include is not None and exclude is not None:
            raise ValueError(f"give include or exclude, not both: got {include!r} and {exclude!r}")
        for keys, name in ((include, "include"), (exclude, "exclude"), (label_keys, "label_keys")):
            if keys is None:
                continue
            if isinstance(keys, str) or not isinstance(keys, Sequence | set | frozenset):
                raise ValueError(f"{name} must be a sequence of names, not {type(keys).__name__} {keys!r}")
        return include, exclude

    # SimpleITK -----------------------------------------------------------------------

    @staticmethod
    def nib_to_sitk(data: Any, affine: Any) -> sitk.Image:
        """``(C, I, J, K)`` voxels and a RAS+ affine as a SimpleITK image: :func:`torchpatch.io.nib_to_sitk`.

        Example:
            >>> TorchIOMethods.nib_to_sitk(torch.zeros(1, 4, 3, 2), np.eye(4)).GetSize()
            (4, 3, 2)
        """
        return nib_to_sitk(data, affine)

    @staticmethod
    def sitk_to_nib(image: sitk.Image) -> tuple[np.ndarray[Any, Any], TypeAffine]:
        """A SimpleITK image as ``(C, I, J, K)`` voxels and its RAS+ affine: :func:`torchpatch.io.sitk_to_nib`.

        Example:
            >>> data, affine = TorchIOMethods.sitk_to_nib(sitk.Image([4, 3, 2], sitk.sitkFloat32))
            >>> data.shape
            (1, 4, 3, 2)
        """
        return sitk_to_nib(image)

    # Images and per-image values -----------------------------------------------------

    def get_images(self, subject: Subject) -> list[Image]:
        """The images of ``subject`` the transform applies to (``get_images_dict``'s values).

        Example:
            >>> from torchpatch.transforms import RandomFlip
            >>> from torchpatch import ScalarImage
            >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1)))
            >>> len(RandomFlip().get_images(subject))
            1
        """
        return list(self.get_images_dict(subject).values())  # type: ignore[attr-defined]

    @staticmethod
    def get_parameter(value: Any, name: str) -> Any:
        """``value[name]`` when ``value`` is a mapping of image names, else ``value`` (TorchIO's per-image values).

        Example:
            >>> TorchIOMethods.get_parameter({'t1': 2}, 't1'), TorchIOMethods.get_parameter(3, 't1')
            (2, 3)
        """
        if isinstance(value, Mapping):
            return value[name]
        return value

    def arguments_are_dict(self) -> bool:
        """Whether every argument named in ``args_names`` is a dict (none: ``False``; some: ``ValueError``).

        Example:
            >>> transform = TorchIOMethods()
            >>> transform.args_names = ['gain']
            >>> transform.gain = {'t1': 2.0}
            >>> transform.arguments_are_dict()
            True
        """
        values = [getattr(self, name) for name in self.args_names if hasattr(self, name)]
        dicts = [isinstance(value, dict) for value in values]
        if dicts and all(dicts):
            return True
        if any(dicts):
            raise ValueError(
                f"{type(self).__name__}: the arguments {self.args_names} must be all dicts or none, got {values!r}"
            )
        return False


class RandomMethods:
    """TorchIO's ``RandomTransform`` helpers (mixed into :class:`~torchpatch.transforms.augmentation.RandomTransform`).

    Example:
        >>> RandomMethods.sample_uniform(2.0, 2.0)
        2.0
    """

    @staticmethod
    def parse_range(value: Any, name: str) -> tuple[float, float]:
        """One non-negative number ``n`` as ``(-n, n)``, or two numbers ``(low, high)`` checked.

        Example:
            >>> RandomMethods.parse_range(5, 'degrees'), RandomMethods.parse_range((1, 2), 'translation')
            ((-5.0, 5.0), (1.0, 2.0))
        """
        if is_number(value):
            if value < 0:
                raise ValueError(f"{name} given as one number must be at least 0, got {value!r}")
            return -float(value), float(value)
        numbers = _numbers(value, name)
        if len(numbers) != 2:
            raise ValueError(f"{name} must be one number or two (low, high), got {value!r}")
        check_range(numbers[0], numbers[1], name)
        return numbers[0], numbers[1]

    def parse_degrees(self, degrees: Any) -> tuple[float, float]:
        """A rotation range in degrees: ``n`` means ``(-n, n)`` (:meth:`parse_range`).

        Example:
            >>> from torchpatch.transforms import RandomAffine
            >>> RandomAffine().parse_degrees(5)
            (-5.0, 5.0)
        """
        return self.parse_range(degrees, "degrees")

    def parse_translation(self, translation: Any) -> tuple[float, float]:
        """A translation range in mm: ``n`` means ``(-n, n)`` (:meth:`parse_range`).

        Example:
            >>> from torchpatch.transforms import RandomAffine
            >>> RandomAffine().parse_translation((1, 2))
            (1.0, 2.0)
        """
        return self.parse_range(translation, "translation")

    @staticmethod
    def sample_uniform(a: float, b: float) -> float:
        """One number in ``[a, b)`` from torch's global generator (TorchIO's draw).

        Example:
            >>> _ = torch.manual_seed(0)
            >>> 1 <= RandomMethods.sample_uniform(1, 2) < 2
            True
        """
        return float(torch.empty(1).uniform_(a, b).item())

    @staticmethod
    def sample_uniform_sextet(params: Sequence[float]) -> tuple[float, float, float]:
        """One number per axis, each from its ``(low, high)`` pair of six numbers.

        Example:
            >>> RandomMethods.sample_uniform_sextet((1, 1, 2, 2, 3, 3))
            (1.0, 2.0, 3.0)
        """
        if len(params) != 6:
            raise ValueError(f"sample_uniform_sextet takes six numbers (three ranges), got {params!r}")
        a, b, c = (RandomMethods.sample_uniform(params[2 * i], params[2 * i + 1]) for i in range(3))
        return a, b, c


def _lists(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value


__all__ = ["BASE_KEYWORDS", "SITK_INTERPOLATORS", "RandomMethods", "TorchIOMethods", "check_range"]
