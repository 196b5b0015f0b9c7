"""Density maps for counting: points rendered as Gaussians that each sum to one.

A counting model learns a map whose sum over any region is the number of
objects in it. :func:`points_to_heatmap` draws that map on the whole image,
before patching, so an object near a patch border spreads its unit of mass
over the patches it touches and the patch sums still add up to the count::

    whole image:  . . o O o . . . .      sum = 1 object
    two patches:  . . o O | o . . . .    0.8 + 0.2 = 1, split at the border

(drawn per patch, the object would count 1 in the first patch and 0 or 1 in
the second). The map is a :class:`~torchpatch.image.ScalarImage` on the
image's grid: add it to the subject, sample patches with it as a
``probability_map``, and stitch predictions with ``overlap_mode='average'``.

How it is drawn: one impulse per point in the voxel that holds it
(``index_put_`` with ``accumulate=True``, so points sharing a voxel add up),
then a separable convolution with a normalised, truncated Gaussian along each
axis. The kernel has ``2 * ceil(truncate * sigma) + 1`` taps (about 6 sigma
with the default ``truncate=3``) and sums to one after truncation.

Near the image border part of a Gaussian falls outside the image. With
``renormalize=True`` (default) each impulse is scaled by the inverse of the
mass its kernel keeps inside the image, so every point still sums to exactly
one and the map sums to the number of points in the image. With ``False``
the mass outside is lost (``scipy.ndimage.gaussian_filter`` with
``mode='constant'`` behaves so), and border objects count less than one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch

from ..geometry import check_affine
from ..image import Image, ScalarImage
from ..typing import TypeTriplet
from .points import Points


def gaussian_kernel(sigma: float, truncate: float = 3.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A 1D Gaussian of ``2 * ceil(truncate * sigma) + 1`` taps summing to one.

    ``sigma = 0`` gives ``[1.0]`` (no blur).

    Example:
        >>> kernel = gaussian_kernel(1.0)
        >>> kernel.numel(), round(float(kernel.sum()), 12), int(kernel.argmax())
        (7, 1.0, 3)
    """
    radius = math.ceil(truncate * sigma)
    if radius == 0:
        return torch.ones(1, dtype=dtype)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def _parse_sigma(sigma: Any, spacing: Any) -> tuple[float, float, float]:
    def triple(value: Any, name: str) -> list[float]:
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a number or three numbers, got {value!r}")
        if isinstance(value, Real):
            return [float(value)] * 3
        if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
            items = list(value)
            if len(items) != 3 or not all(isinstance(v, Real) and not isinstance(v, bool) for v in items):
                raise ValueError(f"{name} must be a number or three numbers (I, J, K), got {value!r}")
            return [float(v) for v in items]
        raise TypeError(f"{name} must be a number or three numbers, got {type(value).__name__} {value!r}")

    sigmas = triple(sigma, "sigma")
    if not all(math.isfinite(s) and s >= 0 for s in sigmas):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    if spacing is not None:
        spacings = triple(spacing, "spacing")
        if not all(math.isfinite(s) and s > 0 for s in spacings):
            raise ValueError(f"spacing must be positive and finite (mm), got {spacing!r}")
        sigmas = [s / d for s, d in zip(sigmas, spacings)]
    return (sigmas[0], sigmas[1], sigmas[2])


def _parse_points(points: Any, spatial_shape: Any) -> tuple[torch.Tensor, TypeTriplet, Any]:
    """Voxel indices ``(N, 3)`` of the points, the canvas and the affine (or None)."""
    affine = None
    if isinstance(spatial_shape, Image):
        affine = spatial_shape.affine
        spatial_shape = spatial_shape.spatial_shape
    if isinstance(points, Points):
        shape = points.spatial_shape if spatial_shape is None else spatial_shape
        points = Points(points.data, shape)
    else:
        if spatial_shape is None:
            raise ValueError("spatial_shape is needed when points are not a Points object (which carries its canvas)")
        points = Points(points, spatial_shape)
    return points.voxel_indices(), points.spatial_shape, affine


def _convolve(volume: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Zero-padded 'same' convolution of a 3D volume with a 1D kernel along ``axis``."""
    radius = kernel.numel() // 2
    moved = volume.movedim(axis, -1)
    shape = moved.shape
    flat = moved.reshape(-1, 1, shape[-1])
    out = torch.nn.functional.conv1d(flat, kernel.view(1, 1, -1), padding=radius)
    return out.reshape(shape).movedim(-1, axis)


def points_to_heatmap(
    points: Points | Any,
    spatial_shape: Sequence[int] | Image | None = None,
    sigma: float | Sequence[float] = 2.0,
    *,
    spacing: float | Sequence[float] | None = None,
    affine: Any = None,
    truncate: float = 3.0,
    renormalize: bool = True,
) -> ScalarImage:
    """Render points as a Gaussian density map that sums to their count.

    Args:
        points: A :class:`~torchpatch.annotations.Points`, or ``(N, 2)`` /
            ``(N, 3)`` positions in voxel coordinates (a point ``p`` lies in
            voxel ``floor(p)``; the Gaussian is centred on that voxel).
            Points outside the image are not drawn.
        spatial_shape: The canvas ``(I, J, K)`` (``(I, J)`` for 2D), or an
            :class:`~torchpatch.image.Image` whose shape and affine are used;
            ``None`` takes the canvas of a ``Points``.
        sigma: Standard deviation, one number or three (anisotropic), in
            voxels, or in millimetres when ``spacing`` is given.
        spacing: Voxel size in millimetres (e.g. ``image.spacing``); makes
            ``sigma`` millimetres.
        affine: Affine of the returned image; that of an ``Image`` given as
            ``spatial_shape``, else the identity.
        truncate: Kernel half-width in sigmas (taps ``2 * ceil(truncate *
            sigma) + 1`` per axis).
        renormalize: Keep each point's sum at exactly one near the border
            (see the module docstring); ``False`` loses the mass outside.

    Returns:
        A float32 :class:`~torchpatch.image.ScalarImage` of shape ``(1, I, J, K)``.

    Raises:
        TypeError: For arguments of the wrong type.
        ValueError: For a negative sigma, non-positive spacing or truncate,
            positions of the wrong shape, or a missing canvas.

    Example:
        >>> heatmap = points_to_heatmap(Points([[2.5, 2.5], [0.5, 5.5]], (8, 8)), sigma=1.0)
        >>> heatmap.shape, round(float(heatmap.data.sum()), 4)
        ((1, 8, 8, 1), 2.0)
        >>> divmod(int(heatmap.data[0, :, :, 0].argmax()), 8)  # the peak of the border point, renormalised
        (0, 5)
    """
    sigmas = _parse_sigma(sigma, spacing)
    if isinstance(truncate, bool) or not isinstance(truncate, Real) or not math.isfinite(truncate) or truncate <= 0:
        raise ValueError(f"truncate must be a positive number of sigmas, got {truncate!r}")
    indices, shape, image_affine = _parse_points(points, spatial_shape)
    if affine is None:
        affine = image_affine if image_affine is not None else np.eye(4)
    affine = check_affine(affine, "affine of the heatmap")

    inside = ((indices >= 0) & (indices < torch.tensor(shape))).all(dim=1)
    indices = indices[inside]
    kernels = [gaussian_kernel(s, float(truncate), torch.float64) for s in sigmas]
    # Axes of length one keep all their mass whatever the kernel: skip them.
    axes = [a for a in range(3) if shape[a] > 1 and kernels[a].numel() > 1]
    weights = torch.ones(len(indices), dtype=torch.float64)
    if renormalize:
        for axis in axes:
            # Mass the kernel keeps inside the image, for an impulse at each position.
            ones = torch.ones(1, 1, shape[axis], dtype=torch.float64)
            kept = torch.nn.functional.conv1d(ones, kernels[axis].view(1, 1, -1), padding=kernels[axis].numel() // 2)
            weights = weights / kept.flatten()[indices[:, axis]]
    volume = torch.zeros(shape, dtype=torch.float32)
    volume.index_put_(tuple(indices.T), weights.to(torch.float32), accumulate=True)
    for axis in axes:
        volume = _convolve(volume, kernels[axis].to(torch.float32), axis)
    return ScalarImage(tensor=volume.unsqueeze(0).contiguous(), affine=affine)


__all__ = ["gaussian_kernel", "points_to_heatmap"]
