"""Type aliases used in annotations across torchpatch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeAlias, Union

import numpy as np
import numpy.typing as npt
import torch

#: A file path: a string or an :class:`os.PathLike`.
TypePath: TypeAlias = Union[str, "os.PathLike[str]"]
#: One path, or several (a multi-file image).
TypePaths: TypeAlias = Union[TypePath, Sequence[TypePath]]
#: Three ints along the voxel axes ``(I, J, K)``: a shape, a patch size, an index.
TypeTriplet: TypeAlias = tuple[int, int, int]
#: Three floats along the voxel axes: spacing or origin, in millimetres.
TypeSpacing: TypeAlias = tuple[float, float, float]
#: An int (the same on every axis) or one int per axis.
TypeSize: TypeAlias = Union[int, Sequence[int]]
#: Voxels as a tensor or a numpy array.
TypeArray: TypeAlias = Union[torch.Tensor, npt.NDArray[np.generic]]
#: A 4x4 float64 matrix from voxel indices ``(i, j, k, 1)`` to RAS+ millimetres.
TypeAffine: TypeAlias = npt.NDArray[np.float64]
#: A patch box ``(i0, j0, k0, i1, j1, k1)``, half-open, in voxels.
TypeLocation: TypeAlias = tuple[int, int, int, int, int, int]
