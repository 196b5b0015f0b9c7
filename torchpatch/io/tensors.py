"""Voxels as TorchIO's readers hand them to torch: four dimensions, no unsigned types torch lacks.

TorchIO 1.x's ``tio.io`` has two helpers for this, :func:`check_uint_to_int`
and :func:`ensure_4d`, which scripts call on arrays they read themselves;
:func:`voxel_tensor` is how :func:`torchpatch.io.read_image` wraps the
array it reads (no copy unless the array must change).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Array

#: torch has no uint16/uint32 arithmetic, so TorchIO widens both to the next signed type (images too).
WIDER_DTYPES: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype(np.uint16): np.dtype(np.int32),
    np.dtype(np.uint32): np.dtype(np.int64),
}


def check_uint_to_int(array: Array) -> Array:
    """``array`` with uint16 widened to int32 and uint32 to int64 (TorchIO's function); others unchanged.

    An array of any other dtype is returned as it is (the same object), so
    the call costs nothing where there is nothing to widen.

    Example:
        >>> check_uint_to_int(np.array([65535], np.uint16))
        array([65535], dtype=int32)
        >>> check_uint_to_int(np.array([1.5])).dtype
        dtype('float64')
    """
    wider = WIDER_DTYPES.get(np.asarray(array).dtype)
    return array if wider is None else np.asarray(array).astype(wider)


def to_numpy(value: Any) -> Any:
    """A tensor as a numpy array (detached, on the CPU); anything else unchanged.

    NumPy 2 warns when it converts a tensor itself (``np.asarray(tensor)``).

    Example:
        >>> to_numpy(torch.eye(2)).dtype, to_numpy([1, 2])
        (dtype('float32'), [1, 2])
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return value


def voxel_tensor(array: Array) -> torch.Tensor:
    """``array`` as a tensor, sharing its memory where torch can.

    uint16 and uint32 are widened (:func:`check_uint_to_int`); a read-only
    array (a memory map) or one in the other byte order is copied, since
    torch would share it writable or cannot read it.

    Example:
        >>> voxel_tensor(np.arange(3, dtype='>i2')).tolist()
        [0, 1, 2]
    """
    array = check_uint_to_int(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    elif not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def ensure_4d(tensor: Any, num_spatial_dims: int | None = None) -> torch.Tensor:
    """Voxels of 2 to 5 dimensions as a ``(C, I, J, K)`` tensor, by TorchIO's rules.

    - ``(I, J)``: one channel, depth one, ``(1, I, J, 1)``;
    - three dimensions: ``(C, I, J)`` with ``num_spatial_dims=2`` gives
      ``(C, I, J, 1)``, ``(I, J, K)`` with ``num_spatial_dims=3`` gives
      ``(1, I, J, K)``; without it, a first or last size of 3 is read as
      RGB (``(3, I, J, 1)``), anything else as one channel;
    - ``(C, I, J, K)``: unchanged;
    - ``(I, J, K, 1, C)``, a NIfTI vector image: ``(C, I, J, K)``.

    Args:
        tensor: A tensor or array-like.
        num_spatial_dims: 2 or 3 to tell a 3D input's meaning; ``None``
            guesses as the table says.

    Raises:
        ValueError: For fewer than 2 or more than 5 dimensions, or a 5D
            shape whose fourth size is not 1.

    Example:
        >>> ensure_4d(np.zeros((4, 5))).shape
        torch.Size([1, 4, 5, 1])
        >>> ensure_4d(np.zeros((4, 5, 3))).shape, ensure_4d(np.zeros((4, 5, 6))).shape
        (torch.Size([3, 4, 5, 1]), torch.Size([1, 4, 5, 6]))
    """
    tensor = torch.as_tensor(tensor)
    shape = tuple(tensor.shape)
    if tensor.ndim == 2:
        return tensor[None, ..., None]
    if tensor.ndim == 3:
        if num_spatial_dims == 2:
            return tensor[..., None]
        if num_spatial_dims == 3:
            return tensor[None]
        if 3 in (shape[0], shape[-1]):  # probably RGB
            if shape[-1] == 3:
                tensor = tensor.permute(2, 0, 1)
            return tensor[..., None]
        return tensor[None]
    if tensor.ndim == 4:
        return tensor
    if tensor.ndim == 5:
        if shape[3] != 1:
            raise ValueError(f"a 5D image must be (I, J, K, 1, C) as NIfTI stores vectors, got shape {shape}")
        return tensor[..., 0, :].permute(3, 0, 1, 2)
    raise ValueError(f"images have 2 to 5 dimensions, got shape {shape}")


__all__ = ["WIDER_DTYPES", "check_uint_to_int", "ensure_4d", "to_numpy", "voxel_tensor"]
