"""Changing the voxel grid: axis order (:class:`~torchpatch.transforms.ToCanonical`) and spacing (:class:`Resample`).

Both keep data and affine describing the same world: after either, the RAS+
position given by the new affine to a voxel centre is where the value of that
voxel comes from in the input.

Annotations (boxes, points: metadata with ``map_voxels``, see
:class:`~torchpatch.annotations.VoxelMappable`) follow the voxels through the
voxel-to-voxel affine ``inv(new_affine) @ old_affine``: points exactly, boxes
through the minimum and maximum of their mapped corners (exact for the axis
permutations, flips and scalings these transforms make on one grid), then
:class:`Resample` clips them to the new field of view as it does voxels. A
subject holding annotations must be transformed whole, its images sharing
one grid; otherwise, and for region-aware metadata that cannot follow a new
grid, these transforms raise rather than leave annotations on the wrong grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..annotations import annotation_grid, crop_annotations, map_annotations, region_aware_metadata
from ..constants import INTENSITY
from ..geometry import is_number, spacing_from_affine
from ..image import Image, ScalarImage
from ..io import numpy_dtype
from ..subject import Subject
from ..typing import TypeAffine, TypeTriplet
from .base import Transform, rebuild_image

# Longer than 400 lines: Resample carries TorchIO's whole argument set (targets,
# pre-affine, antialias, dtypes); splitting it off is left for a later change.

#: World axis and sign of each orientation code.
_CODES = {"R": (0, False), "L": (0, True), "A": (1, False), "P": (1, True), "S": (2, False), "I": (2, True)}

#: Interpolation names and their spline orders.
_ORDERS = {"nearest": 0, "linear": 1, "bspline": 3}

#: Slack, in voxels, when deciding whether a point falls inside a field of view
#: or whether two grids are the same.
_TOLERANCE = 1e-6

#: Added to input coordinates before nearest-neighbour rounding, in voxels.
_HALF_TIE_NUDGE = 1e-7


class Resample(Transform):
    """Resample images to a new spacing or onto the grid of another image, as TorchIO does.

    Scalar images are interpolated with ``image_interpolation`` and label
    maps with ``label_interpolation`` (nearest neighbours by default, so
    labels keep their classes).

    With a spacing target, each image gets TorchIO's grid: the same axis
    directions, ``floor(shape * old_spacing / new_spacing)`` voxels per axis
    (so the new field of view never reaches beyond the old one), and the
    centre of the field of view kept in place::

        old  |  x  |  x  |  x  |  x  |  x  |   spacing 1, 5 voxels
        new     |     x     |     x     |      spacing 2, floor(2.5) = 2 voxels
                          ^ centre kept

    An axis of one voxel (the depth of a 2D image) keeps its one voxel, its
    centre and its spacing (TorchIO gives it the new spacing: only that
    column of the affine differs, not the voxels; keeping it keeps 2D images
    and their boxes and points 2D).

    Output dtypes follow TorchIO: every image keeps its dtype, so an integer
    scalar image interpolated linearly is cut toward zero, as SimpleITK casts
    (``keep_dtype=False`` gives such images ``float32`` instead); boolean
    images become ``uint8`` when interpolated linearly (a boolean label map
    resampled with nearest neighbours stays boolean). ``float16`` and
    ``bfloat16`` images, which TorchIO refuses, are computed in ``float32``.

    Values come from ``scipy.ndimage.affine_transform``, one channel at a
    time (no full-volume float64 copy, except for integer images interpolated
    linearly). Output voxel centres inside the input field of view (up to
    half a voxel beyond the outer centres) take the nearest edge values
    there; centres outside it are 0, as in SimpleITK and TorchIO.

    Differences from TorchIO: a spacing coarser than the whole field of view
    gives one voxel on that axis (TorchIO gives an empty image), and
    ``antialias`` smooths with ``scipy.ndimage.gaussian_filter`` (TorchIO
    uses SimpleITK's recursive Gaussian: values differ slightly, mostly at
    the borders).

    Args:
        target: Output spacing in millimetres, either one number (isotropic)
            or three; the name of an image of the subject, whose grid (shape
            and affine) the other images are resampled onto; the path of an
            image file (only its header is read) or an
            :class:`~torchpatch.image.Image` whose grid is used; or a tuple
            ``(spatial_shape, affine)``. A string naming an existing file is
            taken as a path, as in TorchIO.
        image_interpolation: ``'linear'`` or ``'nearest'``, for scalar images.
        label_interpolation: ``'nearest'`` or ``'linear'``, for label maps.
        pre_affine_name: Name of an image metadata entry holding a 4x4
            matrix applied to that image's affine before resampling (e.g. a
            registration to the target space); images without the entry are
            resampled as they are.
        scalars_only: Resample scalar images only; label maps pass through.
        antialias: Smooth scalar images with a Gaussian along each axis that
            is downsampled before resampling (standard deviation
            ``spacing * sqrt((k**2 - 1) / (8 ln 2))`` for a downsampling
            factor ``k``, from Cardoso et al., MICCAI 2015, as TorchIO).
        keep_dtype: Keep the dtype of integer scalar images (TorchIO's
            behaviour); when False they are resampled to ``float32``.
        include: Names of the only images to resample.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``keep``, ``copy``...).

    Raises:
        TypeError: When ``target``, an interpolation or ``pre_affine_name``
            has the wrong type.
        ValueError: When a spacing is not positive and finite, an
            interpolation is unknown, or a ``(spatial_shape, affine)`` target
            is malformed.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.arange(20.0).reshape(1, 5, 4, 1)),
        ...     seg=LabelMap(tensor=torch.tensor([0, 0, 2, 2]).repeat(5, 1).reshape(1, 5, 4, 1)),
        ... )
        >>> out = Resample(2)(subject)
        >>> out.t1.shape, out.t1.spacing, out.t1.origin
        ((1, 2, 2, 1), (2.0, 2.0, 1.0), (1.0, 0.5, 0.0))
        >>> out.t1.data.flatten().tolist(), out.seg.data.flatten().tolist(), out.seg.dtype
        ([4.5, 6.5, 12.5, 14.5], [0, 2, 0, 2], torch.int64)
        >>> Resample(2)(subject.t1).shape  # a bare image in, an image out
        (1, 2, 2, 1)
    """

    def __init__(
        self,
        target: float | Sequence[float] | str | Path | Image | tuple[Sequence[int], Any] = 1.0,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        pre_affine_name: str | None = None,
        scalars_only: bool = False,
        antialias: bool = False,
        *,
        keep_dtype: bool = True,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.target = _parse_target(target)
        self.image_interpolation = _parse_interpolation(image_interpolation, "image_interpolation")
        self.label_interpolation = _parse_interpolation(label_interpolation, "label_interpolation")
        if pre_affine_name is not None and not isinstance(pre_affine_name, str):
            raise TypeError(
                f"pre_affine_name must be None or the name of an image entry, got "
                f"{type(pre_affine_name).__name__} {pre_affine_name!r}"
            )
        self.pre_affine_name = pre_affine_name
        self.scalars_only = bool(scalars_only)
        self.antialias = bool(antialias)
        self.keep_dtype = bool(keep_dtype)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        target: Any = self.target
        if isinstance(target, Image):
            target = f"<{type(target).__name__}>" if target.path is None else f"<{type(target).__name__} {target.path}>"
        elif isinstance(target, _ShapeAffine):
            target = (target.shape, target.affine.tolist())
        arguments: dict[str, Any] = {
            "target": target,
            "image_interpolation": self.image_interpolation,
            "label_interpolation": self.label_interpolation,
        }
        # Shown only when not the default, so reprs (and cache keys) of existing pipelines keep their text.
        defaults = {"pre_affine_name": None, "scalars_only": False, "antialias": False, "keep_dtype": True}
        for key, default in defaults.items():
            if getattr(self, key) != default:
                arguments[key] = getattr(self, key)
        return {**arguments, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Resample the selected images onto their new grids."""
        images = self.get_images_dict(subject)
        if self.scalars_only:
            images = {name: image for name, image in images.items() if image.type == INTENSITY}
        reference, reference_name = self._reference(subject)
        if reference_name is not None:
            images.pop(reference_name, None)
        input_affines = self._input_affines(subject, images)
        resampled = {}
        for name, image in images.items():
            if reference is not None:
                shape, affine = reference
            else:
                assert isinstance(self.target, tuple)  # parsed in __init__
                shape, affine = _spacing_grid(image.spatial_shape, input_affines[name], self.target)
            resampled[name] = self._resample(image, input_affines[name], shape, affine)
        result = subject.with_images(resampled)
        annotations = region_aware_metadata(subject)
        if annotations:
            if any(input_affines[name] is not images[name].affine for name in images):
                raise ValueError(
                    f"{self!r} cannot carry the annotations {sorted(annotations)} of subject {subject.name!r} "
                    f"through the pre-affine {self.pre_affine_name!r}; apply it to the images first"
                )
            changed = [*images, *([reference_name] if reference_name is not None else [])]
            old_shape, old_affine = annotation_grid(subject, changed, repr(self), annotations)
            if reference is not None:
                new_shape, new_affine = reference
            else:
                assert isinstance(self.target, tuple)  # parsed in __init__
                new_shape, new_affine = _spacing_grid(old_shape, old_affine, self.target)
            old_to_new = np.linalg.solve(new_affine, old_affine)
            mapped = map_annotations(annotations, old_to_new, new_shape, repr(self))
            # Like the voxels, what falls outside the new field of view is lost.
            for name, value in crop_annotations(mapped, (0, 0, 0), new_shape).items():
                result[name] = value
        return result

    def _reference(self, subject: Subject) -> tuple[tuple[TypeTriplet, TypeAffine] | None, str | None]:
        """The target grid (None for a spacing) and the name of the subject's image giving it."""
        target = self.target
        if isinstance(target, _ShapeAffine):
            return (target.shape, target.affine), None
        if isinstance(target, Path) or (isinstance(target, str) and Path(target).is_file()):
            target = ScalarImage(target)
        if isinstance(target, Image):
            return (target.spatial_shape, target.affine), None
        if isinstance(target, str):
            if target not in subject.images and Path(target).suffix:
                raise ValueError(
                    f"Resample target {target!r} is neither an image of subject {subject.name!r} "
                    f"(images: {sorted(subject.images)}) nor an existing file"
                )
            image = subject.get_image(target, "Resample target")
            return (image.spatial_shape, image.affine), target
        return None, None

    def _input_affines(self, subject: Subject, images: dict[str, Image]) -> dict[str, TypeAffine]:
        """Each image's affine, after the pre-affine of ``pre_affine_name`` where the image has one."""
        affines = {name: image.affine for name, image in images.items()}
        if self.pre_affine_name is None:
            return affines
        key = self.pre_affine_name
        if not any(key in image.metadata for image in subject.images.values()):
            raise ValueError(
                f"pre_affine_name {key!r} is not an entry of any image of subject {subject.name!r} "
                f"(images: {sorted(subject.images)})"
            )
        for name, image in images.items():
            if key in image.metadata:
                matrix = image.metadata[key]
                if not isinstance(matrix, (np.ndarray, torch.Tensor)):
                    raise TypeError(
                        f"pre-affine {key!r} of image {name!r} must be a numpy array or tensor, "
                        f"got {type(matrix).__name__}"
                    )
                if tuple(matrix.shape) != (4, 4):
                    raise ValueError(f"pre-affine {key!r} of image {name!r} must be 4x4, got {tuple(matrix.shape)}")
                matrix = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, float)
                affines[name] = matrix @ np.asarray(image.affine, dtype=np.float64)
        return affines

    def _resample(self, image: Image, input_affine: TypeAffine, shape: TypeTriplet, affine: TypeAffine) -> Image:
        # Output voxel -> input voxel: inv(A_in) @ A_out, as scipy expects.
        output_to_input = np.linalg.solve(input_affine, affine)
        matrix, offset = output_to_input[:3, :3], output_to_input[:3, 3]
        if shape == image.spatial_shape and np.allclose(output_to_input, np.eye(4), atol=_TOLERANCE, rtol=0):
            return image
        is_label = image.type != INTENSITY  # label maps and sampling maps: the label interpolation
        order = _ORDERS[self.label_interpolation if is_label else self.image_interpolation]
        data = image.data
        compute_dtype, output_dtype = _dtypes(data.dtype, order, keep=self.keep_dtype or is_label)
        sigmas = None
        if self.antialias and not is_label:
            sigmas = _antialias_sigmas(input_affine, affine)
        output = np.empty((data.shape[0], *shape), dtype=compute_dtype)
        inside = _inside_field_of_view(matrix, offset, image.spatial_shape, shape)
        if order == 0:
            # A centre halfway between two voxels takes the upper one, as
            # SimpleITK rounds; without the nudge, rounding errors of 1e-15
            # decide.
            offset = offset + _HALF_TIE_NUDGE
        for channel in range(data.shape[0]):
            values = _channel_array(data[channel], compute_dtype)
            if sigmas is not None:
                values = ndimage.gaussian_filter(values, sigmas, mode="nearest")
            # mode='nearest' rather than 'constant': 'constant' zeroes every
            # point beyond the outer voxel centres (a one-voxel slab of a
            # downsampled volume, the whole of a depth-one axis, and border
            # voxels that rounding puts 1e-16 outside). The field of view is
            # cut separately, below.
            # A cubic B-spline's coefficients are prefiltered with mirrored edges, as ITK does.
            mode = "mirror" if order == 3 else "nearest"
            ndimage.affine_transform(
                values, matrix, offset=offset, output_shape=shape, output=output[channel], order=order, mode=mode
            )
            if inside is not None:
                output[channel] *= inside
        if output_dtype.is_floating_point:
            tensor = torch.from_numpy(output).to(output_dtype)
        else:
            # SimpleITK's cast: toward zero (exact already for nearest neighbours).
            tensor = torch.from_numpy(np.trunc(output) if output.dtype.kind == "f" else output).to(output_dtype)
        return rebuild_image(image, tensor.to(data.device), affine)


class _ShapeAffine:
    """A ``(spatial_shape, affine)`` target, checked."""

    def __init__(self, shape: TypeTriplet, affine: TypeAffine) -> None:
        self.shape = shape
        self.affine = affine


def _parse_target(target: Any) -> tuple[float, float, float] | str | Path | Image | _ShapeAffine:
    if isinstance(target, (str, Path, Image)):
        return target
    if isinstance(target, tuple) and len(target) == 2 and not is_number(target[0]):
        shape, affine = target
        if not (isinstance(shape, Sequence) and len(shape) == 3 and all(is_number(size) for size in shape)):
            raise ValueError(f"Resample target shape must be three positive integers, got {shape!r}")
        sizes = [int(size) for size in shape]
        if any(size < 1 or size != value for size, value in zip(sizes, shape, strict=True)):
            raise ValueError(f"Resample target shape must be three positive integers, got {shape!r}")
        matrix = np.asarray(affine, dtype=np.float64) if isinstance(affine, (np.ndarray, Sequence)) else None
        if matrix is None or matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise ValueError(f"Resample target affine must be a finite 4x4 matrix, got {affine!r}")
        return _ShapeAffine((sizes[0], sizes[1], sizes[2]), matrix)
    if is_number(target):
        values = [float(target)] * 3
    elif isinstance(target, (Sequence, np.ndarray)):
        values = list(np.asarray(target).flat) if isinstance(target, np.ndarray) else list(target)
        if len(values) != 3:
            raise ValueError(f"Resample target must hold three spacings (I, J, K), got {len(values)}: {target!r}")
        if not all(is_number(value) for value in values):
            raise TypeError(f"Resample target spacings must be numbers, got {target!r}")
        values = [float(value) for value in values]
    else:
        raise TypeError(
            "Resample target must be a spacing in mm (a number or three numbers), the name of an image of the "
            f"subject, a path, an Image or (spatial_shape, affine); got {type(target).__name__} {target!r}"
        )
    if not all(np.isfinite(value) and value > 0 for value in values):
        raise ValueError(f"Resample target spacings must be positive and finite (mm), got {target!r}")
    return (values[0], values[1], values[2])


def _parse_interpolation(value: Any, argument: str) -> str:
    accepted = tuple(_ORDERS)
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be one of {list(accepted)}, got {type(value).__name__} {value!r}")
    if value.lower() not in accepted:
        raise ValueError(f"{argument} must be one of {list(accepted)}, got {value!r}")
    return value.lower()


def _dtypes(dtype: torch.dtype, order: int, keep: bool) -> tuple[np.dtype[Any], torch.dtype]:
    """The numpy dtype scipy computes in and the torch dtype of the result, for input ``dtype``."""
    if dtype.is_floating_point:
        return np.dtype(np.float64 if dtype == torch.float64 else np.float32), dtype
    if order == 0:  # nearest neighbours: exact in the input's own dtype
        return numpy_dtype(dtype), dtype
    if not keep:
        return np.dtype(np.float32), torch.float32
    return np.dtype(np.float64), torch.uint8 if dtype == torch.bool else dtype


def _antialias_sigmas(input_affine: TypeAffine, output_affine: TypeAffine) -> list[float]:
    """Gaussian standard deviations, in input voxels, before downsampling (0 on axes not downsampled)."""
    factors = np.array(spacing_from_affine(output_affine)) / np.array(spacing_from_affine(input_affine))
    variances = (factors**2 - 1) / (2 * np.sqrt(2 * np.log(2))) ** 2
    return [
        float(np.sqrt(variance)) if factor > 1 else 0.0 for factor, variance in zip(factors, variances, strict=True)
    ]


def _spacing_grid(
    shape: TypeTriplet, affine: TypeAffine, spacing: tuple[float, float, float]
) -> tuple[TypeTriplet, TypeAffine]:
    """TorchIO's grid at ``spacing`` in the field of view of ``(shape, affine)``: floor of the size, centre kept."""
    affine = np.asarray(affine, dtype=np.float64)
    old = np.array(spacing_from_affine(affine))
    new = np.array(spacing, dtype=np.float64)
    direction = affine[:3, :3] / old
    single = np.asarray(shape) == 1
    # A one-voxel axis (the depth of a 2D image) keeps its voxel, its centre
    # and, unlike TorchIO, its spacing: 2D annotations stay 2D.
    new[single] = old[single]
    sizes = np.floor(np.asarray(shape) * old / new)
    new_shape = (max(1, int(sizes[0])), max(1, int(sizes[1])), max(1, int(sizes[2])))
    centre = affine[:3, :3] @ ((np.asarray(shape) - 1) / 2) + affine[:3, 3]
    new_affine = np.eye(4)
    new_affine[:3, :3] = direction * new
    new_affine[:3, 3] = centre - direction @ ((np.asarray(new_shape) - 1) / 2 * new)
    return new_shape, new_affine


def _inside_field_of_view(
    matrix: np.ndarray[Any, Any], offset: np.ndarray[Any, Any], in_shape: TypeTriplet, out_shape: TypeTriplet
) -> np.ndarray[Any, Any] | None:
    """Boolean mask of output voxels whose centre lies in the input field of view; None if all do."""
    low = -0.5 - _TOLERANCE
    high = np.asarray(in_shape, dtype=np.float64) - 0.5 + _TOLERANCE
    off_diagonal = matrix - np.diag(np.diag(matrix))
    if np.abs(off_diagonal).max() < _TOLERANCE:
        # Axis-aligned grids (every spacing target): one test per axis.
        per_axis = []
        for axis in range(3):
            coordinates = matrix[axis, axis] * np.arange(out_shape[axis]) + offset[axis]
            per_axis.append((coordinates >= low) & (coordinates <= high[axis]))
        if all(mask.all() for mask in per_axis):
            return None
        return per_axis[0][:, None, None] & per_axis[1][None, :, None] & per_axis[2][None, None, :]
    # Oblique grids: one slice of coordinates at a time, to bound memory.
    j, k = np.meshgrid(np.arange(out_shape[1]), np.arange(out_shape[2]), indexing="ij")
    in_plane = matrix[:, 1, None, None] * j + matrix[:, 2, None, None] * k + offset[:, None, None]
    inside = np.empty(out_shape, dtype=bool)
    for i in range(out_shape[0]):
        coordinates = in_plane + matrix[:, 0, None, None] * i
        inside[i] = ((coordinates >= low) & (coordinates <= high[:, None, None])).all(axis=0)
    return None if inside.all() else inside


def _channel_array(channel: torch.Tensor, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """One channel as a numpy array scipy can read, in ``dtype`` (a view when possible)."""
    channel = channel.detach().cpu()
    if channel.dtype == torch.bool:
        channel = channel.to(torch.uint8)
    elif channel.dtype in (torch.float16, torch.bfloat16):
        channel = channel.to(torch.float32)
    array = channel.numpy()
    if dtype.kind == "f" and array.dtype != dtype:
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


__all__ = ["Resample"]
