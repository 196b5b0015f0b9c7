"""MRI motion: the subject moves a few times during the acquisition (Shaw et al., 2019, as in TorchIO 1.x).

The image is resampled under each rigid movement, and k-space is put
together from the spectra of these copies, each filling the slab of planes
along the last voxel axis ``k`` acquired while the subject was in that
position::

    times:        0 ──── t1 ──── t2 ──── 1
    k planes:     [ pose A ][ pose B ][ pose C ]   (the unmoved image fills
                                                    the slab holding k-space's centre)

The movements are TorchIO's: rotations (degrees, about the world axes
composed ``Rz Rx Ry``) and translations (mm) in SimpleITK's LPS world, about
its origin (see :func:`motion_voxel_map`); the resampling is torchpatch's
own engine (:class:`~torchpatch.transforms.augmentation.resample.SamplingGrid`
and :func:`~torchpatch.transforms.augmentation.resample.resample_region`:
ITK's border rules, the channel's minimum outside the volume).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...geometry import LPS_TO_RAS
from ...image import Image
from ..base import rebuild_image
from ..torchio_bases import FourierTransform
from .affine import rotation_matrix
from .kspace import FixedIntensityTransform, draw_uniform, fourier_transform, inverse_fourier_transform
from .random import parse_range
from .resample import SamplingGrid, parse_interpolation, resample_region
from .voxelwise import IntensityRandomTransform, as_float


def motion_voxel_map(degrees: Any, translation: Any, affine: Any) -> Any:
    """The 4x4 map from output voxels to the input voxels they sample, for one movement.

    The movement ``x -> R x + t`` acts in LPS world coordinates (SimpleITK's),
    about the world origin: TorchIO 1.x builds it about the grid's centre
    but keeps only the rotation and translation, so the centre drops out.

    Example:
        >>> motion_voxel_map([0, 0, 0], [2, 0, 0], np.eye(4))[:3, 3].tolist()  # 2 mm left = -2 in RAS
        [-2.0, 0.0, 0.0]
    """
    affine = np.asarray(affine, dtype=np.float64)
    flip = LPS_TO_RAS[:3, :3]
    world = np.eye(4)
    world[:3, :3] = flip @ rotation_matrix(degrees) @ flip
    world[:3, 3] = flip @ np.asarray(translation, dtype=np.float64)
    return np.linalg.inv(affine) @ world @ affine


def _resample(data: torch.Tensor, matrix: Any, interpolation: str) -> torch.Tensor:
    shape = data.shape[1:]
    axes = [torch.arange(n, dtype=torch.float64) for n in shape]
    voxels = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    points = voxels @ matrix[:3, :3].T + matrix[:3, 3]
    grid = SamplingGrid(points, (0, 0, 0), shape, shape)
    # ITK's default pixel value in TorchIO is each channel's minimum.
    channels = [resample_region(channel[None], grid, interpolation, float(channel.min())) for channel in data]
    return torch.cat(channels).to(data.dtype)


def add_motion(
    data: torch.Tensor,
    affine: Any,
    degrees: Sequence[Sequence[float]],
    translation: Sequence[Sequence[float]],
    times: Sequence[float],
    image_interpolation: str = "linear",
) -> torch.Tensor:
    """``data`` ``(C, I, J, K)`` as acquired while the subject made the movements given.

    Args:
        data: The voxels.
        affine: Their 4x4 voxel-to-RAS affine.
        degrees: ``(n, 3)`` rotations, one row a movement.
        translation: ``(n, 3)`` translations in mm.
        times: ``n`` times in ``(0, 1)`` at which the movements happen.
        image_interpolation: ``'linear'``, ``'nearest'`` or ``'bspline'``.

    Example:
        >>> data = torch.rand(1, 4, 4, 4)
        >>> torch.equal(add_motion(data, np.eye(4), [[0, 0, 0]], [[0, 0, 0]], [0.5]), data)
        True
    """
    degrees_array = np.asarray(degrees, dtype=np.float64).reshape(-1, 3)
    translation_array = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    times_array = np.asarray(times, dtype=np.float32).reshape(-1)
    if not len(degrees_array) == len(translation_array) == len(times_array):
        raise ValueError(
            f"degrees, translation and times must describe as many movements, got {len(degrees_array)}, "
            f"{len(translation_array)} and {len(times_array)}"
        )
    if not degrees_array.any() and not translation_array.any():
        return data
    data = as_float(data)
    images = [data] + [
        _resample(data, motion_voxel_map(d, t, affine), image_interpolation)
        for d, t in zip(degrees_array, translation_array)
    ]
    spectra = [fourier_transform(image) for image in images]
    # The unmoved image fills the slab acquired at mid-time, k-space's centre.
    late = np.flatnonzero(times_array > 0.5)
    centre = int(late.min()) if len(late) else len(spectra) - 1
    spectra[0], spectra[centre] = spectra[centre], spectra[0]
    depth = data.shape[-1]
    ends = [int(value) for value in (times_array * np.float32(depth)).astype(np.int64)] + [depth]
    result = torch.empty_like(spectra[0])
    start = 0
    for spectrum, end in zip(spectra, ends):
        result[..., start:end] = spectrum[..., start:end]
        start = end
    return inverse_fourier_transform(result).to(data.dtype)


def _motion_image(image: Image, params: Mapping[str, Any]) -> Image:
    interpolation = parse_interpolation(params["image_interpolation"], "image_interpolation")
    data = add_motion(
        image.data, image.affine, params["degrees"], params["translation"], params["times"], interpolation
    )
    return image if data is image.data else rebuild_image(image, data)


class RandomMotion(IntensityRandomTransform, FourierTransform):
    """Simulate random movements of the subject during an MRI acquisition; see :func:`add_motion`.

    For each image, ``num_transforms`` rotations (each angle ``~ U(degrees)``)
    and translations (``~ U(translation)`` mm) are drawn, then their times,
    evenly spaced in ``(0, 1)`` and each moved by up to 30 % of the spacing,
    in TorchIO 1.x's order. On a 2D image the movements stay in its plane
    (rotations about z, translations in x and y).

    Args:
        degrees: Range of the rotation angles; one number ``d`` means ``(-d, d)``.
        translation: Range of the translations in mm; one number ``t`` means ``(-t, t)``.
        num_transforms: Number of movements (at least one).
        image_interpolation: ``'linear'``, ``'nearest'`` or ``'bspline'``.
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When a range is reversed, ``num_transforms`` is below 1
            or the interpolation unknown.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> _ = torch.manual_seed(0)
        >>> out = RandomMotion()(Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8))))
        >>> record = out['history'][0]
        >>> sorted(record), len(record['times']['t1'])
        (['degrees', 'image_interpolation', 'name', 'times', 'translation'], 2)
    """

    @property
    def degrees_range(self) -> tuple[float, float]:
        """``degrees``: TorchIO's name."""
        return self.degrees

    @property
    def translation_range(self) -> tuple[float, float]:
        """``translation``: TorchIO's name."""
        return self.translation

    def __init__(
        self,
        degrees: float | tuple[float, float] = 10,
        translation: float | tuple[float, float] = 10,
        num_transforms: int = 2,
        image_interpolation: str = "linear",
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.degrees = parse_range(degrees, "degrees")
        self.translation = parse_range(translation, "translation")
        if isinstance(num_transforms, bool) or not isinstance(num_transforms, int):
            raise TypeError(f"num_transforms must be an int, got {type(num_transforms).__name__} {num_transforms!r}")
        if num_transforms < 1:
            raise ValueError(f"num_transforms must be at least 1, got {num_transforms}")
        self.num_transforms = num_transforms
        self.image_interpolation = parse_interpolation(image_interpolation, "image_interpolation")

    def draw(self, image: Image) -> dict[str, Any]:
        """Draw the movements and their times for one image."""
        count = self.num_transforms
        degrees = draw_uniform(*self.degrees, count, 3)
        translation = draw_uniform(*self.translation, count, 3)
        if image.spatial_shape[2] == 1:
            degrees[:, :2] = 0
            translation[:, 2] = 0
        step = 1 / (count + 1)
        times = torch.arange(0, 1, step)[1 : count + 1] + draw_uniform(-0.3 * step, 0.3 * step, count)
        return {
            "degrees": degrees.tolist(),
            "translation": translation.tolist(),
            "times": times.tolist(),
            "image_interpolation": self.image_interpolation,
        }

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Move ``image`` as ``params`` say."""
        return _motion_image(image, params)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments = {"degrees": self.degrees, "translation": self.translation, "num_transforms": self.num_transforms}
        return {**arguments, "image_interpolation": self.image_interpolation, **super().arguments()}


class Motion(FixedIntensityTransform, FourierTransform):
    """Simulate given movements during an MRI acquisition (those :class:`RandomMotion` draws).

    Args:
        degrees: ``(n, 3)`` rotations in degrees (or a dict image name -> rotations).
        translation: ``(n, 3)`` translations in mm (or a dict).
        times: ``n`` times in ``(0, 1)`` of the movements (or a dict).
        image_interpolation: ``'linear'``, ``'nearest'`` or ``'bspline'`` (or a dict).
        p: Probability of applying the transform.
        include: Names of the only scalar images to change.
        exclude: Names of scalar images to leave as they are.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> out = Motion([[0, 0, 5]], [[1, 0, 0]], [0.6], 'linear')(subject)
        >>> out.t1.data.shape, bool((out.t1.data != subject.t1.data).any())
        (torch.Size([1, 8, 8, 8]), True)
    """

    parameter_names = ("degrees", "translation", "times", "image_interpolation")

    def __init__(
        self,
        degrees: Any,
        translation: Any,
        times: Any,
        image_interpolation: str | Mapping[str, str],
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.degrees = degrees
        self.translation = translation
        self.times = times
        self.image_interpolation = image_interpolation

    def apply_image_params(self, image: Image, params: Mapping[str, Any]) -> Image:
        """Move ``image`` as ``params`` say."""
        return _motion_image(image, params)


__all__ = ["Motion", "RandomMotion", "add_motion", "motion_voxel_map"]
