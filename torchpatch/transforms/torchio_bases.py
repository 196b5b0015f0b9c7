"""TorchIO's base classes for transforms of your own: ``IntensityTransform``, ``SpatialTransform``...

A TorchIO script's own transform subclasses one of these and overrides
``apply_transform(subject)``, usually changing the subject it is given in
place (``image.set_data(...)``). That works unchanged on torchpatch: a
transform whose ``apply_transform`` is not torchpatch's own gets a deep copy
of the subject (as TorchIO gives it, unless ``copy=False``), so the caller's
subject, and a dataset's cached one, stay as they were
(:func:`torchpatch.copying.input_for_apply`).

===============================  ====================================================
class                            what ``get_images``/``get_images_dict`` select
===============================  ====================================================
:class:`IntensityTransform`      scalar images (``ScalarImage``)
:class:`SpatialTransform`        every image
:class:`LabelTransform`          label maps (``LabelMap``)
:class:`NormalizationTransform`  scalar images, each with its ``masking_method`` mask
:class:`FourierTransform`        (no images: TorchIO's centred FFT helpers)
===============================  ====================================================

``include``/``exclude`` narrow the selection as for any transform.

torchpatch's own transforms count as instances of the classes TorchIO's
derive from (``isinstance(RandomBlur(), IntensityTransform)``,
``isinstance(Flip(), SpatialTransform)``...: :mod:`~torchpatch.transforms.kinds`)
without taking their code; the helper methods TorchIO's ``Transform`` offers
(``parse_params``, ``get_mask_from_masking_method``...) are on every
transform (:mod:`~torchpatch.transforms.torchio_methods`).

Example:
    >>> import torch
    >>> from torchpatch import LabelMap, ScalarImage, Subject
    >>> class Double(IntensityTransform):
    ...     def apply_transform(self, subject):
    ...         for image in self.get_images(subject):
    ...             image.set_data(image.data * 2)
    ...         return subject
    >>> subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 1, 1)), seg=LabelMap(tensor=torch.ones(1, 2, 1, 1)))
    >>> out = Double()(subject)
    >>> out.t1.data.flatten().tolist(), out.seg.data.flatten().tolist(), subject.t1.data.flatten().tolist()
    ([2.0, 2.0], [1, 1], [1.0, 1.0])
"""

from __future__ import annotations

from abc import ABCMeta
from typing import Any

import torch

from ..image import Image, LabelMap
from ..subject import Subject
from .base import Transform
from .masking import TypeMaskingMethod, check_masking_method, get_mask


class IntensityTransform(Transform, metaclass=ABCMeta):
    """TorchIO's base class of transforms that change the voxels of scalar images only.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> zero = torch.zeros(1, 1, 1, 1)
        >>> subject = Subject(t1=ScalarImage(tensor=zero), seg=LabelMap(tensor=zero))
        >>> list(IntensityTransform().get_images_dict(subject))
        ['t1']
    """

    #: Subclasses written for TorchIO change the subject they are given: they get a deep copy.
    changes_its_input = True

    intensity_only = True


class SpatialTransform(Transform, metaclass=ABCMeta):
    """TorchIO's base class of transforms that move voxels or change bounds: every image, label maps included.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> zero = torch.zeros(1, 1, 1, 1)
        >>> subject = Subject(t1=ScalarImage(tensor=zero), seg=LabelMap(tensor=zero))
        >>> [type(image).__name__ for image in SpatialTransform().get_images(subject)]
        ['ScalarImage', 'LabelMap']
    """

    #: Subclasses written for TorchIO change the subject they are given: they get a deep copy.
    changes_its_input = True


class LabelTransform(Transform, metaclass=ABCMeta):
    """TorchIO's base class of transforms of label maps: only ``LabelMap`` images are selected.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> zero = torch.zeros(1, 1, 1, 1)
        >>> subject = Subject(t1=ScalarImage(tensor=zero), seg=LabelMap(tensor=zero))
        >>> list(LabelTransform().get_images_dict(subject))
        ['seg']
    """

    #: Subclasses written for TorchIO change the subject they are given: they get a deep copy.
    changes_its_input = True

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        """The selected label maps of ``subject``, by name."""
        images = super().get_images_dict(subject)
        return {name: image for name, image in images.items() if isinstance(image, LabelMap)}


class NormalizationTransform(IntensityTransform):
    """TorchIO's base class of intensity normalizations: override ``apply_normalization(subject, name, mask)``.

    ``apply_transform`` computes, for each selected scalar image, the mask
    ``masking_method`` selects (any form :mod:`~torchpatch.transforms.masking`
    takes) and calls ``apply_normalization``, which changes the image of the
    subject it is given (a copy).

    Args:
        masking_method: The voxels the statistics are computed on.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s keywords.

    Example:
        >>> from torchpatch import ScalarImage
        >>> class Center(NormalizationTransform):
        ...     def apply_normalization(self, subject, image_name, mask):
        ...         image = subject[image_name]
        ...         image.set_data(image.data - image.data[mask].mean())
        >>> subject = Subject(t1=ScalarImage(tensor=torch.tensor([0.0, 2, 4, 6]).reshape(1, 4, 1, 1)))
        >>> Center(masking_method='Right')(subject).t1.data.flatten().tolist()
        [-5.0, -3.0, -1.0, 1.0]
    """

    def __init__(self, masking_method: TypeMaskingMethod = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.masking_method = check_masking_method(masking_method)

    def apply_transform(self, subject: Subject) -> Subject:
        """Call :meth:`apply_normalization` for each selected scalar image with its mask."""
        for name, image in self.get_images_dict(subject).items():
            mask = get_mask(self.masking_method, subject, image, name, values=image.data)
            self.apply_normalization(subject, name, mask)
        return subject

    def apply_normalization(self, subject: Subject, image_name: str, mask: torch.Tensor) -> None:
        """Normalize image ``image_name`` of ``subject`` in place, with the statistics of ``mask``."""
        raise NotImplementedError(f"{self.name} must implement apply_normalization(subject, image_name, mask)")


class FourierTransform(metaclass=ABCMeta):  # noqa: B024 - an ABC for register(), with no abstract method
    """TorchIO's centred FFT helpers: ``fftshift(fftn(tensor))`` and its inverse, over every axis of ``tensor``.

    Example:
        >>> volume = torch.rand(4, 6, 5)
        >>> back = FourierTransform.inv_fourier_transform(FourierTransform.fourier_transform(volume))
        >>> torch.allclose(back.real, volume, atol=1e-6)
        True
    """

    @staticmethod
    def fourier_transform(tensor: torch.Tensor) -> torch.Tensor:
        """The spectrum of ``tensor`` with its centre at index ``n // 2`` of every axis."""
        return torch.fft.fftshift(torch.fft.fftn(tensor))

    @staticmethod
    def inv_fourier_transform(tensor: torch.Tensor) -> torch.Tensor:
        """The complex voxels of a centred spectrum (take ``.real`` for an image)."""
        return torch.fft.ifftn(torch.fft.ifftshift(tensor))


__all__ = [
    "FourierTransform",
    "IntensityTransform",
    "LabelTransform",
    "NormalizationTransform",
    "SpatialTransform",
]
