"""Shallow copies of the objects every patch derives (images), without the pickle protocol's detour."""

from __future__ import annotations

import copy
from typing import TypeVar

#: The type of the object copied, which its copy keeps.
T = TypeVar("T")

#: The hooks by which a class customises ``copy.copy``; a class with none of its own copies as a plain object.
COPY_HOOKS = ("__copy__", "__setstate__", "__slots__", "__reduce__", "__reduce_ex__", "__getstate__")

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


__all__ = ["COPY_HOOKS", "T", "shallow_copy"]
