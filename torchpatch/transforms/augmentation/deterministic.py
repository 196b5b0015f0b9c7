"""TorchIO 1.x's deterministic transforms: a random transform with its parameters given.

Each class here subclasses its random twin and replaces the draw by the
parameters it was given, so it runs everywhere the random one does (fused
with the neighbouring spatial transforms into one resampling, per patch with
context, batched) and gives the same voxels::

    Affine(scales, degrees, translation)  ==  RandomAffine whose draw is (scales, degrees, translation)

As in TorchIO, calling one still draws one number for ``p`` (so a pipeline
consumes the same random numbers), and it records itself in the subject's
``history`` under its own name (``{"name": "Affine", ...}``) with the random
twin's parameters; :mod:`~torchpatch.transforms.augmentation.history` replays and inverts those records. The
intensity ones take, like TorchIO's, one value for every image or a dict
image name -> value (what TorchIO's own history holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...geometry import is_number
from ...subject import Subject
from .affine import RandomAffine
from .elastic import RandomElasticDeformation
from .flip import RandomFlip
from .random import RandomTransform
from .resample import Frame, SpatialRandomTransform

Names = Sequence[str] | str | None


def each_value(value: Any) -> list[Any]:
    """The values of a dict image name -> value, or ``[value]``.

    Example:
        >>> each_value({'t1': 1}), each_value(2)
        ([1], [2])
    """
    return list(value.values()) if isinstance(value, Mapping) else [value]


def number_triplet(value: Any, argument: str) -> tuple[float, float, float]:
    """One number or three as three floats.

    Example:
        >>> number_triplet(2, 'std')
        (2.0, 2.0, 2.0)
    """
    items = (value,) * 3 if is_number(value) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) != 3:
        raise TypeError(f"{argument} must be a number or three numbers, got {type(value).__name__} {value!r}")
    if not all(is_number(item) and np.isfinite(item) for item in items):
        raise ValueError(f"{argument} must hold three finite numbers, got {value!r}")
    return (float(items[0]), float(items[1]), float(items[2]))


def per_image(value: Any, name: str, argument: str, subject: Subject) -> Any:
    """``value`` itself, or ``value[name]`` when it is a dict image name -> value (TorchIO's per-image form).

    Raises:
        ValueError: When the dict has no value for image ``name``.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1)))
        >>> per_image(0.5, 't1', 'std', subject), per_image({'t1': 2.0}, 't1', 'std', subject)
        (0.5, 2.0)
    """
    if not isinstance(value, Mapping):
        return value
    if name not in value:
        raise ValueError(
            f"{argument} gives values for the images {sorted(value)} but not for image {name!r} of subject "
            f"{subject.name!r}; give one for every image transformed, or select images with include/exclude"
        )
    return value[name]


class Affine(RandomAffine):
    """Scale, rotate (degrees) and translate (mm) the world by given amounts: TorchIO's ``Affine``.

    The parameters are :class:`RandomAffine`'s draw (one number or three,
    per world axis); the map, padding and interpolation are the same.

    Args:
        scales: Scaling factors (positive).
        degrees: Rotation angles in degrees about the world axes.
        translation: Translation in mm.
        center: ``'image'`` or ``'origin'``.
        default_pad_value: As in :class:`RandomAffine`.
        default_pad_label: Value outside the volume for label maps (a number).
        image_interpolation: As in :class:`RandomAffine`.
        label_interpolation: As in :class:`RandomAffine`.
        check_shape: Accepted for TorchIO compatibility.
        p: Probability of applying the transform.
        include: Names of the only images to move.
        exclude: Names of images to leave as they are.

    Raises:
        TypeError: When a parameter is not one or three numbers.
        ValueError: When a scale is not positive, or ``default_pad_label`` is not finite.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap
        >>> seg = torch.zeros(1, 5, 5, 1, dtype=torch.uint8)
        >>> seg[0, 1, 0, 0] = 1
        >>> out = Affine(1, (0, 0, 90), 0)(Subject(seg=LabelMap(tensor=seg)))
        >>> torch.nonzero(out.seg.data[0, ..., 0]).tolist(), out['history'][0]['name']
        ([[4, 1]], 'Affine')
    """

    fixed_params = True

    def __init__(
        self,
        scales: float | Sequence[float],
        degrees: float | Sequence[float],
        translation: float | Sequence[float],
        center: str = "image",
        default_pad_value: float | str = "minimum",
        default_pad_label: float = 0,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        check_shape: bool = True,
        p: float = 1.0,
        include: Names = None,
        exclude: Names = None,
        **kwargs: Any,
    ) -> None:
        fixed = [
            number_triplet(v, a) for v, a in ((scales, "scales"), (degrees, "degrees"), (translation, "translation"))
        ]
        ranges = [[value for value in triplet for _ in range(2)] for triplet in fixed]
        super().__init__(
            scales=ranges[0],
            degrees=ranges[1],
            translation=ranges[2],
            center=center,
            default_pad_value=default_pad_value,
            default_pad_label=default_pad_label,
            image_interpolation=image_interpolation,
            label_interpolation=label_interpolation,
            check_shape=check_shape,
            p=p,
            include=include,
            exclude=exclude,
            **kwargs,
        )
        self.fixed = fixed

    @property
    def use_image_center(self) -> bool:
        """Whether rotations and scaling are about the image's centre (``center='image'``): TorchIO's name."""
        return self.center == "image"

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Affine:
        """The transform that a history record of it describes."""
        return cls(record["scales"], record["degrees"], record["translation"])

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given parameters (in 2D, the rotation and translation in the image's plane only)."""
        scales, degrees, translation = (list(triplet) for triplet in self.fixed)
        images = self.get_images_dict(subject)
        frame = Frame.of(subject, list(images), type(self).__name__)
        if frame.is_2d and images:
            normal = frame.normal_axis
            scales[normal], translation[normal] = 1.0, 0.0
            degrees = [angle if axis == normal else 0.0 for axis, angle in enumerate(degrees)]
        return {"scales": scales, "degrees": degrees, "translation": translation}

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        names = ("scales", "degrees", "translation")
        arguments: dict[str, Any] = dict(zip(names, self.fixed))
        if self.center != "image":
            arguments["center"] = self.center
        return {**arguments, **SpatialRandomTransform.arguments(self)}


class Flip(RandomFlip):
    """Reverse the voxels along the given axes: TorchIO's ``Flip``.

    Args:
        axes: An axis or axes: ``0, 1, 2`` or anatomical letters (``'LR'``...),
            as in :class:`RandomFlip`.
        p: Probability of applying the transform.
        include: Names of the only images to flip.
        exclude: Names of images to leave as they are.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> out = Flip(0)(Subject(t1=ScalarImage(tensor=torch.arange(3.0).reshape(1, 3, 1, 1))))
        >>> out.t1.data.flatten().tolist(), out['history']
        ([2.0, 1.0, 0.0], [{'name': 'Flip', 'axes': [0]}])
    """

    fixed_params = True

    def __init__(
        self,
        axes: int | str | Sequence[int | str],
        p: float = 1.0,
        include: Names = None,
        exclude: Names = None,
        **kwargs: Any,
    ):
        super().__init__(axes, flip_probability=1.0, p=p, include=include, exclude=exclude, **kwargs)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Flip:
        """The transform that a history record of it describes."""
        return cls(list(record["axes"]))

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """Every given axis, as voxel axes in increasing order."""
        return {"axes": sorted(set(self._voxel_axes(subject)))}

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        axes: Any = self.axes[0] if len(self.axes) == 1 else list(self.axes)
        return {"axes": axes, **RandomTransform.arguments(self)}


class ElasticDeformation(RandomElasticDeformation):
    """Deform with given control-point displacements: TorchIO's ``ElasticDeformation``.

    Args:
        control_points: The displacements ``(n0, n1, n2, 3)`` in LPS mm of
            the control points (TorchIO's; :class:`RandomElasticDeformation`
            records them as ``displacements``), at least 4 per axis.
        max_displacement: The largest displacement allowed (one number or
            three): as in TorchIO, only checked against the control points'
            spacing (a ``RuntimeWarning`` where the deformation may fold).
        image_interpolation: ``'linear'``, ``'nearest'`` or ``'bspline'``.
        label_interpolation: ``'nearest'`` or ``'linear'``.
        p: Probability of applying the transform.
        include: Names of the only images to deform.
        exclude: Names of images to leave as they are.

    Raises:
        ValueError: When ``control_points`` is not of shape ``(n0, n1, n2, 3)``
            with every ``n >= 4``, or not finite.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> out = ElasticDeformation(np.zeros((5, 5, 5, 3)), 1)(subject)
        >>> torch.equal(out.t1.data, subject.t1.data), out['history'][0]['name']
        (True, 'ElasticDeformation')
    """

    fixed_params = True

    def __init__(
        self,
        control_points: Any,
        max_displacement: float | Sequence[float],
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        p: float = 1.0,
        include: Names = None,
        exclude: Names = None,
        **kwargs: Any,
    ) -> None:
        points = np.asarray(control_points, dtype=np.float64)
        if points.ndim != 4 or points.shape[3] != 3 or min(points.shape[:3]) < 4 or not np.isfinite(points).all():
            raise ValueError(
                f"control_points must be finite displacements of shape (n0, n1, n2, 3) with n >= 4, "
                f"got shape {points.shape}"
            )
        super().__init__(
            tuple(int(n) for n in points.shape[:3]),
            max_displacement,
            locked_borders=0,
            image_interpolation=image_interpolation,
            label_interpolation=label_interpolation,
            p=p,
            include=include,
            exclude=exclude,
            **kwargs,
        )
        self.control_points = points

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ElasticDeformation:
        """The transform that a history record of it describes."""
        points = np.asarray(record["displacements"], dtype=np.float64)
        return cls(points, tuple(np.abs(points).reshape(-1, 3).max(axis=0).tolist()))

    def get_params(self, subject: Subject) -> dict[str, Any]:
        """The given displacements (after the folding check TorchIO makes)."""
        self.check_folding(subject)
        return {"displacements": self.control_points.tolist()}

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        shape = self.control_points.shape
        return {"control_points": f"<{shape} displacements>", **SpatialRandomTransform.arguments(self)}


__all__ = ["Affine", "ElasticDeformation", "Flip", "each_value", "number_triplet", "per_image"]
