"""Argument checks and small tensor helpers shared by boxes, points and their transforms.

Internal to :mod:`torchpatch.annotations` (hence the underscore in the module
name): the names are public only so that the modules of the package can share
them without reaching into each other's private names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

from ..typing import TypeTriplet

#: Slack, in voxels, when checking that a 2D annotation stays on its depth-one slice.
TOLERANCE = 1e-6


def parse_canvas(spatial_shape: Any, owner: str) -> TypeTriplet:
    """The canvas ``(I, J, K)`` of ``spatial_shape``; two ints mean ``(I, J, 1)``."""
    if isinstance(spatial_shape, (str, bytes)) or not isinstance(spatial_shape, (Sequence, np.ndarray, torch.Size)):
        raise TypeError(f"spatial_shape of {owner} must be two or three ints, got {type(spatial_shape).__name__}")
    items = list(spatial_shape)
    if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in items):
        raise TypeError(f"spatial_shape of {owner} must hold ints, got {tuple(items)}")
    if len(items) == 2:
        items.append(1)
    if len(items) != 3:
        raise ValueError(f"spatial_shape of {owner} must have two (I, J) or three (I, J, K) values, got {tuple(items)}")
    if min(items) < 1:
        raise ValueError(f"spatial_shape of {owner} must be positive, got {tuple(items)}")
    return (int(items[0]), int(items[1]), int(items[2]))


def as_float_tensor(data: Any, what: str) -> torch.Tensor:
    """A float32 (float64 kept) tensor of finite numbers; ``what`` names it in errors."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    elif not isinstance(data, torch.Tensor):
        try:
            data = torch.as_tensor(data)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{what} must be a tensor, an array or nested lists of numbers: {error}") from error
    if data.dtype == torch.bool or data.is_complex():
        raise TypeError(f"{what} must hold real numbers, got {data.dtype}")
    if data.dtype != torch.float64:
        data = data.to(torch.float32)
    if data.numel() and not bool(torch.isfinite(data).all()):
        raise ValueError(f"{what} holds NaN or infinite values")
    return data


def parse_class_ids(class_ids: Any, count: int, owner: str) -> torch.Tensor | None:
    """``(count,)`` int64 class ids, or ``None``."""
    if class_ids is None:
        return None
    try:
        tensor = class_ids if isinstance(class_ids, torch.Tensor) else torch.as_tensor(np.asarray(class_ids))
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"class_ids of {owner} must be integers, got {class_ids!r}") from error
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"class_ids of {owner} must be integers, got {tensor.dtype}")
    if tensor.is_floating_point() and not bool((torch.isfinite(tensor) & (tensor == tensor.round())).all()):
        raise TypeError(f"class_ids of {owner} must be integers, got non-integer values {tensor.tolist()[:5]}")
    tensor = tensor.to(torch.int64)
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    if tuple(tensor.shape) != (count,):
        raise ValueError(f"class_ids of {owner} must have shape ({count},) (one per object), got {tuple(tensor.shape)}")
    return tensor


def parse_class_names(class_names: Any, owner: str) -> dict[int, str] | None:
    """``{id: name}`` from a dict or a list of names, or ``None``."""
    if class_names is None:
        return None
    if isinstance(class_names, Mapping):
        items = list(class_names.items())
    elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
        items = list(enumerate(class_names))
    else:
        raise TypeError(f"class_names of {owner} must be a dict {{id: name}} or a list of names, got {class_names!r}")
    parsed: dict[int, str] = {}
    for key, name in items:
        if isinstance(key, bool) or not isinstance(key, Integral) or not isinstance(name, str):
            raise TypeError(f"class_names of {owner} must map int ids to str names, got {key!r}: {name!r}")
        parsed[int(key)] = name
    return parsed


def parse_region(index_ini: Sequence[int], index_fin: Sequence[int]) -> tuple[TypeTriplet, TypeTriplet]:
    """The corners of a non-empty half-open region as two int triplets."""
    ini, fin = list(index_ini), list(index_fin)
    if len(ini) != 3 or len(fin) != 3:
        raise ValueError(f"a region needs three ints per corner, got {tuple(ini)} -> {tuple(fin)}")
    if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in (*ini, *fin)):
        raise TypeError(f"region corners must be ints, got {tuple(ini)} -> {tuple(fin)}")
    if any(int(a) >= int(b) for a, b in zip(ini, fin)):
        raise ValueError(f"region {tuple(ini)} -> {tuple(fin)} is empty: need index_ini < index_fin on every axis")
    return (int(ini[0]), int(ini[1]), int(ini[2])), (int(fin[0]), int(fin[1]), int(fin[2]))


def check_depth_one_region(ini: TypeTriplet, fin: TypeTriplet, owner: str) -> None:
    """Refuse a region that leaves the depth-one canvas of 2D annotations."""
    if ini[2] != 0 or fin[2] != 1:
        raise ValueError(
            f"{owner} are 2D and live on a depth-one canvas (k from 0 to 1), but the region {ini} -> {fin} "
            f"spans k from {ini[2]} to {fin[2]}; convert them with .to_3d() first"
        )


def parse_matrix(matrix: Any) -> Any:
    """A finite 4x4 float64 voxel-to-voxel affine, or a callable voxel-to-voxel map as it is."""
    if callable(matrix):
        return matrix
    array = np.asarray(matrix, dtype=np.float64)
    if array.shape != (4, 4) or not np.all(np.isfinite(array)):
        raise ValueError(f"matrix must be a finite 4x4 voxel-to-voxel affine, got shape {array.shape}")
    return array


def map_positions(positions: torch.Tensor, matrix: Any) -> torch.Tensor:
    """Positions (N, 3) in our edge coordinates through a voxel-index map (centres at integers).

    ``matrix`` is a 4x4 affine or a callable taking and returning ``(N, 3)``
    float64 voxel indices (a non-linear map such as an elastic deformation).
    """
    if callable(matrix):
        return torch.as_tensor(matrix(positions.to(torch.float64) - 0.5), dtype=torch.float64) + 0.5
    block = torch.from_numpy(matrix[:3, :3]).to(torch.float64)
    offset = torch.from_numpy(matrix[:3, 3]).to(torch.float64)
    centred = positions.to(torch.float64) - 0.5
    return centred @ block.T + offset + 0.5


def lift_checked(mapped: torch.Tensor, low: torch.Tensor, high: torch.Tensor, shape: TypeTriplet, owner: str) -> None:
    """Check that 2D annotations mapped to a new grid stay on a depth-one slice."""
    if shape[2] != 1 or (mapped.numel() and (low.abs().max() > TOLERANCE or (high - 1).abs().max() > TOLERANCE)):
        raise ValueError(
            f"{owner} are 2D but the new grid {shape} does not keep the depth-one axis along K; "
            f"convert them with .to_3d() before reorienting or resampling"
        )


def select(value: torch.Tensor | None, index: Any) -> torch.Tensor | None:
    """The rows ``index`` of an optional per-object tensor."""
    return None if value is None else value[index]


def index_to_tensor(index: Any, count: int) -> Any:
    """An index that keeps the first axis: an int becomes a one-row slice, lists become tensors."""
    if isinstance(index, Integral) and not isinstance(index, bool):
        position = int(index)
        if not -count <= position < count:
            raise IndexError(f"index {position} is out of range for {count} objects")
        return slice(position % count, position % count + 1)
    if isinstance(index, (list, np.ndarray)):
        return torch.as_tensor(np.asarray(index))
    return index


__all__ = [
    "TOLERANCE",
    "as_float_tensor",
    "check_depth_one_region",
    "index_to_tensor",
    "lift_checked",
    "map_positions",
    "parse_canvas",
    "parse_class_ids",
    "parse_class_names",
    "parse_matrix",
    "parse_region",
    "select",
]
