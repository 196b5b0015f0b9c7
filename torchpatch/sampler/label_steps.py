"""TorchIO's members of the label sampler: which label map it reads, and its probability map step.

:class:`~torchpatch.LabelSampler` draws from per-class position lists
(:mod:`~torchpatch.sampler.label`); this base holds what TorchIO 1.x's
``LabelSampler`` adds to the weighted sampler's steps
(:mod:`~torchpatch.sampler.probability_steps`): the label map it reads
(:meth:`LabelMapSteps.get_probability_map_image`), its attributes under
TorchIO's names, and :meth:`LabelMapSteps.get_probabilities_from_label_map`,
the map TorchIO builds from ``label_probabilities``. A subclass overriding
that step is sampled from the map it gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch

from ..constants import LABEL
from ..image import Image
from ..subject import Subject
from .probability_steps import ProbabilityMapSteps, default_step


def parse_label_probabilities(probabilities: Mapping[int, float] | None) -> dict[int, float] | None:
    """``{class: weight}`` checked (int classes, finite weights >= 0, a positive total), or ``None``.

    Example:
        >>> parse_label_probabilities({0: 1, 2: 0.5})
        {0: 1.0, 2: 0.5}
        >>> parse_label_probabilities({1: -1})
        Traceback (most recent call last):
        ...
        ValueError: label_probabilities[1] must be a finite number >= 0, got -1
    """
    if probabilities is None:
        return None
    if not isinstance(probabilities, Mapping):
        raise TypeError(f"label_probabilities must be a dict {{class: weight}}, got {type(probabilities).__name__}")
    parsed: dict[int, float] = {}
    for label, weight in probabilities.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"label_probabilities keys must be int classes, got {label!r}")
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise TypeError(f"label_probabilities[{label}] must be a number, got {type(weight).__name__} {weight!r}")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"label_probabilities[{label}] must be a finite number >= 0, got {weight!r}")
        parsed[int(label)] = float(weight)
    if sum(parsed.values()) <= 0:
        raise ValueError(f"label_probabilities must have a positive weight, got {dict(probabilities)}")
    return parsed


class LabelMapSteps(ProbabilityMapSteps):
    """Base of :class:`~torchpatch.LabelSampler`: TorchIO's label members on top of the weighted steps.

    Example:
        >>> from torchpatch import LabelMap, LabelSampler
        >>> seg = LabelMap(tensor=torch.tensor([0, 1, 2, 2, 0]).reshape(1, 5, 1, 1))
        >>> sampler = LabelSampler((3, 1, 1), label_probabilities={1: 1, 2: 1})
        >>> sampler.probability_map_name, sampler.get_probability_map_image(Subject(seg=seg)) is seg
        (None, True)
    """

    label_name: str | None
    label_probabilities: dict[int, float] | None

    @property
    def probability_map_name(self) -> str | None:
        """The label map's name, ``label_name`` (TorchIO's name; ``None``: the first LabelMap).

        Example:
            >>> from torchpatch import LabelSampler
            >>> sampler = LabelSampler(4, 'seg')
            >>> sampler.probability_map_name = 'brain'
            >>> sampler.label_name
            'brain'
        """
        return self.label_name

    @probability_map_name.setter
    def probability_map_name(self, name: str | None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"label_name must be a str or None, got {type(name).__name__}")
        self.label_name = name

    @property
    def label_probabilities_dict(self) -> dict[int, float] | None:
        """``label_probabilities`` under TorchIO's name (set it to change the classes' frequencies).

        Example:
            >>> from torchpatch import LabelSampler
            >>> sampler = LabelSampler(4, 'seg', {0: 1, 1: 3})
            >>> sampler.label_probabilities_dict = {1: 1}
            >>> sampler.label_probabilities
            {1: 1.0}
        """
        return self.label_probabilities

    @label_probabilities_dict.setter
    def label_probabilities_dict(self, probabilities: Mapping[int, float] | None) -> None:
        self.label_probabilities = parse_label_probabilities(probabilities)

    def get_probability_map_image(self, subject: Subject) -> Image:
        """The label map of ``subject`` the sampler reads: ``label_name``, or its first LabelMap.

        Raises:
            KeyError: If the subject has no image ``label_name``.
            ValueError: Without ``label_name``, if the subject has no LabelMap.

        Example:
            >>> from torchpatch import LabelMap, LabelSampler, ScalarImage
            >>> seg = LabelMap(tensor=torch.ones(1, 4, 4, 1))
            >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 4, 4, 1)), seg=seg)
            >>> LabelSampler(2).get_probability_map_image(subject) is subject['seg']
            True
        """
        return subject.get_image(self._label_image_name(subject), "label_name")

    def _label_image_name(self, subject: Subject) -> str:
        if self.label_name is not None:
            return self.label_name
        for name, image in subject.images.items():
            if image.type == LABEL:
                return name
        raise ValueError(
            f"subject {subject.name!r} has no LabelMap to sample from; images: {sorted(subject.images)}; "
            f"pass label_name"
        )

    @staticmethod
    @default_step
    def get_probabilities_from_label_map(
        label_map: torch.Tensor,
        label_probabilities_dict: Mapping[int, float],
        patch_size: Sequence[int] | np.ndarray,
    ) -> torch.Tensor:
        """TorchIO's ``(1, I, J, K)`` map of patch-centre probabilities from a label map.

        Only the valid centres count (where a patch of ``patch_size`` fits);
        the rest of the map is zero. Each class's weight, normalised over
        all the classes listed, is shared equally by its voxels (one
        channel: the voxels equal to the class) or in proportion to its
        channel (several channels: class ``c`` is channel ``c``). A class
        without voxels adds nothing, so the map may sum to less than one.

        Args:
            label_map: ``(C, I, J, K)`` labels or per-class fractions.
            label_probabilities_dict: ``{class: weight}``.
            patch_size: Three ints.

        Raises:
            ValueError: If the patch does not fit in the map, or a class
                has no channel in a map of several channels.

        Example:
            >>> labels = torch.tensor([0, 1, 1, 2, 0]).reshape(1, 5, 1, 1)
            >>> probability = LabelMapSteps.get_probabilities_from_label_map(labels, {1: 1, 2: 2}, (3, 1, 1))
            >>> [round(p, 3) for p in probability.flatten().tolist()]
            [0.0, 0.167, 0.167, 0.667, 0.0]
        """
        if not isinstance(label_map, torch.Tensor) or label_map.ndim != 4:
            raise ValueError(f"label_map must be a (C, I, J, K) tensor, got {_describe(label_map)}")
        probabilities = parse_label_probabilities(label_probabilities_dict)
        if probabilities is None:
            raise TypeError("label_probabilities_dict must be a dict {class: weight}, got None")
        size = [int(p) for p in np.asarray(patch_size).reshape(-1).tolist()]
        shape = [int(s) for s in label_map.shape[1:]]
        if len(size) != 3 or any(p < 1 or p > s for p, s in zip(size, shape)):
            raise ValueError(
                f"patch_size {tuple(size)} must be three ints >= 1 that fit the label map's {tuple(shape)}"
            )
        before = [p // 2 for p in size]
        after = [(p - 1) // 2 for p in size]
        region = label_map[(slice(None), *(slice(b, s - a) for b, a, s in zip(before, after, shape)))]
        if not region.is_floating_point():
            region = region.to(torch.float32)
        channels = int(region.shape[0])
        weights = torch.tensor(list(probabilities.values()), dtype=torch.float32)
        weights = weights / weights.sum()
        probability = torch.zeros_like(region)
        for label, weight in zip(probabilities, weights):
            if channels > 1:
                if not 0 <= label < channels:
                    raise ValueError(f"class {label} has no channel in a label map of {channels} channels")
                fractions = region[label]
                total = fractions.sum()
                if total:
                    probability[label] = weight / total * fractions
            else:
                members = region == label
                count = members.sum()
                if count:
                    probability[members] = weight / count
        if channels > 1:
            probability = probability.sum(dim=0, keepdim=True)
        padding = (before[2], after[2], before[1], after[1], before[0], after[0])
        return torch.nn.functional.pad(probability, padding)


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


__all__ = ["LabelMapSteps", "parse_label_probabilities"]
