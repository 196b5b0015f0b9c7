"""Blending windows: how much each voxel of a patch counts when patches overlap.

A model is usually least reliable near the border of its patch, where it
sees the least context. Weighting each prediction by a window that is high
in the middle and low near the border, then dividing by the summed weights,
hides the seams between patches. The windows are separable (one 1D profile
per axis, multiplied) and strictly positive, so voxels on the border of the
image, covered only by the border of one patch, still get a prediction::

    hann      1 |      .-'''-.            gaussian  1 |       .-.
              | |    .'       '.                    | |      /   \\
        floor - |..-'           '-..          floor - |.....'     '.....
                  0     patch     p                     0    patch    p

TorchIO 1.x's Hann window
(:func:`~torchpatch.inference.torchio_hann_window`, chosen with
``hann_mode='torchio'``) is sampled differently: flatter, higher near the
border relative to its middle than :func:`~torchpatch.inference.hann_window`.
Blending with it gives TorchIO's ``overlap_mode='hann'`` output.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: Smallest value of a 1D window, relative to its maximum of 1.
WINDOW_FLOOR = 1e-3
#: Gaussian standard deviation, as a fraction of the patch size (MONAI's and nnU-Net's 1/8).
SIGMA_SCALE = 0.125

WINDOW_MODES = ("hann", "gaussian")
#: Which Hann profile ``'hann'`` blending uses: sampled at voxel centres
#: (:func:`~torchpatch.inference.hann_window`, the default) or TorchIO 1.x's
#: (:func:`~torchpatch.inference.torchio_hann_window`).
HANN_MODES = ("centred", "torchio")
#: Memory the blending ratios of recurring neighbourhoods may keep (see :class:`PartialWeights`).
CACHE_BYTES = 64 * 2**20


def hann_window(size: int, floor: float = WINDOW_FLOOR) -> torch.Tensor:
    """A float32 Hann profile ``sin^2(pi (t + 1/2) / size)``, scaled to a maximum of 1.

    Sampling at voxel centres keeps both ends above zero; ``floor`` bounds
    them from below.

    Example:
        >>> hann_window(4).tolist()
        [0.17157287895679474, 1.0, 1.0, 0.17157287895679474]
    """
    _check_size(size)
    t = np.arange(size, dtype=np.float64)
    profile = np.sin(math.pi * (t + 0.5) / size) ** 2
    return _finish(profile, floor)


def torchio_hann_window(size: int) -> torch.Tensor:
    """TorchIO 1.x's float32 Hann profile ``sin^2(pi (t + 1) / (size + 1))``, scaled to a maximum of 1.

    This is a Hann window of ``size + 2`` points without its two zero ends,
    the window of TorchIO's ``overlap_mode='hann'``: flatter than
    :func:`~torchpatch.inference.hann_window` (higher near the border,
    relative to its middle). No floor is applied, as TorchIO applies none;
    no value is zero (the smallest, about ``(pi / (size + 1))^2``, stays far
    inside float32's range). Blending divides by the summed windows, so the
    scale does not change the output.

    Example:
        >>> [round(v, 4) for v in torchio_hann_window(4).tolist()]
        [0.382, 1.0, 1.0, 0.382]
    """
    _check_size(size)
    t = np.arange(size, dtype=np.float64)
    profile = np.sin(math.pi * (t + 1) / (size + 1)) ** 2
    return torch.from_numpy((profile / profile.max()).astype(np.float32))


def gaussian_window(size: int, sigma_scale: float = SIGMA_SCALE, floor: float = WINDOW_FLOOR) -> torch.Tensor:
    """A float32 Gaussian profile centred on the patch, ``sigma = sigma_scale * size``, maximum 1.

    Example:
        >>> [round(v, 4) for v in gaussian_window(4).tolist()]
        [0.0183, 1.0, 1.0, 0.0183]
    """
    _check_size(size)
    if not sigma_scale > 0:
        raise ValueError(f"sigma_scale must be positive, got {sigma_scale!r}")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    sigma = sigma_scale * size
    profile = np.exp(-0.5 * (t / sigma) ** 2)
    return _finish(profile, floor)


def make_window(patch_size: Sequence[int], mode: str, hann_mode: str = "centred") -> torch.Tensor:
    """The separable ``(1, I, J, K)`` float32 window of ``mode`` for one patch.

    Args:
        patch_size: Three ints.
        mode: ``'hann'`` or ``'gaussian'``.
        hann_mode: The Hann profile, one of
            :data:`~torchpatch.inference.windows.HANN_MODES`: ``'centred'``
            (:func:`~torchpatch.inference.hann_window`) or ``'torchio'``
            (:func:`~torchpatch.inference.torchio_hann_window`). Ignored by
            ``'gaussian'``.

    Example:
        >>> window = make_window((4, 4, 1), 'hann')
        >>> window.shape, window.dtype, float(window.min()) > 0
        (torch.Size([1, 4, 4, 1]), torch.float32, True)
        >>> round(float(make_window((4, 4, 1), 'hann', hann_mode='torchio')[0, 0, 0, 0]), 4)
        0.1459
    """
    if mode not in WINDOW_MODES:
        raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")
    i, j, k = (_profile(mode, int(size), hann_mode) for size in patch_size)
    return (i[:, None, None] * (j[:, None] * k[None, :])[None]).unsqueeze(0)


def check_hann_mode(hann_mode: Any) -> str:
    """``hann_mode`` if it is one of :data:`~torchpatch.inference.windows.HANN_MODES`; raises otherwise.

    Example:
        >>> check_hann_mode('torchio')
        'torchio'
    """
    if not isinstance(hann_mode, str):
        raise TypeError(f"hann_mode must be a str, one of {HANN_MODES}, got {type(hann_mode).__name__}")
    if hann_mode not in HANN_MODES:
        raise ValueError(f"hann_mode must be one of {HANN_MODES}, got {hann_mode!r}")
    return hann_mode


def _profile(mode: str, size: int, hann_mode: str) -> torch.Tensor:
    """The 1D profile of window ``mode`` (``'average'``: ones)."""
    if mode == "average":
        return torch.ones(size)
    if mode == "gaussian":
        return gaussian_window(size)
    return torchio_hann_window(size) if check_hann_mode(hann_mode) == "torchio" else hann_window(size)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"window size must be a positive int, got {size!r}")


def _finish(profile: np.ndarray, floor: float) -> torch.Tensor:
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be in (0, 1], got {floor!r}")
    profile = np.maximum(profile / profile.max(), floor)
    return torch.from_numpy(profile.astype(np.float32))


class PartialWeights:
    """The window weight accumulated so far over a patch, from per-patch counts.

    Blending keeps a running weighted mean, which needs, for each voxel of
    an arriving patch, the sum of the windows of every patch added so far
    that covers it. Rather than a full-size weight channel, updated in
    memory with each patch, that sum is rebuilt for the arriving patch's box
    only, from the ``(n_i, n_j, n_k)`` array of how many times each grid
    patch was added: the windows are separable and the grid is a product of
    per-axis starts, so the sum contracts axis by axis
    (``sum_abc count[a, b, c] w_a(i) w_b(j) w_c(k)``) over the few
    neighbouring patches, in cache.

    Where the arriving patch is the only one added so far, the extra terms
    are exact zeros and the sum equals ``window`` bit for bit, so the
    blending ratio ``window / sum`` is exactly 1 there.

    Args:
        starts: Per axis, the sorted patch starts (any integer grid).
        patch_size: Patch size on that grid.
        mode: ``'average'``, ``'hann'`` or ``'gaussian'``.
        dtype: Floating dtype of the weights.
        device: Where the weights live.
        hann_mode: The Hann profile (see :func:`~torchpatch.inference.make_window`).

    Example:
        >>> import numpy as np
        >>> weights = PartialWeights([np.array([0, 2])] * 2 + [np.array([0])], (4, 4, 1), 'average')
        >>> counts = np.ones((2, 2, 1), dtype=np.int64)
        >>> weights.ratio(counts, (0, 0, 0))[0, :, :, 0].tolist()
        [[1.0, 1.0, 0.5, 0.5], [1.0, 1.0, 0.5, 0.5], [0.5, 0.5, 0.25, 0.25], [0.5, 0.5, 0.25, 0.25]]
    """

    def __init__(
        self,
        starts: Sequence[np.ndarray],
        patch_size: Sequence[int],
        mode: str,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        hann_mode: str = "centred",
    ) -> None:
        if mode != "average" and mode not in WINDOW_MODES:
            raise ValueError(f"mode must be 'average', 'hann' or 'gaussian', got {mode!r}")
        profiles = [_profile(mode, int(p), hann_mode).to(device=device, dtype=dtype) for p in patch_size]
        i, j, k = profiles
        # The association (i x (j x k)) is the one the contraction below uses.
        self.window = (i[:, None, None] * (j[:, None] * k[None, :])[None]).unsqueeze(0)
        self._ranges: list[list[tuple[int, int]]] = []
        self._tables: list[list[torch.Tensor]] = []
        for axis_starts, size, profile in zip(starts, patch_size, profiles):
            ranges, tables = [], []
            values = [int(s) for s in axis_starts]
            for start in values:
                low = int(np.searchsorted(axis_starts, start - size, side="right"))
                high = int(np.searchsorted(axis_starts, start + size, side="left"))
                table = torch.zeros((high - low, int(size)), dtype=dtype, device=device)
                for row, other in enumerate(values[low:high]):
                    shift = other - start  # the neighbour's window, in this patch's coordinates
                    first, last = max(0, shift), min(int(size), shift + int(size))
                    table[row, first:last] = profile[first - shift : last - shift]
                ranges.append((low, high))
                tables.append(table)
            self._ranges.append(ranges)
            self._tables.append(tables)
        # Patches whose neighbourhoods look alike (inner patches, added in
        # order) share one ratio: computed once, then reused from this cache.
        self._kinds = [_kinds(tables) for tables in self._tables]
        patch_bytes = self.window.numel() * self.window.element_size()
        self._cache_size = CACHE_BYTES // max(1, patch_bytes)
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def ratio(self, counts: np.ndarray, index: Sequence[int]) -> torch.Tensor:
        """``window / accumulated weight`` over patch ``index``, counts including it.

        The result may be shared with later calls: read it, never modify it.
        """
        (a0, a1), (b0, b1), (c0, c1) = (self._ranges[axis][int(index[axis])] for axis in range(3))
        local_counts = counts[a0:a1, b0:b1, c0:c1]
        key = (*(self._kinds[axis][int(index[axis])] for axis in range(3)), local_counts.tobytes())
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        table_i, table_j, table_k = (self._tables[axis][int(index[axis])] for axis in range(3))
        local = torch.from_numpy(local_counts.astype(np.float32)).to(device=table_k.device, dtype=table_k.dtype)
        # Elementwise products and sums only (no matmul, which may run in TF32 on GPUs).
        along_k = (local[:, :, :, None] * table_k[None, None]).sum(dim=2)  # (A, B, K)
        along_jk = (table_j[None, :, :, None] * along_k[:, :, None, :]).sum(dim=1)  # (A, J, K)
        total = table_i[0][:, None, None] * along_jk[0][None]
        for row in range(1, table_i.shape[0]):
            total.addcmul_(table_i[row][:, None, None], along_jk[row][None])
        ratio = torch.div(self.window, total.unsqueeze(0), out=total.unsqueeze(0))
        if len(self._cache) < self._cache_size:
            self._cache[key] = ratio
        return ratio


def shared_weights(
    starts: Sequence[np.ndarray],
    patch_size: Sequence[int],
    mode: str,
    dtype: torch.dtype,
    device: torch.device,
    hann_mode: str = "centred",
) -> PartialWeights:
    """A :class:`PartialWeights`, reused while the grid, mode, dtype and device stay the same.

    Predicting volumes of one shape one after the other (a test set, or
    ``benchmarks/grid.py``) then computes the blending ratios once rather
    than for every volume (about a tenth of a one-channel inference). Only
    the latest grid is kept, so at most ``CACHE_BYTES`` (64 MiB) of ratios stay
    in memory; only on the CPU (other devices get fresh ratios every time).

    Example:
        >>> import numpy as np
        >>> starts = [np.array([0, 2])] * 2 + [np.array([0])]
        >>> first = shared_weights(starts, (4, 4, 1), 'hann', torch.float32, torch.device('cpu'))
        >>> first is shared_weights(starts, (4, 4, 1), 'hann', torch.float32, torch.device('cpu'))
        True
    """
    device = torch.device(device)
    if device.type != "cpu":
        # Never hold accelerator memory after the aggregator is gone.
        arrays = [np.asarray(axis, dtype=np.int64) for axis in starts]
        return PartialWeights(arrays, patch_size, mode, dtype, device, hann_mode)
    key = (tuple(tuple(int(s) for s in axis) for axis in starts), tuple(int(p) for p in patch_size), mode)
    return _shared_weights(*key, dtype, device, hann_mode)


@functools.lru_cache(maxsize=1)
def _shared_weights(
    starts: tuple[tuple[int, ...], ...],
    patch_size: tuple[int, ...],
    mode: str,
    dtype: torch.dtype,
    device: torch.device,
    hann_mode: str,
) -> PartialWeights:
    arrays = [np.asarray(axis, dtype=np.int64) for axis in starts]
    return PartialWeights(arrays, patch_size, mode, dtype, device, hann_mode)


def _kinds(tables: list[torch.Tensor]) -> list[int]:
    """A label per table, equal for equal tables (patches with alike neighbours)."""
    labels: list[int] = []
    for index, table in enumerate(tables):
        match = next((labels[j] for j in range(index) if torch.equal(tables[j], table)), index)
        labels.append(match)
    return labels


__all__ = [
    "HANN_MODES",
    "SIGMA_SCALE",
    "WINDOW_FLOOR",
    "PartialWeights",
    "check_hann_mode",
    "gaussian_window",
    "hann_window",
    "make_window",
    "shared_weights",
    "torchio_hann_window",
]
