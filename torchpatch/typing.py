"""Type aliases used in annotations across torchpatch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeAlias, Union

import numpy as np
import numpy.typing as npt
import torch

TypePath: TypeAlias = Union[str, "os.PathLike[str]"]
TypePaths: TypeAlias = Union[TypePath, Sequence[TypePath]]
TypeTriplet: TypeAlias = tuple[int, int, int]
TypeSpacing: TypeAlias = tuple[float, float, float]
TypeSize: TypeAlias = Union[int, Sequence[int]]
TypeArray: TypeAlias = Union[torch.Tensor, npt.NDArray[np.generic]]
TypeAffine: TypeAlias = npt.NDArray[np.float64]
TypeLocation: TypeAlias = tuple[int, int, int, int, int, int]
