"""MRI ghosting: copies of the image shifted along one voxel axis, as periodic motion makes them.

Made in k-space (see :mod:`~torchpatch.transforms.augmentation.kspace`):
every ``n``-th plane across an axis is weakened, which repeats the image
``n`` times along it. TorchIO 1.x's names, arguments, defaults and draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...geometry import is_number, parse_voxel_axes
from ...image import Image
from ..base import rebuild_image
from ..torchio_bases import FourierTransform
from .kspace import (
    FixedIntensityTransform,
    draw_uniform,
    fourier_transform,
    inverse_fourier_transform,
    parse_count_range,
)
from .random import parse_range
from .voxelwise import IntensityRandomTransform, as_float


def add_ghosts(data: torch.Tensor, num_ghosts: int, axis: int, intensity: float, restore: float | None) -> torch.Tensor:
    """``data`` ``(C, I, J, K)`` with ``num_ghosts`` ghosts along voxel axis ``axis``.

    Every ``num_ghosts``-th plane of k-space across ``axis`` (from the first)
    is scaled by ``1 - intensity``, then the centre planes are restored: the
    middle one (``restore`` None) or the ``restore`` fraction of them
    (``round(restore * n) // 2`` planes each side of the middle).

    Example:
        >>> data = torch.zeros(1, 4, 1, 1)
        >>> data[0, 0, 0, 0] = 4.0
        >>> add_ghosts(data, 2, 0, 1.0, None).flatten().tolist()
        [3.0, 1.0, -1.0, 1.0]
    """
    if not num_ghosts or not intensity:
        return data
    data = as_float(data)
    spectrum = fourier_transform(data)
    size = spectrum.shape[axis + 1]
    middle = size // 2
    if restore is None:
        kept = slice(middle, middle + 1)
    else:
        half = int(np.round(restore * size)) // 2
        kept = slice(middle - half, middle + half)
    index: list[slice] = [slice(None)] * spectrum.ndim
    index[axis + 1] = kept
    centre = spectrum[tuple(index)].clone()
    index[axis + 1] = slice(None, None, num_ghosts)
    spectrum[tuple(index)] *= 1 - intensity
    index[axis + 1] = kept
    spectrum[tuple(index)] = centre
    return inverse_fourier_transform(spectrum).to(data.dtype)


def _ghost_image(image: Image, params: Mapping[str, Any]) -> Image:
    axis, restore = params["axis"], params["restore"]
    if not is_number(axis) or int(axis) not in (0, 1, 2):
        raise ValueError(f"axis must be a voxel axis 0, 1 or 2, got {axis!r}")
    if restore is not None and not (is_number(restore) and 0 <= restore <= 1):
        raise ValueError(f"restore must be None or a fraction in [0, 1], got {restore!r}")
    data = add_ghosts(
        image.data,
        int(params["num_ghosts"]),
        int(axis),
        float(params["intensity"]),
        None if restore is None else float(restore),
    )
    return image if data is image.data else rebuild_image(image, data)


class RandomGhosting(IntensityRandomTransform):
    """Add random ghosts along a voxel axis, like periodic motion (breathing, pulsation) in MRI.

    For each image, the number of ghosts ``n ~ U{num_ghosts}``, an axis
    among ``axes`` (not the depth axis of a 2D image), the strength
    ``s ~ U(intensity)`` and, when ``restore`` is a range, the restored
    fraction are drawn in TorchIO 1.x's order; see :func:`add_ghosts`.

    Args:
        num_ghosts: Range of the number of ghosts (both ends included); one
            int ``n`` means ``(0, n)``.
        axes: The voxel axes the ghosts may be along (one is drawn).
        intensity: Range of the strength relative to the spectrum (0: no
            ghosts); one number ``d`` means ``(0, d)``.
        restore: Range of the fraction of the centre of k-space restored;
            one number ``d`` means ``(0, d)``; None restores the middle plane.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When an argument has the wrong type (anatomical axis
            names are not taken: give voxel axes).
        ValueError: When a range is reversed or negative, an axis is not 0,
            1 or 2, ``restore`` is above 1, or (when called) a 2D image
            leaves no axis to draw.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> _ = torch.manual_seed(0)
        >>> out = RandomGhosting(axes=1)(Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8))))
        >>> record = out['history'][0]
        >>> sorted(record), record['axis']['t1'], 4 <= record['num_ghosts']['t1'] <= 10
        (['axis', 'intensity', 'name', 'num_ghosts', 'restore'], 1, True)
    """

    @property
    def num_ghosts_range(self) -> tuple[int, int]:
        """``num_ghosts``: TorchIO's name."""
        return self.num_ghosts

    @property
    def intensity_range(self) -> tuple[float, float]:
        """``intensity``: TorchIO's name."""
        return self.intensity

    def __init__(
        self,
        num_ghosts: int | tuple[int, int] = (4, 10),
        axes: int | Sequence[int] = (0, 1, 2),
        intensity: float | tuple[float, float] = (0.5, 1),
        restore: float | tuple[float, float] | None = None,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.num_ghosts = parse_count_range(num_ghosts, "num_ghosts")
        self.axes = parse_voxel_axes(axes)
        self.intensity = parse_range(intensity, "intensity", minimum=0, from_zero=True)
        self.restore = None if restore is None else parse_range(restore, "restore", minimum=0, from_zero=True)
        if self.restore is not None and self.restore[1] > 1:
            raise ValueError(f"restore must be a fraction in [0, 1], got {restore!r}")

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw the number of ghosts, axis, strength and restored fraction of one image."""
        axes = [a for a in self.axes if a != 2] if image.spatial_shape[2] == 1 else list(self.axes)
        if not axes:
            raise ValueError(f"axes {self.axes} leave no axis for ghosts in the 2D image of shape {image.shape}")
        count = int(torch.randint(self.num_ghosts[0], self.num_ghosts[1] + 1, (1,)).item())
        axis = axes[int(torch.randint(0, len(axes), (1,)).item())]
        intensity = draw_uniform(*self.intensity).item()
        restore = None if self.restore is None else draw_uniform(*self.restore).item()
        return {"num_ghosts": count, "axis": axis, "intensity": intensity, "restore": restore}

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Add the ghosts of ``params`` to ``image``."""
        return _ghost_image(image, params)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments = {"num_ghosts": self.num_ghosts, "axes": self.axes, "intensity": self.intensity}
        return {**arguments, "restore": self.restore, **super().arguments()}


class Ghosting(FixedIntensityTransform, FourierTransform):
    """Add ghosts with given parameters (those :class:`RandomGhosting` draws); see :func:`add_ghosts`.

    Args:
        num_ghosts: Number of ghosts (or a dict image name -> number).
        axis: Voxel axis of the ghosts (or a dict).
        intensity: Strength relative to the spectrum (or a dict).
        restore: Fraction of the centre of k-space restored, None for the
            middle plane (or a dict).
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> data = torch.zeros(1, 4, 1, 1)
        >>> data[0, 0, 0, 0] = 4.0
        >>> Ghosting(2, 0, 1.0, None)(Subject(t1=ScalarImage(tensor=data))).t1.data.flatten().tolist()
        [3.0, 1.0, -1.0, 1.0]
    """

    parameter_names = ("num_ghosts", "axis", "intensity", "restore")

    def __init__(
        self,
        num_ghosts: int | Mapping[str, int],
        axis: int | Mapping[str, int],
        intensity: float | Mapping[str, float],
        restore: float | Mapping[str, float | None] | None,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.num_ghosts = num_ghosts
        self.axis = axis
        self.intensity = intensity
        self.restore = restore

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Add the ghosts of ``params`` to ``image``."""
        return _ghost_image(image, params)


__all__ = ["Ghosting", "RandomGhosting", "add_ghosts"]
