"""The one resampling of the spatial transforms: a chain of coordinate maps, one ``grid_sample``.

Spatial random transforms (:class:`SpatialRandomTransform`: flips, affine,
elastic) describe themselves by a :class:`~.maps.CoordinateMap` in the whole
subject's voxel grid. Consecutive ones in a :class:`~torchpatch.transforms.Compose`
(with the same images, interpolation and padding) are composed and resampled
once, on the whole subject or on one patch read with the context it needs
(:mod:`.context`), by the same :func:`resample_region`::

    region of the input (the box of the whole grid that the output box needs,
    clamped to the volume)   ──grid_sample(chain(output box))──>  output box

Positions outside the volume's voxel-corner box take the image's fill value
(``default_pad_value`` for scalar images, 0 for label maps), as in TorchIO.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional

from ...annotations import annotation_grid, crop_annotations, map_annotations, region_aware_metadata
from ...constants import INTENSITY
from ...geometry import shift_affine
from ...image import Image
from ...subject import Subject
from ...typing import TypeTriplet
from ..base import rebuild_image, skips
from .fill import fill_value, parse_pad_label, parse_pad_value
from .maps import AffineMap, ChainMap, CoordinateMap
from .random import RandomTransform, add_history

#: Interpolations of the spatial transforms (``grid_sample`` modes).
INTERPOLATIONS = {"linear": "bilinear", "nearest": "nearest", "bspline": "bspline"}

#: Voxels of context a cubic B-spline needs beyond the sampled positions (its prefilter reaches far, decaying 0.27^n).
BSPLINE_MARGIN = 8


def parse_interpolation(value: Any, argument: str) -> str:
    """``'linear'``, ``'nearest'`` or ``'bspline'`` (cubic B-spline, SimpleITK's and TorchIO's).

    Example:
        >>> parse_interpolation('nearest', 'label_interpolation')
        'nearest'
        >>> parse_interpolation('lanczos', 'image_interpolation')
        Traceback (most recent call last):
        ...
        ValueError: image_interpolation must be one of ['linear', 'nearest', 'bspline'], got 'lanczos'
    """
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a string, one of {list(INTERPOLATIONS)}, got {type(value).__name__}")
    if value.lower() not in INTERPOLATIONS:
        raise ValueError(f"{argument} must be one of {list(INTERPOLATIONS)}, got {value!r}")
    return value.lower()


@dataclass(frozen=True)
class Frame:
    """The whole subject's voxel grid, in which coordinate maps live.

    Attributes:
        shape: The whole subject's spatial shape.
        affine: Its 4x4 voxel-to-world affine.

    Example:
        >>> frame = Frame((4, 4, 1), np.eye(4))
        >>> frame.is_2d, frame.normal_axis
        (True, 2)
    """

    shape: TypeTriplet
    affine: np.ndarray

    @classmethod
    def of(cls, subject: Subject, names: Sequence[str], transform: str) -> Frame:
        """The grid shared by the images ``names`` of ``subject`` (an error if they differ).

        Example:
            >>> from torchpatch import ScalarImage
            >>> Frame.of(Subject(t1=ScalarImage(tensor=torch.zeros(1, 3, 2, 1))), ['t1'], 'RandomAffine').shape
            (3, 2, 1)
        """
        shapes = {name: subject[name].spatial_shape for name in names}
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"{transform} moves every image with the same map, but the images of subject {subject.name!r} have "
                f"different spatial shapes {shapes}; resample them onto one grid first (e.g. Resample('t1'))"
            )
        if not names:
            return cls((1, 1, 1), np.eye(4))
        first = subject[names[0]]
        return cls(first.spatial_shape, np.asarray(first.affine, dtype=np.float64))

    @property
    def is_2d(self) -> bool:
        """Whether the grid is one voxel deep (a 2D image)."""
        return self.shape[2] == 1

    @property
    def normal_axis(self) -> int:
        """The world axis (0 x, 1 y, 2 z) along which the depth axis ``k`` points most."""
        return int(np.argmax(np.abs(self.affine[:3, 2])))


def crop_region(
    region: Subject, origin: Sequence[int], ini: Sequence[int], fin: Sequence[int], frame: Frame
) -> Subject:
    """``region`` (images holding the whole-grid box at ``origin``) cut down to the box ``[ini, fin)``.

    Example:
        >>> from torchpatch import ScalarImage
        >>> region = Subject(t1=ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)))
        >>> frame = Frame((6, 1, 1), np.eye(4))
        >>> crop_region(region, (2, 0, 0), (3, 0, 0), (5, 1, 1), frame).t1.data.flatten().tolist()
        [1.0, 2.0]
    """
    size = region.get_first_image().spatial_shape
    start = [int(a) - int(o) for a, o in zip(ini, origin)]
    stop = [int(b) - int(o) for b, o in zip(fin, origin)]
    if start == [0, 0, 0] and stop == list(size):
        return region
    if min(start) < 0 or any(s > n for s, n in zip(stop, size)):
        raise ValueError(
            f"the box {tuple(ini)} -> {tuple(fin)} is not inside the region at {tuple(origin)} of shape {size}"
        )
    index = (slice(None), *[slice(a, b) for a, b in zip(start, stop)])
    affine = shift_affine(frame.affine, ini)
    return region.with_images(
        {name: rebuild_image(image, image.data[index], affine) for name, image in region.images.items()}
    )


class SamplingGrid:
    """Where the output voxels sample a region: whole-grid positions made relative to the region.

    As in ITK (TorchIO), a position inside the volume's voxel-corner box
    (index ``-0.5`` to ``n - 0.5``) takes the interpolated value, with the
    edge voxels extended by half a voxel, and a position outside it takes the
    fill value. The region (the box ``[origin, origin + size)`` of the whole
    grid) holds every voxel the positions inside the volume need.

    Args:
        points: ``(*output, 3)`` float64 positions in the whole grid.
        origin: The region's first voxel in the whole grid.
        size: The region's spatial shape.
        shape: The whole volume's spatial shape.

    Example:
        >>> points = torch.tensor([[[[1.0, 0.0, 0.0]]], [[[-1.0, 0.0, 0.0]]]])  # (2, 1, 1, 3)
        >>> grid = SamplingGrid(points, (0, 0, 0), (3, 1, 1), (3, 1, 1))
        >>> grid.outside.flatten().tolist()
        [False, True]
    """

    def __init__(self, points: torch.Tensor, origin: Sequence[int], size: Sequence[int], shape: Sequence[int]) -> None:
        self.local = points - torch.tensor([float(o) for o in origin], dtype=torch.float64, device=points.device)
        self.size = tuple(int(n) for n in size)
        self.planar = int(shape[2]) == 1
        limit = torch.tensor([float(n) - 0.5 for n in shape], dtype=torch.float64, device=points.device)
        outside = ((points < -0.5) | (points > limit)).any(dim=-1)
        self.outside: torch.Tensor | None = outside if bool(outside.any()) else None
        self._normalised: torch.Tensor | None = None

    def normalised(self) -> torch.Tensor:
        """The ``grid_sample`` grid over the region (computed once)."""
        if self._normalised is None:
            local, size = self.local, list(self.size)
            if self.planar:
                local, size = local[..., 0, :2], size[:2]
            scale = torch.tensor([2.0 / max(n - 1, 1) for n in size], dtype=torch.float64, device=local.device)
            self._normalised = (local * scale - 1).flip(-1).to(torch.float32).unsqueeze(0)  # (k, j, i) order
        return self._normalised

    def nearest(self, data: torch.Tensor) -> torch.Tensor:
        """``data`` at the nearest voxels (no conversion to float): label maps."""
        sizes = torch.tensor(self.size, device=self.local.device)
        clamped = torch.minimum(self.local.round().long().clamp(min=0), sizes - 1)
        index = (clamped[..., 0] * self.size[1] + clamped[..., 1]) * self.size[2] + clamped[..., 2]
        flat = data.reshape(data.shape[0], -1)
        return flat[:, index.reshape(-1)].reshape(data.shape[0], *index.shape)


def resample_region(data: torch.Tensor, grid: SamplingGrid, interpolation: str, fill: float) -> torch.Tensor:
    """Sample ``data`` (a region of the whole grid) at ``grid``; positions outside the volume take ``fill``.

    Args:
        data: ``(C, I, J, K)`` voxels of the region.
        grid: The output's positions relative to this region.
        interpolation: ``'linear'`` (``grid_sample``) or ``'nearest'`` (a gather).
        fill: The value outside the volume.

    Returns:
        ``(C, *output)`` in ``data``'s dtype, or ``float32`` for integers
        interpolated linearly.

    Example:
        >>> data = torch.tensor([0.0, 10.0]).reshape(1, 2, 1, 1)
        >>> grid = SamplingGrid(torch.tensor([[[[0.5, 0, 0]]], [[[3.0, 0, 0]]]]), (0, 0, 0), (2, 1, 1), (2, 1, 1))
        >>> resample_region(data, grid, 'linear', -1.0).flatten().tolist()
        [5.0, -1.0]
    """
    if interpolation == "nearest":
        out = grid.nearest(data)
    elif interpolation == "bspline":
        out = _bspline(data, grid)
    else:
        source = data if data.dtype in (torch.float32, torch.float64) else data.to(torch.float32)
        source = source[..., 0] if grid.planar else source
        out = functional.grid_sample(
            source.unsqueeze(0),
            grid.normalised().to(source.dtype),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )[0]
        if grid.planar:
            out = out.unsqueeze(-1)
        if data.is_floating_point():
            out = out.to(data.dtype)
    if grid.outside is not None:
        out[:, grid.outside] = torch.tensor(fill).to(out.dtype)
    return out


def _bspline(data: torch.Tensor, grid: SamplingGrid) -> torch.Tensor:
    """Cubic B-spline interpolation (scipy's prefiltered ``map_coordinates``) of every channel at ``grid``."""
    coordinates = grid.local.reshape(-1, 3).T.numpy()
    source = data.detach().cpu().double().numpy()
    sampled = [
        ndimage.map_coordinates(channel, coordinates, order=3, mode="mirror", prefilter=True) for channel in source
    ]
    out = torch.from_numpy(np.stack(sampled).reshape(data.shape[0], *grid.local.shape[:-1]))
    return out.to(data.dtype if data.is_floating_point() else torch.float32)


class SpatialRandomTransform(RandomTransform):
    """A random transform that moves voxels: described by a coordinate map, resampled once per chain.

    Subclasses implement :meth:`~.random.RandomTransform.get_params` and
    :meth:`coordinate_map`. Consecutive spatial transforms in a
    :class:`~torchpatch.transforms.Compose` that select the same images and
    agree on interpolation and padding are resampled together, once.

    Args:
        image_interpolation: ``'linear'`` or ``'nearest'``, for scalar images.
        label_interpolation: ``'nearest'`` (or ``'linear'``), for label maps.
        default_pad_value: Scalar images' value outside the volume: a number,
            or ``'minimum'``, ``'mean'``, ``'otsu'`` (the mean below Otsu's
            threshold) of each whole image.
        p: Probability of applying the transform.
        include: Names of the only images to move.
        exclude: Names of images to leave as they are.
        default_pad_label: Label maps' value outside the volume (a number,
            TorchIO's ``default_pad_label``).
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords.

    Example:
        >>> from torchpatch.transforms.augmentation import RandomAffine
        >>> isinstance(RandomAffine(), SpatialRandomTransform), RandomAffine().fuses(RandomAffine())
        (True, True)
    """

    def __init__(
        self,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        default_pad_value: float | str = "minimum",
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        default_pad_label: float = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.image_interpolation = parse_interpolation(image_interpolation, "image_interpolation")
        self.label_interpolation = parse_interpolation(label_interpolation, "label_interpolation")
        self.default_pad_value = parse_pad_value(default_pad_value)
        self.default_pad_label = parse_pad_label(default_pad_label)

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """The map of ``params`` in the whole grid ``frame``."""
        raise NotImplementedError(f"{type(self).__name__} must implement coordinate_map")

    def settings(self) -> tuple[Any, ...] | None:
        """What must agree for two spatial transforms to be resampled together (``None``: anything)."""
        return (self.image_interpolation, self.label_interpolation, self.default_pad_value, self.default_pad_label)

    def fuses(self, other: Any) -> bool:
        """Whether ``other`` may be resampled in one chain with this transform."""
        if not isinstance(other, (SpatialRandomTransform, SpatialMapMixin)):
            return False
        mine, theirs = self.settings(), other.settings()
        same_images = (self.include, self.exclude) == (other.include, other.exclude)
        return same_images and (mine is None or theirs is None or mine == theirs)

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Resample the selected images (and move the annotations) with ``params``."""
        return resample_steps(subject, [(self, params)])

    invertible = True

    def inverse_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """The map undoing :meth:`coordinate_map` (exact for affine maps; subclasses may approximate)."""
        forward = self.coordinate_map(params, frame)
        if isinstance(forward, AffineMap):
            return AffineMap(np.linalg.inv(forward.matrix))
        raise ValueError(f"{type(self).__name__} cannot be inverted")

    def apply_inverse(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Resample with :meth:`inverse_map`: undoes :meth:`apply_params` up to interpolation."""
        return resample_steps(subject, [(_Inverted(self), params)])

    def apply_run(self, run: Sequence[Any], subject: Subject) -> Subject:
        """Apply a run of transforms that :meth:`fuses` accepted, with one resampling."""
        steps = []
        for transform in run:
            if not skips(transform.p):
                steps.append((transform, transform.get_params(subject)))
        if not steps:
            return subject.with_images({})
        result = resample_steps(subject, steps)
        for transform, params in steps:
            result = add_history(result, transform.record(params))
        return result

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr`` (the resampling ones when not the defaults)."""
        arguments: dict[str, Any] = {}
        if self.image_interpolation != "linear":
            arguments["image_interpolation"] = self.image_interpolation
        if self.label_interpolation != "nearest":
            arguments["label_interpolation"] = self.label_interpolation
        if self.default_pad_value != "minimum":
            arguments["default_pad_value"] = self.default_pad_value
        if self.default_pad_label != 0:
            arguments["default_pad_label"] = self.default_pad_label
        return {**arguments, **super().arguments()}


class SpatialMapMixin:
    """For exact spatial transforms (flips) that join a resampling chain without settings of their own.

    Example:
        >>> from torchpatch.transforms.augmentation import RandomAffine, RandomFlip
        >>> RandomFlip().settings() is None, RandomFlip().fuses(RandomAffine(image_interpolation='nearest'))
        (True, True)
    """

    include: tuple[str, ...] | None
    exclude: tuple[str, ...] | None

    def settings(self) -> tuple[Any, ...] | None:
        """Exact maps agree with any interpolation."""
        return None

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """The map of ``params`` in the whole grid ``frame``."""
        raise NotImplementedError

    def fuses(self, other: Any) -> bool:
        """Whether ``other`` may be resampled in one chain with this transform."""
        return isinstance(other, (SpatialRandomTransform, SpatialMapMixin)) and other.fuses(self)

    def apply_run(self, run: Sequence[Any], subject: Subject) -> Subject:
        """Apply a run of spatial transforms with one resampling."""
        return SpatialRandomTransform.apply_run(self, run, subject)  # type: ignore[arg-type]


class _Inverted:
    """A spatial transform seen through its inverse map (for :func:`resample_steps`)."""

    def __init__(self, transform: SpatialRandomTransform) -> None:
        self.transform = transform

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        return self.transform.get_images_dict(subject)

    def settings(self) -> tuple[Any, ...] | None:
        return self.transform.settings()

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        return self.transform.inverse_map(params, frame)


def chain_settings(transforms: Sequence[Any]) -> tuple[str, str, float | str, float]:
    """The interpolations and pad values (images', label maps') of a chain (its first transform with settings).

    Example:
        >>> from torchpatch.transforms.augmentation import RandomAffine, RandomFlip
        >>> chain_settings([RandomFlip(), RandomAffine(default_pad_value=0, default_pad_label=3)])
        ('linear', 'nearest', 0.0, 3.0)
    """
    for transform in transforms:
        settings = transform.settings()
        if settings is not None:
            return settings
    return ("nearest", "nearest", 0.0, 0.0)


def resample_steps(subject: Subject, steps: Sequence[tuple[Any, Mapping[str, Any]]]) -> Subject:
    """A whole subject through a chain of spatial steps ``(transform, params)``: one resampling per image.

    Example:
        >>> from torchpatch import ScalarImage
        >>> from torchpatch.transforms.augmentation import RandomFlip
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1)))
        >>> resample_steps(subject, [(RandomFlip(), {'axes': [0]})]).t1.data.flatten().tolist()
        [2.0, 1.0, 0.0]
    """
    first = steps[0][0]
    images = first.get_images_dict(subject)
    name = " + ".join(type(transform).__name__ for transform, _ in steps)
    frame = Frame.of(subject, list(images), name)
    chain = ChainMap([transform.coordinate_map(params, frame) for transform, params in steps])
    image_interpolation, label_interpolation, pad_value, pad_label = chain_settings([t for t, _ in steps])
    annotations = region_aware_metadata(subject)
    if annotations:
        annotation_grid(subject, list(images), name, annotations)
    if chain.is_identity:
        return subject.with_images({})
    ini, fin = (0, 0, 0), frame.shape
    grid = SamplingGrid(chain.sample_grid(ini, fin), ini, frame.shape, frame.shape)
    moved = {}
    for key, image in images.items():
        interpolation = image_interpolation if image.type == INTENSITY else label_interpolation
        data = resample_region(image.data, grid, interpolation, fill_value(image, pad_value, pad_label))
        moved[key] = rebuild_image(image, data)
    result = subject.with_images(moved)
    for key, value in move_annotations(annotations, chain, frame, ini, fin, name).items():
        result[key] = value
    return result


def move_annotations(
    annotations: Mapping[str, Any],
    chain: CoordinateMap,
    frame: Frame,
    ini: Sequence[int],
    fin: Sequence[int],
    transform: str,
) -> dict[str, Any]:
    """Whole-grid annotations moved by ``chain`` and cropped to the output box ``[ini, fin)``.

    Points move exactly; a box becomes the box of its moved corners, then
    keeps what lies in the output box (its ``min_visibility`` applies).

    Example:
        >>> from torchpatch import Points
        >>> from .maps import AffineMap
        >>> shift = AffineMap(np.array([[1.0, 0, 0, -1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
        >>> moved = move_annotations({'p': Points([[0.5, 0.5]], (4, 4))}, shift, Frame((4, 4, 1), np.eye(4)),
        ...                          (0, 0, 0), (4, 4, 1), 'shift')
        >>> moved['p'].data.tolist()
        [[1.5, 0.5]]
    """
    if not annotations:
        return {}
    moved = map_annotations(annotations, chain.forward, frame.shape, transform)
    return crop_annotations(moved, ini, fin)


__all__ = [
    "BSPLINE_MARGIN",
    "INTERPOLATIONS",
    "Frame",
    "SamplingGrid",
    "SpatialMapMixin",
    "SpatialRandomTransform",
    "chain_settings",
    "crop_region",
    "move_annotations",
    "parse_interpolation",
    "resample_region",
    "resample_steps",
]
