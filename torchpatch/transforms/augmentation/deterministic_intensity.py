"""TorchIO 1.x's deterministic intensity transforms: noise, gamma, blur, bias field and swap with given parameters.

As the spatial ones of :mod:`~torchpatch.transforms.augmentation.deterministic`, each subclasses its random twin,
replaces the draw by its arguments (one value for every image or a dict image
name -> value, TorchIO's per-image form) and records itself in the history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...geometry import is_number, to_triplet
from ...image import Image
from ...subject import Subject
from ..base import rebuild_image
from .artifacts import RandomBiasField, RandomSwap, number_of_coefficients
from .deterministic import Names, each_value, number_triplet, per_image
from .random import RandomTransform
from .resample import Frame, crop_region
from .voxelwise import RandomBlur, RandomGamma, RandomNoise, as_float


def _check_numbers(value: Any, argument: str, minimum: float | None = None) -> None:
    for item in each_value(value):
        if not is_number(item):
            raise TypeError(f"{argument} must be a number or a dict image name -> number, got {value!r}")
        if minimum is not None and item < minimum:
            raise ValueError(f"{argument} must be at least {minimum}, got {value!r}")


class Noise(RandomNoise):
    """Add Gaussian noise of given mean, standard deviation and seed: TorchIO's ``Noise``.

    Each may be one number for every image or a dict image name -> number;
    the noise of seed ``s`` is the one ``torch.manual_seed(s)`` then
    ``torch.randn`` gives, as in TorchIO.

    Args:
        mean: Mean of the noise.
        std: Standard deviation of the noise (non-negative).
        seed: Seed of the noise (an int).
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage
        >>> out = Noise(mean=1.0, std=0.0, seed=0)(Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 1, 1))))
        >>> out.t1.data.flatten().tolist(), out['history'][0]
        ([1.0, 1.0], {'name': 'Noise', 'mean': {'t1': 1.0}, 'std': {'t1': 0.0}, 'seed': {'t1': 0}})
    """

    fixed_params = True

    def __init__(
        self,
        mean: Any,
        std: Any,
        seed: Any,
        p: float = 1.0,
        include: Names = None,
        exclude: Names = None,
        **kwargs: Any,
    ):
        super().__init__(p=p, include=include, exclude=exclude, **kwargs)
        _check_numbers(mean, "mean")
        _check_numbers(std, "std", minimum=0)
        for item in each_value(seed):
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
                raise TypeError(f"seed must be an int or a dict image name -> int, got {seed!r}")
        self.noise_mean, self.noise_std, self.seed = mean, std, seed

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Noise:
        """The transform that a history record of it describes."""
        return cls(record["mean"], record["std"], record["seed"])

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given parameters, per image."""
        params: dict[str, Any] = {"mean": {}, "std": {}, "seed": {}}
        for name in self.get_images_dict(subject):
            params["mean"][name] = float(per_image(self.noise_mean, name, "mean", subject))
            params["std"][name] = float(per_image(self.noise_std, name, "std", subject))
            params["seed"][name] = int(per_image(self.seed, name, "seed", subject))
        return params

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"mean": self.noise_mean, "std": self.noise_std, "seed": self.seed, **RandomTransform.arguments(self)}


class Gamma(RandomGamma):
    """Raise intensities to a given power: TorchIO's ``Gamma``.

    Values become ``sign(x) * |x| ** gamma`` (see :class:`RandomGamma`).

    Args:
        gamma: The exponent: a number, one per channel, or a dict image
            name -> either.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.tensor([0.5, 0.5]).reshape(2, 1, 1, 1)))
        >>> Gamma(2)(subject).t1.data.flatten().tolist(), Gamma([1, 3])(subject).t1.data.flatten().tolist()
        ([0.25, 0.25], [0.5, 0.125])
    """

    fixed_params = True

    def __init__(self, gamma: Any, p: float = 1.0, include: Names = None, exclude: Names = None, **kwargs: Any) -> None:
        super().__init__(p=p, include=include, exclude=exclude, **kwargs)
        for item in each_value(gamma):
            values = item if isinstance(item, Sequence) and not isinstance(item, str) else [item]
            if not values or not all(is_number(value) for value in values):
                raise TypeError(f"gamma must be a number, one per channel, or a dict of these, got {gamma!r}")
        self.gamma = gamma

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Gamma:
        """The transform that a history record of it describes."""
        return cls(record["gamma"])

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given exponents, per image (a number or a list per channel)."""
        gammas = {}
        for name in self.get_images_dict(subject):
            value = per_image(self.gamma, name, "gamma", subject)
            gammas[name] = float(value) if is_number(value) else [float(g) for g in value]
        return {"gamma": gammas}

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Apply ``gamma`` (one number, or one per channel) to ``image``."""
        if is_number(params["gamma"]):
            return super().apply_image_params(image, params)
        data = as_float(image.data)
        exponent = _channel_exponents(params["gamma"], data.shape[0], data)
        return rebuild_image(image, data.sign() * data.abs() ** exponent.reshape(-1, 1, 1, 1))

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Raise to ``1 / gamma``."""
        inverse = {
            name: (1 / float(g) if is_number(g) else [1 / float(v) for v in g]) for name, g in params["gamma"].items()
        }
        return self.apply_params(subject, {"gamma": inverse})

    def apply_batch(
        self, name: str, data: torch.Tensor, params: Sequence[Mapping[str, Any]], *geometry: Any
    ) -> torch.Tensor:
        """Image ``name`` of a batch ``(B, C, ...)``, each sample with its own exponents."""
        exponent = torch.stack([_channel_exponents(p["gamma"][name], data.shape[1], data) for p in params])
        return data.sign() * data.abs() ** exponent.reshape(*exponent.shape, *[1] * (data.ndim - 2))

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"gamma": self.gamma, **RandomTransform.arguments(self)}


def _channel_exponents(gamma: Any, channels: int, like: torch.Tensor) -> torch.Tensor:
    values = [float(gamma)] if is_number(gamma) else [float(g) for g in gamma]
    if len(values) not in (1, channels):
        raise ValueError(f"gamma must be one number or one per channel ({channels}), got {gamma!r}")
    return torch.tensor(values * (channels if len(values) == 1 else 1), dtype=like.dtype, device=like.device)


class Blur(RandomBlur):
    """Blur with a Gaussian filter of given standard deviations in mm: TorchIO's ``Blur``.

    Args:
        std: One number or three (per axis, mm), or a dict image name -> either.
        p: Probability of applying the transform.
        include: Names of the only scalar images to blur.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage
        >>> impulse = torch.zeros(1, 9, 9, 1)
        >>> impulse[0, 4, 4, 0] = 1
        >>> out = Blur((1, 1, 0))(Subject(t1=ScalarImage(tensor=impulse)))
        >>> round(out.t1.data.sum().item(), 4), out['history'][0]['std']
        (1.0, {'t1': [1.0, 1.0, 0.0]})
    """

    fixed_params = True

    def __init__(self, std: Any, p: float = 1.0, include: Names = None, exclude: Names = None, **kwargs: Any) -> None:
        super().__init__(p=p, include=include, exclude=exclude, **kwargs)
        for item in each_value(std):
            if min(number_triplet(item, "std")) < 0:
                raise ValueError(f"std must be non-negative, got {std!r}")
        self.fixed_std = std

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Blur:
        """The transform that a history record of it describes."""
        return cls(record["std"])

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given standard deviations, per image."""
        stds = {
            name: list(number_triplet(per_image(self.fixed_std, name, "std", subject), "std"))
            for name in self.get_images_dict(subject)
        }
        return {"std": stds}

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"std": self.fixed_std, **RandomTransform.arguments(self)}


class BiasField(RandomBiasField):
    """Multiply by the bias field of given polynomial coefficients: TorchIO's ``BiasField``.

    Args:
        coefficients: The coefficients (see :func:`~.artifacts.bias_field`),
            or a dict image name -> coefficients.
        order: Degree of the polynomial, or a dict image name -> degree
            (dicts go together, as in TorchIO).
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        ValueError: When the number of coefficients does not fit the order,
            or only one of the arguments is a dict.

    Example:
        >>> from torchpatch import ScalarImage
        >>> out = BiasField([0.0, 1.0, 0.0, 0.0], 1)(Subject(t1=ScalarImage(tensor=torch.ones(1, 1, 1, 3))))
        >>> [round(v, 4) for v in out.t1.data.flatten().tolist()]
        [0.3679, 1.0, 2.7183]
    """

    fixed_params = True

    def __init__(
        self, coefficients: Any, order: Any, p: float = 1.0, include: Names = None, exclude: Names = None, **kwargs: Any
    ):
        if isinstance(coefficients, Mapping) != isinstance(order, Mapping):
            raise ValueError(
                f"coefficients and order must both be dicts image name -> value or neither, "
                f"got {type(coefficients).__name__} and {type(order).__name__}"
            )
        orders = each_value(order)
        super().__init__(0.0, orders[0] if orders else 0, p=p, include=include, exclude=exclude, **kwargs)
        for name in coefficients if isinstance(coefficients, Mapping) else [None]:
            values = coefficients[name] if name is not None else coefficients
            degree = order[name] if name is not None else order
            RandomBiasField(0.0, degree)  # checks the order
            if not all(is_number(value) for value in values) or len(values) != number_of_coefficients(degree):
                raise ValueError(
                    f"order {degree} needs {number_of_coefficients(degree)} numbers as coefficients, got {values!r}"
                )
        self.fixed_coefficients, self.fixed_order = coefficients, order

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> BiasField:
        """The transform that a history record of it describes."""
        return cls(record["coefficients"], record["order"])

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given coefficients and order (per image when given per image)."""
        if not isinstance(self.fixed_coefficients, Mapping):
            return {"coefficients": [float(c) for c in self.fixed_coefficients], "order": int(self.fixed_order)}
        names = list(self.get_images_dict(subject))
        return {
            "coefficients": {
                n: [float(c) for c in per_image(self.fixed_coefficients, n, "coefficients", subject)] for n in names
            },
            "order": {n: int(per_image(self.fixed_order, n, "order", subject)) for n in names},
        }

    def _single(self, params: Mapping[str, Any], name: str | None) -> tuple[RandomBiasField, dict[str, Any]]:
        """A bias field of one order (of image ``name`` for per-image params) and its parameters."""
        if name is None:
            return RandomBiasField(0.0, int(params["order"]), include=self.include, exclude=self.exclude), {
                "coefficients": params["coefficients"]
            }
        return RandomBiasField(0.0, int(params["order"][name]), include=[name]), {
            "coefficients": params["coefficients"][name]
        }

    def _names(self, params: Mapping[str, Any], subject: Subject) -> list[str | None]:
        if not isinstance(params["coefficients"], Mapping):
            return [None]
        return [name for name in self.get_images_dict(subject) if name in params["coefficients"]]

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Multiply the selected scalar images by their fields."""
        images = {}
        for name in self._names(params, subject):
            transform, own = self._single(params, name)
            images.update(transform.get_images_dict(transform.apply_params(subject, own)))
        return subject.with_images(images)

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Divide by the same fields."""
        coefficients = params["coefficients"]
        if isinstance(coefficients, Mapping):
            negated: Any = {name: [-float(c) for c in values] for name, values in coefficients.items()}
        else:
            negated = [-float(c) for c in coefficients]
        return self.apply_params(subject, {**params, "coefficients": negated})

    def apply_region(
        self,
        region: Subject,
        params: Mapping[str, Any],
        origin: Sequence[int],
        index_ini: Sequence[int],
        index_fin: Sequence[int],
        frame: Frame,
    ) -> Subject:
        """The fields of the whole images, evaluated on the box ``[index_ini, index_fin)`` of ``region``."""
        result: Subject | None = None
        images = {}
        for name in self._names(params, region):
            transform, own = self._single(params, name)
            result = transform.apply_region(region, own, origin, index_ini, index_fin, frame)
            images.update(transform.get_images_dict(result))
        if result is None:
            return crop_region(region, origin, index_ini, index_fin, frame)
        return result.with_images(images)

    def apply_batch(
        self,
        name: str,
        data: torch.Tensor,
        params: Sequence[Mapping[str, Any]],
        shape: Sequence[int],
        index_ini: Sequence[int],
        index_fin: Sequence[int],
    ) -> torch.Tensor:
        """Image ``name`` of a batch ``(B, C, ...)`` times each sample's field."""
        per_name = isinstance(params[0]["coefficients"], Mapping)
        transform, _ = self._single(params[0], name if per_name else None)
        own = [self._single(p, name if per_name else None)[1] for p in params]
        return transform.apply_batch(name, data, own, shape, index_ini, index_fin)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"coefficients": self.fixed_coefficients, "order": self.fixed_order, **RandomTransform.arguments(self)}


class Swap(RandomSwap):
    """Swap given pairs of patches: TorchIO's ``Swap``.

    Args:
        patch_size: Size of the patches (an int or three), or a dict image
            name -> size.
        locations: Pairs ``[first, second]`` of patch corners (voxel
            indices), swapped in this order, or a dict image name -> pairs.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)))
        >>> out = Swap((2, 1, 1), [[(2, 0, 0), (0, 0, 0)]])(subject)
        >>> out.t1.data.flatten().tolist(), out['history'][0]['name']
        ([2.0, 3.0, 0.0, 1.0], 'Swap')
    """

    fixed_params = True

    def __init__(
        self,
        patch_size: Any,
        locations: Any,
        p: float = 1.0,
        include: Names = None,
        exclude: Names = None,
        **kwargs: Any,
    ):
        sizes = [to_triplet(size, "patch_size") for size in each_value(patch_size)]
        super().__init__(sizes[0] if sizes else 1, 0, p=p, include=include, exclude=exclude, **kwargs)
        for pairs in each_value(locations):
            for pair in pairs:
                if len(pair) != 2 or not all(len(corner) == 3 for corner in pair):
                    raise ValueError(f"locations must hold pairs of corners (i, j, k), got {pair!r}")
        self.fixed_size, self.locations = patch_size, locations

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Swap:
        """The transform that a history record of it describes."""
        return cls(record["patch_size"], record["locations"])

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given patch sizes and locations, per image."""
        names = list(self.get_images_dict(subject))
        return {
            "patch_size": {
                n: list(to_triplet(per_image(self.fixed_size, n, "patch_size", subject), "patch_size")) for n in names
            },
            "locations": {
                n: [
                    [[int(v) for v in corner] for corner in pair]
                    for pair in per_image(self.locations, n, "locations", subject)
                ]
                for n in names
            },
        }

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Swap each selected scalar image's patches."""
        images = {}
        for name, image in self.get_images_dict(subject).items():
            size = per_image(params.get("patch_size", self.patch_size), name, "patch_size", subject)
            locations = per_image(params["locations"], name, "locations", subject)
            images[name] = _swapped(image, to_triplet(size, "patch_size"), locations)
        return subject.with_images(images)

    invertible = True

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Swap the same pairs in reverse order."""
        locations = params["locations"]
        if isinstance(locations, Mapping):
            backwards: Any = {name: list(reversed(pairs)) for name, pairs in locations.items()}
        else:
            backwards = list(reversed(locations))
        return self.apply_params(subject, {**params, "locations": backwards})

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"patch_size": self.fixed_size, "locations": self.locations, **RandomTransform.arguments(self)}


def _swapped(image: Image, size: Sequence[int], locations: Sequence[Sequence[Sequence[int]]]) -> Image:
    data = as_float(image.data).clone()
    for first, second in locations:
        a = (slice(None), *[slice(int(v), int(v) + s) for v, s in zip(first, size)])
        b = (slice(None), *[slice(int(v), int(v) + s) for v, s in zip(second, size)])
        patch = data[a].clone()
        data[a] = data[b]
        data[b] = patch
    return rebuild_image(image, data)


__all__ = ["BiasField", "Blur", "Gamma", "Noise", "Swap"]
