"""TorchIO's ``MonaiAdapter``: a MONAI transform, dictionary or array, inside a torchpatch pipeline.

torchpatch never imports MONAI: the adapter uses the MONAI that the wrapped
transform comes from (already imported by the script that made it) to wrap
each image's voxels and affine in a ``MetaTensor``, so MONAI's spatial
transforms move the affine too, and to tell dictionary transforms
(``MapTransform``) from array ones::

    subject ──images as MetaTensors──> MONAI transform ──tensors back──> new subject
            (other entries as they are)                  (new affines, new keys)

A **dictionary transform** gets the whole subject as a dict and changes the
keys it names; its output's 4D tensors under new keys become scalar images,
other new entries metadata. An **array transform** is called on each image
``include``/``exclude`` select. The transform gets copies of the voxels
(unless ``copy=False``), so the input subject is left as it is; nothing is
recorded in the history (as in TorchIO).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..image import Image, ScalarImage
from ..subject import Subject
from .base import Transform, rebuild_image


def _monai() -> Any:
    """The MONAI module the script imported, or ``None``."""
    return sys.modules.get("monai")


def _is_instance(obj: Any, monai: Any, path: str) -> bool:
    """Whether ``obj`` is an instance of MONAI's ``monai.<path>`` (``False`` without MONAI)."""
    kind: Any = monai
    for part in path.split("."):
        kind = getattr(kind, part, None)
    return isinstance(kind, type) and isinstance(obj, kind)


def _to_monai(image: Image, monai: Any, copy: bool) -> torch.Tensor:
    """The image's voxels (a copy with ``copy``) as a ``MetaTensor`` holding its affine (a tensor without MONAI).

    A MONAI transform may change what it is given in place: the copy keeps
    the input subject as it was (TorchIO deep-copies the subject instead).
    """
    data = image.data.clone() if copy else image.data
    if monai is None:
        return data
    return monai.data.MetaTensor(data, affine=torch.as_tensor(np.asarray(image.affine), dtype=torch.float64))


def _from_monai(value: Any, monai: Any, where: str) -> tuple[torch.Tensor, np.ndarray[Any, Any] | None]:
    """A result's plain voxels and, for a ``MetaTensor``, its affine."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"the MONAI transform gave a {type(value).__name__} for {where}; a tensor was expected")
    if _is_instance(value, monai, "data.MetaTensor"):
        meta: Any = value
        return meta.as_tensor(), meta.affine.detach().cpu().numpy().astype(np.float64)
    return value, None


def _rebuilt(image: Image, value: Any, monai: Any, where: str) -> Image:
    data, affine = _from_monai(value, monai, where)
    if data.ndim != 4:
        raise ValueError(
            f"the MONAI transform gave {where} a {data.ndim}D tensor of shape {tuple(data.shape)}; 4D expected"
        )
    if affine is None or np.array_equal(affine, image.affine):
        return rebuild_image(image, data)
    return rebuild_image(image, data, affine)


class MonaiAdapter(Transform):
    """Apply a MONAI transform (dictionary or array) to a subject: TorchIO's ``MonaiAdapter``.

    Args:
        monai_transform: A MONAI dictionary transform (a ``MapTransform``,
            given the subject as a dict), a MONAI array transform or any
            callable taking and returning a ``(C, I, J, K)`` tensor (called
            on each selected image).
        **kwargs: :class:`~torchpatch.transforms.Transform`'s keywords
            (``include``/``exclude`` select the images of array transforms).

    Raises:
        TypeError: When ``monai_transform`` is not callable, or it returns
            something other than a mapping (dictionary transforms) or a
            tensor for an image.
        ValueError: When it returns an image that is not 4D.

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> subject = Subject(t1=ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)))
        >>> MonaiAdapter(lambda data: data * 2)(subject).t1.data.flatten().tolist()  # any array callable
        [0.0, 2.0, 4.0, 6.0]
    """

    records_itself = True  # records nothing, as in TorchIO: a MONAI object is not rebuilt from a record

    def __init__(self, monai_transform: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(monai_transform):
            raise TypeError(f"monai_transform must be callable, got {type(monai_transform).__name__}")
        self.monai_transform = monai_transform

    def apply_transform(self, subject: Subject) -> Subject:
        """Run the MONAI transform on ``subject``'s images; a new subject."""
        monai = _monai()
        if _is_instance(self.monai_transform, monai, "transforms.MapTransform"):
            return self._apply_dictionary(subject, monai)
        return self._apply_array(subject, monai)

    def _apply_dictionary(self, subject: Subject, monai: Any) -> Subject:
        entries = {
            key: _to_monai(value, monai, self.copy) if isinstance(value, Image) else value
            for key, value in subject.items()
        }
        result = self.monai_transform(entries)
        if not isinstance(result, Mapping):
            raise TypeError(
                f"the MONAI dictionary transform {self.monai_transform!r} gave a {type(result).__name__} for subject "
                f"{subject.name!r}; one mapping was expected (transforms giving several samples are not supported)"
            )
        images: dict[str, Image] = {}
        metadata: dict[str, Any] = {}
        for key, value in result.items():
            old = subject.get(key)
            where = f"image {key!r} of subject {subject.name!r}"
            if isinstance(old, Image):
                images[key] = _rebuilt(old, value, monai, where)
            elif isinstance(value, torch.Tensor) and value.ndim == 4 and key not in subject:
                data, affine = _from_monai(value, monai, where)
                images[key] = ScalarImage(tensor=data, affine=np.eye(4) if affine is None else affine)
            elif isinstance(value, torch.Tensor):
                metadata[key] = _from_monai(value, monai, where)[0]
            elif value is not old:
                metadata[key] = value
        return subject.with_images(images, **metadata)

    def _apply_array(self, subject: Subject, monai: Any) -> Subject:
        selected = self.get_images_dict(subject)
        if len(selected) > 1 and _is_instance(self.monai_transform, monai, "transforms.Randomizable"):
            warnings.warn(
                f"{self.monai_transform!r} is a random MONAI array transform applied to the {len(selected)} images "
                f"{list(selected)} of subject {subject.name!r} one by one: each draws its own parameters, which can "
                f"misalign them; use its dictionary version (e.g. RandFlipd for RandFlip)",
                UserWarning,
                stacklevel=4,
            )
        images = {}
        for name, image in selected.items():
            result = self.monai_transform(_to_monai(image, monai, self.copy))
            images[name] = _rebuilt(image, result, monai, f"image {name!r} of subject {subject.name!r}")
        return subject.with_images(images)

    def __repr__(self) -> str:
        return f"{self.name}({self.monai_transform!r})"


__all__ = ["MonaiAdapter"]
