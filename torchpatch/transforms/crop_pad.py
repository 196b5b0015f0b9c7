"""Changing the field of view: :class:`Pad`, :class:`Crop` and :class:`CropOrPad`.

Bounds are given per side, ``(i_ini, i_fin, j_ini, j_fin, k_ini, k_fin)``; one int means all
six (``(p, p, p, p, 0, 0)`` on a depth-one 2D image, whose third axis stays one voxel deep) and
three ints mean both sides of each axis. The affine follows the voxels, so every voxel keeps its
world position: padding moves the origin back by ``ini`` voxels, cropping forward.

Annotations (boxes, points: any :class:`~torchpatch.subject.RegionAware` metadata) follow the
voxels: shifted, and clipped by crops, with ``crop_to_region`` on the images' shared grid. A subject
holding annotations is transformed whole (no ``include``/``exclude`` leaving images behind).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

from ..annotations import annotation_grid, crop_annotations, region_aware_metadata
from ..constants import LABEL
from ..geometry import GEOMETRIC_MODES, is_number, parse_padding_mode, shift_affine
from ..image import Image
from ..patches import fill_fits
from ..subject import Subject
from ..typing import TypeTriplet
from .base import Transform, rebuild_image
from .crop_pad_plan import (
    UNITS,
    CropMembers,
    PaddingModes,
    TypeBounds,
    bounding_box,
    box_shape,
    crop_and_pad,
    parse_target_shape,
    random_cropping,
    target_voxels,
)
from .records import add_history, transform_record


def _parse_bounds(value: Any, argument: str) -> int | TypeBounds:
    """An int (kept, as its meaning depends on the image) or six ints."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{argument} must be non-negative, got {value}")
        return int(value)
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        items = list(value)
        if not all(isinstance(item, Integral) and not isinstance(item, bool) for item in items):
            raise TypeError(f"{argument} must hold ints, got {value!r}")
        if len(items) == 3:
            items = [items[0], items[0], items[1], items[1], items[2], items[2]]
        if len(items) != 6:
            raise ValueError(
                f"{argument} must be an int, three ints (per axis) or six ints "
                f"(i_ini, i_fin, j_ini, j_fin, k_ini, k_fin), got {len(items)} values: {value!r}"
            )
        if min(items) < 0:
            raise ValueError(f"{argument} must be non-negative, got {value!r}")
        return (int(items[0]), int(items[1]), int(items[2]), int(items[3]), int(items[4]), int(items[5]))
    raise TypeError(f"{argument} must be an int, three ints or six ints, got {type(value).__name__} {value!r}")


def _bounds_for(bounds: int | TypeBounds, spatial_shape: Sequence[int]) -> TypeBounds:
    if isinstance(bounds, int):
        depth = 0 if spatial_shape[2] == 1 else bounds
        return (bounds, bounds, bounds, bounds, depth, depth)
    return bounds


def _with_annotations(subject: Subject, result: Subject, transform: Transform, region: Any) -> Subject:
    """``result`` with the annotations of ``subject`` cropped to ``region(shape)``.

    ``region`` maps the spatial shape of the subject's grid to the box
    ``(index_ini, index_fin)`` the new grid covers in the old one.
    """
    annotations = region_aware_metadata(subject)
    if not annotations:
        return result
    names = list(transform.get_images_dict(subject))
    shape, _ = annotation_grid(subject, names, repr(transform), annotations)
    index_ini, index_fin = region(shape)
    for name, value in crop_annotations(annotations, index_ini, index_fin).items():
        result[name] = value
    return result


def pad_image(image: Image, bounds: TypeBounds, mode: str, fill: float, name: str, subject: Subject) -> Image:
    """A new image padded by ``bounds`` voxels, its origin moved back by the ``ini`` ones.

    Label maps are padded with 0 unless ``mode`` copies voxels (edge,
    reflect, symmetric, wrap): a fill value or a statistic is not a class.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> image = ScalarImage(tensor=torch.ones(1, 2, 2, 1))
        >>> padded = pad_image(image, (1, 0, 0, 0, 0, 0), 'constant', 5.0, 'a', Subject(a=image))
        >>> padded.data[0, :, 0, 0].tolist(), padded.origin
        ([5.0, 1.0, 1.0], (-1.0, 0.0, 0.0))
    """
    if not any(bounds):
        return image
    if image.type == LABEL and mode not in GEOMETRIC_MODES:
        mode, fill = "constant", 0.0
    data = image.data
    ini = (bounds[0], bounds[2], bounds[4])
    shape = tuple(int(s) for s in data.shape)
    new_shape = (shape[0], *(shape[1 + a] + bounds[2 * a] + bounds[2 * a + 1] for a in range(3)))
    if mode == "constant":
        _check_fill(fill, data.dtype, name, subject)
        padded = torch.full(new_shape, fill, dtype=data.dtype, device=data.device)
        padded[:, ini[0] : ini[0] + shape[1], ini[1] : ini[1] + shape[2], ini[2] : ini[2] + shape[3]] = data
    else:
        widths = ((0, 0), (bounds[0], bounds[1]), (bounds[2], bounds[3]), (bounds[4], bounds[5]))
        source = data.detach().cpu()
        if source.dtype in (torch.float16, torch.bfloat16):
            source = source.to(torch.float32)
        array = np.pad(source.numpy(), widths, mode=mode)  # type: ignore[call-overload]
        padded = torch.from_numpy(array).to(device=data.device, dtype=data.dtype)
    return rebuild_image(image, padded, shift_affine(image.affine, tuple(-i for i in ini)))


def _check_fill(fill: float, dtype: torch.dtype, name: str, subject: Subject) -> None:
    if not fill_fits(fill, dtype):
        info = torch.iinfo(dtype)
        raise ValueError(
            f"padding value {fill:g} does not fit the {dtype} voxels of image {name!r} in subject "
            f"{subject.name!r} (range {info.min} to {info.max}); cast the image or choose another padding_mode"
        )


def crop_image(image: Image, bounds: TypeBounds, name: str, subject: Subject) -> Image:
    """A new image without ``bounds`` voxels on each side, its origin moved forward.

    Raises:
        ValueError: When nothing would be left on an axis.

    Example:
        >>> from torchpatch import ScalarImage, Subject
        >>> image = ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1))
        >>> cropped = crop_image(image, (1, 2, 0, 0, 0, 0), 'a', Subject(a=image))
        >>> cropped.data.flatten().tolist(), cropped.origin
        ([1.0], (1.0, 0.0, 0.0))
    """
    if not any(bounds):
        return image
    shape = image.spatial_shape
    ini = (bounds[0], bounds[2], bounds[4])
    fin = (shape[0] - bounds[1], shape[1] - bounds[3], shape[2] - bounds[5])
    if any(ini[a] >= fin[a] for a in range(3)):
        raise ValueError(
            f"cropping {bounds} (i_ini, i_fin, j_ini, j_fin, k_ini, k_fin) leaves nothing of image {name!r} "
            f"of spatial shape {shape} in subject {subject.name!r}"
        )
    return image.crop(ini, fin)


class Pad(PaddingModes, Transform):
    """Add voxels around each image, keeping world positions.

    Args:
        padding: One int (every side; on a depth-one 2D image, the four
            sides of ``I`` and ``J`` only), three ints (both sides of ``I``,
            ``J``, ``K``) or six ints ``(i_ini, i_fin, j_ini, j_fin, k_ini,
            k_fin)``.
        padding_mode: A number (constant fill), or a :func:`numpy.pad` mode:
            ``'constant'`` (0), ``'edge'``, ``'reflect'``, ``'symmetric'``,
            ``'wrap'``, ``'mean'``, ``'median'``, ``'minimum'``,
            ``'maximum'``; ``'replicate'`` and ``'circular'`` mean ``'edge'``
            and ``'wrap'``. Label maps are padded with 0 unless the mode
            copies voxels (edge, reflect, symmetric, wrap).
        include: Names of the only images to pad.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``keep``, ``copy``...).

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When a padding is negative or a mode is unknown; when
            called, if a fill value does not fit an integer image.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> out = Pad((1, 0, 0, 0, 0, 0), padding_mode='edge')(Subject(a=ScalarImage(tensor=torch.ones(1, 2, 2, 2))))
        >>> out.a.spatial_shape, out.a.origin, float(out.a.data.min())
        ((3, 2, 2), (-1.0, 0.0, 0.0), 1.0)
    """

    def __init__(
        self,
        padding: int | Sequence[int],
        padding_mode: float | str = 0,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.padding = _parse_bounds(padding, "padding")
        self.padding_mode = padding_mode
        self._mode, self._fill = parse_padding_mode(padding_mode)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"padding": self.padding, "padding_mode": self.padding_mode, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Pad every selected image, and shift the annotations."""

        def region(shape: TypeTriplet) -> tuple[TypeTriplet, TypeTriplet]:
            b = _bounds_for(self.padding, shape)
            return (-b[0], -b[2], -b[4]), (shape[0] + b[1], shape[1] + b[3], shape[2] + b[5])

        return _with_annotations(subject, super().apply_transform(subject), self, region)

    def is_invertible(self) -> bool:
        """True: :meth:`inverse` crops what was padded."""
        return True

    def inverse(self) -> Crop:
        """The :class:`Crop` of the same bounds and images (TorchIO's)."""
        return Crop(self.padding, self.include, self.exclude)

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Pad one image."""
        bounds = _bounds_for(self.padding, image.spatial_shape)
        return pad_image(image, bounds, self._mode, self._fill, name, subject)


class Crop(CropMembers, Transform):
    """Remove voxels from the sides of each image, keeping world positions.

    Files that support region reads (``.nii``, ``.npy``, raw NRRD and
    MetaImage) not yet loaded are read for the kept box only.

    Args:
        cropping: As ``padding`` in :class:`Pad`: one int, three ints or
            six ints ``(i_ini, i_fin, j_ini, j_fin, k_ini, k_fin)``.
        include: Names of the only images to crop.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``keep``, ``copy``...).

    Raises:
        TypeError: When ``cropping`` is not ints.
        ValueError: When ``cropping`` is negative; when called, if it leaves
            nothing of an image.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> out = Crop((1, 0, 0, 1, 0, 0))(Subject(a=ScalarImage(tensor=torch.zeros(1, 4, 4, 1))))
        >>> out.a.spatial_shape, out.a.origin
        ((3, 3, 1), (1.0, 0.0, 0.0))
    """

    def __init__(
        self,
        cropping: int | Sequence[int],
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.cropping = _parse_bounds(cropping, "cropping")

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"cropping": self.cropping, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Crop every selected image, and shift and clip the annotations."""

        def region(shape: TypeTriplet) -> tuple[TypeTriplet, TypeTriplet]:
            b = _bounds_for(self.cropping, shape)
            return (b[0], b[2], b[4]), (shape[0] - b[1], shape[1] - b[3], shape[2] - b[5])

        return _with_annotations(subject, super().apply_transform(subject), self, region)

    def is_invertible(self) -> bool:
        """True: :meth:`inverse` pads back what was cropped (with zeros)."""
        return True

    def inverse(self) -> Pad:
        """The :class:`Pad` of the same bounds and images (TorchIO's)."""
        return Pad(self.cropping, include=self.include, exclude=self.exclude)

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Crop one image."""
        return crop_image(image, _bounds_for(self.cropping, image.spatial_shape), name, subject)


class CropOrPad(Transform):
    """Crop and/or pad each image to ``target_shape``, keeping world positions.

    Without a mask the output window is centred on the image. When the
    difference on an axis is odd, the extra voxel is cropped or padded on the
    ``ini`` side (as TorchIO does)::

        crop 5 -> 2:   x [x x] x x      2 voxels off the start, 1 off the end
        pad  2 -> 5:   0 0 [x x] 0      2 voxels before, 1 after

    With ``mask_name``, the window is centred on the bounding box of the
    non-zero voxels of that image (any channel), padding wherever the window
    leaves the image. An empty mask falls back to centring on the image.

    Args:
        target_shape: One int (a cube; ``(t, t, 1)`` on a depth-one 2D
            image) or three values, where ``None`` keeps the size of that
            axis. ``None`` (with ``mask_name``): the shape of the bounding
            box of the mask, so the images are cropped to that box.
        padding_mode: As in :class:`Pad`.
        mask_name: Name of an image of the subject to centre on.
        labels: The values of the mask that count as foreground (default:
            every non-zero value); needs ``mask_name``.
        only_crop: Crop only: axes smaller than the target keep their size.
        only_pad: Pad only: axes larger than the target keep their size.
        location: ``'center'``, or ``'random'``: on each axis to crop, the
            window starts at a position drawn uniformly with
            :func:`torch.randint` (TorchIO's draws, so ``torch.manual_seed``
            reproduces it); padding stays centred. Not with ``mask_name``.
        units: What ``target_shape`` counts: ``'voxels'``, or lengths in
            ``'mm'`` or ``'cm'`` (numbers, rounded to voxels with each
            image's spacing).
        include: Names of the only images to crop or pad.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``keep``, ``copy``...).

    Raises:
        TypeError: When an argument has the wrong type, or ``target_shape``
            is None without ``mask_name``.
        ValueError: When a target size is not positive, ``labels`` come without
            ``mask_name``, ``only_crop`` and ``only_pad`` are both set,
            ``location`` or ``units`` is unknown, or ``location='random'``
            comes with ``mask_name``; when called, if an image does not share
            the spatial shape of the mask.
        KeyError: When ``mask_name`` is not an image of the subject.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(a=ScalarImage(tensor=torch.arange(5.0).reshape(1, 5, 1, 1)))
        >>> CropOrPad((2, None, None))(subject).a.data.flatten().tolist()
        [2.0, 3.0]
        >>> CropOrPad(8)(Subject(a=ScalarImage(tensor=torch.zeros(1, 5, 9, 1)))).a.spatial_shape
        (8, 8, 1)
        >>> CropOrPad(8, only_crop=True)(Subject(a=ScalarImage(tensor=torch.zeros(1, 5, 9, 1)))).a.spatial_shape
        (5, 8, 1)
        >>> CropOrPad((10.0, 10.0, None), units='mm')(Subject(a=ScalarImage(tensor=torch.zeros(1, 9, 9, 1),
        ...     affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])).numpy()))).a.spatial_shape
        (5, 5, 1)
        >>> from torchpatch import LabelMap
        >>> mask = torch.zeros(1, 6, 6, 1, dtype=torch.int64); mask[0, 1:3, 2:5] = 2; mask[0, 5, 5] = 1
        >>> out = CropOrPad(mask_name='m', labels=[2])(Subject(m=LabelMap(tensor=mask)))
        >>> out.m.spatial_shape, int(out.m.data.min())
        ((2, 3, 1), 2)
    """

    records_itself = True  # as a Crop and a Pad

    def __init__(
        self,
        target_shape: int | float | Sequence[int | float | None] | None = None,
        padding_mode: float | str = 0,
        mask_name: str | None = None,
        labels: Sequence[int] | None = None,
        only_crop: bool = False,
        only_pad: bool = False,
        location: str = "center",
        units: str = "voxels",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if units not in UNITS:
            raise ValueError(f"units must be one of {sorted(UNITS)}, got {units!r}")
        self.units = units
        if target_shape is None and mask_name is None:
            raise TypeError(
                "target_shape must be an int or three ints, got NoneType None without mask_name "
                "(target_shape=None means the bounding box of the mask mask_name)"
            )
        self.target_shape = None if target_shape is None else parse_target_shape(target_shape, units)
        self.padding_mode = padding_mode
        self._mode, self._fill = parse_padding_mode(padding_mode)
        if mask_name is not None and not isinstance(mask_name, str):
            raise TypeError(f"mask_name must be None or an image name, got {type(mask_name).__name__} {mask_name!r}")
        self.mask_name = mask_name
        if labels is not None and mask_name is None:
            raise ValueError(f"labels select voxels of the mask: give mask_name too, got labels={labels!r}")
        if labels is not None and (
            isinstance(labels, str) or not isinstance(labels, Sequence) or not all(is_number(x) for x in labels)
        ):
            raise TypeError(f"labels must be None or a sequence of label values, got {labels!r}")
        self.labels = None if labels is None else list(labels)
        if only_crop and only_pad:
            raise ValueError("only_crop and only_pad cannot both be True")
        self.only_crop, self.only_pad = bool(only_crop), bool(only_pad)
        if location not in ("center", "random"):
            raise ValueError(f"location must be 'center' or 'random', got {location!r}")
        if location == "random" and mask_name is not None:
            raise ValueError(f"location='random' cannot be combined with mask_name (got {mask_name!r})")
        self.location = location

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {"target_shape": self.target_shape, "padding_mode": self.padding_mode}
        optional = {
            "mask_name": (self.mask_name, None),
            "labels": (self.labels, None),
            "only_crop": (self.only_crop, False),
            "only_pad": (self.only_pad, False),
            "location": (self.location, "center"),
            "units": (self.units, "voxels"),
        }
        arguments.update({key: value for key, (value, default) in optional.items() if value != default})
        return {**arguments, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Crop and pad every selected image around the centre or the mask."""
        box, mask_shape = None, None
        if self.mask_name is not None:
            mask = subject.get_image(self.mask_name, "CropOrPad mask_name")
            mask_shape = mask.spatial_shape
            data = mask.data
            if self.labels is not None:
                data = torch.isin(data, torch.tensor(self.labels, dtype=data.dtype))
            box = bounding_box(data)
        plans: dict[tuple[TypeTriplet, tuple[float, ...]], tuple[TypeBounds, TypeBounds]] = {}

        def plan(image: Image) -> tuple[TypeBounds, TypeBounds]:
            # One plan per grid: random windows are drawn once for images sharing it.
            key = (image.spatial_shape, tuple(image.spacing))
            if key not in plans:
                plans[key] = self._plan(image.spatial_shape, tuple(image.spacing), box)
            return plans[key]

        results: dict[str, Image] = {}
        groups: dict[tuple[TypeBounds, TypeBounds], list[str]] = {}
        for name, image in self.get_images_dict(subject).items():
            shape = image.spatial_shape
            if mask_shape is not None and shape != mask_shape:
                raise ValueError(
                    f"image {name!r} of subject {subject.name!r} has spatial shape {shape} but the mask "
                    f"{self.mask_name!r} has {mask_shape}; CropOrPad with mask_name needs one grid"
                )
            cropping, padding = plan(image)
            groups.setdefault((cropping, padding), []).append(name)
            cropped = crop_image(image, cropping, name, subject)
            results[name] = pad_image(cropped, padding, self._mode, self._fill, name, subject)
        spacing = tuple(subject.get_first_image().spacing)
        subject = add_history(subject, *self._records(groups))

        def region(shape: TypeTriplet) -> tuple[TypeTriplet, TypeTriplet]:
            cropping, padding = plans.get((shape, spacing)) or self._plan(shape, spacing, box)
            ini = [cropping[2 * a] - padding[2 * a] for a in range(3)]
            fin = [shape[a] - cropping[2 * a + 1] + padding[2 * a + 1] for a in range(3)]
            return (ini[0], ini[1], ini[2]), (fin[0], fin[1], fin[2])

        return _with_annotations(subject, subject.with_images(results), self, region)

    def _records(self, groups: dict[tuple[TypeBounds, TypeBounds], list[str]]) -> list[dict[str, Any]]:
        """What ran, as TorchIO records it: a Pad and a Crop (those that change something) per grid."""
        records = []
        for (cropping, padding), names in groups.items():
            include, exclude = (self.include, self.exclude) if len(groups) == 1 else (names, None)
            if any(padding):  # TorchIO's order; a side is cropped or padded, never both, so they commute
                records.append(transform_record(Pad(padding, self.padding_mode, include, exclude)))
            if any(cropping):
                records.append(transform_record(Crop(cropping, include, exclude)))
        return records

    def _plan(
        self, shape: TypeTriplet, spacing: tuple[float, ...], box: tuple[TypeTriplet, TypeTriplet] | None
    ) -> tuple[TypeBounds, TypeBounds]:
        """Cropping and padding for an image of ``shape`` and ``spacing`` (``only_crop``/``only_pad`` applied)."""
        if self.target_shape is None:
            target = shape if box is None else box_shape(box)
        else:
            target = target_voxels(self.target_shape, self.units, shape, spacing)
        cropping, padding = crop_and_pad(shape, target, box)
        if self.location == "random":
            cropping = random_cropping(cropping)
        if self.only_crop:
            padding = (0, 0, 0, 0, 0, 0)
        if self.only_pad:
            cropping = (0, 0, 0, 0, 0, 0)
        return cropping, padding


__all__ = ["Crop", "CropOrPad", "Pad", "crop_image", "pad_image"]
