"""Small preprocessing steps with TorchIO 1.x names: :class:`Lambda`, :class:`Clamp`,
:class:`Mask`, :class:`CopyAffine` and :class:`EnsureShapeMultiple`.

=============================  =========================================================
transform                      what it does
=============================  =========================================================
:class:`Lambda`                apply a function ``tensor -> tensor`` to chosen image types
:class:`Clamp`                 clip intensities to ``[out_min, out_max]``
:class:`Mask`                  set the voxels outside a mask to a constant
:class:`CopyAffine`            give every image the affine of a reference image
:class:`EnsureShapeMultiple`   pad (or crop) so each size is a multiple of ``n``
=============================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

from ..constants import INTENSITY, LABEL
from ..geometry import is_number
from ..image import Image
from ..patches import fill_fits
from ..subject import Subject
from ..typing import TypeTriplet
from .base import Transform, rebuild_image
from .crop_pad import CropOrPad
from .masking import TypeMaskingMethod, check_masking_method, get_mask


class Lambda(Transform):
    """Apply a function ``tensor -> tensor`` to the voxels of each selected image.

    The function receives the ``(C, I, J, K)`` tensor of one image at a time
    and returns a 4D tensor (channels and sizes may change; the affine is
    kept). It gets a copy of the voxels unless ``copy=False`` (TorchIO
    deep-copies the subject), so a function that changes them in place
    (``lambda x: x.div_(255)``) leaves the input as it was. Prefer a
    module-level function to a ``lambda`` where the pipeline is pickled or
    fingerprinted (workers, ``SubjectsDataset(cache_dir=...)``).

    Args:
        function: Callable taking and returning a 4D :class:`torch.Tensor`.
        types_to_apply: Image types to apply it to, e.g. ``[INTENSITY]`` or
            ``[LABEL]`` (``'intensity'``, ``'label'``); ``None``: every type.
        include: Names of the only images to apply it to.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``function`` is not callable or ``types_to_apply`` is
            not a sequence of type names; when called, if the function
            returns something other than a tensor.
        ValueError: When ``types_to_apply`` names an unknown type; when
            called, if the result is not 4D.

    Example:
        >>> from torchpatch import INTENSITY, LabelMap, ScalarImage
        >>> ones = torch.ones(1, 2, 1, 1)
        >>> subject = Subject(t1=ScalarImage(tensor=ones), seg=LabelMap(tensor=ones))
        >>> out = Lambda(lambda x: -x, types_to_apply=[INTENSITY])(subject)
        >>> out.t1.data.flatten().tolist(), out.seg.data.flatten().tolist()
        ([-1.0, -1.0], [1, 1])
    """

    def __init__(
        self,
        function: Callable[[torch.Tensor], torch.Tensor],
        types_to_apply: Sequence[str] | None = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if not callable(function):
            raise TypeError(f"function must be a callable tensor -> tensor, got {type(function).__name__}")
        self.function = function
        if types_to_apply is not None:
            if isinstance(types_to_apply, str) or not isinstance(types_to_apply, Sequence):
                raise TypeError(
                    f"types_to_apply must be None or a sequence of image types such as [{INTENSITY!r}], "
                    f"got {types_to_apply!r}"
                )
            unknown = [kind for kind in types_to_apply if kind not in (INTENSITY, LABEL)]
            if unknown:
                raise ValueError(f"types_to_apply must hold {INTENSITY!r} or {LABEL!r}, got {list(types_to_apply)!r}")
            types_to_apply = list(types_to_apply)
        self.types_to_apply = types_to_apply

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"function": self.function, "types_to_apply": self.types_to_apply, **super().arguments()}

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        """The selected images whose type is in ``types_to_apply``."""
        images = super().get_images_dict(subject)
        if self.types_to_apply is None:
            return images
        return {name: image for name, image in images.items() if image.type in self.types_to_apply}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Apply the function to one image."""
        # A copy, as TorchIO's deep copy of the subject gives: a function that changes it in place leaves the input.
        result = self.function(image.data.clone() if self.copy else image.data)
        where = f"for image {name!r} of subject {subject.name!r}"
        if not isinstance(result, torch.Tensor):
            raise TypeError(f"Lambda's function must return a torch.Tensor, got {type(result).__name__} {where}")
        if result.ndim != 4:
            raise ValueError(
                f"Lambda's function must return a 4D tensor (C, I, J, K), got shape {tuple(result.shape)} {where}"
            )
        return rebuild_image(image, result)


class Clamp(Transform):
    """Clip the intensities of scalar images to ``[out_min, out_max]`` (:func:`torch.clamp`).

    The dtype follows :func:`torch.clamp`: an integer image clipped to
    fractional bounds becomes floating point. With both bounds ``None``
    nothing changes.

    Args:
        out_min: Lower bound; ``None`` keeps the image's minimum.
        out_max: Upper bound; ``None`` keeps the image's maximum.
        include: Names of the only scalar images to clip.
        exclude: Names of scalar images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When a bound is not a number.
        ValueError: When ``out_min`` exceeds ``out_max``.

    Example:
        >>> from torchpatch import ScalarImage
        >>> ct = ScalarImage(tensor=torch.tensor([-3000, -500, 0, 2000]).reshape(1, 4, 1, 1))
        >>> Clamp(out_min=-1000, out_max=1000)(Subject(ct=ct)).ct.data.flatten().tolist()
        [-1000, -500, 0, 1000]
    """

    intensity_only = True

    def __init__(
        self,
        out_min: float | None = None,
        out_max: float | None = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        for value, argument in ((out_min, "out_min"), (out_max, "out_max")):
            if value is not None and not is_number(value):
                raise TypeError(f"{argument} must be a number or None, got {type(value).__name__} {value!r}")
        if out_min is not None and out_max is not None and out_min > out_max:
            raise ValueError(f"out_min must not exceed out_max, got out_min={out_min} and out_max={out_max}")
        self.out_min, self.out_max = out_min, out_max

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"out_min": self.out_min, "out_max": self.out_max, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Clip one scalar image."""
        if self.out_min is None and self.out_max is None:
            return image
        return rebuild_image(image, image.data.clamp(self.out_min, self.out_max))


class Mask(Transform):
    """Set the voxels of scalar images outside a mask to ``outside_value``.

    A one-channel mask applies to every channel of the image (TorchIO warns
    when it expands it; this is quiet). The dtype is kept.

    Args:
        masking_method: ``None`` (keep everything), an image name (its
            non-zero voxels, or those equal to ``labels``), an anatomical
            half (``'Left'``...), a callable ``tensor -> bool tensor`` given
            the image's voxels, or bounds; see
            :mod:`torchpatch.transforms.masking`.
        outside_value: Value written outside the mask.
        labels: With an image name, the labels that form the mask (every
            non-zero value when ``None``).
        include: Names of the only scalar images to mask.
        exclude: Names of scalar images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When an argument has the wrong type.
        ValueError: When called, if the mask does not fit an image or
            ``outside_value`` does not fit an integer image.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 4, 1, 1)),
        ...                   brain=LabelMap(tensor=torch.tensor([0, 1, 2, 0]).reshape(1, 4, 1, 1)))
        >>> Mask('brain')(subject).t1.data.flatten().tolist()
        [0.0, 1.0, 1.0, 0.0]
        >>> Mask('brain', outside_value=-1, labels=[2])(subject).t1.data.flatten().tolist()
        [-1.0, -1.0, 1.0, -1.0]
    """

    intensity_only = True

    @property
    def masking_labels(self) -> list[int] | None:
        """``labels``, the mask image's values that count as inside: TorchIO's name."""
        return self.labels

    def __init__(
        self,
        masking_method: TypeMaskingMethod,
        outside_value: float = 0,
        labels: Sequence[int] | None = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.masking_method = check_masking_method(masking_method)
        if not is_number(outside_value):
            raise TypeError(f"outside_value must be a number, got {type(outside_value).__name__} {outside_value!r}")
        self.outside_value = outside_value
        if labels is not None and (
            isinstance(labels, str)
            or not isinstance(labels, Sequence)
            or not all(isinstance(label, Integral) and not isinstance(label, bool) for label in labels)
        ):
            raise TypeError(f"labels must be None or a sequence of ints, got {labels!r}")
        self.labels = None if labels is None else [int(label) for label in labels]

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        arguments: dict[str, Any] = {"masking_method": self.masking_method, "outside_value": self.outside_value}
        if self.labels is not None:
            arguments["labels"] = self.labels
        return {**arguments, **super().arguments()}

    def apply_image(self, image: Image, name: str, subject: Subject) -> Image:
        """Mask one scalar image."""
        data = image.data
        if not fill_fits(float(self.outside_value), data.dtype):
            raise ValueError(
                f"outside_value {self.outside_value} does not fit the {data.dtype} voxels of image {name!r} "
                f"of subject {subject.name!r}; cast the image or choose another outside_value"
            )
        mask = get_mask(self.masking_method, subject, image, name, self.labels)
        masked = data.masked_fill(~mask.expand_as(data), self.outside_value)
        return rebuild_image(image, masked)


class CopyAffine(Transform):
    """Give every selected image the affine of the image ``target``.

    Meant for affines that differ by rounding (NIfTI stores them in single
    precision), which makes the checks that images share a grid fail. The
    voxels are not resampled: a truly different affine would misplace them.

    Args:
        target: Name of the image whose affine is copied.
        include: Names of the only images to change.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``target`` is not a string.
        KeyError: When called, if ``target`` is not an image of the subject.

    Example:
        >>> import numpy as np
        >>> from torchpatch import ScalarImage
        >>> t1 = ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=np.diag([0.5, 0.5, 0.5, 1]))
        >>> t2 = ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=np.diag([0.50001, 0.5, 0.5, 1]))
        >>> CopyAffine('t1')(Subject(t1=t1, t2=t2)).t2.spacing
        (0.5, 0.5, 0.5)
    """

    def __init__(
        self,
        target: str,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        if not isinstance(target, str):
            raise TypeError(f"target must be the name of an image, got {type(target).__name__} {target!r}")
        self.target = target

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"target": self.target, **super().arguments()}

    def apply_transform(self, subject: Subject) -> Subject:
        """Copy the target's affine onto the other selected images."""
        reference = subject.get_image(self.target, "CopyAffine target")
        images = {
            name: rebuild_image(image, image.data, reference.affine.copy())
            for name, image in self.get_images_dict(subject).items()
            if image is not reference
        }
        return subject.with_images(images)


class EnsureShapeMultiple(Transform):
    """Pad (or crop) so that each spatial size is a multiple of ``n``, as a U-Net's poolings need.

    Three poolings halve the size three times, so the input should be a
    multiple of ``2**3 = 8`` on each axis::

        181 x 217 x 181  --pad-->  184 x 224 x 184
                         --crop->  176 x 216 x 176

    The images are padded or cropped as by :class:`CropOrPad` (centred,
    world positions kept, annotations moved). An int ``n`` leaves the depth
    of a depth-one 2D image at 1; TorchIO pads it to ``n``: give
    ``(n, n, n)`` for that.

    Args:
        target_multiple: One int ``n`` or three ints ``(n_i, n_j, n_k)``.
        method: ``'pad'`` (round sizes up) or ``'crop'`` (round down; a
            size smaller than its multiple becomes 1, as in TorchIO).
        include: Names of the only images to change.
        exclude: Names of images to leave as they are.
        **kwargs: :class:`~torchpatch.transforms.Transform`'s other keywords
            (``p``, ``copy``, ``keep``, ``parse_input``, ``label_keys``, ...).

    Raises:
        TypeError: When ``target_multiple`` is not ints.
        ValueError: When a multiple is below 1 or ``method`` is unknown;
            when called, if the selected images differ in spatial shape.

    Example:
        >>> from torchpatch import ScalarImage
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 181, 217, 1)))
        >>> EnsureShapeMultiple(8)(subject).t1.spatial_shape
        (184, 224, 1)
        >>> EnsureShapeMultiple(8, method='crop')(subject).t1.spatial_shape
        (176, 216, 1)
    """

    records_itself = True  # its CropOrPad's records

    def __init__(
        self,
        target_multiple: int | Sequence[int],
        *,
        method: str = "pad",
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(include, exclude, **kwargs)
        self.target_multiple = _parse_multiple(target_multiple)
        if method not in ("crop", "pad"):
            raise ValueError(f"method must be 'crop' or 'pad', got {method!r}")
        self.method = method

    def arguments(self) -> dict[str, Any]:
        """Arguments shown by ``repr``."""
        return {"target_multiple": self.target_multiple, "method": self.method, **super().arguments()}

    def target_shape(self, spatial_shape: TypeTriplet) -> TypeTriplet:
        """The shape an image of ``spatial_shape`` gets.

        Example:
            >>> EnsureShapeMultiple((4, 4, 2), method='crop').target_shape((9, 3, 5))
            (8, 1, 4)
        """
        multiple = self.target_multiple
        if isinstance(multiple, int):
            multiple = (multiple, multiple, 1 if spatial_shape[2] == 1 else multiple)
        values = []
        for size, step in zip(spatial_shape, multiple):
            count = -(-size // step) if self.method == "pad" else size // step
            values.append(max(count * step, 1))
        return (values[0], values[1], values[2])

    def apply_transform(self, subject: Subject) -> Subject:
        """Pad or crop the selected images to the shape of :meth:`target_shape`."""
        shapes = {name: image.spatial_shape for name, image in self.get_images_dict(subject).items()}
        if not shapes:
            return subject.with_images({})
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"EnsureShapeMultiple needs images of one spatial shape, but subject {subject.name!r} has {shapes}; "
                "resample them onto one grid first, or transform them separately with include"
            )
        target = self.target_shape(next(iter(shapes.values())))
        return CropOrPad(target, include=self.include, exclude=self.exclude)(subject)


def _parse_multiple(value: Any) -> int | TypeTriplet:
    def check(item: Any) -> int:
        if isinstance(item, bool) or not isinstance(item, Integral):
            raise TypeError(f"target_multiple must be an int or three ints, got {value!r}")
        if item < 1:
            raise ValueError(f"target_multiple must be at least 1 on every axis, got {value!r}")
        return int(item)

    if isinstance(value, Integral) and not isinstance(value, bool):
        return check(value)
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        items = list(value)
        if len(items) != 3:
            raise ValueError(f"target_multiple must be one int or three ints, got {len(items)} values: {value!r}")
        return (check(items[0]), check(items[1]), check(items[2]))
    raise TypeError(f"target_multiple must be an int or three ints, got {type(value).__name__} {value!r}")


__all__ = ["Clamp", "CopyAffine", "EnsureShapeMultiple", "Lambda", "Mask"]
