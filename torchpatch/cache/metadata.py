"""A subject's metadata in a cache manifest: JSON that gives back the same types.

Plain JSON turns tuples into lists and int keys into strings, and cannot
hold a dtype or an array; the history's records hold all of them
(``{'name': 'Crop', 'cropping': (1, 1, 0, 0, 0, 0)}``, ``RemapLabels``'
``{3: 5}``, ``To``'s ``torch.float64``). Such values are written as small
tagged objects and read back as they were; a function (``Lambda``'s) is read
back as an :class:`~torchpatch.recorded.UnsentFunction`, which raises, naming
it, only if the record is replayed. Nothing here is executed when read.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from ..recorded import UnsentFunction

#: Key of a tagged object; a plain dict with this key is itself written tagged.
TAG = "__torchpatch__"


def encode(value: Any) -> Any:
    """``value`` as JSON-able data that :func:`decode` turns back into it.

    Raises:
        TypeError: For a value of another kind (left out of the manifest).

    Example:
        >>> encode((1, 2))
        {'__torchpatch__': 'tuple', 'items': [1, 2]}
        >>> decode(encode({3: 5, 'dtype': torch.float64, 'a': [(0.5,)]}))
        {3: 5, 'dtype': torch.float64, 'a': [(0.5,)]}
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(item) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            return {key: encode(item) for key, item in value.items()}
        return {TAG: "dict", "items": [[encode(key), encode(item)] for key, item in value.items()]}
    if isinstance(value, torch.dtype):
        return {TAG: "torch.dtype", "name": str(value).removeprefix("torch.")}
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        kind = "tensor" if isinstance(value, torch.Tensor) else "ndarray" if isinstance(value, np.ndarray) else "scalar"
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"a {kind} of dtype {array.dtype} is not stored")
        return {TAG: kind, "dtype": array.dtype.str, "shape": list(array.shape), "items": array.ravel().tolist()}
    if isinstance(value, PurePath):
        return {TAG: "path", "path": str(value)}
    if isinstance(value, UnsentFunction):
        return {TAG: "function", "repr": value.description}
    if callable(value):  # a RecordedFunction too
        return {TAG: "function", "repr": repr(value)}
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not stored")


def decode(value: Any) -> Any:
    """The value :func:`encode` wrote (see there).

    Raises:
        ValueError: For a tagged object of an unknown kind.

    Example:
        >>> decode({'__torchpatch__': 'dict', 'items': [[3, 5]]}), decode([{'__torchpatch__': 'tuple', 'items': []}])
        ({3: 5}, [()])
    """
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {key: decode(item) for key, item in value.items()}
    if kind == "tuple":
        return tuple(decode(item) for item in value["items"])
    if kind == "dict":
        return {decode(key): decode(item) for key, item in value["items"]}
    if kind == "torch.dtype":
        dtype = getattr(torch, value["name"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown torch dtype {value['name']!r}")
        return dtype
    if kind in ("tensor", "ndarray", "scalar"):
        array = np.array(value["items"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
        return torch.from_numpy(array) if kind == "tensor" else array if kind == "ndarray" else array[()]
    if kind == "path":
        return Path(value["path"])
    if kind == "function":
        return UnsentFunction(value["repr"])
    raise ValueError(f"unknown tagged value {kind!r}")


def encode_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``metadata`` :func:`encode` can store (the others are left out, as before).

    Example:
        >>> sorted(encode_metadata({'age': 3, 'history': [{'name': 'Pad', 'padding': (1, 1)}], 'x': object()}))
        ['age', 'history']
    """
    stored = {}
    for key, value in metadata.items():
        try:
            stored[key] = encode(value)
        except TypeError:
            continue
    return stored


def decode_metadata(stored: dict[str, Any]) -> dict[str, Any]:
    """The metadata :func:`encode_metadata` stored.

    Example:
        >>> decode_metadata(encode_metadata({'history': [{'name': 'RemapLabels', 'remapping': {3: 5}}]}))
        {'history': [{'name': 'RemapLabels', 'remapping': {3: 5}}]}
    """
    return {key: decode(value) for key, value in stored.items()}


__all__ = ["TAG", "decode", "decode_metadata", "encode", "encode_metadata"]
