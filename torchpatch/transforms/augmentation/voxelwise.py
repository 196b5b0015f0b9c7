"""Voxel-wise random intensity changes of scalar images: noise, gamma, blur.

Label maps pass through untouched. Each image of the subject gets its own
parameters (as in TorchIO), recorded per image name in the history.
Computations are in floating point: floating images keep their dtype,
integer images become ``float32`` (TorchIO reads them as ``float32`` too).
Parameters that change nothing (zero noise, ``gamma = 1``, zero blur) return
the image as it is, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ...geometry import is_number
from ...image import Image
from ...subject import Subject
from ..base import rebuild_image
from .random import RandomTransform, parse_range, uniform
from .resample import Frame, crop_region


def as_float(data: torch.Tensor) -> torch.Tensor:
    """``data`` itself when floating, else converted to ``float32``.

    Example:
        >>> as_float(torch.tensor([1, 2])).dtype, as_float(torch.tensor([1.0], dtype=torch.float64)).dtype
        (torch.float32, torch.float64)
    """
    return data if data.is_floating_point() else data.float()


class IntensityRandomTransform(RandomTransform):
    """A random transform of scalar images, with parameters drawn per image.

    Subclasses implement :meth:`draw` (parameters of one image, a dict of
    numbers) and :meth:`apply_image_params`. The record holds, for each
    parameter, a dict image name → value: ``{"std": {"t1": 0.1}, ...}``.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> class RandomOffset(IntensityRandomTransform):
        ...     def draw(self, image):
        ...         return {'offset': 1.0}
        ...     def apply_image_params(self, image, params):
        ...         return rebuild_image(image, image.data + params['offset'])
        >>> from torchpatch.transforms.base import rebuild_image
        >>> out = RandomOffset()(Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1))))
        >>> out.t1.data.item(), out['history']
        (1.0, [{'name': 'RandomOffset', 'offset': {'t1': 1.0}}])
    """

    intensity_only = True

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw the parameters of every selected image, in the order of the subject."""
        params: dict[str, Any] = {}
        for name, image in self.get_images_dict(subject).items():
            for key, value in self.draw(image).items():
                params.setdefault(key, {})[name] = value
        return params

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Apply each image's parameters to it (images without parameters are left as they are)."""
        images = {}
        for name, image in self.get_images_dict(subject).items():
            own = {key: values[name] for key, values in params.items() if name in values}
            if own:
                images[name] = self.apply_image_params(image, own)
        return subject.with_images(images)

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw the parameters of one image."""
        raise NotImplementedError(f"{type(self).__name__} must implement draw")

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Apply the parameters of one image."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_image_params")


class RandomNoise(IntensityRandomTransform):
    """Add Gaussian noise of random mean and standard deviation.

    For each image, ``mean ~ U(mean)`` and ``std ~ U(std)`` are drawn, and a
    seed for the noise itself, so the record replays exactly.

    Args:
        mean: Range of the mean; one number ``m`` means ``(-m, m)``.
        std: Range of the standard deviation; one number ``s`` means ``(0, s)``.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When a range is not one or two numbers.
        ValueError: When a range is reversed or ``std`` is negative.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> _ = torch.manual_seed(0)
        >>> out = RandomNoise(std=(1, 1))(Subject(t1=ScalarImage(tensor=torch.zeros(1, 20, 20, 20))))
        >>> round(out.t1.data.std().item(), 1), sorted(out['history'][0])
        (1.0, ['mean', 'name', 'seed', 'std'])
    """

    #: Each voxel depends on itself only: a patch needs no context.
    pointwise = True

    @property
    def mean_range(self) -> tuple[float, float]:
        """``mean``: TorchIO's name (its ``mean`` is the masking function)."""
        return self.mean

    @property
    def std_range(self) -> tuple[float, float]:
        """``std``: TorchIO's name."""
        return self.std

    #: The range argument (TorchIO keeps it as ``mean_range``; its ``mean`` is the masking function).
    mean: tuple[float, float]  # type: ignore[assignment]

    def __init__(
        self,
        mean: float | tuple[float, float] = 0.0,
        std: float | tuple[float, float] = (0.0, 0.25),
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.mean = parse_range(mean, "mean")
        self.std = parse_range(std, "std", minimum=0, from_zero=True)

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw the mean, standard deviation and seed of the noise of one image."""
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        return {"mean": uniform(*self.mean), "std": uniform(*self.std), "seed": seed}

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Add the noise described by ``params`` to ``image``."""
        mean, std = float(params["mean"]), float(params["std"])
        if mean == 0 and std == 0:
            return image
        data = as_float(image.data)
        generator = torch.Generator().manual_seed(int(params["seed"]))
        noise = torch.randn(data.shape, generator=generator, dtype=data.dtype)
        return rebuild_image(image, data + (noise * std + mean).to(data.device))

    def apply_batch(
        self, name: str, data: torch.Tensor, params: Sequence[Mapping[str, Any]], *geometry: Any
    ) -> torch.Tensor:
        """Image ``name`` of a batch ``(B, C, ...)`` plus noise of each sample's mean and std, drawn at once.

        The noise is drawn on the batch's device by one generator seeded with
        the first sample's seed (a batch replays as a whole).
        """
        shape = (-1, *[1] * (data.ndim - 1))
        mean = torch.tensor([float(p["mean"][name]) for p in params], device=data.device, dtype=data.dtype)
        std = torch.tensor([float(p["std"][name]) for p in params], device=data.device, dtype=data.dtype)
        generator = torch.Generator(device=data.device).manual_seed(int(params[0]["seed"][name]))
        noise = torch.randn(data.shape, generator=generator, device=data.device, dtype=data.dtype)
        return data + noise * std.reshape(shape) + mean.reshape(shape)

    invertible = True

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Subtract the same noise (its seed is recorded)."""
        negated = {
            key: ({n: -v for n, v in values.items()} if key in ("mean", "std") else values)
            for key, values in params.items()
        }
        return self.apply_params(subject, negated)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"mean": self.mean, "std": self.std, **super().arguments()}


class RandomGamma(IntensityRandomTransform):
    """Raise intensities to a random power ``gamma = exp(log_gamma)``.

    Values are mapped with ``sign(x) * |x| ** gamma`` (``x ** gamma`` for the
    non-negative images this is meant for; negative values keep their sign),
    so rescale intensities to ``[0, 1]`` first for the usual contrast change.

    Args:
        log_gamma: Range of ``log(gamma)``; one number ``x`` means ``(-x, x)``.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When ``log_gamma`` is not one or two numbers.
        ValueError: When the range is reversed or not finite.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(t1=ScalarImage(tensor=torch.tensor([0.25, -0.25]).reshape(1, 2, 1, 1)))
        >>> out = RandomGamma(log_gamma=(np.log(2), np.log(2)))(subject)
        >>> out.t1.data.flatten().tolist(), round(out['history'][0]['gamma']['t1'], 6)
        ([0.0625, -0.0625], 2.0)
    """

    #: Each voxel depends on itself only: a patch needs no context.
    pointwise = True

    @property
    def log_gamma_range(self) -> tuple[float, float]:
        """``log_gamma``: TorchIO's name."""
        return self.log_gamma

    def __init__(
        self,
        log_gamma: float | tuple[float, float] = (-0.3, 0.3),
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.log_gamma = parse_range(log_gamma, "log_gamma")

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw ``gamma`` for one image."""
        return {"gamma": float(np.exp(uniform(*self.log_gamma)))}

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Apply ``gamma`` to ``image``."""
        gamma = float(params["gamma"])
        if gamma == 1:
            return image
        data = as_float(image.data)
        return rebuild_image(image, data.sign() * data.abs() ** gamma)

    invertible = True

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Raise to ``1 / gamma``."""
        return self.apply_params(subject, {"gamma": {name: 1 / float(g) for name, g in params["gamma"].items()}})

    def apply_batch(
        self, name: str, data: torch.Tensor, params: Sequence[Mapping[str, Any]], *geometry: Any
    ) -> torch.Tensor:
        """Image ``name`` of a batch ``(B, C, ...)``, each sample with its own ``gamma``, at once."""
        gamma = torch.tensor([float(p["gamma"][name]) for p in params], device=data.device, dtype=data.dtype)
        gamma = gamma.reshape(-1, *[1] * (data.ndim - 1))
        return data.sign() * data.abs() ** gamma

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"log_gamma": self.log_gamma, **super().arguments()}


def _parse_blur_std(std: Any) -> tuple[tuple[float, float], ...]:
    if isinstance(std, Sequence) and not isinstance(std, str) and len(std) == 6:
        if not all(is_number(value) for value in std):
            raise TypeError(f"std must hold numbers, got {std!r}")
        return tuple(parse_range((std[2 * a], std[2 * a + 1]), "std", minimum=0) for a in range(3))
    return (parse_range(std, "std", minimum=0, from_zero=True),) * 3


class RandomBlur(IntensityRandomTransform):
    """Blur with a Gaussian filter of random standard deviations, in millimetres.

    For each image and axis, ``std ~ U(std)`` millimetres are drawn, turned
    into voxels with the image spacing, and the image is filtered with
    ``scipy.ndimage.gaussian_filter`` (edges mirrored), one channel at a time.

    Args:
        std: Range of the standard deviations in mm: one number ``d`` means
            ``(0, d)`` on every axis, two numbers a range for every axis,
            six numbers ``(a1, b1, a2, b2, a3, b3)`` a range per axis.
        p: Probability of applying the transform.
        include: Names of the only scalar images to blur.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When ``std`` is not one, two or six numbers.
        ValueError: When a range is reversed or negative.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> impulse = torch.zeros(1, 9, 9, 1)
        >>> impulse[0, 4, 4, 0] = 1
        >>> out = RandomBlur(std=(1, 1))(Subject(t1=ScalarImage(tensor=impulse)))
        >>> round(out.t1.data.sum().item(), 4), out.t1.data.max().item() < 0.2, out['history'][0]['std']['t1']
        (1.0, True, [1.0, 1.0, 1.0])
    """

    @property
    def std_ranges(self) -> tuple[float, ...]:
        """The six bounds of ``std`` (low, high per axis): TorchIO's name."""
        return tuple(value for pair in self.std for value in pair)

    def __init__(
        self,
        std: float | Sequence[float] = (0.0, 2.0),
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.std = _parse_blur_std(std)

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw the standard deviation in mm along each axis of one image."""
        return {"std": [uniform(*axis_range) for axis_range in self.std]}

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Blur ``image`` with the standard deviations ``params['std']`` (mm)."""
        sigmas = [float(std) / spacing for std, spacing in zip(params["std"], image.spacing)]
        if not any(sigmas):
            return image
        data = as_float(image.data)
        array = data.detach().cpu().numpy()
        blurred = np.stack([ndimage.gaussian_filter(channel, sigmas) for channel in array])
        return rebuild_image(image, torch.from_numpy(blurred).to(data.device))

    def source_box(
        self, params: Mapping[str, Any], index_ini: Sequence[int], index_fin: Sequence[int], frame: Frame
    ) -> tuple[list[int], list[int]]:
        """The box enlarged by the filter's radius (scipy's: ``int(4 * sigma + 0.5)`` voxels)."""
        spacing = np.linalg.norm(frame.affine[:3, :3], axis=0)
        radius = [0, 0, 0]
        for stds in params["std"].values():
            for axis in range(3):
                radius[axis] = max(radius[axis], int(4 * float(stds[axis]) / spacing[axis] + 0.5))
        return [a - r for a, r in zip(index_ini, radius)], [b + r for b, r in zip(index_fin, radius)]

    def apply_region(
        self,
        region: Subject,
        params: Mapping[str, Any],
        origin: Sequence[int],
        index_ini: Sequence[int],
        index_fin: Sequence[int],
        frame: Frame,
    ) -> Subject:
        """Blur the region (mirrored only where it ends with the volume), keep the box ``[index_ini, index_fin)``."""
        return crop_region(self.apply_params(region, params), origin, index_ini, index_fin, frame)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"std": [value for axis in self.std for value in axis], **super().arguments()}


__all__ = ["IntensityRandomTransform", "RandomBlur", "RandomGamma", "RandomNoise", "as_float"]
