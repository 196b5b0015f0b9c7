"""Label sampling: patch centres on chosen classes with chosen frequencies.

Per subject, the positions of each needed class among the valid centres are
listed once. A draw picks a class with ``label_probabilities`` (renormalised
over the classes the subject has) and then a position of that class: O(1).

Partial-volume label maps (float fractions, one channel per class) are
sampled as TorchIO samples them: a class is picked as above, then a voxel in
proportion to its fraction of that class (one running sum over the volume,
built once per subject, O(log n) per draw).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..cache import CachedLabelMap, LabelIndex, RunPositions
from ..constants import LABEL
from ..image import Image
from ..io import memory_map
from ..subject import Subject
from ..typing import TypeTriplet
from .label_steps import LabelMapSteps, parse_label_probabilities
from .probability_steps import check_probability_map
from .weighted import draw_from_map, valid_centres

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
            labels = memory_map(self.image.path)[0]  # type: ignore[arg-type]
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
    """Corners of patches centred on one class, from its positions (read from the cache's runs where asked).

    Each draw reads a few random entries, keeps those whose patch fits (by
    rejection), and falls back to the exact list of valid centres, built
    once, when too few fit (a class hugging the border).
    """

    def __init__(self, positions: RunPositions, shape: TypeTriplet, patch_size: TypeTriplet) -> None:
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


def check_fractions(data: torch.Tensor, where: str) -> None:
    """Raise unless a float label map holds only finite values >= 0 (one pass); ``where`` names it.

    Example:
        >>> check_fractions(torch.tensor([[[[0.25]], [[1.0]]]]), "label map 'seg'")  # fine: returns None
        >>> check_fractions(torch.tensor([[[[0.5]], [[-0.5]]]]), "label map 'seg'")
        Traceback (most recent call last):
        ...
        ValueError: label map 'seg' holds negative values (minimum -0.5); partial-volume fractions must be >= 0
    """
    low, high = (float(v) for v in torch.aminmax(data))  # NaN propagates to both
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError(f"{where} holds NaN or infinite values")
    if low < 0:
        raise ValueError(f"{where} holds negative values (minimum {low:g}); partial-volume fractions must be >= 0")


class _WeightedDraw:
    """Flat corner indices drawn in proportion to non-negative weights (inverse CDF).

    The running sum is float64 so that a voxel's share stays exact in large
    volumes; ``side='right'`` never lands on a zero weight.
    """

    def __init__(self, weights: np.ndarray) -> None:
        self.cdf = np.cumsum(weights, dtype=np.float64)
        self.last = int(np.flatnonzero(weights)[-1])

    def __call__(self, rng: np.random.Generator, count: int) -> np.ndarray:
        flat = np.searchsorted(self.cdf, rng.random(count) * self.cdf[-1], side="right")
        return np.minimum(flat, self.last).astype(np.int64)


class LabelSampler(LabelMapSteps):
    """Patches centred on labelled voxels, class by class.

    Args:
        patch_size: An int (a cube, or ``(p, p, 1)`` on 2D images) or three ints.
        label_name: Name of the LabelMap; the first LabelMap when ``None``.
        label_probabilities: ``{class: weight}``, the relative frequencies of
            the classes at patch centres. Classes a subject lacks are skipped.
            ``None`` means uniform over all foreground (non-zero) voxels.
            With several channels, class ``c`` is channel ``c``.
        padding_mode: Pad images smaller than the patch (see
            :class:`~torchpatch.sampler.PatchSampler`); ``None`` makes it an error.

    Partial-volume (float) label maps are sampled with TorchIO's meaning.
    One channel: a class is the voxels *equal* to it (a voxel of 0.5 is in
    no class) and ``None`` is uniform over the voxels above 0. Several
    channels (fractions, one per class): class ``c`` gets its share of
    ``label_probabilities`` spread over the voxels in proportion to
    channel ``c``; ``None`` is uniform over the voxels where some channel
    other than 0 (the background) is above 0 (TorchIO uses channel 0 > 0
    there, i.e. the background of a one-hot map). Negative, NaN or infinite
    fractions are errors.

    TorchIO's members (``label_probabilities_dict``, ``probability_map_name``,
    ``get_probabilities_from_label_map`` and the weighted sampler's steps)
    are provided; a subclass overriding a step is sampled through it (see
    :mod:`~torchpatch.sampler.probability_steps`).

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
        self.label_probabilities = parse_label_probabilities(label_probabilities)

    def prepare(self, subject: Subject, patch_size: TypeTriplet) -> Callable[[np.random.Generator, int], np.ndarray]:
        if self.steps_overridden:
            return self._draw_through_steps(subject, patch_size, draw_from_map)
        image = self.get_probability_map_image(subject)
        name = self._image_key(subject, image)
        index = image.label_index if isinstance(image, CachedLabelMap) else None
        region_shape = tuple(s - p + 1 for s, p in zip(image.spatial_shape, patch_size))
        classes: list[tuple[int, float]]
        lists: list[Any]
        if index is not None and not image.dtype.is_floating_point:
            # Decode-once cache: positions by class were stored with the volume.
            classes, lists = self._positions_from_index(index, image, patch_size)
        else:
            data = self._label_data(image, name, subject)
            if data.is_floating_point() and data.shape[0] > 1:
                weights = self._fraction_weights(data, patch_size)
                classes, lists = ([(1, 1.0)], [_WeightedDraw(weights)]) if weights.any() else ([], [])
            else:
                flat = valid_centres(_label_volume(data), patch_size).contiguous().numpy().ravel()
                classes, lists = self._positions(flat)
        if not classes:
            raise self._no_centre_error(subject, name, patch_size)
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

    def centre_weights(self, subject: Subject, patch_size: TypeTriplet) -> torch.Tensor:
        """The probability of each valid centre, float64 (see :meth:`RandomSampler.get_probability_map`).

        Example:
            >>> from torchpatch import LabelMap
            >>> seg = LabelMap(tensor=torch.tensor([0, 1, 2, 2, 0]).reshape(1, 5, 1, 1))
            >>> sampler = LabelSampler((3, 1, 1), label_probabilities={1: 1, 2: 1})
            >>> sampler.centre_weights(Subject(seg=seg), (3, 1, 1)).flatten().tolist()
            [0.5, 0.25, 0.25]
        """
        image = self.get_probability_map_image(subject)
        name = self._image_key(subject, image)
        data = self._label_data(image, name, subject)
        region_shape = tuple(s - p + 1 for s, p in zip(image.spatial_shape, patch_size))
        if self.label_probabilities is not None and "get_probabilities_from_label_map" in self.steps_overridden:
            weights = self._weights_from_step(data, patch_size, subject)
        elif data.is_floating_point() and data.shape[0] > 1:
            weights = self._fraction_weights(data, patch_size)
        else:
            weights = np.zeros(int(np.prod(region_shape)), dtype=np.float64)
            flat = valid_centres(_label_volume(data), patch_size).contiguous().numpy().ravel()
            for (_, weight), positions in zip(*self._positions(flat)):
                weights[positions] += weight / positions.size
        total = weights.sum()
        if total <= 0:
            raise self._no_centre_error(subject, name, patch_size)
        return torch.from_numpy(weights / total).reshape(region_shape)

    def _image_key(self, subject: Subject, image: Image) -> str:
        """The name of ``image`` in ``subject`` (for messages; the label map a subclass chose may have any)."""
        return next((key for key, value in subject.images.items() if value is image), repr(image))

    def _weights_from_step(self, data: torch.Tensor, patch_size: TypeTriplet, subject: Subject) -> np.ndarray:
        """Flat weights of the valid centres from a subclass's ``get_probabilities_from_label_map``."""
        full = self.get_probabilities_from_label_map(
            data.float(), dict(self.label_probabilities or {}), np.array(patch_size)
        )
        if not isinstance(full, torch.Tensor) or tuple(full.shape) != (1, *data.shape[1:]):
            raise ValueError(
                f"get_probabilities_from_label_map must return a tensor of shape (1, *{tuple(data.shape[1:])}) for "
                f"subject {subject.name!r}, got {type(full).__name__} of shape {tuple(getattr(full, 'shape', ()))}"
            )
        check_probability_map(full, subject, "get_probabilities_from_label_map")
        return valid_centres(full, patch_size).to(torch.float64).contiguous().numpy().ravel()

    def _label_data(self, image: Image, name: str, subject: Subject) -> torch.Tensor:
        """The label map's voxels; floats only from a LabelMap, as finite fractions >= 0."""
        data = image.data
        if data.is_floating_point():
            if image.type != LABEL:
                raise TypeError(
                    f"label image {name!r} of subject {subject.name!r} must hold integers, got {data.dtype} in a "
                    f"{type(image).__name__}; partial-volume fractions are sampled from a LabelMap, and any "
                    f"weights with WeightedSampler"
                )
            check_fractions(data, f"label map {name!r} of subject {subject.name!r}")
        return data

    def _fraction_weights(self, data: torch.Tensor, patch_size: TypeTriplet) -> np.ndarray:
        """Flat weights of the valid centres of a partial-volume map with one channel per class.

        TorchIO's meaning: class ``c`` (channel ``c``) gets its share of
        ``label_probabilities``, spread over the voxels in proportion to their
        fraction of ``c``. Without ``label_probabilities``, every voxel with
        some fraction of a class other than channel 0 (the background) is
        equally likely, as for integer one-hot maps.
        """
        channels = [valid_centres(data[c : c + 1], patch_size) for c in range(data.shape[0])]
        if self.label_probabilities is None:
            foreground = torch.zeros(channels[0].shape, dtype=torch.bool)
            for channel in channels[1:]:
                foreground |= channel > 0
            return foreground.contiguous().numpy().ravel().astype(np.float64)
        present = []
        for label, weight in self.label_probabilities.items():
            if weight > 0 and 0 <= label < len(channels):
                total = float(channels[label].sum(dtype=torch.float64))
                if total > 0:
                    present.append((label, weight, total))
        weights = np.zeros(channels[0].numel(), dtype=np.float64)
        scale = sum(weight for _, weight, _ in present)
        for label, weight, total in present:
            weights += channels[label].contiguous().numpy().ravel() * (weight / scale / total)
        return weights

    def _no_centre_error(self, subject: Subject, name: str, patch_size: TypeTriplet) -> ValueError:
        wanted = "foreground" if self.label_probabilities is None else sorted(self.label_probabilities)
        return ValueError(
            f"subject {subject.name!r}: label image {name!r} has no voxel of {wanted} among the valid patch "
            f"centres (patch_size {patch_size}, spatial shape {subject.spatial_shape})"
        )

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
            # Equal values only: a float map's 0.5 is no voxel of class 0 (as in TorchIO).
            start, stop = np.searchsorted(ordered, label, "left"), np.searchsorted(ordered, label, "right")
            if stop > start:
                classes.append((label, weight))
                lists.append(order[start:stop])
        return classes, lists
