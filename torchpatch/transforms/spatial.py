"""Changing the voxel grid: axis order (:class:`ToCanonical`) and spacing (:class:`Resample`).

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
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..annotations import annotation_grid, crop_annotations, map_annotations, region_aware_metadata
from ..constants import LABEL
from ..geometry import is_number, orientation_from_affine, spacing_from_affine
from ..image import Image
from ..subject import Subject
from ..typing import TypeAffine, TypeTriplet
from .base import Transform, rebuild_image

#: World axis and sign of each orientation code.
_CODES = {"R": (0, False), "L": (0, True), "A": (1, False), "P": (1, True), "S": (2, False), "I": (2, True)}

#: Interpolation names and their spline orders.
_ORDERS = {"nearest": 0, "linear": 1}

#: Slack, in voxels, when deciding whether a point falls inside a field of view
#: or whether two grids are the same.
_TOLERANCE = 1e-6


class ToCanonical(Transform):
    """Reorder and flip voxel axes so that the orientation becomes RAS+.

    Axis ``I`` then points to the right, ``J`` to the front and ``K`` up.
    Only ``torch.permute`` and ``torch.flip`` are used: no value changes, and
    the affine is updated so every voxel centre keeps its world position.
    Images already in RAS+ are passed through unchanged.

    A depth-one (2D) image whose third axis does not point up or down (e.g.
    a coronal slice) has its depth-one axis moved to ``I`` or ``J``; apply
    this transform to 2D images only when that is what you want.

    Args:
        include: Names of the only images to reorient.
        exclude: Names of images to leave as they are.

    Example:
        >>> import numpy as np, torch
        >>> from torchpatch import ScalarImage, Subject
        >>> lps = ScalarImage(tensor=torch.arange(2.0).reshape(1, 2, 1, 1), affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
        >>> ras = ToCanonical()(Subject(t1=lps)).t1
        >>> ras.orientation, ras.data.flatten().tolist(), ras.origin
        (('R', 'A', 'S'), [1.0, 0.0], (-1.0, 0.0, 0.0))
    """

    def apply_transform(self, subject: Subject) -> Subject:
        """Reorient every selected image, and map the annotations."""
        result = super().apply_transform(subject)
        annotations = region_aware_metadata(subject)
        if annotations:
            names = list(self.get_images_dict(subject))
            shape, affine = annotation_grid(subject, names, repr(self), annotations)
            permutation, flips = _canonical_axes(affine)
            new_to_old = np.linalg.solve(affine, _canonical_affine(affine, shape, permutation, flips))
            new_shape = (shape[permutation[0]], shape[permutation[1]], shape[permutation[2]])
            old_to_new = np.linalg.inv(new_to_old)
            for name, value in map_annotations(annotations, old_to_new, new_shape, repr(self)).items():
                result[name] = value
        return result

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Permute and flip the axes of ``image`` into RAS+."""
        permutation, flips = _canonical_axes(image.affine)
        if permutation == (0, 1, 2) and not any(flips):
            return image
        data = image.data.permute(0, *(1 + axis for axis in permutation))
        flipped = [1 + axis for axis in range(3) if flips[axis]]
        if flipped:
            data = torch.flip(data, flipped)
        affine = _canonical_affine(image.affine, image.spatial_shape, permutation, flips)
        return rebuild_image(image, data.contiguous(), affine)


def _canonical_axes(affine: TypeAffine) -> tuple[TypeTriplet, tuple[bool, bool, bool]]:
    """For each new axis (R, A, S): the old axis it comes from and whether it is reversed."""
    permutation = [0, 0, 0]
    flips = [False, False, False]
    for axis, code in enumerate(orientation_from_affine(affine)):
        world, negative = _CODES[code]
        permutation[world] = axis
        flips[world] = negative
    return (permutation[0], permutation[1], permutation[2]), (flips[0], flips[1], flips[2])


def _canonical_affine(
    affine: TypeAffine, shape: Sequence[int], permutation: Sequence[int], flips: Sequence[bool]
) -> TypeAffine:
    # new_to_old maps a new voxel index to the old one: old[p] = new[n], or
    # (shape[p] - 1) - new[n] on a reversed axis.
    new_to_old = np.zeros((4, 4))
    new_to_old[3, 3] = 1.0
    for new_axis, old_axis in enumerate(permutation):
        if flips[new_axis]:
            new_to_old[old_axis, new_axis] = -1.0
            new_to_old[old_axis, 3] = shape[old_axis] - 1
        else:
            new_to_old[old_axis, new_axis] = 1.0
    return np.asarray(affine, dtype=np.float64) @ new_to_old


class Resample(Transform):
    """Resample images to a new spacing or onto the grid of another image.

    Scalar images are interpolated linearly (``image_interpolation``) and
    label maps with nearest neighbours, so labels keep their integer classes
    and dtype. Scalar images keep their floating dtype (integer images become
    ``float32``).

    With a spacing target, each image gets a grid covering the same field of
    view: ``shape * old_spacing / new_spacing`` voxels per axis (rounded to
    the nearest integer, halves up, at least one), the same axis directions,
    and the outer corner of the first voxel kept in place::

        old  |  x  |  x  |  x  |  x  |     spacing 1, 4 voxels
        new  |     x     |     x     |     spacing 2, 2 voxels
             ^ corner kept: the first centre moves by (2 - 1) / 2

    The third axis of a depth-one (2D) image is never resampled.

    Values come from ``scipy.ndimage.affine_transform``, one channel at a
    time (no full-volume float64 copy). Output voxel centres inside the input
    field of view (up to half a voxel beyond the outer centres) take the
    nearest edge values there; centres outside it are 0, like SimpleITK and
    TorchIO. No anti-aliasing filter is applied when downsampling.

    Args:
        target: Output spacing in millimetres, either one number (isotropic)
            or three; or the name of an image of the subject, whose grid
            (shape and affine) the other images are resampled onto; or an
            :class:`~torchpatch.image.Image` whose grid is used (its voxels
            are not read).
        image_interpolation: ``'linear'`` or ``'nearest'``, for scalar images.
        label_interpolation: ``'nearest'``, the only choice that keeps label
            maps integer (accepted for compatibility with TorchIO).
        include: Names of the only images to resample.
        exclude: Names of images to leave as they are.

    Raises:
        TypeError: When ``target`` or an interpolation has the wrong type.
        ValueError: When a spacing is not positive and finite, or an
            interpolation is unknown.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)),
        ...     seg=LabelMap(tensor=torch.tensor([0, 0, 2, 2]).repeat(4, 1).reshape(1, 4, 4, 1)),
        ... )
        >>> out = Resample(2)(subject)
        >>> out.t1.shape, out.t1.spacing, out.t1.origin
        ((1, 2, 2, 1), (2.0, 2.0, 1.0), (0.5, 0.5, 0.0))
        >>> out.t1.data.flatten().tolist(), out.seg.data.flatten().tolist(), out.seg.dtype
        ([2.5, 4.5, 10.5, 12.5], [0, 2, 0, 2], torch.int64)
    """

    def __init__(
        self,
        target: float | Sequence[float] | str | Image = 1.0,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
    ) -> None:
        super().__init__(include, exclude)
        self.target = _parse_target(target)
        self.image_interpolation = _parse_interpolation(image_interpolation, "image_interpolation", tuple(_ORDERS))
        self.label_interpolation = _parse_interpolation(label_interpolation, "label_interpolation", ("nearest",))

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        target = self.target if not isinstance(self.target, Image) else f"<{type(self.target).__name__}>"
        return {
            "target": target,
            "image_interpolation": self.image_interpolation,
            "label_interpolation": self.label_interpolation,
            **super().arguments(),
        }

    def apply_transform(self, subject: Subject) -> Subject:
        """Resample the selected images onto their new grids."""
        images = self.get_images_dict(subject)
        reference: Image | None = None
        if isinstance(self.target, str):
            reference = subject.get_image(self.target, "Resample target")
            images.pop(self.target, None)
        elif isinstance(self.target, Image):
            reference = self.target
        resampled = {}
        for name, image in images.items():
            if reference is not None:
                shape, affine = reference.spatial_shape, reference.affine
            else:
                assert isinstance(self.target, tuple)  # parsed in __init__
                shape, affine = _spacing_grid(image.spatial_shape, image.affine, self.target)
            resampled[name] = self._resample(image, shape, affine)
        result = subject.with_images(resampled)
        annotations = region_aware_metadata(subject)
        if annotations:
            changed = [*images, *([self.target] if isinstance(self.target, str) else [])]
            old_shape, old_affine = annotation_grid(subject, changed, repr(self), annotations)
            if reference is not None:
                new_shape, new_affine = reference.spatial_shape, reference.affine
            else:
                assert isinstance(self.target, tuple)  # parsed in __init__
                new_shape, new_affine = _spacing_grid(old_shape, old_affine, self.target)
            old_to_new = np.linalg.solve(new_affine, old_affine)
            mapped = map_annotations(annotations, old_to_new, new_shape, repr(self))
            # Like the voxels, what falls outside the new field of view is lost.
            for name, value in crop_annotations(mapped, (0, 0, 0), new_shape).items():
                result[name] = value
        return result

    def _resample(self, image: Image, shape: TypeTriplet, affine: TypeAffine) -> Image:
        # Output voxel -> input voxel: inv(A_in) @ A_out, as scipy expects.
        output_to_input = np.linalg.solve(image.affine, affine)
        matrix, offset = output_to_input[:3, :3], output_to_input[:3, 3]
        if shape == image.spatial_shape and np.allclose(output_to_input, np.eye(4), atol=_TOLERANCE, rtol=0):
            return image
        is_label = image.type == LABEL
        order = _ORDERS[self.label_interpolation if is_label else self.image_interpolation]
        data = image.data
        if is_label:
            numpy_dtype = _numpy_dtype(data.dtype)
        elif data.dtype == torch.float64:
            numpy_dtype = np.dtype(np.float64)
        else:
            numpy_dtype = np.dtype(np.float32)
        output = np.empty((data.shape[0], *shape), dtype=numpy_dtype)
        inside = _inside_field_of_view(matrix, offset, image.spatial_shape, shape)
        for channel in range(data.shape[0]):
            values = _channel_array(data[channel])
            # mode='nearest' rather than 'constant': 'constant' zeroes every
            # point beyond the outer voxel centres (a one-voxel slab of a
            # downsampled volume, the whole of a depth-one axis, and border
            # voxels that rounding puts 1e-16 outside). The field of view is
            # cut separately, below.
            ndimage.affine_transform(
                values, matrix, offset=offset, output_shape=shape, output=output[channel], order=order, mode="nearest"
            )
            if inside is not None:
                output[channel] *= inside
        tensor = torch.from_numpy(output)
        if data.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.to(data.dtype)
        return rebuild_image(image, tensor.to(data.device), affine)


def _parse_target(target: Any) -> tuple[float, float, float] | str | Image:
    if isinstance(target, (str, Image)):
        return target
    if is_number(target):
        values = [float(target)] * 3
    elif isinstance(target, (Sequence, np.ndarray)):
        values = list(target)
        if len(values) != 3:
            raise ValueError(f"Resample target must hold three spacings (I, J, K), got {len(values)}: {target!r}")
        if not all(is_number(value) for value in values):
            raise TypeError(f"Resample target spacings must be numbers, got {target!r}")
        values = [float(value) for value in values]
    else:
        raise TypeError(
            "Resample target must be a spacing in mm (a number or three numbers), the name of an image of the "
            f"subject, or an Image; got {type(target).__name__} {target!r}"
        )
    if not all(np.isfinite(value) and value > 0 for value in values):
        raise ValueError(f"Resample target spacings must be positive and finite (mm), got {target!r}")
    return (values[0], values[1], values[2])


def _parse_interpolation(value: Any, argument: str, accepted: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be one of {list(accepted)}, got {type(value).__name__} {value!r}")
    if value.lower() not in accepted:
        hint = " (label maps must stay integer classes)" if argument == "label_interpolation" else ""
        raise ValueError(f"{argument} must be one of {list(accepted)}, got {value!r}{hint}")
    return value.lower()


def _spacing_grid(
    shape: TypeTriplet, affine: TypeAffine, spacing: tuple[float, float, float]
) -> tuple[TypeTriplet, TypeAffine]:
    """Shape and affine covering the field of view of ``(shape, affine)`` at ``spacing``."""
    old = np.array(spacing_from_affine(affine))
    new = np.array(spacing, dtype=np.float64)
    if shape[2] == 1:  # 2D images keep their depth-one axis
        new[2] = old[2]
    direction = np.asarray(affine)[:3, :3] / old
    sizes = np.floor(np.asarray(shape) * old / new + 0.5)
    new_shape = (max(1, int(sizes[0])), max(1, int(sizes[1])), max(1, int(sizes[2])))
    new_affine = np.eye(4)
    new_affine[:3, :3] = direction * new
    new_affine[:3, 3] = np.asarray(affine)[:3, 3] + direction @ ((new - old) / 2)
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


def _numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    return torch.empty(0, dtype=dtype).numpy().dtype


def _channel_array(channel: torch.Tensor) -> np.ndarray[Any, Any]:
    """One channel as a numpy array scipy can read (a view when possible)."""
    channel = channel.detach().cpu()
    if channel.dtype == torch.bool:
        channel = channel.to(torch.uint8)
    elif channel.dtype in (torch.float16, torch.bfloat16):
        channel = channel.to(torch.float32)
    return np.ascontiguousarray(channel.numpy())


__all__ = ["Resample", "ToCanonical"]
