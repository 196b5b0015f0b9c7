"""Metadata and layout transforms with TorchIO 1.x names: :class:`To`, :class:`Transpose`, :class:`ToReferenceSpace`.

=============================  ==========================================================
transform                      what it does
=============================  ==========================================================
:class:`To`                    ``tensor.to(target)`` on the intensity images (dtype, device)
:class:`Transpose`             swap the first and last voxel axes, keeping world positions
:class:`ToReferenceSpace`      give a network's output the grid of the image it came from
=============================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..geometry import spacing_from_affine
from ..image import Image
from ..subject import Subject
from ..typing import TypeAffine, TypeTriplet
from .base import Transform, rebuild_image
from .orientation import ToOrientation


class To(Transform):
    """Call ``tensor.to(target, **to_kwargs)`` on the voxels of each intensity image, as TorchIO's ``To``.

    Label maps are left as they are (TorchIO's ``To`` is an intensity
    transform). Values are converted as :meth:`torch.Tensor.to` converts
    them (a cast to an integer dtype truncates).

    Args:
        target: A :class:`torch.dtype`, a :class:`torch.device` or a device
            string such as ``'cuda'``.
        to_kwargs: More keyword arguments of :meth:`torch.Tensor.to`
            (``non_blocking``, ``copy``...).
        include: Names of the only images to convert.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``target`` is none of these, or ``to_kwargs`` is not a dict.

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.tensor([0.0, 2.7]).reshape(1, 2, 1, 1)))
        >>> out = To(torch.uint8)(subject).t1
        >>> out.dtype, out.data.flatten().tolist()
        (torch.uint8, [0, 2])
    """

    intensity_only = True

    def __init__(
        self,
        target: str | torch.dtype | torch.device,
        to_kwargs: dict[str, Any] | None = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if not isinstance(target, (str, torch.dtype, torch.device)):
            raise TypeError(f"target must be a torch.dtype, a torch.device or a device string, got {target!r}")
        if to_kwargs is not None and not isinstance(to_kwargs, dict):
            raise TypeError(f"to_kwargs must be a dict of keyword arguments of Tensor.to, got {to_kwargs!r}")
        self.target = target
        self.to_kwargs = {} if to_kwargs is None else dict(to_kwargs)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"target": self.target, "to_kwargs": self.to_kwargs, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Convert one image."""
        return rebuild_image(image, image.data.to(self.target, **self.to_kwargs))


class Transpose(Transform):
    """Swap the first and last voxel axes (``I`` and ``K``), as TorchIO's ``Transpose``.

    The orientation code is reversed (``'PIR'`` becomes ``'RIP'``) with
    :class:`~torchpatch.transforms.ToOrientation`: the affine changes with
    the voxels, so every voxel keeps its world position. It is its own
    inverse. Boxes and points follow when all the selected images share one
    orientation.

    Args:
        include: Names of the only images to transpose.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Example:
        >>> from torchpatch import ScalarImage
        >>> image = ScalarImage(tensor=torch.zeros(1, 4, 3, 2))
        >>> out = Transpose()(Subject(t1=image)).t1
        >>> out.shape, out.orientation
        ((1, 2, 3, 4), ('S', 'A', 'R'))
    """

    def apply_transform(self, subject: Subject) -> Subject:
        """Transpose the selected images, grouped by orientation."""
        groups: dict[str, list[str]] = {}
        for name, image in self.get_images_dict(subject).items():
            groups.setdefault("".join(image.orientation), []).append(name)
        for orientation, names in groups.items():
            subject = ToOrientation(orientation[::-1], include=names)(subject)
        return subject

    def is_invertible(self) -> bool:
        """True: transposing twice gives the input back."""
        return True

    def inverse(self) -> Transpose:
        """Itself: transposing twice gives the input back.

        Example:
            >>> t = Transpose(); t.inverse() is t
            True
        """
        return self


def reference_grid(reference: Image, spatial_shape: TypeTriplet) -> TypeAffine:
    """The affine that spreads ``spatial_shape`` voxels over the field of view of ``reference``, as TorchIO does.

    The spacing grows by the downsampling factor ``reference shape / shape``
    along each axis, the axis directions are kept and the centre of the grid
    stays the centre of the reference's (TorchIO takes the grid of
    ``Resample`` to that spacing, whose size is rounded down).

    Example:
        >>> from torchpatch import ScalarImage
        >>> reference_grid(ScalarImage(tensor=torch.zeros(1, 8, 8, 4)), (2, 2, 1))[:3, 3].tolist()
        [1.5, 1.5, 1.5]
    """
    affine = np.asarray(reference.affine, dtype=np.float64)
    old_shape = np.asarray(reference.spatial_shape, dtype=np.float64)
    old_spacing = np.asarray(spacing_from_affine(affine), dtype=np.float64)
    new_spacing = old_spacing * old_shape / np.asarray(spatial_shape, dtype=np.float64)
    direction = affine[:3, :3] / old_spacing
    new_size = np.floor(old_shape * old_spacing / new_spacing)
    new_size[old_shape == 1] = 1
    centre = affine[:3, :3] @ ((old_shape - 1) / 2) + affine[:3, 3]
    result = np.eye(4)
    result[:3, :3] = direction * new_spacing
    result[:3, 3] = centre - direction @ ((new_size - 1) / 2 * new_spacing)
    return result


class ToReferenceSpace(Transform):
    """Give images the field of view of ``reference``, as TorchIO's ``ToReferenceSpace``.

    Meant for a network's output (an embedding or a coarse segmentation)
    that lost the metadata of its input: the voxels are kept and the affine
    is set so that they cover the reference's field of view, with spacings
    multiplied by ``reference shape / output shape``. Boxes and points are
    left as they are.

    Args:
        reference: The image whose space the outputs are in.
        include: Names of the only images to change.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``reference`` is not an :class:`~torchpatch.image.Image`.

    Example:
        >>> from torchpatch import ScalarImage
        >>> ct = ScalarImage(tensor=torch.zeros(1, 8, 8, 8))
        >>> embedding = ScalarImage(tensor=torch.rand(16, 2, 2, 2))
        >>> ToReferenceSpace(ct)(embedding).spacing
        (4.0, 4.0, 4.0)
    """

    def __init__(
        self,
        reference: Image,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if not isinstance(reference, Image):
            raise TypeError(f"reference must be a torchpatch Image, got {type(reference).__name__}")
        self.reference = reference

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"reference": self.reference, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Set the affine of one image."""
        return rebuild_image(image, image.data, reference_grid(self.reference, image.spatial_shape))

    @staticmethod
    def from_tensor(tensor: torch.Tensor, reference: Image) -> Image:
        """An image of the class of ``reference`` holding ``tensor`` (``(C, I, J, K)``) in its space.

        Example:
            >>> from torchpatch import LabelMap
            >>> seg = LabelMap(tensor=torch.zeros(1, 4, 4, 2))
            >>> out = ToReferenceSpace.from_tensor(torch.zeros(1, 2, 2, 1), seg)
            >>> type(out).__name__, out.spacing
            ('LabelMap', (2.0, 2.0, 2.0))
        """
        if not isinstance(reference, Image):
            raise TypeError(f"reference must be a torchpatch Image, got {type(reference).__name__}")
        spatial_shape = (int(tensor.shape[-3]), int(tensor.shape[-2]), int(tensor.shape[-1]))
        return type(reference)(tensor=tensor, affine=reference_grid(reference, spatial_shape))


__all__ = ["To", "ToReferenceSpace", "Transpose", "reference_grid"]
