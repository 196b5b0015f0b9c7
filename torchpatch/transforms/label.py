"""Transforms of label maps, with TorchIO 1.x names and meaning.

=================================  =====================================================
transform                          what it does
=================================  =====================================================
:class:`OneHot`                    one channel of class indices -> one channel per class
:class:`RemapLabels`               replace label values by others (all at once)
:class:`SequentialLabels`          relabel the values present as ``0, 1, 2, ...``
:class:`KeepLargestComponent`      keep the largest connected foreground region
=================================  =====================================================

They apply to :class:`~torchpatch.image.LabelMap` images only: scalar images
selected by ``include`` (or left by ``exclude``) pass through unchanged, as
in TorchIO. Voxels never move, so boxes and points are untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..constants import LABEL
from ..image import Image
from ..subject import Subject
from .base import Transform, rebuild_image
from .masking import TypeMaskingMethod, check_masking_method, get_mask
from .records import add_history, transform_record


class LabelTransform(Transform):
    """Base of the transforms that change label maps only (scalar images pass through).

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> s = Subject(a=ScalarImage(tensor=torch.zeros(1, 2, 2, 1)), b=LabelMap(tensor=torch.zeros(1, 2, 2, 1)))
        >>> list(LabelTransform().get_images_dict(s))
        ['b']
    """

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        """The selected images of ``subject`` that are label maps."""
        images = subject.get_images_dict(False, self.include, self.exclude)
        return {name: image for name, image in images.items() if image.type == LABEL}


def _single_channel(image: Image, name: str, subject: Subject, transform: str) -> torch.Tensor:
    if image.num_channels != 1:
        raise ValueError(
            f"{transform} needs label maps of one channel, but image {name!r} of subject {subject.name!r} "
            f"has {image.num_channels} (shape {image.shape})"
        )
    return image.data


class OneHot(LabelTransform):
    """One channel of class indices becomes one channel per class (0 or 1).

    Channel ``c`` of the output is 1 where the input equals ``c``; the dtype
    of the input is kept.

    Args:
        num_classes: Number of output channels; ``-1`` (or ``None``) means
            one more than the largest label, as
            :func:`torch.nn.functional.one_hot`.
        include: Names of the only label maps to encode.
        exclude: Names of label maps to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``num_classes`` is not an int.
        ValueError: When ``num_classes`` is 0 or below -1; when called, if a
            label map has several channels, negative labels or labels not
            below ``num_classes``.

    Example:
        >>> from torchpatch import LabelMap
        >>> subject = Subject(seg=LabelMap(tensor=torch.tensor([0, 2, 1]).reshape(1, 3, 1, 1)))
        >>> OneHot()(subject).seg.data[:, :, 0, 0].tolist()
        [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    """

    def __init__(
        self,
        num_classes: int | None = -1,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        value = -1 if num_classes is None else num_classes
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f"num_classes must be an int (-1: as many as needed), got {value!r}")
        if value == 0 or value < -1:
            raise ValueError(f"num_classes must be positive or -1 (as many as needed), got {value}")
        self.num_classes: int = int(value)
        #: Whether this decodes instead (TorchIO's attribute): each voxel's label is its largest channel.
        self.invert_transform: bool = False

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        inverted = {"invert_transform": True} if self.invert_transform else {}
        return {"num_classes": self.num_classes, **inverted, **super().arguments()}

    def is_invertible(self) -> bool:
        """True, as in TorchIO: :meth:`inverse` decodes one channel per class back into labels."""
        return True

    def inverse(self) -> OneHot:
        """The decoding (TorchIO's): the index of each voxel's largest channel, one channel.

        Example:
            >>> from torchpatch import LabelMap
            >>> subject = Subject(seg=LabelMap(tensor=torch.tensor([0, 2, 1]).reshape(1, 3, 1, 1)))
            >>> encode = OneHot()
            >>> encode.inverse()(encode(subject)).seg.data.flatten().tolist()
            [0, 2, 1]
        """
        decoding = copy.copy(self)
        decoding.invert_transform = not self.invert_transform
        return decoding

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Encode one label map (or decode it, inverted)."""
        if self.invert_transform:
            return rebuild_image(image, image.data.argmax(dim=0, keepdim=True).to(image.data.dtype))
        data = _single_channel(image, name, subject, "OneHot")
        indices = data[0].long()
        where = f"label map {name!r} of subject {subject.name!r}"
        if indices.numel() and int(indices.min()) < 0:
            raise ValueError(f"OneHot needs non-negative labels, but {where} holds {int(indices.min())}")
        if self.num_classes != -1 and indices.numel() and int(indices.max()) >= self.num_classes:
            raise ValueError(
                f"{where} holds the label {int(indices.max())}, which does not fit num_classes={self.num_classes}"
            )
        encoded = torch.nn.functional.one_hot(indices, num_classes=self.num_classes)
        return rebuild_image(image, encoded.permute(3, 0, 1, 2).to(data.dtype).contiguous())


class RemapLabels(LabelTransform):
    """Replace label values by others, all at once (``{1: 2, 2: 1}`` swaps two labels).

    Args:
        remapping: Old label -> new label. Labels not in it are kept.
        masking_method: Where to remap (elsewhere labels are kept): ``None``
            (everywhere), an image name, an anatomical half (``'Left'``...),
            a callable or bounds; see :mod:`torchpatch.transforms.masking`.
            A callable receives the label map's voxels.
        include: Names of the only label maps to change.
        exclude: Names of label maps to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``remapping`` is not a mapping of numbers, or
            ``masking_method`` has none of the accepted forms.

    Example:
        >>> from torchpatch import LabelMap
        >>> subject = Subject(seg=LabelMap(tensor=torch.tensor([0, 1, 2, 3, 4]).reshape(1, 1, 1, -1)))
        >>> RemapLabels({1: 2, 2: 1, 3: 1, 4: 7})(subject).seg.data.flatten().tolist()
        [0, 2, 1, 1, 7]
    """

    def __init__(
        self,
        remapping: Mapping[int, int],
        masking_method: TypeMaskingMethod = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if not isinstance(remapping, Mapping):
            raise TypeError(f"remapping must be a dict old label -> new label, got {type(remapping).__name__}")
        for key, value in remapping.items():
            for item in (key, value):
                if isinstance(item, bool) or not isinstance(item, (Integral, float, np.floating)):
                    raise TypeError(f"remapping must map numbers to numbers, got {key!r}: {value!r}")
        self.remapping = dict(remapping)
        self.masking_method = check_masking_method(masking_method)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {"remapping": self.remapping}
        if self.masking_method is not None:
            arguments["masking_method"] = self.masking_method
        return {**arguments, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Remap one label map."""
        data = image.data
        present = set(torch.unique(data).tolist())
        if not present.intersection(self.remapping):
            return image
        mask = get_mask(self.masking_method, subject, image, name)
        remapped = data.clone()
        for old, new in self.remapping.items():
            # Compared with the input, not the output: {1: 2, 2: 1} swaps.
            remapped[(data == old) & mask] = new
        return rebuild_image(image, remapped)

    def is_invertible(self) -> bool:
        """True (TorchIO's), though :meth:`inverse` refuses a remapping of several labels onto one."""
        return True

    def inverse(self) -> RemapLabels:
        """The remapping back (TorchIO's ``inverse``), with the same mask and images.

        Raises:
            ValueError: When two labels map onto one, so it has no inverse.

        Example:
            >>> RemapLabels({1: 2, 3: 4}).inverse()
            RemapLabels(remapping={2: 1, 4: 3})
        """
        targets = list(self.remapping.values())
        if len(set(targets)) < len(targets):
            raise ValueError(f"remapping {self.remapping} maps several labels onto one: it cannot be inverted")
        return RemapLabels(
            {new: old for old, new in self.remapping.items()}, self.masking_method, self.include, self.exclude
        )


class SequentialLabels(LabelTransform):
    """Relabel the values present in each label map as ``0, 1, 2, ...``, in increasing order.

    Labels ``(0, 3, 5)`` become ``(0, 1, 2)``; labels ``(7, 11, 99)`` become
    ``(0, 1, 2)`` too (the smallest value becomes 0 even when it is not 0).

    Args:
        masking_method: Where to relabel, as in :class:`RemapLabels`.
        include: Names of the only label maps to change.
        exclude: Names of label maps to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Example:
        >>> from torchpatch import LabelMap
        >>> subject = Subject(seg=LabelMap(tensor=torch.tensor([7, 11, 99, 11]).reshape(1, 1, 1, -1)))
        >>> SequentialLabels()(subject).seg.data.flatten().tolist()
        [0, 1, 2, 1]
    """

    records_itself = True  # as RemapLabels

    def __init__(
        self,
        masking_method: TypeMaskingMethod = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.masking_method = check_masking_method(masking_method)

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {}
        if self.masking_method is not None:
            arguments["masking_method"] = self.masking_method
        return {**arguments, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Relabel each label map, recorded as TorchIO does: a :class:`RemapLabels` of it (invertible)."""
        results, records = {}, []
        for name, image in self.get_images_dict(subject).items():
            remap = self.remap_labels(image, name)
            results[name] = remap.apply_image(image, name, subject)
            records.append(transform_record(remap))
        return add_history(subject.with_images(results), *records)

    def remap_labels(self, image: Image, name: str) -> RemapLabels:
        """The :class:`RemapLabels` that relabels ``image`` (named ``name``).

        Example:
            >>> from torchpatch import LabelMap
            >>> SequentialLabels().remap_labels(LabelMap(tensor=torch.tensor([[[[0, 4, 9]]]])), 'seg')
            RemapLabels(remapping={0: 0, 4: 1, 9: 2}, include=['seg'])
        """
        labels = torch.unique(image.data).tolist()
        remapping = {label: index for index, label in enumerate(labels)}
        return RemapLabels(remapping, self.masking_method, include=[name])


class KeepLargestComponent(LabelTransform):
    """Keep only the largest connected region of non-zero voxels: 1 there, 0 elsewhere.

    Voxels connect through faces (6 neighbours in 3D, 4 in 2D), as in
    TorchIO (SimpleITK's ``ConnectedComponent``). Every non-zero label
    counts as foreground, so it is meant for binary label maps. Among regions
    of equal size, the one whose first voxel comes first when ``I`` varies
    fastest is kept (TorchIO's choice). The output is ``uint8``, as in
    TorchIO; an empty label map stays empty.

    Args:
        include: Names of the only label maps to change.
        exclude: Names of label maps to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        ValueError: When called, if a label map has several channels.

    Example:
        >>> from torchpatch import LabelMap
        >>> seg = LabelMap(tensor=torch.tensor([1, 0, 1, 1, 0, 1]).reshape(1, 6, 1, 1))
        >>> KeepLargestComponent()(Subject(seg=seg)).seg.data.flatten().tolist()
        [0, 0, 1, 1, 0, 0]
    """

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Keep the largest component of one label map."""
        data = _single_channel(image, name, subject, type(self).__name__)
        # Transposed so that scipy numbers the components in the order of their
        # first voxel with I varying fastest, the order SimpleITK breaks ties in.
        foreground = (data[0] != 0).cpu().numpy().T
        components, count = ndimage.label(foreground)
        if count == 0:
            return rebuild_image(image, torch.zeros(data.shape, dtype=torch.uint8, device=data.device))
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        largest = (components == int(np.argmax(sizes))).T
        result = torch.from_numpy(np.ascontiguousarray(largest, dtype=np.uint8))[None].to(data.device)
        return rebuild_image(image, result)


#: The name used in MONAI and in issue reports; TorchIO 1.x calls it :class:`KeepLargestComponent`.
KeepLargestConnectedComponent = KeepLargestComponent

__all__ = [
    "KeepLargestComponent",
    "KeepLargestConnectedComponent",
    "LabelTransform",
    "OneHot",
    "RemapLabels",
    "SequentialLabels",
]
