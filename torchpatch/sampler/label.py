"""Label sampling: patch centres on chosen classes with chosen frequencies.

Per subject, the positions of each needed class among the valid centres are
listed once. A draw picks a class with ``label_probabilities`` (renormalised
over the classes the subject has) and then a position of that class: O(1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any

import numpy as np
import torch

from ..cache import CachedLabelMap, LabelIndex
from ..constants import LABEL
from ..image import Image
from ..subject import Subject
from ..typing import TypeTriplet
from .sampler import RandomSampler
from .weighted import valid_centres

#: Above this many needed classes, one stable sort beats one scan per class.
_SCANS = 4


class _BackgroundDraw:
    """Corners of patches centred on background, by rejection on the memory map.

    Background is usually most of a volume, so a few random reads find it;
    when it is rare, the exact list of background centres is built once.
    """

    def __init__(self, image: Image, patch_size: TypeTriplet) -> None:
        self.image = image
        self.patch_size = patch_size
        self.half = np.array([p // 2 for p in patch_size])
        self.region_shape = tuple(s - p + 1 for s, p in zip(image.spatial_shape, patch_size))
        self.size = int(np.prod(self.region_shape))
        self.exact: np.ndarray | None = None

    def __call__(self, rng: np.random.Generator, count: int) -> np.ndarray:
        if self.exact is None:
            labels = np.load(self.image.path, mmap_mode="r")[0]  # type: ignore[arg-type]
            found: list[np.ndarray] = []
            total = 0
            for _ in range(8):
                candidates = rng.integers(0, self.size, size=2 * count + 16)
                centres = np.unravel_index(candidates, self.region_shape)
                values = labels[tuple(c + h for c, h in zip(centres, self.half))]
                accepted = candidates[values == 0]
                found.append(accepted)
                total += accepted.size
                if total >= count:
                    return np.concatenate(found)[:count]
            region = valid_centres(torch.from_numpy(np.array(labels[None])), self.patch_size)
            self.exact = np.flatnonzero(region.numpy().ravel() == 0)
        if self.exact.size == 0:
            raise ValueError(f"label image {self.image!r} has no background voxel among the valid patch centres")
        return self.exact[rng.integers(0, self.exact.size, size=count)]


class _IndexedDraw:
    """Corners of patches centred on one class, from its memory-mapped positions.

    Each draw reads a few random entries, keeps those whose patch fits (by
    rejection), and falls back to the exact list of valid centres, built
    once, when too few fit (a class hugging the border).
    """

    def __init__(self, positions: np.ndarray, shape: TypeTriplet, patch_size: TypeTriplet) -> None:
        self.positions = positions
        self.shape = shape
        self.half = [p // 2 for p in patch_size]
        self.region_shape = tuple(s - p + 1 for s, p in zip(shape, patch_size))
        self.exact: np.ndarray | None = None

    def to_region(self, flat: np.ndarray) -> np.ndarray:
        """Flat voxel indices -> flat corner indices, dropping centres whose patch does not fit."""
        corners = [c - h for c, h in zip(np.unravel_index(flat, self.shape), self.half)]
        keep = np.ones(flat.size, dtype=bool)
        for corner, size in zip(corners, self.region_shape):
            keep &= (corner >= 0) & (corner < size)
        return np.ravel_multi_index([c[keep] for c in corners], self.region_shape).astype(np.int64)

    def has_valid_centre(self) -> bool:
        if self.positions.size == 0:
            return False
        sample = np.asarray(self.positions[:: max(1, self.positions.size // 64)])
        if self.to_region(sample).size:
            return True
        self.exact = self.to_region(np.asarray(self.positions))
        return bool(self.exact.size)

    def __call__(self, rng: np.random.Generator, count: int) -> np.ndarray:
        if self.exact is None:
            found: list[np.ndarray] = []
            total = 0
            for _ in range(8):
                picks = np.sort(rng.integers(0, self.positions.size, size=2 * count + 16))
                accepted = self.to_region(np.asarray(self.positions[picks]))
                accepted = accepted[rng.permutation(accepted.size)]
                found.append(accepted)
                total += accepted.size
                if total >= count:
                    return np.concatenate(found)[:count]
            self.exact = self.to_region(np.asarray(self.positions))
        return self.exact[rng.integers(0, self.exact.size, size=count)]


def _label_volume(data: torch.Tensor) -> torch.Tensor:
    """Class per voxel, ``(1, I, J, K)``: the data, or the argmax of one-hot channels."""
    if data.shape[0] == 1:
        return data
    return data.argmax(dim=0, keepdim=True)


class LabelSampler(RandomSampler):
    """Patches centred on labelled voxels, class by class.

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        label_name: Name of the LabelMap; the first LabelMap when ``None``.
        label_probabilities: ``{class: weight}``, the relative frequencies of
            the classes at patch centres. Classes a subject lacks are skipped.
            ``None`` means uniform over all foreground (non-zero) voxels.
        padding_mode: Pad images smaller than the patch (see
            :class:`~torchpatch.sampler.PatchSampler`); ``None`` makes it an error.

    Example:
        >>> from torchpatch import LabelMap, ScalarImage, Subject, LOCATION
        >>> label = torch.zeros(1, 8, 8, 1, dtype=torch.uint8)
        >>> label[0, 4, 4, 0] = 1
        >>> subject = Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 1)), seg=LabelMap(tensor=label))
        >>> sampler = LabelSampler(3, 'seg', label_probabilities={0: 0, 1: 1})
        >>> next(sampler(subject, 1, generator=0))[LOCATION].tolist()
        [3, 3, 0, 6, 6, 1]
    """

    thread_safe = True  # draws only from the generator it is given

    def __init__(
        self,
        patch_size: int | tuple[int, int, int],
        label_name: str | None = None,
        label_probabilities: Mapping[int, float] | None = None,
        *,
        padding_mode: float | str | None = None,
    ) -> None:
        super().__init__(patch_size, padding_mode=padding_mode)
        if label_name is not None and not isinstance(label_name, str):
            raise TypeError(f"label_name must be a str or None, got {type(label_name).__name__}")
        self.label_name = label_name
        self.label_probabilities = self._parse_probabilities(label_probabilities)

    @staticmethod
    def _parse_probabilities(probabilities: Mapping[int, float] | None) -> dict[int, float] | None:
        if probabilities is None:
            return None
        if not isinstance(probabilities, Mapping):
            raise TypeError(f"label_probabilities must be a dict {{class: weight}}, got {type(probabilities).__name__}")
        parsed: dict[int, float] = {}
        for label, weight in probabilities.items():
            if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
                raise TypeError(f"label_probabilities keys must be int classes, got {label!r}")
            if isinstance(weight, bool) or not isinstance(weight, Real):
                raise TypeError(
                    f"label_probabilities[{label}] must be a number, got {type(weight).__name__} {weight!r}"
                )
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(f"label_probabilities[{label}] must be a finite number >= 0, got {weight!r}")
            parsed[int(label)] = float(weight)
        if sum(parsed.values()) <= 0:
            raise ValueError(f"label_probabilities must have a positive weight, got {dict(probabilities)}")
        return parsed

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

    def prepare(self, subject: Subject, patch_size: TypeTriplet) -> Callable[[np.random.Generator, int], np.ndarray]:
        name = self._label_image_name(subject)
        image = subject.get_image(name, "label_name")
        index = image.label_index if isinstance(image, CachedLabelMap) else None
        region_shape = tuple(s - p + 1 for s, p in zip(image.spatial_shape, patch_size))
        if index is not None:
            # Decode-once cache: positions by class were stored with the volume.
            classes, lists = self._positions_from_index(index, image, patch_size)
        else:
            labels = _label_volume(image.data)
            if labels.is_floating_point():
                raise TypeError(
                    f"label image {name!r} of subject {subject.name!r} must hold integers, got {labels.dtype}"
                )
            flat = valid_centres(labels, patch_size).contiguous().numpy().ravel()
            classes, lists = self._positions(flat)
        if not classes:
            wanted = "foreground" if self.label_probabilities is None else sorted(self.label_probabilities)
            raise ValueError(
                f"subject {subject.name!r}: label image {name!r} has no voxel of {wanted} among the valid patch "
                f"centres (patch_size {patch_size}, spatial shape {subject.spatial_shape})"
            )
        weights = np.array([w for _, w in classes], dtype=np.float64)
        weights /= weights.sum()

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            chosen = rng.choice(len(lists), size=n, p=weights)
            flat_index = np.empty(n, dtype=np.int64)
            for position, positions in enumerate(lists):
                mask = chosen == position
                picks = int(mask.sum())
                if not picks:
                    continue
                if callable(positions):
                    flat_index[mask] = positions(rng, picks)
                else:
                    flat_index[mask] = positions[rng.integers(0, positions.size, size=picks)]
            return np.stack(np.unravel_index(flat_index, region_shape), axis=1).astype(np.int64)

        return draw

    def _positions_from_index(
        self, index: LabelIndex, image: Image, patch_size: TypeTriplet
    ) -> tuple[list[tuple[int, float]], list[Any]]:
        """Like :meth:`_positions`, from a cached :class:`~torchpatch.cache.LabelIndex`.

        Nothing proportional to a class's size is read: draws pick random
        entries of its memory-mapped positions (see :class:`_IndexedDraw`).
        """
        wanted: list[tuple[int | None, float]]
        if self.label_probabilities is None:
            wanted = [(None, 1.0)]
        else:
            wanted = [(label, weight) for label, weight in self.label_probabilities.items() if weight > 0]
        classes: list[tuple[int, float]] = []
        lists: list[Any] = []
        for label, weight in wanted:
            if label == 0:
                classes.append((0, weight))
                lists.append(_BackgroundDraw(image, patch_size))
                continue
            draw = _IndexedDraw(index.view(label), image.spatial_shape, patch_size)
            if draw.has_valid_centre():
                classes.append((1 if label is None else label, weight))
                lists.append(draw)
        return classes, lists

    def _positions(self, flat: np.ndarray) -> tuple[list[tuple[int, float]], list[np.ndarray]]:
        """Present classes with their weights, and the flat positions of each."""
        if self.label_probabilities is None:
            positions = np.flatnonzero(flat)
            return ([(1, 1.0)], [positions]) if positions.size else ([], [])
        needed = [(c, w) for c, w in self.label_probabilities.items() if w > 0]
        classes: list[tuple[int, float]] = []
        lists: list[np.ndarray] = []
        if len(needed) <= _SCANS:
            for label, weight in needed:
                positions = np.flatnonzero(flat == label)
                if positions.size:
                    classes.append((label, weight))
                    lists.append(positions)
            return classes, lists
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        for label, weight in needed:
            start, stop = np.searchsorted(ordered, [label, label + 1])
            if stop > start:
                classes.append((label, weight))
                lists.append(order[start:stop])
        return classes, lists
