"""MRI artefacts made in k-space: spikes (herringbone); the helpers the k-space artefacts share.

Each selected scalar image is Fourier transformed channel by channel
(:func:`fourier_transform`: ``fftn`` over the three voxel axes, then
``fftshift`` so the centre of k-space is at index ``n // 2``), changed there
and transformed back, keeping the real part. As in TorchIO 1.x, every image
gets its own parameters, recorded per image name; label maps pass through
untouched. Floating images keep their dtype, integer images become
``float32``; parameters that change nothing return the image as it is.

Each random transform has a deterministic twin taking the drawn parameters
(:class:`Spike` here; ``Ghosting`` and ``Motion`` live beside their random
twins in :mod:`~torchpatch.transforms.augmentation.ghosting` and
:mod:`~torchpatch.transforms.augmentation.motion`),
each parameter one value or a dict image name -> value, as in TorchIO.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ...image import Image
from ...subject import Subject
from ..base import Transform, rebuild_image, skips
from ..torchio_bases import FourierTransform
from .random import parse_probability, parse_range
from .voxelwise import IntensityRandomTransform, as_float

SPATIAL_DIMS = (-3, -2, -1)


def fourier_transform(data: torch.Tensor) -> torch.Tensor:
    """The centred spectrum of ``(..., I, J, K)`` voxels: ``fftshift(fftn(data))`` over the last three axes.

    Example:
        >>> spectrum = fourier_transform(torch.ones(1, 2, 2, 1))
        >>> spectrum[0, 1, 1, 0].item(), spectrum.abs().sum().item()
        ((4+0j), 4.0)
    """
    return torch.fft.fftshift(torch.fft.fftn(data, dim=SPATIAL_DIMS), dim=SPATIAL_DIMS)


def inverse_fourier_transform(spectrum: torch.Tensor) -> torch.Tensor:
    """The real part of the voxels of a centred spectrum (the inverse of :func:`fourier_transform`).

    Example:
        >>> data = torch.arange(8.0).reshape(1, 2, 4, 1)
        >>> torch.allclose(inverse_fourier_transform(fourier_transform(data)), data)
        True
    """
    return torch.fft.ifftn(torch.fft.ifftshift(spectrum, dim=SPATIAL_DIMS), dim=SPATIAL_DIMS).real


def parse_count_range(value: Any, argument: str) -> tuple[int, int]:
    """A range of non-negative ints ``(low, high)``, both included; one int ``n`` means ``(0, n)``.

    Raises:
        TypeError: When ``value`` is not one or two ints.
        ValueError: When they are negative or reversed.

    Example:
        >>> parse_count_range(3, 'num_spikes'), parse_count_range((4, 10), 'num_ghosts')
        ((0, 3), (4, 10))
        >>> parse_count_range(1.5, 'num_spikes')
        Traceback (most recent call last):
        ...
        TypeError: num_spikes must be an int or two ints (low, high), got float 1.5
    """
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    integers = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    if len(values) not in (1, 2) or not integers:
        raise TypeError(f"{argument} must be an int or two ints (low, high), got {type(value).__name__} {value!r}")
    low, high = (0, int(values[0])) if len(values) == 1 else (int(values[0]), int(values[1]))
    if low < 0 or high < low:
        raise ValueError(f"{argument} must be non-negative with low <= high, got {value!r}")
    return low, high


def draw_uniform(low: float, high: float, *shape: int) -> torch.Tensor:
    """``float32`` numbers drawn uniformly in ``[low, high)`` by ``uniform_`` on torch's global generator.

    TorchIO's MRI artefacts draw this way, so a seed gives TorchIO's numbers.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> values = draw_uniform(1, 2, 4)
        >>> values.dtype, bool(((values >= 1) & (values < 2)).all())
        (torch.float32, True)
    """
    return torch.empty(shape if shape else (1,)).uniform_(low, high)


def add_spikes(data: torch.Tensor, spikes_positions: Sequence[Sequence[float]], intensity: float) -> torch.Tensor:
    """``data`` ``(C, I, J, K)`` with spikes in the k-space of each channel.

    A spike at relative position ``(u, v, w)`` in ``[0, 1)`` adds
    ``intensity`` times the largest magnitude of the spectrum (as it is after
    the spikes before it) to the centred spectrum at index
    ``floor((u, v, w) * (I, J, K))``: stripes across the image.

    Example:
        >>> data = torch.zeros(1, 4, 1, 1)
        >>> data[0, 0, 0, 0] = 4.0
        >>> add_spikes(data, [[0.0, 0.0, 0.0]], 1.0).flatten().tolist()
        [5.0, -1.0, 1.0, -1.0]
    """
    positions = np.asarray(spikes_positions, dtype=np.float64).reshape(-1, 3)
    if intensity == 0 or len(positions) == 0:
        return data
    data = as_float(data)
    indices = np.floor(positions * np.asarray(data.shape[1:])).astype(np.int64)
    channels = []
    for channel in data:
        spectrum = fourier_transform(channel)
        for i, j, k in indices.tolist():
            spectrum[i, j, k] += spectrum.abs().max() * intensity
        channels.append(inverse_fourier_transform(spectrum).to(data.dtype))
    return torch.stack(channels)


class FixedIntensityTransform(Transform):
    """A deterministic transform of scalar images whose parameters are given, TorchIO-style.

    Each name of :attr:`parameter_names` is an attribute holding one value
    for every image or a dict image name -> value (images missing from a
    dict are left as they are). Subclasses implement
    :meth:`apply_image_params`. Applied with probability ``p`` (one number
    drawn, as TorchIO does for every transform); nothing is recorded.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> class Offset(FixedIntensityTransform):
        ...     parameter_names = ('offset',)
        ...     def __init__(self, offset):
        ...         super().__init__()
        ...         self.offset = offset
        ...     def apply_image_params(self, image, params):
        ...         return rebuild_image(image, image.data + params['offset'])
        >>> zeros = torch.zeros(1, 1, 1, 1)
        >>> subject = Subject(a=ScalarImage(tensor=zeros), b=ScalarImage(tensor=zeros))
        >>> out = Offset({'a': 2.0})(subject)
        >>> out.a.data.item(), out.b.data.item()
        (2.0, 0.0)
    """

    intensity_only = True
    #: Names of the attributes holding the parameters.
    parameter_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.p = parse_probability(p, "p")

    def image_params(self, name: str) -> dict[str, Any] | None:
        """The parameters of image ``name``, or None when a dict of parameters lacks it."""
        params = {}
        for key in self.parameter_names:
            value = getattr(self, key)
            if isinstance(value, Mapping):
                if name not in value:
                    return None
                value = value[name]
            params[key] = value
        return params

    def apply_transform(self, subject: Subject) -> Subject:
        """Apply each image's parameters (with probability ``p``)."""
        if skips(self.p):
            return subject.with_images({})
        images = {}
        for name, image in self.get_images_dict(subject).items():
            params = self.image_params(name)
            if params is not None:
                images[name] = self.apply_image_params(image, params)
        return subject.with_images(images)

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Apply the parameters of one image."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_image_params")

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments = {key: getattr(self, key) for key in self.parameter_names}
        if self.p != 1:
            arguments["p"] = self.p
        return {**arguments, **super().arguments()}


class RandomSpike(IntensityRandomTransform, FourierTransform):
    """Add random spikes to k-space: stripes across the image (herringbone artefact).

    For each image, the number of spikes ``n ~ U{num_spikes}``, the ratio
    ``r ~ U(intensity)`` and ``n`` positions in ``[0, 1)^3`` are drawn (in
    TorchIO 1.x's order, from torch's global generator); see :func:`add_spikes`.

    Args:
        num_spikes: Range of the number of spikes (both ends included); one
            int ``n`` means ``(0, n)``.
        intensity: Range of the ratio of a spike to the largest magnitude of
            the spectrum; one number ``d`` means ``(-d, d)``.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When ``num_spikes`` is not one or two ints, or
            ``intensity`` not one or two numbers.
        ValueError: When a range is reversed or ``num_spikes`` negative.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> _ = torch.manual_seed(0)
        >>> out = RandomSpike()(Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8))))
        >>> sorted(out['history'][0]), len(out['history'][0]['spikes_positions']['t1'])
        (['intensity', 'name', 'spikes_positions'], 1)
    """

    @property
    def intensity_range(self) -> tuple[float, float]:
        """``intensity``: TorchIO's name."""
        return self.intensity

    @property
    def num_spikes_range(self) -> tuple[int, int]:
        """``num_spikes``: TorchIO's name."""
        return self.num_spikes

    def __init__(
        self,
        num_spikes: int | tuple[int, int] = (1, 1),
        intensity: float | tuple[float, float] = (1, 3),
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.num_spikes = parse_count_range(num_spikes, "num_spikes")
        self.intensity = parse_range(intensity, "intensity")

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw the spike positions and intensity of one image."""
        count = int(torch.randint(self.num_spikes[0], self.num_spikes[1] + 1, (1,)).item())
        intensity = draw_uniform(*self.intensity).item()
        return {"spikes_positions": torch.rand(count, 3).tolist(), "intensity": intensity}

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Add the spikes of ``params`` to ``image``."""
        data = add_spikes(image.data, params["spikes_positions"], float(params["intensity"]))
        return image if data is image.data else rebuild_image(image, data)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"num_spikes": self.num_spikes, "intensity": self.intensity, **super().arguments()}


class Spike(FixedIntensityTransform, FourierTransform):
    """Add spikes to k-space at given positions (the parameters :class:`RandomSpike` draws).

    Args:
        spikes_positions: ``(n, 3)`` positions in ``[0, 1)`` (see
            :func:`add_spikes`), or a dict image name -> positions.
        intensity: Ratio of a spike to the largest magnitude of the
            spectrum, or a dict image name -> ratio.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> data = torch.zeros(1, 4, 1, 1)
        >>> data[0, 0, 0, 0] = 4.0
        >>> Spike([[0.0, 0.0, 0.0]], 1.0)(Subject(t1=ScalarImage(tensor=data))).t1.data.flatten().tolist()
        [5.0, -1.0, 1.0, -1.0]
    """

    parameter_names = ("spikes_positions", "intensity")

    def __init__(
        self,
        spikes_positions: Any,
        intensity: float | Mapping[str, float],
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.spikes_positions = spikes_positions
        self.intensity = intensity

    def is_invertible(self) -> bool:
        """True, as in TorchIO: :meth:`inverse` subtracts spikes of the same size (nearly what was added)."""
        return True

    def inverse(self) -> Spike:
        """The spikes again with the opposite intensity (TorchIO's inverse)."""
        intensity = self.intensity
        negated = {k: -v for k, v in intensity.items()} if isinstance(intensity, Mapping) else -intensity
        return Spike(self.spikes_positions, negated, self.p, self.include, self.exclude)

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Add the spikes of ``params`` to ``image``."""
        data = add_spikes(image.data, params["spikes_positions"], float(params["intensity"]))
        return image if data is image.data else rebuild_image(image, data)


__all__ = [
    "FixedIntensityTransform",
    "RandomSpike",
    "Spike",
    "add_spikes",
    "draw_uniform",
    "fourier_transform",
    "inverse_fourier_transform",
    "parse_count_range",
]
