"""Shallow copies of the objects every patch derives (images), and the deep copy a TorchIO-style transform gets."""

from __future__ import annotations

import copy
import os
from typing import Any, TypeVar

#: The type of the object copied, which its copy keeps.
T = TypeVar("T")

#: The hooks by which a class customises ``copy.copy``; a class with none of its own copies as a plain object.
COPY_HOOKS = ("__copy__", "__setstate__", "__slots__", "__reduce__", "__reduce_ex__", "__getstate__")

#: The package's folder: an ``apply_transform`` whose code lies there is torchpatch's own.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Per transform class, whether its ``apply_transform`` is torchpatch's own (see :func:`input_for_apply`).
_OWN_APPLY: dict[type, bool] = {}

#: Per class, whether it copies as a plain object (its ``__dict__`` copied).
_PLAIN: dict[type, bool] = {}


def shallow_copy(obj: T) -> T:
    """``copy.copy(obj)``, about five times faster for a class that defines no copy or pickle hook.

    The Queue hands out patches whose images are derived from a template (16
    a batch of two images): ``copy.copy`` goes through the pickle protocol,
    1.3 us an image here, against 0.3 us for a new object given the same
    attributes. Classes with hooks of their own (:data:`COPY_HOOKS`) get
    ``copy.copy``.

    Example:
        >>> class Box:
        ...     def __init__(self, size): self.size = size
        >>> box = Box([1, 2])
        >>> clone = shallow_copy(box)
        >>> type(clone) is Box and clone is not box and clone.size is box.size
        True
    """
    cls = type(obj)
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = hasattr(obj, "__dict__") and all(
            getattr(cls, hook, None) is getattr(object, hook, None) for hook in COPY_HOOKS
        )
        _PLAIN[cls] = plain
    if not plain:
        return copy.copy(obj)
    new = object.__new__(cls)
    new.__dict__.update(obj.__dict__)
    return new


def input_for_apply(transform: Any, subject: T) -> T:
    """The subject ``transform.apply_transform`` gets: a deep copy when that method is user code and ``copy`` holds.

    torchpatch's own transforms (their ``apply_transform``'s code lies in
    the package) never change their input, so they get the subject itself;
    an ``apply_transform`` written for TorchIO may change the subject it
    gets, as TorchIO allows, and so may the hooks of TorchIO's base classes
    (their class attribute ``changes_its_input``).

    Example:
        >>> import torch
        >>> from torchpatch import ScalarImage, Subject
        >>> from torchpatch.transforms import RescaleIntensity, SpatialTransform
        >>> subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1)))
        >>> input_for_apply(RescaleIntensity(), subject) is subject
        True
        >>> class Mine(SpatialTransform):
        ...     def apply_transform(self, subject):
        ...         return subject
        >>> input_for_apply(Mine(), subject) is subject, input_for_apply(Mine(copy=False), subject) is subject
        (False, True)
    """
    cls = type(transform)
    own = _OWN_APPLY.get(cls)
    if own is None:
        code = getattr(getattr(cls, "apply_transform", None), "__code__", None)
        own = code is not None and code.co_filename.startswith(_PACKAGE)
        own = _OWN_APPLY[cls] = own and not getattr(cls, "changes_its_input", False)
    return copy.deepcopy(subject) if transform.copy and not own else subject


__all__ = ["COPY_HOOKS", "T", "input_for_apply", "shallow_copy"]
