"""Grids chosen by the user: any axis order (:class:`ToOrientation`) and any shape (:class:`Resize`).

:class:`ToOrientation` generalises :class:`~torchpatch.transforms.ToCanonical`
to every three-letter code (``'LPS'``, ``'PLS'``, ``'SLP'``...): voxels are
permuted and flipped, never interpolated, and boxes and points follow them.
:class:`Resize` is :class:`~torchpatch.transforms.Resample` onto the grid of
the requested shape that covers the same field of view, so both share one
interpolation (and one treatment of annotations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..annotations import annotation_grid, map_annotations, region_aware_metadata
from ..geometry import WORLD_AXES, orientation_axes, reorientation_index_map
from ..image import Image, ScalarImage
from ..image_info import reoriented
from ..subject import Subject
from ..typing import TypeAffine, TypeTriplet
from .base import Transform
from .spatial import Resample


def _parse_orientation(orientation: Any) -> str:
    if not isinstance(orientation, str):
        raise TypeError(
            f"orientation must be a 3-letter string such as 'RAS' or 'LPS', got {type(orientation).__name__} "
            f"{orientation!r}"
        )
    if len(orientation) != 3:
        raise ValueError(f"orientation must be a 3-letter code such as 'RAS' or 'LPS', got {orientation!r}")
    code = orientation.upper()
    unknown = sorted({letter for letter in code if letter not in WORLD_AXES})
    if unknown:
        raise ValueError(
            f"orientation must be made of three distinct characters among R, L, A, P, S, I; got {orientation!r} "
            f"(unknown: {unknown})"
        )
    worlds = {WORLD_AXES[letter][0] for letter in code}
    if len(worlds) != 3:
        raise ValueError(
            f"orientation must include one character for each axis direction (R or L, A or P, S or I), "
            f"got {orientation!r}"
        )
    return code


class ToOrientation(Transform):
    """Reorder and flip voxel axes so that the image has the given orientation code.

    Each letter says where its voxel axis points: ``'RAS'`` (the default,
    the neurological convention, as :class:`ToCanonical`) has ``I``
    increasing to the Right, ``J`` to the Anterior and ``K`` to the
    Superior; ``'LPS'`` is DICOM's and ITK's; ``'LAS'`` the radiological
    convention. Only ``torch.permute`` and ``torch.flip`` are used, so no
    value changes and every voxel centre keeps its world position (the
    affine is updated to match). Images already in the target orientation
    are passed through. Boxes and points of the subject follow the voxels.

    The current orientation is the world direction each axis points to most,
    as TorchIO (NiBabel) reads it; oblique grids stay oblique.

    Args:
        orientation: Three letters, one from each pair R/L, A/P and S/I, in
            any order and case (``'ras'``, ``'PLS'``, ``'SLP'``...).
        include: Names of the only images to reorient.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``orientation`` is not a string.
        ValueError: When it is not a 3-letter code with one letter per axis
            direction.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> ras = ScalarImage(tensor=torch.arange(6.0).reshape(1, 3, 2, 1))
        >>> lps = ToOrientation('LPS')(Subject(t1=ras)).t1
        >>> lps.orientation, lps.data[0, :, :, 0].tolist(), lps.origin
        (('L', 'P', 'S'), [[5.0, 4.0], [3.0, 2.0], [1.0, 0.0]], (2.0, 1.0, 0.0))
        >>> ToOrientation('SRA')(Subject(t1=ras)).t1.shape
        (1, 1, 3, 2)
    """

    def __init__(
        self,
        orientation: str = "RAS",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.orientation = _parse_orientation(orientation)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"orientation": self.orientation, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Reorient every selected image, and map the annotations."""
        result = super().apply_transform(subject)
        annotations = region_aware_metadata(subject)
        if annotations:
            names = list(self.get_images_dict(subject))
            shape, affine = annotation_grid(subject, names, repr(self), annotations)
            permutation, flips = orientation_axes(affine, self.orientation)
            new_to_old = reorientation_index_map(shape, permutation, flips)
            new_shape = (shape[permutation[0]], shape[permutation[1]], shape[permutation[2]])
            mapped = map_annotations(annotations, np.linalg.inv(new_to_old), new_shape, repr(self))
            for name, value in mapped.items():
                result[name] = value
        return result

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Permute and flip the axes of ``image`` into the target orientation."""
        return reoriented(image, self.orientation)


def _parse_target_shape(target_shape: Any) -> tuple[int, int, int]:
    def is_int(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if is_int(target_shape):
        values = [int(target_shape)] * 3
    elif isinstance(target_shape, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(target_shape, str):
        values = list(target_shape.tolist() if isinstance(target_shape, (np.ndarray, torch.Tensor)) else target_shape)
        if len(values) != 3:
            raise ValueError(f"target_shape must hold three sizes (I, J, K), got {len(values)}: {target_shape!r}")
        if not all(is_int(value) for value in values):
            raise TypeError(f"target_shape must hold ints, got {target_shape!r}")
        values = [int(value) for value in values]
    else:
        raise TypeError(
            f"target_shape must be an int or three ints, got {type(target_shape).__name__} {target_shape!r}"
        )
    if not all(value > 0 or value == -1 for value in values):
        raise ValueError(f"target_shape sizes must be positive (or -1 to keep a size), got {target_shape!r}")
    return (values[0], values[1], values[2])


def resized_grid(shape: TypeTriplet, affine: TypeAffine, target_shape: TypeTriplet) -> tuple[TypeTriplet, TypeAffine]:
    """The grid of ``target_shape`` voxels covering the field of view of ``(shape, affine)``.

    Voxels become ``shape / target_shape`` times larger along each axis
    (same directions), and the grid stays centred: the outer corners of the
    first and last voxels do not move, so the voxel centres are
    ``old_index = (new_index + 0.5) * shape / target_shape - 0.5``::

        old  |  x  |  x  |  x  |  x  |     4 voxels
        new  |     x     |     x     |     2 voxels: centres at old 0.5 and 2.5

    This is TorchIO's grid (it resamples to the spacing
    ``shape * spacing / target_shape``, keeping the centre). A size of -1
    keeps that axis.

    Example:
        >>> shape, affine = resized_grid((4, 4, 1), np.eye(4), (2, -1, 1))
        >>> shape, affine[:3, 3].tolist(), np.diag(affine)[:3].tolist()
        ((2, 4, 1), [0.5, 0.0, 0.0], [2.0, 1.0, 1.0])
    """
    old = np.asarray(shape, dtype=np.float64)
    new_shape = tuple(old_size if size == -1 else size for old_size, size in zip(shape, target_shape))
    ratio = old / np.asarray(new_shape, dtype=np.float64)
    new_to_old = np.diag([*ratio, 1.0])
    new_to_old[:3, 3] = (ratio - 1) / 2
    return (new_shape[0], new_shape[1], new_shape[2]), np.asarray(affine, dtype=np.float64) @ new_to_old


class ToCanonical(ToOrientation):
    """Reorder and flip voxel axes so that the orientation becomes RAS+.

    Axis ``I`` then points to the right, ``J`` to the front and ``K`` up.
    Only ``torch.permute`` and ``torch.flip`` are used: no value changes, and
    the affine is updated so every voxel centre keeps its world position.
    Images already in RAS+ are passed through unchanged.

    As in TorchIO, this is :class:`ToOrientation` with ``'RAS'`` as its
    default: ``ToCanonical(orientation='LPS')`` reorients to LPS+, exactly
    as ``ToOrientation('LPS')`` does.

    A depth-one (2D) image whose third axis does not point up or down (e.g.
    a coronal slice) has its depth-one axis moved to ``I`` or ``J``; apply
    this transform to 2D images only when that is what you want.

    Args:
        orientation: The target orientation code, ``'RAS'`` unless given
            (see :class:`ToOrientation`).
        include: Names of the only images to reorient.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``orientation`` is not a string.
        ValueError: When it is not a 3-letter code with one letter per axis
            direction.

    Example:
        >>> import numpy as np, torch
        >>> from torchpatch import ScalarImage, Subject
        >>> lps = ScalarImage(tensor=torch.arange(2.0).reshape(1, 2, 1, 1), affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
        >>> ras = ToCanonical()(Subject(t1=lps)).t1
        >>> ras.orientation, ras.data.flatten().tolist(), ras.origin
        (('R', 'A', 'S'), [1.0, 0.0], (-1.0, 0.0, 0.0))
        >>> ToCanonical(orientation='LPS')(Subject(t1=ras)).t1.orientation
        ('L', 'P', 'S')
    """

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr`` (the orientation only when it is not RAS)."""
        arguments = super().arguments()
        if arguments["orientation"] == "RAS":
            arguments.pop("orientation")
        return arguments


class Resize(Transform):
    """Resample images to a given shape, keeping their field of view.

    Each image is resampled (with :class:`Resample`: linear interpolation for
    scalar images, nearest neighbours for label maps) onto the grid of
    ``target_shape`` voxels that covers the same field of view, so voxels
    stretch differently along each axis when the shape ratios differ. Boxes
    and points follow the voxels.

    Most medical images should rather keep their physical proportions:
    :class:`Resample` to a spacing then :class:`CropOrPad` to a shape.

    Differences from TorchIO: the output has exactly ``target_shape``; where
    floating-point rounding makes TorchIO's grid one voxel short (e.g. 8 to
    11 voxels), TorchIO pads a slab of zeros at the start of that axis (with
    a ``RuntimeWarning``), shifting the grid by half a voxel; this grid
    always fits the field of view. An int on a 2D (depth-one) image means
    ``(n, n, 1)``, as for patch sizes, where TorchIO pads the depth with
    zeros to ``n``.

    Args:
        target_shape: Output spatial shape ``(I, J, K)``, or one int for a
            cube (a square on 2D images); a size of -1 keeps that axis.
        image_interpolation: ``'linear'`` or ``'nearest'``, for scalar images.
        label_interpolation: ``'nearest'`` (label maps stay integer).
        include: Names of the only images to resize.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``target_shape`` or an interpolation has the wrong type.
        ValueError: When a size is neither positive nor -1, or an
            interpolation is unknown.

    Example:
        >>> import torch
        >>> from torchpatch import LabelMap, ScalarImage, Subject
        >>> subject = Subject(
        ...     t1=ScalarImage(tensor=torch.arange(16.0).reshape(1, 4, 4, 1)),
        ...     seg=LabelMap(tensor=torch.tensor([0, 0, 2, 2]).repeat(4, 1).reshape(1, 4, 4, 1)),
        ... )
        >>> out = Resize((2, -1, 1))(subject)
        >>> out.t1.shape, out.t1.spacing, out.t1.origin
        ((1, 2, 4, 1), (2.0, 1.0, 1.0), (0.5, 0.0, 0.0))
        >>> out.t1.data[0, :, :, 0].tolist(), out.seg.data[0, :, :, 0].tolist()
        ([[2.0, 3.0, 4.0, 5.0], [10.0, 11.0, 12.0, 13.0]], [[0, 0, 2, 2], [0, 0, 2, 2]])
        >>> Resize(8)(subject).t1.shape  # 2D: an int is a square
        (1, 8, 8, 1)
    """

    def __init__(
        self,
        target_shape: int | Sequence[int],
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self._is_int = isinstance(target_shape, (int, np.integer))
        self.target_shape = _parse_target_shape(target_shape)
        # Checks the interpolations now, with Resample's messages.
        resample = Resample(1.0, image_interpolation, label_interpolation)
        self.image_interpolation = resample.image_interpolation
        self.label_interpolation = resample.label_interpolation

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {
            "target_shape": self.target_shape,
            "image_interpolation": self.image_interpolation,
            "label_interpolation": self.label_interpolation,
            **super().arguments(),
        }

    def target_grid(self, image: Image) -> tuple[TypeTriplet, TypeAffine]:
        """The shape and affine ``image`` is resampled onto.

        Example:
            >>> import torch
            >>> from torchpatch import ScalarImage
            >>> Resize((2, 2, 2)).target_grid(ScalarImage(tensor=torch.zeros(1, 4, 4, 4)))[0]
            (2, 2, 2)
        """
        target = self.target_shape
        if self._is_int and image.spatial_shape[2] == 1:
            target = (target[0], target[1], 1)
        return resized_grid(image.spatial_shape, image.affine, target)

    def apply_transform(self, subject: Subject) -> Subject:
        """Resample the selected images, one :class:`Resample` per distinct target grid."""
        groups: list[tuple[TypeTriplet, TypeAffine, list[str]]] = []
        for name, image in self.get_images_dict(subject).items():
            shape, affine = self.target_grid(image)
            for group_shape, group_affine, names in groups:
                if group_shape == shape and np.allclose(group_affine, affine, rtol=0, atol=1e-9):
                    names.append(name)
                    break
            else:
                groups.append((shape, affine, [name]))
        result = subject
        for shape, affine, names in groups:
            # A voxel-less stand-in for the grid: Resample reads only its shape and affine.
            reference = ScalarImage(tensor=torch.zeros(()).expand(1, *shape), affine=affine)
            resample = Resample(reference, self.image_interpolation, self.label_interpolation, include=names)
            result = resample(result)
        return result if groups else subject.with_images({})


__all__ = ["ToCanonical", "Resize", "ToOrientation", "orientation_axes", "resized_grid"]
