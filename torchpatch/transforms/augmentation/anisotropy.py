"""Thick slices along one axis: :class:`RandomAnisotropy`.

An image acquired with thick slices (or a large gap between slices) has
full detail in two axes and coarse detail in the third. This transform
simulates it: it samples one voxel axis every ``f`` voxels (nearest
neighbour) and interpolates back onto the original grid. Shape and affine
are unchanged.

The exact definition, along an axis of whole-image length ``n``::

    low-resolution samples   k = 0 .. K,   K = floor((n - 1) / f)
    sample k sits at         k * f          (global voxel index)
    sample k's value         input[min(floor(k * f + 0.5), n - 1)]

    input   0   1   2   3   4   5   6   7   8   9        n = 10, f = 2.5
    samples ●---------●---------●---------●              K = 3: inputs 0, 3, 5, 8
    output  x = 0 .. 9,  u = x / f, interpolated between samples floor(u)
            and floor(u) + 1 (linear) or taken from sample floor(u + 0.5)
            (nearest); both clamped to [0, K], so past k = K the output
            repeats sample K

Every output voxel depends only on its own global index, so any range of
the output is computed from a range of the input (:func:`source_range`),
and a patch computed alone equals the same voxels of the whole image, bit
for bit (:func:`anisotropy_region`). That is what per-patch augmentation
needs.
"""

# A little over 400 lines: the tensor function and the transform share one
# definition (and its docstring diagram), which is clearer kept in one place.

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...constants import INTENSITY
from ...geometry import is_number, parse_voxel_axes, shift_affine
from ...image import Image
from ...subject import Subject
from ..base import rebuild_image
from .random import RandomTransform, parse_range, uniform
from .resample import Frame, crop_region
from .voxelwise import as_float

#: The interpolations implemented, for the images brought back to their grid.
INTERPOLATIONS = ("linear", "nearest")


def check_downsampling(value: Any, argument: str = "downsampling") -> float:
    """``value`` as a downsampling factor: a finite number at least 1.

    Raises:
        TypeError: When ``value`` is not a number.
        ValueError: When it is below 1 or not finite.

    Example:
        >>> check_downsampling(2)
        2.0
        >>> check_downsampling(0.5)
        Traceback (most recent call last):
        ...
        ValueError: downsampling must be a finite number at least 1, got 0.5
    """
    if not is_number(value):
        raise TypeError(f"{argument} must be a number at least 1, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"{argument} must be a finite number at least 1, got {value!r}")
    return float(value)


def _check_interval(start: Any, stop: Any, length: Any) -> None:
    for argument, value in (("start", start), ("stop", stop), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{argument} must be an int, got {type(value).__name__} {value!r}")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    if not 0 <= start <= stop <= length:
        raise ValueError(
            f"the output range [start, stop) must satisfy 0 <= start <= stop <= length, got "
            f"start={start}, stop={stop}, length={length}"
        )


def _inputs(samples: torch.Tensor, downsampling: float, length: int) -> torch.Tensor:
    # Global input index of each low-resolution sample: round half up, clamped.
    return torch.floor(samples * downsampling + 0.5).clamp_(max=length - 1).long()


def _plan(
    downsampling: float, length: int, outputs: torch.Tensor, interpolation: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input indices ``first``, ``second`` and weight of ``second`` for each global output index.

    Elementwise in float64, so an index gets the same numbers whatever other
    indices are computed with it.
    """
    last = math.floor((length - 1) / downsampling)
    u = outputs.to(torch.float64) / downsampling
    if interpolation == "nearest":
        first = _inputs(torch.floor(u + 0.5).clamp_(0, last), downsampling, length)
        return first, first, torch.zeros_like(u)
    below = torch.floor(u)
    k0 = below.clamp(0, last)
    k1 = torch.where(u > below, (below + 1).clamp(0, last), k0)
    weight = torch.where(k1 > k0, u - below, torch.zeros_like(u))
    return _inputs(k0, downsampling, length), _inputs(k1, downsampling, length), weight


def source_range(downsampling: float, start: int, stop: int, length: int) -> tuple[int, int]:
    """The input indices ``[lo, hi)`` needed for the output indices ``[start, stop)``.

    Indices are global, along the downsampled axis of whole length
    ``length``; the range serves both interpolations.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When ``downsampling < 1`` or not ``0 <= start <= stop <= length``.

    Example:
        >>> source_range(2.5, 4, 7, 10)  # samples 1 (input 3) to 3 (input 8)
        (3, 9)
        >>> source_range(1, 4, 7, 10), source_range(2.5, 4, 4, 10)
        ((4, 7), (4, 4))
    """
    downsampling = check_downsampling(downsampling)
    _check_interval(start, stop, length)
    if start == stop:
        return start, start
    first, second, _ = _plan(downsampling, length, torch.tensor([start, stop - 1]), "linear")
    return int(first.min()), int(second.max()) + 1


def anisotropy_region(
    data: torch.Tensor,
    dim: int,
    downsampling: float,
    length: int,
    *,
    origin: int = 0,
    start: int = 0,
    stop: int | None = None,
    interpolation: str = "linear",
) -> torch.Tensor:
    """The output indices ``[start, stop)`` of the thick-slice simulation along tensor dimension ``dim``.

    ``data`` holds the global indices ``[origin, origin + data.shape[dim])``
    of an axis of whole length ``length``, which must include
    :func:`source_range`. The result has ``stop - start`` entries along
    ``dim``; every other dimension (channels, a batch) is computed at once.
    With ``origin = start = 0`` and ``stop = length`` it is the whole image.

    Linear interpolation computes in floating point (integers become
    ``float32``) as ``a + (b - a) * w`` in separate elementwise steps, taking
    ``a`` itself where ``w = 0``, so samples come back exactly and a region
    equals the same voxels of the whole result bit for bit. Nearest keeps
    the dtype. ``downsampling = 1`` returns the input range as it is.

    Args:
        data: The input tensor.
        dim: The dimension to degrade (e.g. ``1 + axis`` for ``(C, I, J, K)``).
        downsampling: The factor ``f >= 1``.
        length: The whole length of the axis.
        origin: Global index of ``data``'s first entry along ``dim``.
        start: First global output index.
        stop: One past the last global output index (``length`` when omitted).
        interpolation: ``'linear'`` or ``'nearest'``.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When a value is out of range or ``data`` misses part of
            the source range.

    Example:
        >>> ramp = torch.arange(10.0).reshape(1, 10)
        >>> whole = anisotropy_region(ramp, 1, 2.5, 10)  # samples: inputs 0, 3, 5, 8 at 0, 2.5, 5, 7.5
        >>> [round(value, 3) for value in whole[0].tolist()]
        [0.0, 1.2, 2.4, 3.4, 4.2, 5.0, 6.2, 7.4, 8.0, 8.0]
        >>> torch.equal(anisotropy_region(ramp[:, 3:9], 1, 2.5, 10, origin=3, start=6, stop=8), whole[:, 6:8])
        True
        >>> anisotropy_region(torch.arange(5).reshape(1, 5), 1, 2, 5, interpolation='nearest').tolist()
        [[0, 2, 2, 4, 4]]
    """
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a torch.Tensor, got {type(data).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__} {dim!r}")
    if not -data.dim() <= dim < data.dim():
        raise ValueError(f"dim must be a dimension of data (of shape {tuple(data.shape)}), got {dim!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    downsampling = check_downsampling(downsampling)
    stop = length if stop is None else stop
    _check_interval(start, stop, length)
    if isinstance(origin, bool) or not isinstance(origin, int):
        raise TypeError(f"origin must be an int, got {type(origin).__name__} {origin!r}")
    dim = dim % data.dim()
    lo, hi = source_range(downsampling, start, stop, length)
    size = data.shape[dim]
    if lo < hi and not (origin <= lo and hi <= origin + size):
        raise ValueError(
            f"output indices [{start}, {stop}) need input indices [{lo}, {hi}), but data holds [{origin}, "
            f"{origin + size}) along dim {dim}"
        )
    if downsampling == 1:
        return data.narrow(dim, start - origin, stop - start)
    first, second, weight = _plan(downsampling, length, torch.arange(start, stop), interpolation)
    a = data.index_select(dim, (first - origin).to(data.device))
    if interpolation == "nearest":
        return a
    a = as_float(a)
    b = as_float(data.index_select(dim, (second - origin).to(data.device)))
    view = [1] * data.dim()
    view[dim] = stop - start
    w = weight.to(device=a.device, dtype=a.dtype).view(view)
    # Separate kernels (no fused multiply-add): each step is one IEEE
    # rounding, identical for an index whatever region it is computed in.
    b.sub_(a).mul_(w).add_(a)
    return torch.where(w > 0, b, a)


def _parse_downsampling(value: Any) -> tuple[float, float]:
    if is_number(value):
        if not (math.isfinite(value) and value >= 1):
            raise ValueError(f"downsampling given as one number x means (1, x) and must be at least 1, got {value!r}")
        return 1.0, float(value)
    return parse_range(value, "downsampling", minimum=1)


def _parse_interpolation(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"image_interpolation must be a string among {INTERPOLATIONS}, got {type(value).__name__}")
    if value.lower() not in INTERPOLATIONS:
        raise ValueError(
            f"image_interpolation {value!r} is not supported by RandomAnisotropy; use one of {INTERPOLATIONS}"
        )
    return value.lower()


class RandomAnisotropy(RandomTransform):
    """Simulate thick slices: downsample one random axis by a random factor, then restore the grid.

    One axis is drawn uniformly among ``axes`` and one factor ``f``
    uniformly in ``downsampling``; every selected image is sampled every
    ``f`` voxels along that axis (nearest neighbour) and brought back to its
    own grid with ``image_interpolation`` (label maps, when included, always
    with nearest). See the module docstring for the exact definition. Axes
    along which every selected image has one voxel (axis 2 of 2D images)
    are left out of the draw, since nothing would change (TorchIO drops
    axis 2 of 2D images with a warning).

    Linear interpolation makes integer images ``float32``; nearest keeps the
    dtype. Shape and affine are unchanged. The record is ``{"name":
    "RandomAnisotropy", "axis": 2, "downsampling": 3.7}``.

    For per-patch augmentation, :meth:`source_range` says which input range
    a range of the output needs, and :meth:`apply_region` computes that
    range alone, bit for bit equal to the whole result cropped.

    Args:
        axes: An axis or a sequence of axes (``0, 1, 2``) to choose from.
        downsampling: Range of the factor; one number ``x`` means ``(1, x)``.
            Factors are at least 1.
        image_interpolation: ``'linear'`` or ``'nearest'``.
        scalars_only: Leave label maps untouched; with ``False`` they are
            degraded too, with nearest neighbour.
        p: Probability of applying the transform.
        include: Names of the only images to change.
        exclude: Names of images to leave as they are.

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When an axis is not 0, 1 or 2, the range is reversed or
            below 1, or the interpolation is not supported (TorchIO's
            ``'bspline'`` and others are not implemented).

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.arange(6.0).reshape(1, 6, 1, 1)),
        ...     seg=LabelMap(tensor=torch.tensor([0, 1, 1, 0, 2, 2]).reshape(1, 6, 1, 1)),
        ... )
        >>> out = RandomAnisotropy(axes=0, downsampling=(2, 2))(subject)
        >>> out.t1.data.flatten().tolist(), out.seg is subject.seg, out['history']
        ([0.0, 1.0, 2.0, 3.0, 4.0, 4.0], True, [{'name': 'RandomAnisotropy', 'axis': 0, 'downsampling': 2.0}])
        >>> RandomAnisotropy(axes=0, downsampling=(3, 3), scalars_only=False)(subject).seg.data.flatten().tolist()
        [0, 0, 0, 0, 0, 0]
    """

    intensity_only = True

    @property
    def downsampling_range(self) -> tuple[float, float]:
        """``downsampling``: TorchIO's name."""
        return self.downsampling

    def __init__(
        self,
        axes: int | Sequence[int] = (0, 1, 2),
        downsampling: float | tuple[float, float] = (1.5, 5),
        image_interpolation: str = "linear",
        scalars_only: bool = True,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(p, include, exclude, **kwargs)
        self.axes = parse_voxel_axes(axes)
        self.downsampling = _parse_downsampling(downsampling)
        self.image_interpolation = _parse_interpolation(image_interpolation)
        if not isinstance(scalars_only, bool):
            raise TypeError(f"scalars_only must be a bool, got {type(scalars_only).__name__} {scalars_only!r}")
        self.scalars_only = scalars_only

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        """The selected images: scalar images only when ``scalars_only``, else label maps too."""
        if self.scalars_only:
            return super().get_images_dict(subject)
        return subject.get_images_dict(False, self.include, self.exclude)

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw the axis, then the factor."""
        shapes = [image.spatial_shape for image in self.get_images_dict(subject).values()]
        candidates = [axis for axis in self.axes if any(shape[axis] > 1 for shape in shapes)] or list(self.axes)
        axis = candidates[int(torch.randint(len(candidates), ()).item())]
        return {"axis": axis, "downsampling": uniform(*self.downsampling)}

    @staticmethod
    def _check_params(params: Mapping[str, Any]) -> tuple[int, float]:
        axis = params["axis"]
        if isinstance(axis, bool) or axis not in (0, 1, 2):
            raise ValueError(f"params['axis'] must be 0, 1 or 2, got {axis!r}")
        return int(axis), check_downsampling(params["downsampling"], "params['downsampling']")

    def _degrade(
        self, image: Image, params: Mapping[str, Any], origin: int, start: int, stop: int, length: int
    ) -> Image:
        axis, factor = self._check_params(params)
        if factor == 1 and start == origin and stop - start == image.spatial_shape[axis]:
            return image
        interpolation = self.image_interpolation if image.type == INTENSITY else "nearest"
        data = anisotropy_region(
            image.data, 1 + axis, factor, length, origin=origin, start=start, stop=stop, interpolation=interpolation
        )
        corner = [0, 0, 0]
        corner[axis] = start - origin
        return rebuild_image(image, data, shift_affine(image.affine, corner) if start != origin else None)

    def apply_params(self, subject: Subject, params: Mapping[str, Any]) -> Subject:
        """Degrade every selected image along ``params['axis']`` by ``params['downsampling']``."""
        axis, _ = self._check_params(params)
        images = {}
        for name, image in self.get_images_dict(subject).items():
            length = image.spatial_shape[axis]
            images[name] = self._degrade(image, params, 0, 0, length, length)
        return subject.with_images(images)

    def source_range(self, params: Mapping[str, Any], start: int, stop: int, length: int) -> tuple[int, int]:
        """The global input indices ``[lo, hi)`` along ``params['axis']`` needed for outputs ``[start, stop)``.

        Example:
            >>> RandomAnisotropy().source_range({'axis': 2, 'downsampling': 2.5}, 4, 7, 10)
            (3, 9)
        """
        self._check_params(params)
        return source_range(params["downsampling"], start, stop, length)

    def source_box(
        self, params: Mapping[str, Any], index_ini: Sequence[int], index_fin: Sequence[int], frame: Frame
    ) -> tuple[list[int], list[int]]:
        """The box needed for the output box ``[index_ini, index_fin)``: :meth:`source_range` along the axis."""
        axis, _ = self._check_params(params)
        ini, fin = [int(v) for v in index_ini], [int(v) for v in index_fin]
        ini[axis], fin[axis] = self.source_range(params, ini[axis], fin[axis], frame.shape[axis])
        return ini, fin

    def apply_region(
        self,
        region: Subject,
        params: Mapping[str, Any],
        origin: Sequence[int],
        index_ini: Sequence[int],
        index_fin: Sequence[int],
        frame: Frame,
    ) -> Subject:
        """The output box ``[index_ini, index_fin)`` from ``region`` (images at ``origin`` of the whole grid)."""
        axis, _ = self._check_params(params)
        size = region.get_first_image().spatial_shape
        ini, fin = list(index_ini), list(index_fin)
        ini[axis], fin[axis] = origin[axis], origin[axis] + size[axis]
        patch = crop_region(region, origin, ini, fin, frame)
        return self.apply_axis_region(patch, params, origin[axis], index_ini[axis], index_fin[axis], frame.shape[axis])

    def apply_axis_region(
        self, subject: Subject, params: Mapping[str, Any], origin: int, start: int, stop: int, length: int
    ) -> Subject:
        """The output indices ``[start, stop)`` along ``params['axis']``, from a subject holding a part of the axis.

        Every image of ``subject`` holds the global indices ``[origin, origin
        + size)`` along the axis (of whole length ``length``), which must
        include :meth:`source_range`. In the result every image holds
        ``[start, stop)``: selected images degraded, the others (and boxes
        and points) cropped, affines shifted; other axes are untouched.
        :meth:`apply_params` is this with ``origin = start = 0`` and ``stop =
        length``, and the result equals the whole result cropped, bit for bit.
        Nothing is recorded in the history.

        Raises:
            ValueError: When the images miss part of the source range.

        Example:
            >>> from torchpatch import ScalarImage, Subject
            >>> ramp = torch.arange(10.0).reshape(1, 10, 1, 1)
            >>> params = {'axis': 0, 'downsampling': 2.5}
            >>> part = Subject(t1=ScalarImage(tensor=ramp[:, 3:9]))  # source_range(params, 6, 8, 10) == (5, 9)
            >>> out = RandomAnisotropy().apply_axis_region(part, params, 3, 6, 8, 10)
            >>> whole = RandomAnisotropy().apply_params(Subject(t1=ScalarImage(tensor=ramp)), params)
            >>> torch.equal(out.t1.data, whole.t1.data[:, 6:8]), out.t1.origin  # shifted by 6 - 3 voxels
            (True, (3.0, 0.0, 0.0))
        """
        axis, _ = self._check_params(params)
        selected = self.get_images_dict(subject)
        others = subject
        shape = subject.spatial_shape
        if start != origin or stop - start != shape[axis]:
            ini, fin = [0, 0, 0], list(shape)
            ini[axis], fin[axis] = start - origin, stop - origin
            if not (0 <= ini[axis] <= fin[axis] <= shape[axis]):
                raise ValueError(
                    f"output indices [{start}, {stop}) are not inside the indices [{origin}, {origin + shape[axis]}) "
                    f"that subject {subject.name!r} holds along axis {axis}"
                )
            others = subject.crop(ini, fin)
        images = {name: self._degrade(image, params, origin, start, stop, length) for name, image in selected.items()}
        return others.with_images(images)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {
            "axes": self.axes,
            "downsampling": self.downsampling,
            "image_interpolation": self.image_interpolation,
            "scalars_only": self.scalars_only,
            **super().arguments(),
        }


__all__ = ["INTERPOLATIONS", "RandomAnisotropy", "anisotropy_region", "check_downsampling", "source_range"]
