"""The options of an export, checked once: :class:`ExportOptions`.

:func:`~torchpatch.export.export_patches` turns its arguments into one frozen
:class:`ExportOptions` before it looks at a subject; planning and writing read
typed fields from it, and :meth:`ExportOptions.parameters` is what the
manifest records (and what a rerun must match to reuse an export).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from ..geometry import is_number, parse_padding_mode, parse_patch_overlap, to_triplet

#: Formats ``image_format`` accepts; the first five hold 2D images only.
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii.gz", ".nii", ".npy", ".nrrd", ".mha")

#: A patch and image large enough that only the type and sign of an overlap are checked here.
_ANY_SHAPE = (2**62, 2**62, 2**62)


@dataclass(frozen=True)
class ExportOptions:
    """Every argument of :func:`~torchpatch.export.export_patches` that shapes the files it writes.

    Build it with :meth:`from_arguments`, which checks every value and type.
    Per-axis values keep the form they were given in (an int stays an int,
    so ``patch_size=16`` means ``(16, 16, 1)`` on 2D images): the grid of
    each subject is planned from them by :func:`~torchpatch.geometry.plan_grid`.

    Attributes:
        patch_size: An int or three ints.
        patch_overlap: Ints (voxels) or floats in ``[0, 1)`` (fractions of
            the patch), one or three.
        padding_mode: ``None``, a number (as a float) or a mode name.
        image_name: The image written as patches, or ``None`` for the only
            intensity image.
        label_name: The label map written as masks.
        boxes_name: The metadata key of the boxes.
        points_name: The metadata key of the points.
        heatmap_sigma: The heatmap's sigma in voxels (one or three floats).
        image_format: A suffix of :data:`IMAGE_FORMATS`, or ``None`` to
            choose by the voxels.
        min_visibility: Replaces the boxes' own.
        skip_empty: Leave out patches without labels.

    Example:
        >>> options = ExportOptions.from_arguments(16, points_name='plants', heatmap_sigma=2)
        >>> options.heatmap_sigma, options.image_format
        (2.0, None)
        >>> list(options.parameters())[:3]
        ['patch_size', 'patch_overlap', 'padding_mode']
        >>> ExportOptions.from_arguments(16, image_format='gif')
        Traceback (most recent call last):
        ...
        ValueError: image_format must be one of ['.png', '.jpg', ...] or None, got 'gif'
    """

    patch_size: int | tuple[int, ...]
    patch_overlap: int | float | tuple[int | float, ...] = 0
    padding_mode: str | float | None = None
    image_name: str | None = None
    label_name: str | None = None
    boxes_name: str | None = None
    points_name: str | None = None
    heatmap_sigma: float | tuple[float, ...] | None = None
    image_format: str | None = None
    min_visibility: float | None = None
    skip_empty: bool = False

    @classmethod
    def from_arguments(
        cls,
        patch_size: Any,
        patch_overlap: Any = 0,
        padding_mode: Any = None,
        image_name: Any = None,
        label_name: Any = None,
        boxes_name: Any = None,
        points_name: Any = None,
        heatmap_sigma: Any = None,
        image_format: Any = None,
        min_visibility: Any = None,
        skip_empty: Any = False,
    ) -> ExportOptions:
        """Check the arguments of :func:`~torchpatch.export.export_patches` and keep them in plain types.

        Raises:
            TypeError: For arguments of the wrong type.
            ValueError: For bad values, and for combinations that cannot
                work (``heatmap_sigma`` without ``points_name``,
                ``skip_empty`` with nothing that can be empty, the same
                image as patches and masks).
        """
        to_triplet(patch_size, "patch_size")
        with contextlib.suppress(ValueError):  # whether it fits depends on the image: plan_grid says, per subject
            parse_patch_overlap(patch_overlap, _ANY_SHAPE, _ANY_SHAPE)  # its type, with the one parser's words
        parse_padding_mode(padding_mode, allow_none=True)
        sigma = _parse_sigma(heatmap_sigma, points_name)
        suffix = _parse_format(image_format)
        if min_visibility is not None and (not is_number(min_visibility) or not 0 <= min_visibility <= 1):
            raise ValueError(f"min_visibility must be None or a number in [0, 1], got {min_visibility!r}")
        if not isinstance(skip_empty, bool):
            raise TypeError(f"skip_empty must be a bool, got {type(skip_empty).__name__} {skip_empty!r}")
        for key, value in (
            ("image_name", image_name),
            ("label_name", label_name),
            ("boxes_name", boxes_name),
            ("points_name", points_name),
        ):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a str or None, got {type(value).__name__} {value!r}")
        if skip_empty and not (label_name or boxes_name or points_name):
            raise ValueError("skip_empty needs something that can be empty: label_name, boxes_name or points_name")
        if label_name is not None and label_name == image_name:
            raise ValueError(f"label_name and image_name are both {label_name!r}; the mask must be another image")
        return cls(
            patch_size=_plain(patch_size),
            patch_overlap=_plain(patch_overlap),
            padding_mode=float(padding_mode) if is_number(padding_mode) else padding_mode,
            image_name=image_name,
            label_name=label_name,
            boxes_name=boxes_name,
            points_name=points_name,
            heatmap_sigma=sigma,
            image_format=suffix,
            min_visibility=None if min_visibility is None else float(min_visibility),
            skip_empty=skip_empty,
        )

    def parameters(self) -> dict[str, Any]:
        """The options as the manifest records them (JSON-ready, in argument order)."""
        return {
            "patch_size": _as_json(self.patch_size),
            "patch_overlap": _as_json(self.patch_overlap),
            "padding_mode": self.padding_mode,
            "image_name": self.image_name,
            "label_name": self.label_name,
            "boxes_name": self.boxes_name,
            "points_name": self.points_name,
            "heatmap_sigma": _as_json(self.heatmap_sigma),
            "image_format": self.image_format,
            "min_visibility": self.min_visibility,
            "skip_empty": self.skip_empty,
        }


def _parse_sigma(heatmap_sigma: Any, points_name: Any) -> float | tuple[float, ...] | None:
    if heatmap_sigma is None:
        return None
    values = [heatmap_sigma] if is_number(heatmap_sigma) else heatmap_sigma
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) not in (1, 3):
        raise TypeError(f"heatmap_sigma must be None, a number or three numbers, got {heatmap_sigma!r}")
    if not all(is_number(v) and np.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"heatmap_sigma must be finite and >= 0 (voxels), got {heatmap_sigma!r}")
    if points_name is None:
        raise ValueError("heatmap_sigma draws the heatmap of points: pass points_name too")
    return float(values[0]) if is_number(heatmap_sigma) else tuple(float(v) for v in values)


def _parse_format(image_format: Any) -> str | None:
    if image_format is None:
        return None
    if not isinstance(image_format, str):
        raise TypeError(f"image_format must be a str such as '.png' or None, got {type(image_format).__name__}")
    suffix = "." + image_format.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {list(IMAGE_FORMATS)} or None, got {image_format!r}")
    return suffix


def _plain(value: Any) -> Any:
    """An int or float (numpy scalars included) as a Python number; a sequence as a tuple of them."""
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    return tuple(int(v) if isinstance(v, Integral) else float(v) for v in value)


def _as_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


__all__ = ["IMAGE_FORMATS", "ExportOptions"]
