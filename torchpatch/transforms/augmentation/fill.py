"""Values outside the volume for the spatial transforms: ``default_pad_value``.

As in TorchIO 1.x: a number, or a statistic of the image (its minimum, or
the mean of the voxels on the volume's faces, or the mean of the face voxels
below their Otsu threshold); label maps are padded with ``default_pad_label``
(0 unless given).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...constants import INTENSITY
from ...geometry import is_number
from ...image import Image

#: Fill values computed from each image.
PAD_STATISTICS = ("minimum", "mean", "otsu")


def parse_pad_value(value: Any) -> float | str:
    """A finite number or one of ``'minimum'``, ``'mean'``, ``'otsu'``.

    Example:
        >>> parse_pad_value(0), parse_pad_value('mean')
        (0.0, 'mean')
    """
    if is_number(value):
        if not np.isfinite(value):
            raise ValueError(f"default_pad_value must be finite, got {value!r}")
        return float(value)
    if value not in PAD_STATISTICS:
        raise ValueError(f"default_pad_value must be a number or one of {list(PAD_STATISTICS)}, got {value!r}")
    return str(value)


def parse_pad_label(value: Any) -> float:
    """A finite number: label maps' value outside the volume (TorchIO's ``default_pad_label``).

    Example:
        >>> parse_pad_label(0), parse_pad_label(2)
        (0.0, 2.0)
    """
    if not is_number(value):
        raise TypeError(f"default_pad_label must be a number, got {type(value).__name__} {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"default_pad_label must be finite, got {value!r}")
    return float(value)


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """The threshold maximising the between-class variance of ``values`` (Otsu, 1979).

    Example:
        >>> 0.2 <= otsu_threshold(torch.tensor([0.0, 0.1, 0.2, 5.0, 5.1, 5.2])) < 5
        True
    """
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts = torch.histc(values.float(), bins, low, high).double()
    centres = torch.linspace(low, high, bins + 1, dtype=torch.float64)
    centres = (centres[:-1] + centres[1:]) / 2
    weight = counts.cumsum(0)
    total = weight[-1]
    mass = (counts * centres).cumsum(0)
    below = weight[:-1]
    above = total - below
    valid = (below > 0) & (above > 0)
    mean_below = mass[:-1] / below.clamp(min=1)
    mean_above = (mass[-1] - mass[:-1]) / above.clamp(min=1)
    variance = torch.where(valid, below * above * (mean_below - mean_above) ** 2, torch.zeros_like(below))
    index = int(variance.argmax())
    return float((centres[index] + centres[index + 1]) / 2)


def fill_value(image: Image, pad_value: float | str, pad_label: float = 0.0) -> float:
    """The value of ``image`` outside its volume: ``pad_label`` for label maps, else ``pad_value`` on the whole image.

    As in TorchIO, ``'minimum'`` is the image's minimum, ``'mean'`` the mean of
    the voxels on the six faces of the volume, ``'otsu'`` the mean of the face
    voxels below their Otsu threshold (the background).

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> image = ScalarImage(tensor=torch.tensor([1.0, 2.0, 6.0]).reshape(1, 3, 1, 1))
        >>> fill_value(image, 'minimum'), fill_value(image, 'mean'), fill_value(image, -1)
        (1.0, 3.0, -1.0)
        >>> labels = LabelMap(tensor=torch.ones(1, 2, 1, 1))
        >>> fill_value(labels, 'minimum'), fill_value(labels, 0, 5)
        (0.0, 5.0)
    """
    if image.type != INTENSITY:  # label maps and TorchIO's sampling maps
        return float(pad_label)
    data = image.data
    if pad_value in ("mean", "otsu"):
        border = torch.zeros(image.spatial_shape, dtype=torch.bool)
        for axis in range(3):
            border.narrow(axis, 0, 1).fill_(True)
            border.narrow(axis, border.shape[axis] - 1, 1).fill_(True)
        data = data[:, border.to(data.device)]
    return statistic_fill(data, pad_value)


def statistic_fill(data: torch.Tensor, pad_value: float | str) -> float:
    """``pad_value`` itself when a number, else that statistic of ``data``.

    Example:
        >>> statistic_fill(torch.tensor([1.0, 5.0]), 'mean'), statistic_fill(torch.tensor([1.0]), 7)
        (3.0, 7.0)
    """
    if not isinstance(pad_value, str):
        return float(pad_value)
    if pad_value == "minimum":
        return float(data.min())
    if pad_value == "mean":
        return float(data.double().mean())
    values = data.reshape(-1).cpu()
    background = values[values <= otsu_threshold(values)]
    return float(background.double().mean())


__all__ = ["PAD_STATISTICS", "fill_value", "otsu_threshold", "parse_pad_label", "parse_pad_value", "statistic_fill"]
