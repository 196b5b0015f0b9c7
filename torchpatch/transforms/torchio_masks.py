"""TorchIO's masks for transforms of one's own: ``ones``, ``mean`` and ``get_mask_from_*``, on every transform.

The same masks :mod:`~torchpatch.transforms.masking` computes for
``masking_method``, with TorchIO's signatures: a mask of the shape of the
voxels given (where :func:`~torchpatch.transforms.masking.get_mask` gives
one channel), from the voxels rather than from an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch

from ..image import LabelMap, ScalarImage
from ..subject import Subject
from .masking import ANATOMICAL_HALVES, check_masking_method, get_mask, half_mask


class TorchIOMasks:
    """TorchIO's mask helpers (mixed into :class:`~torchpatch.transforms.Transform`).

    Example:
        >>> TorchIOMasks().get_mask_from_bounds(1, torch.zeros(1, 3, 3, 3)).sum().item()
        1
    """

    @staticmethod
    def parse_bounds(bounds_parameters: Any) -> tuple[int, int, int, int, int, int] | None:
        """``None``, one, three or six non-negative integers as six voxel counts (two per axis).

        Raises:
            ValueError: When a value is not a non-negative integer, or the count is not 1, 3 or 6.

        Example:
            >>> TorchIOMasks.parse_bounds(2), TorchIOMasks.parse_bounds((1, 2, 3))
            ((2, 2, 2, 2, 2, 2), (1, 1, 2, 2, 3, 3))
        """
        if bounds_parameters is None:
            return None
        values = (bounds_parameters,) if isinstance(bounds_parameters, Integral) else tuple(bounds_parameters)
        if not all(isinstance(value, Integral) and not isinstance(value, bool) and int(value) >= 0 for value in values):
            raise ValueError(f"bounds must be integers of at least zero, got {bounds_parameters!r}")
        counts = [int(value) for value in values]
        if len(counts) == 1:
            counts *= 6
        elif len(counts) == 3:
            counts = [count for count in counts for _ in range(2)]
        elif len(counts) != 6:
            raise ValueError(f"bounds must be one integer or 3 or 6 integers, got {len(counts)}: {bounds_parameters!r}")
        i0, i1, j0, j1, k0, k1 = counts
        return i0, i1, j0, j1, k0, k1

    @staticmethod
    def ones(tensor: torch.Tensor) -> torch.Tensor:
        """Every voxel of ``tensor`` (TorchIO's masking function for ``masking_method=None``).

        Example:
            >>> TorchIOMasks.ones(torch.zeros(1, 2, 1, 1)).all().item()
            True
        """
        return torch.ones_like(tensor, dtype=torch.bool)

    @staticmethod
    def mean(tensor: torch.Tensor) -> torch.Tensor:
        """The voxels above the mean of ``tensor`` (TorchIO's masking function).

        Example:
            >>> TorchIOMasks.mean(torch.tensor([0.0, 1, 2, 3])).tolist()
            [False, False, True, True]
        """
        return tensor > tensor.float().mean()

    def get_mask_from_masking_method(
        self,
        masking_method: Any,
        subject: Subject,
        tensor: torch.Tensor,
        labels: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The mask ``masking_method`` selects for voxels ``tensor`` of ``subject`` (TorchIO's signature).

        ``None``, an anatomical word and bounds give a mask of ``tensor``'s
        shape, a label map of the subject its own voxels (those in
        ``labels``), a function what it returns for ``tensor``.

        Example:
            >>> subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 4, 1, 1)))
            >>> TorchIOMasks().get_mask_from_masking_method('Left', subject, subject.t1.data).flatten().tolist()
            [True, True, False, False]
        """
        method = check_masking_method(masking_method)
        if method is None:
            return self.ones(tensor)
        if callable(method):
            return method(tensor)
        if isinstance(method, str) and isinstance(subject.get(method), LabelMap):
            data = subject[method].data
            if labels is None:
                return data.bool()
            return torch.isin(data, torch.as_tensor(list(labels), device=data.device).to(data.dtype))
        mask = get_mask(method, subject, ScalarImage(tensor=tensor), "the voxels given", labels, tensor)
        return mask.expand_as(tensor).clone() if mask.shape != tensor.shape else mask

    @staticmethod
    def get_mask_from_anatomical_label(anatomical_label: str, tensor: torch.Tensor) -> torch.Tensor:
        """The half of ``tensor``'s grid an anatomical word names (``'Left'`` is low I; RAS+).

        Example:
            >>> TorchIOMasks.get_mask_from_anatomical_label('superior', torch.zeros(1, 1, 1, 4)).flatten().tolist()
            [False, False, True, True]
        """
        word = anatomical_label.capitalize() if isinstance(anatomical_label, str) else anatomical_label
        if word not in ANATOMICAL_HALVES:
            raise ValueError(f"anatomical_label must be one of {sorted(ANATOMICAL_HALVES)}, got {anatomical_label!r}")
        return half_mask(word, tensor.shape, tensor.device)

    def get_mask_from_bounds(self, bounds_parameters: Any, tensor: torch.Tensor) -> torch.Tensor:
        """The voxels of ``tensor`` inside ``bounds_parameters`` voxels off each side (:meth:`parse_bounds`).

        Example:
            >>> TorchIOMasks().get_mask_from_bounds((1, 0, 0), torch.zeros(1, 4, 1, 1)).flatten().tolist()
            [False, True, True, False]
        """
        bounds = self.parse_bounds(bounds_parameters)
        if bounds is None:
            return self.ones(tensor)
        mask = torch.zeros_like(tensor, dtype=torch.bool)
        shape = tensor.shape[1:]
        box = tuple(slice(bounds[2 * a], shape[a] - bounds[2 * a + 1]) for a in range(3))
        mask[(slice(None), *box)] = True
        return mask


__all__ = ["TorchIOMasks"]
