"""Intensity normalisation of scalar images: :class:`RescaleIntensity`, :class:`ZNormalization`.

Both apply to :class:`~torchpatch.image.ScalarImage` only (label maps pass
through), return ``float32`` voxels, and can compute their statistics on a
mask: the non-zero voxels of another image of the subject (e.g. a brain mask),
or the output of a function of the image tensor (e.g. ``lambda x: x > 0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..geometry import is_number
from ..image import Image
from ..subject import Subject
from .base import Transform, rebuild_image
from .masking import TypeMaskingMethod, check_masking_method, get_mask


def _get_mask(
    masking_method: TypeMaskingMethod, image: Image, name: str, subject: Subject, values: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Boolean mask ``(1 or C, I, J, K)`` of the voxels to compute statistics on (``None``: all of them).

    Any form :mod:`~torchpatch.transforms.masking` accepts; a callable receives ``values`` when given (the float
    voxels, as TorchIO gives them), else the image's data.
    """
    if masking_method is None:
        return None
    return get_mask(masking_method, subject, image, name, values=values)


def _masked_values(values: torch.Tensor, mask: torch.Tensor | None, what: str) -> torch.Tensor:
    """Voxels of ``values`` selected by ``mask`` (all of them without one)."""
    if mask is None:
        return values.reshape(-1)
    selected = values[mask.expand_as(values)]
    if selected.numel() == 0:
        raise ValueError(f"the mask selects no voxel of {what}; cannot compute intensity statistics")
    return selected


def _pair(value: Any, argument: str) -> tuple[float, float]:
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"{argument} must have two values, got {len(items)}: {value!r}")
        if not all(is_number(item) for item in items):
            raise TypeError(f"{argument} must hold two numbers, got {value!r}")
        low, high = float(items[0]), float(items[1])
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{argument} must be finite, got {value!r}")
        return low, high
    raise TypeError(f"{argument} must be two numbers, got {type(value).__name__} {value!r}")


class RescaleIntensity(Transform):
    """Map an intensity range linearly onto ``out_min_max``, clipping outside it.

    The input range is ``in_min_max`` when given, else the ``percentiles`` of
    the voxel values (over all channels together, so the colours of an RGB
    image keep their balance), computed on the mask when there is one. Values
    are clipped to ``out_min_max``; a constant image becomes ``out_min``.

    Args:
        out_min_max: Output range; one number ``d`` means ``(-d, d)``.
        percentiles: Lower and upper percentiles (0 to 100) of the input
            range; one number ``p`` means ``(p, 100 - p)``. ``(0.5, 99.5)``
            ignores outliers.
        masking_method: ``None`` (every voxel), the name of an image of the
            subject (its non-zero voxels, e.g. a LabelMap) or a callable
            taking the image tensor and returning a bool tensor.
        in_min_max: Fixed input range (e.g. ``(-1000, 1000)`` for CT),
            replacing ``percentiles`` and the mask.
        include: Names of the only scalar images to rescale.
        exclude: Names of scalar images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``keep``, ``copy``...).

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When a range is empty or reversed, or a percentile is
            outside 0-100; when called, if the mask selects no voxel.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(a=ScalarImage(tensor=torch.tensor([0, 5, 10, 20]).reshape(1, 4, 1, 1)))
        >>> RescaleIntensity((0, 1))(subject).a.data.flatten().tolist()
        [0.0, 0.25, 0.5, 1.0]
        >>> RescaleIntensity((-1, 1), in_min_max=(0, 10))(subject).a.data.flatten().tolist()
        [-1.0, 0.0, 1.0, 1.0]
    """

    intensity_only = True

    @property
    def out_min(self) -> float:
        """The low end of ``out_min_max``: TorchIO's name."""
        return self.out_min_max[0]

    @property
    def out_max(self) -> float:
        """The high end of ``out_min_max``: TorchIO's name."""
        return self.out_min_max[1]

    def __init__(
        self,
        out_min_max: float | Sequence[float] = (0, 1),
        percentiles: float | Sequence[float] = (0, 100),
        masking_method: TypeMaskingMethod = None,
        in_min_max: Sequence[float] | None = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if is_number(out_min_max):
            out_min_max = (-abs(float(out_min_max)), abs(float(out_min_max)))  # type: ignore[arg-type]
        self.out_min_max = _pair(out_min_max, "out_min_max")
        if not self.out_min_max[0] < self.out_min_max[1]:
            raise ValueError(f"out_min_max must be (min, max) with min < max, got {out_min_max!r}")
        if is_number(percentiles):
            percentiles = (float(percentiles), 100 - float(percentiles))  # type: ignore[arg-type]
        self.percentiles = _pair(percentiles, "percentiles")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles!r}")
        self.masking_method = check_masking_method(masking_method)
        self.in_min_max = None if in_min_max is None else _pair(in_min_max, "in_min_max")
        if self.in_min_max is not None and not self.in_min_max[0] < self.in_min_max[1]:
            raise ValueError(f"in_min_max must be (min, max) with min < max, got {in_min_max!r}")

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {"out_min_max": self.out_min_max, "percentiles": self.percentiles}
        if self.masking_method is not None:
            arguments["masking_method"] = self.masking_method
        if self.in_min_max is not None:
            arguments["in_min_max"] = self.in_min_max
        return {**arguments, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Rescale one scalar image."""
        values = image.data.to(torch.float32)
        if self.in_min_max is not None:
            in_min, in_max = self.in_min_max
        else:
            mask = _get_mask(self.masking_method, image, name, subject)
            selected = _masked_values(values, mask, f"image {name!r} of subject {subject.name!r}")
            if self.percentiles == (0.0, 100.0):
                in_min, in_max = (float(v) for v in torch.aminmax(selected))
            else:
                # numpy, as torch.quantile refuses tensors of more than 2**24 values.
                low, high = np.percentile(selected.detach().cpu().numpy(), self.percentiles)
                in_min, in_max = float(low), float(high)
        out_min, out_max = self.out_min_max
        if in_max > in_min:
            rescaled = values - in_min  # a new tensor: the input is never modified
            # Divide, then multiply: the ratio of the two ranges overflows
            # float32 when the input range is subnormal.
            rescaled.div_(in_max - in_min).mul_(out_max - out_min).add_(out_min).clamp_(out_min, out_max)
        else:
            rescaled = torch.full_like(values, out_min)
        return rebuild_image(image, rescaled)


class ZNormalization(Transform):
    """Subtract the mean and divide by the standard deviation.

    As in TorchIO, one mean and one standard deviation are computed on the
    masked voxels of all the image's channels together (all voxels without a
    mask) and applied to every voxel; ``per_channel=True`` normalises each
    channel with its own statistics (what earlier torchpatch versions did,
    better for channels of different modalities). The standard
    deviation is the sample one (divided by ``N - 1``), as TorchIO's and
    torch's default; ``unbiased=False`` divides by ``N`` (the population
    one, which earlier torchpatch versions used: pass it to reproduce the
    inputs of a model trained with them).

    Args:
        masking_method: ``None`` (every voxel), the name of an image of the
            subject (its non-zero voxels, e.g. a LabelMap) or a callable
            taking the image's voxels as a float32 tensor (as TorchIO, which
            reads images as float32, gives them; integer images too) and
            returning a bool tensor, e.g. :meth:`ZNormalization.mean`.
        unbiased: Divide by the sample standard deviation (``N - 1``,
            TorchIO's numbers) when ``True``, by the population one (``N``)
            when ``False``. Keyword only.
        per_channel: Statistics of each channel apart (``False``: of all
            channels together, TorchIO's numbers). Keyword only.
        include: Names of the only scalar images to normalise.
        exclude: Names of scalar images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``keep``, ``copy``...).

    Raises:
        TypeError: When ``masking_method`` has the wrong type or
            ``unbiased`` is not a bool.
        ValueError: When called, if a channel is constant on the mask (a
            standard deviation of 0 cannot be divided by), holds NaN or
            infinity, or the mask selects no voxel.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(a=ScalarImage(tensor=torch.tensor([1.0, 3.0, 1.0, 3.0]).reshape(1, 4, 1, 1)))
        >>> ZNormalization(unbiased=False)(subject).a.data.flatten().tolist()
        [-1.0, 1.0, -1.0, 1.0]
        >>> [round(v, 4) for v in ZNormalization()(subject).a.data.flatten().tolist()]  # TorchIO's: N - 1
        [-0.866, 0.866, -0.866, 0.866]
        >>> ZNormalization(masking_method=ZNormalization.mean)  # TorchIO's foreground mask
        ZNormalization(masking_method=<function ZNormalization.mean at 0x...>)
    """

    intensity_only = True

    def __init__(
        self,
        masking_method: TypeMaskingMethod = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        *,
        unbiased: bool = True,
        per_channel: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.masking_method = check_masking_method(masking_method)
        if not isinstance(unbiased, bool):
            raise TypeError(f"unbiased must be True or False, got {type(unbiased).__name__} {unbiased!r}")
        self.unbiased = unbiased
        if not isinstance(per_channel, bool):
            raise TypeError(f"per_channel must be True or False, got {type(per_channel).__name__} {per_channel!r}")
        self.per_channel = per_channel

    @staticmethod
    def mean(tensor: torch.Tensor) -> torch.Tensor:
        """TorchIO's masking function: the voxels above the mean of ``tensor`` (all channels together).

        Pass it as ``masking_method=ZNormalization.mean`` to compute the
        statistics on the foreground of an image whose background is dark.

        Example:
            >>> ZNormalization.mean(torch.tensor([0, 0, 0, 4, 8])).tolist()
            [False, False, False, True, True]
        """
        return tensor > tensor.float().mean()

    @staticmethod
    def znorm(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """``tensor`` (as float32) minus the mean of its ``mask`` voxels, over their standard deviation.

        TorchIO's step, for code of one's own: ``None`` when those voxels
        are constant (a standard deviation of 0); the transform itself
        raises an error naming the image instead.

        Example:
            >>> ZNormalization.znorm(torch.tensor([1.0, 3.0]), torch.tensor([True, True])).tolist()
            [-0.7071067690849304, 0.7071067690849304]
        """
        values = tensor.float()
        std, mean = torch.std_mean(values.masked_select(mask.bool()))
        if float(std) == 0:
            return None
        return (values - mean) / std

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {}
        if self.masking_method is not None:
            arguments["masking_method"] = self.masking_method
        if not self.unbiased:
            arguments["unbiased"] = False
        if self.per_channel:
            arguments["per_channel"] = True
        return {**arguments, **super().arguments()}

    def _statistics(self, selected: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard deviation and mean of ``selected``, checked."""
        low, high = (float(v) for v in torch.aminmax(selected))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{what} holds NaN or infinite values; cannot z-normalize it")
        if low == high:
            raise ValueError(
                f"{what} is constant ({low:g}) on the voxels used for statistics: its standard deviation "
                f"is 0, so it cannot be z-normalized; exclude the image or use another masking_method"
            )
        std, mean = torch.std_mean(selected, correction=1 if self.unbiased else 0)
        return std, mean

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Normalise one scalar image."""
        values = image.data.to(torch.float32)
        mask = _get_mask(self.masking_method, image, name, subject, values)
        normalized = torch.empty_like(values)
        if not self.per_channel and values.shape[0] > 1:
            # TorchIO's statistics: the masked voxels of every channel together.
            selected = _masked_values(values, mask, f"image {name!r} of subject {subject.name!r}")
            std, mean = self._statistics(selected, f"image {name!r} of subject {subject.name!r}")
            return rebuild_image(image, values.sub(mean).div_(std))
        for channel in range(values.shape[0]):
            what = f"channel {channel} of image {name!r} of subject {subject.name!r}"
            channel_mask = None if mask is None else mask[channel if mask.shape[0] > 1 else 0]
            selected = _masked_values(values[channel], channel_mask, what)
            std, mean = self._statistics(selected, what)
            torch.sub(values[channel], mean, out=normalized[channel])
            normalized[channel].div_(std)
        return rebuild_image(image, normalized)


__all__ = ["RescaleIntensity", "ZNormalization"]
