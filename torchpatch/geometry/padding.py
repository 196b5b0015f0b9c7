"""Padding modes: how a box reaching past the border of an image is filled.

A patch may reach past the image: grid padding (``GridSampler`` with a
``padding_mode``), images smaller than the patch, augmentation context. Its
voxels outside the image are filled per mode:

- a number (or ``'constant'``, 0): that value;
- geometric modes, which copy voxels of the image (``'edge'``,
  ``'reflect'``, ``'symmetric'``, ``'wrap'``; PyTorch's ``'replicate'`` and
  ``'circular'`` mean ``'edge'`` and ``'wrap'``);
- statistic modes, which compute new values (``'mean'``, ``'median'``,
  ``'minimum'``, ``'maximum'``), as :func:`numpy.pad` does.

Label maps are filled with 0 unless the mode copies voxels: a fill value or
a statistic is not a class. The geometric modes are planned per axis as an
index map: the source voxel of each position of the box, so a patch is read
from its own region of the image, never from a padded copy of the whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .affine import is_number

Array = np.ndarray[Any, np.dtype[Any]]

#: numpy.pad modes that copy existing voxels (also used on label maps).
GEOMETRIC_MODES = ("edge", "reflect", "symmetric", "wrap")
#: numpy.pad modes that compute new values (label maps get 0 instead).
STATISTIC_MODES = ("mean", "median", "minimum", "maximum")
#: PyTorch names accepted for the numpy ones.
MODE_ALIASES = {"replicate": "edge", "circular": "wrap"}


def parse_padding_mode(padding_mode: Any, *, allow_none: bool = False) -> tuple[str, float]:
    """The :func:`numpy.pad` mode and the fill value used by ``'constant'``.

    Args:
        padding_mode: A finite number (constant fill) or a mode name.
        allow_none: Accept ``None``, meaning a constant 0 (where ``None`` is
            an argument's default, e.g. :class:`~torchpatch.GridSampler`'s).

    Example:
        >>> parse_padding_mode(-1000), parse_padding_mode('replicate')
        (('constant', -1000.0), ('edge', 0.0))
        >>> parse_padding_mode(None, allow_none=True)
        ('constant', 0.0)
    """
    if allow_none and padding_mode is None:
        return "constant", 0.0
    if is_number(padding_mode):
        if not np.isfinite(padding_mode):
            raise ValueError(f"padding_mode must be a finite number or a mode name, got {padding_mode!r}")
        return "constant", float(padding_mode)
    accepted = ["constant", *GEOMETRIC_MODES, *STATISTIC_MODES, *MODE_ALIASES]
    expected = f"None or one of {['a number', *accepted]}" if allow_none else f"a number or one of {accepted}"
    if not isinstance(padding_mode, str):
        raise TypeError(f"padding_mode must be {expected}, got {type(padding_mode).__name__}")
    mode = MODE_ALIASES.get(padding_mode, padding_mode)
    if mode not in ("constant", *GEOMETRIC_MODES, *STATISTIC_MODES):
        raise ValueError(f"padding_mode must be {expected}, got {padding_mode!r}")
    return mode, 0.0


def source_indices(size: int, index_ini: int, index_fin: int, mode: str) -> Array:
    """The voxel each position of a box along one axis copies, -1 where it is filled instead.

    The box spans positions ``index_ini`` to ``index_fin - 1`` of an axis
    of ``size`` voxels. Positions inside ``[0, size)`` copy themselves; outside, a geometric
    ``mode`` says which voxel they copy (as :func:`numpy.pad` would), and any
    other mode gives -1 (filled, not copied).

    Example:
        >>> source_indices(4, -2, 6, 'reflect').tolist()
        [2, 1, 0, 1, 2, 3, 2, 1]
        >>> source_indices(4, -1, 2, 'constant').tolist()
        [-1, 0, 1]
    """
    before, after = max(0, -index_ini), max(0, index_fin - size)
    indices = np.arange(size, dtype=np.int64)
    if mode in GEOMETRIC_MODES:
        padded = np.pad(indices, (before, after), mode=mode)  # type: ignore[call-overload]
    else:
        padded = np.pad(indices, (before, after), mode="constant", constant_values=-1)
    start = index_ini + before
    return np.asarray(padded[start : start + index_fin - index_ini], dtype=np.int64)


def fill_fits(fill: float, dtype: torch.dtype) -> bool:
    """Whether a constant padding value can be stored in voxels of ``dtype`` unchanged.

    Example:
        >>> fill_fits(-1.0, torch.uint8), fill_fits(255.0, torch.uint8), fill_fits(0.5, torch.float16)
        (False, True, True)
    """
    if dtype.is_floating_point or dtype == torch.bool:
        return True
    info = torch.iinfo(dtype)
    return fill == int(fill) and info.min <= fill <= info.max


__all__ = [
    "GEOMETRIC_MODES",
    "MODE_ALIASES",
    "STATISTIC_MODES",
    "fill_fits",
    "parse_padding_mode",
    "source_indices",
]
