"""Random affine transforms (scaling, rotation, translation in mm): :class:`RandomAffine`.

The transform acts on the world (the affine of the images stays as it is):
a point ``q`` of the content moves to ``F(q) = c + S (R (q - c) + t)``, as in
TorchIO 1.x: ``R`` rotates about the world axes (RAS+, degrees; about y
first, then x, then z: ``R = Rz Rx Ry``, ITK's Euler order), ``t`` translates
in mm, and ``S`` scales about the centre ``c`` (``s > 1`` enlarges the
content, zooming in; the translation is scaled too). ``c`` is the image's
centre (the middle of its first and last voxel centres) or the world
origin. Every output voxel samples the input at ``F⁻¹`` of its position,
which is what :meth:`RandomAffine.coordinate_map` gives in voxel indices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...subject import Subject
from .maps import AffineMap, CoordinateMap
from .random import parse_range, uniform
from .resample import Frame, SpatialRandomTransform

#: Values of ``center``.
CENTERS = ("image", "origin")


def parse_axis_ranges(
    value: Any, argument: str, *, around: float = 0.0, minimum: float | None = None
) -> tuple[tuple[float, float], ...]:
    """Three ranges ``(low, high)``, TorchIO-style: ``x``, ``(a, b)`` or ``(a1, b1, a2, b2, a3, b3)``.

    One number ``x`` means ``(around - x, around + x)`` on every axis.

    Example:
        >>> parse_axis_ranges(0.1, 'scales', around=1)
        ((0.9, 1.1), (0.9, 1.1), (0.9, 1.1))
        >>> parse_axis_ranges((0, 0, 0, 0, -10, 10), 'degrees')[2]
        (-10.0, 10.0)
        >>> parse_axis_ranges((0, 0, 10), 'degrees')[2], parse_axis_ranges((0.1, 0.1, 0), 'scales', around=1)[2]
        ((-10.0, 10.0), (1.0, 1.0))
        >>> parse_axis_ranges((1, 2, 3, 4), 'degrees')
        Traceback (most recent call last):
        ...
        ValueError: degrees must be one number, two (low, high), three (one per axis) or six ...
    """
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 6:
        ranges = tuple(parse_range(value[2 * a : 2 * a + 2], argument, minimum=minimum) for a in range(3))
        return ranges
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
        # One number per axis, each meaning (around - x, around + x), as TorchIO reads three values.
        return tuple(parse_range(item, argument, around=around, minimum=minimum) for item in value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) not in (1, 2):
        raise ValueError(
            f"{argument} must be one number, two (low, high), three (one per axis) or six (one range per axis), "
            f"got {value!r}"
        )
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 1:
        value = value[0]
    low_high = parse_range(value, argument, around=around, minimum=minimum)
    return (low_high, low_high, low_high)


def rotation_matrix(degrees: Sequence[float]) -> np.ndarray:
    """The 3x3 rotation by ``degrees`` about the world axes x, y, z, composed ``Rz @ Rx @ Ry``.

    Example:
        >>> np.round(rotation_matrix([0, 0, 90]) @ [1, 0, 0], 6).tolist()
        [0.0, 1.0, 0.0]
    """
    ax, ay, az = np.radians(np.asarray(degrees, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx @ ry


def world_matrix(scales: Sequence[float], degrees: Sequence[float], translation: Sequence[float], center: Any) -> Any:
    """The 4x4 world map ``F(q) = c + S (R (q - c) + t)`` of the content.

    Example:
        >>> world_matrix([2, 2, 2], [0, 0, 0], [1, 0, 0], [0, 0, 0])[:3, 3].tolist()
        [2.0, 0.0, 0.0]
    """
    scaling = np.diag(np.asarray(scales, dtype=np.float64))
    linear = scaling @ rotation_matrix(degrees)
    c = np.asarray(center, dtype=np.float64)
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = c + scaling @ np.asarray(translation, dtype=np.float64) - linear @ c
    return matrix


class RandomAffine(SpatialRandomTransform):
    """Random scaling, rotation and translation of the world, resampled once with the other spatial transforms.

    TorchIO 1.x's arguments and meaning. Each scale is drawn in its range
    (one for all axes when ``isotropic``), each angle in degrees and each
    translation in mm in theirs. A content point ``q`` moves to
    ``c + S (R (q - c) + t)``, TorchIO's map (see
    :mod:`~torchpatch.transforms.augmentation.affine`).
    For 2D images (depth one) only the rotation about the axis normal to the
    image and the scaling and translation in its plane are drawn.

    The history record holds ``scales``, ``degrees`` and ``translation``
    (three numbers each): ``transform.apply_params(subject, record)``
    replays it; boxes and points move with the voxels.

    Args:
        scales: Scaling ranges: ``x`` for ``(1 - x, 1 + x)``, ``(a, b)``,
            three numbers (``1 ± x`` per axis) or six numbers (a range per
            axis). Values must be positive.
        degrees: Rotation ranges in degrees: ``x`` for ``(-x, x)``, ``(a, b)``,
            three numbers (``±x`` per axis) or six numbers.
        translation: Translation ranges in mm, like ``degrees``.
        isotropic: One scale for the three axes (``scales`` must then be one
            or two numbers).
        center: ``'image'`` (rotate and scale about the centre of the image)
            or ``'origin'`` (about the world origin).
        default_pad_value: Value outside the volume of scalar images: a
            number or ``'minimum'``, ``'mean'``, ``'otsu'``.
        default_pad_label: Value outside the volume of label maps (a number).
        image_interpolation: ``'linear'`` or ``'nearest'``.
        label_interpolation: ``'nearest'`` or ``'linear'``.
        check_shape: Accepted for TorchIO compatibility; images are always
            checked to share one grid.
        p: Probability of applying the transform.
        include: Names of the only images to move.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``copy``, ``keep``, ``parse_input``, ``label_keys``...).

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When a range is reversed or not finite, a scale is not
            positive, ``center`` or an interpolation is unknown, or
            ``isotropic`` is given six scales.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> seg = torch.zeros(1, 5, 5, 1, dtype=torch.uint8)
        >>> seg[0, 1, 0, 0] = 1
        >>> subject = Subject(seg=LabelMap(tensor=seg))
        >>> out = RandomAffine(scales=0, degrees=(0, 0, 0, 0, 90, 90))(subject)
        >>> torch.nonzero(out.seg.data[0, ..., 0]).tolist(), out['history'][0]['degrees']
        ([[4, 1]], [0.0, 0.0, 90.0])
    """

    def __init__(
        self,
        scales: float | Sequence[float] = 0.1,
        degrees: float | Sequence[float] = 10,
        translation: float | Sequence[float] = 0,
        isotropic: bool = False,
        center: str = "image",
        default_pad_value: float | str = "minimum",
        default_pad_label: float = 0,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        check_shape: bool = True,
        p: float = 1.0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            image_interpolation,
            label_interpolation,
            default_pad_value,
            p,
            include,
            exclude,
            default_pad_label=default_pad_label,
            **kwargs,
        )
        self.scales = parse_axis_ranges(scales, "scales", around=1.0)
        if any(low <= 0 for low, _ in self.scales):
            raise ValueError(f"scales must be positive, got ranges {self.scales} from scales={scales!r}")
        self.degrees = parse_axis_ranges(degrees, "degrees")
        self.translation = parse_axis_ranges(translation, "translation")
        if not isinstance(isotropic, bool):
            raise TypeError(f"isotropic must be a bool, got {type(isotropic).__name__} {isotropic!r}")
        if isotropic and len(set(self.scales)) > 1:
            raise ValueError(f"isotropic draws one scale for every axis: give scales one range, got {scales!r}")
        self.isotropic = isotropic
        if center not in CENTERS:
            raise ValueError(f"center must be one of {list(CENTERS)}, got {center!r}")
        self.center = center
        self.check_shape = bool(check_shape)

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Draw three scales, three angles (degrees) and three translations (mm)."""
        scales = [uniform(*self.scales[0])] * 3 if self.isotropic else [uniform(*r) for r in self.scales]
        degrees = [uniform(*r) for r in self.degrees]
        translation = [uniform(*r) for r in self.translation]
        images = self.get_images_dict(subject)
        frame = Frame.of(subject, list(images), type(self).__name__)
        if frame.is_2d and images:
            normal = frame.normal_axis
            scales[normal], translation[normal] = 1.0, 0.0
            degrees = [angle if axis == normal else 0.0 for axis, angle in enumerate(degrees)]
        return {"scales": scales, "degrees": degrees, "translation": translation}

    def voxel_matrix(self, params: Mapping[str, Any], frame: Frame) -> np.ndarray:
        """The 4x4 map from output voxel indices to the input voxel indices they sample."""
        affine = frame.affine
        if self.center == "image":
            center = (affine @ np.append((np.asarray(frame.shape, dtype=np.float64) - 1) / 2, 1.0))[:3]
        else:
            center = np.zeros(3)
        forward = world_matrix(params["scales"], params["degrees"], params["translation"], center)
        matrix = np.linalg.inv(affine) @ np.linalg.inv(forward) @ affine
        if frame.is_2d:
            matrix[2, :] = (0.0, 0.0, 1.0, 0.0)
            matrix[:2, 2] = 0.0
        return matrix

    def coordinate_map(self, params: Mapping[str, Any], frame: Frame) -> CoordinateMap:
        """An :class:`~.maps.AffineMap` (identity parameters give the identity exactly)."""
        identity = (
            all(float(s) == 1 for s in params["scales"])
            and not any(params["degrees"])
            and not any(params["translation"])
        )
        return AffineMap(np.eye(4) if identity else self.voxel_matrix(params, frame))

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {
            "scales": _compact(self.scales),
            "degrees": _compact(self.degrees),
            "translation": _compact(self.translation),
        }
        if self.isotropic:
            arguments["isotropic"] = True
        if self.center != "image":
            arguments["center"] = self.center
        return {**arguments, **super().arguments()}


def _compact(ranges: tuple[tuple[float, float], ...]) -> Any:
    if len(set(ranges)) == 1:
        return ranges[0]
    return tuple(value for pair in ranges for value in pair)


__all__ = ["CENTERS", "RandomAffine", "parse_axis_ranges", "rotation_matrix", "world_matrix"]
