"""More label map transforms with TorchIO 1.x names: :class:`RemoveLabels` and :class:`Contour`.

=========================  ======================================================
transform                  what it does
=========================  ======================================================
:class:`RemoveLabels`      set some labels to the background label
:class:`Contour`           keep the border voxels of the label-1 regions
=========================  ======================================================

As the other label transforms (:mod:`~torchpatch.transforms.label`), they
change :class:`~torchpatch.image.LabelMap` images only.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, NoReturn

import torch

from ..image import Image
from ..subject import Subject
from .base import rebuild_image
from .label import LabelTransform, RemapLabels
from .masking import TypeMaskingMethod


class RemoveLabels(RemapLabels):
    """Set the given labels to ``background_label``, as TorchIO's ``RemoveLabels``.

    Args:
        labels: The labels to remove.
        background_label: What they become (usually 0).
        masking_method: Where to remove them, as in :class:`~torchpatch.transforms.RemapLabels`.
        include: Names of the only label maps to change.
        exclude: Names of label maps to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``labels`` is not a sequence of numbers, or
            ``background_label`` is not a number.

    Example:
        >>> from torchpatch import LabelMap
        >>> seg = LabelMap(tensor=torch.tensor([0, 1, 2, 3]).reshape(1, 1, 1, -1))
        >>> RemoveLabels([1, 3])(Subject(seg=seg)).seg.data.flatten().tolist()
        [0, 0, 2, 0]
    """

    def __init__(
        self,
        labels: Sequence[int],
        background_label: int = 0,
        masking_method: TypeMaskingMethod = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
            raise TypeError(f"labels must be a sequence of labels to remove, got {labels!r}")
        if isinstance(background_label, bool) or not isinstance(background_label, (Integral, float)):
            raise TypeError(f"background_label must be a number, got {background_label!r}")
        super().__init__(dict.fromkeys(labels, background_label), masking_method, include, exclude, **kwargs)
        self.labels = list(labels)
        self.background_label = background_label

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {"labels": self.labels, "background_label": self.background_label}
        if self.masking_method is not None:
            arguments["masking_method"] = self.masking_method
        if self.include is not None:
            arguments["include"] = list(self.include)
        if self.exclude is not None:
            arguments["exclude"] = list(self.exclude)
        return arguments

    def is_invertible(self) -> bool:
        """False: removed labels are lost."""
        return False

    def inverse(self) -> NoReturn:
        """Removed labels are lost: there is no inverse (TorchIO's is not invertible either).

        Raises:
            ValueError: Always.

        Example:
            >>> RemoveLabels([1]).inverse()
            Traceback (most recent call last):
            ...
            ValueError: RemoveLabels(labels=[1], background_label=0) cannot be inverted: the removed labels are lost
        """
        raise ValueError(f"{self!r} cannot be inverted: the removed labels are lost")


class Contour(LabelTransform):
    """Keep only the border of the regions of label 1, as TorchIO's ``Contour`` (SimpleITK's ``BinaryContour``).

    A voxel of label 1 stays 1 when one of its face neighbours inside the
    image (6 in 3D, 4 in 2D) is not 1, and becomes 0 otherwise; voxels of
    other labels keep their value. The image border does not count as
    outside: a voxel is not kept for touching the edge of the image. The
    dtype is kept.

    Args:
        include: Names of the only label maps to change.
        exclude: Names of label maps to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        ValueError: When called, if a label map has several channels.

    Example:
        >>> from torchpatch import LabelMap
        >>> seg = torch.zeros(1, 5, 5, 1, dtype=torch.int64)
        >>> seg[0, 1:4, 1:4] = 1
        >>> Contour()(Subject(seg=LabelMap(tensor=seg))).seg.data[0, :, :, 0].tolist()
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    """

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """The contour of one label map."""
        data = image.data
        if data.shape[0] != 1:
            raise ValueError(
                f"Contour needs label maps of one channel, but image {name!r} of subject {subject.name!r} "
                f"has {data.shape[0]} (shape {tuple(data.shape)})"
            )
        foreground = data[0] == 1
        # Outside the image counts as foreground: the border opens no region.
        padded = torch.nn.functional.pad(foreground[None].float(), (1, 1, 1, 1, 1, 1), value=1.0)[0].bool()
        interior = foreground.clone()
        size_i, size_j, size_k = foreground.shape
        for di, dj, dk in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)):
            interior &= padded[di : di + size_i, dj : dj + size_j, dk : dk + size_k]
        result = data.clone()
        result[0][interior] = 0
        return rebuild_image(image, result)


__all__ = ["Contour", "RemoveLabels"]
